//! The sync engine, free of browser types: records, the outbox and its coalescing, the clock,
//! queries, the storage contract with an in-memory backend, and (in `sync`) the protocol.

pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod local;
pub mod memory;
pub mod mutation;
pub mod query;
pub mod record;
pub mod storage;
pub mod sync;
pub mod tx;

pub use clock::{Env, Hlc};
pub use config::{CollectionConfig, ConflictPolicy, StoreConfig, TieRule, UpdateMethod};
pub use engine::{Change, ChangeKind, Engine};
pub use error::{Error, ErrorKind, Result};
pub use local::{Op, OutboxItem};
pub use memory::MemoryStorage;
pub use query::Query;
pub use record::Record;
pub use storage::{Key, Storage, Table, Txn};
