//! Temporary ids after their records got server ids: every one still finds its record, whether
//! its alias sits in a bucket (one stored value per hundred neighbours, written once per round)
//! or under its own key, as aliases were stored before buckets.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::{Key, MemoryStorage, Storage, Table, Txn};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

/// Everything stored in `table`.
fn stored(storage: &MemoryStorage, table: Table<'_>) -> Vec<(Key, Value)> {
    block_on(async {
        let tx = storage.begin(false).await.unwrap();
        tx.get_all(table).await.unwrap()
    })
}

/// The alias buckets in the state table.
fn buckets(storage: &MemoryStorage) -> Vec<(String, Value)> {
    stored(storage, Table::State)
        .into_iter()
        .filter_map(|(k, v)| match k {
            Key::Str(k) if k.starts_with("aliases:") => Some((k, v)),
            _ => None,
        })
        .collect()
}

fn write_raw(storage: &MemoryStorage, f: impl FnOnce(&<MemoryStorage as Storage>::Txn<'_>)) {
    block_on(async {
        let tx = storage.begin(true).await.unwrap();
        f(&tx);
        tx.commit().await.unwrap();
    });
}

#[test]
fn temporary_ids_acknowledged_over_several_rounds_all_find_their_records() {
    let storage = MemoryStorage::new();
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    cfg.batch_size = 10;
    let db = open(cfg, storage.clone());
    let s = MemServer::new();
    let tmps: Vec<String> = (0..30)
        .map(|i| create(&db, "todos", json!({ "i": i })))
        .collect();
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    for (i, tmp) in tmps.iter().enumerate() {
        let r = get(&db, "todos", tmp).unwrap_or_else(|| panic!("{tmp} finds nothing"));
        assert_eq!(r["i"], json!(i));
        assert_ne!(&id_of(&r), tmp, "found under its server id");
    }
    // Three rounds wrote into one bucket, each keeping what the one before wrote.
    let b = buckets(&storage);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].1.as_object().map(|m| m.len()), Some(30));
    assert!(stored(&storage, Table::Aliases).is_empty());

    // Writes by temporary id reach the records under their server ids.
    update(&db, "todos", &tmps[3], json!({ "seen": true }));
    delete(&db, "todos", &tmps[4]);
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    assert_eq!(s.records("todos").len(), 29);
    assert!(s.records("todos").iter().any(|r| r["seen"] == json!(true)));
    // The deleted one's temporary id is forgotten once the server has done the delete.
    assert!(get(&db, "todos", &tmps[4]).is_none());
    let b = buckets(&storage);
    let m = b[0].1.as_object().unwrap();
    assert_eq!(m.len(), 29);
    assert!(!m.contains_key(&tmps[4]));
}

#[test]
fn an_alias_stored_under_its_own_key_still_finds_its_record_and_a_bucket_wins() {
    let (db, storage) = open_todos();
    let s = MemServer::new();
    let a = create(&db, "todos", json!({ "title": "a" }));
    let b = create(&db, "todos", json!({ "title": "b" }));
    flush_all(&db, &s);
    let real = |tmp: &str| id_of(&get(&db, "todos", tmp).unwrap());
    let (ra, rb) = (real(&a), real(&b));
    // As stored before buckets: `a`'s alias under its own key, and no bucket. `b` keeps its
    // bucket, and a stale alias under its own key says otherwise.
    write_raw(&storage, |tx| {
        for (k, _) in buckets(&storage) {
            tx.delete(Table::State, &Key::Str(k)).unwrap();
        }
        let m = json!({ b.clone(): rb.clone() });
        let bucket = format!("aliases:{}:todos", &b[..b.len() - 2]);
        tx.put(Table::State, &Key::Str(bucket), &m).unwrap();
        let pair = |id: &str| Key::Pair("todos".into(), id.into());
        tx.put(Table::Aliases, &pair(&a), &json!(ra)).unwrap();
        tx.put(Table::Aliases, &pair(&b), &json!("gone")).unwrap();
    });
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], json!("a"));
    assert_eq!(get(&db, "todos", &b).unwrap()["title"], json!("b"));
    update(&db, "todos", &a, json!({ "title": "a2" }));
    update(&db, "todos", &b, json!({ "title": "b2" }));
    flush_all(&db, &s);
    assert_in_sync(&db, &s, "todos");
    let titles: Vec<Value> = s
        .records("todos")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(titles.len(), 2);
    assert!(titles.contains(&json!("a2")) && titles.contains(&json!("b2")));
}
