//! Outbox entries and how a new local change folds into the pending one of the same record.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::Hlc;

/// What a mutation does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// The record is new; the server has not seen it.
    Create,
    /// Some fields changed.
    Update,
    /// The record is gone.
    Delete,
}
unit_enum_deserialize!(Kind {
    "create" => Kind::Create,
    "update" => Kind::Update,
    "delete" => Kind::Delete,
});

/// A request frozen when a mutation is first sent, so every retry sends the same bytes under the
/// same Idempotency-Key, whatever happens to the record meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Headers particular to this mutation (Idempotency-Key, If-Match, Ferry-Changed-At).
    pub headers: Vec<(String, String)>,
    /// The JSON body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The server's record an update or a delete was made on, when its version is not known
    /// (a server that gives versions only as `ETag`s gives none in a list): the server's record
    /// is read before the write goes, so that it is not sent without `If-Match` over changes
    /// made since (`server_state.rs`, `read_first`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<super::record::Record>,
    /// When it was frozen, that is first sent under its key (ms since epoch): how long a server
    /// may answer it "still being processed" is counted from there (`sync/processing.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_at: Option<f64>,
}

/// One pending mutation. It holds only what the flush needs: the record store holds the data,
/// and the base snapshot is kept once per record in its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the outbox; mutations are sent in this order.
    pub seq: u64,
    /// Mutation id, sent as the Idempotency-Key; never changes.
    pub id: String,
    /// Collection name.
    pub c: String,
    /// Record id (storage key); rewritten when a temporary id becomes the server's.
    pub r: String,
    /// What it does.
    pub kind: Kind,
    /// For an update: the fields changed, sorted; for a create, the record's fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// When it was first made.
    pub made: Hlc,
    /// When it last changed (coalescing moves this).
    pub at: Hlc,
    /// How many times it was sent.
    #[serde(default)]
    pub attempts: u32,
    /// The frozen request once it was sent: nothing coalesces into it after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Sent>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Not before this time (ms since epoch) will it be sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<f64>,
    /// For a delete of a record the server knows: its last server state and version, kept here
    /// because the row is gone (needed for If-Match, conflicts, and undoing a rejected delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<super::record::Record>,
    /// The version `base` had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_v: Option<String>,
    /// An update that replaces the whole record (a delete followed by a create of the same id):
    /// the server's fields that the local record lacks must go.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
    /// A send of it may have reached the server without the answer reaching here (no answer,
    /// or a success that could not be read): a create is then looked for on the server before
    /// it is sent again (`sync/landed.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsure: bool,
    /// For a delete the app made by a temporary id that had become the server's: that id,
    /// forgotten once the server has done the delete, so that it never finds the next record
    /// a server gives the same id (json-server numbers new records from the highest id left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl Entry {
    /// A new entry at outbox position `seq` of client `node`, made at `at`, for record `r` of
    /// collection `c`.
    pub fn new(seq: u64, node: &str, at: Hlc, c: &str, r: &str, kind: Kind) -> Entry {
        Entry {
            seq,
            id: format!("{node}-{seq}"),
            c: c.to_string(),
            r: r.to_string(),
            kind,
            fields: Vec::new(),
            made: at,
            at,
            attempts: 0,
            sent: None,
            error: None,
            retry_at: None,
            base: None,
            base_v: None,
            replace: false,
            unsure: false,
            via: None,
        }
    }

    /// Whether this mutation has left the client (and so must be sent again exactly as it was).
    pub fn in_flight(&self) -> bool {
        self.sent.is_some()
    }
}

/// What coalescing decided for a record's pending (unsent) entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Coalesced {
    /// Write this entry (the old one updated in place, keeping its position, or a new one).
    Keep(Box<Entry>),
    /// Nothing is left to send: the pending entry is removed (create then delete).
    Drop(u64),
}

/// Folds a new change of `kind` (touching `fields`) into `pending`, the record's last unsent
/// entry, if any. `fresh` is the entry to append when there is nothing to fold into.
///
/// create+update is one create, update+update one update with the union of fields,
/// create+delete nothing, update+delete one delete, delete+create one update that replaces.
pub fn coalesce(pending: Option<&Entry>, kind: Kind, fields: &[String], fresh: Entry) -> Coalesced {
    let Some(old) = pending.filter(|e| !e.in_flight()) else {
        return Coalesced::Keep(Box::new(Entry {
            kind,
            fields: fields.to_vec(),
            ..fresh
        }));
    };
    let mut e = old.clone();
    // Another tab's clock (or this one's after a reload) may be behind the entry's.
    e.at = fresh.at.max(old.at);
    match (old.kind, kind) {
        (Kind::Create, Kind::Delete) => return Coalesced::Drop(old.seq),
        (Kind::Create, _) => {
            // The fields a rejection of the create names (`rejected()`): the record's, all
            // along, the later changes' among them.
            let mut all: Vec<String> = e.fields.iter().chain(fields).cloned().collect();
            all.sort_unstable();
            all.dedup();
            e.fields = all;
        }
        (Kind::Update, Kind::Delete) => {
            e.kind = Kind::Delete;
            e.fields.clear();
            e.via = fresh.via;
        }
        (Kind::Update, _) | (Kind::Delete, _) => {
            // delete+create: the record exists again under the same id, so it replaces.
            e.replace |= old.kind == Kind::Delete;
            e.kind = Kind::Update;
            e.via = None;
            let mut all: Vec<String> = e.fields.iter().chain(fields).cloned().collect();
            all.sort_unstable();
            all.dedup();
            e.fields = all;
        }
    }
    if e.kind == Kind::Delete {
        e.fields.clear();
    }
    Coalesced::Keep(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, kind: Kind) -> Entry {
        Entry {
            id: format!("m{seq}"),
            ..Entry::new(seq, "n", Hlc { ms: seq, n: 0 }, "todos", "a", kind)
        }
    }
    fn f(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rules() {
        let c = entry(1, Kind::Create);
        let u = Entry {
            fields: f(&["a"]),
            ..entry(1, Kind::Update)
        };
        let d = entry(1, Kind::Delete);
        let fresh = entry(9, Kind::Update);
        let kind_of = |r: Coalesced| match r {
            Coalesced::Keep(e) => Some((e.kind, e.seq, e.fields)),
            Coalesced::Drop(_) => None,
        };
        assert_eq!(
            kind_of(coalesce(Some(&c), Kind::Update, &f(&["x"]), fresh.clone())),
            Some((Kind::Create, 1, f(&["x"])))
        );
        assert_eq!(
            kind_of(coalesce(Some(&c), Kind::Delete, &[], fresh.clone())),
            None
        );
        assert_eq!(
            kind_of(coalesce(
                Some(&u),
                Kind::Update,
                &f(&["b", "a"]),
                fresh.clone()
            )),
            Some((Kind::Update, 1, f(&["a", "b"])))
        );
        assert_eq!(
            kind_of(coalesce(Some(&u), Kind::Delete, &[], fresh.clone())),
            Some((Kind::Delete, 1, vec![]))
        );
        assert_eq!(
            kind_of(coalesce(Some(&d), Kind::Create, &f(&["t"]), fresh.clone())),
            Some((Kind::Update, 1, f(&["t"])))
        );
        assert_eq!(
            kind_of(coalesce(None, Kind::Update, &f(&["t"]), fresh.clone())),
            Some((Kind::Update, 9, f(&["t"])))
        );
    }

    #[test]
    fn never_into_in_flight() {
        let mut c = entry(1, Kind::Create);
        c.sent = Some(Sent {
            method: "POST".into(),
            url: "/x".into(),
            headers: vec![],
            body: None,
            check: None,
            frozen_at: None,
        });
        match coalesce(Some(&c), Kind::Delete, &[], entry(2, Kind::Update)) {
            Coalesced::Keep(e) => assert_eq!((e.seq, e.kind), (2, Kind::Delete)),
            Coalesced::Drop(_) => panic!("must not drop an in-flight create"),
        }
    }
}
