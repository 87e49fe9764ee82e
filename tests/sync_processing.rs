//! A write sent again under its `Idempotency-Key` while the server still applies its first send:
//! the IETF draft answers it 409 ("still being processed"). Neither a refusal nor a conflict: the
//! write is tried again, and a create is looked for before each send. And a create refused for
//! a reason that only echoes its client id back is not looked for.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/policies.rs"]
mod policies;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::NetError;
use ferry::core::sync::report::Report;
use mem_server::MemServer;
use native_env::*;
use policies::*;
use serde_json::json;
use sync_asserts::*;

fn in_progress() -> ferry::core::sync::http::HttpResponse {
    json_response(
        409,
        json!({"error": "a request with this key is being processed"}),
    )
}

/// Rounds `step_ms` apart (about what the backoff waits) until the outbox is idle.
fn rounds<T: ferry::core::sync::http::Transport>(db: &Db, t: &T, step_ms: f64) -> Report {
    let mut r = Report::default();
    for _ in 0..20 {
        let (end, step) = flush(db, t);
        r.extend(step);
        if end == RoundEnd::Idle {
            break;
        }
        db.env.advance(step_ms);
    }
    r
}

#[test]
fn a_create_the_server_takes_long_to_store_is_not_refused() {
    // The server stores it only while the eleventh send is answered, 80 s on (each answered
    // 409 meanwhile). Four sends used to be the limit: the create was refused, then stored,
    // and `retryRejected` stored it twice. Its first send is answered 503 (a gateway gave up), so only the 409s
    // say it may land: listed for before each send, it is found once stored, not sent again.
    let tap = Tap::new(MemServer::plain());
    let s = tap.inner.clone();
    let db = db_with(P::Merge);
    let id = create(&db, "todos", json!({"title": "slow"}));
    let server = s.clone();
    let mut posts = 0;
    tap.hook(move |req| {
        if req.method != "POST" {
            return None;
        }
        posts += 1;
        if posts == 11 {
            let _ = server.send_now(req.clone()); // the first send, applied at last
        }
        Some(Ok(if posts == 1 {
            json_response(503, json!({}))
        } else {
            in_progress()
        }))
    });
    let r = rounds(&db, &tap, 8_000.0); // well inside the two minutes
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!(s.records("todos").len(), 1, "stored once");
    let posts = tap.requests().iter().filter(|q| q.method == "POST").count();
    assert_eq!(posts, 11, "not sent again once it was there");
    let sid = s.records("todos")[0]["id"].clone();
    assert_eq!(get(&db, "todos", &id).expect("kept")["id"], sid);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_create_still_being_processed_two_minutes_on_is_refused() {
    let tap = Tap::new(MemServer::plain());
    let db = db_with(P::Merge);
    create(&db, "todos", json!({"title": "never"}));
    let mut posts = 0;
    tap.hook(move |req| {
        (req.method == "POST").then(|| {
            posts += 1;
            Ok(if posts == 1 {
                json_response(503, json!({}))
            } else {
                in_progress()
            })
        })
    });
    let r = rounds(&db, &tap, 40_000.0);
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    let posts = tap.requests().iter().filter(|q| q.method == "POST").count();
    assert_eq!(
        posts, 5,
        "the fourth send in any case, then past two minutes: refused"
    );
}

#[test]
fn an_update_the_server_takes_long_to_apply_is_no_conflict() {
    for p in ALL {
        an_update_applied_late(p);
    }
}

fn an_update_applied_late(p: P) {
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let db = db_with(p);
    let id = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"title": "b"}));
    let mut puts = 0;
    tap.hook(move |req| {
        if req.method != "PUT" {
            return None;
        }
        puts += 1;
        match puts {
            1 => Some(Err(NetError::Timeout)),
            2..=7 => Some(Ok(in_progress())),
            _ => None, // applied now, 56 s on
        }
    });
    let r = rounds(&db, &tap, 8_000.0);
    let keys = tap.keys("PUT");
    assert_eq!(keys.len(), 8, "{p:?}");
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "{p:?}: one key: {keys:?}"
    );
    assert!(r.conflicts.is_empty(), "{p:?}: {:?}", r.conflicts);
    assert!(r.rejected.is_empty(), "{p:?}: {:?}", r.rejected);
    assert_eq!(s.record("todos", &sid).unwrap()["title"], "b", "{p:?}");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_refusal_that_echoes_the_create_is_not_taken_for_its_client_id_taken() {
    // FastAPI (pydantic 2) answers a missing field with the whole body sent as `input`: the
    // client id is there, as sent, and says nothing of it being taken. No list is read.
    let tap = Tap::new(MemServer::new());
    let db = db_with(P::Merge);
    create(&db, "todos", json!({"notes": "no title"}));
    tap.hook(|req| {
        (req.method == "POST").then(|| {
            let input = body(req);
            Ok(json_response(
                422,
                json!({"detail": [{"type": "missing", "loc": ["body", "title"],
                                   "msg": "Field required", "input": input}]}),
            ))
        })
    });
    let r = flush_all(&db, &tap);
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    let gets = tap.requests().iter().filter(|q| q.method == "GET").count();
    assert_eq!(gets, 0, "nothing read for it");
}
