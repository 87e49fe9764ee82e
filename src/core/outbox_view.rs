//! `db.outbox()`: the pending mutations as the app sees them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::clock::Env;
use super::engine::Engine;
use super::error::Result;
use super::mutation::Kind;
use super::record::{Record, Row};
use super::storage::Storage;
use super::tx::Want;

/// One pending mutation as the app sees it in `db.outbox()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxItem {
    /// The mutation id (its Idempotency-Key).
    pub mutation_id: String,
    /// The collection.
    pub collection: String,
    /// The record's id.
    pub record_id: String,
    /// create, update or delete.
    pub kind: Kind,
    /// For a create the record; for an update the changed fields with their current values
    /// (`null` for a removed field); for a delete nothing.
    pub changes: Record,
    /// The server's record the change was made on, when the server has seen the record.
    pub base: Option<Record>,
    /// When the mutation was first made (ms since epoch, from the hybrid logical clock).
    pub made_at: u64,
    /// When it last changed.
    pub changed_at: u64,
    /// How many times it was sent.
    pub attempts: u32,
    /// Whether its request is fixed: picked by a sync run (sent, or about to be) and awaiting
    /// its answer.
    pub in_flight: bool,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it will be tried again (ms since epoch).
    pub retry_at: Option<f64>,
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// The pending mutations, in the order they will be sent.
    pub async fn outbox(&self) -> Result<Vec<OutboxItem>> {
        let mut tx = self.begin(false).await?;
        let entries = tx.outbox().await?;
        // Every row the list shows, read a collection at a time with all its requests out at
        // once (a range read for many): one awaited read per entry took seconds for 10,000.
        let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for e in &entries {
            ids.entry(e.c.as_str()).or_default().push(e.r.clone());
        }
        let mut rows: HashMap<(&str, &str), Row> = HashMap::new();
        for (c, keys) in &ids {
            let rows_only = Want {
                aliases: false,
                entries: false,
            };
            match tx.prefetch(c, keys, rows_only).await {
                // An entry of a collection that has no store at all (damaged data) shows no
                // changes; one that this configuration leaves out has its store still.
                Err(_) if self.collection(c).is_err() => continue,
                read => read?,
            }
            for key in keys {
                if let Some(row) = tx.row(c, key).await? {
                    rows.insert((c, key), row);
                }
            }
            tx.forget();
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            // A record may have several entries (a create in flight, an update after it).
            let row = rows.get(&(e.c.as_str(), e.r.as_str()));
            // Sent already: what goes (again) is the frozen body, whatever the record became.
            let sent = e.sent.as_ref().and_then(|s| s.body.as_ref());
            let source = match sent {
                Some(Value::Object(body)) => {
                    let mut body = body.clone();
                    if let Ok(cfg) = self.collection(&e.c) {
                        body.remove(&cfg.client_id_property);
                    }
                    Some(body)
                }
                _ => row.map(|r| r.d.clone()),
            };
            let changes = match (&e.kind, source) {
                (Kind::Create, Some(d)) => d,
                (Kind::Update, Some(d)) => e
                    .fields
                    .iter()
                    .map(|f| (f.clone(), d.get(f).cloned().unwrap_or(Value::Null)))
                    .collect(),
                _ => Record::new(),
            };
            let base = match e.kind {
                Kind::Delete => e.base.clone(),
                _ => row.and_then(|r| r.b.clone()),
            };
            out.push(OutboxItem {
                mutation_id: e.id.clone(),
                collection: e.c.clone(),
                record_id: e.r.clone(),
                kind: e.kind,
                changes,
                base,
                made_at: e.made.ms,
                changed_at: e.at.ms,
                attempts: e.attempts,
                in_flight: e.sent.is_some(),
                error: e.error.clone(),
                retry_at: e.retry_at,
            });
        }
        Ok(out)
    }
}
