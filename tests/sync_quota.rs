//! A full storage quota: deleting what was never sent still works (no write at all), and a flush
//! whose transactions do not fit goes on in smaller ones instead of failing for ever.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use std::cell::Cell;

use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::{ErrorKind, MemoryStorage};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;
use sync_asserts::*;

/// Forwards to the server, and makes the storage's next commit (the one that applies the
/// answer) fail with a full quota, once.
struct QuotaOnApply {
    server: MemServer,
    storage: MemoryStorage,
    armed: Cell<bool>,
}

impl Transport for QuotaOnApply {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        if self.armed.replace(false) {
            self.storage.fail_next_commit(ErrorKind::Quota);
        }
        self.server.send(req).await
    }
}

#[test]
fn deleting_a_never_sent_record_writes_nothing() {
    let storage = MemoryStorage::new();
    let db = open(config(&["todos"]), storage.clone());
    let id = create(&db, "todos", json!({"title": "local only"}));
    let before = storage.snapshot();
    delete(&db, "todos", &id);
    // Nothing but deletions: the clock row was not rewritten either.
    let tx = block_on(ferry::core::Storage::begin(&before, false)).unwrap();
    let clock_before = block_on(ferry::core::Txn::get(
        &tx,
        ferry::core::Table::State,
        &ferry::core::Key::str("clock"),
    ))
    .unwrap();
    let tx2 = block_on(ferry::core::Storage::begin(&storage, false)).unwrap();
    let clock_after = block_on(ferry::core::Txn::get(
        &tx2,
        ferry::core::Table::State,
        &ferry::core::Key::str("clock"),
    ))
    .unwrap();
    assert_eq!(clock_before, clock_after);
    assert_eq!(pending(&db), 0);
}

#[test]
fn freezing_a_batch_that_does_not_fit_goes_on_with_fewer() {
    let storage = MemoryStorage::new();
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, storage.clone());
    let s = MemServer::new();
    for i in 0..8 {
        create(&db, "todos", json!({ "n": i }));
    }
    storage.fail_next_commit(ErrorKind::Quota); // the commit that freezes the batch
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(s.records("todos").len(), 8);
}

#[test]
fn answers_that_do_not_fit_in_one_transaction_are_applied_in_smaller_ones() {
    let storage = MemoryStorage::new();
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, storage.clone());
    let s = MemServer::new();
    for i in 0..8 {
        create(&db, "todos", json!({ "n": i }));
    }
    let t = QuotaOnApply {
        server: s.clone(),
        storage: storage.clone(),
        armed: Cell::new(true),
    };
    flush_all(&db, &t);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(s.records("todos").len(), 8, "each created once");
    assert_keys_unique(&s);
    assert_eq!(
        s.stats().requests,
        1,
        "one batch: the answers were applied, not fetched again"
    );
}
