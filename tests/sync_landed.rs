//! A create whose answer was lost, sent again to a server that ignores `Idempotency-Key`
//! (PROTOCOL.md section 3 makes it optional): Ferry first looks for it on the server by its
//! client id, and takes the record found as the create's answer instead of storing it twice.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::future::Future;

use ferry::core::storage::Storage;
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

/// A lookup answered 500, or with a captive portal's page in place of the list, is one that
/// failed for now: the create waits for one that answers (found by the simulator against a
/// server without keys, seed 34: the portal's page let the create go, and it was stored twice).
#[test]
fn a_create_that_cannot_be_looked_for_waits() {
    for portal in [false, true] {
        let (db, _) = open_todos();
        let s = forgetful();
        let tap = Tap::new(s.clone());
        create(&db, "todos", json!({"title": "a"}));
        s.drop_after_commit(1);
        flush(&db, &tap);
        if portal {
            s.html_next(1);
        } else {
            tap.hook(|req| (req.method == "GET").then(|| Ok(json_response(500, json!({})))));
        }
        tap.clear();
        flush(&db, &tap);
        let posts = tap.requests().iter().filter(|r| r.method == "POST").count();
        assert_eq!(posts, 0, "portal {portal}: not sent again unseen");
        assert_eq!(pending(&db), 1);
        tap.unhook();
        sent_again_stored_once(&db, &tap, &s);
    }
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
    reloaded_while_flushing(db, storage, transport)
}

/// Starts a flush of `db` over `transport`, reloads the page while its first request is out,
/// and reopens the store on `storage`.
fn reloaded_while_flushing(
    db: Db,
    storage: ferry::core::MemoryStorage,
    transport: &impl ferry::core::sync::http::Transport,
) -> Db {
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
fn a_create_whose_send_failed_waits_for_the_server_then_goes_once() {
    // The connection broke: before the server read the create, or while it was storing it.
    let (db, storage) = open_todos();
    let s = forgetful();
    let tap = Tap::new(s.clone());
    create(&db, "todos", json!({"title": "a"}));
    s.drop_before(1);
    flush(&db, &tap);
    tap.clear();
    db.env.advance(2_000.0);
    let (end, _) = flush(&db, &tap);
    assert!(matches!(end, RoundEnd::Held { .. }), "{end:?}");
    assert!(posts(&tap).is_empty(), "not sent while it may be landing");
    db.env.advance(8_000.0);
    flush_all(&db, &tap);
    assert_eq!(posts(&tap), ["a"]);
    assert_eq!(s.records("todos").len(), 1);
    assert_eq!(block_on(db.outbox()).unwrap().len(), 0);
    assert_eq!(storage.note("out"), None, "nothing left in the note");
}

#[test]
fn a_create_out_at_a_second_reload_waits_from_its_latest_send() {
    // Held after a first reload, sent again once the wait was over, and out again when the
    // page reloads a second time: the wait counts from the latest send.
    let s = forgetful();
    s.set_envelope(false);
    let (db, storage) = open_todos();
    create(&db, "todos", json!({"title": "a"}));
    let db = reloaded_while_flushing(db, storage.clone(), &Stalled::new());
    let tap = Tap::new(s.clone());
    let (end, _) = flush(&db, &tap);
    assert!(matches!(end, RoundEnd::Held { .. }), "{end:?}");
    db.env.advance(10_000.0);
    let again = Stalled::new();
    let db = reloaded_while_flushing(db, storage, &ReadsGo(&s, &again));
    db.env.advance(11_000.0); // the same clock as before the reload
    let (end, _) = flush(&db, &tap);
    assert!(matches!(end, RoundEnd::Held { .. }), "{end:?}");
    assert!(posts(&tap).is_empty());
    again.deliver(&s);
    db.env.advance(10_000.0);
    flush_all(&db, &tap);
    assert!(posts(&tap).is_empty(), "found, not sent");
    assert_eq!(s.records("todos").len(), 1, "stored once");
}

#[test]
fn a_create_out_at_a_reload_whose_lookup_failed_still_waits() {
    let s = forgetful();
    let db = reloaded_with_creates_out(&Stalled::new(), 1);
    let tap = Tap::new(s.clone());
    tap.hook(|req| (req.method == "GET").then(|| Ok(json_response(503, json!({})))));
    let (end, _) = flush(&db, &tap);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    tap.unhook();
    db.env.advance(2_000.0);
    let (end, _) = flush(&db, &tap);
    assert!(matches!(end, RoundEnd::Held { .. }), "{end:?}");
    assert!(posts(&tap).is_empty(), "not sent while it may be landing");
}

#[test]
fn a_hold_costs_no_attempt_and_a_clock_set_back_holds_nothing() {
    let s = forgetful();
    let (db, storage) = open_todos();
    create(&db, "todos", json!({"title": "a"}));
    db.env.advance(60_000.0);
    let db = reloaded_while_flushing(db, storage, &Stalled::new());
    let tap = Tap::new(s.clone());
    // Its mark is a minute ahead of this clock (set back meanwhile): a wait counted from it
    // could last that long, so there is none.
    let (end, _) = flush(&db, &tap);
    assert_eq!(end, RoundEnd::Idle, "sent at once");
    assert_eq!(posts(&tap), ["a"]);

    let (db, storage) = open_todos();
    let tap = Tap::new(forgetful());
    create(&db, "todos", json!({"title": "b"}));
    let db = reloaded_while_flushing(db, storage, &Stalled::new());
    let attempts = || block_on(db.outbox()).unwrap()[0].attempts;
    let before = attempts();
    for _ in 0..3 {
        let (end, _) = flush(&db, &tap);
        assert!(matches!(end, RoundEnd::Held { .. }), "{end:?}");
        db.env.advance(1_000.0);
    }
    assert_eq!(attempts(), before, "held rounds are not attempts");
}

/// Reads reach the server; writes stall on the way (a slow server storing them).
struct ReadsGo<'a>(&'a MemServer, &'a Stalled);

impl ferry::core::sync::http::Transport for ReadsGo<'_> {
    async fn send(
        &self,
        req: ferry::core::sync::http::HttpRequest,
    ) -> Result<ferry::core::sync::http::HttpResponse, ferry::core::sync::http::NetError> {
        if req.method == "GET" {
            self.0.send(req).await
        } else {
            self.1.send(req).await
        }
    }
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

/// An update out when the page reloaded, which the server stored, meets 412 when sent again to a
/// server that ignores `Idempotency-Key`, with its own change in the record: that is its
/// acknowledgement, not a conflict (it was one, with its event, and under `custom` a decision
/// asked of the user about their own change).
#[test]
fn an_update_out_when_the_page_reloaded_that_landed_is_no_conflict() {
    let s = forgetful();
    let tap = Tap::new(s.clone());
    let (db, storage) = open_todos();
    let id = create(&db, "todos", json!({"title": "first"}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"title": "changed"}));
    let db = reloaded_while_flushing(db, storage, &Vanishing(s.clone()));
    assert_eq!(s.record("todos", &sid).unwrap()["title"], "changed");
    let report = flush_all(&db, &tap);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(pending(&db), 0);
    assert_eq!(get(&db, "todos", &sid).unwrap()["title"], "changed");
}
