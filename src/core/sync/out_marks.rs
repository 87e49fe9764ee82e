//! Marks of create requests on their way. A page that reloads (or a leading tab that closes)
//! while a create is out leaves no outcome, and the next leader looks for it on the server
//! (`landed.rs`) before sending it again. A slow server may not have stored it yet when that
//! lookup comes: sent again, a server that ignores `Idempotency-Key` would store it twice.
//!
//! So just before each request carrying a create, its outbox positions and the time are written
//! down, beside the request rather than before it (one transaction per request would add a
//! round trip to every unbatched create). A create not found whose request went out less than
//! [`hold_ms`] ago waits and is looked for again, rather than going at once. Creates picked in
//! the same round but never sent carry no mark and go at once. The round's answers clear its
//! marks; a mark that did not commit before the page went gives the behaviour without marks.
//! A request the browser did not let out (offline) keeps its mark:
//! taking it back could take the mark of the same create's request before it, which a server
//! may still be storing. At worst a create then waits seconds it did not need to.

use serde_json::{json, Value};

use crate::core::clock::Env;
use crate::core::engine::Engine;
use crate::core::error::Result;
use crate::core::mutation::{Entry, Kind};
use crate::core::storage::{Key, Storage, Table, Txn};

/// The longest a create whose request was out at a reload waits for the server to finish
/// storing it, from when it was sent: a request still unanswered after `timeoutMs` was given
/// up on anyway.
pub(super) fn hold_ms(timeout_ms: u32) -> f64 {
    f64::from(timeout_ms).min(10_000.0)
}

/// A mark's key: `out:` and the first position of its request, zero-padded so that the keys of
/// one round lie in one range.
fn out_key(seq: u64) -> Key {
    Key::Str(format!("out:{seq:020}"))
}

/// When a request went out, and the outbox positions of the creates in it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OutMark {
    pub(super) at: f64,
    pub(super) seqs: Vec<u64>,
}

impl OutMark {
    fn read(v: &Value) -> Option<OutMark> {
        let at = v.get("at")?.as_f64()?;
        let seqs = v.get("seqs")?.as_array()?;
        let seqs = seqs.iter().map(Value::as_u64).collect::<Option<Vec<_>>>()?;
        Some(OutMark { at, seqs })
    }
}

/// The creates among `chunk` (one request's entries): their positions.
pub(super) fn creates_in(chunk: &[Entry]) -> Vec<u64> {
    chunk
        .iter()
        .filter(|e| e.kind == Kind::Create)
        .map(|e| e.seq)
        .collect()
}

/// Queues in `t` the removal of the marks of a round's creates, given in outbox order with
/// whether each was answered (a create held or never reached keeps its mark): each run of
/// answered neighbours as one range delete.
pub(super) fn clear_marks<T: Txn + ?Sized>(
    t: &T,
    creates: impl Iterator<Item = (u64, bool)>,
) -> Result<()> {
    let mut run: Option<(u64, u64)> = None;
    // A closing `false` ends the last run.
    for (seq, answered) in creates.chain([(u64::MAX, false)]) {
        match run {
            _ if !answered => {
                if let Some((lo, hi)) = run.take() {
                    t.delete_range(Table::State, &out_key(lo), &out_key(hi))?;
                }
            }
            Some((lo, _)) => run = Some((lo, seq)),
            None => run = Some((seq, seq)),
        }
    }
    Ok(())
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Writes down that a request carrying the creates at `seqs` goes out now. Best effort: a
    /// mark that cannot be written (a full disk) leaves the create as it was without marks.
    pub(super) async fn mark_out(&self, seqs: Vec<u64>) {
        let Some(first) = seqs.first() else {
            return;
        };
        let mark = json!({ "at": self.env.now_ms(), "seqs": seqs });
        let write = async {
            let tx = self.begin_in(true, &[Table::State]).await?;
            tx.t.put(Table::State, &out_key(*first), &mark)?;
            tx.commit().await
        };
        let _ = write.await;
    }

    /// The marks left by requests that went out and whose answers were never written down.
    pub(super) async fn out_marks(&self) -> Vec<OutMark> {
        let read = async {
            let tx = self.begin_in(false, &[Table::State]).await?;
            let (lo, hi) = (out_key(0), out_key(u64::MAX));
            tx.t.get_range(Table::State, None, &lo, &hi, usize::MAX)
                .await
        };
        match read.await {
            Ok(rows) => rows.iter().filter_map(|(_, v)| OutMark::read(v)).collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_position() {
        let (Key::Str(a), Key::Str(b)) = (out_key(9), out_key(10)) else {
            panic!("string keys");
        };
        assert!(a < b);
    }

    #[test]
    fn a_mark_reads_back_and_a_damaged_one_is_none() {
        let m = OutMark::read(&json!({"at": 5.0, "seqs": [3, 4]}));
        assert_eq!(
            m,
            Some(OutMark {
                at: 5.0,
                seqs: vec![3, 4]
            })
        );
        assert_eq!(OutMark::read(&json!({"at": 5.0, "seqs": ["x"]})), None);
        assert_eq!(OutMark::read(&json!("out")), None);
    }

    #[test]
    fn the_hold_is_the_timeout_up_to_ten_seconds() {
        assert_eq!(hold_ms(3_000), 3_000.0);
        assert_eq!(hold_ms(30_000), 10_000.0);
    }
}
