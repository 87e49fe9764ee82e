//! Shared server state.

use crate::cli::{Config, Mode};
use crate::faults::{Faults, Stats};
use rusqlite::Connection;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct AppState {
    pub cfg: Config,
    /// One connection: SQLite serialises writers anyway, and holding the lock for a whole
    /// request is what makes "check idempotency key, write, store answer" atomic.
    pub db: Mutex<Connection>,
    pub faults: Mutex<Faults>,
    pub stats: Mutex<Stats>,
    pub token: Mutex<Option<String>>,
    pub mode: Mutex<Mode>,
}

impl AppState {
    pub fn new(cfg: Config, conn: Connection) -> AppState {
        AppState {
            token: Mutex::new(cfg.token.clone()),
            mode: Mutex::new(cfg.mode),
            cfg,
            db: Mutex::new(conn),
            faults: Mutex::new(Faults::default()),
            stats: Mutex::new(Stats::default()),
        }
    }

    pub fn mode(&self) -> Mode {
        *lock(&self.mode)
    }
}

/// Locks ignoring poison: a panic in one request must not take the server down with it, and
/// SQLite rolled back whatever that request had started.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
