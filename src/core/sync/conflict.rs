//! Conflict policies: what a collection does when the server's record moved under a local change.
//! Pure functions over base, local and server; the flush applies the outcome.

use crate::core::config::{CollectionConfig, ConflictPolicy, TieRule};
use crate::core::mutation::Kind;
use crate::core::record::Record;

/// What to do after a conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Take the server's state (its record, or its deletion); the local change is dropped.
    Server,
    /// Send this record as an update over the server's version.
    Update(Record),
    /// Send the delete again over the server's version.
    Delete,
    /// The server deleted the record; create it again from this.
    Recreate(Record),
}

/// Settles a conflict of a local `kind` mutation (which changed `fields`) under `cfg`'s policy.
/// `server` is `None` when the server deleted the record; `local` is `None` for a local delete.
pub fn settle(
    cfg: &CollectionConfig,
    kind: Kind,
    fields: &[String],
    base: Option<&Record>,
    local: Option<&Record>,
    server: Option<&Record>,
) -> Outcome {
    let policy = match cfg.conflict {
        // Without a resolver a custom policy falls back to a merge (the JS layer calls the
        // resolver before this when there is one).
        ConflictPolicy::Custom => ConflictPolicy::Merge,
        p => p,
    };
    settle_by(cfg, policy, kind, fields, base, local, server)
}

/// What a conflict that is none comes to: the server's record is the one the local change was
/// made on, at a version this device did not know (an ETag-only server's lists name none, so a
/// pull keeps the version the device had), so nothing moved under the change, which goes again
/// over the server's version, whatever the policy. `None` when the server's record moved (or is
/// gone, or the change is a create).
pub fn unmoved(
    cfg: &CollectionConfig,
    kind: Kind,
    fields: &[String],
    base: Option<&Record>,
    local: Option<&Record>,
    server: Option<&Record>,
) -> Option<Outcome> {
    let moved = kind == Kind::Create || base.is_none() || server.is_none();
    if moved || !same_content(cfg, base, server) {
        return None;
    }
    Some(settle_by(
        cfg,
        ConflictPolicy::Merge,
        kind,
        fields,
        base,
        local,
        server,
    ))
}

fn settle_by(
    cfg: &CollectionConfig,
    policy: ConflictPolicy,
    kind: Kind,
    fields: &[String],
    base: Option<&Record>,
    local: Option<&Record>,
    server: Option<&Record>,
) -> Outcome {
    match (kind, local, server) {
        (Kind::Delete, _, None) => Outcome::Server,
        (Kind::Delete, _, Some(s)) => match policy {
            ConflictPolicy::ClientWins => Outcome::Delete,
            ConflictPolicy::ServerWins => Outcome::Server,
            // The delete stands only if the server changed nothing since the local base.
            _ if same_content(cfg, base, Some(s)) => Outcome::Delete,
            _ => Outcome::Server,
        },
        (_, Some(l), None) => match policy {
            ConflictPolicy::ClientWins => Outcome::Recreate(l.clone()),
            _ => Outcome::Server,
        },
        (_, Some(l), Some(s)) => {
            let mut r = s.clone();
            for f in fields {
                if f == &cfg.id_property || f == &cfg.version_property {
                    continue;
                }
                let (b, lv, sv) = (base.and_then(|b| b.get(f)), l.get(f), s.get(f));
                let take_local = match policy {
                    ConflictPolicy::ServerWins => false,
                    ConflictPolicy::ClientWins => true,
                    _ => b == sv || (lv != sv && cfg.tie == TieRule::Local),
                };
                if take_local {
                    match lv {
                        Some(v) => r.insert(f.clone(), v.clone()),
                        None => r.remove(f),
                    };
                }
            }
            if &r == s {
                Outcome::Server
            } else {
                Outcome::Update(r)
            }
        }
        (_, None, _) => Outcome::Server,
    }
}

/// Whether two records hold the same data, ignoring the version field.
pub(super) fn same_content(cfg: &CollectionConfig, a: Option<&Record>, b: Option<&Record>) -> bool {
    let strip = |r: Option<&Record>| {
        r.map(|r| {
            let mut r = r.clone();
            r.remove(&cfg.version_property);
            r
        })
    };
    strip(a) == strip(b)
}

/// The policy's name, for events.
pub fn policy_name(cfg: &CollectionConfig) -> &'static str {
    match cfg.conflict {
        ConflictPolicy::Merge => "merge",
        ConflictPolicy::ServerWins => "serverWins",
        ConflictPolicy::ClientWins => "clientWins",
        ConflictPolicy::Custom => "custom",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(v: serde_json::Value) -> Record {
        v.as_object().unwrap().clone()
    }
    fn f(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merge_by_field() {
        let cfg = CollectionConfig::new("t", "/t");
        let base = r(json!({"id": "1", "a": 1, "b": 1, "version": 1}));
        let local = r(json!({"id": "1", "a": 2, "b": 1, "version": 1}));
        let server = r(json!({"id": "1", "a": 1, "b": 3, "version": 2}));
        let out = settle(
            &cfg,
            Kind::Update,
            &f(&["a"]),
            Some(&base),
            Some(&local),
            Some(&server),
        );
        assert_eq!(
            out,
            Outcome::Update(r(json!({"id": "1", "a": 2, "b": 3, "version": 2})))
        );
        // Same field on both sides: the server wins by default, the local side with `tie: local`.
        let server2 = r(json!({"id": "1", "a": 5, "b": 1, "version": 2}));
        assert_eq!(
            settle(
                &cfg,
                Kind::Update,
                &f(&["a"]),
                Some(&base),
                Some(&local),
                Some(&server2)
            ),
            Outcome::Server
        );
        let mut cfg2 = cfg.clone();
        cfg2.tie = TieRule::Local;
        assert!(
            matches!(settle(&cfg2, Kind::Update, &f(&["a"]), Some(&base), Some(&local), Some(&server2)), Outcome::Update(x) if x["a"] == 2)
        );
    }

    #[test]
    fn deletes() {
        let mut cfg = CollectionConfig::new("t", "/t");
        let base = r(json!({"id": "1", "a": 1, "version": 1}));
        let same = r(json!({"id": "1", "a": 1, "version": 2}));
        let moved = r(json!({"id": "1", "a": 9, "version": 2}));
        assert_eq!(
            settle(&cfg, Kind::Delete, &[], Some(&base), None, Some(&same)),
            Outcome::Delete
        );
        assert_eq!(
            settle(&cfg, Kind::Delete, &[], Some(&base), None, Some(&moved)),
            Outcome::Server
        );
        assert_eq!(
            settle(
                &cfg,
                Kind::Update,
                &f(&["a"]),
                Some(&base),
                Some(&moved),
                None
            ),
            Outcome::Server
        );
        cfg.conflict = ConflictPolicy::ClientWins;
        assert_eq!(
            settle(&cfg, Kind::Delete, &[], Some(&base), None, Some(&moved)),
            Outcome::Delete
        );
        assert_eq!(
            settle(
                &cfg,
                Kind::Update,
                &f(&["a"]),
                Some(&base),
                Some(&moved),
                None
            ),
            Outcome::Recreate(moved.clone())
        );
    }
}
