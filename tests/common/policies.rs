//! The conflict policies the conflict tests run every case under.

use ferry::core::{ConflictPolicy, MemoryStorage, TieRule};

use crate::native_env::{config, open, Db};

#[derive(Clone, Copy, Debug, PartialEq)]
/// A policy, with the tie rule of `merge` as a policy of its own.
pub enum P {
    Merge,
    MergeTieLocal,
    ServerWins,
    ClientWins,
}

/// Every policy.
pub const ALL: [P; 4] = [P::Merge, P::MergeTieLocal, P::ServerWins, P::ClientWins];

/// A store of `todos` whose conflicts `p` settles.
pub fn db_with(p: P) -> Db {
    let mut cfg = config(&["todos"]);
    let c = cfg.collections.get_mut("todos").unwrap();
    (c.conflict, c.tie) = match p {
        P::Merge => (ConflictPolicy::Merge, TieRule::Server),
        P::MergeTieLocal => (ConflictPolicy::Merge, TieRule::Local),
        P::ServerWins => (ConflictPolicy::ServerWins, TieRule::Server),
        P::ClientWins => (ConflictPolicy::ClientWins, TieRule::Server),
    };
    open(cfg, MemoryStorage::new())
}
