//! Conflicts: settling them by the collection's policy, or keeping them open for the app (policy
//! `custom`) until it resolves or discards them. An open conflict holds back only its own record.

use crate::core::clock::Env;
use crate::core::config::{CollectionConfig, ConflictPolicy};
use crate::core::engine::{Change, ChangeKind, Engine};
use crate::core::error::{Error, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::{changed_fields, Record, Row};
use crate::core::storage::{Key, Storage, Table, Txn};
use crate::core::tx::Tx;

use super::apply::rebase;
use super::classify::version_field;
use super::conflict::{policy_name, same_content, settle, unmoved, Outcome};
use super::report::{ConflictEvent, ConflictState, OpenConflict, Report, Resolution};
use super::request::quote_version;
use super::server_state::sent_header;
use super::untold::keep_untold;

/// What a conflict is about, read inside the transaction that settles it.
struct Sides {
    row: Option<Row>,
    later: Vec<Entry>,
    base: Option<Record>,
    local: Option<Record>,
    server: Option<Record>,
    server_version: Option<String>,
}

impl Sides {
    /// The record's id as one of its sides holds it (a number stays a number), else `key`.
    fn id(&self, cfg: &CollectionConfig, key: &str) -> serde_json::Value {
        [&self.local, &self.server, &self.base]
            .into_iter()
            .flatten()
            .find_map(|d| d.get(&cfg.id_property).cloned())
            .unwrap_or_else(|| key.into())
    }
}

impl<S: Storage, E: Env> Engine<S, E> {
    async fn sides<T: Txn>(
        &self,
        tx: &Tx<T>,
        cfg: &CollectionConfig,
        e: &Entry,
        server: Option<(Record, Option<String>)>,
    ) -> Result<Sides> {
        let row = tx.row(&cfg.name, &e.r).await?;
        let later = self.later(tx, e).await?;
        let base = match e.kind {
            Kind::Delete => e.base.clone(),
            _ => row.as_ref().and_then(|r| r.b.clone()),
        };
        let local = match e.kind {
            Kind::Delete => None,
            _ => row.as_ref().map(|r| r.d.clone()),
        };
        let (server, server_version) = match server {
            Some((s, v)) => {
                let v = v.or_else(|| version_field(cfg, &s));
                (Some(s), v)
            }
            None => (None, None),
        };
        Ok(Sides {
            row,
            later,
            base,
            local,
            server,
            server_version,
        })
    }

    /// Meets a conflict of `e` with the server's record `server` (`None`: deleted there): settles
    /// it by policy, or, under `custom`, keeps it open for the app.
    pub(crate) async fn apply_conflict<T: Txn>(
        &self,
        tx: &Tx<T>,
        e: &Entry,
        server: Option<(Record, Option<String>)>,
        report: &mut Report,
    ) -> Result<()> {
        let cfg = self.collection(&e.c)?;
        let sides = self.sides(tx, cfg, e, server).await?;
        let (base, local) = (sides.base.as_ref(), sides.local.as_ref());
        // Only a version that was stale makes a conflict over an unchanged record none: a 409 at
        // the very version sent is the server refusing for a reason of its own (a field taken),
        // and a server without versions, or whose `If-Match` check is broken, would answer the
        // change sent again the same way for ever.
        let stale = match (&sides.server_version, sent_header(e, "If-Match")) {
            (None, _) => false,
            (Some(v), sent) => sent != Some(quote_version(v)),
        };
        let unmoved = stale
            .then(|| unmoved(cfg, e.kind, &e.fields, base, local, sides.server.as_ref()))
            .flatten();
        if let Some(outcome) = unmoved {
            // No conflict: no event, and nothing for a custom resolver to decide.
            self.apply_outcome(tx, cfg, e, sides, outcome, policy_name(cfg), report)
                .await?;
            return Ok(());
        }
        if cfg.conflict == ConflictPolicy::Custom {
            let open = OpenConflict {
                conflict_id: e.id.clone(),
                collection: e.c.clone(),
                record_id: e.r.clone(),
                kind: e.kind,
                base: sides.base.clone(),
                local: sides.local.clone(),
                server: sides.server.clone(),
                server_version: sides.server_version.clone(),
                state: ConflictState::Open,
                error: None,
                at: self.env.now_ms(),
                seq: e.seq,
            };
            put_conflict(tx, &open)?;
            report.conflicts.push(ConflictEvent {
                collection: e.c.clone(),
                id: sides.id(cfg, &e.r),
                kind: e.kind,
                base: sides.base,
                local: sides.local,
                server: sides.server,
                result: sides.row.map(|r| r.d),
                policy: policy_name(cfg).into(),
                resent: false,
                open: true,
            });
            return Ok(());
        }
        let outcome = settle(
            cfg,
            e.kind,
            &e.fields,
            sides.base.as_ref(),
            sides.local.as_ref(),
            sides.server.as_ref(),
        );
        let event = self
            .apply_outcome(tx, cfg, e, sides, outcome, policy_name(cfg), report)
            .await?;
        // Kept with the outcome, in its transaction, until its event is out (`untold.rs`).
        keep_untold(tx, e, &event, self.env.now_ms(), report)?;
        report.conflicts.push(event);
        Ok(())
    }

    /// Carries out a conflict's outcome; returns its event.
    #[allow(clippy::too_many_arguments)] // the settled conflict's parts, each used once
    async fn apply_outcome<T: Txn>(
        &self,
        tx: &Tx<T>,
        cfg: &CollectionConfig,
        e: &Entry,
        sides: Sides,
        outcome: Outcome,
        policy: &str,
        report: &mut Report,
    ) -> Result<ConflictEvent> {
        let c = cfg.name.as_str();
        let id = sides.id(cfg, &e.r);
        let Sides {
            row,
            mut later,
            base,
            local,
            server,
            server_version: sv,
        } = sides;
        let mut event = ConflictEvent {
            collection: c.into(),
            id,
            kind: e.kind,
            base,
            local: local.clone(),
            server: server.clone(),
            result: None,
            policy: policy.into(),
            resent: !matches!(outcome, Outcome::Server),
            open: false,
        };
        let mut again = e.clone();
        // What is sent again is a new request: a server that keeps Idempotency-Keys would
        // answer the old key with the old answer (or refuse the new body under it).
        // `<mutation id>.<attempt>`, not one more segment per conflict: attempts only grow, so
        // the key is still new each time.
        let base = e.id.split('.').next().unwrap_or(&e.id);
        again.id = format!("{base}.{}", e.attempts);
        again.sent = None;
        again.error = None;
        again.retry_at = None;
        again.unsure = false; // a new request, never sent: nothing of it can have landed
        let idv = |d: &Record| cfg.id_of(d, &e.r);
        match outcome {
            Outcome::Server => {
                tx.delete_entry(e)?;
                match &server {
                    Some(s) => {
                        self.adopt(tx, cfg, &e.r, s.clone(), sv, &mut later, report)
                            .await?
                    }
                    None => {
                        // Gone on the server: so is the record here, with what was queued on it.
                        for l in later.iter().filter(|l| l.kind != Kind::Create) {
                            tx.delete_entry(l)?;
                        }
                        if let Some(old) = &row {
                            tx.delete_row(c, &e.r)?;
                            report.changes.push(Change::remote(
                                ChangeKind::Deleted,
                                c,
                                idv(&old.d),
                                None,
                            ));
                        }
                    }
                }
            }
            Outcome::Update(r) | Outcome::Recreate(r) => {
                // Update goes over the server's record; Recreate (the server has none) creates it again.
                let recreate = server.is_none();
                let current = row
                    .as_ref()
                    .map(|x| x.d.clone())
                    .unwrap_or_else(|| r.clone());
                match rebase(cfg, &r, &current, &later) {
                    // Deleted here while the conflict waited: that delete stands, and a ghost
                    // holds the id for it.
                    None => {
                        tx.delete_entry(e)?;
                        tx.delete_row(c, &e.r)?;
                        if let Some(old) = &row {
                            report.changes.push(Change::remote(
                                ChangeKind::Deleted,
                                c,
                                idv(&old.d),
                                None,
                            ));
                        }
                        for l in later.iter_mut().filter(|l| l.kind == Kind::Delete) {
                            l.base = server.clone();
                            l.base_v = sv.clone();
                            tx.put_entry(l)?;
                        }
                    }
                    // The result, with local edits made while it waited on top.
                    Some(d) => {
                        let mut newrow = Row::new(cfg, d);
                        if !recreate {
                            newrow.v = sv;
                            newrow.b = server.clone();
                        }
                        tx.put_row(c, &e.r, &newrow)?;
                        // What the app shows changes only when the data does (not when only
                        // the server's version and copy under it moved: `clientWins`, `unmoved`).
                        let shown = row.as_ref().is_some_and(|x| x.d == newrow.d);
                        again.kind = if recreate { Kind::Create } else { Kind::Update };
                        again.fields = if recreate {
                            Vec::new()
                        } else {
                            changed_fields(server.as_ref().unwrap_or(&Record::new()), &r)
                        };
                        again.base = None;
                        again.base_v = None;
                        tx.put_entry(&again)?;
                        if !shown {
                            report.changes.push(Change::remote(
                                ChangeKind::Updated,
                                c,
                                idv(&newrow.d),
                                Some(newrow.d),
                            ));
                        }
                    }
                }
            }
            Outcome::Delete => {
                tx.delete_row(c, &e.r)?; // the delete is queued again: a ghost holds the id
                if let Some(old) = &row {
                    report
                        .changes
                        .push(Change::remote(ChangeKind::Deleted, c, idv(&old.d), None));
                }
                again.kind = Kind::Delete;
                again.fields.clear();
                again.base = server.clone();
                again.base_v = sv;
                tx.put_entry(&again)?;
            }
        }
        event.result = tx.row(c, &e.r).await?.map(|r| r.d);
        Ok(event)
    }

    /// The conflicts that wait for a decision, oldest first.
    pub async fn conflicts(&self) -> Result<Vec<OpenConflict>> {
        let tx = self.begin(false).await?;
        let rows = tx.t.get_all(Table::Conflicts).await?;
        rows.into_iter()
            .map(|(_, v)| Ok(serde_json::from_value::<OpenConflict>(v)?))
            .collect()
    }

    async fn find_conflict<T: Txn>(&self, tx: &Tx<T>, conflict_id: &str) -> Result<OpenConflict> {
        for (_, v) in tx.t.get_all(Table::Conflicts).await? {
            let c: OpenConflict = serde_json::from_value(v)?;
            if c.conflict_id == conflict_id {
                return Ok(c);
            }
        }
        Err(Error::not_found(format!(
            "no open conflict {conflict_id:?}"
        )))
    }

    /// Settles an open conflict as the app decided. The record's held-back mutations go on.
    pub async fn resolve_conflict(
        &self,
        conflict_id: &str,
        resolution: Resolution,
    ) -> Result<Report> {
        let tx = self.begin(true).await?;
        let open = self.find_conflict(&tx, conflict_id).await?;
        let cfg = self.collection(&open.collection)?;
        tx.t.delete(Table::Conflicts, &Key::Num(open.seq))?;
        let mut report = Report::default();
        let entry = tx.t.get(Table::Outbox, &Key::Num(open.seq)).await?;
        if let Some(e) = entry {
            let e: Entry = serde_json::from_value(e)?;
            let server = open
                .server
                .clone()
                .map(|s| (s, open.server_version.clone()));
            let sides = self.sides(&tx, cfg, &e, server).await?;
            let outcome = match resolution {
                Resolution::Discard => Outcome::Server,
                Resolution::Delete if open.server.is_some() => Outcome::Delete,
                Resolution::Delete => Outcome::Server,
                Resolution::Record(mut r) => {
                    // The id is the record's, whatever the resolver returned.
                    let id = sides.row.as_ref().map(|row| cfg.id_of(&row.d, &e.r));
                    r.insert(
                        cfg.id_property.clone(),
                        id.unwrap_or_else(|| e.r.clone().into()),
                    );
                    match &open.server {
                        Some(s) if same_content(cfg, Some(s), Some(&r)) => Outcome::Server,
                        Some(_) => Outcome::Update(r),
                        None => Outcome::Recreate(r),
                    }
                }
            };
            let event = self
                .apply_outcome(&tx, cfg, &e, sides, outcome, "custom", &mut report)
                .await?;
            report.conflicts.push(event);
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Drops the local change of an open conflict: the server's state stands.
    pub async fn discard_conflict(&self, conflict_id: &str) -> Result<Report> {
        self.resolve_conflict(conflict_id, Resolution::Discard)
            .await
    }

    /// Marks an open conflict deferred or failed (what the resolver answered).
    pub async fn mark_conflict(
        &self,
        conflict_id: &str,
        state: ConflictState,
        error: Option<String>,
    ) -> Result<()> {
        let tx = self.begin(true).await?;
        let mut open = self.find_conflict(&tx, conflict_id).await?;
        open.state = state;
        open.error = error;
        put_conflict(&tx, &open)?;
        tx.commit().await
    }
}

fn put_conflict<T: Txn>(tx: &Tx<T>, c: &OpenConflict) -> Result<()> {
    let v = serde_json::to_value(c).expect("a conflict is always valid JSON");
    tx.t.put(Table::Conflicts, &Key::Num(c.seq), &v)
}
