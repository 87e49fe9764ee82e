//! Typed access to a storage transaction: rows, outbox entries, aliases and the clock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::{random_id, Env, Hlc};
use super::error::{Error, Result};
use super::mutation::Entry;
use super::record::Row;
use super::storage::{delete_runs, utf16_order, Key, Read, Table, Txn, OUTBOX_BY_RECORD};

mod aliases;
pub(crate) mod alloc;
mod damaged;
mod deferred;
mod part;
mod rows;
pub(crate) use aliases::bucket_key;
use alloc::{SharedAlloc, BLOCK};
use deferred::Deferred;
use part::Part;

/// The persisted counters: which client this database is, the next outbox position, the clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockState {
    /// A random id of this database, the prefix of mutation ids and temporary ids.
    pub node: String,
    /// The last outbox position reserved (by some engine's block, see `tx/alloc.rs`).
    pub seq: u64,
    /// The last clock reading.
    pub hlc: Hlc,
}

/// The key of the clock state in the state table.
pub(crate) const CLOCK: &str = "clock";
/// Key in the `state` table of a mark that changes whenever a flush applies server answers to
/// records of collection `c`: a pull of `c` compares it before its read and before it applies
/// what it read.
pub(crate) fn answered_key(c: &str) -> Key {
    Key::Str(format!("answered:{c}"))
}

/// From this many records on, a prefetch reads each table as one range (a request per record
/// costs more than a few values not asked for).
pub(super) const RANGE_FROM: usize = 16;

/// What a [`Tx::prefetch`] reads besides the rows (and the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// The aliases of the ids (a local write may name a record by its old temporary id).
    pub aliases: bool,
    /// The pending entries of the records.
    pub entries: bool,
}

impl Want {
    /// Everything: what a local write looks at.
    pub const ALL: Want = Want {
        aliases: true,
        entries: true,
    };
}

/// What a write knows of the records of one collection it touches, read before it starts: rows,
/// aliases and pending entries by record key. A key that is absent here is read from storage;
/// writes through [`Tx`] keep what is here up to date.
#[derive(Default)]
struct Known {
    c: String,
    rows: HashMap<String, Option<Row>>,
    aliases: HashMap<String, Option<String>>,
    entries: HashMap<String, Vec<Entry>>,
    /// Every row key stored between the lowest and the highest id asked for, in IndexedDB's
    /// order, when one range read showed them all and no row was written since.
    row_keys: Option<Vec<String>>,
    /// Rows already deleted from storage by [`Tx::delete_rows_first`] that still read as they
    /// were until [`Tx::delete_row`] (or [`Tx::drop_row`]) removes them here too.
    gone: Vec<String>,
}

/// A transaction with typed helpers. Outbox positions come from the engine's block (`alloc`);
/// the clock is read and written only to reserve a new block, at most once per transaction.
pub struct Tx<T: Txn> {
    /// The raw transaction.
    pub t: T,
    alloc: SharedAlloc,
    clock: Option<ClockState>,
    /// The clock must be written back: it is new or a block was reserved. (A transaction that
    /// only deletes, say a never-sent record, writes nothing else, so it still works when the
    /// browser's quota is full and is how an app makes room.)
    clock_dirty: bool,
    /// The block this transaction reserved, `(node, next, end)`: the engine takes what is left of
    /// it once the reservation is committed.
    reserved: Option<(String, u64, u64)>,
    /// Positions taken from the engine's block when the app called (a write's place among the
    /// app's writes), used first by [`Tx::next_seq`].
    taken: VecDeque<(u64, String)>,
    known: RefCell<Option<Known>>,
    deferred: RefCell<Option<Deferred>>,
    /// Outbox entries read that could not be decoded (written by something else than Ferry):
    /// left out of what reads answer, for [`Tx::set_aside_damaged`].
    damaged: RefCell<Vec<(Key, Value)>>,
    /// The alias buckets read or changed (`tx/aliases.rs`), written at the commit.
    buckets: RefCell<aliases::Buckets>,
}

impl<T: Txn> Tx<T> {
    /// Wraps an open transaction of the engine whose positions are `alloc`.
    pub(crate) fn new(t: T, alloc: SharedAlloc) -> Self {
        Tx {
            t,
            alloc,
            clock: None,
            clock_dirty: false,
            reserved: None,
            taken: VecDeque::new(),
            known: RefCell::new(None),
            deferred: RefCell::new(None),
            damaged: RefCell::new(Vec::new()),
            buckets: RefCell::default(),
        }
    }

    /// Reads what writes to records `ids` of `c` will look at: their rows, and as `want` says
    /// their aliases and pending entries. One round trip, and a second one only
    /// for what the first showed is needed: the entries of records that have some, (for a
    /// few records) the aliases of ids without a row, and the alias buckets of temporary ids
    /// without a row. Until
    /// [`Tx::forget`], [`Tx::row`], [`Tx::alias`] and [`Tx::entries_for`] answer from it (what was
    /// not read still goes to storage), and writes through `Tx` keep it current. Writes that
    /// bypass `Tx` (`tx.t.put`) must not happen in between.
    pub async fn prefetch(&self, c: &str, ids: &[String], want: Want) -> Result<()> {
        let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        ids.sort_unstable_by(|a, b| utf16_order(a, b));
        ids.dedup();
        let mut known = Known {
            c: c.to_string(),
            ..Known::default()
        };
        for id in &ids {
            known.rows.insert(id.to_string(), None);
            if want.aliases {
                known.aliases.insert(id.to_string(), None);
            }
            if want.entries {
                known.entries.insert(id.to_string(), Vec::new());
            }
        }
        let ranged = ids.len() >= RANGE_FROM;
        // Few records: an alias matters only where there is no row (`resolve` looks at the row
        // first), so aliases are read after the rows, for the ids without one. Usually that is
        // none, and a write asks one request fewer.
        let parts: Vec<Part> = [
            Some(Part::Rows),
            (want.aliases && ranged).then_some(Part::Aliases),
            want.entries.then_some(Part::Entries),
        ]
        .into_iter()
        .flatten()
        .collect();
        // Many records: one range read per table, from the lowest id to the highest. Ids written
        // together are usually close (temporary ids sort in creation order), so the range holds
        // little else; whatever a capped range did not reach is read key by key after.
        let mut left: Vec<(Part, Vec<&str>)> = Vec::new();
        let first_pass: Vec<(Part, Vec<&str>)> = parts.iter().map(|p| (*p, ids.clone())).collect();
        let mut reads = Vec::new();
        for (part, want_ids) in &first_pass {
            if ranged {
                reads.push(part.range(c, want_ids));
            } else {
                reads.extend(want_ids.iter().map(|id| part.probe(c, id)));
            }
        }
        let mut answers = self.t.read_many(&reads).await?.into_iter();
        for (part, want_ids) in first_pass {
            if !ranged {
                let mut pending = Vec::new();
                for id in want_ids {
                    let got = answers.next().unwrap_or_default();
                    match part {
                        // The probe found an entry: read the record's entries after.
                        Part::Entries if !got.is_empty() => pending.push(id),
                        Part::Entries => {}
                        _ => {
                            part.take(&mut known, got)?;
                        }
                    }
                }
                if !pending.is_empty() {
                    left.push((Part::Entries, pending));
                }
                continue;
            }
            let got = answers.next().unwrap_or_default();
            let full = got.len() >= part.limit(want_ids.len());
            if part == Part::Rows && !full {
                let keys = got.iter().filter_map(|(k, _)| match k {
                    Key::Str(k) => Some(k.clone()),
                    _ => None,
                });
                known.row_keys = Some(keys.collect());
            }
            let found = part.take(&mut known, got)?;
            if full {
                // Capped: what it holds is known; the others may lie past where it stopped.
                // `found` is in the range's order, IndexedDB's, as `ids` is.
                let mut done: &[String] = &found;
                if part == Part::Entries {
                    // The last record's entries may have been cut: read them again.
                    if let Some((last, before)) = found.split_last() {
                        done = before;
                        if let Some(list) = known.entries.get_mut(last) {
                            list.clear();
                        }
                    }
                }
                let rest = want_ids
                    .into_iter()
                    .filter(|id| done.binary_search_by(|f| utf16_order(f, id)).is_err());
                left.push((part, rest.collect()));
            }
        }
        if want.aliases && !ranged {
            let mut rowless = Vec::new();
            for id in &ids {
                if let Some(None) = known.rows.get(*id) {
                    rowless.push(*id);
                } else {
                    known.aliases.remove(*id); // not read: asked of storage if ever needed
                }
            }
            if !rowless.is_empty() {
                left.push((Part::Aliases, rowless));
            }
        }
        // Ferry's temporary ids have their aliases in buckets (`tx/aliases.rs`), read in this
        // second round trip. An alias matters only where there is no row (`resolve` looks at
        // the row first); one not known here is asked of storage if ever needed.
        let asked: Vec<String> = known
            .aliases
            .keys()
            .filter(|id| matches!(known.rows.get(*id), Some(None)))
            .cloned()
            .collect();
        known.aliases.retain(|id, _| {
            bucket_key(c, id).is_none() || matches!(known.rows.get(id), Some(None))
        });
        let buckets = self.unread_buckets(asked.iter().map(|id| (c, id.as_str())));
        let mut reads: Vec<Read> = left
            .iter()
            .flat_map(|(part, ids)| ids.iter().map(|id| part.get(c, id)))
            .collect();
        reads.extend(buckets.iter().map(|k| Read::Get(Table::State, k.clone())));
        if !reads.is_empty() {
            let mut answers = self.t.read_many(&reads).await?.into_iter();
            for (part, ids) in &left {
                for _ in ids {
                    part.take(&mut known, answers.next().unwrap_or_default())?;
                }
            }
            for k in buckets {
                self.learn_bucket(k, answers.next());
            }
        }
        for list in known.entries.values_mut() {
            list.sort_unstable_by_key(|e| e.seq);
            list.dedup_by_key(|e| e.seq);
        }
        self.prefetch_buckets(&mut known, &asked);
        *self.known.borrow_mut() = Some(known);
        Ok(())
    }

    /// Drops what [`Tx::prefetch`] read: later reads go to storage again.
    pub fn forget(&mut self) {
        *self.known.borrow_mut() = None;
    }

    /// Reads (or, in a new database, creates) the clock state.
    async fn clock(&mut self, env: &impl Env) -> Result<&mut ClockState> {
        if self.clock.is_none() {
            let stored = self.t.get(Table::State, &Key::str(CLOCK)).await?;
            self.load_clock(stored, env).await?;
        }
        Ok(self.clock.as_mut().expect("set just above"))
    }

    /// Takes the stored clock `stored`. A new one is made where there is none (a new database)
    /// or it cannot be read (something else wrote it): with a new node id, so no mutation id or
    /// temporary id is made twice, and past every outbox position in use, so no write replaces
    /// an entry that is waiting.
    async fn load_clock(&mut self, stored: Option<Value>, env: &impl Env) -> Result<()> {
        let decoded = stored.and_then(|v| serde_json::from_value::<ClockState>(v).ok());
        self.clock_dirty |= decoded.is_none();
        let clock = match decoded {
            Some(c) => c,
            None => {
                let last = self
                    .t
                    .get_all(Table::Outbox)
                    .await?
                    .iter()
                    .filter_map(|(k, _)| match k {
                        Key::Num(n) => Some(*n),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                ClockState {
                    node: random_id(env, 10),
                    seq: last,
                    hlc: Hlc::default(),
                }
            }
        };
        self.clock = Some(clock);
        Ok(())
    }

    /// A clock reading for a change made now.
    pub fn now(&self, env: &impl Env) -> Hlc {
        self.alloc.borrow_mut().tick(env)
    }

    /// Positions the write took from the engine's block when the app called it, in order: the
    /// changes it makes are numbered from them first, so that they keep their place before
    /// writes called after it (a quick create takes its position when called, too).
    pub(crate) fn take_positions(&mut self, taken: impl IntoIterator<Item = (u64, String)>) {
        self.taken.extend(taken);
    }

    /// A new outbox position above `floor` (the last position of the record's pending changes),
    /// with the node id: from those taken when the write was called, from the engine's block,
    /// else from a block this transaction reserves.
    pub async fn next_seq(&mut self, env: &impl Env, floor: u64) -> Result<(u64, String)> {
        // One taken at or below `floor` is left unused (positions are 64-bit; gaps are fine).
        while let Some((seq, node)) = self.taken.pop_front() {
            if seq > floor {
                return Ok((seq, node));
            }
        }
        if let Some((node, next, end)) = self.reserved.as_mut() {
            if *next < *end && *next > floor {
                *next += 1;
                return Ok((*next - 1, node.clone()));
            }
        }
        if let Some(got) = self.alloc.borrow_mut().take(floor) {
            return Ok(got);
        }
        let hlc = self.alloc.borrow().hlc;
        let c = self.clock(env).await?;
        let damaged = || Error::storage("the stored outbox counter is damaged (at its maximum)");
        let start = c.seq.max(floor).checked_add(1).ok_or_else(damaged)?;
        let end = start.checked_add(BLOCK).ok_or_else(damaged)?;
        c.seq = end - 1;
        c.hlc = c.hlc.max(hlc);
        let (node, stored_hlc) = (c.node.clone(), c.hlc);
        {
            let mut a = self.alloc.borrow_mut();
            a.hlc = a.hlc.max(stored_hlc);
        }
        self.clock_dirty = true;
        self.reserved = Some((node.clone(), start + 1, end));
        Ok((start, node))
    }

    /// The row of record `key`, if present.
    pub async fn row(&self, c: &str, key: &str) -> Result<Option<Row>> {
        if let Some(known) = self.known.borrow().as_ref().filter(|k| k.c == c) {
            if let Some(row) = known.rows.get(key) {
                return Ok(row.clone());
            }
        }
        match self.t.get(Table::Records(c), &Key::str(key)).await? {
            Some(v) => Row::from_stored(v),
            None => Ok(None),
        }
    }

    /// The current key of record `id` (following a temporary id to its server id) and its row.
    pub async fn resolve(&self, c: &str, id: &str) -> Result<(String, Option<Row>)> {
        if let Some(row) = self.row(c, id).await? {
            return Ok((id.to_string(), Some(row)));
        }
        // A record may have changed id more than once (a temporary id, then a server id, then a
        // new one when it was created again); follow the chain, a few steps at most.
        let mut key = id.to_string();
        for _ in 0..8 {
            match self.alias(c, &key).await? {
                Some(next) => {
                    if let Some(row) = self.row(c, &next).await? {
                        return Ok((next, Some(row)));
                    }
                    key = next;
                }
                None => break,
            }
        }
        Ok((id.to_string(), None))
    }

    /// Stores a row.
    pub fn put_row(&self, c: &str, key: &str, row: &Row) -> Result<()> {
        self.t.put_encoded(Table::Records(c), &Key::str(key), row)?;
        self.know_row(c, key, Some(row));
        Ok(())
    }

    /// The collection whose records the current prefetch read.
    pub fn prefetched(&self) -> Option<String> {
        self.known.borrow().as_ref().map(|k| k.c.clone())
    }

    /// Deletes from storage now the rows of `keys` (of `c`) that this transaction is about to
    /// remove with [`Tx::delete_row`], each run of neighbouring rows as one range delete where
    /// the prefetch saw every row in between (a sync round moves a batch of records from their
    /// temporary ids, which sort together, to their server ids). Until `delete_row`, reads
    /// through `Tx` still see them; a row written meanwhile is deleted again by `delete_row`.
    pub fn delete_rows_first(&self, c: &str, keys: &[&str]) -> Result<()> {
        let mut known = self.known.borrow_mut();
        let Some(known) = known.as_mut().filter(|k| k.c == c) else {
            return Ok(());
        };
        let Some(present) = known.row_keys.take() else {
            return Ok(());
        };
        let moving = |k: &String| keys.contains(&k.as_str());
        known
            .gone
            .extend(present.iter().filter(|k| moving(k)).cloned());
        let present: Vec<Key> = present.into_iter().map(Key::Str).collect();
        delete_runs(
            &self.t,
            Table::Records(c),
            &present,
            |k| matches!(k, Key::Str(k) if moving(k)),
        )
    }

    /// Row `key` of `c` as a read outside the prefetch found it: later reads through `Tx` answer
    /// from it, as for the prefetched rows (unless the prefetch read it, or it was written since).
    pub fn learn_row(&self, c: &str, key: &str, row: Option<Row>) {
        if let Some(known) = self.known.borrow_mut().as_mut().filter(|k| k.c == c) {
            known.rows.entry(key.to_string()).or_insert(row);
        }
    }

    /// What was just written is known for certain, whether or not the prefetch read that key
    /// (an ack moves a row to its server id, which the next step reads back).
    fn know_row(&self, c: &str, key: &str, row: Option<&Row>) {
        if let Some(known) = self.known.borrow_mut().as_mut().filter(|k| k.c == c) {
            known.rows.insert(key.to_string(), row.cloned());
            if row.is_some() {
                known.gone.retain(|g| g != key); // stored again: a delete must reach storage
            }
            // The keys in storage are no longer the ones the prefetch saw.
            known.row_keys = None;
        }
    }

    /// The outbox entries of one record, oldest first.
    pub async fn entries_for(&self, c: &str, r: &str) -> Result<Vec<Entry>> {
        if let Some(known) = self.known.borrow().as_ref().filter(|k| k.c == c) {
            if let Some(list) = known.entries.get(r) {
                return Ok(list.clone());
            }
        }
        let key = Value::Array(vec![c.into(), r.into()]);
        let rows = self
            .t
            .get_by_index(Table::Outbox, OUTBOX_BY_RECORD, &key)
            .await?;
        let mut out = self.entries(rows)?;
        out.sort_unstable_by_key(|e| e.seq);
        Ok(out)
    }

    /// The whole outbox, in order.
    pub async fn outbox(&self) -> Result<Vec<Entry>> {
        let rows = self.t.get_all(Table::Outbox).await?;
        self.entries(rows)
    }

    /// The first `n` entries of the outbox (after position `after`, when given), in order
    /// (fewer when some wait to be deleted).
    pub async fn outbox_head(&self, after: Option<u64>, n: usize) -> Result<Vec<Entry>> {
        let rows = match after {
            None => self.t.get_first(Table::Outbox, n).await?,
            Some(seq) => {
                let (lo, hi) = (Key::Num(seq.saturating_add(1)), Key::Num(u64::MAX));
                self.t.get_range(Table::Outbox, None, &lo, &hi, n).await?
            }
        };
        self.entries(rows)
    }

    /// Stores an entry under its position.
    pub fn put_entry(&self, e: &Entry) -> Result<()> {
        if let Some(d) = self.deferred.borrow_mut().as_mut() {
            d.deleted.retain(|s| *s != e.seq);
        }
        self.t.put_encoded(Table::Outbox, &Key::Num(e.seq), e)?;
        // An entry keeps its record while a prefetch is current (ids are rewritten only by sync).
        if let Some(known) = self.known.borrow_mut().as_mut().filter(|k| k.c == e.c) {
            if let Some(list) = known.entries.get_mut(&e.r) {
                list.retain(|x| x.seq != e.seq);
                list.push(e.clone());
                list.sort_unstable_by_key(|x| x.seq);
            }
        }
        Ok(())
    }

    /// Removes entry `e` (the one at its position).
    pub fn delete_entry(&self, e: &Entry) -> Result<()> {
        let seq = e.seq;
        match self.deferred.borrow_mut().as_mut() {
            Some(d) => {
                if !d.deleted.contains(&seq) {
                    d.deleted.push(seq);
                }
            }
            None => self.t.delete(Table::Outbox, &Key::Num(seq))?,
        }
        if let Some(known) = self.known.borrow_mut().as_mut() {
            // Under its record, unless a rewrite of ids moved it: then wherever it is.
            let here = known.entries.get_mut(&e.r).filter(|_| known.c == e.c);
            match here.and_then(|l| Some((l.iter().position(|x| x.seq == seq)?, l))) {
                Some((i, list)) => {
                    list.remove(i);
                }
                None => known
                    .entries
                    .values_mut()
                    .for_each(|list| list.retain(|x| x.seq != seq)),
            }
        }
        Ok(())
    }

    /// Writes the clock back (if a block was reserved) and commits; the engine then takes what
    /// is left of the block.
    pub async fn commit(self) -> Result<()> {
        self.write_buckets().await?;
        self.delete_deferred()?;
        let clock = self.clock.filter(|_| self.clock_dirty);
        if let Some(c) = &clock {
            self.t.put_encoded(Table::State, &Key::str(CLOCK), c)?;
        }
        self.t.commit().await?;
        if let (Some((node, next, end)), Some(c)) = (self.reserved, clock) {
            self.alloc.borrow_mut().adopt(node, next, end, c.hlc);
        }
        Ok(())
    }
}

/// An outbox entry read back. It is acknowledged (deleted) by its position, so an entry whose
/// recorded position disagrees with the key it sits under (damaged data) takes the key's: it can
/// then still be sent and drained instead of coming back for ever.
fn decode_entry((k, v): (Key, Value)) -> Result<Entry> {
    let mut e: Entry = serde_json::from_value(v)?;
    match k {
        Key::Num(n) => {
            e.seq = n;
            Ok(e)
        }
        other => Err(Error::storage(format!(
            "the outbox is damaged: an entry is stored under {other:?}"
        ))),
    }
}
