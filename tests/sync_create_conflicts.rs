//! Creates that meet a 409 or 412 (PROTOCOL.md sections 3 and 4), under every policy: our own
//! record echoed back is an acknowledgement, someone else's record or an error body a rejection
//! kept for the app, a retry of a request still being processed tried again, and an idempotent
//! replay never a duplicate. A create refused because its client id is taken (a uniqueness
//! check on it) is looked for on the server: there, it is acknowledged.
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

/// A server with a uniqueness check on the client id and no idempotency keys, whose first copy
/// of each create is stored and answered `answer` (a browser sent the POST again by itself,
/// on a kept-alive connection that closed, and this is the second copy's answer).
fn stored_then_refused(tap: &Tap<MemServer>, status: u16, answer: serde_json::Value) {
    let server = tap.inner.clone();
    tap.hook(move |req| {
        (req.method == "POST").then(|| {
            let _ = server.send_now(req.clone());
            Ok(json_response(status, answer.clone()))
        })
    });
}

#[test]
fn create_refused_as_its_client_id_taken_is_acknowledged_when_stored() {
    // Rails' `validates :client_id, uniqueness: true` (422), Django's `unique=True` (400).
    for (status, answer) in [
        (422, json!({"clientId": ["has already been taken"]})),
        (
            400,
            json!({"clientId": ["todo with this client id already exists."]}),
        ),
    ] {
        let tap = Tap::new(MemServer::plain());
        let s = tap.inner.clone();
        let db = db_with(P::Merge);
        let id = create(&db, "todos", json!({"title": "t"}));
        update(&db, "todos", &id, json!({"done": true})); // queued behind the create
        let other = create(&db, "todos", json!({"title": "u"}));
        delete(&db, "todos", &other); // cancels its create: nothing sent for it
        stored_then_refused(&tap, status, answer);
        let r = flush_all(&db, &tap);
        assert!(r.rejected.is_empty(), "{status}: {:?}", r.rejected);
        let on_server = s.records("todos");
        assert_eq!(on_server.len(), 1, "{status}: stored once");
        assert_eq!(
            on_server[0]["done"], true,
            "{status}: the update behind it went too"
        );
        let sid = on_server[0]["id"].clone();
        assert!(
            r.ids.iter().any(|i| i.from == id && i.to == sid),
            "{status}"
        );
        assert_in_sync(&db, &s, "todos");
    }
}

#[test]
fn create_refused_as_its_client_id_taken_yet_not_stored_stays_refused() {
    let tap = Tap::new(MemServer::plain());
    let db = db_with(P::Merge);
    create(&db, "todos", json!({"title": "t"}));
    tap.hook(|req| {
        (req.method == "POST").then(|| {
            Ok(json_response(
                422,
                json!({"clientId": ["has already been taken"]}),
            ))
        })
    });
    let r = flush_all(&db, &tap);
    assert_eq!(r.rejected.len(), 1, "{r:?}");
    assert!(
        tap.requests().iter().any(|q| q.method == "GET"),
        "the server was looked at"
    );
}

#[test]
fn create_refused_as_its_client_id_taken_waits_while_the_list_cannot_be_read() {
    let tap = Tap::new(MemServer::plain());
    let s = tap.inner.clone();
    let db = db_with(P::Merge);
    create(&db, "todos", json!({"title": "t"}));
    let server = s.clone();
    let mut gets = 0;
    tap.hook(move |req| match req.method.as_str() {
        "POST" => {
            let _ = server.send_now(req.clone());
            Some(Ok(json_response(
                422,
                json!({"clientId": ["has already been taken"]}),
            )))
        }
        "GET" => {
            gets += 1;
            (gets == 1).then(|| Ok(json_response(503, json!({"error": "busy"}))))
        }
        _ => None,
    });
    let (_, r) = flush(&db, &tap);
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!(pending(&db), 1, "it waits");
    let r = flush_all(&db, &tap);
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!(s.records("todos").len(), 1);
    assert_in_sync(&db, &s, "todos");
}
