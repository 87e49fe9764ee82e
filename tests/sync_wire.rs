//! What goes over the wire: plain REST servers, PATCH, headers, awkward and numeric ids,
//! undoing deletes, and other answer shapes.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use std::collections::HashSet;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpResponse, Transport};
use ferry::core::{MemoryStorage, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

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
    // (A GET first: this server's versions are not known yet.)
    let reqs: Vec<_> = tap
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
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

#[test]
fn replace_keeps_the_servers_version_and_a_patch_never_clears_it() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().update_method = UpdateMethod::Patch;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let a = create(&db, "todos", json!({"title": "a", "n": 1}));
    flush_all(&db, &tap);
    let sa = id_of(&get(&db, "todos", &a).unwrap());
    let version = get(&db, "todos", &sa).unwrap()["version"].clone();
    assert!(!version.is_null(), "the server gave a version");
    tap.clear();
    let replaced = replace(&db, "todos", &sa, json!({"title": "b"}));
    assert_eq!(
        replaced["version"], version,
        "the replacement keeps the version"
    );
    assert!(replaced.get("n").is_none(), "and drops what it left out");
    assert!(
        replaced.get("clientId").is_some(),
        "and the client id the server echoed"
    );
    flush_all(&db, &tap);
    let reqs = tap.requests();
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(body(&reqs[0]), json!({"n": null, "title": "b"}));
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
            retry_at: db.env.now() + 5000.0,
            kind: ferry::core::ErrorKind::Network,
            status: Some(429),
        }
    );
    db.env.advance(5000.0); // the pause the server asked for
    s.html_next(1);
    let (end, _) = flush(&db, &s);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    s.require_token(Some("t".into()));
    let (end, _) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Unauthorized);
    assert!(s.records("todos").is_empty());
    assert_eq!(pending(&db), 3);
    assert!(block_on(db.rejected()).unwrap().is_empty());
    // The batch answered with a captive portal's page may have reached the server: not found
    // there, it waits (at most 10 s from that send) before it goes again.
    let (end, _) = flush_with(&db, &s, &[("Authorization", "Bearer t")]);
    assert!(matches!(end, RoundEnd::Held { .. }), "{end:?}");
    db.env.advance(10_000.0);
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
