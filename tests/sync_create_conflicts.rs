//! Creates that meet a 409 or 412 (PROTOCOL.md sections 3 and 4), under every policy: our own
//! record echoed back is an acknowledgement, someone else's record or an error body a rejection
//! kept for the app, a retry of a request still being processed tried again, and an idempotent
//! replay never a duplicate.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/policies.rs"]
mod policies;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::http::NetError;
use mem_server::MemServer;
use native_env::*;
use policies::*;
use serde_json::json;
use sync_asserts::*;

#[test]
fn retried_create_answered_409_with_our_record_is_an_ack() {
    // A server without idempotency keys that refuses a second record with the same clientId,
    // answering 409 with the record it holds.
    let tap = Tap::new(MemServer::plain());
    let s = tap.inner.clone();
    let db = db_with(P::Merge);
    let id = create(&db, "todos", json!({"title": "t"}));
    s.drop_after_commit(1);
    flush(&db, &tap);
    assert_eq!(s.records("todos").len(), 1);
    let inner = s.clone();
    tap.hook(move |req| {
        if req.method != "POST" {
            return None;
        }
        let cid = body(req)["clientId"].clone();
        inner
            .records("todos")
            .into_iter()
            .find(|r| r["clientId"] == cid)
            .map(|existing| Ok(json_response(409, existing)))
    });
    let r = flush_all(&db, &tap);
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!(r.acked, 1);
    assert_eq!(s.records("todos").len(), 1, "no duplicate");
    let sid = s.records("todos")[0]["id"].clone();
    assert_eq!(get(&db, "todos", &id).unwrap()["id"], sid);
    assert!(r.ids.iter().any(|i| i.from == id && i.to == sid));
    assert_eq!(local(&db, "todos"), s.records("todos"));
}

#[test]
fn create_answered_409_with_someone_elses_record_is_rejected_not_lost() {
    let tap = Tap::new(MemServer::new());
    let db = db_with(P::Merge);
    let id = create(&db, "todos", json!({"id": "taken", "title": "mine"}));
    tap.hook(|req| {
        (req.method == "POST").then(|| {
            Ok(json_response(
                409,
                json!({"id": "taken", "title": "theirs", "clientId": "someone"}),
            ))
        })
    });
    let r = flush_all(&db, &tap);
    assert_eq!(r.rejected.len(), 1);
    let rej = &r.rejected[0];
    assert_eq!(rej.status, 409);
    assert_eq!(
        rej.record.as_ref().unwrap()["title"],
        "mine",
        "the local record is kept in the rejected list"
    );
    assert!(rej.body.contains("theirs"));
    assert!(get(&db, "todos", &id).is_none());
    assert_eq!(block_on(db.rejected()).unwrap().len(), 1);
}

#[test]
fn create_answered_409_without_a_record_is_rejected_not_deleted() {
    // `{"error": "title must be unique"}`: a refusal of the request, not a record's state.
    for p in ALL {
        let tap = Tap::new(MemServer::new());
        let db = db_with(p);
        create(&db, "todos", json!({"title": "dup", "body": "a long note"}));
        tap.hook(|req| {
            (req.method == "POST")
                .then(|| Ok(json_response(409, json!({"error": "title must be unique"}))))
        });
        let r = flush_all(&db, &tap);
        assert!(r.conflicts.is_empty(), "{p:?}: {:?}", r.conflicts);
        assert_eq!(r.rejected.len(), 1, "{p:?}");
        let kept = &block_on(db.rejected()).unwrap()[0];
        assert_eq!(
            kept.record.as_ref().unwrap()["body"],
            "a long note",
            "{p:?}"
        );
        assert!(kept.body.contains("unique"));
    }
}

#[test]
fn create_answered_409_while_still_being_processed_is_tried_again() {
    // The idempotency draft's answer to a retry of a request still in progress: the first send
    // timed out, the second meets 409, the third gets the stored answer.
    for p in ALL {
        let tap = Tap::new(MemServer::new());
        let s = tap.inner.clone();
        let db = db_with(p);
        create(&db, "todos", json!({"title": "slow"}));
        let server = s.clone();
        let mut posts = 0;
        tap.hook(move |req| {
            if req.method != "POST" {
                return None;
            }
            posts += 1;
            match posts {
                1 => {
                    let _ = server.send_now(req.clone());
                    Some(Err(NetError::Timeout))
                }
                2 => Some(Ok(json_response(409, json!({"error": "in progress"})))),
                _ => None,
            }
        });
        let r = flush_all(&db, &tap);
        assert!(
            r.conflicts.is_empty() && r.rejected.is_empty(),
            "{p:?}: {r:?}"
        );
        assert_eq!(s.records("todos").len(), 1, "{p:?}: stored once");
        assert_eq!(local(&db, "todos"), s.records("todos"), "{p:?}");
    }
}

#[test]
fn retried_create_with_idempotency_is_replayed_not_duplicated() {
    for p in ALL {
        let db = db_with(p);
        let s = MemServer::new();
        create(&db, "todos", json!({"title": "t"}));
        s.drop_after_commit(1);
        flush(&db, &s);
        // The read before the retry finds nothing (the list does not show it): sent again.
        let tap = Tap::new(s.clone());
        tap.hook(|req| (req.method == "GET").then(|| Ok(json_response(200, json!([])))));
        let r = flush_all(&db, &tap);
        assert!(r.conflicts.is_empty());
        assert_eq!(s.records("todos").len(), 1);
        assert_eq!(s.stats().replays, 1);
        assert_in_sync(&db, &s, "todos");
        assert_keys_unique(&s);
        assert_eq!(pending(&db), 0);
    }
}
