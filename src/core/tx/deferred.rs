//! Grouping a flush round's outbox deletes into range deletes at commit.

use super::Tx;
use crate::core::error::Result;
use crate::core::storage::{delete_runs, Key, Table, Txn};

/// Outbox deletes held back to the commit, where each run of neighbouring entries goes as one
/// range delete (a sync round drops a whole batch of acknowledged entries at once).
pub(super) struct Deferred {
    /// Outbox positions read earlier, in order, and every entry between the first and the last
    /// of them then. Only runs of consecutive positions go as one range: an entry written since
    /// may lie between two positions further apart (another tab's, numbered from a block it
    /// reserved before this one's entries were written; a create done again at the position it
    /// took when called, `gate.rs`), and a range over it would delete it unsent.
    pub(super) present: Vec<u64>,
    /// Positions to delete, each once, in no order (a `Vec`: a set type, or sorting, adds
    /// kilobytes of wasm; a round deletes at most a batch).
    pub(super) deleted: Vec<u64>,
}

impl<T: Txn> Tx<T> {
    /// From now on, entry deletes wait for the commit, where neighbours in `present` (positions
    /// of a run of neighbouring outbox entries, read earlier in the same flush round) go as one
    /// range delete.
    /// Reads through `Tx` no longer see them meanwhile.
    pub fn group_entry_deletes(&self, mut present: Vec<u64>) {
        // Read in key order, so ascending already; anything else groups nothing.
        if !present.windows(2).all(|w| w[0] < w[1]) {
            present.clear();
        }
        *self.deferred.borrow_mut() = Some(Deferred {
            present,
            deleted: Default::default(),
        });
    }

    /// Whether the entry at `seq` waits to be deleted at commit.
    pub(super) fn doomed(&self, seq: u64) -> bool {
        self.deferred
            .borrow()
            .as_ref()
            .is_some_and(|d| d.deleted.contains(&seq))
    }

    /// Issues the deletes [`Tx::group_entry_deletes`] held back.
    pub(super) fn delete_deferred(&self) -> Result<()> {
        let Some(d) = self.deferred.borrow_mut().take() else {
            return Ok(());
        };
        // A key no delete matches breaks the runs where positions are not consecutive.
        let mut present: Vec<Key> = Vec::with_capacity(d.present.len());
        for (i, &seq) in d.present.iter().enumerate() {
            if i > 0 && d.present[i - 1] + 1 != seq {
                present.push(Key::Str(String::new()));
            }
            present.push(Key::Num(seq));
        }
        delete_runs(
            &self.t,
            Table::Outbox,
            &present,
            |k| matches!(k, Key::Num(s) if d.deleted.contains(s)),
        )?;
        for &seq in d.deleted.iter().filter(|s| !d.present.contains(s)) {
            self.t.delete(Table::Outbox, &Key::Num(seq))?;
        }
        Ok(())
    }
}
