//! A conflict the policy settles is kept, in the transaction that carried out its outcome,
//! until its event is told: a page that unloads between the two (a reload a few ms after the
//! answer) leaves it for the next store opened on the database to tell.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

#[test]
fn a_settled_conflict_is_kept_until_told_and_a_store_opened_later_finds_it() {
    let (db, storage) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a", "n": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &id).expect("created"));
    s.server_patch("todos", &sid, json!({"n": 2})); // another device edits it
    delete(&db, "todos", &sid); // this one deletes it: under `merge` the edit comes back
    let report = flush_all(&db, &s);
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_eq!(report.untold.len(), 1);
    assert_eq!(get(&db, "todos", &sid).expect("back")["n"], 2);
    // The page went before its event was out: a store opened on the database finds it.
    let later = open(config(&["todos"]), storage.clone());
    let kept = block_on(later.untold_conflicts()).expect("read");
    assert_eq!(kept.conflicts, report.conflicts);
    assert_eq!(kept.untold, report.untold);
    // Told, it is forgotten, for every store on the database.
    block_on(later.told(&kept.untold)).expect("forgotten");
    assert!(block_on(later.untold_conflicts())
        .unwrap()
        .untold
        .is_empty());
    assert!(block_on(db.untold_conflicts())
        .unwrap()
        .conflicts
        .is_empty());
}

#[test]
fn a_conflict_without_an_event_is_not_kept() {
    // A stale version over a record the server rewrote unchanged (its version moved, not its
    // fields): sent again over the new version, with no event, so nothing to tell.
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a", "n": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &id).expect("created"));
    s.server_patch("todos", &sid, json!({"n": 1})); // the version sent goes stale
    assert_eq!(s.version("todos", &sid), Some(2));
    update(&db, "todos", &sid, json!({"title": "b"}));
    let report = flush_all(&db, &s);
    assert!(
        report.conflicts.is_empty() && report.untold.is_empty(),
        "{report:?}"
    );
    let on_server = s.record("todos", &sid).expect("there");
    assert_eq!(
        (&on_server["title"], &on_server["n"]),
        (&json!("b"), &json!(1))
    );
    assert_eq!(
        s.version("todos", &sid),
        Some(3),
        "sent over the version it met"
    );
    assert!(block_on(db.untold_conflicts()).unwrap().untold.is_empty());
}

#[test]
fn kept_conflicts_are_found_in_the_order_they_were_settled() {
    // Outbox positions 9 to 12: in the mutation ids' own order, `node-10` came before `node-9`.
    let (db, storage) = open_todos();
    let s = MemServer::new();
    let ids: Vec<String> = (0..4)
        .map(|n| create(&db, "todos", json!({"title": "a", "n": n})))
        .collect();
    flush_all(&db, &s);
    let sids: Vec<String> = ids
        .iter()
        .map(|id| id_of(&get(&db, "todos", id).expect("created")))
        .collect();
    for n in 0..4 {
        create(&db, "todos", json!({"title": "other", "n": n}));
    }
    for sid in &sids {
        s.server_patch("todos", sid, json!({"n": 9})); // another device edits each
        delete(&db, "todos", sid); // this one deletes it: each delete meets a conflict
    }
    let report = flush_all(&db, &s);
    let settled: Vec<Value> = report.conflicts.iter().map(|c| c.id.clone()).collect();
    assert_eq!(settled, sids.iter().map(|s| json!(s)).collect::<Vec<_>>());
    let later = open(config(&["todos"]), storage);
    let kept = block_on(later.untold_conflicts()).expect("read");
    assert_eq!(kept.conflicts, report.conflicts, "in the order settled");
}

#[test]
fn a_conflict_names_its_record_by_the_id_the_record_holds() {
    // A server whose ids are numbers: the event's id is the number, as the `change` events'
    // are, so an app can compare it with the record's `id` it holds.
    let (db, _) = open_todos();
    let s = MemServer::new();
    s.set_numeric_ids(true);
    let id = create(&db, "todos", json!({"title": "a", "n": 1}));
    flush_all(&db, &s);
    let record = get(&db, "todos", &id).expect("created");
    assert!(record["id"].is_number(), "{record:?}");
    let sid = id_of(&record);
    s.server_patch("todos", &sid, json!({"n": 2}));
    delete(&db, "todos", &sid);
    let report = flush_all(&db, &s);
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_eq!(report.conflicts[0].id, record["id"]);
}
