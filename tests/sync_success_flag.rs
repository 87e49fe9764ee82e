//! Servers written for Sencha's proxies say no with a 2xx: `{"success": false, "message": …}`
//! (the reader's `successProperty`). Such an answer must be a refusal, kept in `rejected()` and
//! undone locally, never an acknowledgement (the server never stored the change) nor a failure
//! sent again for ever; and a read that says so must not empty the collection.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport, REDIRECTED_TO};
use ferry::core::{MemoryStorage, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

const NO: &str = "Title is not allowed";

/// The server's answer to `req`, as a Sencha-style server gives it: a record as
/// `{"success": true, "data": record}`.
fn sencha_ok(s: &MemServer, req: &HttpRequest) -> HttpResponse {
    let res = block_on(s.send(req.clone())).expect("the server answers");
    let rec: Value = serde_json::from_str(&res.body).unwrap_or(Value::Null);
    json_response(res.status, json!({"success": true, "data": rec}))
}

/// A Sencha-style server that refuses, with a 200, every write whose method is `method`
/// (and stores nothing of it), and answers the rest wrapped.
fn refuse(tap: &Tap<MemServer>, method: &'static str) {
    let inner = tap.inner.clone();
    tap.hook(move |req| {
        Some(Ok(if req.method == method {
            json_response(200, json!({"success": false, "message": NO}))
        } else {
            sencha_ok(&inner, req)
        }))
    });
}

/// The server for `tap` says "not found" with a 200: `{"success": false, …}` to a write, and
/// `url_says` to a read of the record's URL.
fn not_found_with_200(tap: &Tap<MemServer>, url_says: Value) {
    let inner = tap.inner.clone();
    let no = json!({"success": false, "message": "Record not found"});
    tap.hook(move |req| {
        let res = block_on(inner.send(req.clone())).expect("answers");
        Some(Ok(match res.status {
            404 | 410 if req.method == "GET" => json_response(200, url_says.clone()),
            404 | 410 => json_response(200, no.clone()),
            _ => res,
        }))
    });
}

fn synced(db: &Db, t: &impl Transport) -> String {
    let a = create(db, "todos", json!({"title": "a", "n": 1}));
    flush_all(db, t);
    id_of(&get(db, "todos", &a).expect("created"))
}

#[test]
fn a_create_refused_with_success_false_is_rejected_not_sent_again() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    refuse(&tap, "POST");
    let bad = create(&db, "todos", json!({"title": "bad"}));
    let (end, report) = flush(&db, &tap);
    assert_eq!(end, RoundEnd::Idle, "a refusal is settled, not retried");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    let r = &report.rejected[0];
    assert_eq!(r.status, 200);
    assert!(r.body.contains(NO), "{}", r.body);
    assert_eq!(r.record_id, bad);
    assert!(get(&db, "todos", &bad).is_none(), "the create is undone");
    assert_eq!(pending(&db), 0);
    assert!(s.records("todos").is_empty());

    // Answered `{"success": true, "data": …}`, the retry is acknowledged with the server's id.
    tap.unhook();
    let inner = s.clone();
    tap.hook(move |req| Some(Ok(sencha_ok(&inner, req))));
    block_on(db.retry_rejected(&r.mutation_id)).expect("retry");
    flush_all(&db, &tap);
    assert_eq!(s.records("todos").len(), 1);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn an_update_refused_with_success_false_goes_back_to_the_servers_values() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let id = synced(&db, &tap);
    refuse(&tap, "PUT");
    update(&db, "todos", &id, json!({"title": "bad"}));
    let (end, report) = flush(&db, &tap);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].status, 200);
    assert_eq!(get(&db, "todos", &id).expect("kept")["title"], "a");
    assert_eq!(s.record("todos", &id).expect("there")["title"], "a");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_delete_refused_with_success_false_brings_the_record_back() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let id = synced(&db, &tap);
    refuse(&tap, "DELETE");
    delete(&db, "todos", &id);
    let (_, report) = flush(&db, &tap);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(get(&db, "todos", &id).expect("restored")["title"], "a");
    assert!(s.record("todos", &id).is_some());
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_records_own_success_field_is_data() {
    // A record answered as itself (it carries its id), and a PATCH answered with the fields it
    // changed, `success` among them: both acknowledged.
    let mut cfg = config(&["todos"]);
    cfg.collections
        .get_mut("todos")
        .expect("todos")
        .update_method = UpdateMethod::Patch;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let a = create(&db, "todos", json!({"title": "job", "success": false}));
    let report = flush_all(&db, &tap);
    assert!(report.rejected.is_empty(), "{report:?}");
    let id = id_of(&get(&db, "todos", &a).expect("created"));
    assert_eq!(s.record("todos", &id).expect("stored")["success"], false);
    // The PATCH sends only the title; the answer is the whole record, `success: false` in it.
    update(&db, "todos", &id, json!({"title": "job 2"}));
    let report = flush_all(&db, &tap);
    assert!(report.rejected.is_empty(), "{report:?}");
    assert_eq!(s.record("todos", &id).expect("there")["title"], "job 2");
    update(&db, "todos", &id, json!({"success": true}));
    flush_all(&db, &tap);
    let inner = s.clone();
    tap.hook(move |req| {
        let res = block_on(inner.send(req.clone())).expect("answers");
        Some(Ok(if req.method == "PATCH" {
            json_response(res.status, body(req)) // the changed fields only
        } else {
            res
        }))
    });
    update(&db, "todos", &id, json!({"success": false}));
    let report = flush_all(&db, &tap);
    assert!(report.rejected.is_empty(), "{report:?}");
    assert_eq!(s.record("todos", &id).expect("there")["success"], false);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn without_a_success_property_such_an_answer_is_what_it_was() {
    let mut cfg = config(&["todos"]);
    cfg.collections
        .get_mut("todos")
        .expect("todos")
        .success_property = None;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let id = synced(&db, &tap);
    refuse(&tap, "PUT");
    update(&db, "todos", &id, json!({"title": "b"}));
    let (_, report) = flush(&db, &tap);
    assert!(report.rejected.is_empty(), "turned off: no refusal");
    // A success, then: but the record, read back for its version, does not show the write,
    // which stays queued rather than being undone without a word.
    let out = block_on(db.outbox()).expect("outbox");
    assert_eq!(out.len(), 1, "{out:?}");
    let why = out[0].error.as_deref().unwrap_or_default();
    assert!(why.contains("read back"), "{why}");
    assert_eq!(get(&db, "todos", &id).expect("there")["title"], "b");
    // Not for ever: a server that keeps its version when it changed nothing (a field it drops)
    // gives that answer every time. After a few sends, its record is taken, with a warning.
    flush_all(&db, &tap);
    assert_eq!(get(&db, "todos", &id).expect("there")["title"], "a");
    assert_warned(&db, "does not show");
}

#[test]
fn a_read_answered_success_false_fails_and_removes_nothing() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let id = synced(&db, &tap);
    let inner = s.clone();
    tap.hook(move |req| {
        Some(if req.method == "GET" {
            Ok(json_response(
                200,
                json!({"success": false, "data": [], "message": "session expired"}),
            ))
        } else {
            block_on(inner.send(req.clone()))
        })
    });
    let e = block_on(db.pull(&tap, &[], "todos")).expect_err("the read failed");
    assert!(e.message.contains("success: false"), "{}", e.message);
    assert!(e.message.contains("session expired"), "{}", e.message);
    assert!(
        get(&db, "todos", &id).is_some(),
        "nothing was taken for deleted"
    );
    tap.unhook();
    pull(&db, &tap, "todos");
    assert_in_sync(&db, &s, "todos");
}

/// Such a server says "not found" Sencha's way too: a record deleted elsewhere, whose delete
/// here is answered `success: false`, and whose URL says so (or answers a 200 with nothing), is
/// done, not brought back.
#[test]
fn a_delete_of_a_record_gone_answered_success_false_is_done() {
    let not_found = json!({"success": false, "message": "Record not found"});
    for url_says in [
        not_found.clone(),
        json!({"success": true, "data": null}),
        json!(null),
    ] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::new());
        let s = tap.inner.clone();
        let id = synced(&db, &tap);
        s.server_delete("todos", &id);
        not_found_with_200(&tap, url_says.clone());
        delete(&db, "todos", &id);
        let report = flush_all(&db, &tap);
        assert!(report.rejected.is_empty(), "{url_says}: {report:?}");
        assert!(
            get(&db, "todos", &id).is_none(),
            "{url_says}: not brought back"
        );
        assert_eq!(pending(&db), 0);
    }
}

/// An update whose record was deleted elsewhere, answered `success: false` ("not found"), meets
/// a deletion conflict as after a 404 (here `merge`: the deletion stands), not a refusal that
/// would keep the record here.
#[test]
fn an_update_of_a_record_gone_answered_success_false_is_a_deletion_conflict() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let id = synced(&db, &tap);
    s.server_delete("todos", &id);
    not_found_with_200(
        &tap,
        json!({"success": false, "message": "Record not found"}),
    );
    update(&db, "todos", &id, json!({"title": "b"}));
    let report = flush_all(&db, &tap);
    assert!(report.rejected.is_empty(), "{report:?}");
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_eq!(pending(&db), 0);
}

/// An update stored by a server without keys, whose answer never came (the page reloaded), is
/// answered `success: false` when sent again (such a server has no 409): the server holds it,
/// so it is acknowledged, not undone.
#[test]
fn an_update_out_when_the_page_reloaded_that_landed_is_not_refused() {
    let s = MemServer::new();
    s.set_idempotency(false);
    let tap = Tap::new(s.clone());
    let (db, storage) = open_todos();
    let id = synced(&db, &tap);
    update(&db, "todos", &id, json!({"title": "changed"}));
    let vanishing = Vanishing(s.clone());
    {
        let mut out = std::pin::pin!(db.flush(&vanishing, &[]));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(out.as_mut(), &mut cx).is_pending());
    }
    drop(db);
    let db = open(config(&["todos"]), storage);
    assert_eq!(s.record("todos", &id).expect("there")["title"], "changed");
    let inner = s.clone();
    tap.hook(move |req| {
        Some(if req.method == "PUT" {
            Ok(json_response(
                200,
                json!({"success": false, "message": "modified since"}),
            ))
        } else {
            block_on(inner.send(req.clone()))
        })
    });
    let report = flush_all(&db, &tap);
    assert!(report.rejected.is_empty(), "{report:?}");
    assert_eq!(get(&db, "todos", &id).expect("kept")["title"], "changed");
    assert_eq!(pending(&db), 0);
}

/// A write redirected to a login endpoint that answers JSON (`success: false`) never reached
/// the API: it waits, as after any redirected answer, neither refused and undone nor taken for
/// done; and after five such answers the console says why it waits.
#[test]
fn a_write_redirected_to_a_login_that_says_success_false_waits() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let kept = synced(&db, &tap);
    let gone = id_of(&get(&db, "todos", &create(&db, "todos", json!({"title": "g"}))).unwrap());
    flush_all(&db, &tap);
    let gone = id_of(&get(&db, "todos", &gone).expect("synced"));
    tap.hook(|req| {
        (req.method != "GET").then(|| {
            let mut res = json_response(200, json!({"success": false, "message": "Not logged in"}));
            res.headers
                .push((REDIRECTED_TO.to_string(), "http://h/login".to_string()));
            Ok(res)
        })
    });
    let a = create(&db, "todos", json!({"title": "a"}));
    update(&db, "todos", &kept, json!({"title": "changed"}));
    delete(&db, "todos", &gone);
    for _ in 0..6 {
        let (end, report) = flush(&db, &tap);
        assert!(report.rejected.is_empty(), "{report:?}");
        assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
        db.env.advance(600_000.0);
    }
    assert_eq!(pending(&db), 3, "all three wait");
    assert!(get(&db, "todos", &a).is_some(), "kept");
    assert_eq!(get(&db, "todos", &kept).unwrap()["title"], "changed");
    assert!(get(&db, "todos", &gone).is_none());
    let warned = db.env.warnings.borrow().join("\n");
    assert!(warned.contains("login page"), "{warned}");
    tap.unhook();
    flush_all(&db, &tap);
    assert_eq!(s.records("todos").len(), 2);
    assert_eq!(s.record("todos", &kept).unwrap()["title"], "changed");
    assert_in_sync(&db, &s, "todos");
}

/// A delete answered `success: false`, its record's URL saying it is not there, and the list
/// read that would confirm it getting no answer (offline): the delete waits for that read. The
/// list refusing to be read (a 403) tells nothing either: the server's "no" then stands.
#[test]
fn a_refusal_whose_record_cannot_be_read_waits_for_an_answer_or_stands() {
    for list_says in [None, Some(403)] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::new());
        let s = tap.inner.clone();
        let id = synced(&db, &tap);
        s.server_delete("todos", &id);
        let no = json!({"success": false, "message": "Record not found"});
        tap.hook(move |req| {
            Some(match (req.method.as_str(), req.url.as_str()) {
                ("GET", "/api/todos") => match list_says {
                    None => Err(NetError::Offline),
                    Some(status) => Ok(json_response(status, json!({"detail": "no"}))),
                },
                _ => Ok(json_response(200, no.clone())),
            })
        });
        delete(&db, "todos", &id);
        let (_, report) = flush(&db, &tap);
        match list_says {
            None => {
                assert!(report.rejected.is_empty(), "{report:?}");
                assert_eq!(pending(&db), 1, "waits for the list");
                assert!(get(&db, "todos", &id).is_none());
                tap.unhook();
                db.env.advance(600_000.0);
                let report = flush_all(&db, &tap);
                assert!(report.rejected.is_empty(), "{report:?}");
                assert!(get(&db, "todos", &id).is_none(), "done, not brought back");
            }
            Some(_) => {
                assert_eq!(report.rejected.len(), 1, "{report:?}");
                assert_eq!(pending(&db), 0);
            }
        }
    }
}
