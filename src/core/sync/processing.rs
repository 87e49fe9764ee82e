//! The idempotency draft's 409 "still being processed": a write sent again under its key while
//! the server is still applying its first send. Taken for a refusal or a conflict, the write
//! would be undone, or sent again under a new key, while its first send may still land.

use crate::core::error::ErrorKind;
use crate::core::mutation::{Entry, Kind};

use super::classify::Verdict;

/// How many sends under one key a 409 may be the idempotency draft's "still being processed"
/// for: with the backoff between them (1 s, 2 s, 4 s ... up to a minute, `backoff_ms`), a first
/// send the server takes two minutes or so to apply. (Four, before: a server that took 25 s had
/// the create refused, then stored it, and `retryRejected` stored it twice.)
pub(super) const RETRIED_CONFLICTS: u32 = 9;

/// How many times `e` has been sent under its present `Idempotency-Key`: a write sent again
/// after a conflict goes under a new key, `<mutation id>.<attempts then>` (`settle.rs`).
pub(super) fn sends_under_key(e: &Entry) -> u32 {
    let before =
        e.id.split_once('.')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .unwrap_or(0);
    e.attempts.saturating_sub(before)
}

/// How the reason of a write [`still_processing`] ends: it may land yet (`flush.rs`).
pub(super) const PROCESSING: &str = "(still being processed?)";

/// The answer `status` to a write sent again under its key, which may be the idempotency
/// draft's 409 "still being processed" (its first send not applied yet): tried again, while
/// [`sends_under_key`] is at most [`RETRIED_CONFLICTS`]; `None` after that.
pub(super) fn still_processing(e: &Entry, status: u16) -> Option<Verdict> {
    let what = if e.kind == Kind::Create {
        "a create"
    } else {
        "a write"
    };
    (2..=RETRIED_CONFLICTS)
        .contains(&sends_under_key(e))
        .then(|| Verdict::Transient {
            reason: format!("the server answered {status} to {what} sent again {PROCESSING}"),
            retry_after: None,
            kind: ErrorKind::Network,
            status: Some(status),
        })
}
