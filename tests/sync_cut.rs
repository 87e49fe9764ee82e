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
    // No answer, a refusal, a rate limit, a server error: none says the record is gone.
    for answer in [None, Some(503), Some(429), Some(403)] {
        let server = s.clone();
        tap.hook(move |req| {
            Some(if req.url == "/api/todos" {
                server.send_now(req.clone())
            } else {
                match answer {
                    None => Err(NetError::Failed("connection reset".into())),
                    Some(status) => Ok(json_response(status, json!({"detail": "no"}))),
                }
            })
        });
        pull(&db, &tap, "todos");
        assert_eq!(
            local(&db, "todos").len(),
            11,
            "{answer:?}: not removed unproven"
        );
    }
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
fn a_filtered_view_drops_what_left_it_and_keeps_what_its_cut_left_out() {
    // `?done=false`, cut at 30 (Sails caps filtered lists too); record URLs carry the query,
    // and the record route ignores it.
    let (s, tap) = listing(|v| {
        v.retain(|r| r["done"] != true);
        v.truncate(30);
    });
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().url = "/api/todos?done=false".into();
    let db = open(cfg, ferry::core::MemoryStorage::new());
    let ids: Vec<String> = (0..36)
        .map(|i| {
            create(
                &db,
                "todos",
                json!({ "title": format!("t{i}"), "done": false }),
            )
        })
        .collect();
    flush_all(&db, &tap);
    tap.clear();
    pull(&db, &tap, "todos");
    assert_eq!(local(&db, "todos").len(), 36, "the cut kept");
    assert_eq!(record_gets(&tap), 1);
    for id in &ids {
        assert!(get(&db, "todos", id).is_some(), "{id}");
    }
    // Six done elsewhere: 30 left in view, all listed, a limit's length: the records asked for
    // show they left the view, and are dropped.
    let done: Vec<String> = s.records("todos")[..6]
        .iter()
        .map(|r| id_of(r.as_object().unwrap()))
        .collect();
    for id in &done {
        s.server_put("todos", id, json!({ "title": "x", "done": true }));
    }
    pull(&db, &tap, "todos");
    assert_eq!(local(&db, "todos").len(), 30);
    for id in &done {
        assert!(get(&db, "todos", id).is_none(), "{id} left the view");
    }
}

/// An update answered 404 whose record a list cut at its limit leaves out, and whose own URL
/// cannot be read: not taken for deleted (the edit kept, waiting), whether the 404 was a
/// router's page (Express's "Cannot PATCH") or the API's JSON.
#[test]
fn an_update_of_a_record_a_cut_list_leaves_out_is_not_taken_for_deleted() {
    for page in [true, false] {
        let (s, tap) = capped(30);
        let (db, ids) = synced(35, &tap);
        let server = s.clone();
        tap.hook(move |req| {
            let list = is_list(&req.url);
            Some(match req.method.as_str() {
                "PATCH" | "PUT" if page => Ok(ferry::core::sync::http::HttpResponse {
                    status: 404,
                    headers: vec![("Content-Type".into(), "text/html".into())],
                    body: "<pre>Cannot PUT</pre>".into(),
                }),
                "PATCH" | "PUT" => Ok(json_response(404, json!({"error": "Not Found"}))),
                "GET" if list => server.send_now(req.clone()).map(|mut res| {
                    let mut v: Value = serde_json::from_str(&res.body).unwrap();
                    v.as_array_mut().unwrap().truncate(30);
                    res.body = v.to_string();
                    res
                }),
                _ => Ok(json_response(405, json!({"error": "Method Not Allowed"}))),
            })
        });
        let last = &ids[34];
        update(&db, "todos", last, json!({"title": "edited"}));
        flush(&db, &tap);
        assert_eq!(
            get(&db, "todos", last).unwrap()["title"],
            "edited",
            "page {page}"
        );
        assert_eq!(pending(&db), 1, "page {page}: the edit waits");
    }
}
