//! Folding the server's answers into local storage, inside one read-write transaction: acks
//! (server ids, versions, fields the server set), rejections and settled conflicts. Local
//! changes made while a request was out are kept and rebased onto the server's record.

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::config::CollectionConfig;
use crate::core::engine::{Change, ChangeKind, Engine};
use crate::core::error::Result;
use crate::core::mutation::{Entry, Kind};
use crate::core::record::{id_key, index_key, Record, Row};
use crate::core::storage::{field_index, Key, Storage, Table, Txn};
use crate::core::tx::{bucket_key, Tx};

use super::acked::acked_state;
use super::classify::{version_field, Verdict};
use super::report::{IdChange, RejectedItem, Report};

/// `server` with the local values of every field that `later` (still pending) entries changed;
/// `None` when a later entry deletes the record.
/// The id field always comes from the server (a temporary id must never overwrite it).
pub fn rebase(
    cfg: &CollectionConfig,
    server: &Record,
    local: &Record,
    later: &[Entry],
) -> Option<Record> {
    let mut out = server.clone();
    for e in later {
        match e.kind {
            Kind::Delete => return None,
            // Created again after a delete: the local record is the truth, under the server's id.
            Kind::Create => return Some(local.clone()),
            Kind::Update if e.replace => {
                let mut whole = local.clone();
                for keep in [&cfg.id_property, &cfg.version_property] {
                    match server.get(keep) {
                        Some(v) => whole.insert(keep.clone(), v.clone()),
                        None => whole.remove(keep),
                    };
                }
                out = whole;
            }
            Kind::Update => {
                for f in e.fields.iter().filter(|f| **f != cfg.id_property) {
                    match local.get(f) {
                        Some(v) => out.insert(f.clone(), v.clone()),
                        None => out.remove(f),
                    };
                }
            }
        }
    }
    Some(out)
}

/// The id the server gave the record of create `e` in its answer `s`, and its storage key (the
/// temporary key when the answer names none).
pub(super) fn server_id(cfg: &CollectionConfig, e: &Entry, s: Option<&Record>) -> (Value, String) {
    let sid = s
        .and_then(|s| s.get(&cfg.id_property))
        .cloned()
        .unwrap_or(Value::String(e.r.clone()));
    let skey = id_key(&sid).unwrap_or_else(|_| e.r.clone());
    (sid, skey)
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Deletes at once the rows that acknowledged creates move from their temporary ids to the
    /// server's (`apply_ack` then writes them at their new keys): a batch of temporary ids
    /// sorts together, so this is usually one range delete instead of one delete per record.
    pub(super) fn move_rows_first<T: Txn>(
        &self,
        tx: &Tx<T>,
        picked: &[Entry],
        verdicts: &[Verdict],
    ) -> Result<()> {
        // The prefetch read one collection's rows; the others' move one by one.
        let Some(c) = tx.prefetched() else {
            return Ok(());
        };
        let keys: Vec<&str> = picked
            .iter()
            .zip(verdicts)
            .filter_map(|(e, v)| match v {
                Verdict::Ack(s, _) if e.kind == Kind::Create && e.c == c => {
                    let cfg = self.collection(&e.c).ok()?;
                    let (_, key) = server_id(cfg, e, s.as_ref());
                    (key != e.r).then_some(e.r.as_str())
                }
                _ => None,
            })
            .collect();
        tx.delete_rows_first(&c, &keys)
    }

    /// The entries of `e`'s record queued after it.
    pub(crate) async fn later<T: Txn>(&self, tx: &Tx<T>, e: &Entry) -> Result<Vec<Entry>> {
        Ok(tx
            .entries_for(&e.c, &e.r)
            .await?
            .into_iter()
            .filter(|l| l.seq > e.seq)
            .collect())
    }

    /// Stores the server's record `s` (version `v`) for record `key`, keeping later local changes.
    #[allow(clippy::too_many_arguments)] // one call site each, all of it state of the same step
    pub(crate) async fn adopt<T: Txn>(
        &self,
        tx: &Tx<T>,
        cfg: &CollectionConfig,
        key: &str,
        s: Record,
        v: Option<String>,
        later: &mut [Entry],
        report: &mut Report,
    ) -> Result<()> {
        let old = tx.row(&cfg.name, key).await?;
        self.adopt_over(tx, cfg, key, old, s, v, later, report)
    }

    /// [`Engine::adopt`] over `old`, the local row of the record (which may not be stored under
    /// `key` yet: an ack that gives a record its server id moves it there by this write).
    #[allow(clippy::too_many_arguments)]
    fn adopt_over<T: Txn>(
        &self,
        tx: &Tx<T>,
        cfg: &CollectionConfig,
        key: &str,
        old: Option<Row>,
        s: Record,
        v: Option<String>,
        later: &mut [Entry],
        report: &mut Report,
    ) -> Result<()> {
        let c = cfg.name.as_str();
        let local = old.as_ref().map(|r| r.d.clone()).unwrap_or_default();
        match rebase(cfg, &s, &local, later) {
            Some(d) if old.is_some() || later.is_empty() => {
                let mut row = Row::new(cfg, d);
                row.v = v.or_else(|| version_field(cfg, &s));
                row.b = (!later.is_empty()).then_some(s);
                tx.put_row(c, key, &row)?;
                if old.as_ref().map(|o| &o.d) != Some(&row.d) {
                    let kind = if old.is_some() {
                        ChangeKind::Updated
                    } else {
                        ChangeKind::Created
                    };
                    let id = cfg.id_of(&row.d, key);
                    report
                        .changes
                        .push(Change::remote(kind, c, id, Some(row.d)));
                }
            }
            _ => {
                // Deleted locally since: the pending delete now carries this server state, and
                // a copy a pull put under the server's id meanwhile goes too. A ghost holds the
                // id in either case (the delete may have been made under the temporary id).
                tx.delete_row(c, key)?;
                if let Some(o) = &old {
                    let id = cfg.id_of(&o.d, key);
                    report
                        .changes
                        .push(Change::remote(ChangeKind::Deleted, c, id, None));
                }
                for l in later.iter_mut().filter(|l| l.kind == Kind::Delete) {
                    l.base_v = v.clone().or_else(|| version_field(cfg, &s));
                    l.base = Some(s.clone());
                    tx.put_entry(l)?;
                }
            }
        }
        Ok(())
    }

    /// Applies an acknowledgement of `e`.
    pub(crate) async fn apply_ack<T: Txn>(
        &self,
        tx: &Tx<T>,
        e: &Entry,
        server: Option<Record>,
        version: Option<String>,
        report: &mut Report,
    ) -> Result<()> {
        let cfg = self.collection(&e.c)?;
        let c = cfg.name.as_str();
        tx.delete_entry(e)?;
        report.acked += 1;
        let mut later = self.later(tx, e).await?;
        match e.kind {
            // The temporary id is forgotten only while it still names the deleted record: the
            // app may have created a record under that id since, whose create (acknowledged
            // first) points it at its own server id.
            Kind::Delete => {
                // Done, with nothing after it: the id is free again, and its ghost goes (a row
                // stored there since stays).
                if later.is_empty() && tx.row(c, &e.r).await?.is_none() {
                    tx.drop_row(c, &e.r)?;
                }
                match &e.via {
                    Some(tmp) if tx.alias(c, tmp).await?.as_deref() == Some(e.r.as_str()) => {
                        tx.delete_alias(c, tmp)?;
                        // Nothing can be pending under an id an alias held: its ghost goes too
                        // (Ferry's temporary ids have none).
                        if bucket_key(c, tmp).is_none() && tx.row(c, tmp).await?.is_none() {
                            tx.drop_row(c, tmp)?;
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            Kind::Create => {
                if let Some(r) = &server {
                    self.warn_without_client_id(cfg, r);
                }
                let s = acked_state(cfg, e, None, server);
                let (sid, skey) = server_id(cfg, e, Some(&s));
                let mut moved = None;
                if skey != e.r {
                    tx.put_alias(c, &e.r, &skey)?;
                    // The row moves to the server id; `adopt_over` writes it there once.
                    moved = tx.row(c, &e.r).await?;
                    if moved.is_some() {
                        tx.delete_row(c, &e.r)?;
                    }
                    for l in later.iter_mut() {
                        l.r = skey.clone();
                        if l.kind == Kind::Delete && l.via.is_none() {
                            // Made by the id the record had then: forgotten once it is done.
                            l.via = Some(e.r.clone());
                        }
                        tx.put_entry(l)?;
                    }
                    report.ids.push(IdChange {
                        collection: c.into(),
                        from: e.r.clone(),
                        to: sid.clone(),
                    });
                }
                // Only a temporary id is a placeholder others may point at; a server id that
                // changes (a record created again) is a new record, and refs keep the old one.
                // Rewritten after the record's own change, so that a view hears of the
                // record's new id before the records that point at it by that id.
                let repoint = skey != e.r && super::request::is_temp_id(&e.r);
                let was_moved = moved.is_some();
                let old = match moved {
                    Some(row) => Some(row),
                    None => tx.row(c, &skey).await?,
                };
                let from = report.changes.len();
                self.adopt_over(tx, cfg, &skey, old, s, version, &mut later, report)?;
                if was_moved {
                    for ch in &mut report.changes[from..] {
                        ch.previous_id = Some(e.r.clone());
                    }
                }
                if repoint {
                    self.rewrite_refs(tx, c, &e.r, &sid, report).await?;
                }
                Ok(())
            }
            Kind::Update => {
                let old = tx.row(c, &e.r).await?;
                let base = old.as_ref().and_then(|r| r.b.clone());
                let s = acked_state(cfg, e, base, server);
                self.adopt_over(tx, cfg, &e.r, old, s, version, &mut later, report)
            }
        }
    }

    /// Replaces temporary id `from` with `to` in every field declared as a reference to `c`.
    async fn rewrite_refs<T: Txn>(
        &self,
        tx: &Tx<T>,
        c: &str,
        from: &str,
        to: &Value,
        report: &mut Report,
    ) -> Result<()> {
        for other in self.config.collections.values() {
            for (field, target) in &other.refs {
                if target != c {
                    continue;
                }
                let rows = if other.indexes.contains(field) {
                    let k = index_key(Some(&Value::String(from.into())))
                        .expect("strings are indexable");
                    tx.t.get_by_index(Table::Records(&other.name), &field_index(field), &k)
                        .await?
                } else {
                    tx.t.get_all(Table::Records(&other.name)).await?
                };
                for (k, v) in rows {
                    let Some(mut row) = Row::from_stored(v)? else {
                        continue;
                    };
                    if row.d.get(field).and_then(Value::as_str) != Some(from) {
                        continue;
                    }
                    row.d.insert(field.clone(), to.clone());
                    row.reindex(other);
                    let Key::Str(key) = k else { continue };
                    tx.put_row(&other.name, &key, &row)?;
                    let id = other.id_of(&row.d, &key);
                    report.changes.push(Change::remote(
                        ChangeKind::Updated,
                        &other.name,
                        id,
                        Some(row.d),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Says once per collection that its server answered a create without the client id: a
    /// create whose answer is lost then cannot be found on the server (`sync/landed.rs`), and
    /// is stored again at each retry unless the server honours `Idempotency-Key` (Django REST framework's
    /// serializers drop fields they do not declare).
    fn warn_without_client_id(&self, cfg: &crate::core::config::CollectionConfig, r: &Record) {
        let field = &cfg.client_id_property;
        // An answer of the id alone (and its version) says nothing of what the server stored.
        let echoes = r
            .keys()
            .any(|k| *k != cfg.id_property && *k != cfg.version_property);
        if !echoes || r.contains_key(field) {
            return;
        }
        self.warn_once(format!("client id:{}", cfg.name), || {
            format!(
                "the server answered a create in `{}` without its `{field}` field: a create \
                 whose answer is lost cannot be found on the server by it, and is stored again \
                 at each retry unless the server honours Idempotency-Key. Store the field with \
                 the record (PROTOCOL.md section 3).",
                cfg.name
            )
        });
    }

    /// Moves `e` to the rejected list and takes the record back to the server's state.
    pub(crate) async fn apply_reject<T: Txn>(
        &self,
        tx: &Tx<T>,
        e: &Entry,
        status: u16,
        body: String,
        report: &mut Report,
    ) -> Result<()> {
        let cfg = self.collection(&e.c)?;
        let c = cfg.name.as_str();
        let method = e.sent.as_ref().map(|s| s.method.as_str());
        if status == 405 && e.kind == Kind::Update && method == Some("PUT") {
            // A server without PUT (FastAPI's usual CRUD, Feathers without `update`) refuses
            // every update: a setting, not a verdict on the record.
            self.warn_once(format!("405 to PUT:{c}"), || {
                format!(
                    "the server answered 405 (method not allowed) to a PUT of `{c}`: if it \
                     takes PATCH, set `updateMethod: \"PATCH\"` on the collection, then \
                     `retryRejected` the refused updates"
                )
            });
        }
        let field = &cfg.client_id_property;
        if e.kind == Kind::Create && matches!(status, 400 | 422) && refuses_field(&body, field) {
            // A schema that refuses unknown fields (LoopBack's strict models) refuses every
            // create for the field Ferry adds: a setting, not a verdict on the record.
            self.warn_once(format!("client id refused:{c}"), || {
                format!(
                    "the server refused a create in `{c}` with an answer naming its `{field}` \
                     field (Ferry's client id): a schema that refuses unknown fields must \
                     declare it (a string), or `clientIdProperty` must name a field it has; \
                     then `retryRejected` the refused creates"
                )
            });
        }
        let later = self.later(tx, e).await?;
        let row = tx.row(c, &e.r).await?;
        let mut reject = |e: &Entry,
                          status: u16,
                          body: String,
                          record: Option<Record>,
                          restored: Option<Record>|
         -> Result<()> {
            tx.delete_entry(e)?;
            let item = RejectedItem {
                mutation_id: e.id.clone(),
                collection: e.c.clone(),
                record_id: e.r.clone(),
                kind: e.kind,
                status,
                body,
                record,
                fields: e.fields.clone(),
                restored,
                temporary_id: e.via.clone(),
                at: self.env.now_ms(),
                entry: Some(e.clone()),
            };
            tx.t.put(
                Table::Rejected,
                &Key::Num(e.seq),
                &serde_json::to_value(&item).expect("json"),
            )?;
            report.rejected.push(item);
            Ok(())
        };
        let local = row.as_ref().map(|r| r.d.clone());
        // An update's fields go back to the server's values, except those a later change
        // (still queued) sets again.
        let keep: Vec<&String> = later.iter().flat_map(|l| &l.fields).collect();
        let undo: Vec<&String> = e.fields.iter().filter(|f| !keep.contains(f)).collect();
        let base = row.as_ref().and_then(|r| r.b.clone());
        let restored = match (&base, e.kind) {
            (Some(base), Kind::Update) => Some(
                undo.iter()
                    .map(|f| ((*f).clone(), base.get(*f).cloned().unwrap_or(Value::Null)))
                    .collect(),
            ),
            _ => None,
        };
        reject(e, status, body.clone(), local.clone(), restored)?;
        let idv = |d: &Record| cfg.id_of(d, &e.r);
        match e.kind {
            Kind::Create => {
                // Everything queued on a record the server never accepted goes with it.
                for l in &later {
                    reject(
                        l,
                        status,
                        format!("its create was rejected: {body}"),
                        local.clone(),
                        None,
                    )?;
                }
                // Nothing is left pending under the id: no ghost holds it.
                tx.drop_row(c, &e.r)?;
                if let Some(row) = row {
                    report
                        .changes
                        .push(Change::remote(ChangeKind::Deleted, c, idv(&row.d), None));
                }
            }
            Kind::Update => {
                if let Some(mut row) = row {
                    if let Some(base) = &base {
                        for f in undo {
                            match base.get(f) {
                                Some(v) => row.d.insert(f.clone(), v.clone()),
                                None => row.d.remove(f),
                            };
                        }
                    }
                    if later.is_empty() {
                        row.b = None;
                    }
                    row.reindex(cfg);
                    tx.put_row(c, &e.r, &row)?;
                    report.changes.push(Change::remote(
                        ChangeKind::Updated,
                        c,
                        idv(&row.d),
                        Some(row.d),
                    ));
                }
            }
            Kind::Delete => {
                let recreated = later.iter().any(|l| l.kind == Kind::Create);
                if let (None, Some(b), false) = (row, e.base.clone(), recreated) {
                    let mut back = Row::new(cfg, b);
                    back.v = e.base_v.clone();
                    tx.put_row(c, &e.r, &back)?;
                    report.changes.push(Change::remote(
                        ChangeKind::Created,
                        c,
                        idv(&back.d),
                        Some(back.d),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether a refusal's `body` says field `field` is not one the schema has (LoopBack's
/// `additionalProperties`, pydantic's "Extra inputs are not permitted", Joi's "is not
/// allowed", zod's "Unrecognized key"), not merely that it echoes the record sent (pydantic's
/// `input`) or that its value is taken (a unique index).
fn refuses_field(body: &str, field: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    body.contains(field)
        && [
            "additional",
            "extra",
            "not allowed",
            "unrecognized",
            "unknown",
            "not permitted",
        ]
        .iter()
        .any(|w| lower.contains(w))
}
