//! The idempotency draft's 409 "still being processed": a write sent again under its key while
//! the server is still applying its first send. Taken for a refusal or a conflict, the write
//! would be undone, or sent again under a new key, while its first send may still land.

use crate::core::error::ErrorKind;
use crate::core::mutation::{Entry, Kind};

use super::classify::Verdict;

/// For how long after a write's first send under its key a 409 may be the idempotency draft's
/// "still being processed" (its first send not applied yet), ms. Counted in time, not in sends:
/// a write at the head of a queue that moves is sent again every round, backoff or not. (Four
/// sends, before: a server that took 25 s had the create refused, stored it anyway, and
/// `retryRejected` stored it twice.)
const PROCESSING_MS: f64 = 120_000.0;
/// Sends under one key that may be "still being processed" in any case (a write frozen by an
/// older version, which did not note when).
const PROCESSING_SENDS: u32 = 4;
/// How many sends under one key a read that answers 5xx (or 408, 425, 429) may hold a refusal
/// back for (`said_no.rs`, `landed.rs`); a read that gets no answer at all holds it for good.
pub(super) const RETRIED_READS: u32 = 9;

/// How many times `e` has been sent under its present `Idempotency-Key`: a write sent again
/// after a conflict goes under a new key, `<mutation id>.<attempts then>` (`settle.rs`).
pub(super) fn sends_under_key(e: &Entry) -> u32 {
    let before =
        e.id.rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .unwrap_or(0);
    e.attempts.saturating_sub(before)
}

/// How the reason of a write [`still_processing`] ends: it may land yet (`flush.rs`).
pub(super) const PROCESSING: &str = "(still being processed?)";

/// The answer `status` to a write sent again under its key, which may be the idempotency
/// draft's 409 "still being processed" (its first send not applied yet): tried again, for
/// [`PROCESSING_MS`] after its first send (and up to its [`PROCESSING_SENDS`]th send in any
/// case); `None` after that. `now`: the time, ms since epoch.
pub(super) fn still_processing(e: &Entry, status: u16, now: f64) -> Option<Verdict> {
    let what = if e.kind == Kind::Create {
        "a create"
    } else {
        "a write"
    };
    let n = sends_under_key(e);
    let frozen_at = e.sent.as_ref().and_then(|s| s.frozen_at);
    // A clock set back since is no reason to wait longer.
    let recent = frozen_at.is_some_and(|t| (0.0..PROCESSING_MS).contains(&(now - t)));
    (n >= 2 && (n <= PROCESSING_SENDS || recent)).then(|| Verdict::Transient {
        reason: format!("the server answered {status} to {what} sent again {PROCESSING}"),
        retry_after: None,
        kind: ErrorKind::Network,
        status: Some(status),
    })
}
