//! A create whose answer was lost, sent again to a server that ignores `Idempotency-Key`
//! (PROTOCOL.md section 3 makes it optional): Ferry first looks for it on the server by its
//! client id, and takes the record found as the create's answer instead of storing it twice.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::future::Future;

use ferry::core::sync::flush::RoundEnd;
use mem_server::MemServer;
use native_env::*;
use serde_json::json;

fn forgetful() -> MemServer {
    let s = MemServer::new();
    s.set_idempotency(false);
    s
}

#[test]
fn a_create_whose_answer_was_lost_is_found_not_stored_twice() {
    for plain in [false, true] {
        let (db, _) = open_todos();
        let s = forgetful();
        s.set_envelope(!plain); // with a cursor, and with full reads only
        let tap = Tap::new(s.clone());
        let a = create(&db, "todos", json!({"title": "a"}));
        s.drop_after_commit(1);
        flush(&db, &tap);
        assert_eq!(s.records("todos").len(), 1, "stored, its answer lost");
        tap.clear();
        flush_all(&db, &tap);
        assert_eq!(s.records("todos").len(), 1, "plain {plain}: stored once");
        let posts = tap.requests().iter().filter(|r| r.method == "POST").count();
        assert_eq!(posts, 0, "plain {plain}: not sent again");
        let mine = get(&db, "todos", &a).expect("by its temporary id");
        assert_eq!(
            mine["id"],
            s.records("todos")[0]["id"],
            "it has the server's id"
        );
        assert_eq!(pending(&db), 0);
    }
}

#[test]
fn a_create_that_never_arrived_is_sent_again() {
    let (db, _) = open_todos();
    let s = forgetful();
    let tap = Tap::new(s.clone());
    create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    s.drop_before(2); // both fail before reaching the server
    flush(&db, &tap);
    assert!(s.records("todos").is_empty());
    flush_all(&db, &tap);
    let titles: Vec<_> = s
        .records("todos")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(titles, [json!("a"), json!("b")]);
}

#[test]
fn only_creates_that_may_have_landed_are_looked_for() {
    let (db, _) = open_todos();
    let s = forgetful();
    let tap = Tap::new(s.clone());
    create(&db, "todos", json!({"title": "a"}));
    s.fail_next(1, 503, None); // answered: not stored
    flush(&db, &tap);
    db.env.advance(60_000.0);
    tap.clear();
    flush_all(&db, &tap);
    let methods: Vec<String> = tap.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["POST"], "no read first");
}

#[test]
fn one_read_serves_a_whole_round() {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, ferry::core::MemoryStorage::new());
    let s = forgetful();
    let tap = Tap::new(s.clone());
    for i in 0..5 {
        create(&db, "todos", json!({ "i": i }));
    }
    s.drop_after_commit(1); // the batch is stored, its answer lost
    flush(&db, &tap);
    assert_eq!(s.records("todos").len(), 5);
    tap.clear();
    flush_all(&db, &tap);
    let methods: Vec<String> = tap.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["GET"], "one read, nothing sent again");
    assert_eq!(s.records("todos").len(), 5);
    assert_eq!(pending(&db), 0);
    let mut ids: Vec<_> = local(&db, "todos")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
}

#[test]
fn a_create_that_cannot_be_looked_for_waits() {
    let (db, _) = open_todos();
    let s = forgetful();
    let tap = Tap::new(s.clone());
    create(&db, "todos", json!({"title": "a"}));
    s.drop_after_commit(1);
    flush(&db, &tap);
    tap.hook(|req| (req.method == "GET").then(|| Ok(json_response(500, json!({})))));
    tap.clear();
    flush(&db, &tap);
    let posts = tap.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 0, "not sent again unseen");
    assert_eq!(pending(&db), 1);
    tap.unhook();
    sent_again_stored_once(&db, &tap, &s);
}

/// A minute later the queue goes again: the create ends stored once, nothing pending.
fn sent_again_stored_once(db: &Db, tap: &Tap<MemServer>, s: &MemServer) {
    db.env.advance(60_000.0);
    flush_all(db, tap);
    assert_eq!(s.records("todos").len(), 1, "stored once");
    assert_eq!(pending(db), 0);
}

#[test]
fn a_create_answered_500_after_it_was_stored_is_looked_for() {
    let (db, _) = open_todos();
    let s = forgetful();
    let tap = Tap::new(s.clone());
    let inner = s.clone();
    tap.hook(move |req| {
        (req.method == "POST").then(|| {
            let _ = inner.send_now(req.clone());
            Ok(json_response(500, json!({"error": "after commit"})))
        })
    });
    create(&db, "todos", json!({"title": "a"}));
    flush(&db, &tap);
    tap.unhook();
    sent_again_stored_once(&db, &tap, &s);
}

#[test]
fn a_server_that_drops_the_client_id_is_warned_of_once() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let tap = Tap::new(s.clone());
    create(&db, "todos", json!({"title": "kept"}));
    flush_all(&db, &tap);
    assert!(
        db.env.warnings.borrow().is_empty(),
        "a server that keeps it"
    );
    // An answer of the id and the version alone says nothing of what was stored.
    let server = s.clone();
    tap.hook(move |req| {
        (req.method == "POST").then(|| {
            let mut res = server.send_now(req.clone())?;
            let v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
            res.body = json!({"id": v["id"], "version": v["version"]}).to_string();
            Ok(res)
        })
    });
    create(&db, "todos", json!({"title": "terse"}));
    flush_all(&db, &tap);
    assert!(db.env.warnings.borrow().is_empty(), "an id alone");
    let server = s.clone();
    tap.hook(move |req| {
        (req.method == "POST").then(|| {
            let mut res = server.send_now(req.clone())?;
            let mut v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
            v.as_object_mut().unwrap().remove("clientId"); // DRF's serializer drops it
            res.body = v.to_string();
            Ok(res)
        })
    });
    create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &tap);
    let warned = db.env.warnings.borrow();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("`todos`") && warned[0].contains("clientId"),
        "{warned:?}"
    );
}

#[test]
fn a_server_that_echoes_the_client_id_unstored_is_warned_of_when_a_lookup_lists() {
    // tastypie answers a create with what was posted, `clientId` included, and stores only its
    // model's fields: the answer looks right, the list shows it is not kept.
    let (db, _) = open_todos();
    let s = forgetful();
    s.set_envelope(false);
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        (req.method == "GET").then(|| {
            let mut res = server.send_now(req.clone())?;
            let mut v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
            for r in v.as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("clientId");
            }
            res.body = v.to_string();
            Ok(res)
        })
    });
    create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    assert!(db.env.warnings.borrow().is_empty(), "the answer echoed it");
    create(&db, "todos", json!({"title": "b"}));
    s.drop_after_commit(1);
    flush(&db, &tap);
    flush_all(&db, &tap);
    let warned = db.env.warnings.borrow();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("lists `todos` without the `clientId`"),
        "{warned:?}"
    );
}

/// Reloads the page while the first of `n` creates (`t0`, `t1`, ...) is out on `transport`
/// (the others picked with it, never sent): the store reopened.
fn reloaded_with_creates_out(transport: &impl ferry::core::sync::http::Transport, n: usize) -> Db {
    let (db, storage) = open_todos();
    for i in 0..n {
        create(&db, "todos", json!({ "title": format!("t{i}") }));
    }
    {
        let mut flush = std::pin::pin!(db.flush(transport, &[]));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(flush.as_mut().poll(&mut cx).is_pending());
    }
    drop(db);
    open(config(&["todos"]), storage)
}

#[test]
fn a_create_out_when_the_page_reloaded_is_found_not_stored_twice() {
    let s = forgetful();
    s.set_envelope(false);
    let db = reloaded_with_creates_out(&Vanishing(s.clone()), 1);
    assert_eq!(s.records("todos").len(), 1, "stored, no answer");
    let tap = Tap::new(s.clone());
    flush_all(&db, &tap);
    assert_eq!(s.records("todos").len(), 1, "stored once");
    assert_eq!(pending(&db), 0);
    assert_eq!(local(&db, "todos")[0]["id"], s.records("todos")[0]["id"]);
}

#[test]
fn a_create_out_when_the_page_reloaded_that_the_server_stores_late_is_stored_once() {
    // A slow server (or a slow link) has the request but has not stored it when the reloaded
    // page looks for it: sent again at once, it would be stored twice.
    let s = forgetful();
    s.set_envelope(false);
    let out = Stalled::new();
    let db = reloaded_with_creates_out(&out, 1);
    let tap = Tap::new(s.clone());
    let (end, _) = flush(&db, &tap);
    assert!(posts(&tap).is_empty(), "not sent while it may be landing");
    let RoundEnd::Held { until } = end else {
        panic!("waits, looked for again later: {end:?}");
    };
    assert!(until <= T0 + 10_000.0, "{until}");
    assert_eq!(pending(&db), 1);
    out.deliver(&s);
    db.env.advance(10_000.0);
    flush_all(&db, &tap);
    assert!(posts(&tap).is_empty(), "found, not sent");
    assert_eq!(s.records("todos").len(), 1, "stored once");
    assert_eq!(local(&db, "todos")[0]["id"], s.records("todos")[0]["id"]);
}

#[test]
fn a_create_out_when_the_page_reloaded_that_never_arrived_is_sent_after_the_wait() {
    let s = forgetful();
    let out = Stalled::new();
    // Three picked together, the first one out: the two that never left go at once.
    let db = reloaded_with_creates_out(&out, 3);
    let tap = Tap::new(s.clone());
    flush(&db, &tap);
    assert_eq!(posts(&tap), ["t1", "t2"]);
    tap.clear();
    db.env.advance(10_000.0);
    flush_all(&db, &tap);
    assert_eq!(posts(&tap), ["t0"], "sent once the wait is over");
    assert_eq!(s.records("todos").len(), 3);
    assert_eq!(pending(&db), 0);
}

#[test]
fn a_create_whose_send_failed_in_this_page_goes_at_its_retry() {
    // Only a request out when the page went waits for the server: one whose failure this page
    // saw (the connection broke before the server read it) goes again at its retry.
    let (db, _) = open_todos();
    let s = forgetful();
    let tap = Tap::new(s.clone());
    create(&db, "todos", json!({"title": "a"}));
    s.drop_before(1);
    let (end, _) = flush(&db, &tap);
    let RoundEnd::Wait { retry_at, .. } = end else {
        panic!("{end:?}");
    };
    assert!(retry_at < T0 + 2_000.0, "{retry_at}");
    tap.clear();
    db.env.advance(2_000.0);
    let (end, _) = flush(&db, &tap);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(posts(&tap), ["a"]);
    assert_eq!(s.records("todos").len(), 1);
}

fn posts(tap: &Tap<MemServer>) -> Vec<String> {
    let reqs = tap.requests();
    reqs.iter()
        .filter(|r| r.method == "POST")
        .map(|r| body(r)["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_round_cut_off_after_its_first_create_was_stored_sends_the_rest_once() {
    // The tab died while the first create's answer was on its way: the server has it, and the
    // creates after it never left.
    let s = forgetful();
    let db = reloaded_with_creates_out(&Vanishing(s.clone()), 3);
    assert_eq!(s.records("todos").len(), 1);
    let tap = Tap::new(s.clone());
    let (end, _) = flush(&db, &tap);
    assert_eq!(end, ferry::core::sync::flush::RoundEnd::Idle);
    assert_eq!(posts(&tap), ["t1", "t2"]);
    assert_eq!(s.records("todos").len(), 3);
}

#[test]
fn a_collection_that_cannot_be_listed_does_not_hold_a_create() {
    // A write-only endpoint (no GET route): the lookup can never work, so the create goes.
    let (db, _) = open_todos();
    let s = MemServer::new(); // honours Idempotency-Key: the create sent again is a replay
    let tap = Tap::new(s.clone());
    tap.hook(|req| (req.method == "GET").then(|| Ok(json_response(405, json!({"detail": "no"})))));
    create(&db, "todos", json!({"title": "a"}));
    s.drop_after_commit(1);
    flush(&db, &tap);
    db.env.advance(60_000.0);
    let (_, report) = flush(&db, &tap);
    assert_eq!(pending(&db), 0, "{report:?}");
    assert_eq!(s.records("todos").len(), 1);
}

#[test]
fn a_server_that_refuses_the_client_id_is_warned_of_once() {
    // LoopBack's strict models refuse any field they do not declare, Ferry's own among them.
    let (db, _) = open_todos();
    let s = forgetful();
    let tap = Tap::new(s.clone());
    tap.hook(|req| {
        (req.method == "POST").then(|| {
            let sent = body(req);
            let answer = if sent["title"] == "long" {
                // pydantic: the refusal of another field, echoing the record sent.
                let msg = "String should have at most 3 characters";
                json!({ "detail": [{ "loc": ["body", "title"], "msg": msg, "input": sent }] })
            } else {
                let details = json!([{ "code": "additionalProperties", "info": "clientId" }]);
                json!({ "error": { "details": details } })
            };
            Ok(json_response(422, answer))
        })
    });
    create(&db, "todos", json!({"title": "long"}));
    flush_all(&db, &tap);
    assert!(
        db.env.warnings.borrow().is_empty(),
        "a refusal of the app's field"
    );
    create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &tap);
    let warned = db.env.warnings.borrow();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("declare it"), "{warned:?}");
}

#[test]
fn a_create_stored_twice_is_warned_of_when_a_read_shows_both() {
    let (db, _) = open_todos();
    let s = forgetful();
    s.set_envelope(false);
    let cid = "tmp-n0-0000000001";
    s.server_create("todos", json!({"title": "a", "clientId": cid}));
    // An app's own field of that name (a customer's id) is shared by design.
    s.server_create("todos", json!({"title": "x", "clientId": "acme"}));
    s.server_create("todos", json!({"title": "y", "clientId": "acme"}));
    pull(&db, &s, "todos");
    assert!(db.env.warnings.borrow().is_empty(), "one copy");
    s.server_create("todos", json!({"title": "a", "clientId": cid}));
    pull(&db, &s, "todos");
    let warned = db.env.warnings.borrow();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains(cid), "{warned:?}");
}
