//! The sync engine end to end against the in-memory protocol server: offline writes, coalescing,
//! temporary ids and references, idempotent retries, failures of every class, reloads during a
//! flush, pulls, batches, plain REST servers and PATCH updates.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::collections::HashSet;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::sync::report::Report;
use ferry::core::{ChangeKind, MemoryStorage, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

fn assert_in_sync(db: &Db, s: &MemServer, c: &str) {
    assert_eq!(local(db, c), s.records(c), "local and server differ in {c}");
}

fn assert_keys_unique(s: &MemServer) {
    let keys = s.applied_keys();
    let set: HashSet<&String> = keys.iter().collect();
    assert_eq!(set.len(), keys.len(), "a key was applied twice: {keys:?}");
}

// ---------------------------------------------------------------- offline writes, coalescing

#[test]
fn offline_writes_then_flush_leave_server_equal_to_local() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    // Some records the server already knows.
    let keep = create(&db, "todos", json!({"title": "keep", "done": false}));
    let edit = create(&db, "todos", json!({"title": "edit", "done": false}));
    let gone = create(&db, "todos", json!({"title": "gone"}));
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    let ids: Vec<String> = s
        .records("todos")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);

    // Offline: create, update, delete.
    s.set_offline(true);
    let fresh = create(&db, "todos", json!({"title": "fresh"}));
    update(
        &db,
        "todos",
        &edit,
        json!({"done": true, "title": "edited"}),
    );
    delete(&db, "todos", &gone);
    let (end, _) = flush(&db, &s);
    assert!(
        matches!(end, RoundEnd::Offline | RoundEnd::Wait { .. }),
        "offline flush: {end:?}"
    );
    assert_eq!(pending(&db), 3);
    assert_eq!(s.records("todos").len(), 3, "nothing reached the server");

    s.set_offline(false);
    let report = flush_all(&db, &s);
    assert_eq!(report.acked, 3);
    assert_eq!(pending(&db), 0);
    assert_in_sync(&db, &s, "todos");
    let titles: Vec<Value> = s
        .records("todos")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("keep"), json!("edited"), json!("fresh")]);
    assert!(get(&db, "todos", &gone).is_none());
    assert!(get(&db, "todos", &keep).is_some());
    assert_eq!(get(&db, "todos", &fresh).unwrap()["title"], "fresh");
    assert_keys_unique(&s);
}

#[test]
fn offline_flush_pauses_and_keeps_everything() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    s.set_offline(true);
    create(&db, "todos", json!({"title": "a"}));
    let (end, report) = flush(&db, &s);
    assert!(
        matches!(end, RoundEnd::Offline | RoundEnd::Wait { .. }),
        "an offline flush must pause, got {end:?}"
    );
    assert_eq!(report.acked, 0);
    assert_eq!(pending(&db), 1);
    s.set_offline(false);
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
}

/// `NetError::Offline` means nothing left the client (the fetch transport returns it when
/// `navigator.onLine` is false). The round must end `RoundEnd::Offline` (the driver waits for the
/// `online` event on it), and the mutation must not count as sent: no attempt, no backoff, and
/// later offline edits still coalesce into it.
#[test]
fn offline_transport_ends_the_round_offline_without_spending_the_mutation() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    s.set_offline(true);
    let id = create(&db, "todos", json!({"title": "a"}));
    let (end, _) = flush(&db, &s);
    assert_eq!(
        end,
        RoundEnd::Offline,
        "an offline transport must end the round Offline"
    );
    let out = block_on(db.outbox()).unwrap();
    assert!(
        !out[0].in_flight,
        "nothing was sent, so nothing is in flight: {out:?}"
    );
    assert_eq!(out[0].attempts, 0);
    // Still offline: an edit and a delete coalesce with the unsent create, so nothing is sent.
    update(&db, "todos", &id, json!({"title": "b"}));
    delete(&db, "todos", &id);
    assert_eq!(pending(&db), 0, "{:?}", block_on(db.outbox()).unwrap());
    s.set_offline(false);
    let (_, report) = flush(&db, &s);
    assert_eq!(report.requests, 0);
}

#[test]
fn create_update_update_is_one_post() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a", "n": 0}));
    update(&db, "todos", &id, json!({"n": 1}));
    update(&db, "todos", &id, json!({"n": 2, "title": "b"}));
    assert_eq!(pending(&db), 1);
    let report = flush_all(&db, &s);
    assert_eq!(report.requests, 1);
    assert_eq!(s.stats().requests, 1);
    assert_eq!(s.stats().by_method.get("POST"), Some(&1));
    assert_eq!(strip(&s.records("todos")[0]), json!({"title": "b", "n": 2}));
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn create_then_delete_sends_nothing() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a"}));
    update(&db, "todos", &id, json!({"title": "b"}));
    delete(&db, "todos", &id);
    assert_eq!(pending(&db), 0);
    let (end, report) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(report.requests, 0);
    assert_eq!(s.stats().requests, 0);
    assert!(local(&db, "todos").is_empty());
}

#[test]
fn update_then_delete_is_one_delete_and_update_update_one_put() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &s);
    s.reset_stats();
    update(&db, "todos", &a, json!({"title": "a1"}));
    update(&db, "todos", &a, json!({"done": true}));
    update(&db, "todos", &b, json!({"title": "b1"}));
    delete(&db, "todos", &b);
    assert_eq!(pending(&db), 2);
    flush_all(&db, &s);
    let methods: Vec<String> = s.log().into_iter().map(|l| l.0).collect();
    assert_eq!(methods, vec!["PUT", "DELETE"]);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(
        strip(&s.records("todos")[0]),
        json!({"title": "a1", "done": true})
    );
}

// ---------------------------------------------------------------- temporary ids and refs

#[test]
fn temp_id_is_replaced_everywhere_and_still_resolves() {
    let storage = MemoryStorage::new();
    let mut cfg = config(&["projects", "todos"]);
    cfg.collections
        .get_mut("todos")
        .unwrap()
        .refs
        .insert("projectId".into(), "projects".into());
    let db = open(cfg, storage);
    let s = MemServer::new();
    // Make the server's ids differ between collections.
    s.server_create("todos", json!({"title": "someone else's"}));
    s.server_create("todos", json!({"title": "someone else's 2"}));

    let p = create(&db, "projects", json!({"name": "P"}));
    assert!(
        p.starts_with("tmp-"),
        "a created record gets a temporary id: {p}"
    );
    let t = create(&db, "todos", json!({"title": "child", "projectId": p}));
    // Later changes through the temp id (folded into the creates).
    update(&db, "projects", &p, json!({"name": "P2"}));
    update(&db, "todos", &t, json!({"done": false}));

    let report = flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    let sp = &s.records("projects")[0];
    let sid = sp["id"].as_str().unwrap().to_string();
    assert_ne!(sid, p);
    assert_eq!(sp["clientId"], json!(p));
    let st = s
        .records("todos")
        .into_iter()
        .find(|r| r["title"] == "child")
        .expect("child on server");
    assert_eq!(
        st["projectId"],
        json!(sid),
        "the server's child must point at the server's project id"
    );
    // Local: the record and the reference carry server ids.
    let lp = get(&db, "projects", &p).expect("the temp id still finds the record");
    assert_eq!(lp["id"], json!(sid));
    let lt = get(&db, "todos", &t).expect("child by temp id");
    assert_eq!(lt["projectId"], json!(sid));
    assert_eq!(lt["id"], st["id"]);
    assert!(report
        .ids
        .iter()
        .any(|i| i.collection == "projects" && i.from == p && i.to == json!(sid)));
    assert!(report
        .ids
        .iter()
        .any(|i| i.collection == "todos" && i.from == t));
    assert_eq!(sp["name"], "P2");
    assert_in_sync(&db, &s, "projects");
    // The parent reached the server first.
    let posts: Vec<String> = s.log().into_iter().map(|l| l.1).collect();
    assert_eq!(posts, vec!["/api/projects", "/api/todos"]);
    pull(&db, &s, "todos");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn later_mutations_queued_on_a_temp_id_follow_the_server_id() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a"}));
    // Send the create but lose the answer, so it is in flight.
    s.drop_after_commit(1);
    let (end, _) = flush(&db, &s);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    // Changes made while the create is in flight queue behind it on the temp id.
    update(&db, "todos", &id, json!({"title": "b"}));
    update(&db, "todos", &id, json!({"done": true}));
    let out = block_on(db.outbox()).unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].in_flight);
    assert_eq!(out[1].record_id, id);

    let report = flush_all(&db, &s);
    let sid = s.records("todos")[0]["id"].as_str().unwrap().to_string();
    assert!(report
        .ids
        .iter()
        .any(|i| i.from == id && i.to == json!(sid)));
    assert_eq!(s.records("todos").len(), 1);
    assert_eq!(
        strip(&s.records("todos")[0]),
        json!({"title": "b", "done": true})
    );
    // The update went to the server id, not the temp id.
    assert!(s
        .log()
        .iter()
        .any(|l| l.0 == "PUT" && l.1 == format!("/api/todos/{sid}")));
    assert!(!s.log().iter().any(|l| l.1.contains("tmp-")));
    assert_in_sync(&db, &s, "todos");
    assert_keys_unique(&s);
}

#[test]
fn delete_of_an_in_flight_create_reaches_the_server_id() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a"}));
    s.drop_after_commit(1);
    flush(&db, &s);
    delete(&db, "todos", &id);
    assert!(get(&db, "todos", &id).is_none());
    flush_all(&db, &s);
    assert!(s.records("todos").is_empty(), "{:?}", s.records("todos"));
    assert!(local(&db, "todos").is_empty());
    assert_eq!(pending(&db), 0);
}

// ---------------------------------------------------------------- idempotent retries

#[test]
fn lost_answer_after_commit_is_retried_with_the_same_key_and_no_duplicate() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let a = create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    s.drop_after_commit(1);
    let (end, _) = flush(&db, &tap);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    assert_eq!(s.records("todos").len(), 1, "the first create was applied");
    let out = block_on(db.outbox()).unwrap();
    assert!(out[0].in_flight && out[0].error.is_some(), "{out:?}");
    flush_all(&db, &tap);

    assert_eq!(s.records("todos").len(), 2, "{:?}", s.records("todos"));
    assert_keys_unique(&s);
    assert_eq!(s.stats().replays, 1);
    let keys: Vec<String> = tap
        .requests()
        .iter()
        .filter(|r| body(r)["title"] == "a")
        .map(|r| header(r, "Idempotency-Key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "a retry must reuse the Idempotency-Key");
    // The retried request was byte for byte the first one.
    let bodies: Vec<Option<String>> = tap
        .requests()
        .iter()
        .filter(|r| body(r)["title"] == "a")
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(bodies[0], bodies[1]);
    assert!(get(&db, "todos", &a).is_some());
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn lost_answers_for_update_and_delete_are_not_applied_twice() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a", "n": 1}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &s);
    update(&db, "todos", &a, json!({"n": 2}));
    delete(&db, "todos", &b);
    s.drop_after_commit(2);
    flush(&db, &s);
    flush(&db, &s);
    flush_all(&db, &s);
    assert_keys_unique(&s);
    assert_eq!(pending(&db), 0);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(s.records("todos").len(), 1);
    assert_eq!(s.records("todos")[0]["n"], 2);
    assert_eq!(s.records("todos")[0]["version"], 2, "applied exactly once");
}

#[test]
fn server_error_then_success() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "a"}));
    s.fail_next(1, 503, None);
    let (end, _) = flush(&db, &s);
    let RoundEnd::Wait { retry_at, reason } = end else {
        panic!("503 must wait, got {end:?}")
    };
    assert!(reason.contains("503"), "{reason}");
    assert!(retry_at > db.env.now() && retry_at <= db.env.now() + 60_000.0);
    let out = block_on(db.outbox()).unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].error.as_deref().unwrap().contains("503"));
    assert_eq!(out[0].retry_at, Some(retry_at));
    assert!(s.records("todos").is_empty());
    db.env.advance(60_000.0);
    let (end, report) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(report.acked, 1);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn backoff_grows_with_attempts() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "a"}));
    let mut waits = Vec::new();
    for _ in 0..5 {
        s.fail_next(1, 500, None);
        let (end, _) = flush(&db, &s);
        let RoundEnd::Wait { retry_at, .. } = end else {
            panic!("{end:?}")
        };
        waits.push(retry_at - db.env.now());
    }
    // Jittered 1s, 2s, 4s, 8s, 16s: each in [base/2, base].
    for (i, w) in waits.iter().enumerate() {
        let base = 1000.0 * f64::from(1u32 << i);
        assert!(
            *w >= base / 2.0 && *w <= base,
            "attempt {}: waited {w}",
            i + 1
        );
    }
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn too_many_requests_honours_retry_after() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "a"}));
    s.fail_next(1, 429, Some("7"));
    let (end, _) = flush(&db, &s);
    match end {
        RoundEnd::Wait { retry_at, .. } => assert_eq!(retry_at, db.env.now() + 7000.0),
        other => panic!("429 must wait, got {other:?}"),
    }
    assert_eq!(pending(&db), 1);
    // An HTTP-date form.
    s.fail_next(1, 503, Some("Tue, 14 Nov 2023 22:14:20 GMT")); // T0 + 100 s
    let (end, _) = flush(&db, &s);
    match end {
        RoundEnd::Wait { retry_at, .. } => assert_eq!(retry_at, 1_700_000_060_000.0),
        other => panic!("503 must wait, got {other:?}"),
    }
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
}

// ---------------------------------------------------------------- rejections

#[test]
fn rejected_create_is_removed_and_the_rest_flushes() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let bad = create(&db, "todos", json!({"title": "bad"}));
    update(&db, "todos", &bad, json!({"n": 1})); // coalesced into the create
    let good = create(&db, "todos", json!({"title": "good"}));
    s.fault_match(Some("/api/todos"));
    s.fail_next(1, 422, None);
    let (end, report) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Idle, "a rejection must not stop the queue");
    assert_eq!(report.rejected.len(), 1);
    let r = &report.rejected[0];
    assert_eq!(r.status, 422);
    assert!(r.body.contains("injected fault"), "{}", r.body);
    assert_eq!(r.record_id, bad);
    assert_eq!(r.record.as_ref().unwrap()["title"], "bad");
    assert!(
        get(&db, "todos", &bad).is_none(),
        "a rejected create takes the record away"
    );
    assert!(report.changes.iter().any(|c| c.kind == ChangeKind::Deleted));
    assert!(get(&db, "todos", &good).is_some());
    assert_eq!(s.records("todos").len(), 1);
    assert_eq!(pending(&db), 0);
    assert_in_sync(&db, &s, "todos");
    let listed = block_on(db.rejected()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].mutation_id, r.mutation_id);
    assert_eq!(listed[0].status, 422);

    // Retry: a new mutation with a new key, and this time the server takes it.
    block_on(db.retry_rejected(&r.mutation_id)).unwrap();
    assert!(block_on(db.rejected()).unwrap().is_empty());
    assert_eq!(pending(&db), 1);
    assert_ne!(block_on(db.outbox()).unwrap()[0].mutation_id, r.mutation_id);
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 2);
    assert!(s
        .records("todos")
        .iter()
        .any(|x| x["title"] == "bad" && x["n"] == 1));
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn rejected_update_reverts_to_server_values_and_can_be_discarded() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a", "n": 1}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &s);
    update(
        &db,
        "todos",
        &a,
        json!({"title": "not allowed", "extra": true}),
    );
    update(&db, "todos", &b, json!({"title": "b2"}));
    s.fail_next(1, 400, None);
    let (end, report) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].status, 400);
    let la = get(&db, "todos", &a).unwrap();
    assert_eq!(
        la["title"], "a",
        "a rejected update goes back to the server's value"
    );
    assert!(
        la.get("extra").is_none(),
        "an added field is removed again: {la:?}"
    );
    assert_eq!(la["n"], 1);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(s.records("todos")[1]["title"], "b2");

    let id = report.rejected[0].mutation_id.clone();
    block_on(db.discard_rejected(&id)).unwrap();
    assert!(block_on(db.rejected()).unwrap().is_empty());
    assert_eq!(pending(&db), 0);
    assert!(block_on(db.discard_rejected(&id)).is_err(), "gone for good");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn retry_of_a_rejected_update_sends_it_again() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    update(&db, "todos", &a, json!({"title": "b"}));
    s.fail_next(1, 422, None);
    let (_, report) = flush(&db, &s);
    let id = report.rejected[0].mutation_id.clone();
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], "a");
    block_on(db.retry_rejected(&id)).unwrap();
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], "b");
    flush_all(&db, &s);
    assert_eq!(s.records("todos")[0]["title"], "b");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn rejected_delete_brings_the_record_back() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    delete(&db, "todos", &a);
    s.fail_next(1, 403, None);
    let (_, report) = flush(&db, &s);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], "a");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn captive_portal_html_is_never_an_ack() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    s.html_next(1);
    let (end, report) = flush(&db, &s);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    assert_eq!(report.acked, 0);
    assert!(report.rejected.is_empty());
    let out = block_on(db.outbox()).unwrap();
    assert_eq!(out.len(), 1);
    assert!(
        out[0]
            .error
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .contains("html"),
        "{:?}",
        out[0].error
    );
    assert_eq!(
        get(&db, "todos", &a).unwrap()["id"],
        json!(a),
        "the temp id is kept"
    );
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 1);
    assert_in_sync(&db, &s, "todos");

    // Same for an update and a delete.
    update(&db, "todos", &a, json!({"title": "b"}));
    s.html_next(1);
    flush(&db, &s);
    assert_eq!(pending(&db), 1);
    assert_eq!(s.records("todos")[0]["title"], "a");
    flush_all(&db, &s);
    delete(&db, "todos", &a);
    s.html_next(1);
    flush(&db, &s);
    assert_eq!(pending(&db), 1);
    assert_eq!(s.records("todos").len(), 1);
    flush_all(&db, &s);
    assert!(s.records("todos").is_empty());
}

#[test]
fn unauthorized_pauses_then_the_right_token_succeeds() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    s.require_token(Some("secret".into()));
    create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    let (end, report) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Unauthorized);
    assert_eq!(report.requests, 1, "the queue pauses after one 401");
    let (end, _) = flush_with(&db, &s, &[("Authorization", "Bearer wrong")]);
    assert_eq!(end, RoundEnd::Unauthorized);
    assert_eq!(pending(&db), 2);
    assert!(block_on(db.rejected()).unwrap().is_empty());
    let (end, report) = flush_with(&db, &s, &[("Authorization", "Bearer secret")]);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(report.acked, 2);
    assert_in_sync(&db, &s, "todos");
}

// ---------------------------------------------------------------- reloads

#[test]
fn reload_during_flush_neither_duplicates_nor_loses() {
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    {
        let db = open(config(&["todos"]), storage.clone());
        create(&db, "todos", json!({"title": "a"}));
        create(&db, "todos", json!({"title": "b"}));
        s.drop_after_commit(1);
        let mut report = Report::default();
        let end = block_on(db.flush_round(&s, &[], true, &mut report)).unwrap();
        assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
        // The tab closes here.
    }
    let db = open(config(&["todos"]), storage.clone());
    assert_eq!(pending(&db), 2);
    assert!(block_on(db.outbox()).unwrap()[0].in_flight);
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 2);
    assert_keys_unique(&s);
    assert_in_sync(&db, &s, "todos");
}

/// A transport that copies the "disk" while the request is out: the state a tab leaves behind when
/// it is closed between sending and applying the answer.
struct SnapshotDuringSend {
    server: MemServer,
    storage: MemoryStorage,
    snap: std::cell::RefCell<Option<MemoryStorage>>,
}

impl Transport for SnapshotDuringSend {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        if self.snap.borrow().is_none() {
            *self.snap.borrow_mut() = Some(self.storage.snapshot());
        }
        self.server.send(req).await
    }
}

#[test]
fn crash_between_send_and_apply_recovers_from_disk() {
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    let db = open(config(&["todos"]), storage.clone());
    let a = create(&db, "todos", json!({"title": "a"}));
    let t = SnapshotDuringSend {
        server: s.clone(),
        storage: storage.clone(),
        snap: Default::default(),
    };
    let mut report = Report::default();
    block_on(db.flush_round(&t, &[], true, &mut report)).unwrap();
    assert_eq!(s.records("todos").len(), 1);
    drop(db);
    // The disk as it was when the request left: the answer was never applied.
    let disk = t.snap.borrow_mut().take().unwrap();
    let db = open(config(&["todos"]), disk);
    assert_eq!(pending(&db), 1);
    update(&db, "todos", &a, json!({"done": true}));
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 1, "{:?}", s.records("todos"));
    assert_eq!(s.records("todos")[0]["done"], true);
    assert_keys_unique(&s);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn reopen_keeps_pending_and_the_clock_does_not_reuse_ids() {
    let storage = MemoryStorage::new();
    let first = {
        let db = open(config(&["todos"]), storage.clone());
        create(&db, "todos", json!({"title": "a"}))
    };
    let db = open(config(&["todos"]), storage.clone());
    let second = create(&db, "todos", json!({"title": "b"}));
    assert_ne!(first, second);
    let out = block_on(db.outbox()).unwrap();
    assert_eq!(out.len(), 2);
    assert_ne!(out[0].mutation_id, out[1].mutation_id);
}

// ---------------------------------------------------------------- pulls

#[test]
fn full_pull_adds_updates_and_removes() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = s.server_create("todos", json!({"title": "a"}));
    let b = s.server_create("todos", json!({"title": "b"}));
    let report = pull(&db, &s, "todos");
    assert_eq!(report.changes.len(), 2);
    assert_in_sync(&db, &s, "todos");
    // A second client changes things; a plain server gives full snapshots every time.
    let plain = MemServer::plain();
    let (db2, _) = open_todos();
    let x = plain.server_create("todos", json!({"title": "x"}));
    let y = plain.server_create("todos", json!({"title": "y"}));
    pull(&db2, &plain, "todos");
    plain.server_put("todos", &x, json!({"title": "x2"}));
    plain.server_delete("todos", &y);
    let z = plain.server_create("todos", json!({"title": "z"}));
    let report = pull(&db2, &plain, "todos");
    assert_in_sync(&db2, &plain, "todos");
    let kinds: Vec<(ChangeKind, Value)> = report
        .changes
        .iter()
        .map(|c| (c.kind, c.id.clone()))
        .collect();
    assert!(
        kinds.contains(&(ChangeKind::Updated, json!(x))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ChangeKind::Deleted, json!(y))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ChangeKind::Created, json!(z))),
        "{kinds:?}"
    );
    assert!(report.changes.iter().all(|c| c.remote));
    let _ = (a, b);
}

#[test]
fn delta_pull_applies_changes_and_tombstones() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = s.server_create("todos", json!({"title": "a"}));
    let b = s.server_create("todos", json!({"title": "b"}));
    let c = s.server_create("todos", json!({"title": "c"}));
    pull(&db, &s, "todos");
    s.server_patch("todos", &a, json!({"title": "a2"}));
    s.server_delete("todos", &b);
    let d = s.server_create("todos", json!({"title": "d"}));
    s.reset_stats();
    let report = pull(&db, &s, "todos");
    let url = &s.log()[0].1;
    assert!(url.contains("since="), "the second pull is a delta: {url}");
    assert_eq!(report.changes.len(), 3, "{:?}", report.changes);
    assert_in_sync(&db, &s, "todos");
    assert!(get(&db, "todos", &b).is_none());
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], "a2");
    assert!(get(&db, "todos", &c).is_some());
    assert!(get(&db, "todos", &d).is_some());
    // Nothing changed: an empty delta changes nothing.
    let report = pull(&db, &s, "todos");
    assert!(report.changes.is_empty(), "{:?}", report.changes);
}

#[test]
fn pull_keeps_a_pending_change_rebased_on_the_new_version() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"a": 1, "b": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"a": 2}));
    s.server_patch("todos", &sid, json!({"b": 3}));
    pull(&db, &s, "todos");
    let l = get(&db, "todos", &sid).unwrap();
    assert_eq!(
        (l["a"].clone(), l["b"].clone()),
        (json!(2), json!(3)),
        "{l:?}"
    );
    assert_eq!(
        l["version"], 2,
        "the local row is based on the server's new version"
    );
    assert_eq!(pending(&db), 1, "the local change is still queued");
    let report = flush_all(&db, &s);
    assert!(
        report.conflicts.is_empty(),
        "rebased on the new version, no conflict: {:?}",
        report.conflicts
    );
    let sr = s.record("todos", &sid).unwrap();
    assert_eq!((sr["a"].clone(), sr["b"].clone()), (json!(2), json!(3)));
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn full_pull_keeps_local_pending_creates() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    s.server_create("todos", json!({"title": "server"}));
    let mine = create(&db, "todos", json!({"title": "mine"}));
    pull(&db, &s, "todos");
    assert!(
        get(&db, "todos", &mine).is_some(),
        "a snapshot never removes a pending create"
    );
    assert_eq!(local(&db, "todos").len(), 2);
    flush_all(&db, &s);
    pull(&db, &s, "todos");
    assert_in_sync(&db, &s, "todos");
}

/// A create whose answer was lost is on the server, and carries our temp id in `clientId`.
/// A pull before the retry must not show the record twice.
#[test]
fn pull_after_a_lost_create_answer_does_not_duplicate_locally() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "only one"}));
    s.drop_after_commit(1);
    flush(&db, &s);
    pull(&db, &s, "todos");
    let titles: Vec<Value> = local(&db, "todos")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(
        titles,
        vec![json!("only one")],
        "the same record appears twice locally"
    );
}

#[test]
fn pull_after_a_lost_create_answer_converges_after_flush() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "only one"}));
    s.drop_after_commit(1);
    flush(&db, &s);
    pull(&db, &s, "todos");
    flush_all(&db, &s);
    pull(&db, &s, "todos");
    assert_eq!(local(&db, "todos").len(), 1);
    assert_in_sync(&db, &s, "todos");
}

// ---------------------------------------------------------------- batches

fn mixed_workload(db: &Db, s: &MemServer) {
    // Synced records to update and delete.
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(create(
            db,
            "todos",
            json!({"title": format!("seed {i}"), "n": i}),
        ));
    }
    flush_all(db, s);
    s.reset_stats();
    for i in 0..8 {
        create(db, "todos", json!({"title": format!("new {i}")}));
    }
    update(db, "todos", &ids[0], json!({"n": 100}));
    update(db, "todos", &ids[1], json!({"title": "renamed"}));
    delete(db, "todos", &ids[2]);
    update(db, "todos", &ids[3], json!({"n": 5}));
    delete(db, "todos", &ids[3]);
    let tmp = create(db, "todos", json!({"title": "short lived"}));
    delete(db, "todos", &tmp);
}

#[test]
fn batch_mode_reaches_the_same_state_with_fewer_requests() {
    let plain_db = open(config(&["todos"]), MemoryStorage::new());
    let s1 = MemServer::new();
    mixed_workload(&plain_db, &s1);
    flush_all(&plain_db, &s1);

    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let batch_db = open(cfg, MemoryStorage::new());
    let s2 = MemServer::new();
    mixed_workload(&batch_db, &s2);
    flush_all(&batch_db, &s2);

    assert_eq!(s1.records("todos"), s2.records("todos"));
    assert_in_sync(&plain_db, &s1, "todos");
    assert_in_sync(&batch_db, &s2, "todos");
    assert_eq!(s1.stats().requests, 12);
    assert_eq!(s2.stats().requests, 1, "{:?}", s2.log());
    assert_eq!(s2.stats().batch_items, 12);
    assert_keys_unique(&s2);
}

#[test]
fn batch_size_limits_each_request() {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    cfg.batch_size = 4;
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    for i in 0..10 {
        create(&db, "todos", json!({ "i": i }));
    }
    flush_all(&db, &s);
    assert_eq!(s.stats().batch_requests, 3, "4 + 4 + 2: {:?}", s.log());
    assert_eq!(s.stats().requests, 3);
    assert_eq!(s.stats().batch_items, 10);
    // The server got them in creation order.
    let order: Vec<Value> = s
        .log_entries()
        .iter()
        .filter(|l| l.in_batch)
        .map(|l| json!(l.idempotency_key.clone().unwrap()))
        .collect();
    assert_eq!(order.len(), 10);
    let mut ns: Vec<i64> = s
        .records("todos")
        .iter()
        .map(|r| r["i"].as_i64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, (0..10).collect::<Vec<i64>>());
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn batch_never_carries_a_child_of_a_parent_created_in_the_same_batch() {
    let mut cfg = config(&["projects", "todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    cfg.collections
        .get_mut("todos")
        .unwrap()
        .refs
        .insert("projectId".into(), "projects".into());
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let other = create(&db, "todos", json!({"title": "unrelated"}));
    let p = create(&db, "projects", json!({"name": "P"}));
    create(&db, "todos", json!({"title": "child", "projectId": p}));
    create(&db, "todos", json!({"title": "after"}));
    flush_all(&db, &tap);
    for req in tap.requests() {
        let b = body(&req);
        if let Some(items) = b.get("requests").and_then(Value::as_array) {
            for item in items {
                let pid = item["body"]["projectId"].as_str().unwrap_or("");
                assert!(
                    !pid.starts_with("tmp-"),
                    "a batch carried a temp id reference: {item}"
                );
            }
        } else {
            assert!(!b["projectId"].as_str().unwrap_or("").starts_with("tmp-"));
        }
    }
    let sid = s.records("projects")[0]["id"].clone();
    let child = s
        .records("todos")
        .into_iter()
        .find(|r| r["title"] == "child")
        .unwrap();
    assert_eq!(child["projectId"], sid);
    assert_eq!(s.records("todos").len(), 3);
    assert_in_sync(&db, &s, "todos");
    assert_in_sync(&db, &s, "projects");
    let _ = other;
}

#[test]
fn batch_with_a_lost_answer_is_retried_without_duplicates() {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    for i in 0..5 {
        create(&db, "todos", json!({ "i": i }));
    }
    s.drop_after_commit(1);
    let (end, _) = flush(&db, &s);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    assert_eq!(
        s.records("todos").len(),
        5,
        "the batch was applied, its answer lost"
    );
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 5);
    assert_keys_unique(&s);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn batch_items_are_classified_one_by_one() {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &a).unwrap());
    // Someone else deletes it; our update of it then meets a 404 inside the batch.
    s.server_delete("todos", &sid);
    update(&db, "todos", &sid, json!({"title": "a2"}));
    create(&db, "todos", json!({"title": "b"}));
    let (end, report) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(s.records("todos").len(), 1);
    assert_in_sync(&db, &s, "todos");
}

// ---------------------------------------------------------------- plain servers, PATCH

#[test]
fn plain_rest_server_crud_and_pull() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    let a = create(&db, "todos", json!({"title": "a"}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    assert!(s
        .records("todos")
        .iter()
        .all(|r| r.get("version").is_none()));
    update(&db, "todos", &a, json!({"title": "a2"}));
    delete(&db, "todos", &b);
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(strip(&s.records("todos")[0]), json!({"title": "a2"}));
    // Another client writes; a pull (bare array, no cursor) brings it in.
    let other = s.server_create("todos", json!({"title": "theirs"}));
    let sa = id_of(&get(&db, "todos", &a).unwrap());
    s.server_put("todos", &sa, json!({"title": "a3"}));
    pull(&db, &s, "todos");
    assert_in_sync(&db, &s, "todos");
    assert!(get(&db, "todos", &other).is_some());
    s.server_delete("todos", &other);
    pull(&db, &s, "todos");
    assert_in_sync(&db, &s, "todos");
    assert_eq!(local(&db, "todos").len(), 1);
    // No If-Match without versions.
    assert!(s.log().iter().all(|l| l.3 < 400), "{:?}", s.log());
}

#[test]
fn plain_server_last_write_wins_without_conflicts() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    let a = create(&db, "todos", json!({"title": "a", "n": 1}));
    flush_all(&db, &s);
    let sa = id_of(&get(&db, "todos", &a).unwrap());
    s.server_put("todos", &sa, json!({"title": "theirs", "n": 9}));
    update(&db, "todos", &sa, json!({"title": "mine"}));
    let report = flush_all(&db, &s);
    assert!(report.conflicts.is_empty());
    assert_eq!(s.records("todos")[0]["title"], "mine");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn patch_sends_only_changed_fields() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().update_method = UpdateMethod::Patch;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::plain());
    let s = tap.inner.clone();
    let a = create(
        &db,
        "todos",
        json!({"title": "a", "n": 1, "note": "x", "tags": [1]}),
    );
    flush_all(&db, &tap);
    let sa = id_of(&get(&db, "todos", &a).unwrap());
    tap.clear();
    // Someone else changes `tags`: a PATCH of other fields must not clobber it.
    s.server_patch("todos", &sa, json!({"tags": [1, 2]}));
    update(&db, "todos", &sa, json!({"n": 2}));
    replace(&db, "todos", &sa, {
        let mut r = get(&db, "todos", &sa).unwrap();
        r.remove("note");
        r.insert("title".into(), json!("b"));
        Value::Object(r)
    });
    flush_all(&db, &tap);
    let reqs = tap.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(body(&reqs[0]), json!({"n": 2, "note": null, "title": "b"}));
    let sr = s.record("todos", &sa).unwrap();
    assert_eq!(
        sr["tags"],
        json!([1, 2]),
        "the other client's field survived"
    );
    assert_eq!(sr["n"], 2);
    assert!(sr.get("note").is_none());
    assert_in_sync(&db, &tap.inner, "todos");
}

// ---------------------------------------------------------------- wire details

#[test]
fn every_write_carries_idempotency_key_changed_at_and_if_match() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let a = create(&db, "todos", json!({"title": "a"}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &tap);
    update(&db, "todos", &a, json!({"title": "a2"}));
    delete(&db, "todos", &b);
    flush_all(&db, &tap);
    let reqs = tap.requests();
    assert_eq!(reqs.len(), 4);
    let mut keys = HashSet::new();
    for r in &reqs {
        let k = header(r, "Idempotency-Key").expect("Idempotency-Key");
        assert!(keys.insert(k.to_string()), "keys are unique per mutation");
        let at: u64 = header(r, "Ferry-Changed-At")
            .expect("Ferry-Changed-At")
            .parse()
            .unwrap();
        assert!(at >= T0 as u64);
    }
    assert_eq!(header(&reqs[0], "If-Match"), None);
    assert_eq!(header(&reqs[2], "If-Match"), Some("\"1\""));
    assert_eq!(header(&reqs[3], "If-Match"), Some("\"1\""));
    assert_eq!(body(&reqs[0])["clientId"], json!(a));
    assert!(
        body(&reqs[0]).get("id").is_none(),
        "a temp id is not sent as the id"
    );
}

#[test]
fn awkward_ids_stay_one_path_segment() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    for id in ["a/b", "../admin", "x?y#z", "sp ace", "ünï"] {
        create(&db, "todos", json!({"id": id, "title": id}));
    }
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 5);
    for id in ["a/b", "../admin", "x?y#z", "sp ace", "ünï"] {
        update(&db, "todos", id, json!({"done": true}));
    }
    flush_all(&db, &s);
    assert!(
        s.records("todos").iter().all(|r| r["done"] == true),
        "{:?}",
        s.records("todos")
    );
    assert!(s.log().iter().all(|l| l.3 < 400), "{:?}", s.log());
    for id in ["a/b", "../admin"] {
        delete(&db, "todos", id);
    }
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 3);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn explicit_ids_accepted_by_the_server_do_not_change() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"id": "mine-1", "title": "a"}));
    let report = flush_all(&db, &s);
    assert!(report.ids.is_empty());
    assert_eq!(s.records("todos")[0]["id"], "mine-1");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn numeric_server_ids_work() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let counter = std::rc::Rc::new(std::cell::Cell::new(0));
    let c2 = counter.clone();
    // A server that answers creates with numeric ids.
    tap.hook(move |req| {
        if req.method == "POST" {
            c2.set(c2.get() + 1);
            let mut b = body(req);
            b["id"] = json!(100 + c2.get());
            b["version"] = json!(1);
            Some(Ok(json_response(201, b)))
        } else {
            Some(Ok(HttpResponse {
                status: 204,
                ..Default::default()
            }))
        }
    });
    let a = create(&db, "todos", json!({"title": "a"}));
    let report = flush_all(&db, &tap);
    assert_eq!(report.ids[0].to, json!(101));
    let l = get(&db, "todos", &a).unwrap();
    assert_eq!(l["id"], json!(101));
    assert_eq!(get(&db, "todos", "101").unwrap()["title"], "a");
    update(&db, "todos", "101", json!({"title": "b"}));
    tap.clear();
    flush_all(&db, &tap);
    assert_eq!(tap.requests()[0].url, "/api/todos/101");
    assert_eq!(
        get(&db, "todos", "101").unwrap()["id"],
        json!(101),
        "the id keeps its type"
    );
}

// ---------------------------------------------------------------- undo of a delete

/// An "undo" that re-creates a just-deleted record with its own (temporary) id while its create
/// is still in flight. Found by `local_props::coalesced_flush_equals_naive_replay`.
#[test]
fn undo_delete_of_a_record_whose_create_is_in_flight() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let tmp = create(&db, "todos", json!({"title": "a"}));
    s.drop_after_commit(1);
    flush(&db, &s); // the create reached the server; its answer was lost
    let before = get(&db, "todos", &tmp).unwrap();
    delete(&db, "todos", &tmp);
    block_on(db.write("todos", vec![ferry::core::Op::Create(before)])).unwrap();
    update(&db, "todos", &tmp, json!({"title": "a, restored"}));
    let report = flush_all(&db, &s);
    assert!(
        report.rejected.is_empty(),
        "rejected: {:?}",
        report.rejected
    );
    assert_eq!(s.records("todos").len(), 1, "{:?}", s.records("todos"));
    assert_eq!(
        strip(&s.records("todos")[0]),
        json!({"title": "a, restored"})
    );
    assert_in_sync(&db, &s, "todos");
}

/// Delete then re-create (same id) replaces the record, even when an update of it was in flight:
/// fields that the in-flight update added must not survive into the re-created record.
#[test]
fn recreate_after_delete_replaces_even_over_an_in_flight_update() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let tmp = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &tmp).unwrap());
    update(&db, "todos", &sid, json!({"extra": 1}));
    s.drop_after_commit(1);
    flush(&db, &s); // the update reached the server; its answer was lost
    delete(&db, "todos", &sid);
    create(&db, "todos", json!({"id": sid, "title": "c"}));
    assert_eq!(get(&db, "todos", &sid).unwrap().get("extra"), None);
    let report = flush_all(&db, &s);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let sr = s
        .record("todos", &sid)
        .expect("the record is on the server");
    assert_eq!(
        strip(&sr),
        json!({"title": "c"}),
        "the re-created record replaces the old one"
    );
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn recreate_after_delete_replaces_the_server_record() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let tmp = create(&db, "todos", json!({"title": "a", "extra": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &tmp).unwrap());
    delete(&db, "todos", &sid);
    create(&db, "todos", json!({"id": sid, "title": "c"}));
    assert_eq!(pending(&db), 1);
    flush_all(&db, &s);
    assert_eq!(
        strip(&s.record("todos", &sid).unwrap()),
        json!({"title": "c"})
    );
    assert_in_sync(&db, &s, "todos");
}

// ---------------------------------------------------------------- more server shapes

/// A versioned server that answers an update 204 with no ETag: the client cannot know the new
/// version, so it must not keep sending the old one (which makes every later edit a conflict).
#[test]
fn update_answered_204_without_etag_does_not_keep_a_stale_version() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let inner = s.clone();
    tap.hook(move |req| {
        if req.method != "PUT" {
            return None;
        }
        let res = block_on(inner.send(req.clone()));
        Some(res.map(|r| {
            if r.status == 200 {
                HttpResponse {
                    status: 204,
                    headers: vec![],
                    body: String::new(),
                }
            } else {
                r
            }
        }))
    });
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    update(&db, "todos", &a, json!({"title": "b"}));
    flush_all(&db, &tap);
    update(&db, "todos", &a, json!({"title": "c"}));
    let report = flush_all(&db, &tap);
    assert!(
        report.conflicts.is_empty(),
        "a spurious conflict with ourselves: {:?}",
        report.conflicts
    );
    assert_eq!(s.records("todos")[0]["title"], "c");
}

#[test]
fn enveloped_single_record_answers() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    s.set_wrap_records(true);
    let a = create(&db, "todos", json!({"title": "a", "n": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &a).unwrap());
    assert!(!sid.starts_with("tmp-"));
    update(&db, "todos", &sid, json!({"title": "b"}));
    s.server_patch("todos", &sid, json!({"n": 2}));
    let r = flush_all(&db, &s);
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(strip(&s.records("todos")[0]), json!({"title": "b", "n": 2}));
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn an_update_pointing_at_a_new_parent_waits_for_its_server_id() {
    for batch in [false, true] {
        let mut cfg = config(&["projects", "todos"]);
        if batch {
            cfg.batch_url = Some("/api/$batch".into());
        }
        cfg.collections
            .get_mut("todos")
            .unwrap()
            .refs
            .insert("projectId".into(), "projects".into());
        let db = open(cfg, MemoryStorage::new());
        let s = MemServer::new();
        let t = create(&db, "todos", json!({"title": "t"}));
        flush_all(&db, &s);
        let sid = id_of(&get(&db, "todos", &t).unwrap());
        // The child's change is queued before the parent exists.
        update(&db, "todos", &sid, json!({"title": "t2"}));
        let p = create(&db, "projects", json!({"name": "P"}));
        update(&db, "todos", &sid, json!({"projectId": p}));
        flush_all(&db, &s);
        let spid = s.records("projects")[0]["id"].clone();
        assert_eq!(
            s.record("todos", &sid).unwrap()["projectId"],
            spid,
            "batch={batch}"
        );
        assert!(
            !s.log().iter().any(|l| l.1.contains("tmp-")),
            "{:?}",
            s.log()
        );
        assert_in_sync(&db, &s, "todos");
        assert_in_sync(&db, &s, "projects");
    }
}

#[test]
fn batch_level_failures_apply_to_every_item() {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    for i in 0..3 {
        create(&db, "todos", json!({ "i": i }));
    }
    s.fail_next(1, 429, Some("5"));
    let (end, _) = flush(&db, &s);
    assert_eq!(
        end,
        RoundEnd::Wait {
            reason: end_reason(&end),
            retry_at: db.env.now() + 5000.0
        }
    );
    s.html_next(1);
    let (end, _) = flush(&db, &s);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    s.require_token(Some("t".into()));
    let (end, _) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Unauthorized);
    assert!(s.records("todos").is_empty());
    assert_eq!(pending(&db), 3);
    assert!(block_on(db.rejected()).unwrap().is_empty());
    let (end, _) = flush_with(&db, &s, &[("Authorization", "Bearer t")]);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(s.records("todos").len(), 3);
    assert_keys_unique(&s);
}

fn end_reason(end: &RoundEnd) -> String {
    match end {
        RoundEnd::Wait { reason, .. } => reason.clone(),
        _ => String::new(),
    }
}

#[test]
fn conflict_of_an_in_flight_update_keeps_later_local_changes() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"a": 1, "b": 1, "c": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &a).unwrap());
    update(&db, "todos", &sid, json!({"a": 2}));
    s.fail_next(1, 503, None);
    flush(&db, &s); // frozen, not applied
    update(&db, "todos", &sid, json!({"c": 3})); // queued behind it
    s.server_patch("todos", &sid, json!({"b": 5}));
    let r = flush_all(&db, &s);
    assert_eq!(r.conflicts.len(), 1);
    let sr = s.record("todos", &sid).unwrap();
    assert_eq!(strip(&sr), json!({"a": 2, "b": 5, "c": 3}));
    assert_in_sync(&db, &s, "todos");
}
