//! The storage contract (`tests/common/contract.rs`) over `MemoryStorage`, natively. The browser
//! runs the same checks over IndexedDB (`tests/web_storage.rs`).
#![cfg(not(target_arch = "wasm32"))]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ferry::core::{Env, ErrorKind, MemoryStorage, StoreConfig};

#[macro_use]
#[path = "common/contract.rs"]
mod contract;

/// Runs a future that never waits: every `MemoryStorage` future is ready when first polled.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemoryStorage future was not ready at once"),
    }
}

/// A fixed clock and a counter for randomness: every run makes the same ids.
#[derive(Default)]
struct FixedEnv {
    n: Cell<u32>,
}

impl Env for FixedEnv {
    fn now_ms(&self) -> f64 {
        1_700_000_000_000.0
    }
    fn random_u32(&self) -> u32 {
        self.n.set(self.n.get().wrapping_add(1));
        self.n.get().wrapping_mul(2_654_435_761)
    }
}

/// Databases by name; opening a name again shares its tables, like a second IndexedDB connection.
#[derive(Default)]
struct Memory {
    dbs: RefCell<HashMap<String, MemoryStorage>>,
}

impl contract::Harness for Memory {
    type S = MemoryStorage;
    type E = FixedEnv;

    fn db_name(&self, test: &str) -> String {
        test.to_string()
    }
    async fn open(&self, config: &StoreConfig) -> MemoryStorage {
        self.dbs
            .borrow_mut()
            .entry(config.name.clone())
            .or_default()
            .clone()
    }
    fn env(&self) -> FixedEnv {
        FixedEnv::default()
    }
    fn fail_next_commit(&self, storage: &MemoryStorage) {
        storage.fail_next_commit(ErrorKind::Storage);
    }
}

macro_rules! memory_test {
    ($name:ident) => {
        #[test]
        fn $name() {
            block_on(contract::$name(&Memory::default()));
        }
    };
}

for_each_contract!(memory_test);

/// Declaring an index on a collection that already holds records makes queries find the old ones.
#[test]
fn an_index_added_later_covers_existing_records() {
    use ferry::core::{CollectionConfig, Engine, Op, Query, StoreConfig};
    let storage = MemoryStorage::new();
    let plain = StoreConfig::new("idx", vec![CollectionConfig::new("todos", "/api/todos")]);
    let rec = serde_json::json!({ "done": false })
        .as_object()
        .unwrap()
        .clone();
    let engine = block_on(Engine::open(plain, storage.clone(), FixedEnv::default())).unwrap();
    block_on(engine.write("todos", vec![Op::Create(rec)])).unwrap();
    let mut cfg = CollectionConfig::new("todos", "/api/todos");
    cfg.indexes = vec!["done".into()];
    let engine = block_on(Engine::open(
        StoreConfig::new("idx", vec![cfg]),
        storage,
        FixedEnv::default(),
    ))
    .unwrap();
    let q: Query =
        serde_json::from_value(serde_json::json!({ "where": { "done": false } })).unwrap();
    let (found, index) = block_on(engine.query("todos", &q)).unwrap();
    assert_eq!((found.len(), index.as_deref()), (1, Some("done")));
}

#[test]
fn index_names_must_be_plain_field_names() {
    use ferry::core::{CollectionConfig, StoreConfig};
    let mut cfg = CollectionConfig::new("todos", "/api/todos");
    cfg.indexes = vec!["due-date".into()];
    let err = StoreConfig::new("x", vec![cfg]).validate().unwrap_err();
    assert_eq!(err.kind, ferry::core::ErrorKind::Validation);
}
