//! Ids in use without a record: a deleted record whose delete is still pending, an id a server
//! renamed. A create with the app's id does not read for those (src/core/quick.rs); the records
//! store keeps a ghost under such an id, so that the create's add fails and the create is done
//! the general way. These check what the app sees: such a create does what the general path
//! does, and a ghost is never a record.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::local::Op;
use ferry::core::mutation::Kind;
use ferry::core::query::Query;
use std::rc::Rc;

use ferry::core::sync::http::NetError;
use ferry::core::{ErrorKind, Key, MemoryStorage, Storage, Table, Txn};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

/// What the records store holds under `key`, as stored.
fn stored(storage: &MemoryStorage, key: &str) -> Option<Value> {
    block_on(async {
        let tx = storage.begin(false).await.unwrap();
        tx.get(Table::Records("todos"), &Key::str(key))
            .await
            .unwrap()
    })
}

fn outbox(db: &Db) -> Vec<(Kind, String)> {
    block_on(db.outbox())
        .expect("outbox")
        .into_iter()
        .map(|i| (i.kind, i.record_id))
        .collect()
}

#[test]
fn a_record_deleted_and_created_again_under_its_id_is_one_change() {
    let (db, storage) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"id": "x", "title": "first", "n": 1}));
    flush_all(&db, &s);
    delete(&db, "todos", "x");
    // The delete is pending: x holds no record, whatever the read.
    assert_eq!(get(&db, "todos", "x"), None);
    assert!(local(&db, "todos").is_empty(), "all() lists no ghost");
    let q = Query::default();
    let (hits, _) = block_on(db.query("todos", &q)).expect("query");
    assert!(hits.is_empty(), "a query lists no ghost: {hits:?}");
    assert!(
        stored(&storage, "x").is_some(),
        "the id is held in the records store"
    );

    create(&db, "todos", json!({"id": "x", "title": "again"}));
    let x = get(&db, "todos", "x").expect("created again");
    assert_eq!(x["title"], "again");
    assert_eq!(x.get("n"), None, "a create replaces the record");
    // Folded into the pending delete, as the general path does: one change, not a delete and
    // then a create the server would refuse (the id is its record's).
    assert_eq!(outbox(&db), [(Kind::Update, "x".into())]);
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(s.records("todos")[0]["title"], "again");
}

#[test]
fn a_delete_done_on_the_server_frees_the_id() {
    let (db, storage) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"id": "x"}));
    flush_all(&db, &s);
    delete(&db, "todos", "x");
    flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    assert_eq!(stored(&storage, "x"), None, "nothing is left under x");
    // And x is a new record's id like any other.
    create(&db, "todos", json!({"id": "x", "title": "new"}));
    assert_eq!(outbox(&db), [(Kind::Create, "x".into())]);
}

#[test]
fn a_record_created_and_deleted_before_it_was_sent_leaves_nothing() {
    let (db, storage) = open_todos();
    create(&db, "todos", json!({"id": "x"}));
    delete(&db, "todos", "x");
    assert_eq!(pending(&db), 0, "the create and the delete cancel out");
    assert_eq!(
        stored(&storage, "x"),
        None,
        "no ghost: nothing holds the id"
    );
    create(&db, "todos", json!({"id": "x", "title": "new"}));
    assert_eq!(outbox(&db), [(Kind::Create, "x".into())]);
}

#[test]
fn an_id_the_server_renamed_is_still_taken() {
    let (db, _storage) = open_todos();
    let s = MemServer::new();
    // The server has an x already, so it gives this client's x another id.
    s.server_create("todos", json!({"id": "x", "title": "theirs"}));
    create(&db, "todos", json!({"id": "x", "title": "mine"}));
    flush_all(&db, &s);
    let mine = get(&db, "todos", "x").expect("x still finds the record it named");
    assert_eq!(mine["title"], "mine");
    let renamed = id_of(&mine);
    assert_ne!(renamed, "x", "the server renamed it");

    let again = block_on(db.write("todos", vec![Op::Create(rec(json!({"id": "x"})))]));
    let e = again.expect_err("x names a record still");
    assert_eq!(e.kind, ErrorKind::Constraint, "{e}");
    assert_eq!(pending(&db), 0, "nothing was written");
    assert_eq!(local(&db, "todos").len(), 1);
}

#[test]
fn a_synced_records_id_is_taken() {
    let (db, _storage) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"id": "x", "title": "first"}));
    flush_all(&db, &s);
    let again = block_on(db.write("todos", vec![Op::Create(rec(json!({"id": "x"})))]));
    assert_eq!(again.expect_err("taken").kind, ErrorKind::Constraint);
    assert_eq!(get(&db, "todos", "x").expect("kept")["title"], "first");
    assert_eq!(pending(&db), 0);
}

/// The create of x is out when another tab deletes x, and the server answers with its own id
/// (it has an x already): the pending delete moves to the server's id, and so must what holds
/// that id, so that a create under it folds into the delete as the general path does.
#[test]
fn a_delete_made_while_its_create_was_out_holds_the_server_id_it_moves_to() {
    let storage = MemoryStorage::new();
    let db = open(config(&["todos"]), storage.clone());
    let other = Rc::new(open(config(&["todos"]), storage.clone()));
    let s = MemServer::new();
    s.server_create("todos", json!({"id": "x", "title": "theirs"}));
    create(&db, "todos", json!({"id": "x", "title": "mine"}));
    let tap = Tap::new(s.clone());
    let deleter = other.clone();
    let once = std::cell::Cell::new(false);
    tap.hook(move |_| {
        if once.replace(true) {
            return Some(Err(NetError::Offline)); // the delete stays pending
        }
        delete(&deleter, "todos", "x");
        None // the create goes on to the server
    });
    flush(&db, &tap);
    tap.unhook();
    let shape = outbox(&db);
    assert_eq!(shape.len(), 1, "the delete, pending: {shape:?}");
    let (kind, renamed) = shape[0].clone();
    assert_eq!(kind, Kind::Delete);
    assert_ne!(renamed, "x", "under the server's id");
    assert_eq!(get(&db, "todos", &renamed), None);

    create(&db, "todos", json!({"id": renamed, "title": "back"}));
    assert_eq!(
        outbox(&db),
        [(Kind::Update, renamed.clone())],
        "one change of it"
    );
    flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    let on_server: Vec<Value> = s.records("todos");
    let back = on_server.iter().find(|r| r["id"] == renamed.as_str());
    assert_eq!(back.expect("on the server")["title"], "back");
}
