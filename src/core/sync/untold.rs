//! Conflicts settled by the collection's policy and not told yet. A settled conflict is told by
//! its `conflict` event once its transaction has committed; a page that unloads in between (a
//! reload, the tab closed, a few ms) would take the event with it, and the app would never learn
//! that the policy overrode a change (a delete undone, a field's local value dropped). So each
//! settled conflict is also kept in `state`, in the transaction that carried out its outcome,
//! under `untold:<when>.<outbox position>.<attempt>`; once its event is out, the key goes. A
//! store opened later tells what is still kept, in the order the conflicts were settled (at
//! least once: a page that unloads after telling and before forgetting tells it again).

use crate::core::clock::Env;
use crate::core::engine::Engine;
use crate::core::error::Result;
use crate::core::mutation::Entry;
use crate::core::storage::{Key, Storage, Table, Txn};
use crate::core::tx::Tx;

use super::report::{ConflictEvent, Report};

const PREFIX: &str = "untold:";
/// Past the last key under [`PREFIX`] (`;` follows `:`).
const PAST: &str = "untold;";
/// At most this many are told at a time, at open (more are left for the next open).
const KEPT: usize = 200;

/// Keeps `event`, the settled conflict of `e` at `now` (ms since epoch), in `tx` until it is
/// told; notes its key in `report`.
pub(crate) fn keep_untold<T: Txn>(
    tx: &Tx<T>,
    e: &Entry,
    event: &ConflictEvent,
    now: f64,
    report: &mut Report,
) -> Result<()> {
    // Zero-padded, so that the keys' order is the order settled (a mutation id would put
    // `node-10` before `node-9`), and one per settling: a write that meets a second conflict
    // before the first is told (sent again, attempts up by one) keeps both.
    let key = format!(
        "{PREFIX}{:015}.{:020}.{:010}",
        now as u64, e.seq, e.attempts
    );
    let value = serde_json::to_value(event)?;
    tx.t.put(Table::State, &Key::str(key.clone()), &value)?;
    report.untold.push(key);
    Ok(())
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// The settled conflicts kept and not told yet, as a report whose `untold` names them.
    pub async fn untold_conflicts(&self) -> Result<Report> {
        let tx = self.begin_in(false, &[Table::State]).await?;
        let lo = Key::str(PREFIX);
        let hi = Key::str(PAST);
        let kept = tx.t.get_range(Table::State, None, &lo, &hi, KEPT).await?;
        let mut report = Report::default();
        for (key, value) in kept {
            let Key::Str(key) = key else { continue };
            // One that no longer reads (written by another version) is forgotten with the rest.
            if let Ok(event) = serde_json::from_value::<ConflictEvent>(value) {
                report.conflicts.push(event);
            }
            report.untold.push(key);
        }
        Ok(report)
    }

    /// Forgets the kept conflicts under `keys`, told now.
    pub async fn told(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tx = self.begin_in(true, &[Table::State]).await?;
        for key in keys {
            tx.t.delete(Table::State, &Key::str(key.clone()))?;
        }
        tx.commit().await
    }
}
