//! Picking a round's batch: which outbox entries go next (the first entry of each record, none
//! held back by an open conflict or waiting for a parent's server id), frozen as the requests
//! they become, in one read-write transaction.

use std::collections::HashSet;

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::engine::Engine;
use crate::core::error::{ErrorKind, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::{Record, Row};
use crate::core::storage::{Key, Read, Storage, Table, Txn};
use crate::core::tx::Want;

use super::flush::join;
use super::request::freeze;

/// What a round picked.
pub(super) struct Picked {
    /// The entries to send, frozen.
    pub(super) entries: Vec<Entry>,
    /// Per entry, whether it was frozen just now (so an offline answer can undo it).
    pub(super) fresh: Vec<bool>,
    /// The positions of the outbox entries the pick read: all of the outbox between the first
    /// and the last of them.
    pub(super) present: Vec<u64>,
    /// Every record the pick looked at, up to its last pick: a pick made meanwhile leaves them
    /// out, since their entries before that point are out, or held back, or must go first.
    pub(super) visited: HashSet<(String, String)>,
    /// The pick stopped before a child waiting for its parent's create, or at the position of
    /// a write still to be stored (`Gates::lowest`).
    pub(super) halted: bool,
}

/// Where the last `Ferry-Changed-At` this store froze is kept (`state`).
fn stamp_key() -> Key {
    Key::str("stamp")
}

/// Field values of `rec` that name a pending temporary id through a declared reference.
fn refs_pending(
    refs: &std::collections::BTreeMap<String, String>,
    rec: &Record,
    creating: &HashSet<(String, String)>,
) -> bool {
    refs.iter().any(|(field, target)| {
        rec.get(field)
            .and_then(Value::as_str)
            .is_some_and(|id| creating.contains(&(target.clone(), id.to_string())))
    })
}

/// The record a rejected item or an open conflict is about (both name it the same way).
fn record_named_in(v: &Value) -> Option<(String, String)> {
    Some((
        v.get("collection")?.as_str()?.to_string(),
        v.get("recordId")?.as_str()?.to_string(),
    ))
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Picks the next batch, leaving out the records in `busy`; near a full quota (freezing
    /// stores each request's body), fewer at a time.
    pub(super) async fn pick_fitting(
        &self,
        busy: &HashSet<(String, String)>,
        after: Option<u64>,
    ) -> Result<Picked> {
        // The creates under way are waited for first, so that one done again is folded into
        // what it finds pending before that goes out; those called meanwhile bound the pick.
        for w in self.gates.waits_all(None) {
            w.await;
        }
        // A round is `batch_size` mutations; `send` cuts it into batches of the batch cap.
        let mut max = self.config.batch_size;
        loop {
            match self.pick(max, busy, after).await {
                Err(e) if e.kind == ErrorKind::Quota && max > 1 => max = (max / 2).max(1),
                other => return other,
            }
        }
    }
    /// Picks the next mutations to send (none of the records in `busy`) and freezes them, in
    /// one read-write transaction. `after`: the last position of a batch picked just before,
    /// from whose records `busy` is made; what lies before it is that batch's, or cannot go.
    async fn pick(
        &self,
        max: usize,
        busy: &HashSet<(String, String)>,
        after: Option<u64>,
    ) -> Result<Picked> {
        let tx = self.begin(true).await?;
        // A create under way that may be done again (`gate.rs`) will store a position taken
        // before those of writes called after it, which may be stored already: nothing from its
        // position on goes in this round. (A create called from here on takes a higher one, and
        // its writes come after this transaction.)
        let bound = self.gates.lowest();
        // What holds records back, the outbox's head and the last stamp are read in one round
        // trip (every await inside this transaction holds up the next one: a whole flush is a
        // chain of them).
        let stamp_at = stamp_key();
        let stamp_read = tx.t.get(Table::State, &stamp_at);
        let head_read = self.outbox_first(&tx, max, after);
        // A create the server rejected is not over until the app retries or discards it: with
        // declared refs its children wait meanwhile, rather than go with its temporary id.
        let held_read = self.held_back(&tx, self.config.has_refs());
        let (held, (head, stamp_read)) = join(held_read, join(head_read, stamp_read)).await;
        let ((mut blocked, rejected), head) = (held?, head?);
        blocked.extend(busy.iter().cloned());
        let outbox = self.outbox_to_pick(&tx, max, &blocked, head).await?;
        let last_stamp = stamp_read?.as_ref().and_then(Value::as_u64).unwrap_or(0);
        for said in tx.set_aside_damaged()? {
            self.env.warn(&said);
        }
        let outbox_seqs: Vec<u64> = outbox.iter().map(|e| e.seq).collect();
        // Freezing looks at rows only: the outbox was just read whole.
        let want = Want {
            aliases: false,
            entries: false,
        };
        self.prefetch_records(
            &tx,
            outbox.iter().filter(|e| e.sent.is_none()).take(max),
            want,
        )
        .await?;
        let mut creating: HashSet<(String, String)> = outbox
            .iter()
            .filter(|e| e.kind == Kind::Create)
            .map(|e| (e.c.clone(), e.r.clone()))
            .collect();
        creating.extend(rejected);
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut halted = false;
        let mut picked = Vec::new();
        let mut fresh = Vec::new();
        // The last `Ferry-Changed-At` this round froze.
        let mut stamp: Option<u64> = None;
        for mut e in outbox {
            if bound.is_some_and(|b| e.seq >= b) {
                halted = true;
                break;
            }
            let rec = (e.c.clone(), e.r.clone());
            // Only a record's first entry may go, and only once per round.
            if !seen.insert(rec.clone()) || blocked.contains(&rec) {
                continue;
            }
            // A collection this store was opened without: its mutations wait, kept, for a store
            // that declares it (this one does not know its URL).
            let Ok(cfg) = self.collection(&e.c) else {
                continue;
            };
            let was_fresh = e.sent.is_none();
            if e.sent.is_none() {
                let row = tx.row(&e.c, &e.r).await?;
                if let Some(row) = &row {
                    if refs_pending(&cfg.refs, &row.d, &creating) {
                        // Its parent has no server id yet; the next round will have it.
                        halted = true;
                        if picked.is_empty() {
                            continue;
                        }
                        break;
                    }
                }
                let row = match row {
                    Some(row) => Some(self.follow_refs(&tx, cfg, &e.r, row).await?),
                    None => None,
                };
                // `Ferry-Changed-At` never goes backwards from one store: each tab's clock
                // stamps its own writes, and a device clock may be set back between a write
                // and the next (or across a reload). A server that orders writes by it (last
                // writer wins) must see this store's in the order they were made.
                let last = stamp.unwrap_or(last_stamp);
                let at = e.at.ms.max(last.saturating_add(1));
                match freeze(cfg, &e, row.as_ref(), at) {
                    Some(sent) => {
                        let frozen_at = Some(self.env.now_ms());
                        e.sent = Some(crate::core::mutation::Sent { frozen_at, ..sent });
                        stamp = Some(at);
                    }
                    None => {
                        // An update of a record deleted meanwhile: the delete behind it says it all.
                        tx.delete_entry(&e)?;
                        continue;
                    }
                }
            }
            // A write sent before whose outcome was never written down (the page reloaded,
            // or the leading tab closed, while it was out) may have been stored: a create is
            // looked for before it goes again (`landed.rs`), and an update met by a 412 that
            // holds what it sent takes that for its acknowledgement (`verdict`). Each
            // attempt's outcome is written over a cleared error, so a missing one shows; a
            // request frozen anew (made again after a conflict) has had no attempt of its own.
            if !was_fresh && e.attempts > 0 && e.error.is_none() {
                e.unsure = true;
            }
            e.error = None;
            e.attempts = e.attempts.saturating_add(1);
            tx.put_entry(&e)?;
            picked.push(e);
            fresh.push(was_fresh);
            if picked.len() >= max {
                break;
            }
        }
        if let Some(s) = stamp {
            tx.t.put(Table::State, &stamp_key(), &Value::from(s))?;
        }
        tx.commit().await?;
        // The entries read were every entry between the first and the last of them.
        let present = outbox_seqs;
        Ok(Picked {
            entries: picked,
            fresh,
            present,
            visited: seen,
            halted,
        })
    }

    /// The outbox a round of `max` reads first: its head (after position `after`, when given)
    /// and whether that is all of (the rest of) it. With declared references, all of it: a
    /// child waits while its parent's create is anywhere in the queue.
    async fn outbox_first<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        max: usize,
        after: Option<u64>,
    ) -> Result<(Vec<Entry>, bool)> {
        if self.config.has_refs() {
            return Ok((tx.outbox().await?, true));
        }
        // A little more than a round: usually one entry per record (a record has a second only
        // while its first is in flight).
        let n = max.saturating_add(max / 4).saturating_add(16);
        let head = tx.outbox_head(after, n).await?;
        let whole = head.len() < n;
        Ok((head, whole))
    }

    /// The part of the outbox a round of `max` picks from: the `head` read first, when that
    /// holds `max` records to send (or is all of it), else all of the outbox. (Each round
    /// reading the whole outbox made a long one quadratic.) Always a run of neighbouring
    /// entries: no entry lies between two of them.
    async fn outbox_to_pick<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        max: usize,
        blocked: &HashSet<(String, String)>,
        (head, whole): (Vec<Entry>, bool),
    ) -> Result<Vec<Entry>> {
        if whole {
            return Ok(head);
        }
        let records: HashSet<(String, String)> = head
            .iter()
            .filter(|e| self.config.collections.contains_key(&e.c))
            .map(|e| (e.c.clone(), e.r.clone()))
            .filter(|rec| !blocked.contains(rec))
            .collect();
        if records.len() >= max {
            Ok(head)
        } else {
            tx.outbox().await
        }
    }

    /// Prefetches the rows (and, as `want` says, the pending entries) of the records of
    /// `entries`, for the collection most of them belong to (a round is usually about one).
    pub(super) async fn prefetch_records<'e, T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        entries: impl Iterator<Item = &'e Entry>,
        want: Want,
    ) -> Result<()> {
        let mut by_collection: std::collections::HashMap<&str, Vec<String>> = Default::default();
        // Only declared collections have a store to read.
        for e in entries.filter(|e| self.config.collections.contains_key(&e.c)) {
            by_collection
                .entry(e.c.as_str())
                .or_default()
                .push(e.r.clone());
        }
        let Some((c, ids)) = by_collection.into_iter().max_by_key(|(_, ids)| ids.len()) else {
            return Ok(());
        };
        let c = c.to_string();
        tx.prefetch(&c, &ids, want).await
    }

    /// `row` with every declared reference that still names a temporary id the target record
    /// has left (its create was acknowledged) moved to the record's id, stored as such. The ack
    /// rewrites references in the collections this store declares; this catches the others (a
    /// store opened without this collection synced the parent) and an old temporary id written
    /// after the ack.
    async fn follow_refs<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        cfg: &crate::core::config::CollectionConfig,
        key: &str,
        mut row: Row,
    ) -> Result<Row> {
        let mut moved = false;
        for (field, target) in &cfg.refs {
            let Some(Value::String(old)) = row.d.get(field) else {
                continue;
            };
            if !super::request::is_temp_id(old) || self.collection(target).is_err() {
                continue;
            }
            let (now, found) = tx.resolve(target, old).await?;
            let Some(found) = found.filter(|_| now != *old) else {
                continue;
            };
            let id = self.collection(target)?.id_of(&found.d, &now);
            row.d.insert(field.clone(), id);
            moved = true;
        }
        if moved {
            row.reindex(cfg);
            tx.put_row(&cfg.name, key, &row)?;
        }
        Ok(row)
    }

    /// The records held back by an open conflict and, when `rejected` asks for them, the
    /// records whose create is in the rejected list: both tables in one round trip.
    pub(crate) async fn held_back<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        rejected: bool,
    ) -> Result<(HashSet<(String, String)>, Vec<(String, String)>)> {
        let mut reads = vec![Read::All(Table::Conflicts)];
        if rejected {
            reads.push(Read::All(Table::Rejected));
        }
        let mut got = tx.t.read_many(&reads).await?.into_iter();
        let mut named = |create_only: bool| {
            let items = got.next().unwrap_or_default().into_iter();
            items
                .filter(move |(_, v)| {
                    !create_only || v.get("kind").and_then(Value::as_str) == Some("create")
                })
                .filter_map(|(_, v)| record_named_in(&v))
        };
        let blocked = named(false).collect();
        let creates = named(true).collect();
        Ok((blocked, creates))
    }
}
