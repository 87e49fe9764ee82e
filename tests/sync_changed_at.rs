//! `Ferry-Changed-At` never goes backwards from one store (PROTOCOL.md section 4), also when
//! the device clock is set back between a write and the next, across a reload or a tab with a
//! clock of its own: a server that keeps the last writer's must keep this store's last write.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::{Engine, MemoryStorage, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

const HOUR: f64 = 3_600_000.0;

fn stamps(tap: &Tap<MemServer>) -> Vec<u64> {
    tap.requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| header(r, "Ferry-Changed-At").unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_clock_set_back_across_a_reload_does_not_lose_the_later_write() {
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    s.set_lww(true);
    let tap = Tap::new(s.clone());
    // Two hours fast: a record and an edit of it.
    let fast = block_on(Engine::open(
        config(&["todos"]),
        storage.clone(),
        TestEnv::new(),
    ))
    .unwrap();
    fast.env.advance(2.0 * HOUR);
    let id = create(&fast, "todos", json!({"title": "v1"}));
    flush_all(&fast, &tap);
    let sid = id_of(&get(&fast, "todos", &id).unwrap());
    update(&fast, "todos", &sid, json!({"title": "v2"}));
    flush_all(&fast, &tap);
    drop(fast);
    // The clock is put right; the page is reloaded and the record edited again.
    let db = block_on(Engine::open(config(&["todos"]), storage, TestEnv::new())).unwrap();
    update(&db, "todos", &sid, json!({"title": "v3"}));
    flush_all(&db, &tap);
    let sent = stamps(&tap);
    assert!(sent.windows(2).all(|w| w[0] < w[1]), "{sent:?}");
    assert_eq!(
        s.record("todos", &sid).unwrap()["title"],
        "v3",
        "the last write stands"
    );
    assert_eq!(get(&db, "todos", &sid).unwrap()["title"], "v3");
}

#[test]
fn two_tabs_with_clocks_apart_stamp_in_the_order_they_wrote() {
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    s.set_lww(true);
    let tap = Tap::new(s.clone());
    let one = block_on(Engine::open(
        config(&["todos"]),
        storage.clone(),
        TestEnv::new(),
    ))
    .unwrap();
    let two = block_on(Engine::open(
        config(&["todos"]),
        storage,
        TestEnv::seeded(3),
    ))
    .unwrap();
    one.env.advance(2.0 * HOUR);
    let id = create(&one, "todos", json!({"title": "from one"}));
    flush_all(&one, &tap);
    let sid = id_of(&get(&one, "todos", &id).unwrap());
    // The other tab's clock is two hours behind; it writes later.
    update(&two, "todos", &sid, json!({"title": "from two, later"}));
    flush_all(&one, &tap); // the leader sends it
    assert_eq!(s.record("todos", &sid).unwrap()["title"], "from two, later");
    let sent = stamps(&tap);
    assert!(sent.windows(2).all(|w| w[0] < w[1]), "{sent:?}");
}

#[test]
fn a_delete_that_loses_on_a_last_writer_wins_server_is_a_conflict_not_a_deletion() {
    let s = MemServer::new();
    s.set_lww(true);
    let tap = Tap::new(s.clone());
    let b = open(config(&["todos"]), MemoryStorage::new());
    let id = create(&b, "todos", json!({"title": "first"}));
    flush_all(&b, &tap);
    let sid = id_of(&get(&b, "todos", &id).unwrap());
    // Device A's clock is three hours slow.
    let a = block_on(Engine::open(
        config(&["todos"]),
        MemoryStorage::new(),
        TestEnv::seeded(4),
    ))
    .unwrap();
    a.env.advance(-3.0 * HOUR);
    pull(&a, &tap, "todos");
    update(&b, "todos", &sid, json!({"title": "B's"}));
    flush_all(&b, &tap);
    delete(&a, "todos", &sid);
    let report = flush_all(&a, &tap);
    assert_eq!(report.conflicts.len(), 1, "A is told");
    assert!(s.record("todos", &sid).is_some(), "the server kept it");
    let back = get(&a, "todos", &sid).expect("so does A");
    assert_eq!(back["title"], "B's");
}

/// An update that loses is answered `200` with the record that won, which holds none of what the
/// loser sent. Merged over what was sent (as terse answers are), a field only the loser set
/// stayed here for good: no later read shows a change of that record.
#[test]
fn an_update_that_loses_on_a_last_writer_wins_server_takes_the_record_that_won() {
    for method in [UpdateMethod::Put, UpdateMethod::Patch] {
        for pull_first in [false, true] {
            let what = format!("{method:?}, pulled first: {pull_first}");
            let mut cfg = config(&["todos"]);
            cfg.collections.get_mut("todos").unwrap().update_method = method;
            let s = MemServer::new();
            s.set_lww(true);
            let tap = Tap::new(s.clone());
            let b = open(cfg.clone(), MemoryStorage::new());
            let id = create(&b, "todos", json!({"title": "first", "n": 1}));
            flush_all(&b, &tap);
            let sid = id_of(&get(&b, "todos", &id).unwrap());
            // Device A's clock is three hours slow: its edit, made offline, loses to B's.
            let a = block_on(Engine::open(cfg, MemoryStorage::new(), TestEnv::seeded(4))).unwrap();
            a.env.advance(-3.0 * HOUR);
            pull(&a, &tap, "todos");
            update(&a, "todos", &sid, json!({"tag": "A's"}));
            update(&b, "todos", &sid, json!({"title": "B's"}));
            flush_all(&b, &tap);
            if pull_first {
                pull(&a, &tap, "todos");
            }
            flush_all(&a, &tap);
            let theirs = s.record("todos", &sid).unwrap();
            assert_eq!(strip(&theirs), json!({"title": "B's", "n": 1}), "{what}");
            let mine = Value::Object(get(&a, "todos", &sid).unwrap());
            assert_eq!(strip(&mine), strip(&theirs), "{what}");
            assert_eq!(mine["version"], theirs["version"], "{what}");
        }
    }
}
