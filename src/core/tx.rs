//! Typed access to a storage transaction: rows, outbox entries, aliases and the clock.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::{random_id, Env, Hlc};
use super::error::Result;
use super::mutation::Entry;
use super::record::Row;
use super::storage::{Key, Table, Txn, OUTBOX_BY_RECORD};

/// The persisted counters: which client this database is, the next outbox position, the clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockState {
    /// A random id of this database, the prefix of mutation ids and temporary ids.
    pub node: String,
    /// The last outbox position handed out.
    pub seq: u64,
    /// The last clock reading.
    pub hlc: Hlc,
}

const CLOCK: &str = "clock";

/// A transaction with typed helpers. The clock is read once, on first use, and written back at
/// commit, so every write in a transaction shares one read and one write of it.
pub struct Tx<T: Txn> {
    /// The raw transaction.
    pub t: T,
    clock: Option<ClockState>,
}

impl<T: Txn> Tx<T> {
    /// Wraps an open transaction.
    pub fn new(t: T) -> Self {
        Tx { t, clock: None }
    }

    /// Reads (or, in a new database, creates) the clock state.
    pub async fn clock(&mut self, env: &impl Env) -> Result<&mut ClockState> {
        if self.clock.is_none() {
            let stored = self.t.get(Table::State, &Key::str(CLOCK)).await?;
            let state = match stored {
                Some(v) => serde_json::from_value(v)?,
                None => ClockState {
                    node: random_id(env, 10),
                    seq: 0,
                    hlc: Hlc::default(),
                },
            };
            self.clock = Some(state);
        }
        Ok(self.clock.as_mut().expect("set just above"))
    }

    /// A new outbox position and clock reading, with the node id.
    pub async fn tick(&mut self, env: &impl Env) -> Result<(u64, Hlc, String)> {
        let now = env.now_ms().max(0.0) as u64;
        let c = self.clock(env).await?;
        c.seq += 1;
        c.hlc = c.hlc.tick(now);
        Ok((c.seq, c.hlc, c.node.clone()))
    }

    /// The row of record `key`, if present.
    pub async fn row(&self, c: &str, key: &str) -> Result<Option<Row>> {
        match self.t.get(Table::Records(c), &Key::str(key)).await? {
            Some(v) => Ok(Some(Row::from_value(v)?)),
            None => Ok(None),
        }
    }

    /// The server id a temporary id became, if it did.
    pub async fn alias(&self, c: &str, tmp: &str) -> Result<Option<String>> {
        let v = self
            .t
            .get(Table::Aliases, &Key::Pair(c.into(), tmp.into()))
            .await?;
        Ok(v.and_then(|v| v.as_str().map(str::to_string)))
    }

    /// The current key of record `id` (following a temporary id to its server id) and its row.
    pub async fn resolve(&self, c: &str, id: &str) -> Result<(String, Option<Row>)> {
        if let Some(row) = self.row(c, id).await? {
            return Ok((id.to_string(), Some(row)));
        }
        match self.alias(c, id).await? {
            Some(real) => {
                let row = self.row(c, &real).await?;
                Ok((real, row))
            }
            None => Ok((id.to_string(), None)),
        }
    }

    /// Stores a row.
    pub fn put_row(&self, c: &str, key: &str, row: &Row) -> Result<()> {
        self.t
            .put(Table::Records(c), &Key::str(key), &row.to_value())
    }

    /// Removes a row.
    pub fn delete_row(&self, c: &str, key: &str) -> Result<()> {
        self.t.delete(Table::Records(c), &Key::str(key))
    }

    /// The outbox entries of one record, oldest first.
    pub async fn entries_for(&self, c: &str, r: &str) -> Result<Vec<Entry>> {
        let key = Value::Array(vec![c.into(), r.into()]);
        let rows = self
            .t
            .get_by_index(Table::Outbox, OUTBOX_BY_RECORD, &key)
            .await?;
        let mut out = rows
            .into_iter()
            .map(|(_, v)| serde_json::from_value(v))
            .collect::<Result<Vec<Entry>, _>>()?;
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    /// The whole outbox, in order.
    pub async fn outbox(&self) -> Result<Vec<Entry>> {
        let rows = self.t.get_all(Table::Outbox).await?;
        Ok(rows
            .into_iter()
            .map(|(_, v)| serde_json::from_value(v))
            .collect::<Result<Vec<Entry>, _>>()?)
    }

    /// Stores an entry under its position.
    pub fn put_entry(&self, e: &Entry) -> Result<()> {
        let v = serde_json::to_value(e).expect("an entry is always valid JSON");
        self.t.put(Table::Outbox, &Key::Num(e.seq), &v)
    }

    /// Removes the entry at `seq`.
    pub fn delete_entry(&self, seq: u64) -> Result<()> {
        self.t.delete(Table::Outbox, &Key::Num(seq))
    }

    /// Writes the clock back (if it was used) and commits.
    pub async fn commit(self) -> Result<()> {
        if let Some(c) = &self.clock {
            let v = serde_json::to_value(c).expect("the clock is always valid JSON");
            self.t.put(Table::State, &Key::str(CLOCK), &v)?;
        }
        self.t.commit().await
    }
}
