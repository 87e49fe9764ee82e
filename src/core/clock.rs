//! A hybrid logical clock (Kulkarni et al.): wall-clock milliseconds that never go backwards on
//! one client, with a counter to order events within the same millisecond. Its `ms` part is the
//! `Ferry-Changed-At` header of PROTOCOL.md section 4.

use serde::{Deserialize, Serialize};

/// A clock reading; readings order by `(ms, n)`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds since the epoch, never below the previous reading.
    pub ms: u64,
    /// Events within the same `ms`.
    pub n: u32,
}

impl Hlc {
    /// The next reading after `self`, given the wall clock `now_ms`. When the wall clock went
    /// backwards (or stands still) the previous `ms` is kept and the counter moves instead.
    pub fn tick(self, now_ms: u64) -> Hlc {
        if now_ms > self.ms {
            Hlc { ms: now_ms, n: 0 }
        } else {
            Hlc {
                ms: self.ms,
                n: self.n.saturating_add(1),
            }
        }
    }
}

/// Time and randomness, supplied by the host (the browser, or a seeded simulator).
pub trait Env {
    /// Wall-clock milliseconds since the epoch.
    fn now_ms(&self) -> f64;
    /// A random 32-bit number (need not be cryptographic: it only makes ids unique).
    fn random_u32(&self) -> u32;
    /// Tells the developer of something wrong that is not any call's error (the browser's
    /// console); nothing by default.
    fn warn(&self, _message: &str) {}
}

/// A random id of `len` base-36 characters.
pub fn random_id(env: &impl Env, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| ALPHABET[(env.random_u32() % 36) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let a = Hlc::default().tick(1000);
        let b = a.tick(500); // wall clock jumped back
        let c = b.tick(1000);
        let d = c.tick(1001);
        assert!(a < b && b < c && c < d);
        assert_eq!(b.ms, 1000);
        assert_eq!(d, Hlc { ms: 1001, n: 0 });
    }
}
