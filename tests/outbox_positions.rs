//! Outbox positions come from blocks each engine (tab) reserves (`src/core/tx/alloc.rs`): a
//! write takes its position from memory, yet a record's changes stay in the order they were made
//! when two tabs change it.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::cell::Cell;
use std::rc::Rc;

use ferry::core::mutation::Kind;
use mem_server::MemServer;
use native_env::*;
use serde_json::json;

#[test]
fn a_change_made_in_one_tab_goes_after_the_other_tabs_pending_change_of_the_record() {
    let (a, storage) = open_todos();
    create(&a, "todos", json!({"title": "warm"})); // a holds a block from here on
    let b = open(config(&["todos"]), storage.clone());
    create(&b, "todos", json!({"id": "x", "title": "b's"})); // b's block lies above a's
                                                             // b's create goes out and its answer is lost: it stays in flight, and a change made now is
                                                             // a new entry after it.
    let s = MemServer::new();
    s.fail_next(2, 503, None);
    let _ = flush(&b, &s);
    // a has not heard of b's write (no retire_block): its own block lies below b's create.
    update(&a, "todos", "x", json!({"title": "a's"}));
    let order: Vec<(Kind, String)> = block_on(a.outbox())
        .expect("outbox")
        .into_iter()
        .filter(|i| i.record_id == "x")
        .map(|i| (i.kind, i.record_id))
        .collect();
    assert_eq!(
        order,
        [
            (Kind::Create, "x".to_string()),
            (Kind::Update, "x".to_string())
        ],
        "the update is numbered after the create"
    );
    flush_all(&a, &s);
    assert_eq!(
        s.record("todos", "x").expect("on the server")["title"],
        "a's"
    );
}

#[test]
fn a_write_takes_no_clock_request_while_its_block_lasts() {
    let (db, storage) = open_todos();
    create(&db, "todos", json!({"title": "first"})); // reserves the block
    let clock = |s: &ferry::core::MemoryStorage| {
        use ferry::core::{Key, Storage, Table, Txn};
        block_on(async {
            let tx = s.begin(false).await.unwrap();
            tx.get(Table::State, &Key::str("clock")).await.unwrap()
        })
    };
    let before = clock(&storage);
    for n in 0..50 {
        create(&db, "todos", json!({"n": n}));
    }
    assert_eq!(
        clock(&storage),
        before,
        "the clock is not written per write"
    );
    assert_eq!(pending(&db), 51);
    let ids: std::collections::HashSet<String> = block_on(db.outbox())
        .unwrap()
        .into_iter()
        .map(|i| i.mutation_id)
        .collect();
    assert_eq!(ids.len(), 51, "every mutation id its own");
}

/// A round sends two entries that were neighbours when it picked them, but whose positions are
/// not consecutive (one tab's block lies far below the other's). Meanwhile the tab with the
/// lower block writes again, inside that gap. The round's range delete of what it sent must not
/// take that new entry with it: it is still to be sent.
#[test]
fn an_entry_written_between_a_rounds_entries_while_it_is_out_is_kept() {
    let (a, storage) = open_todos();
    create(&a, "todos", json!({"id": "first"})); // a's block starts at the bottom
    let b = open(config(&["todos"]), storage.clone());
    create(&b, "todos", json!({"id": "second"})); // b's block lies above a's
    let tap = Tap::new(MemServer::new());
    let a_writes = Rc::new(a);
    let late = a_writes.clone();
    let once = Cell::new(false);
    tap.hook(move |_| {
        if !once.replace(true) {
            // a has not heard of b: its position lies between first's and second's.
            create(&late, "todos", json!({"id": "late"}));
        }
        None
    });
    flush(&b, &tap);
    tap.unhook();
    let s = &tap.inner;
    let shape: Vec<(Kind, String)> = block_on(b.outbox())
        .expect("outbox")
        .into_iter()
        .map(|i| (i.kind, i.record_id))
        .filter(|(_, r)| r == "late")
        .collect();
    let sent_late = s.records("todos").iter().any(|r| r["id"] == "late");
    assert!(
        sent_late || shape == [(Kind::Create, "late".to_string())],
        "late's create is neither sent nor pending"
    );
    flush_all(&b, s);
    assert!(s.records("todos").iter().any(|r| r["id"] == "late"));
}
