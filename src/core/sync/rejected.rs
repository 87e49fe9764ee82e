//! The rejected list: mutations the server refused for good, kept for the app to retry or drop.

use crate::core::clock::Env;
use crate::core::engine::{Change, Engine};
use crate::core::error::{Error, Result};
use crate::core::local::Op;
use crate::core::mutation::Kind;
use crate::core::record::Record;
use crate::core::storage::{Key, Storage, Table, Txn};

use super::report::RejectedItem;

impl<S: Storage, E: Env> Engine<S, E> {
    /// The rejected mutations, oldest first.
    pub async fn rejected(&self) -> Result<Vec<RejectedItem>> {
        let tx = self.begin(false).await?;
        let rows = tx.t.get_all(Table::Rejected).await?;
        rows.into_iter()
            .map(|(_, v)| Ok(serde_json::from_value::<RejectedItem>(v)?))
            .collect()
    }

    async fn take_rejected(&self, mutation_id: &str) -> Result<(u64, RejectedItem)> {
        let tx = self.begin(false).await?;
        for (k, v) in tx.t.get_all(Table::Rejected).await? {
            let item: RejectedItem = serde_json::from_value(v)?;
            if let (Key::Num(n), true) = (k, item.mutation_id == mutation_id) {
                return Ok((n, item));
            }
        }
        Err(Error::not_found(format!(
            "no rejected mutation {mutation_id:?}"
        )))
    }

    /// Drops a rejected mutation for good.
    pub async fn discard_rejected(&self, mutation_id: &str) -> Result<()> {
        let (n, _) = self.take_rejected(mutation_id).await?;
        let tx = self.begin(true).await?;
        tx.t.delete(Table::Rejected, &Key::Num(n))?;
        tx.commit().await
    }

    /// Makes a rejected mutation again, as a new local write (with a new mutation id, since the
    /// server may have stored its refusal under the old Idempotency-Key).
    pub async fn retry_rejected(&self, mutation_id: &str) -> Result<Vec<Change>> {
        let (n, item) = self.take_rejected(mutation_id).await?;
        let record = item.record.clone().unwrap_or_default();
        let op = match item.kind {
            Kind::Create => Op::Create(record),
            Kind::Update => {
                let patch: Record = item
                    .fields
                    .iter()
                    .filter_map(|f| Some((f.clone(), record.get(f)?.clone())))
                    .collect();
                Op::Update(item.record_id.clone(), patch)
            }
            Kind::Delete => Op::Delete(item.record_id.clone()),
        };
        let (_, changes) = self.write(&item.collection, vec![op]).await?;
        let tx = self.begin(true).await?;
        tx.t.delete(Table::Rejected, &Key::Num(n))?;
        tx.commit().await?;
        Ok(changes)
    }
}
