//! Queries on a `refs` field find records by the id they name, as `get` finds a record: a
//! temporary id the app still holds after its record got the server's id, and `7` or `"7"`
//! alike (a server's ids are numbers, a `<select>` gives strings). With and without an index.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::{MemoryStorage, Query, Record, StoreConfig};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

fn store(indexed: bool) -> Db {
    let mut cfg: StoreConfig = projects_and_todos();
    if indexed {
        let todos = cfg.collections.get_mut("todos").expect("todos");
        todos.indexes.push("projectId".into());
    }
    open(cfg, MemoryStorage::new())
}

/// The titles of the todos whose `projectId` is `project`, and the index the query used.
fn titles_in(db: &Db, project: Value) -> (Vec<Value>, Option<String>) {
    let q: Query = serde_json::from_value(json!({"where": {"projectId": project}})).unwrap();
    let (hits, index) = block_on(db.query("todos", &q)).expect("query");
    (
        hits.iter().map(|r: &Record| r["title"].clone()).collect(),
        index,
    )
}

#[test]
fn a_temporary_id_held_by_the_app_still_finds_the_records_after_the_rename() {
    for indexed in [false, true] {
        let db = store(indexed);
        let s = MemServer::new();
        let p = create(&db, "projects", json!({"name": "P"}));
        create(&db, "todos", json!({"title": "a", "projectId": p}));
        create(
            &db,
            "todos",
            json!({"title": "b", "projectId": "elsewhere"}),
        );
        let (before, _) = titles_in(&db, json!(p));
        assert_eq!(before, vec![json!("a")]);
        flush_all(&db, &s);
        let sid = id_of(&get(&db, "projects", &p).expect("project"));
        assert_ne!(sid, p, "renamed");
        let (by_tmp, index) = titles_in(&db, json!(p));
        assert_eq!(by_tmp, vec![json!("a")], "indexed: {indexed}");
        assert_eq!(index.is_some(), indexed);
        let (by_server_id, _) = titles_in(&db, json!(sid));
        assert_eq!(by_server_id, vec![json!("a")]);
        // Written with the temporary id after the rename (rewritten to the server's id when
        // it is sent): the temporary id finds both.
        create(&db, "todos", json!({"title": "c", "projectId": p}));
        assert_eq!(titles_in(&db, json!(p)).0, vec![json!("a"), json!("c")]);
        flush_all(&db, &s);
        assert_eq!(titles_in(&db, json!(sid)).0, vec![json!("a"), json!("c")]);
        // The project deleted (its todos to go next): the temporary id still finds them.
        delete(&db, "projects", &p);
        assert_eq!(titles_in(&db, json!(p)).0, vec![json!("a"), json!("c")]);
    }
}

#[test]
fn an_id_matches_as_a_number_or_as_the_string_of_it() {
    for indexed in [false, true] {
        let db = store(indexed);
        create(
            &db,
            "todos",
            json!({"id": "t1", "title": "number", "projectId": 7}),
        );
        create(
            &db,
            "todos",
            json!({"id": "t2", "title": "string", "projectId": "7"}),
        );
        create(
            &db,
            "todos",
            json!({"id": "t3", "title": "other", "projectId": 70}),
        );
        create(&db, "todos", json!({"id": "t4", "title": "none"}));
        let both = vec![json!("number"), json!("string")];
        assert_eq!(titles_in(&db, json!("7")).0, both, "indexed: {indexed}");
        assert_eq!(titles_in(&db, json!(7)).0, both, "indexed: {indexed}");
        assert_eq!(titles_in(&db, json!(7.0)).0, both, "indexed: {indexed}");
        // `null` still matches a missing field, and a field that is not a ref compares values.
        assert_eq!(titles_in(&db, Value::Null).0, vec![json!("none")]);
        let q: Query = serde_json::from_value(json!({"where": {"title": 7}})).unwrap();
        assert!(block_on(db.query("todos", &q)).unwrap().0.is_empty());
    }
}
