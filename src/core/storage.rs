//! The storage contract: a few tables of JSON values, transactions that commit all their writes or
//! none, and equality lookups on declared indexes. IndexedDB implements it in the browser
//! (`src/web/idb.rs`), [`MemoryStorage`](super::memory::MemoryStorage) natively, and one contract
//! test suite runs against both.
//!
//! A transaction is only ever awaited on its own requests: the engine reads, computes synchronously,
//! writes, and commits. Nothing else (no fetch, no timer) happens while one is open, because an
//! IndexedDB transaction commits by itself as soon as it has no request pending.

#![allow(async_fn_in_trait)] // single-threaded (wasm) use only: no Send bounds wanted

use serde_json::Value;

use super::error::{Error, Result};

/// The tables of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table<'a> {
    /// The rows of one collection, keyed by record id ([`Key::Str`]).
    Records(&'a str),
    /// Pending mutations, keyed by sequence number ([`Key::Num`]).
    Outbox,
    /// Small named values: the clock, sync cursors, alias buckets ([`Key::Str`]).
    State,
    /// Ids that became other ids ([`Key::Pair`] of collection and old id): an id the app chose
    /// that the server replaced, a server id that changed, and temporary ids whose alias was
    /// stored before Ferry kept theirs in buckets in `State` (`tx/aliases.rs`).
    Aliases,
    /// Mutations the server refused for good, keyed by sequence number.
    Rejected,
    /// Conflicts waiting for a decision, keyed by sequence number.
    Conflicts,
}

/// A key. Kinds order as IndexedDB orders them: numbers, then strings, then arrays.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A sequence number.
    Num(u64),
    /// A string (record ids, state names).
    Str(String),
    /// A pair (collection and id).
    Pair(String, String),
}

impl Key {
    /// A string key.
    pub fn str(s: impl Into<String>) -> Key {
        Key::Str(s.into())
    }

    /// The key an index holds for `v`, when it is one of the kinds [`Key`] has.
    pub fn of_value(v: &Value) -> Option<Key> {
        match v {
            Value::Number(n) => n.as_u64().map(Key::Num),
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::Array(a) => match &a[..] {
                [Value::String(c), Value::String(r)] => Some(Key::Pair(c.clone(), r.clone())),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Two strings in IndexedDB's order: by UTF-16 code units (which differs from `str`'s order, by
/// UTF-8 bytes, past U+FFFF).
pub fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// How IndexedDB orders two keys: numbers, then strings ([`utf16_order`]), then arrays. A range
/// read's bounds must be in this order, or IndexedDB refuses the range.
pub fn idb_order(a: &Key, b: &Key) -> std::cmp::Ordering {
    let utf16 = utf16_order;
    match (a, b) {
        (Key::Num(x), Key::Num(y)) => x.cmp(y),
        (Key::Str(x), Key::Str(y)) => utf16(x, y),
        (Key::Pair(x1, x2), Key::Pair(y1, y2)) => utf16(x1, y1).then_with(|| utf16(x2, y2)),
        _ => a.cmp(b), // different kinds: the derived order ranks them as IndexedDB does
    }
}

/// The index of the outbox by record: its key is `[collection, record id]`.
pub const OUTBOX_BY_RECORD: &str = "record";

/// The name of the index of a records table on `field`; rows keep index keys under `ix`.
pub fn field_index(field: &str) -> String {
    format!("{FIELD_INDEX_PREFIX}{field}")
}

/// What the name of a field's index starts with ([`field_index`]).
pub const FIELD_INDEX_PREFIX: &str = "ix.";

/// The value an index named `index` sees in `row`: a dotted path, or the outbox's record pair.
pub fn index_value<'v>(index: &str, row: &'v Value) -> Option<Value> {
    if index == OUTBOX_BY_RECORD {
        let c = row.get("c")?.as_str()?;
        let r = row.get("r")?.as_str()?;
        return Some(Value::Array(vec![c.into(), r.into()]));
    }
    let mut cur: &'v Value = row;
    for part in index.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur.clone())
}

/// What [`Txn::add_unless_found`] did.
pub enum Checked<T> {
    /// The reads found nothing and every add wrote: committed.
    Committed,
    /// The reads found nothing, but an add found its key taken: the transaction is gone and
    /// nothing of it was written. For each add, whether its key was taken.
    Taken(Vec<bool>),
    /// A read found something, or an add found its key taken before the commit went out: the
    /// transaction, still open, with the reads' answers and, for each add, whether it wrote.
    Open(T, Vec<Vec<(Key, Value)>>, Vec<bool>),
}

/// One read of [`Txn::read_many`].
#[derive(Debug, Clone, PartialEq)]
pub enum Read<'a> {
    /// The value under a key: zero or one entry.
    Get(Table<'a>, Key),
    /// The entries whose index equals a value, as [`Txn::get_by_index`].
    Index(Table<'a>, &'a str, Value),
    /// Whether any entry's index equals a value: the primary key of the first one (with a null
    /// value), or nothing. In Chromium this `getKey` costs a fraction of an index `getAll`, so a
    /// write asks it first and reads the entries only when there are some.
    FirstKey(Table<'a>, &'a str, Value),
    /// Every entry of a table, as [`Txn::get_all`].
    All(Table<'a>),
    /// The first entries (at most `limit`) whose key, or key in `index`, lies between two keys,
    /// as [`Txn::get_range`].
    Range {
        /// The table.
        table: Table<'a>,
        /// The index, or `None` for the table's own keys.
        index: Option<&'a str>,
        /// The lowest key, included.
        lo: Key,
        /// The highest key, included.
        hi: Key,
        /// At most this many entries.
        limit: usize,
    },
}

/// One open transaction. Reads are async (they are IndexedDB requests); writes are queued at
/// once and only take effect if [`Txn::commit`] succeeds. Dropping it uncommitted rolls back.
pub trait Txn {
    /// The value under `key`, if any.
    async fn get(&self, table: Table<'_>, key: &Key) -> Result<Option<Value>>;
    /// Every entry, in key order.
    async fn get_all(&self, table: Table<'_>) -> Result<Vec<(Key, Value)>>;
    /// The entries whose index `index` equals `value`, in key order.
    async fn get_by_index(
        &self,
        table: Table<'_>,
        index: &str,
        value: &Value,
    ) -> Result<Vec<(Key, Value)>>;
    /// Several reads, answered in order. The default awaits them one by one; IndexedDB issues
    /// every request before awaiting the first, so a write that must look at many records pays
    /// one round trip through the event loop instead of one per read.
    async fn read_many(&self, reads: &[Read<'_>]) -> Result<Vec<Vec<(Key, Value)>>> {
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            out.push(match read {
                Read::Get(t, k) => self
                    .get(*t, k)
                    .await?
                    .map(|v| vec![(k.clone(), v)])
                    .unwrap_or_default(),
                Read::Index(t, ix, v) => self.get_by_index(*t, ix, v).await?,
                Read::FirstKey(t, ix, v) => {
                    let first = self.get_by_index(*t, ix, v).await?.into_iter().next();
                    first
                        .map(|(k, _)| vec![(k, Value::Null)])
                        .unwrap_or_default()
                }
                Read::All(t) => self.get_all(*t).await?,
                Read::Range {
                    table,
                    index,
                    lo,
                    hi,
                    limit,
                } => self.get_range(*table, *index, lo, hi, *limit).await?,
            });
        }
        Ok(out)
    }
    /// Issues `reads`, then `adds`, then `writes` (a put, or a delete when the value is `None`).
    /// Answers the reads as the transaction stood before any of them, and for each add whether
    /// it wrote: an add writes only where its key is free, and a taken key fails that add alone,
    /// not the transaction. IndexedDB issues them all before awaiting any answer, so a write
    /// that only checks its assumptions waits for no answer before writing, and an add checks a
    /// key is free without a read of its own.
    async fn read_then_write(
        &self,
        reads: &[Read<'_>],
        adds: &[(Table<'_>, Key, Value)],
        writes: &[(Table<'_>, Key, Option<Value>)],
    ) -> Result<(Vec<Vec<(Key, Value)>>, Vec<bool>)> {
        let out = self.read_many(reads).await?;
        let mut added = Vec::with_capacity(adds.len());
        for (table, key, v) in adds {
            let free = self.get(*table, key).await?.is_none();
            if free {
                self.put(*table, key, v)?;
            }
            added.push(free);
        }
        write_each(self, writes)?;
        Ok((out, added))
    }
    /// Issues `reads`, then `adds`, as [`Txn::read_then_write`] does, for a write that hopes its
    /// reads find nothing. When they find nothing, it commits at once, without waiting for the
    /// adds' answers: the commit needs no more than the reads, and every wait for an answer
    /// before the commit is a round trip to IndexedDB's backend and back. An add that then finds
    /// its key taken aborts the transaction ([`Checked::Taken`]: nothing is written). When a read
    /// finds something (or an add already failed), the transaction is handed back open with the
    /// answers, as `read_then_write` answers them. The default waits for every answer first
    /// ([`add_unless_found_answered`]).
    async fn add_unless_found(
        self,
        reads: &[Read<'_>],
        adds: &[(Table<'_>, Key, Value)],
    ) -> Result<Checked<Self>>
    where
        Self: Sized,
    {
        add_unless_found_answered(self, reads, adds).await
    }
    /// Adds `adds`, for keys the engine has just made, which nothing else can hold: IndexedDB
    /// issues them with the commit and waits for none of their answers, so the commit follows
    /// at once. Where a key is taken all the same, the call fails here (nothing of it written)
    /// or IndexedDB aborts the whole transaction and its commit fails: on an error the caller
    /// drops the transaction.
    async fn add_new(&self, adds: &[(Table<'_>, Key, Value)]) -> Result<()> {
        for (table, key, _) in adds {
            if self.get(*table, key).await?.is_some() {
                return Err(Error::storage(format!(
                    "an add found its key {key:?} taken in {table:?}; nothing was written"
                )));
            }
        }
        for (table, key, v) in adds {
            self.put(*table, key, v)?;
        }
        Ok(())
    }
    /// The first `limit` entries whose key (or, with `index`, whose key in that index) lies in
    /// `lo..=hi` in [`idb_order`], ordered by that key and then by primary key, as IndexedDB's
    /// `getAll(IDBKeyRange.bound(lo, hi), limit)` answers. Nothing when `lo` is above `hi`.
    /// The default reads the whole table; IndexedDB asks for the range.
    async fn get_range(
        &self,
        table: Table<'_>,
        index: Option<&str>,
        lo: &Key,
        hi: &Key,
        limit: usize,
    ) -> Result<Vec<(Key, Value)>> {
        use std::cmp::Ordering::{Greater, Less};
        let mut hits: Vec<(Key, Key, Value)> = self
            .get_all(table)
            .await?
            .into_iter()
            .filter_map(|(k, v)| {
                let at = match index {
                    None => k.clone(),
                    Some(ix) => Key::of_value(&index_value(ix, &v)?)?,
                };
                let inside = idb_order(&at, lo) != Less && idb_order(&at, hi) != Greater;
                inside.then_some((at, k, v))
            })
            .collect();
        hits.sort_by(|a, b| idb_order(&a.0, &b.0).then_with(|| idb_order(&a.1, &b.1)));
        hits.truncate(limit);
        Ok(hits.into_iter().map(|(_, k, v)| (k, v)).collect())
    }
    /// The first `n` entries, in key order.
    async fn get_first(&self, table: Table<'_>, n: usize) -> Result<Vec<(Key, Value)>> {
        let mut all = self.get_all(table).await?;
        all.truncate(n);
        Ok(all)
    }
    /// How many entries a table holds.
    async fn count(&self, table: Table<'_>) -> Result<u64>;
    /// How many entries each table holds; IndexedDB asks for all of them in one round trip.
    async fn count_many(&self, tables: &[Table<'_>]) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            out.push(self.count(*t).await?);
        }
        Ok(out)
    }
    /// Stores `value` under `key`, replacing what was there.
    fn put(&self, table: Table<'_>, key: &Key, value: &Value) -> Result<()>;
    /// [`Txn::put`] of a typed value (a row, an entry). IndexedDB writes its JSON text at once,
    /// without building a `Value` tree to encode and drop.
    fn put_encoded<V: serde::Serialize>(
        &self,
        table: Table<'_>,
        key: &Key,
        value: &V,
    ) -> Result<()> {
        let v = serde_json::to_value(value)
            .map_err(|e| super::error::Error::storage(format!("unencodable value: {e}")))?;
        self.put(table, key, &v)
    }
    /// Removes `key` (a missing key is not an error).
    fn delete(&self, table: Table<'_>, key: &Key) -> Result<()>;
    /// Removes every key in `lo..=hi` ([`idb_order`]) in one request; nothing when `lo` is
    /// above `hi`.
    fn delete_range(&self, table: Table<'_>, lo: &Key, hi: &Key) -> Result<()>;
    /// Makes every write of this transaction durable at once, or none of them.
    async fn commit(self) -> Result<()>;
}

/// [`Txn::add_unless_found`] for a backend whose answers are all in before it commits: an add
/// that found its key taken while the reads found nothing is [`Checked::Taken`] (the transaction
/// dropped uncommitted), as IndexedDB says when the add's answer comes after the commit went out.
pub async fn add_unless_found_answered<T: Txn>(
    t: T,
    reads: &[Read<'_>],
    adds: &[(Table<'_>, Key, Value)],
) -> Result<Checked<T>> {
    let (got, added) = t.read_then_write(reads, adds, &[]).await?;
    if got.iter().any(|g| !g.is_empty()) {
        return Ok(Checked::Open(t, got, added));
    }
    if added.contains(&false) {
        return Ok(Checked::Taken(added.iter().map(|wrote| !wrote).collect()));
    }
    t.commit().await?;
    Ok(Checked::Committed)
}

/// Deletes the keys of `present` (every key of `table` between its first and its last, in
/// IndexedDB's order) that `doomed` picks: each run of neighbours as one range delete.
pub fn delete_runs<T: Txn + ?Sized>(
    t: &T,
    table: Table<'_>,
    present: &[Key],
    doomed: impl Fn(&Key) -> bool,
) -> Result<()> {
    let mut run: Option<(&Key, &Key)> = None;
    for key in present.iter().map(Some).chain([None]) {
        match key.filter(|k| doomed(k)) {
            Some(k) => run = Some((run.map_or(k, |(lo, _)| lo), k)),
            None => match run.take() {
                Some((lo, hi)) if lo == hi => t.delete(table, lo)?,
                Some((lo, hi)) => t.delete_range(table, lo, hi)?,
                None => {}
            },
        }
    }
    Ok(())
}

/// Queues `writes` in `t`: a put, or a delete when the value is `None`.
pub fn write_each<T: Txn + ?Sized>(
    t: &T,
    writes: &[(Table<'_>, Key, Option<Value>)],
) -> Result<()> {
    for (table, key, v) in writes {
        match v {
            Some(v) => t.put(*table, key, v)?,
            None => t.delete(*table, key)?,
        }
    }
    Ok(())
}

/// A storage backend that opens transactions over every table.
pub trait Storage {
    /// Its transaction type.
    type Txn<'a>: Txn
    where
        Self: 'a;
    /// Opens a transaction; `write` asks for a read-write one.
    async fn begin(&self, write: bool) -> Result<Self::Txn<'_>>;
    /// Whether the storage itself gives rows that were there before an index was added their
    /// key for it (IndexedDB does, in the upgrade that creates the index). When not, the engine
    /// does it at open, remembering which index sets it has done.
    fn reindexes_on_upgrade(&self) -> bool {
        false
    }
    /// Opens a transaction over `scope` only. IndexedDB starts a narrow transaction sooner
    /// and runs it beside others on other stores; touching a table outside it is an error.
    async fn begin_in(&self, write: bool, scope: &[Table<'_>]) -> Result<Self::Txn<'_>>;
    /// Keeps a short note beside the database, outside its transactions: written at once and
    /// for next to nothing, kept across reloads and seen by every tab, but best effort (the
    /// browser's is the page's `localStorage`, which a worker lacks). `None` removes it.
    fn set_note(&self, _key: &str, _value: Option<&str>) {}
    /// The note kept under `key`, if any.
    fn note(&self, _key: &str) -> Option<String> {
        None
    }
}
