//! JSON batches (PROTOCOL.md section 6) against the in-memory protocol server.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpRequest, NetError};
use ferry::core::MemoryStorage;
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

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

#[test]
fn a_missing_batch_endpoint_falls_back_to_one_request_per_mutation() {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    s.set_batch(false); // POST /api/$batch answers 404
    mixed_workload(&db, &s);
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    assert_keys_unique(&s);
    assert_eq!(s.stats().batch_items, 0);
}

#[test]
fn without_batches_a_round_sends_several_mutations_in_order() {
    let db = open(config(&["todos"]), MemoryStorage::new());
    let s = MemServer::new();
    for i in 0..5 {
        create(&db, "todos", json!({ "n": i }));
    }
    let mut report = ferry::core::sync::report::Report::default();
    let end = block_on(db.flush_round(&s, &[], &mut report)).unwrap();
    assert_eq!(end, RoundEnd::Progress);
    assert_eq!((report.acked, report.requests), (5, 5));
    let ns: Vec<Value> = s.records("todos").iter().map(|r| r["n"].clone()).collect();
    assert_eq!(ns, (0..5).map(Value::from).collect::<Vec<_>>());
}

#[test]
fn without_batches_a_failure_does_not_hold_back_the_rest_but_two_stop_the_round() {
    let db = open(config(&["todos"]), MemoryStorage::new());
    let s = MemServer::new();
    for i in 0..3 {
        create(&db, "todos", json!({ "n": i }));
    }
    // One mutation fails (a server bug on one record): the others go on in the same round.
    s.fail_next(1, 500, None);
    let mut report = ferry::core::sync::report::Report::default();
    let end = block_on(db.flush_round(&s, &[], &mut report)).unwrap();
    assert_eq!(
        end,
        RoundEnd::Progress,
        "the round went through, so the next goes on"
    );
    assert_eq!((report.requests, report.acked), (3, 2));
    let outbox = block_on(db.outbox()).unwrap();
    let flags: Vec<(u32, bool)> = outbox.iter().map(|e| (e.attempts, e.in_flight)).collect();
    assert_eq!(flags, [(1, true)], "the failed one waits, sent once");
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");

    // Two failures in a row are the server's (down, overloaded): the rest of the round waits.
    for i in 3..6 {
        create(&db, "todos", json!({ "n": i }));
    }
    s.fail_next(2, 503, None);
    let mut report = ferry::core::sync::report::Report::default();
    let end = block_on(db.flush_round(&s, &[], &mut report)).unwrap();
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    assert_eq!(
        report.requests, 2,
        "nothing more is sent after two failures"
    );
    let outbox = block_on(db.outbox()).unwrap();
    let flags: Vec<(u32, bool)> = outbox.iter().map(|e| (e.attempts, e.in_flight)).collect();
    assert_eq!(flags, [(1, true), (1, true), (0, false)]);
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn acked_creates_leave_their_temporary_ids_and_the_others_keep_theirs() {
    // A round moves its acknowledged records from their temporary ids (which sort together) to
    // the server's; records between them whose answer was no ack must stay where they are.
    let (db, tap, s) = batched(100);
    let ids: Vec<String> = (0..30)
        .map(|i| create(&db, "todos", json!({ "i": i })))
        .collect();
    // Item 10 meets a passing failure, item 20 is refused for good; the rest are created.
    tap.hook(move |req| {
        let mut answer = s.send_now(req.clone()).ok()?;
        let mut v: Value = serde_json::from_str(&answer.body).ok()?;
        for item in v["responses"].as_array_mut()? {
            let i = item["id"].as_str()?.parse::<usize>().ok()? - 1;
            if i == 10 {
                item["status"] = json!(503);
                item["body"] = Value::Null;
            } else if i == 20 {
                item["status"] = json!(422);
                item["body"] = json!({"error": "no"});
            }
        }
        answer.body = v.to_string();
        Some(Ok(answer))
    });
    let mut report = ferry::core::sync::report::Report::default();
    let end = block_on(db.flush_round(&tap, &[], &mut report)).unwrap();
    assert_eq!(end, RoundEnd::Progress, "the others went through");
    assert_eq!(report.acked, 28);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(
        local(&db, "todos").len(),
        29,
        "a rejected create is taken back"
    );
    for (i, tmp) in ids.iter().enumerate() {
        let rec = get(&db, "todos", tmp);
        if i == 20 {
            assert_eq!(rec, None);
            continue;
        }
        let rec = rec.unwrap_or_else(|| panic!("record {i} is gone"));
        assert_eq!(rec["i"], json!(i));
        let moved = !id_of(&rec).starts_with("tmp-");
        assert_eq!(moved, i != 10, "record {i}: {rec:?}");
    }
    assert_eq!(pending(&db), 1, "the failed create waits for its retry");
}

#[test]
fn a_batch_that_always_times_out_is_split_until_it_gets_through() {
    // A server that needs longer than `timeoutMs` for more than 10 mutations at once, and
    // applies them all the same: the answer is what is lost.
    let (db, tap, s) = batched(40);
    let server = s.clone();
    tap.hook(move |req| {
        (items(req) > 10).then(|| {
            let _ = server.send_now(req.clone());
            Err(NetError::Timeout)
        })
    });
    for i in 0..60 {
        create(&db, "todos", json!({ "i": i }));
    }
    drain(&db, &tap, 30);
    let sizes: Vec<usize> = tap.requests().iter().map(items).collect();
    let timeouts = sizes.iter().filter(|n| **n > 10).count();
    assert!(timeouts <= 6, "timed out {timeouts} times: {sizes:?}");
    assert_eq!(s.records("todos").len(), 60, "each record once");
    assert_keys_unique(&s);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_batch_a_gateway_refuses_past_some_size_is_split_until_it_passes() {
    // A proxy that answers 504 to any batch of more than 10 (too slow, too large) and applies
    // nothing; single requests and small batches pass.
    let (db, tap, s) = batched(40);
    tap.hook(move |req| (items(req) > 10).then(|| Ok(json_response(504, json!({})))));
    for i in 0..60 {
        create(&db, "todos", json!({ "i": i }));
    }
    drain(&db, &tap, 30);
    assert_eq!(s.records("todos").len(), 60);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_batch_too_large_for_the_server_goes_again_in_smaller_batches() {
    // A body limit (Express's JSON parser takes 100 kB by default) that only batches of more
    // than 10 pass: 413, nothing applied. Smaller batches get everything through; it never
    // falls back to a request per mutation.
    let (db, tap, s) = batched(40);
    tap.hook(move |req| (items(req) > 10).then(|| Ok(json_response(413, json!({})))));
    for i in 0..60 {
        create(&db, "todos", json!({ "i": i }));
    }
    drain(&db, &tap, 30);
    assert_eq!(s.records("todos").len(), 60);
    assert_in_sync(&db, &s, "todos");
    let reqs = tap.requests();
    let singles = reqs.iter().filter(|r| !r.url.ends_with("$batch")).count();
    assert_eq!(singles, 0, "no request per mutation");
    assert!(reqs.len() < 30, "{} requests", reqs.len());
    assert!(block_on(db.rejected()).unwrap().is_empty());
}

#[test]
fn batches_halved_to_one_mutation_grow_back() {
    // Two records too large to go together: their batch of two is answered 413, so batches
    // are down to one. The answered single requests raise them again: what follows goes in
    // batches, not one request per mutation for good.
    let (db, tap, s) = batched(40);
    tap.hook(|req| {
        let big = req.body.as_deref().unwrap_or_default().contains("\"big\"");
        (items(req) > 1 && big).then(|| Ok(json_response(413, json!({}))))
    });
    create(&db, "todos", json!({ "big": 1 }));
    create(&db, "todos", json!({ "big": 2 }));
    drain(&db, &tap, 10);
    let before = tap.requests().len();
    for i in 0..40 {
        create(&db, "todos", json!({ "i": i }));
    }
    drain(&db, &tap, 10);
    assert_eq!(s.records("todos").len(), 42);
    let after = &tap.requests()[before..];
    let singles = after.iter().filter(|r| !r.url.ends_with("$batch")).count();
    assert_eq!(singles, 0, "{} requests, {singles} single", after.len());
}

#[test]
fn one_request_the_server_always_fails_does_not_hold_back_a_batch() {
    // A server bug on one record: any batch holding it is answered 500 as a whole. Halving
    // isolates it; everything else arrives, and it alone waits.
    let (db, tap, s) = batched(100);
    tap.hook(|req| {
        let text = req.body.clone().unwrap_or_default();
        text.contains("poison")
            .then(|| Ok(json_response(500, json!({"error": "boom"}))))
    });
    for i in 0..30 {
        let title = if i == 3 {
            "poison".to_string()
        } else {
            format!("t{i}")
        };
        create(&db, "todos", json!({ "title": title }));
    }
    for _ in 0..30 {
        flush(&db, &tap);
        db.env.advance(120_000.0);
    }
    assert_eq!(s.records("todos").len(), 29, "all but the poisoned one");
    assert_eq!(pending(&db), 1);
}

/// Flushes (letting every backoff pass) until the outbox is empty, in fewer than `rounds`.
fn drain(db: &Db, tap: &Tap<MemServer>, rounds: usize) {
    for _ in 0..rounds {
        if flush(db, tap).0 == RoundEnd::Idle {
            return;
        }
        db.env.advance(120_000.0);
    }
    panic!("the outbox did not drain in {rounds} flushes");
}

/// A store batching up to `size` mutations, a tap in front of its server, and the server.
fn batched(size: usize) -> (Db, Tap<MemServer>, MemServer) {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    cfg.batch_size = size;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    (db, tap, s)
}

/// How many mutations a request carries: a batch's count, or 1.
fn items(req: &HttpRequest) -> usize {
    body(req)["requests"].as_array().map_or(1, Vec::len)
}
