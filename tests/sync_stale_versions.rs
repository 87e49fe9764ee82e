//! A version this device has gone stale (an ETag-only server's lists name none, so a pull keeps
//! the one the device had) meets a 412 over the very record its change was made on: no
//! conflict, and the change goes again over the server's version (PROTOCOL.md section 4).
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/etag_devices.rs"]
mod etag_devices;
#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use etag_devices::*;
use ferry::core::ConflictPolicy;
use mem_server::MemServer;
use native_env::*;
use serde_json::json;

/// Device A, under `serverWins`, after device B changed the record and A pulled that change
/// (the list names no version, so A keeps the stale one it had).
fn a_pulled_bs_change() -> (Db, Tap<MemServer>, String) {
    let cfg = || {
        let mut cfg = config(&["todos"]);
        cfg.collections.get_mut("todos").unwrap().conflict = ConflictPolicy::ServerWins;
        cfg
    };
    let (a, b, tap, sid) = two_devices(cfg);
    update(&b, "todos", &sid, json!({"title": "B's"}));
    assert!(flush_all(&b, &tap).conflicts.is_empty());
    pull(&a, &tap, "todos");
    assert_eq!(get(&a, "todos", &sid).unwrap()["title"], "B's");
    (a, tap, sid)
}

/// A device that pulled another device's change and then edits the record writes over that
/// change without a conflict: its stale version meets a 412 whose record is the one the edit
/// was made on, which is none, and the edit goes again over the server's version. Taken for a
/// conflict, it was one of Ferry's own making, which `serverWins` settled by dropping the edit.
#[test]
fn an_edit_made_after_pulling_a_change_is_no_conflict() {
    let (a, tap, sid) = a_pulled_bs_change();
    update(&a, "todos", &sid, json!({"title": "A's, over B's"}));
    let report = flush_all(&a, &tap);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    // Nothing the app shows changed: no change to report either.
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    let theirs = tap.inner.record("todos", &sid).unwrap();
    assert_eq!(theirs["title"], "A's, over B's");
    assert_eq!(get(&a, "todos", &sid).unwrap()["title"], "A's, over B's");
}

/// As above, with the edit made before the pull (pending, another field): the pull puts it over
/// the other device's change, and the 412 its stale version meets is no conflict either.
#[test]
fn an_edit_pending_over_a_pulled_change_of_another_field_is_no_conflict() {
    let (a, b, tap, sid) = two_devices(|| config(&["todos"]));
    update(&a, "todos", &sid, json!({"n": 2}));
    update(&b, "todos", &sid, json!({"title": "B's"}));
    assert!(flush_all(&b, &tap).conflicts.is_empty());
    pull(&a, &tap, "todos");
    let report = flush_all(&a, &tap);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let theirs = tap.inner.record("todos", &sid).unwrap();
    assert_eq!((&theirs["title"], &theirs["n"]), (&json!("B's"), &json!(2)));
}

/// As above, for a delete: made after pulling the other device's change, it goes, under
/// `serverWins` too (a conflict of its own making brought the record back).
#[test]
fn a_delete_made_after_pulling_a_change_is_no_conflict() {
    let (a, tap, sid) = a_pulled_bs_change();
    delete(&a, "todos", &sid);
    let report = flush_all(&a, &tap);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert!(tap.inner.is_deleted("todos", &sid));
    assert!(get(&a, "todos", &sid).is_none());
}
