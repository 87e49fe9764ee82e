//! Assertions shared by the native sync tests.
#![allow(dead_code)]

use std::collections::HashSet;

use crate::mem_server::MemServer;
use crate::native_env::{local, Db};

/// Local records of `c` equal the server's.
pub fn assert_in_sync(db: &Db, s: &MemServer, c: &str) {
    assert_eq!(local(db, c), s.records(c), "local and server differ in {c}");
}

/// No Idempotency-Key was applied twice on the server.
pub fn assert_keys_unique(s: &MemServer) {
    let keys = s.applied_keys();
    let set: HashSet<&String> = keys.iter().collect();
    assert_eq!(set.len(), keys.len(), "a key was applied twice: {keys:?}");
}
