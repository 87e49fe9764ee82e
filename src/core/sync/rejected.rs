//! The rejected list: mutations the server refused for good, kept for the app to retry or drop.

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::engine::{Change, Engine};
use crate::core::error::{Error, Result};
use crate::core::local::Op;
use crate::core::mutation::{Entry, Kind};
use crate::core::record::Record;
use crate::core::storage::{Key, Storage, Table, Txn};
use crate::core::tx::Tx;

use super::flush::join;
use super::report::{RejectedItem, Report};

/// After this many attempts answered 5xx (or a 2xx that is no answer to it), a write is said to
/// be stuck (a server that answers a write it will never take with a 500 keeps it out of the
/// rejected list for good).
const STUCK_ATTEMPTS: u32 = 5;

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

    /// The rejected item with `mutation_id` (its key and itself), and the other items of its
    /// record (rejected with it), in one read inside `tx`.
    async fn find_rejected<T: Txn>(&self, tx: &Tx<T>, mutation_id: &str) -> Result<Found> {
        let mut found = None;
        let mut all = Vec::new();
        for (k, v) in tx.t.get_all(Table::Rejected).await? {
            let item: RejectedItem = serde_json::from_value(v)?;
            if item.mutation_id == mutation_id {
                found = Some((k, item));
            } else {
                all.push((k, item));
            }
        }
        let Some((k, item)) = found else {
            return Err(Error::not_found(format!(
                "no rejected mutation {mutation_id:?}"
            )));
        };
        let same_record = all
            .into_iter()
            .filter(|(_, o)| o.collection == item.collection && o.record_id == item.record_id)
            .collect();
        Ok(Found {
            key: k,
            item,
            same_record,
        })
    }

    /// Drops a rejected mutation for good; a create, with the changes held back with it.
    pub async fn discard_rejected(&self, mutation_id: &str) -> Result<()> {
        let tx = self.begin(true).await?;
        let found = self.find_rejected(&tx, mutation_id).await?;
        tx.t.delete(Table::Rejected, &found.key)?;
        for k in found.held_with() {
            tx.t.delete(Table::Rejected, k)?;
        }
        tx.commit().await
    }

    /// Makes a rejected mutation again, as a new local write (with a new mutation id, since the
    /// server may have stored its refusal under the old Idempotency-Key). The write and the
    /// removal from the rejected list commit together.
    pub async fn retry_rejected(&self, mutation_id: &str) -> Result<Vec<Change>> {
        self.retry_rejected_with(mutation_id, Record::new()).await
    }

    /// [`Engine::retry_rejected`] with `changes` made over it: the app's fix for what the server
    /// refused (a title too long, a field missing), in the same new mutation.
    pub async fn retry_rejected_with(
        &self,
        mutation_id: &str,
        changes: Record,
    ) -> Result<Vec<Change>> {
        // Its record may be one a create under way names (`gate.rs`); writes called meanwhile
        // wait for it.
        let waits = self.gates.waits_all(None);
        let queued = (!waits.is_empty()).then(|| self.gates.queue(None, None));
        for w in waits {
            w.await;
        }
        let mut tx = self.begin(true).await?;
        drop(queued);
        let found = self.find_rejected(&tx, mutation_id).await?;
        let (k, item) = (&found.key, &found.item);
        // The changes queued behind a create went to this list with it (their record never
        // reached the server); the create's record carries them.
        if item.kind != Kind::Create {
            let create = found
                .same_record
                .iter()
                .find(|(k2, o)| o.kind == Kind::Create && k2 < k);
            if let Some((_, create)) = create {
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
            Kind::Create => {
                let idp = &self.collection(&item.collection)?.id_property;
                if changes.contains_key(idp) {
                    // Its temporary id is what other records (and the app) name it by.
                    return Err(Error::validation(format!(
                        "the id of a record cannot change: `{idp}` is not a field a retry fixes"
                    )));
                }
                let mut record = record;
                record.extend(changes);
                Op::Create(record)
            }
            Kind::Update => {
                // A field changed since the rejection (by the app, synced or not, or by a pull)
                // keeps the newer value: the refused value goes back only where what the
                // rejection put back is still there.
                let (_, now) = tx.resolve(&item.collection, &item.record_id).await?;
                let unchanged = |f: &String| match (&item.restored, &now) {
                    (Some(restored), Some(now)) => {
                        now.d.get(f).unwrap_or(&Value::Null)
                            == restored.get(f).unwrap_or(&Value::Null)
                    }
                    _ => true,
                };
                let mut patch = Record::new();
                patch.extend(
                    item.fields
                        .iter()
                        .filter(|f| unchanged(f))
                        .filter_map(|f| Some((f.clone(), record.get(f)?.clone()))),
                );
                patch.extend(changes);
                if patch.is_empty() {
                    return Err(Error::validation(
                        "nothing of this change is left to make: every field it changed was \
                         changed again since it was rejected; discard it, or retry it with \
                         changes",
                    ));
                }
                Op::Update(item.record_id.clone(), patch)
            }
            Kind::Delete if !changes.is_empty() => {
                return Err(Error::validation(
                    "a rejected delete is retried as it was: it takes no changes",
                ))
            }
            // By the temporary id it was deleted by, if so: forgotten again once it is done.
            Kind::Delete => Op::Delete(item.temporary_id.clone().unwrap_or(item.record_id.clone())),
        };
        let (_, changes) = self.write_in(&mut tx, &item.collection, vec![op]).await?;
        tx.t.delete(Table::Rejected, k)?;
        for k2 in found.held_with() {
            tx.t.delete(Table::Rejected, k2)?;
        }
        tx.commit().await?;
        Ok(changes)
    }

    /// Moves pending mutation `mutation_id` to the rejected list, as if the server had refused
    /// it (status 0): the app's way out of a write the server fails every time and never
    /// refuses. The record goes back to the server's state as a refusal takes it back, and
    /// `retryRejected` or `discardRejected` then apply. Only a record's first pending mutation,
    /// and only while it is not out: one sent and not answered yet (or whose answer was lost)
    /// may still be applied by the server.
    pub async fn reject_pending(&self, mutation_id: &str) -> Result<Report> {
        let tx = self.begin(true).await?;
        let (outbox, held) = join(tx.outbox(), self.held_back(&tx, false)).await;
        let (outbox, (open_conflicts, _)) = (outbox?, held?);
        let Some(e) = outbox.iter().find(|e| e.id == mutation_id) else {
            return Err(Error::not_found(format!(
                "no pending mutation {mutation_id:?}"
            )));
        };
        if let Some(first) = outbox
            .iter()
            .find(|o| o.c == e.c && o.r == e.r && o.seq < e.seq)
        {
            return Err(Error::validation(format!(
                "mutation {mutation_id:?} waits behind {:?}, of the same record: only a \
                 record's first pending mutation can be rejected",
                first.id
            )));
        }
        if open_conflicts.contains(&(e.c.clone(), e.r.clone())) {
            return Err(Error::validation(format!(
                "mutation {mutation_id:?} waits behind an open conflict of its record: resolve \
                 or discard the conflict first"
            )));
        }
        // A pick clears the error of what it sends; a failure writes one back.
        if e.sent.is_some() && e.error.is_none() {
            return Err(Error::validation(format!(
                "mutation {mutation_id:?} is being sent, or the answer to its last sending was \
                 lost: it can be rejected once an attempt has failed"
            )));
        }
        let mut report = Report::default();
        let body = "rejected by the app (rejectPending)".to_string();
        self.apply_reject(&tx, e, 0, body, &mut report).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Says once per collection that a write keeps being answered 5xx (it is sent again for as
    /// long as it is, and its record's later changes wait behind it), or a 2xx that is no
    /// answer to it (`reason` says what), or keeps waiting for the read of its version first,
    /// however that read fails.
    pub(super) fn warn_if_stuck(
        &self,
        e: &Entry,
        status: Option<u16>,
        read_first: bool,
        reason: &str,
    ) {
        if e.attempts < STUCK_ATTEMPTS {
            return;
        }
        // Whatever stops the read (a login page it is redirected to, a timeout): the write
        // waits for it, and says so.
        if read_first {
            let last = status.map_or("got no answer".into(), |s| format!("answered {s}"));
            return self.warn_once(format!("stuck-read:{}", e.c), || {
                format!(
                    "a write of record {:?} in `{}` has waited {} times for `GET` of the record's \
                     URL, which last {last}: the collection's list names no versions, so the \
                     write reads the record's version before it goes (without it, it would \
                     overwrite changes made since), and it waits, with backoff, until that read \
                     answers. Meanwhile `rejectPending({:?})` takes it out",
                    e.r, e.c, e.attempts, e.id
                )
            });
        }
        // A success that is no answer to the write (a portal's page, a login endpoint a
        // redirect led to, an answer without the id): it may never end by itself either.
        if status.is_some_and(|s| (200..300).contains(&s)) {
            let method = e.sent.as_ref().map_or("write", |s| s.method.as_str());
            return self.warn_once(format!("stuck-2xx:{}", e.c), || {
                format!(
                    "a {method} of record {:?} in `{}` has waited {} rounds, the last for this: \
                     {reason}. It is tried again, with backoff, and the record's later changes \
                     wait behind it. Meanwhile `rejectPending({:?})` takes it out",
                    e.r, e.c, e.attempts, e.id
                )
            });
        }
        let Some(status) = status.filter(|s| (500..600).contains(s)) else {
            return;
        };
        self.warn_once(format!("stuck:{}", e.c), || {
            let method = e.sent.as_ref().map_or("write", |s| s.method.as_str());
            format!(
                "a {method} of record {:?} in `{}` has been sent {} times, the last answered \
                 {status}: it is sent again, with backoff, until the server takes or refuses it, and the record's \
                 later changes wait behind it. A server that answers a write it will never take \
                 with a 5xx should answer 4xx (400, 422): the write then goes to `rejected()`, \
                 where the app can fix or discard it. Meanwhile `rejectPending({:?})` takes it \
                 out",
                e.r, e.c, e.attempts, e.id
            )
        });
    }
}

/// A rejected item, with the others of its record.
struct Found {
    key: Key,
    item: RejectedItem,
    same_record: Vec<(Key, RejectedItem)>,
}

impl Found {
    /// For a create: the keys of the changes held back with it (queued behind it on its record,
    /// which the server never had). Nothing for an update or a delete.
    fn held_with(&self) -> impl Iterator<Item = &Key> {
        let create = self.item.kind == Kind::Create;
        self.same_record
            .iter()
            .filter(move |(k, o)| create && o.kind != Kind::Create && *k > self.key)
            .map(|(k, _)| k)
    }
}
