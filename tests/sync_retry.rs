//! `retryRejected` after the app edited the record again: the newer edits stay, and only the
//! fields still holding what the rejection put back get the rejected change again.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::future::Future;

use mem_server::MemServer;
use native_env::*;
use serde_json::json;

/// A record synced as `{title: "a", notes: "n0"}` whose update to `title` the server refused.
fn refused_title() -> (Db, MemServer, String, String) {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a", "notes": "n0"}));
    flush_all(&db, &s);
    update(&db, "todos", &a, json!({"title": "way too long a title"}));
    s.fail_next(1, 400, None);
    let (_, report) = flush(&db, &s);
    let id = report.rejected[0].mutation_id.clone();
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], "a", "undone");
    (db, s, a, id)
}

#[test]
fn a_retry_keeps_the_edits_made_since_the_rejection() {
    let (db, s, a, id) = refused_title();
    update(
        &db,
        "todos",
        &a,
        json!({"title": "short", "notes": "user note"}),
    );
    // The refused field was edited again: nothing of the change is left to make.
    let e = block_on(db.retry_rejected(&id)).unwrap_err();
    assert_eq!(e.kind, ferry::core::ErrorKind::Validation);
    let mine = get(&db, "todos", &a).unwrap();
    assert_eq!(
        (&mine["title"], &mine["notes"]),
        (&json!("short"), &json!("user note"))
    );
    flush_all(&db, &s);
    let server = &s.records("todos")[0];
    assert_eq!(
        (&server["title"], &server["notes"]),
        (&json!("short"), &json!("user note"))
    );
    block_on(db.discard_rejected(&id)).unwrap();
    assert!(block_on(db.rejected()).unwrap().is_empty());
}

#[test]
fn a_retry_makes_the_change_again_where_nothing_was_edited_since() {
    let (db, s, a, id) = refused_title();
    update(&db, "todos", &a, json!({"notes": "user note"}));
    block_on(db.retry_rejected(&id)).unwrap();
    assert_eq!(
        get(&db, "todos", &a).unwrap()["title"],
        "way too long a title"
    );
    flush_all(&db, &s);
    let server = &s.records("todos")[0];
    assert_eq!(
        (&server["title"], &server["notes"]),
        (&json!("way too long a title"), &json!("user note"))
    );
}

#[test]
fn a_retry_takes_the_apps_fix() {
    // A create the server refused, retried with the field it refused fixed.
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "", "notes": "n"}));
    s.fail_next(1, 400, None);
    let (_, report) = flush(&db, &s);
    assert!(
        get(&db, "todos", &a).is_none(),
        "a refused create is taken back"
    );
    let fix = rec(json!({"title": "fixed"}));
    block_on(db.retry_rejected_with(&report.rejected[0].mutation_id, fix)).unwrap();
    flush_all(&db, &s);
    let server = &s.records("todos")[0];
    assert_eq!(
        (&server["title"], &server["notes"]),
        (&json!("fixed"), &json!("n"))
    );

    // An update, the same way; a delete takes no changes.
    let (db, s, a, id) = refused_title();
    block_on(db.retry_rejected_with(&id, rec(json!({"title": "short"})))).unwrap();
    flush_all(&db, &s);
    assert_eq!(s.records("todos")[0]["title"], "short");
    delete(&db, "todos", &a);
    s.fail_next(1, 403, None);
    let (_, report) = flush(&db, &s);
    let id = &report.rejected[0].mutation_id;
    let e = block_on(db.retry_rejected_with(id, rec(json!({"title": "x"})))).unwrap_err();
    assert_eq!(e.kind, ferry::core::ErrorKind::Validation);
    assert_eq!(block_on(db.rejected()).unwrap().len(), 1, "still listed");
}

#[test]
fn a_retry_leaves_what_changed_since_and_says_when_nothing_is_left() {
    // The server's value came by a pull: newer than the refused one, it stays; the retry has
    // nothing left to make, says so, and the item stays for the app to discard.
    let (db, s, a, id) = refused_title();
    let real = ferry::core::record::id_key(&get(&db, "todos", &a).unwrap()["id"]).unwrap();
    s.server_patch("todos", &real, json!({"title": "other device"}));
    pull(&db, &s, "todos");
    let e = block_on(db.retry_rejected(&id)).unwrap_err();
    assert_eq!(e.kind, ferry::core::ErrorKind::Validation);
    assert!(
        e.message.contains("nothing of this change is left"),
        "{}",
        e.message
    );
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], "other device");
    assert_eq!(block_on(db.rejected()).unwrap().len(), 1, "still listed");

    // A fix the app made and synced since stays too; the retry's own changes go.
    let (db, s, a, id) = refused_title();
    update(&db, "todos", &a, json!({"title": "final title"}));
    flush_all(&db, &s);
    block_on(db.retry_rejected_with(&id, rec(json!({"notes": "n1"})))).unwrap();
    flush_all(&db, &s);
    let server = &s.records("todos")[0];
    assert_eq!(
        (&server["title"], &server["notes"]),
        (&json!("final title"), &json!("n1"))
    );
}

#[test]
fn a_created_records_id_is_not_a_fix() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": ""}));
    s.fail_next(1, 400, None);
    let (_, report) = flush(&db, &s);
    let id = &report.rejected[0].mutation_id;
    let e =
        block_on(db.retry_rejected_with(id, rec(json!({"id": "mine", "title": "t"})))).unwrap_err();
    assert_eq!(e.kind, ferry::core::ErrorKind::Validation);
    assert_eq!(block_on(db.rejected()).unwrap().len(), 1, "still listed");
}

#[test]
fn a_retried_delete_by_a_temporary_id_forgets_it_once_done() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let x = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    delete(&db, "todos", &x);
    s.fail_next(1, 422, None);
    let (_, report) = flush(&db, &s);
    assert!(
        get(&db, "todos", &x).is_some(),
        "a refused delete brings the record back"
    );
    let real = ferry::core::record::id_key(&get(&db, "todos", &x).unwrap()["id"]).unwrap();
    block_on(db.retry_rejected(&report.rejected[0].mutation_id)).unwrap();
    flush_all(&db, &s);
    assert!(s.records("todos").is_empty());
    // Another record comes under the same id (a server that gives ids out again).
    let tap = Tap::new(s.clone());
    let reused = json!({"data": [{"id": real, "title": "b"}]});
    tap.hook(move |req| (req.method == "GET").then(|| Ok(json_response(200, reused.clone()))));
    block_on(db.pull_full(&tap, &[], "todos")).unwrap();
    assert!(
        get(&db, "todos", &x).is_none(),
        "its temporary id is forgotten"
    );
}

#[test]
fn a_server_without_put_is_warned_of_once() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &s);
    update(&db, "todos", &a, json!({"title": "a2"}));
    update(&db, "todos", &b, json!({"title": "b2"}));
    s.fail_next(2, 405, None);
    let (_, report) = flush(&db, &s);
    assert_eq!(report.rejected.len(), 2);
    let warned = db.env.warnings.borrow();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("updateMethod: \"PATCH\""), "{warned:?}");
}

#[test]
fn a_rejected_create_names_the_fields_of_changes_folded_into_it() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    update(&db, "todos", &a, json!({"done": true})); // offline: folded into the create
    s.fail_next(1, 422, None);
    let (_, report) = flush(&db, &s);
    assert_eq!(report.rejected.len(), 1);
    let items = block_on(db.rejected()).unwrap();
    assert_eq!(items[0].fields, ["done", "title"]);
}

#[test]
fn a_write_answered_5xx_again_and_again_is_warned_of_once() {
    // sandman2 answers a NOT NULL violation with 500: the write can never go, and is never
    // refused. Four failures are a server having a bad minute; the fifth is said once.
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    update(&db, "todos", &a, json!({"title": "b"}));
    let tap = Tap::new(s.clone());
    let inner = s.clone();
    let failures = std::rc::Rc::new(std::cell::Cell::new(0));
    let left = failures.clone();
    tap.hook(move |req| {
        if req.method != "GET" && left.get() < 7 {
            left.set(left.get() + 1);
            return Some(Ok(json_response(500, json!({"message": "NOT NULL"}))));
        }
        Some(block_on(ferry::core::sync::http::Transport::send(
            &inner,
            req.clone(),
        )))
    });
    for round in 1..=7 {
        flush(&db, &tap);
        let warned = db.env.warnings.borrow();
        let said: Vec<_> = warned
            .iter()
            .filter(|w| w.contains("answered 500"))
            .collect();
        assert_eq!(
            said.len(),
            usize::from(round >= 5),
            "round {round}: {warned:?}"
        );
    }
    assert_eq!(failures.get(), 7);
    let warned = db.env.warnings.borrow().clone();
    assert!(warned[0].contains("answer 4xx"), "{warned:?}");
    assert!(warned[0].contains("rejectPending(\""), "{warned:?}");
    flush_all(&db, &tap);
    assert_eq!(s.records("todos")[0]["title"], "b", "taken at last");
    assert_eq!(db.env.warnings.borrow().len(), 1);
}

#[test]
fn a_write_the_server_never_takes_can_be_rejected_by_the_app() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a", "notes": "n"}));
    flush_all(&db, &s);
    update(&db, "todos", &a, json!({"title": "bad"}));
    let tap = Tap::new(s.clone());
    let inner = s.clone();
    tap.hook(move |req| {
        let bad = req.body.as_ref().is_some_and(|b| b.contains("\"bad\""));
        if bad {
            return Some(Ok(json_response(500, json!({"message": "NOT NULL"}))));
        }
        Some(block_on(ferry::core::sync::http::Transport::send(
            &inner,
            req.clone(),
        )))
    });
    flush(&db, &tap);
    // Made after the failed attempt: a change of its own, queued behind the stuck one.
    update(&db, "todos", &a, json!({"notes": "later"}));
    let ids: Vec<String> = block_on(db.outbox())
        .unwrap()
        .into_iter()
        .map(|o| o.mutation_id)
        .collect();
    assert_eq!(ids.len(), 2);
    let e = block_on(db.reject_pending(&ids[1])).unwrap_err();
    assert_eq!(e.kind, ferry::core::ErrorKind::Validation, "{e:?}");
    let e = block_on(db.reject_pending("no-such-mutation")).unwrap_err();
    assert_eq!(e.kind, ferry::core::ErrorKind::NotFound, "{e:?}");

    let report = block_on(db.reject_pending(&ids[0])).unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].status, 0);
    let mine = get(&db, "todos", &a).unwrap();
    assert_eq!(
        (&mine["title"], &mine["notes"]),
        (&json!("a"), &json!("later"))
    );
    flush_all(&db, &tap);
    assert_eq!(pending(&db), 0);
    let server = &s.records("todos")[0];
    assert_eq!(
        (&server["title"], &server["notes"]),
        (&json!("a"), &json!("later"))
    );
    // On the rejected list, from where it can be retried (and fail again) or dropped.
    let items = block_on(db.rejected()).unwrap();
    assert_eq!(items.len(), 1);
    block_on(db.discard_rejected(&ids[0])).unwrap();
}

#[test]
fn a_write_that_is_out_cannot_be_rejected_by_the_app() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    update(&db, "todos", &a, json!({"title": "b"}));
    let id = block_on(db.outbox()).unwrap()[0].mutation_id.clone();
    {
        let out = Vanishing(s.clone());
        let mut flush = std::pin::pin!(db.flush(&out, &[]));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            flush.as_mut().poll(&mut cx).is_pending(),
            "the update is out"
        );
        let e = block_on(db.reject_pending(&id)).unwrap_err();
        assert_eq!(e.kind, ferry::core::ErrorKind::Validation, "{e:?}");
        assert!(e.message.contains("being sent"), "{e:?}");
    }
    assert_eq!(pending(&db), 1, "still queued");
}
