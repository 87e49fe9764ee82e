//! Ferry's IndexedDB written by something else (another page, a devtools edit, a bug elsewhere):
//! an outbox entry that cannot be read, a clock that is gone or cannot be read. Nothing that is
//! waiting may be lost, and the queue must go on.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::{Key, MemoryStorage, Storage, Table, Txn};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

fn put_raw(storage: &MemoryStorage, table: Table<'_>, key: Key, value: Value) {
    block_on(async {
        let tx = storage.begin(true).await.unwrap();
        tx.put(table, &key, &value).unwrap();
        tx.commit().await.unwrap();
    });
}

fn delete_raw(storage: &MemoryStorage, table: Table<'_>, key: Key) {
    block_on(async {
        let tx = storage.begin(true).await.unwrap();
        tx.delete(table, &key).unwrap();
        tx.commit().await.unwrap();
    });
}

fn get_raw(storage: &MemoryStorage, table: Table<'_>, key: Key) -> Option<Value> {
    block_on(async {
        let tx = storage.begin(false).await.unwrap();
        tx.get(table, &key).await.unwrap()
    })
}

/// Three records created offline: outbox positions 1, 2 and 3.
fn three_waiting() -> (Db, MemoryStorage) {
    let (db, storage) = open_todos();
    for n in 1..=3 {
        create(&db, "todos", json!({"title": format!("p{n}")}));
    }
    (db, storage)
}

fn titles_on(s: &MemServer) -> Vec<String> {
    let mut t: Vec<String> = s
        .records("todos")
        .iter()
        .map(|r| r["title"].as_str().unwrap_or_default().to_string())
        .collect();
    t.sort();
    t
}

#[test]
fn an_outbox_entry_that_cannot_be_read_is_set_aside_and_the_rest_is_sent() {
    let (db, storage) = three_waiting();
    put_raw(&storage, Table::Outbox, Key::Num(2), json!("garbage"));
    let listed = block_on(db.outbox()).expect("outbox() still lists what it can read");
    assert_eq!(listed.len(), 2);
    let s = MemServer::new();
    flush_all(&db, &s);
    assert_eq!(titles_on(&s), ["p1", "p3"]);
    assert_eq!(pending(&db), 0);
    let aside = get_raw(&storage, Table::State, Key::str("damaged:outbox:2"));
    assert_eq!(
        aside,
        Some(json!("garbage")),
        "kept as it was, out of the way"
    );
}

#[test]
fn a_clock_that_is_gone_does_not_reuse_the_positions_of_waiting_entries() {
    let (db, storage) = three_waiting();
    drop(db);
    delete_raw(&storage, Table::State, Key::str("clock"));
    let db = open(config(&["todos"]), storage.clone());
    create(&db, "todos", json!({"title": "p4"}));
    create(&db, "todos", json!({"title": "p5"}));
    assert_eq!(pending(&db), 5);
    let s = MemServer::new();
    flush_all(&db, &s);
    assert_eq!(titles_on(&s), ["p1", "p2", "p3", "p4", "p5"]);
}

#[test]
fn a_clock_that_cannot_be_read_is_made_again() {
    let (db, storage) = three_waiting();
    drop(db);
    put_raw(&storage, Table::State, Key::str("clock"), json!("garbage"));
    let db = open(config(&["todos"]), storage.clone());
    create(&db, "todos", json!({"title": "p4"}));
    update(
        &db,
        "todos",
        &id_of(&local(&db, "todos")[0].as_object().unwrap().clone()),
        json!({"n": 1}),
    );
    let s = MemServer::new();
    flush_all(&db, &s);
    assert_eq!(titles_on(&s), ["p1", "p2", "p3", "p4"]);
}
