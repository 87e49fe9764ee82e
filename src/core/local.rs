//! Local operations: every write stores the record and folds its mutation into the outbox in one
//! transaction; reads never touch the network.

use serde_json::Value;

use super::clock::Env;
use super::config::CollectionConfig;
use super::engine::{Change, ChangeKind, Engine};
use super::error::{Error, ErrorKind, Result};
use super::mutation::{coalesce, Coalesced, Entry, Kind};
use super::query::{holds_id, id_index_keys, Query};
use super::quick::Quick;
use super::record::{changed_fields, id_key, index_key, Record, Row};
use super::storage::{field_index, Storage, Table, Txn};
use super::tx::{bucket_key, Tx, Want};

/// A local write.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A new record (its id is generated unless it has one).
    Create(Record),
    /// A shallow merge of these fields into record `id`.
    Update(String, Record),
    /// The whole of record `id` becomes this.
    Replace(String, Record),
    /// Record `id` goes.
    Delete(String),
}

/// What a local write touches: the narrower scope starts sooner in IndexedDB.
pub(crate) fn write_scope(c: &str) -> [Table<'_>; 4] {
    [
        Table::Records(c),
        Table::Outbox,
        Table::State,
        Table::Aliases,
    ]
}

/// How the temporary ids Ferry makes begin (they travel as client ids too).
pub(crate) const TEMP_PREFIX: &str = "tmp-";

/// The temporary id of a record created at outbox position `seq`. Zero-padded, so that temporary
/// ids sort in creation order and the records of one sync round lie in one key range (and their
/// aliases in few buckets: `tx/aliases.rs` relies on this form).
pub(crate) fn temp_id(node: &str, seq: u64) -> String {
    format!("{TEMP_PREFIX}{node}-{seq:010}")
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Applies local writes to collection `c` in one transaction: all of them or none.
    /// Returns the records written (absent for deletes) and the changes to announce.
    pub async fn write(&self, c: &str, ops: Vec<Op>) -> Result<(Vec<Option<Record>>, Vec<Change>)> {
        let cfg = self.collection(c)?; // an unknown collection is that error, not a missing store's
        let keys: Vec<String> = ops.iter().filter_map(|op| op_key(cfg, op)).collect();
        // What to wait for (`gate.rs`): a create, the creates of its own id under way; any other
        // write, every create of the collection under way (it may name one by an alias).
        let own_only = ops.iter().all(|op| matches!(op, Op::Create(_)))
            && keys.iter().all(|k| bucket_key(c, k).is_none());
        let mut waits = if own_only {
            self.gates.waits(c, keys.iter().map(String::as_str))
        } else {
            // An id in the form of Ferry's temporary ids may be an alias: its create reads it.
            self.gates.waits_all(Some(c))
        };
        // A create with the app's id may be done twice: writes called until it is done wait.
        let closed = match (&ops[..], keys.first()) {
            ([Op::Create(_)], Some(key)) => Some(self.gates.close(c, key)),
            _ => None,
        };
        let quick = match &ops[..] {
            [Op::Create(data)] => {
                self.quick_create(cfg, data, &mut waits, closed.as_ref())
                    .await?
            }
            _ => Quick::NotTried,
        };
        let mut tx = match quick {
            Quick::Done(out) => return Ok(out),
            Quick::Undone(tx) => tx, // holding the position the create took when called
            Quick::Again(position) => {
                let mut tx = self.begin_in(true, &write_scope(c)).await?;
                tx.take_positions([position]);
                tx
            }
            Quick::NotTried => {
                // Positions now, before any await, as a quick create takes its own: a quick
                // create called after this write must not be numbered (and sent) before it.
                let taken: Vec<_> = {
                    let mut alloc = self.alloc.borrow_mut();
                    (0..ops.len()).map_while(|_| alloc.take(0)).collect()
                };
                // Waiting, it is queued: writes called after it wait for it, and its positions
                // bound a flush as a create's do (`gate.rs`). A create has a gate of its own
                // (and took no position: it comes here only when there is no block).
                let queued = (!waits.is_empty() && closed.is_none()).then(|| {
                    let first = taken.first().map(|(seq, _)| *seq);
                    self.gates.queue(Some(c), first)
                });
                for w in waits {
                    w.await;
                }
                let mut tx = self.begin_in(true, &write_scope(c)).await?;
                drop(queued);
                tx.take_positions(taken);
                tx
            }
        };
        let out = self.write_in(&mut tx, c, ops).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// [`Engine::write`] inside a transaction the caller commits (with writes of its own).
    pub(crate) async fn write_in<T: Txn>(
        &self,
        tx: &mut Tx<T>,
        c: &str,
        ops: Vec<Op>,
    ) -> Result<(Vec<Option<Record>>, Vec<Change>)> {
        let cfg = self.collection(c)?;
        // Everything the writes look at, read in one round trip rather than three per record.
        let ids: Vec<String> = ops.iter().filter_map(|op| op_key(cfg, op)).collect();
        tx.prefetch(c, &ids, Want::ALL).await?;
        let done = self.apply_ops(tx, cfg, ops).await;
        tx.forget();
        done
    }

    async fn apply_ops<T: Txn>(
        &self,
        tx: &mut Tx<T>,
        cfg: &CollectionConfig,
        ops: Vec<Op>,
    ) -> Result<(Vec<Option<Record>>, Vec<Change>)> {
        let mut out = Vec::with_capacity(ops.len());
        let mut changes = Vec::with_capacity(ops.len());
        for op in ops {
            let (rec, change) = self.apply_op(tx, cfg, op).await?;
            out.push(rec);
            changes.extend(change);
        }
        Ok((out, changes))
    }

    async fn apply_op<T: Txn>(
        &self,
        tx: &mut Tx<T>,
        cfg: &CollectionConfig,
        op: Op,
    ) -> Result<(Option<Record>, Option<Change>)> {
        let c = cfg.name.as_str();
        let idp = cfg.id_property.as_str();
        // A new entry's position and mutation id are given when it is stored (`fold`): a change
        // folded into a pending entry, or dropping one, takes none.
        let at = tx.now(&self.env);
        let fresh = |kind, key: &str| Entry::new(0, "", at, c, key, kind);
        match op {
            Op::Create(mut data) => {
                let (key, pending, fresh) = match data.get(idp) {
                    Some(v) => {
                        let key = id_key(v)?;
                        if tx.resolve(c, &key).await?.1.is_some() {
                            return Err(id_taken(c, &key));
                        }
                        // The id now names this record, not the one an alias of it led to (gone
                        // since): the alias goes, so that removing this row later leaves no alias
                        // behind without a ghost (`Tx::drop_row` lays none).
                        if tx.alias(c, &key).await?.is_some() {
                            tx.delete_alias(c, &key)?;
                        }
                        let pending = tx.entries_for(c, &key).await?;
                        let fresh = fresh(Kind::Create, &key);
                        (key, pending, fresh)
                    }
                    None => {
                        // A fresh temporary id: nothing can be stored or pending under it. It is
                        // made from the entry's position, taken now.
                        let (seq, node) = tx.next_seq(&self.env, 0).await?;
                        let key = temp_id(&node, seq);
                        data.insert(idp.to_string(), Value::String(key.clone()));
                        let fresh = Entry::new(seq, &node, at, c, &key, Kind::Create);
                        (key, Vec::new(), fresh)
                    }
                };
                let mut row = Row::new(cfg, data);
                let last = pending.last().filter(|e| !e.in_flight());
                if let Some(del) = last.filter(|e| e.kind == Kind::Delete) {
                    // Deleted and created again before the delete left: the server's record
                    // is replaced, so the row takes back the base the delete kept.
                    row.b = del.base.clone();
                    row.v = del.base_v.clone();
                }
                let mut fields = changed_fields(row.b.as_ref().unwrap_or(&Record::new()), &row.d);
                fields.retain(|f| f != idp);
                tx.put_row(c, &key, &row)?;
                self.fold(tx, &pending, Kind::Create, &fields, fresh, None)
                    .await?;
                let id = cfg.id_of(&row.d, &key);
                Ok((
                    Some(row.d.clone()),
                    Some(Change::local(ChangeKind::Created, c, id, Some(row.d))),
                ))
            }
            Op::Update(id, patch) => {
                self.modify(tx, cfg, &id, patch, false, fresh(Kind::Update, ""))
                    .await
            }
            Op::Replace(id, record) => {
                self.modify(tx, cfg, &id, record, true, fresh(Kind::Update, ""))
                    .await
            }
            Op::Delete(id) => {
                let (key, row) = tx.resolve(c, &id).await?;
                let row = row.ok_or_else(|| not_found(c, &id))?;
                let pending = tx.entries_for(c, &key).await?;
                let known = !pending.iter().any(|e| e.kind == Kind::Create);
                let base = known.then(|| row.b.clone().unwrap_or_else(|| row.d.clone()));
                let base = base.map(|b| (b, row.v.clone()));
                let fresh = Entry {
                    // Deleted by the temporary id it was created under: forgotten once the
                    // server has done the delete (a rejected one brings the record back).
                    via: (key != id).then(|| id.clone()),
                    ..fresh(Kind::Delete, &key)
                };
                // A ghost holds the id while something is pending under it; a create never sent
                // and this delete cancel out, and then nothing is.
                if self
                    .fold(tx, &pending, Kind::Delete, &[], fresh, base)
                    .await?
                {
                    tx.delete_row(c, &key)?;
                } else {
                    tx.drop_row(c, &key)?;
                }
                let idv = cfg.id_of(&row.d, &key);
                Ok((None, Some(Change::local(ChangeKind::Deleted, c, idv, None))))
            }
        }
    }

    /// Update (shallow merge) or replace of an existing record.
    async fn modify<T: Txn>(
        &self,
        tx: &mut Tx<T>,
        cfg: &CollectionConfig,
        id: &str,
        input: Record,
        replace: bool,
        fresh: Entry,
    ) -> Result<(Option<Record>, Option<Change>)> {
        let c = cfg.name.as_str();
        let idp = cfg.id_property.as_str();
        let (key, row) = tx.resolve(c, id).await?;
        let mut row = row.ok_or_else(|| not_found(c, id))?;
        if let Some(v) = input.get(idp) {
            if id_key(v)? != key && id_key(v)? != id {
                return Err(Error::validation(format!(
                    "the id of a record cannot change (from {key:?})"
                )));
            }
        }
        let mut next = if replace {
            input
        } else {
            // `extend`, not `collect`: collecting into a BTreeMap sorts, which costs its own copy
            // of the stable sort in wasm.
            let mut next = row.d.clone();
            next.extend(input);
            next
        };
        // The id keeps the type it had (a server may use numbers).
        if let Some(v) = row.d.get(idp) {
            next.insert(idp.to_string(), v.clone());
        }
        // The version and the client id are the sync's, not part of what the app replaces: a
        // replacement without them keeps them (else a PATCH would send them as null, and the
        // record shows no version until the next answer).
        if replace {
            for f in [&cfg.version_property, &cfg.client_id_property] {
                if let (Some(v), false) = (row.d.get(f), next.contains_key(f)) {
                    next.insert(f.clone(), v.clone());
                }
            }
        }
        let mut fields = changed_fields(&row.d, &next);
        fields.retain(|f| f != idp);
        if fields.is_empty() {
            return Ok((Some(row.d), None));
        }
        let pending = tx.entries_for(c, &key).await?;
        if row.b.is_none() && !pending.iter().any(|e| e.kind == Kind::Create) {
            row.b = Some(row.d.clone());
        }
        row.d = next;
        row.reindex(cfg);
        tx.put_row(c, &key, &row)?;
        let fresh = Entry {
            r: key.clone(),
            ..fresh
        };
        self.fold(tx, &pending, Kind::Update, &fields, fresh, None)
            .await?;
        let idv = cfg.id_of(&row.d, &key);
        Ok((
            Some(row.d.clone()),
            Some(Change::local(ChangeKind::Updated, c, idv, Some(row.d))),
        ))
    }

    /// Folds a change into the last of the record's `pending` entries (or appends a new one,
    /// numbered above all of them, also one in flight) and stores it. Whether anything is left
    /// pending for the record after it (a create and a delete cancel out).
    async fn fold<T: Txn>(
        &self,
        tx: &mut Tx<T>,
        pending: &[Entry],
        kind: Kind,
        fields: &[String],
        fresh: Entry,
        base: Option<(Record, Option<String>)>,
    ) -> Result<bool> {
        let last = pending.last();
        let floor = last.map_or(0, |e| e.seq);
        match coalesce(last, kind, fields, fresh) {
            Coalesced::Drop(seq) => match last.filter(|l| l.seq == seq) {
                Some(l) => tx.delete_entry(l).map(|()| pending.len() > 1),
                None => Err(Error::storage("the dropped entry is not the record's last")),
            },
            Coalesced::Keep(mut e) => {
                if e.seq == 0 {
                    // New: its position now, and the mutation id made from it.
                    let (seq, node) = tx.next_seq(&self.env, floor).await?;
                    let made = Entry::new(seq, &node, e.made, &e.c, &e.r, e.kind);
                    e.seq = seq;
                    e.id = made.id;
                }
                if e.kind == Kind::Delete {
                    if let Some((b, v)) = base {
                        e.base = Some(b);
                        e.base_v = v;
                    }
                } else {
                    e.base = None;
                    e.base_v = None;
                }
                tx.put_entry(&e).map(|()| true)
            }
        }
    }

    /// The record `id` of `c` (a temporary id that became a server id still finds it).
    pub async fn get(&self, c: &str, id: &str) -> Result<Option<Record>> {
        self.collection(c)?;
        let tx = self.begin(false).await?;
        Ok(tx.resolve(c, id).await?.1.map(|r| r.d))
    }

    /// Every record of `c`, in id order ([`in_id_order`]).
    pub async fn all(&self, c: &str) -> Result<Vec<Record>> {
        let cfg = self.collection(c)?;
        let tx = self.begin(false).await?;
        let rows = tx.t.get_all(Table::Records(c)).await?;
        let mut records = Vec::with_capacity(rows.len());
        for (_, v) in rows {
            records.extend(Row::from_stored(v)?.map(|r| r.d));
        }
        Ok(in_id_order(records, &cfg.id_property))
    }

    /// The records of `c` that match `q`, and the indexed field it used (if any).
    pub async fn query(&self, c: &str, q: &Query) -> Result<(Vec<Record>, Option<String>)> {
        let cfg = self.collection(c)?;
        q.check()?;
        let tx = self.begin(false).await?;
        // A field naming a record of another collection (`refs`) matches by id, as `get` finds
        // the record: `7` and `"7"` alike, and a temporary id the app still holds after its
        // rename (the field was rewritten to the server's id).
        let mut q = std::borrow::Cow::Borrowed(q);
        // A record written with the temporary id after the rename keeps it until its write is
        // sent: both ids match.
        let mut ids: Vec<(String, Vec<String>)> = Vec::new();
        for (f, target) in &cfg.refs {
            let Some(key) = q.filter.get(f).and_then(|v| id_key(v).ok()) else {
                continue;
            };
            // A temporary id: every id on its alias chain, whether a record is still at its
            // end or not (one deleted since leaves records that point at it). A server id
            // that changed (a record created again) names a new record: refs keep the old one.
            let mut keys = vec![key];
            while keys.len() < 8 && super::sync::request::is_temp_id(&keys[keys.len() - 1]) {
                match tx.alias(target, &keys[keys.len() - 1]).await? {
                    Some(next) if !keys.contains(&next) => keys.push(next),
                    _ => break,
                }
            }
            q.to_mut().filter.remove(f);
            ids.push((f.clone(), keys));
        }
        let holds = |d: &Record| {
            ids.iter()
                .all(|(f, keys)| keys.iter().any(|k| holds_id(d, f, k)))
        };
        let matches = |d: &Record| q.matches(d) && holds(d);
        if let Some(id) = q.filter.get(&cfg.id_property) {
            // By id, as `get` finds it: `7` and `"7"` alike, a temporary id after its rename.
            let mut rest = q.clone().into_owned();
            rest.filter.remove(&cfg.id_property);
            let found = match id_key(id) {
                Ok(key) => tx.resolve(c, &key).await?.1.map(|r| r.d),
                Err(_) => None,
            };
            let hits = found
                .into_iter()
                .filter(|d| rest.matches(d) && holds(d))
                .collect();
            return Ok((rest.finish(hits), None));
        }
        let indexed = q
            .filter
            .iter()
            .find_map(|(f, v)| {
                cfg.indexes
                    .contains(f)
                    .then(|| index_key(Some(v)).map(|k| (f.clone(), vec![k])))
                    .flatten()
            })
            .or_else(|| {
                let (f, keys) = ids.iter().find(|(f, _)| cfg.indexes.contains(f))?;
                Some((
                    f.clone(),
                    keys.iter().flat_map(|k| id_index_keys(k)).collect(),
                ))
            });
        let rows = match &indexed {
            Some((f, keys)) => {
                let mut rows = Vec::new();
                for k in keys {
                    let index = field_index(f);
                    rows.extend(tx.t.get_by_index(Table::Records(c), &index, k).await?);
                }
                // Two lookups (an id as string and as number): back in key order, as one gives.
                if keys.len() > 1 {
                    rows.sort_by(|a, b| a.0.cmp(&b.0));
                }
                rows
            }
            None => tx.t.get_all(Table::Records(c)).await?,
        };
        let mut hits = Vec::new();
        for (_, v) in rows {
            let Some(Row { d, .. }) = Row::from_stored(v)? else {
                continue;
            };
            if matches(&d) {
                hits.push(d);
            }
        }
        let hits = in_id_order(hits, &cfg.id_property);
        Ok((q.finish(hits), indexed.map(|(f, _)| f)))
    }

    /// How many mutations wait to be sent.
    pub async fn pending_count(&self) -> Result<u64> {
        let tx = self.begin(false).await?;
        tx.t.count(Table::Outbox).await
    }
}

/// `records` (read in key order) in id order: numeric ids by value, before string ids in
/// IndexedDB's order. Rows are keyed by the id's text, which orders 10 before 9; only numeric ids
/// need moving, so records without any are returned as read.
pub(crate) fn in_id_order(mut records: Vec<Record>, idp: &str) -> Vec<Record> {
    let num = |r: &Record| r.get(idp).filter(|v| v.is_number()).and_then(Value::as_f64);
    if !records.iter().any(|r| num(r).is_some()) {
        return records;
    }
    // Stable: string ids keep their (key) order among themselves.
    records.sort_by(|a, b| match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    records
}

/// The key of the record `op` names (a create's own id, if it has a valid one).
fn op_key(cfg: &CollectionConfig, op: &Op) -> Option<String> {
    match op {
        Op::Create(d) => d.get(&cfg.id_property).and_then(|v| id_key(v).ok()),
        Op::Update(id, _) | Op::Replace(id, _) | Op::Delete(id) => Some(id.clone()),
    }
}

/// A create under an id that a record of `c` already has.
pub(crate) fn id_taken(c: &str, key: &str) -> Error {
    Error::new(
        ErrorKind::Constraint,
        format!("`{c}` already has a record with id {key:?}"),
    )
}

fn not_found(c: &str, id: &str) -> Error {
    Error::not_found(format!("`{c}` has no record with id {id:?}"))
}
