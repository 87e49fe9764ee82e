//! Conflicts (PROTOCOL.md section 4, DESIGN "conflict policies"): every policy against every kind of
//! collision, checking the event (base, local, server, result), the final local and server state,
//! and that nothing is lost silently.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/policies.rs"]
mod policies;

use std::collections::HashSet;

use ferry::core::mutation::Kind;
use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::HttpResponse;
use ferry::core::sync::report::{ConflictEvent, Report};
use ferry::core::MemoryStorage;
use mem_server::MemServer;
use native_env::*;
use policies::*;
use serde_json::{json, Value};

fn policy_name(p: P) -> &'static str {
    match p {
        P::Merge | P::MergeTieLocal => "merge",
        P::ServerWins => "serverWins",
        P::ClientWins => "clientWins",
    }
}

/// A synced record `{title, a: 1, b: 1}`; its server id.
fn setup(p: P) -> (Db, MemServer, String) {
    let db = db_with(p);
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "t", "a": 1, "b": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    assert_eq!(s.version("todos", &sid), Some(1));
    (db, s, sid)
}

fn one_conflict(r: &Report, p: P) -> ConflictEvent {
    assert_eq!(r.conflicts.len(), 1, "{p:?}: {:?}", r.conflicts);
    let e = r.conflicts[0].clone();
    assert_eq!(e.policy, policy_name(p));
    assert_eq!(e.collection, "todos");
    e
}

fn field(r: &Option<ferry::core::Record>, f: &str) -> Value {
    r.as_ref()
        .and_then(|r| r.get(f).cloned())
        .unwrap_or(Value::Null)
}

fn assert_in_sync(db: &Db, s: &MemServer) {
    assert_eq!(
        local(db, "todos"),
        s.records("todos"),
        "local and server differ"
    );
    assert_eq!(pending(db), 0, "{:?}", block_on(db.outbox()));
    let keys = s.applied_keys();
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        keys.len(),
        "applied twice: {keys:?}"
    );
}

#[test]
fn update_update_different_fields() {
    for p in ALL {
        let (db, s, sid) = setup(p);
        update(&db, "todos", &sid, json!({"a": 2}));
        s.server_patch("todos", &sid, json!({"b": 3}));
        let r = flush_all(&db, &s);
        let e = one_conflict(&r, p);
        assert_eq!(e.kind, Kind::Update);
        assert_eq!(field(&e.base, "a"), json!(1), "{p:?}");
        assert_eq!(field(&e.base, "b"), json!(1), "{p:?}");
        assert_eq!(
            field(&e.local, "a"),
            json!(2),
            "{p:?}: the local change is in the event"
        );
        assert_eq!(field(&e.server, "b"), json!(3), "{p:?}");
        let want_a = if p == P::ServerWins { 1 } else { 2 };
        assert_eq!(field(&e.result, "a"), json!(want_a), "{p:?}");
        assert_eq!(
            field(&e.result, "b"),
            json!(3),
            "{p:?}: the server's change is kept"
        );
        assert_eq!(e.resent, p != P::ServerWins, "{p:?}");
        let sr = s.record("todos", &sid).unwrap();
        assert_eq!(
            (sr["a"].clone(), sr["b"].clone()),
            (json!(want_a), json!(3)),
            "{p:?}"
        );
        assert_in_sync(&db, &s);
    }
}

#[test]
fn update_update_same_field() {
    for p in ALL {
        update_update_same_field_in(p, false);
    }
}

/// A pull between a local change and its flush changes nothing of how a conflict is settled:
/// the record is left as it is, and the flush meets the conflict.
#[test]
fn a_pull_before_the_flush_leaves_the_conflict_to_the_policy() {
    for p in ALL {
        update_update_same_field_in(p, true);
        delete_against_server_update_in(p, true);
    }
    // Under `serverWins` the server's record wins even where the two changed different fields.
    let (db, s, sid) = setup(P::ServerWins);
    update(&db, "todos", &sid, json!({"a": 2}));
    s.server_patch("todos", &sid, json!({"b": 5}));
    pull(&db, &s, "todos");
    let e = one_conflict(&flush_all(&db, &s), P::ServerWins);
    assert_eq!(
        (field(&e.result, "a"), field(&e.result, "b")),
        (json!(1), json!(5))
    );
    assert_in_sync(&db, &s);
}

fn update_update_same_field_in(p: P, pull_first: bool) {
    let (db, s, sid) = setup(p);
    update(&db, "todos", &sid, json!({"a": 2}));
    s.server_patch("todos", &sid, json!({"a": 5}));
    if pull_first {
        pull(&db, &s, "todos");
        assert_eq!(
            get(&db, "todos", &sid).unwrap()["a"],
            json!(2),
            "{p:?}: left as it is"
        );
    }
    let r = flush_all(&db, &s);
    let e = one_conflict(&r, p);
    assert_eq!(field(&e.base, "a"), json!(1));
    assert_eq!(field(&e.local, "a"), json!(2));
    assert_eq!(field(&e.server, "a"), json!(5));
    let local_wins = matches!(p, P::MergeTieLocal | P::ClientWins);
    let want = if local_wins { 2 } else { 5 };
    assert_eq!(field(&e.result, "a"), json!(want), "{p:?}");
    assert_eq!(e.resent, local_wins, "{p:?}");
    assert_eq!(s.record("todos", &sid).unwrap()["a"], json!(want), "{p:?}");
    assert_eq!(get(&db, "todos", &sid).unwrap()["a"], json!(want), "{p:?}");
    assert_in_sync(&db, &s);
}

#[test]
fn update_against_server_delete() {
    for p in ALL {
        let (db, s, sid) = setup(p);
        update(&db, "todos", &sid, json!({"a": 2}));
        assert!(s.server_delete("todos", &sid));
        let r = flush_all(&db, &s);
        let e = one_conflict(&r, p);
        assert_eq!(e.server, None, "{p:?}: deleted on the server");
        assert_eq!(
            field(&e.local, "a"),
            json!(2),
            "{p:?}: the lost change is in the event"
        );
        if p == P::ClientWins {
            // Created again from the local record.
            assert!(e.resent);
            assert_eq!(field(&e.result, "a"), json!(2));
            let recs = s.records("todos");
            assert_eq!(recs.len(), 1, "{recs:?}");
            assert_eq!(strip(&recs[0])["a"], json!(2));
            assert_eq!(strip(&recs[0])["title"], json!("t"));
            let l = get(&db, "todos", &sid).expect("the old id still finds the recreated record");
            assert_eq!(l["id"], recs[0]["id"]);
        } else {
            assert!(!e.resent);
            assert_eq!(e.result, None, "{p:?}");
            assert!(s.records("todos").is_empty());
            assert!(get(&db, "todos", &sid).is_none(), "{p:?}");
        }
        assert_in_sync(&db, &s);
    }
}

#[test]
fn delete_against_server_update() {
    for p in ALL {
        delete_against_server_update_in(p, false);
    }
}

fn delete_against_server_update_in(p: P, pull_first: bool) {
    let (db, s, sid) = setup(p);
    delete(&db, "todos", &sid);
    s.server_patch("todos", &sid, json!({"a": 5}));
    if pull_first {
        pull(&db, &s, "todos");
        assert!(
            get(&db, "todos", &sid).is_none(),
            "{p:?}: still deleted here"
        );
    }
    let r = flush_all(&db, &s);
    let e = one_conflict(&r, p);
    assert_eq!(e.kind, Kind::Delete);
    assert_eq!(e.local, None, "{p:?}");
    assert_eq!(field(&e.base, "a"), json!(1), "{p:?}");
    assert_eq!(field(&e.server, "a"), json!(5), "{p:?}");
    if p == P::ClientWins {
        assert!(e.resent);
        assert!(s.records("todos").is_empty(), "{p:?}");
        assert!(get(&db, "todos", &sid).is_none());
    } else {
        // The server's newer record comes back.
        assert!(!e.resent);
        assert_eq!(field(&e.result, "a"), json!(5), "{p:?}");
        assert_eq!(get(&db, "todos", &sid).unwrap()["a"], json!(5), "{p:?}");
        assert_eq!(s.records("todos").len(), 1);
    }
    assert_in_sync(&db, &s);
}

#[test]
fn delete_against_a_server_version_bump_without_change_still_deletes_under_merge() {
    let (db, s, sid) = setup(P::Merge);
    delete(&db, "todos", &sid);
    // Rewritten with the same content: the version moves, the data does not.
    s.server_patch("todos", &sid, json!({"a": 1}));
    assert_eq!(s.version("todos", &sid), Some(2));
    flush_all(&db, &s);
    assert!(s.records("todos").is_empty());
    assert_in_sync(&db, &s);
}

#[test]
fn delete_against_server_delete_is_an_ack() {
    for p in ALL {
        let (db, s, sid) = setup(p);
        delete(&db, "todos", &sid);
        s.server_delete("todos", &sid);
        let (end, r) = flush(&db, &s);
        assert_eq!(end, RoundEnd::Idle);
        assert!(r.conflicts.is_empty(), "{p:?}: {:?}", r.conflicts);
        assert!(r.rejected.is_empty());
        assert_eq!(r.acked, 1);
        assert!(s.records("todos").is_empty());
        assert_in_sync(&db, &s);
    }
}

#[test]
fn conflict_without_a_body_reads_the_server_record() {
    let db = db_with(P::Merge);
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let id = create(&db, "todos", json!({"title": "t", "a": 1, "b": 1}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"a": 2}));
    s.server_patch("todos", &sid, json!({"b": 3}));
    // A server that answers 409 with no body: the engine must GET the record.
    let answered = std::rc::Rc::new(std::cell::Cell::new(false));
    let a2 = answered.clone();
    tap.hook(move |req| {
        if req.method == "PUT" && !a2.get() {
            a2.set(true);
            Some(Ok(HttpResponse {
                status: 409,
                headers: vec![],
                body: String::new(),
            }))
        } else {
            None
        }
    });
    let r = flush_all(&db, &tap);
    assert!(
        tap.requests().iter().any(|q| q.method == "GET"),
        "the record was read"
    );
    let e = one_conflict(&r, P::Merge);
    assert_eq!(field(&e.server, "b"), json!(3));
    let sr = s.record("todos", &sid).unwrap();
    assert_eq!((sr["a"].clone(), sr["b"].clone()), (json!(2), json!(3)));
    assert_in_sync(&db, &s);
}

#[test]
fn resolved_update_is_resent_against_the_current_version() {
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let db = db_with(P::Merge);
    let id = create(&db, "todos", json!({"title": "t", "a": 1, "b": 1}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"a": 2}));
    s.server_patch("todos", &sid, json!({"b": 3}));
    s.server_patch("todos", &sid, json!({"b": 4}));
    tap.clear();
    flush_all(&db, &tap);
    let puts: Vec<_> = tap
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(header(&puts[0], "If-Match"), Some("\"1\""));
    assert_eq!(header(&puts[1], "If-Match"), Some("\"3\""));
    assert_eq!(s.version("todos", &sid), Some(4));
    assert_in_sync(&db, &s);
}

#[test]
fn repeated_conflicts_settle_without_losing_the_local_change() {
    let db = db_with(P::Merge);
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let id = create(&db, "todos", json!({"title": "t", "a": 1, "b": 1}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"a": 2}));
    // Each time the client sends, another client has just written `b`.
    let inner = s.clone();
    let sid2 = sid.clone();
    let n = std::rc::Rc::new(std::cell::Cell::new(0));
    let n2 = n.clone();
    tap.hook(move |req| {
        if req.method == "PUT" && n2.get() < 3 {
            n2.set(n2.get() + 1);
            inner.server_patch("todos", &sid2, json!({"b": 10 + n2.get()}));
        }
        None
    });
    let r = flush_all(&db, &tap);
    assert_eq!(r.conflicts.len(), 3);
    let sr = s.record("todos", &sid).unwrap();
    assert_eq!((sr["a"].clone(), sr["b"].clone()), (json!(2), json!(13)));
    assert_in_sync(&db, &s);
}

#[test]
fn two_clients_editing_offline_converge() {
    let s = MemServer::new();
    let a = open(config(&["todos"]), MemoryStorage::new());
    let b = block_on(ferry::core::Engine::open(
        config(&["todos"]),
        MemoryStorage::new(),
        TestEnv::seeded(2),
    ))
    .unwrap();
    let id = create(&a, "todos", json!({"title": "t", "x": 0, "y": 0}));
    flush_all(&a, &s);
    pull(&b, &s, "todos");
    let sid = id_of(&get(&a, "todos", &id).unwrap());
    // Both offline: a edits x, b edits y and the title.
    update(&a, "todos", &sid, json!({"x": 1}));
    update(&b, "todos", &sid, json!({"y": 2, "title": "b"}));
    flush_all(&b, &s);
    let r = flush_all(&a, &s);
    assert_eq!(r.conflicts.len(), 1);
    pull(&b, &s, "todos");
    let want = json!({"title": "b", "x": 1, "y": 2});
    assert_eq!(strip(&s.records("todos")[0]), want);
    assert_eq!(local(&a, "todos"), s.records("todos"));
    assert_eq!(local(&b, "todos"), s.records("todos"));
}

#[test]
fn last_writer_wins_server_keeps_the_later_offline_edit() {
    let s = MemServer::new();
    s.set_lww(true);
    let a = open(config(&["todos"]), MemoryStorage::new());
    let b = block_on(ferry::core::Engine::open(
        config(&["todos"]),
        MemoryStorage::new(),
        TestEnv::seeded(2),
    ))
    .unwrap();
    let id = create(&a, "todos", json!({"title": "t"}));
    flush_all(&a, &s);
    pull(&b, &s, "todos");
    let sid = id_of(&get(&a, "todos", &id).unwrap());
    a.env.advance(1_000.0);
    update(&a, "todos", &sid, json!({"title": "a, earlier"}));
    b.env.advance(2_000.0);
    update(&b, "todos", &sid, json!({"title": "b, later"}));
    // The later edit arrives first; the earlier one must not overwrite it.
    flush_all(&b, &s);
    flush_all(&a, &s);
    assert_eq!(s.records("todos")[0]["title"], "b, later");
    assert_eq!(
        local(&a, "todos"),
        s.records("todos"),
        "the loser adopts the server's record"
    );
}

#[test]
fn a_change_sent_again_after_a_conflict_carries_a_new_idempotency_key() {
    let (db, s, sid) = setup(P::Merge);
    s.server_patch("todos", &sid, json!({"b": 2}));
    update(&db, "todos", &sid, json!({"a": 5}));
    s.reset_stats();
    flush_all(&db, &s);
    let puts: Vec<Option<String>> = s
        .log_entries()
        .into_iter()
        .filter(|l| l.method == "PUT")
        .map(|l| l.idempotency_key)
        .collect();
    assert_eq!(puts.len(), 2, "a 412, then the merged record");
    assert_ne!(puts[0], puts[1], "the merged record is a new request");
    let rec = s.record("todos", &sid).unwrap();
    assert_eq!((rec["a"].clone(), rec["b"].clone()), (json!(5), json!(2)));
}

#[test]
fn a_server_that_always_answers_409_makes_the_flush_wait_not_spin() {
    let (db, s, sid) = setup(P::ClientWins);
    let mut current = s.record("todos", &sid).unwrap();
    update(&db, "todos", &sid, json!({"a": 9}));
    let tap = Tap::new(s.clone());
    // Each answer names a newer version than the one sent: a conflict each time. (A 409 at the
    // version sent is a refusal instead: `sync_server_says.rs`.)
    tap.hook(move |req| {
        (req.method == "PUT").then(|| {
            current["version"] = json!(current["version"].as_i64().unwrap() + 1);
            Ok(json_response(409, current.clone()))
        })
    });
    let (end, _) = block_on(db.flush(&tap, &[])).unwrap();
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    let keys: Vec<String> = tap
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .filter_map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "Idempotency-Key")
                .map(|(_, v)| v.clone())
        })
        .collect();
    let puts = keys.len();
    assert!(puts <= 4, "resent {puts} times before waiting");
    // Each resend has a new key, `<mutation id>.<attempt>`: one segment, not one per conflict.
    assert!(keys.iter().all(|k| k.matches('.').count() <= 1), "{keys:?}");
    let unique: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), puts, "{keys:?}");
    assert_eq!(
        pending(&db),
        1,
        "the change is kept, to be tried again later"
    );
}

/// An update sent again after its answer was lost, met by a conflict whose body names the record
/// and its version only: that is no sign its change landed (a field it clears is missing from
/// such a body as it would be from the record cleared). It stays a conflict, not an ack.
#[test]
fn a_conflict_body_without_the_fields_is_no_acknowledgement() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().update_method = ferry::core::UpdateMethod::Patch;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let id = create(&db, "todos", json!({"title": "t", "due": "monday"}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"due": null}));
    tap.hook(|_| Some(Err(ferry::core::sync::http::NetError::Timeout)));
    flush(&db, &tap); // never reached the server; its answer never came
    let terse = json!({"id": sid.parse::<u64>().map_or(json!(sid), Value::from), "version": 9});
    tap.hook(move |req| (req.method == "PATCH").then(|| Ok(json_response(412, terse.clone()))));
    db.env.advance(120_000.0);
    let (_, report) = flush(&db, &tap);
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_eq!(tap.inner.record("todos", &sid).unwrap()["due"], "monday");
}
