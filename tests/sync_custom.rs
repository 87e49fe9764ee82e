//! The `custom` conflict policy: conflicts wait in `conflicts()` (across reloads) until the app
//! resolves or discards them; meanwhile only their own record is held back.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::report::{ConflictState, Resolution};
use ferry::core::{ConflictPolicy, MemoryStorage};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;
use sync_asserts::*;

fn custom_config() -> ferry::core::StoreConfig {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().conflict = ConflictPolicy::Custom;
    cfg
}

/// Two synced records; the server changes `a` of the first behind the client's back, and the
/// client changes `a` too: a conflict on the first record only.
fn conflicted() -> (Db, MemoryStorage, MemServer, String, String) {
    let storage = MemoryStorage::new();
    let db = open(custom_config(), storage.clone());
    let s = MemServer::new();
    let one = create(&db, "todos", json!({"title": "one", "a": 1}));
    let two = create(&db, "todos", json!({"title": "two", "a": 1}));
    flush_all(&db, &s);
    let one = id_of(&get(&db, "todos", &one).unwrap());
    let two = id_of(&get(&db, "todos", &two).unwrap());
    s.server_patch("todos", &one, json!({"a": 2}));
    update(&db, "todos", &one, json!({"a": 3}));
    update(&db, "todos", &two, json!({"a": 4}));
    let report = flush_all(&db, &s);
    assert_eq!(report.conflicts.len(), 1);
    assert!(report.conflicts[0].open, "a custom conflict is left open");
    (db, storage, s, one, two)
}

#[test]
fn an_open_conflict_holds_back_only_its_record_and_survives_a_reload() {
    let (db, storage, s, one, two) = conflicted();
    assert_eq!(
        s.record("todos", &two).unwrap()["a"],
        4,
        "the other record went on"
    );
    assert_eq!(
        s.record("todos", &one).unwrap()["a"],
        2,
        "the server's value stands for now"
    );
    // A later edit of the conflicted record waits behind the conflict.
    update(&db, "todos", &one, json!({"title": "one!"}));
    flush_all(&db, &s);
    // The app cannot take it out from under the conflict.
    let waiting = block_on(db.outbox()).unwrap()[0].mutation_id.clone();
    let e = block_on(db.reject_pending(&waiting)).unwrap_err();
    assert!(e.message.contains("open conflict"), "{e:?}");
    assert_eq!(s.record("todos", &one).unwrap()["title"], "one");
    drop(db);
    let db = open(custom_config(), storage);
    let open_ones = block_on(db.conflicts()).unwrap();
    assert_eq!(open_ones.len(), 1);
    let c = &open_ones[0];
    assert_eq!(
        (c.record_id.as_str(), c.state),
        (one.as_str(), ConflictState::Open)
    );
    assert_eq!(
        (
            c.base.as_ref().unwrap()["a"].clone(),
            c.server.as_ref().unwrap()["a"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(c.local.as_ref().unwrap()["a"], 3);
}

#[test]
fn resolving_with_a_record_sends_it_and_releases_the_held_back_edits() {
    let (db, _storage, s, one, _) = conflicted();
    update(&db, "todos", &one, json!({"title": "one!"}));
    let c = block_on(db.conflicts()).unwrap().remove(0);
    let mut chosen = c.server.clone().unwrap();
    chosen.insert("a".into(), json!(23));
    let report = block_on(db.resolve_conflict(&c.conflict_id, Resolution::Record(chosen))).unwrap();
    assert_eq!(report.conflicts.len(), 1, "the resolution is an event too");
    assert!(!report.conflicts[0].open);
    flush_all(&db, &s);
    let on_server = s.record("todos", &one).unwrap();
    assert_eq!(
        (on_server["a"].clone(), on_server["title"].clone()),
        (json!(23), json!("one!"))
    );
    assert!(block_on(db.conflicts()).unwrap().is_empty());
    assert_in_sync(&db, &s, "todos");
    assert_keys_unique(&s);
}

#[test]
fn resolving_with_a_delete_deletes_on_both_sides() {
    let (db, _storage, s, one, _) = conflicted();
    let c = block_on(db.conflicts()).unwrap().remove(0);
    block_on(db.resolve_conflict(&c.conflict_id, Resolution::Delete)).unwrap();
    assert!(get(&db, "todos", &one).is_none());
    flush_all(&db, &s);
    assert!(s.record("todos", &one).is_none());
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn discarding_takes_the_servers_state() {
    let (db, _storage, s, one, _) = conflicted();
    let c = block_on(db.conflicts()).unwrap().remove(0);
    block_on(db.discard_conflict(&c.conflict_id)).unwrap();
    assert_eq!(get(&db, "todos", &one).unwrap()["a"], 2);
    flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_deferred_conflict_stays_listed_until_settled() {
    let (db, _storage, s, _, _) = conflicted();
    let c = block_on(db.conflicts()).unwrap().remove(0);
    block_on(db.mark_conflict(&c.conflict_id, ConflictState::Deferred, None)).unwrap();
    flush_all(&db, &s);
    let listed = block_on(db.conflicts()).unwrap();
    assert_eq!(listed[0].state, ConflictState::Deferred);
    assert!(block_on(db.resolve_conflict("nope", Resolution::Discard)).is_err());
}

#[test]
fn an_update_of_a_record_deleted_on_the_server_can_be_resolved_by_recreating_it() {
    let db = open(custom_config(), MemoryStorage::new());
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"title": "keep me"}));
    flush_all(&db, &s);
    let id = id_of(&get(&db, "todos", &id).unwrap());
    s.server_delete("todos", &id);
    update(&db, "todos", &id, json!({"title": "kept"}));
    flush_all(&db, &s);
    let c = block_on(db.conflicts()).unwrap().remove(0);
    assert!(c.server.is_none(), "the server deleted it");
    block_on(db.resolve_conflict(&c.conflict_id, Resolution::Record(c.local.clone().unwrap())))
        .unwrap();
    flush_all(&db, &s);
    let on_server = s.records("todos");
    assert_eq!(on_server.len(), 1);
    assert_eq!(on_server[0]["title"], "kept");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_delete_made_while_the_conflict_waited_stands_after_it_is_resolved() {
    let (db, _storage, s, one, _) = conflicted();
    delete(&db, "todos", &one);
    let c = block_on(db.conflicts()).unwrap().remove(0);
    block_on(db.resolve_conflict(
        &c.conflict_id,
        Resolution::Record(c.server.clone().unwrap()),
    ))
    .unwrap();
    assert!(
        get(&db, "todos", &one).is_none(),
        "the local delete was not undone"
    );
    flush_all(&db, &s);
    assert!(
        s.record("todos", &one).is_none(),
        "and it reached the server"
    );
    assert_in_sync(&db, &s, "todos");
}
