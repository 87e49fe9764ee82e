//! The sync engine end to end against the in-memory protocol server: offline writes and
//! coalescing, temporary ids and references, and reloads during a flush.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::mutation::Kind;
use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::sync::report::Report;
use ferry::core::MemoryStorage;
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

// ---------------------------------------------------------------- offline writes, coalescing

#[test]
fn offline_writes_then_flush_leave_server_equal_to_local() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    // Some records the server already knows.
    let keep = create(&db, "todos", json!({"title": "keep", "done": false}));
    let edit = create(&db, "todos", json!({"title": "edit", "done": false}));
    let gone = create(&db, "todos", json!({"title": "gone"}));
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    let ids: Vec<String> = s
        .records("todos")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);

    // Offline: create, update, delete.
    s.set_offline(true);
    let fresh = create(&db, "todos", json!({"title": "fresh"}));
    update(
        &db,
        "todos",
        &edit,
        json!({"done": true, "title": "edited"}),
    );
    delete(&db, "todos", &gone);
    let (end, _) = flush(&db, &s);
    assert!(
        matches!(end, RoundEnd::Offline | RoundEnd::Wait { .. }),
        "offline flush: {end:?}"
    );
    assert_eq!(pending(&db), 3);
    assert_eq!(s.records("todos").len(), 3, "nothing reached the server");

    s.set_offline(false);
    let report = flush_all(&db, &s);
    assert_eq!(report.acked, 3);
    assert_eq!(pending(&db), 0);
    assert_in_sync(&db, &s, "todos");
    let titles: Vec<Value> = s
        .records("todos")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("keep"), json!("edited"), json!("fresh")]);
    assert!(get(&db, "todos", &gone).is_none());
    assert!(get(&db, "todos", &keep).is_some());
    assert_eq!(get(&db, "todos", &fresh).unwrap()["title"], "fresh");
    assert_keys_unique(&s);
}

#[test]
fn offline_flush_pauses_and_keeps_everything() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    s.set_offline(true);
    create(&db, "todos", json!({"title": "a"}));
    let (end, report) = flush(&db, &s);
    assert!(
        matches!(end, RoundEnd::Offline | RoundEnd::Wait { .. }),
        "an offline flush must pause, got {end:?}"
    );
    assert_eq!(report.acked, 0);
    assert_eq!(pending(&db), 1);
    s.set_offline(false);
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
}

/// `NetError::Offline` means nothing left the client (the fetch transport returns it when
/// `navigator.onLine` is false). The round must end `RoundEnd::Offline` (the driver waits for the
/// `online` event on it), and the mutation must not count as sent: no attempt, no backoff, and
/// later offline edits still coalesce into it.
#[test]
fn offline_transport_ends_the_round_offline_without_spending_the_mutation() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    s.set_offline(true);
    let id = create(&db, "todos", json!({"title": "a"}));
    let (end, _) = flush(&db, &s);
    assert_eq!(
        end,
        RoundEnd::Offline,
        "an offline transport must end the round Offline"
    );
    let out = block_on(db.outbox()).unwrap();
    assert!(
        !out[0].in_flight,
        "nothing was sent, so nothing is in flight: {out:?}"
    );
    assert_eq!(out[0].attempts, 0);
    // Still offline: an edit and a delete coalesce with the unsent create, so nothing is sent.
    update(&db, "todos", &id, json!({"title": "b"}));
    delete(&db, "todos", &id);
    assert_eq!(pending(&db), 0, "{:?}", block_on(db.outbox()).unwrap());
    s.set_offline(false);
    let (_, report) = flush(&db, &s);
    assert_eq!(report.requests, 0);
}

#[test]
fn create_update_update_is_one_post() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a", "n": 0}));
    update(&db, "todos", &id, json!({"n": 1}));
    update(&db, "todos", &id, json!({"n": 2, "title": "b"}));
    assert_eq!(pending(&db), 1);
    let report = flush_all(&db, &s);
    assert_eq!(report.requests, 1);
    assert_eq!(s.stats().requests, 1);
    assert_eq!(s.stats().by_method.get("POST"), Some(&1));
    assert_eq!(strip(&s.records("todos")[0]), json!({"title": "b", "n": 2}));
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn create_then_delete_sends_nothing() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a"}));
    update(&db, "todos", &id, json!({"title": "b"}));
    delete(&db, "todos", &id);
    assert_eq!(pending(&db), 0);
    let (end, report) = flush(&db, &s);
    assert_eq!(end, RoundEnd::Idle);
    assert_eq!(report.requests, 0);
    assert_eq!(s.stats().requests, 0);
    assert!(local(&db, "todos").is_empty());
}

#[test]
fn update_then_delete_is_one_delete_and_update_update_one_put() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &s);
    s.reset_stats();
    update(&db, "todos", &a, json!({"title": "a1"}));
    update(&db, "todos", &a, json!({"done": true}));
    update(&db, "todos", &b, json!({"title": "b1"}));
    delete(&db, "todos", &b);
    assert_eq!(pending(&db), 2);
    flush_all(&db, &s);
    let methods: Vec<String> = s.log().into_iter().map(|l| l.0).collect();
    assert_eq!(methods, vec!["PUT", "DELETE"]);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(
        strip(&s.records("todos")[0]),
        json!({"title": "a1", "done": true})
    );
}

// ---------------------------------------------------------------- temporary ids and refs

#[test]
fn temp_id_is_replaced_everywhere_and_still_resolves() {
    let storage = MemoryStorage::new();
    let cfg = projects_and_todos();
    let db = open(cfg, storage);
    let s = MemServer::new();
    // Make the server's ids differ between collections.
    s.server_create("todos", json!({"title": "someone else's"}));
    s.server_create("todos", json!({"title": "someone else's 2"}));

    let p = create(&db, "projects", json!({"name": "P"}));
    assert!(
        p.starts_with("tmp-"),
        "a created record gets a temporary id: {p}"
    );
    let t = create(&db, "todos", json!({"title": "child", "projectId": p}));
    // Later changes through the temp id (folded into the creates).
    update(&db, "projects", &p, json!({"name": "P2"}));
    update(&db, "todos", &t, json!({"done": false}));

    let report = flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    let sp = &s.records("projects")[0];
    let sid = sp["id"].as_str().unwrap().to_string();
    assert_ne!(sid, p);
    assert_eq!(sp["clientId"], json!(p));
    let st = s
        .records("todos")
        .into_iter()
        .find(|r| r["title"] == "child")
        .expect("child on server");
    assert_eq!(
        st["projectId"],
        json!(sid),
        "the server's child must point at the server's project id"
    );
    // Local: the record and the reference carry server ids.
    let lp = get(&db, "projects", &p).expect("the temp id still finds the record");
    assert_eq!(lp["id"], json!(sid));
    let lt = get(&db, "todos", &t).expect("child by temp id");
    assert_eq!(lt["projectId"], json!(sid));
    assert_eq!(lt["id"], st["id"]);
    assert!(report
        .ids
        .iter()
        .any(|i| i.collection == "projects" && i.from == p && i.to == json!(sid)));
    assert!(report
        .ids
        .iter()
        .any(|i| i.collection == "todos" && i.from == t));
    // The change event of the acknowledgement says which id the record had: a view kept by id
    // (from `subscribe` alone) moves it rather than keep it twice.
    let acked = report
        .changes
        .iter()
        .find(|c| c.collection == "projects" && c.id == json!(sid))
        .expect("the project's change");
    assert_eq!(acked.previous_id.as_deref(), Some(p.as_str()));
    assert_eq!(sp["name"], "P2");
    assert_in_sync(&db, &s, "projects");
    // The parent reached the server first.
    let posts: Vec<String> = s.log().into_iter().map(|l| l.1).collect();
    assert_eq!(posts, vec!["/api/projects", "/api/todos"]);
    pull(&db, &s, "todos");
    assert_in_sync(&db, &s, "todos");

    // Writes through the old temporary ids reach the records under their server ids.
    update(&db, "projects", &p, json!({"name": "P3"}));
    delete(&db, "todos", &t);
    let out = block_on(db.outbox()).unwrap();
    let shape: Vec<_> = out.iter().map(|i| (i.kind, i.record_id.clone())).collect();
    let tid = st["id"].as_str().unwrap().to_string();
    assert_eq!(
        shape,
        vec![(Kind::Update, sid.clone()), (Kind::Delete, tid)]
    );
    assert_eq!(get(&db, "projects", &sid).expect("project")["name"], "P3");
    assert_eq!(get(&db, "todos", &t), None);
}

#[test]
fn later_mutations_queued_on_a_temp_id_follow_the_server_id() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a"}));
    // Send the create but lose the answer, so it is in flight.
    s.drop_after_commit(1);
    let (end, _) = flush(&db, &s);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    // Changes made while the create is in flight queue behind it on the temp id.
    update(&db, "todos", &id, json!({"title": "b"}));
    update(&db, "todos", &id, json!({"done": true}));
    let out = block_on(db.outbox()).unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].in_flight);
    assert_eq!(out[1].record_id, id);

    let report = flush_all(&db, &s);
    let sid = s.records("todos")[0]["id"].as_str().unwrap().to_string();
    assert!(report
        .ids
        .iter()
        .any(|i| i.from == id && i.to == json!(sid)));
    assert_eq!(s.records("todos").len(), 1);
    assert_eq!(
        strip(&s.records("todos")[0]),
        json!({"title": "b", "done": true})
    );
    // The update went to the server id, not the temp id.
    assert!(s
        .log()
        .iter()
        .any(|l| l.0 == "PUT" && l.1 == format!("/api/todos/{sid}")));
    assert!(!s.log().iter().any(|l| l.1.contains("tmp-")));
    assert_in_sync(&db, &s, "todos");
    assert_keys_unique(&s);
}

#[test]
fn delete_of_an_in_flight_create_reaches_the_server_id() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "a"}));
    s.drop_after_commit(1);
    flush(&db, &s);
    delete(&db, "todos", &id);
    assert!(get(&db, "todos", &id).is_none());
    flush_all(&db, &s);
    assert!(s.records("todos").is_empty(), "{:?}", s.records("todos"));
    assert!(local(&db, "todos").is_empty());
    assert_eq!(pending(&db), 0);
}

// ---------------------------------------------------------------- reloads

#[test]
fn reload_during_flush_neither_duplicates_nor_loses() {
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    {
        let db = open(config(&["todos"]), storage.clone());
        create(&db, "todos", json!({"title": "a"}));
        create(&db, "todos", json!({"title": "b"}));
        s.drop_after_commit(1);
        let mut report = Report::default();
        let end = block_on(db.flush_round(&s, &[], &mut report)).unwrap();
        // The first answer was lost; the second went through all the same.
        assert_eq!(end, RoundEnd::Progress);
        // The tab closes here.
    }
    let db = open(config(&["todos"]), storage.clone());
    assert_eq!(pending(&db), 1);
    assert!(block_on(db.outbox()).unwrap()[0].in_flight);
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 2);
    assert_keys_unique(&s);
    assert_in_sync(&db, &s, "todos");
}

/// A transport that copies the "disk" while the request is out: the state a tab leaves behind when
/// it is closed between sending and applying the answer.
struct SnapshotDuringSend {
    server: MemServer,
    storage: MemoryStorage,
    snap: std::cell::RefCell<Option<MemoryStorage>>,
}

impl Transport for SnapshotDuringSend {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        if self.snap.borrow().is_none() {
            *self.snap.borrow_mut() = Some(self.storage.snapshot());
        }
        self.server.send(req).await
    }
}

#[test]
fn crash_between_send_and_apply_recovers_from_disk() {
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    let db = open(config(&["todos"]), storage.clone());
    let a = create(&db, "todos", json!({"title": "a"}));
    let t = SnapshotDuringSend {
        server: s.clone(),
        storage: storage.clone(),
        snap: Default::default(),
    };
    let mut report = Report::default();
    block_on(db.flush_round(&t, &[], &mut report)).unwrap();
    assert_eq!(s.records("todos").len(), 1);
    drop(db);
    // The disk as it was when the request left: the answer was never applied.
    let disk = t.snap.borrow_mut().take().unwrap();
    let db = open(config(&["todos"]), disk);
    assert_eq!(pending(&db), 1);
    update(&db, "todos", &a, json!({"done": true}));
    flush_all(&db, &s);
    assert_eq!(s.records("todos").len(), 1, "{:?}", s.records("todos"));
    assert_eq!(s.records("todos")[0]["done"], true);
    assert_keys_unique(&s);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn reopen_keeps_pending_and_the_clock_does_not_reuse_ids() {
    let storage = MemoryStorage::new();
    let first = {
        let db = open(config(&["todos"]), storage.clone());
        create(&db, "todos", json!({"title": "a"}))
    };
    let db = open(config(&["todos"]), storage.clone());
    let second = create(&db, "todos", json!({"title": "b"}));
    assert_ne!(first, second);
    let out = block_on(db.outbox()).unwrap();
    assert_eq!(out.len(), 2);
    assert_ne!(out[0].mutation_id, out[1].mutation_id);
}

/// A store opened without a collection sends what it can and keeps the rest: mutations of the
/// collection it does not declare (it does not know their URL) wait, in order, for a store that
/// declares it. Even a whole batch's worth of them at the head of the queue holds nothing back.
#[test]
fn mutations_of_a_collection_left_out_wait_for_a_store_that_declares_it() {
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    {
        let db = open(config(&["notes", "todos"]), storage.clone());
        for k in 0..150 {
            create(&db, "notes", json!({"text": format!("note {k}")}));
        }
        // Interleaved with the notes: a round's acknowledged todos are not neighbours, and
        // dropping them must not take the notes between them along.
        for k in 0..30 {
            create(&db, "todos", json!({"title": format!("t {k}")}));
            create(&db, "notes", json!({"text": format!("late note {k}")}));
        }
    }
    let db = open(config(&["todos"]), storage.clone());
    let report = flush_all(&db, &s);
    assert_eq!(report.acked, 30);
    assert_eq!(s.records("todos").len(), 30);
    assert!(s.records("notes").is_empty());
    assert_eq!(pending(&db), 180);
    drop(db);

    let db = open(config(&["notes", "todos"]), storage);
    let report = flush_all(&db, &s);
    assert_eq!(report.acked, 180);
    assert_eq!(pending(&db), 0);
    assert_in_sync(&db, &s, "notes");
    assert_in_sync(&db, &s, "todos");
}

/// A child whose parent's create was rejected waits while that rejection waits for the app:
/// retried, the parent gets a server id and the child goes with it; never with the temporary id.
/// Discarded, the child goes as it is (the server decides about an id it never saw).
#[test]
fn child_of_a_rejected_parent_waits_for_the_apps_decision() {
    let cfg = projects_and_todos();
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    let p = create(&db, "projects", json!({"name": "P"}));
    create(&db, "todos", json!({"title": "child", "projectId": p}));
    s.fault_match(Some("/api/projects"));
    s.fail_next(1, 422, None);
    let report = flush_all(&db, &s);
    assert_eq!(report.rejected.len(), 1);
    assert!(s.records("todos").is_empty(), "the child waits");
    assert_eq!(pending(&db), 1);

    s.clear_faults();
    let rejected = block_on(db.rejected()).unwrap();
    block_on(db.retry_rejected(&rejected[0].mutation_id)).unwrap();
    flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    let sid = s.records("projects")[0]["id"].clone();
    assert_eq!(s.records("todos").len(), 1, "the child was sent once");
    assert_eq!(s.records("todos")[0]["projectId"], sid);

    // The same, discarded: the child is sent as it is.
    let q = create(&db, "projects", json!({"name": "Q"}));
    create(&db, "todos", json!({"title": "orphan", "projectId": q}));
    s.fault_match(Some("/api/projects"));
    s.fail_next(1, 422, None);
    flush_all(&db, &s);
    assert_eq!(pending(&db), 1);
    s.clear_faults();
    let rejected = block_on(db.rejected()).unwrap();
    block_on(db.discard_rejected(&rejected[0].mutation_id)).unwrap();
    flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    let orphan = s
        .records("todos")
        .into_iter()
        .find(|r| r["title"] == "orphan")
        .expect("sent");
    assert_eq!(orphan["projectId"], json!(q));
}

#[test]
fn a_record_is_heard_to_move_before_the_records_that_point_at_it() {
    // A view kept by id learns the project's server id (its change, with `previousId`) before
    // a todo's change names the project by that id.
    let db = open(projects_and_todos(), MemoryStorage::new());
    let s = MemServer::new();
    let p = create(&db, "projects", json!({"name": "P"}));
    create(&db, "todos", json!({"title": "child", "projectId": p}));
    let report = flush_all(&db, &s);
    let first = |c: &str| report.changes.iter().position(|ch| ch.collection == c);
    let (project, todo) = (
        first("projects").expect("moved"),
        first("todos").expect("moved"),
    );
    assert!(project < todo, "{:?}", report.changes);
    assert_eq!(
        report.changes[project].previous_id.as_deref(),
        Some(p.as_str())
    );
}
