//! What tests read back from a `MemServer`: records, versions, counters and the request log.

use serde_json::Value;

use super::{LogEntry, MemServer, Row, Stats};

impl MemServer {
    /// Live records of `c`, sorted by id (string order).
    pub fn records(&self, c: &str) -> Vec<Value> {
        let st = self.0.borrow();
        st.colls.get(c).map_or(Vec::new(), |coll| {
            coll.rows
                .values()
                .filter(|r| !r.deleted)
                .map(|r| r.body.clone())
                .collect()
        })
    }
    /// One live record.
    pub fn record(&self, c: &str, id: &str) -> Option<Value> {
        self.row(c, id).filter(|r| !r.deleted).map(|r| r.body)
    }
    /// The version of a record, live or deleted (a tombstone's version is one past its last).
    pub fn version(&self, c: &str, id: &str) -> Option<i64> {
        self.row(c, id).map(|r| r.version)
    }
    /// The Ferry-Changed-At stored with a record (its last write's).
    pub fn changed_at(&self, c: &str, id: &str) -> Option<i64> {
        self.row(c, id).map(|r| r.changed_at)
    }
    /// Whether `id` is a tombstone.
    pub fn is_deleted(&self, c: &str, id: &str) -> bool {
        self.row(c, id).is_some_and(|r| r.deleted)
    }
    fn row(&self, c: &str, id: &str) -> Option<Row> {
        self.0
            .borrow()
            .colls
            .get(c)
            .and_then(|coll| coll.rows.get(id).cloned())
    }
    /// The cursor a read would answer now.
    pub fn cursor(&self) -> String {
        self.0.borrow().seq.to_string()
    }
    pub fn stats(&self) -> Stats {
        self.0.borrow().stats.clone()
    }
    /// (method, url as sent, Idempotency-Key, status). Batch sub-requests have method
    /// `"$batch PUT"` and so on; status 0 means the client got a network error.
    pub fn log(&self) -> Vec<(String, String, Option<String>, u16)> {
        let st = self.0.borrow();
        st.log
            .iter()
            .map(|e| {
                let m = if e.in_batch {
                    format!("$batch {}", e.method)
                } else {
                    e.method.clone()
                };
                (m, e.url.clone(), e.idempotency_key.clone(), e.status)
            })
            .collect()
    }
    pub fn log_entries(&self) -> Vec<LogEntry> {
        self.0.borrow().log.clone()
    }
    /// The Idempotency-Key of every applied write, in order (a key twice = applied twice).
    pub fn applied_keys(&self) -> Vec<String> {
        self.0.borrow().applied_keys.clone()
    }
    /// Clears stats, log and applied keys.
    pub fn reset_stats(&self) {
        let mut st = self.0.borrow_mut();
        st.stats = Stats::default();
        st.log.clear();
        st.applied_keys.clear();
    }
}
