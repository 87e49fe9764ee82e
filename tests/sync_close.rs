//! A store closed while its round is out (`close()`, or its database taken by another tab's
//! upgrade) sends nothing more: another tab may lead by then and send the same mutations.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::rc::Rc;

use ferry::core::{ErrorKind, MemoryStorage};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;

#[test]
fn a_store_closed_mid_round_sends_nothing_more_and_the_next_leader_sends_the_rest_once() {
    let storage = MemoryStorage::new();
    let db = Rc::new(open(config(&["todos"]), storage.clone()));
    for i in 0..3 {
        create(&db, "todos", json!({"title": format!("t{i}")}));
    }
    let tap = Tap::new(MemServer::new());
    // The first create leaves; the app closes the store while it is out (no `batchUrl`, so
    // the round sends one request at a time).
    let closing = Rc::downgrade(&db);
    tap.hook(move |_| {
        if let Some(db) = closing.upgrade() {
            db.close_because("another tab upgraded the database");
        }
        None
    });
    let _ = block_on(db.flush(&tap, &[]));
    assert_eq!(tap.requests().len(), 1, "nothing left after the close");
    let err = db.check_open().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Closed);
    assert!(err.message.contains("another tab upgraded"), "{err:?}");

    // The tab that leads now sends what the closed one did not, and the first again under
    // its key (the server applies it once).
    tap.unhook();
    let next = open(config(&["todos"]), storage);
    flush_all(&next, &tap);
    let keys = tap.keys("POST");
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{keys:?}");
    let fresh = open(config(&["todos"]), MemoryStorage::new());
    pull(&fresh, &tap, "todos");
    let mut titles: Vec<String> = local(&fresh, "todos")
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles, ["t0", "t1", "t2"]);
}
