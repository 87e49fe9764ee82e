//! A server that cuts its list without saying so (a bare array at a default limit: Sails'
//! blueprints at 30, FastAPI's tutorial at 100): before a full read removes records, one or two
//! of them are asked for by their own URL, and one still there keeps them all.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::sync::http::NetError;
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

/// A plain server whose list answers are `edit`ed.
fn listing(edit: impl Fn(&mut Vec<Value>) + 'static) -> (MemServer, Tap<MemServer>) {
    let s = MemServer::plain();
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        (req.method == "GET" && is_list(&req.url)).then(|| {
            let mut res = server.send_now(req.clone())?;
            let mut v: Value = serde_json::from_str(&res.body).unwrap();
            edit(v.as_array_mut().unwrap());
            res.body = v.to_string();
            Ok(res)
        })
    });
    (s, tap)
}

/// A plain server whose list answers hold the first `limit` records only.
fn capped(limit: usize) -> (MemServer, Tap<MemServer>) {
    listing(move |v| v.truncate(limit))
}

/// A device that created `n` records (`t0`, `t1`, ...) through `tap`, all acknowledged; and
/// their ids.
fn synced(n: usize, tap: &Tap<MemServer>) -> (Db, Vec<String>) {
    let (db, _) = open_todos();
    let ids = (0..n)
        .map(|i| create(&db, "todos", json!({ "title": format!("t{i}") })))
        .collect();
    flush_all(&db, tap);
    (db, ids)
}

/// Whether `url` reads the list (with or without a query).
fn is_list(url: &str) -> bool {
    url.split('?').next() == Some("/api/todos")
}

fn record_gets(tap: &Tap<MemServer>) -> usize {
    let reqs = tap.requests();
    reqs.iter()
        .filter(|r| r.method == "GET" && !is_list(&r.url))
        .count()
}

#[test]
fn a_list_cut_at_a_limit_removes_nothing() {
    let (s, tap) = capped(30);
    let (db, ids) = synced(40, &tap);
    assert_eq!(s.records("todos").len(), 40);
    tap.clear();
    let report = pull(&db, &tap, "todos");
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    assert_eq!(
        local(&db, "todos").len(),
        40,
        "every acknowledged create kept"
    );
    for id in &ids {
        assert!(get(&db, "todos", id).is_some(), "{id}");
    }
    assert_eq!(record_gets(&tap), 1, "one record asked for");
    let warned = db.env.warnings.borrow();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("cuts its list"), "{warned:?}");
}

#[test]
fn records_deleted_on_the_server_are_removed() {
    let (s, tap) = capped(100);
    let (db, _) = synced(13, &tap);
    let gone: Vec<String> = s.records("todos")[2..5]
        .iter()
        .map(|r| id_of(r.as_object().unwrap()))
        .collect();
    for id in &gone {
        s.server_delete("todos", id);
    }
    tap.clear();
    pull(&db, &tap, "todos");
    assert_eq!(local(&db, "todos").len(), 10);
    assert!(db.env.warnings.borrow().is_empty());
    assert_eq!(
        record_gets(&tap),
        3,
        "the last, the first and the middle asked for"
    );
    // A read that removes nothing asks for nothing.
    tap.clear();
    pull(&db, &tap, "todos");
    assert_eq!(record_gets(&tap), 0);
    // Nor does a list whose length is no limit's (9): it is taken at its word.
    let id = id_of(s.records("todos")[0].as_object().unwrap());
    s.server_delete("todos", &id);
    tap.clear();
    pull(&db, &tap, "todos");
    assert_eq!(local(&db, "todos").len(), 9);
    assert_eq!(record_gets(&tap), 0);
}

#[test]
fn a_filtered_view_of_no_round_length_drops_what_left_it() {
    // `?done=false`: a record done elsewhere leaves the list, and its own URL still shows it.
    let (s, tap) = listing(|v| v.retain(|r| r["done"] != true));
    let (db, _) = synced(8, &tap);
    let id = id_of(s.records("todos")[0].as_object().unwrap());
    s.server_put("todos", &id, json!({"title": "t0", "done": true}));
    pull(&db, &tap, "todos");
    assert_eq!(local(&db, "todos").len(), 7);
    assert!(get(&db, "todos", &id).is_none());
}

#[test]
fn a_removal_that_cannot_be_checked_waits() {
    let (s, tap) = capped(100);
    let (db, _) = synced(11, &tap);
    let id = id_of(s.records("todos")[0].as_object().unwrap());
    s.server_delete("todos", &id);
    let server = s.clone();
    tap.hook(move |req| {
        Some(if req.url == "/api/todos" {
            server.send_now(req.clone())
        } else {
            Err(NetError::Failed("connection reset".into()))
        })
    });
    pull(&db, &tap, "todos");
    assert_eq!(local(&db, "todos").len(), 11, "not removed unproven");
    tap.unhook();
    pull(&db, &tap, "todos");
    assert_eq!(
        local(&db, "todos").len(),
        10,
        "removed once the server says so"
    );
}

#[test]
fn a_cut_is_seen_when_the_device_holds_as_many_records_as_the_list() {
    // Two devices adding records: the list (cut at 30) holds the first 30, this device as many,
    // its own last 10 among them.
    let (s, tap) = capped(30);
    let (db, _) = synced(20, &tap);
    for i in 0..10 {
        s.server_create("todos", json!({ "title": format!("theirs {i}") }));
    }
    let mine: Vec<String> = (0..10)
        .map(|i| create(&db, "todos", json!({ "title": format!("mine {i}") })))
        .collect();
    flush_all(&db, &tap);
    assert_eq!(local(&db, "todos").len(), 30);
    pull(&db, &tap, "todos");
    for id in &mine {
        assert!(get(&db, "todos", id).is_some(), "{id} kept");
    }
}

#[test]
fn a_cut_whose_ends_were_deleted_elsewhere_is_still_seen() {
    let (s, tap) = capped(30);
    let (db, _) = synced(80, &tap);
    for id in ["31", "80"] {
        s.server_delete("todos", id);
    }
    pull(&db, &tap, "todos");
    assert_eq!(
        local(&db, "todos").len(),
        80,
        "the middle one is still there"
    );
}

#[test]
fn a_collection_url_with_a_query_is_taken_at_its_word() {
    let (s, tap) = capped(100);
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().url = "/api/todos?done=false".into();
    let db = open(cfg, ferry::core::MemoryStorage::new());
    for i in 0..11 {
        create(&db, "todos", json!({ "title": format!("t{i}") }));
    }
    flush_all(&db, &tap);
    let id = id_of(s.records("todos")[0].as_object().unwrap());
    s.server_delete("todos", &id);
    tap.clear();
    pull(&db, &tap, "todos");
    assert_eq!(local(&db, "todos").len(), 10);
    assert_eq!(record_gets(&tap), 0);
}
