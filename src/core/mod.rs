//! The sync engine, free of browser types: records, the outbox and its coalescing, the clock,
//! queries, the storage contract with an in-memory backend, and (in `sync`) the protocol.

/// `Deserialize` for an enum of unit variants, each named by a string: reads a `String` and
/// matches it, with serde's own "unknown variant" error. Much smaller in wasm than the derive,
/// whose visitor is instantiated per deserializer.
macro_rules! unit_enum_deserialize {
    ($t:ty { $($name:literal => $v:expr),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                match s.as_str() {
                    $($name => Ok($v),)*
                    _ => Err(<D::Error as serde::de::Error>::unknown_variant(&s, &[$($name),*])),
                }
            }
        }
    };
}

pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
mod gate;
pub mod local;
pub mod memory;
pub mod mutation;
mod outbox_view;
pub mod query;
mod quick;
pub mod record;
pub mod storage;
pub mod sync;
pub mod tx;

pub use clock::{Env, Hlc};
pub use config::{CollectionConfig, ConflictPolicy, StoreConfig, TieRule, UpdateMethod};
pub use engine::{Change, ChangeKind, Engine};
pub use error::{Error, ErrorKind, Result};
pub use local::Op;
pub use memory::MemoryStorage;
pub use outbox_view::OutboxItem;
pub use query::Query;
pub use record::{id_key, Record};
pub use storage::{Key, Storage, Table, Txn};
