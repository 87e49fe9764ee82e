//! `authStatuses`: a server that says "session expired" with 403 or 419 (CSRF and session
//! checks, Laravel's "page expired") has the queue pause and ask for credentials, as a 401
//! does, instead of rejecting the writes and undoing them locally.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::{ErrorKind, MemoryStorage};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;

fn expired_session(status: u16) -> Tap<MemServer> {
    let tap = Tap::new(MemServer::new());
    tap.hook(move |req| {
        let ok = header(req, "Authorization") == Some("Bearer fresh");
        (!ok).then(|| {
            Ok(json_response(
                status,
                json!({"message": "CSRF token mismatch."}),
            ))
        })
    });
    tap
}

fn store(auth: &[u16], batch: bool) -> Db {
    let mut cfg = config(&["todos"]);
    cfg.auth_statuses = auth.to_vec();
    if batch {
        cfg.batch_url = Some("/api/$batch".into());
    }
    open(cfg.validate().unwrap(), MemoryStorage::new())
}

#[test]
fn a_status_named_in_auth_statuses_pauses_the_queue_and_undoes_nothing() {
    for batch in [false, true] {
        let db = store(&[403, 419], batch);
        let tap = expired_session(419);
        let a = create(&db, "todos", json!({"title": "offline work"}));
        let (end, _) = flush(&db, &tap);
        assert_eq!(end, RoundEnd::Unauthorized, "batch {batch}");
        assert!(block_on(db.rejected()).unwrap().is_empty(), "batch {batch}");
        assert!(get(&db, "todos", &a).is_some(), "batch {batch}: still here");
        let (end, report) = flush_with(&db, &tap, &[("Authorization", "Bearer fresh")]);
        assert_eq!((end, report.acked), (RoundEnd::Idle, 1), "batch {batch}");
    }
}

#[test]
fn without_it_such_a_status_is_a_rejection() {
    let db = store(&[], false);
    let tap = expired_session(403);
    let a = create(&db, "todos", json!({"title": "x"}));
    flush(&db, &tap);
    assert_eq!(block_on(db.rejected()).unwrap().len(), 1);
    assert!(
        get(&db, "todos", &a).is_none(),
        "a rejected create is undone"
    );
}

#[test]
fn a_read_answered_with_it_fails_with_its_status() {
    let db = store(&[403], false);
    let tap = expired_session(403);
    let e = block_on(db.pull(&tap, &[], "todos")).expect_err("not authorised");
    assert_eq!(e.status, Some(403));
    assert!(e.message.contains("not authorised"), "{}", e.message);
}

#[test]
fn statuses_with_another_meaning_cannot_be_named() {
    for s in [200, 400, 404, 409, 412, 414, 429, 431, 500] {
        let mut cfg = config(&["todos"]);
        cfg.auth_statuses = vec![s];
        let e = cfg.validate().expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Validation, "{s}");
    }
}
