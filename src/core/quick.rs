//! A single create that writes before it has read anything.
//!
//! A create usually finds its id free: no row, no alias, nothing pending under it. Reading that
//! first costs a round trip through IndexedDB before the commit can go out, and each read costs
//! the backend as much as a write. So a create issues only its two writes, both adds, and
//! commits at once, waiting for no answer (`Txn::add_unless_found`). An add fails where its key
//! is taken: the row's add where a record has the id, and where the id is in use without a record
//! (a pending delete, an id the server renamed), which keeps a ghost in the records store for
//! exactly this (`record.rs`). The outbox position comes from the engine's block (`tx/alloc.rs`),
//! taken when the app called.
//!
//! A failed add aborts the transaction, with nothing written; the create is then done again the
//! general way, which reads (and folds into a pending delete, or refuses a taken id), in a new
//! transaction at the same position. That transaction comes after those of writes the app called
//! later, so writes that may touch the record wait for the create (`gate.rs`).
//!
//! Only an id the app chose in the form of Ferry's temporary ids is read for, together with the
//! writes: such ids get no ghosts (`Tx::delete_row`), their aliases being kept in buckets. When a
//! read finds something, or an add's failure is heard before the commit went out, what the adds
//! wrote is taken out and the general path runs in the same transaction.
//!
//! A create without an id gets a temporary id made of the database's node id and an outbox
//! position from this tab's reserved block (no other tab hands it out): no key it writes can be
//! taken, so there is nothing to check, and a taken key all the same fails the create whole.

use serde_json::Value;

use super::clock::Env;
use super::config::CollectionConfig;
use super::engine::{Change, ChangeKind, Engine};
use super::error::{Error, Result};
use super::gate::{Closed, Wait};
use super::local::{temp_id, write_scope};
use super::mutation::{Entry, Kind};
use super::record::{changed_fields, id_key, Record, Row};
use super::storage::{write_each, Checked, Key, Read, Storage, Table, Txn, OUTBOX_BY_RECORD};
use super::tx::{bucket_key, Tx};

/// What a write answers: the records written and the changes to announce.
pub(crate) type Written = (Vec<Option<Record>>, Vec<Change>);

/// How a quick create went.
pub(crate) enum Quick<T> {
    /// Written and committed.
    Done(Written),
    /// The id is in use (a row, or a ghost: a pending delete, an alias), so its transaction
    /// aborted and nothing was written. The create is to be done the general way in a new
    /// transaction, at this outbox position, the one it took when called; writes of its record
    /// called since wait for that (`gate.rs`).
    Again((u64, String)),
    /// A read found something (an id in the form of Ferry's temporary ids), or an add's failure
    /// came before the commit: what the adds wrote is taken out again, and the create is to be
    /// done the general way in this same transaction, which keeps its place among the app's
    /// writes.
    Undone(T),
    /// Not tried: the engine holds no outbox positions (its first write, or its block is used up).
    NotTried,
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Creates `data` in `cfg`'s collection on the usual assumptions, checked as it writes.
    /// `waits`: the creates of this record still under way, waited for once the position is
    /// taken (left alone when not tried); `gate`: this create's own, told the position.
    pub(crate) async fn quick_create(
        &self,
        cfg: &CollectionConfig,
        data: &Record,
        waits: &mut Vec<Wait>,
        gate: Option<&Closed<'_>>,
    ) -> Result<Quick<Tx<S::Txn<'_>>>> {
        // The position is taken now, when the app called: this create's place among its writes.
        let (at, taken) = {
            let mut alloc = self.alloc.borrow_mut();
            (alloc.tick(&self.env), alloc.take(0))
        };
        let Some((seq, node)) = taken else {
            return Ok(Quick::NotTried);
        };
        if let Some(g) = gate {
            g.at(seq); // a flush sends nothing from here on until this create is done
        }
        for w in waits.drain(..) {
            w.await;
        }
        let (c, idp) = (cfg.name.as_str(), cfg.id_property.as_str());
        let mut data = data.clone();
        let given = data.get(idp).map(id_key).transpose()?;
        let key = match &given {
            Some(key) => key.clone(),
            None => {
                let key = temp_id(&node, seq);
                data.insert(idp.to_string(), Value::String(key.clone()));
                key
            }
        };
        // The row and the outbox entry are added, not put: an add finds its key taken without
        // a read of its own. An id in use without a row (a pending delete, an alias) holds a
        // ghost, which fails the add as a row does; a fresh temporary id is in use nowhere.
        // Only an id the app chose in the form of Ferry's temporary ids is read for: those get
        // no ghosts (`Tx::delete_row`), their aliases being kept in buckets.
        let mut reads = Vec::new();
        let bucket = given.as_ref().and_then(|_| bucket_key(c, &key));
        if let Some(bk) = bucket {
            reads.push(Read::Get(Table::Aliases, Key::Pair(c.into(), key.clone())));
            // Any alias in its bucket sends it the long way, which reads its own.
            reads.push(Read::Get(Table::State, bk));
            let pair = Value::Array(vec![c.into(), key.as_str().into()]);
            reads.push(Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, pair));
        }
        let row = Row::new(cfg, data);
        let mut fields = changed_fields(&Record::new(), &row.d);
        fields.retain(|f| f != idp);
        let entry = Entry {
            fields,
            ..Entry::new(seq, &node, at, c, &key, Kind::Create)
        };
        let adds = [
            (
                Table::Outbox,
                Key::Num(seq),
                serde_json::to_value(&entry).expect("always JSON"),
            ),
            (Table::Records(c), Key::str(&key), row.to_value()),
        ];
        let tx = self.begin_in(true, &write_scope(c)).await?;
        if given.is_none() {
            // Nothing to check: the commit follows the adds at once, and a taken key (which
            // would be a fault in the positions' blocks) fails the create whole.
            tx.t.add_new(&adds).await?;
            tx.commit().await?;
            return Ok(Quick::Done(done(cfg, c, &key, row)));
        }
        // Nothing else is staged in a transaction this new: its raw one can go on alone.
        match tx.t.add_unless_found(&reads, &adds).await? {
            Checked::Committed => Ok(Quick::Done(done(cfg, c, &key, row))),
            // Nothing was written. A row or a ghost holds the id: the general path reads which,
            // and what that means (taken, or a pending delete to fold into).
            Checked::Taken(taken_keys) if taken_keys == [false, true] => {
                Ok(Quick::Again((seq, node)))
            }
            Checked::Taken(_) => Err(Error::storage(format!(
                "outbox position {seq} was taken: a fault in the positions' blocks; \
                 nothing was written"
            ))),
            Checked::Open(t, got, added) => {
                debug_assert!(got.iter().any(|g| !g.is_empty()) || added.contains(&false));
                // The position is this create's only if its add wrote there (taken back below).
                let own_position = added.first() == Some(&true);
                // Take out what the adds wrote (an add that failed wrote nothing).
                let back: Vec<_> = adds
                    .into_iter()
                    .zip(added)
                    .filter(|(_, wrote)| *wrote)
                    .map(|((table, key, _), _)| (table, key, None))
                    .collect();
                write_each(&t, &back)?;
                let mut tx = Tx::new(t, self.alloc.clone());
                if own_position {
                    tx.take_positions([(seq, node)]); // its place among the app's writes
                }
                Ok(Quick::Undone(tx))
            }
        }
    }
}

/// What a create that went through answers.
fn done(cfg: &CollectionConfig, c: &str, key: &str, row: Row) -> Written {
    let id = cfg.id_of(&row.d, key);
    let change = Change::local(ChangeKind::Created, c, id, Some(row.d.clone()));
    (vec![Some(row.d)], vec![change])
}
