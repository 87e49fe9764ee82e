//! The rejected list: mutations the server refused for good, kept for the app to retry or drop.

use crate::core::clock::Env;
use crate::core::engine::{Change, Engine};
use crate::core::error::{Error, Result};
use crate::core::local::Op;
use crate::core::mutation::Kind;
use crate::core::record::Record;
use crate::core::storage::{Key, Storage, Table, Txn};
use crate::core::tx::Tx;

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

    /// How many mutations wait in the outbox and on the rejected list, read together.
    pub async fn counts(&self) -> Result<(u64, u64)> {
        let tx = self.begin(false).await?;
        Ok((
            tx.t.count(Table::Outbox).await?,
            tx.t.count(Table::Rejected).await?,
        ))
    }

    /// The rejected item with `mutation_id` and its key, read inside `tx`.
    async fn find_rejected<T: Txn>(
        &self,
        tx: &Tx<T>,
        mutation_id: &str,
    ) -> Result<(Key, RejectedItem)> {
        for (k, v) in tx.t.get_all(Table::Rejected).await? {
            let item: RejectedItem = serde_json::from_value(v)?;
            if item.mutation_id == mutation_id {
                return Ok((k, item));
            }
        }
        Err(Error::not_found(format!(
            "no rejected mutation {mutation_id:?}"
        )))
    }

    /// Drops a rejected mutation for good; a create, with the changes held back with it.
    pub async fn discard_rejected(&self, mutation_id: &str) -> Result<()> {
        let tx = self.begin(true).await?;
        let (k, item) = self.find_rejected(&tx, mutation_id).await?;
        tx.t.delete(Table::Rejected, &k)?;
        if item.kind == Kind::Create {
            for (k2, _) in self.held_with(&tx, &k, &item).await? {
                tx.t.delete(Table::Rejected, &k2)?;
            }
        }
        tx.commit().await
    }

    /// The rejected changes held back with create `item` (at `k`): those queued behind it on
    /// its record, which the server never had.
    async fn held_with<T: Txn>(
        &self,
        tx: &Tx<T>,
        k: &Key,
        item: &RejectedItem,
    ) -> Result<Vec<(Key, RejectedItem)>> {
        let mut out = Vec::new();
        for (k2, v) in tx.t.get_all(Table::Rejected).await? {
            let other: RejectedItem = serde_json::from_value(v)?;
            let same = other.collection == item.collection && other.record_id == item.record_id;
            if same && other.kind != Kind::Create && k2 > *k {
                out.push((k2, other));
            }
        }
        Ok(out)
    }

    /// Makes a rejected mutation again, as a new local write (with a new mutation id, since the
    /// server may have stored its refusal under the old Idempotency-Key). The write and the
    /// removal from the rejected list commit together.
    pub async fn retry_rejected(&self, mutation_id: &str) -> Result<Vec<Change>> {
        let mut tx = self.begin(true).await?;
        let (k, item) = self.find_rejected(&tx, mutation_id).await?;
        // The changes queued behind a create went to this list with it (their record never
        // reached the server); the create's record carries them.
        if item.kind != Kind::Create {
            let mut create = None;
            for (k2, v) in tx.t.get_all(Table::Rejected).await? {
                let o: RejectedItem = serde_json::from_value(v)?;
                let same = o.collection == item.collection && o.record_id == item.record_id;
                if same && o.kind == Kind::Create && k2 < k {
                    create = Some(o);
                }
            }
            if let Some(create) = create {
                return Err(Error::not_found(format!(
                    "this change was held back with its record's create ({:?}), which the \
                     server rejected: retry that one, which carries this change too, or \
                     discard it",
                    create.mutation_id
                )));
            }
        }
        let record = item.record.clone().unwrap_or_default();
        let op = match item.kind {
            Kind::Create => Op::Create(record),
            Kind::Update => {
                let mut patch = Record::new();
                patch.extend(
                    item.fields
                        .iter()
                        .filter_map(|f| Some((f.clone(), record.get(f)?.clone()))),
                );
                Op::Update(item.record_id.clone(), patch)
            }
            Kind::Delete => Op::Delete(item.record_id.clone()),
        };
        let (_, changes) = self.write_in(&mut tx, &item.collection, vec![op]).await?;
        tx.t.delete(Table::Rejected, &k)?;
        if item.kind == Kind::Create {
            for (k2, _) in self.held_with(&tx, &k, &item).await? {
                tx.t.delete(Table::Rejected, &k2)?;
            }
        }
        let seen = tx.clock_after_commit();
        tx.commit().await?;
        self.saw_clock(seen);
        Ok(changes)
    }
}
