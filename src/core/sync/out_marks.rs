//! Marks of create requests on their way. A page that reloads (or a leading tab that closes)
//! while a create is out leaves no outcome, and the next leader looks for it on the server
//! (`landed.rs`) before sending it again. A slow server may not have stored it yet when that
//! lookup comes: sent again, a server that ignores `Idempotency-Key` would store it twice.
//!
//! So just before each request carrying a create, its outbox positions and the time are
//! written down in a note beside the database ([`Storage::set_note`]: `localStorage` in the
//! browser), not in it: a transaction per request cost a round of unbatched creates a quarter
//! of its time, even unawaited. A create not found whose request went out less than
//! [`hold_ms`] ago waits and is looked for again, rather than going at once. Creates picked in
//! the same round but never sent carry no mark and go at once. An outcome written down takes
//! the mark away; a failed send or lookup leaves it (the create may still be landing). Where no
//! note is kept (a worker, a disabled `localStorage`), a create goes as it did without marks.

use serde_json::{json, Value};

use crate::core::clock::Env;
use crate::core::engine::Engine;
use crate::core::mutation::{Entry, Kind};
use crate::core::storage::Storage;

use super::classify::Verdict;
use super::send::Sent;

/// The note the marks are kept in.
const NOTE: &str = "out";

/// Marks older than this are dropped whenever the note is written: no hold lasts longer.
const FORGET_MS: f64 = 60_000.0;

/// The longest a create whose request was out at a reload waits for the server to finish
/// storing it, from when it was sent: a request still unanswered after `timeoutMs` was given
/// up on anyway.
pub(super) fn hold_ms(timeout_ms: u32) -> f64 {
    f64::from(timeout_ms).min(10_000.0)
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

/// The marks a note's text holds (none when it is damaged).
fn parse(note: Option<String>) -> Vec<OutMark> {
    let parsed = note.and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let list = parsed.as_ref().and_then(Value::as_array);
    list.map(|l| l.iter().filter_map(OutMark::read).collect())
        .unwrap_or_default()
}

/// Whether `m` can be trusted at `now`: not so old that no wait lasts that long, and not in
/// the future (the clock was set back since: a wait counted from it could last for hours).
fn fresh(m: &OutMark, now: f64) -> bool {
    m.at > now - FORGET_MS && m.at <= now + CLOCK_SLACK_MS
}

/// How far ahead of the clock a mark may be and still be believed (clocks of two tabs, rounding).
const CLOCK_SLACK_MS: f64 = 1_000.0;

/// The creates of `picked` that `sent` settles, whose marks go once its answers are written
/// down: those found on the server, and those sent whose answer says where they stand (stored,
/// refused, a conflict, or a status that says the write was not applied). A create not sent
/// (held, its lookup failed), or whose send got no answer, an unreadable one or a 500, 502 or
/// 504 (it may still be landing), keeps its mark.
pub(super) fn settled_creates(picked: &[Entry], sent: &Sent) -> Vec<u64> {
    let settles = |v: &Verdict, left: bool| match v {
        Verdict::Ack(..) => true,
        Verdict::Rejected { .. } | Verdict::Conflict(_) | Verdict::Unauthorized => left,
        Verdict::Transient { status, .. } => {
            left && status
                .is_some_and(|s| !(200..300).contains(&s) && !matches!(s, 500 | 502 | 504))
        }
        Verdict::Held { .. } => false,
    };
    picked
        .iter()
        .zip(sent.verdicts.iter().zip(&sent.left))
        .filter(|(e, (v, left))| e.kind == Kind::Create && settles(v, **left))
        .map(|(e, _)| e.seq)
        .collect()
}

/// The creates among `chunk` (one request's entries): their positions.
pub(super) fn creates_in(chunk: &[Entry]) -> Vec<u64> {
    chunk
        .iter()
        .filter(|e| e.kind == Kind::Create)
        .map(|e| e.seq)
        .collect()
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Writes down that a request carrying the creates at `seqs` goes out now.
    pub(super) fn mark_out(&self, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        let now = self.env.now_ms();
        let mut marks = self.out_marks();
        // A create sent again is out since now: an older mark of it would cut its wait short.
        for m in &mut marks {
            m.seqs.retain(|s| !seqs.contains(s));
        }
        marks.retain(|m| !m.seqs.is_empty() && fresh(m, now));
        marks.push(OutMark {
            at: now,
            seqs: seqs.to_vec(),
        });
        self.keep_marks(&marks);
    }

    /// Takes away the marks of the creates at `answered`, whose answers are written down.
    pub(super) fn clear_marks(&self, answered: &[u64]) {
        if answered.is_empty() {
            return;
        }
        let mut marks = self.out_marks();
        if marks.is_empty() {
            return;
        }
        let was = marks.clone();
        let now = self.env.now_ms();
        for m in &mut marks {
            m.seqs.retain(|s| !answered.contains(s));
        }
        marks.retain(|m| !m.seqs.is_empty() && fresh(m, now));
        if marks != was {
            self.keep_marks(&marks);
        }
    }

    /// The marks of requests that went out and whose outcomes were never written down.
    pub(super) fn out_marks(&self) -> Vec<OutMark> {
        parse(self.storage.note(NOTE))
    }

    /// Until when the create at `seq` waits for the server to show it, if its latest request
    /// went out moments ago (`marks`: read by [`Engine::out_marks`]).
    pub(super) fn held_until(&self, marks: &[OutMark], seq: u64) -> Option<f64> {
        let now = self.env.now_ms();
        let mark = marks.iter().find(|m| m.seqs.contains(&seq))?;
        let until = mark.at + hold_ms(self.config.timeout_ms);
        (fresh(mark, now) && until > now).then_some(until)
    }

    fn keep_marks(&self, marks: &[OutMark]) {
        if marks.is_empty() {
            self.storage.set_note(NOTE, None);
            return;
        }
        let list: Vec<Value> = marks
            .iter()
            .map(|m| json!({ "at": m.at, "seqs": m.seqs }))
            .collect();
        self.storage
            .set_note(NOTE, Some(&Value::Array(list).to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_reads_back_and_a_damaged_one_is_empty() {
        let m = parse(Some(r#"[{"at": 5.0, "seqs": [3, 4]}, {"at": 1}]"#.into()));
        assert_eq!(
            m,
            [OutMark {
                at: 5.0,
                seqs: vec![3, 4]
            }]
        );
        assert_eq!(parse(Some("{not json".into())), []);
        assert_eq!(parse(Some(r#"{"at": 5}"#.into())), []);
        assert_eq!(parse(None), []);
    }

    #[test]
    fn the_hold_is_the_timeout_up_to_ten_seconds() {
        assert_eq!(hold_ms(3_000), 3_000.0);
        assert_eq!(hold_ms(30_000), 10_000.0);
    }
}
