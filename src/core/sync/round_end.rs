//! How a flush round ends, and how the ends of its parts (batches, entries) combine.

use crate::core::error::ErrorKind;

/// How a round ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RoundEnd {
    /// Nothing (more) to send.
    Idle,
    /// Mutations were settled; go on with the next round.
    Progress,
    /// Stopped by a temporary failure; try again at `retry_at` (ms since epoch).
    Wait {
        /// Why.
        reason: String,
        /// When to try again.
        retry_at: f64,
        /// [`ErrorKind::Network`] or [`ErrorKind::Protocol`] (an answer that cannot be read).
        kind: ErrorKind,
        /// The server's status, when it answered.
        status: Option<u16>,
    },
    /// The server wants credentials (401).
    Unauthorized,
    /// The browser is offline.
    Offline,
    /// Nothing failed, but a create whose request was out when the page went waits until
    /// `until` (ms since epoch) to be looked for on the server again (`out_marks.rs`): a wait of
    /// seconds, which `sync()` sits out rather than fails on.
    Held {
        /// When to go on.
        until: f64,
    },
}

/// The end that says more: a 401 over a wait, the earlier of two waits, a wait over progress.
pub(super) fn worse(a: RoundEnd, b: RoundEnd) -> RoundEnd {
    match (a, b) {
        (RoundEnd::Unauthorized, _) | (_, RoundEnd::Unauthorized) => RoundEnd::Unauthorized,
        (
            RoundEnd::Wait {
                reason,
                retry_at,
                kind,
                status,
            },
            RoundEnd::Wait { retry_at: r2, .. },
        ) => RoundEnd::Wait {
            reason,
            retry_at: retry_at.min(r2),
            kind,
            status,
        },
        (
            RoundEnd::Wait {
                retry_at,
                reason,
                kind,
                status,
            },
            RoundEnd::Held { until },
        )
        | (
            RoundEnd::Held { until },
            RoundEnd::Wait {
                retry_at,
                reason,
                kind,
                status,
            },
        ) => RoundEnd::Wait {
            reason,
            retry_at: retry_at.min(until),
            kind,
            status,
        },
        (w @ RoundEnd::Wait { .. }, _) | (_, w @ RoundEnd::Wait { .. }) => w,
        (RoundEnd::Held { until }, RoundEnd::Held { until: u2 }) => RoundEnd::Held {
            until: until.min(u2),
        },
        (o @ RoundEnd::Offline, _) | (_, o @ RoundEnd::Offline) => o,
        (h @ RoundEnd::Held { .. }, _) | (_, h @ RoundEnd::Held { .. }) => h,
        (a, _) => a,
    }
}
