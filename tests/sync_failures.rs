//! Sync failures of every class against the in-memory protocol server: lost answers and
//! idempotent retries, 5xx and 429 with backoff, rejections, captive portals and 401.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::{ChangeKind, ErrorKind};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;
use sync_asserts::*;

// ---------------------------------------------------------------- idempotent retries

#[test]
fn lost_answer_after_commit_is_retried_with_the_same_key_and_no_duplicate() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    // The read before the retry finds nothing (`landed.rs`: the server's list does not show
    // it), so it goes again, and the server's idempotency answers it.
    tap.hook(|req| (req.method == "GET").then(|| Ok(json_response(200, json!({"data": []})))));
    let a = create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    s.drop_after_commit(1);
    let mut report = ferry::core::sync::report::Report::default();
    let end = block_on(db.flush_round(&tap, &[], &mut report)).unwrap();
    assert_eq!(end, RoundEnd::Progress, "the second create went through");
    assert_eq!(
        s.records("todos").len(),
        2,
        "the first create was applied too"
    );
    let out = block_on(db.outbox()).unwrap();
    assert_eq!(out.len(), 1);
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
    let RoundEnd::Wait {
        retry_at,
        reason,
        kind,
        status,
    } = end
    else {
        panic!("503 must wait, got {end:?}")
    };
    assert!(reason.contains("503"), "{reason}");
    assert_eq!((kind, status), (ErrorKind::Network, Some(503)));
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
    // A round asked for within the pause (`sync()`, another tab, back online) sends nothing.
    let asked = s.log().len();
    let (end, _) = flush(&db, &s);
    match end {
        RoundEnd::Wait { retry_at, .. } => assert_eq!(retry_at, db.env.now() + 7000.0),
        other => panic!("the pause holds, got {other:?}"),
    }
    assert_eq!(s.log().len(), asked, "nothing sent during the pause");
    db.env.advance(7000.0);
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

#[test]
fn a_retry_after_of_zero_keeps_the_backoff() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "a"}));
    for (i, after) in ["0", "Thu, 01 Jan 1970 00:00:00 GMT"]
        .into_iter()
        .enumerate()
    {
        s.fail_next(1, 503, Some(after));
        let (end, _) = flush(&db, &s);
        let RoundEnd::Wait { retry_at, .. } = end else {
            panic!("{end:?}")
        };
        let least = 1000.0 * f64::from(1u32 << i) / 2.0;
        assert!(
            retry_at >= db.env.now() + least,
            "{after}: {}",
            retry_at - db.env.now()
        );
        db.env.advance(60_000.0);
    }
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

/// A server that refuses a create while a change of its record waits behind it (made while
/// the create was out). Both go to the rejected list.
struct RefuseWhileEdited<'a> {
    server: MemServer,
    db: &'a Db,
    id: String,
}

impl Transport for RefuseWhileEdited<'_> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        if req.method != "POST" {
            return self.server.send(req).await;
        }
        update(self.db, "todos", &self.id, json!({"n": 2}));
        Ok(json_response(422, json!({"error": "title taken"})))
    }
}

/// The changes held back with a rejected create are settled with it: retried, the create
/// carries them (and they leave the list); retried alone first, they say to retry the create;
/// discarded, the create takes them along.
#[test]
fn changes_held_back_with_a_rejected_create_go_with_it() {
    for retry in [true, false] {
        let (db, _) = open_todos();
        let s = MemServer::new();
        let id = create(&db, "todos", json!({"title": "t", "n": 1}));
        let t = RefuseWhileEdited {
            server: s.clone(),
            db: &db,
            id: id.clone(),
        };
        flush(&db, &t);
        let listed = block_on(db.rejected()).unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        let (create_id, update_id) = (&listed[0].mutation_id, &listed[1].mutation_id);
        let e = block_on(db.retry_rejected(update_id)).expect_err("its create first");
        assert!(e.message.contains(create_id.as_str()), "{}", e.message);
        if retry {
            block_on(db.retry_rejected(create_id)).unwrap();
            flush_all(&db, &s);
            assert_eq!(strip(&s.records("todos")[0]), json!({"title": "t", "n": 2}));
        } else {
            block_on(db.discard_rejected(create_id)).unwrap();
            assert_eq!(pending(&db), 0);
            assert!(s.records("todos").is_empty());
        }
        assert!(block_on(db.rejected()).unwrap().is_empty());
        assert_in_sync(&db, &s, "todos");
    }
}

#[test]
fn an_answer_that_cannot_be_read_is_a_protocol_error_not_a_network_one() {
    // A create answered 200 with text and no Location: no id to adopt, so it is sent again, and
    // the app is told the server's answer was unreadable, with its status.
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    create(&db, "todos", json!({"title": "a"}));
    tap.hook(|_| {
        Some(Ok(HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: "Created".into(),
        }))
    });
    let (end, _) = flush(&db, &tap);
    assert!(
        matches!(
            &end,
            RoundEnd::Wait { kind: ErrorKind::Protocol, status: Some(200), reason, .. }
                if reason.contains("unexpected answer")
        ),
        "{end:?}"
    );

    // A batch answered 200 with something that is not a batch answer: the same.
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    let db = open(cfg, ferry::core::MemoryStorage::new());
    create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    tap.hook(|_| Some(Ok(json_response(200, json!({"ok": true})))));
    let (end, _) = flush(&db, &tap);
    assert!(
        matches!(
            &end,
            RoundEnd::Wait {
                kind: ErrorKind::Protocol,
                ..
            }
        ),
        "{end:?}"
    );

    // No answer at all stays a network error.
    tap.hook(|_| Some(Err(NetError::Failed("connection reset".into()))));
    db.env.advance(120_000.0);
    let (end, _) = flush(&db, &tap);
    assert!(
        matches!(
            &end,
            RoundEnd::Wait {
                kind: ErrorKind::Network,
                status: None,
                ..
            }
        ),
        "{end:?}"
    );
}

#[test]
fn outbox_shows_what_an_in_flight_create_sends_not_what_the_record_became() {
    let (db, _) = open_todos();
    let a = create(&db, "todos", json!({"title": "a"}));
    let b = create(&db, "todos", json!({"title": "b"}));
    let s = MemServer::new();
    s.fail_next(2, 503, None);
    let _ = flush(&db, &s);
    update(&db, "todos", &a, json!({"title": "a2"}));
    delete(&db, "todos", &b);
    let items = block_on(db.outbox()).expect("outbox");
    let create_of = |id: &str| {
        items
            .iter()
            .find(|i| i.record_id == id && i.in_flight)
            .unwrap_or_else(|| panic!("{id}'s create in flight: {items:?}"))
    };
    assert_eq!(
        create_of(&a).changes["title"],
        "a",
        "the body that is sent again"
    );
    assert_eq!(create_of(&b).changes["title"], "b");
    let later = items.iter().find(|i| i.record_id == a && !i.in_flight);
    assert_eq!(later.expect("the update waits").changes["title"], "a2");
}

#[test]
fn a_server_error_says_what_its_answer_says() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    tap.hook(|_| {
        Some(Ok(HttpResponse {
            status: 500,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: "<html><head><title>RuntimeError at /api/todos</title></head><body>You \
                   called this URL via POST, but the URL doesn't end in a slash and you have \
                   APPEND_SLASH set.</body></html>"
                .into(),
        }))
    });
    create(&db, "todos", json!({"title": "a"}));
    let (end, _) = flush(&db, &tap);
    let RoundEnd::Wait { reason, .. } = end else {
        panic!("500 must wait, got {end:?}")
    };
    assert!(
        reason.contains("500: RuntimeError at /api/todos"),
        "{reason}"
    );
    assert!(reason.contains("needs a trailing slash"), "{reason}");
    let out = block_on(db.outbox()).unwrap();
    assert!(
        out[0].error.as_deref().unwrap().contains("RuntimeError"),
        "{out:?}"
    );
}
