//! One storage contract, every adapter (PouchDB's habit): the same checks run over `MemoryStorage`
//! natively (`tests/storage_contract.rs`) and over `IdbStorage` in headless Chromium
//! (`tests/web_storage.rs`). Each check is an async fn over a [`Harness`]; `for_each_contract!`
//! names them all, so that every harness turns each one into a test of its own. Storage-level
//! checks are here, engine-level ones in `contract_engine.rs`.
//!
//! Values are JSON. What IndexedDB stores goes through JS numbers, so integers beyond ±(2^53 − 1)
//! and `-0.0` do not round-trip there; these checks stay inside what both backends keep exactly.

use ferry::core::record::{index_key, Record, Row};
use ferry::core::storage::{field_index, OUTBOX_BY_RECORD};
use ferry::core::{CollectionConfig, Env, Key, Storage, StoreConfig, Table, Txn};
use serde_json::{json, Value};

/// What a backend gives the contract.
#[allow(async_fn_in_trait)] // single-threaded tests: no Send bounds wanted
pub trait Harness {
    /// The storage under test.
    type S: Storage;
    /// The environment engines run in.
    type E: Env;
    /// A database name for `test`, unique to this run where databases outlive it.
    fn db_name(&self, test: &str) -> String;
    /// Opens the storage named `config.name` for `config`. Opening a name again (after the first
    /// handle was dropped) sees everything committed under it.
    async fn open(&self, config: &StoreConfig) -> Self::S;
    /// A fresh environment.
    fn env(&self) -> Self::E;
    /// Makes the next read-write commit of `storage` fail.
    fn fail_next_commit(&self, storage: &Self::S);
}

/// Calls `$m!(check)` for every contract check.
macro_rules! for_each_contract {
    ($m:ident) => {
        $m!(round_trip_every_table);
        $m!(get_all_in_key_order);
        $m!(get_by_index_on_records);
        $m!(get_by_index_on_outbox);
        $m!(count_every_table);
        $m!(read_many_answers_each_read_in_order);
        $m!(get_first_in_key_order);
        $m!(get_range_in_idb_order);
        $m!(read_then_write_reads_before_writing);
        $m!(add_new_on_a_taken_key_writes_nothing);
        $m!(add_unless_found_commits_or_hands_back);
        $m!(delete_range_removes_the_keys_between);
        $m!(scoped_transaction_keeps_to_its_tables);
        $m!(dropped_transaction_rolls_back);
        $m!(read_only_transaction_rejects_writes);
        $m!(commit_is_all_or_nothing);
        $m!(values_round_trip_exactly);
        $m!(engine_coalesces_local_writes);
        $m!(engine_query_uses_index);
        $m!(engine_failed_write_leaves_nothing);
        $m!(engine_reopen_keeps_records_and_outbox);
        $m!(engine_index_added_later_finds_old_records);
        $m!(engine_two_indexes_added_later_find_old_records);
        $m!(engine_collection_left_out_keeps_its_data);
        $m!(engine_big_write_over_sparse_ids_sees_everything);
        $m!(engine_two_clients_interleave_creates);
    };
}

#[path = "contract_engine.rs"]
mod engine;
pub use engine::*;

#[path = "contract_txn.rs"]
mod txn;
pub use txn::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The configuration every check uses: `todos` indexed on `done` and `n`, `notes` unindexed.
pub fn config(name: &str) -> StoreConfig {
    let mut todos = CollectionConfig::new("todos", "/api/todos");
    todos.indexes = vec!["done".into(), "n".into()];
    StoreConfig::new(
        name,
        vec![todos, CollectionConfig::new("notes", "/api/notes")],
    )
}

async fn open<H: Harness>(h: &H, test: &str) -> (StoreConfig, H::S) {
    let cfg = config(&h.db_name(test));
    let s = h.open(&cfg).await;
    (cfg, s)
}

fn k(s: &str) -> Key {
    Key::str(s)
}

fn pair(c: &str, r: &str) -> Key {
    Key::Pair(c.into(), r.into())
}

/// `v`, which must be a JSON object, as a record.
pub fn rec(v: Value) -> Record {
    v.as_object().cloned().expect("a JSON object")
}

/// The stored row of record `v` in `todos`, with its index keys.
fn todo(cfg: &StoreConfig, v: Value) -> Value {
    Row::new(cfg.collection("todos").expect("todos"), rec(v)).to_value()
}

/// Puts every entry in one transaction and commits.
async fn put_all<S: Storage>(s: &S, entries: &[(Table<'_>, Key, Value)]) {
    let tx = s.begin(true).await.expect("begin");
    for (t, key, v) in entries {
        tx.put(*t, key, v).expect("put");
    }
    tx.commit().await.expect("commit");
}

async fn get<S: Storage>(s: &S, t: Table<'_>, key: &Key) -> Option<Value> {
    let tx = s.begin(false).await.expect("begin");
    tx.get(t, key).await.expect("get")
}

async fn all<S: Storage>(s: &S, t: Table<'_>) -> Vec<(Key, Value)> {
    let tx = s.begin(false).await.expect("begin");
    tx.get_all(t).await.expect("get_all")
}

async fn keys_by_index<S: Storage>(s: &S, t: Table<'_>, index: &str, v: &Value) -> Vec<Key> {
    let tx = s.begin(false).await.expect("begin");
    tx.get_by_index(t, index, v)
        .await
        .expect("get_by_index")
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

async fn count<S: Storage>(s: &S, t: Table<'_>) -> u64 {
    let tx = s.begin(false).await.expect("begin");
    tx.count(t).await.expect("count")
}

fn strs(keys: &[&str]) -> Vec<Key> {
    keys.iter().map(|s| k(s)).collect()
}

fn nums(keys: &[u64]) -> Vec<Key> {
    keys.iter().map(|n| Key::Num(*n)).collect()
}

/// The index key the engine queries for field value `v`.
fn ix(v: Value) -> Value {
    index_key(Some(&v)).expect("an indexable value")
}

fn ids(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r.get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Storage checks

/// put/get/delete on every table, with the key kind each uses.
pub async fn round_trip_every_table<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "round_trip_every_table").await;
    let cases = vec![
        (
            Table::Records("todos"),
            k("a"),
            todo(&cfg, json!({"id": "a", "title": "A", "done": false})),
        ),
        (Table::Records("notes"), k(""), json!({"d": {"id": ""}})),
        (
            Table::Outbox,
            Key::Num(1),
            json!({"seq": 1, "c": "todos", "r": "a"}),
        ),
        (
            Table::Outbox,
            Key::Num(9_007_199_254_740_991),
            json!({"seq": "max safe integer"}),
        ),
        (Table::State, k("clock"), json!({"node": "n1", "seq": 3})),
        (Table::State, k("nothing"), Value::Null),
        (Table::Aliases, pair("todos", "tmp-1"), json!("srv-1")),
        (Table::Rejected, Key::Num(7), json!({"why": "bad"})),
        (
            Table::Conflicts,
            Key::Num(8),
            json!({"local": {}, "server": null}),
        ),
    ];
    put_all(&s, &cases).await;
    for (t, key, v) in &cases {
        assert_eq!(get(&s, *t, key).await.as_ref(), Some(v), "{t:?} {key:?}");
    }
    assert_eq!(get(&s, Table::Records("todos"), &k("zz")).await, None);
    assert_eq!(get(&s, Table::Outbox, &Key::Num(2)).await, None);
    assert_eq!(get(&s, Table::Aliases, &pair("notes", "tmp-1")).await, None);

    let replaced = todo(&cfg, json!({"id": "a", "title": "A2"}));
    put_all(&s, &[(Table::Records("todos"), k("a"), replaced.clone())]).await;
    assert_eq!(
        get(&s, Table::Records("todos"), &k("a")).await,
        Some(replaced)
    );

    let tx = s.begin(true).await.expect("begin");
    for (t, key, _) in &cases {
        tx.delete(*t, key).expect("delete");
    }
    tx.delete(Table::Outbox, &Key::Num(12_345))
        .expect("deleting a missing key is no error");
    tx.commit().await.expect("commit");
    for (t, key, _) in &cases {
        assert_eq!(get(&s, *t, key).await, None, "{t:?} {key:?} after delete");
    }
}

/// get_all returns entries in key order: numbers numerically, strings by code unit, pairs by part.
pub async fn get_all_in_key_order<H: Harness>(h: &H) {
    let (_, s) = open(h, "get_all_in_key_order").await;
    let mut entries = Vec::new();
    for n in [10u64, 2, 33, 1, 100] {
        entries.push((Table::Outbox, Key::Num(n), json!({"seq": n})));
    }
    for id in ["b", "a", "c", "aa", "B", "a b", "é"] {
        entries.push((Table::Records("notes"), k(id), json!({"d": {"id": id}})));
    }
    for (c, r) in [("todos", "b"), ("notes", "z"), ("todos", "a")] {
        entries.push((Table::Aliases, pair(c, r), json!(format!("{c}/{r}"))));
    }
    put_all(&s, &entries).await;

    let outbox = all(&s, Table::Outbox).await;
    assert_eq!(
        outbox
            .iter()
            .map(|(key, _)| key.clone())
            .collect::<Vec<_>>(),
        nums(&[1, 2, 10, 33, 100])
    );
    assert!(
        outbox
            .iter()
            .all(|(key, v)| matches!(key, Key::Num(n) if v["seq"] == json!(n))),
        "values follow keys"
    );
    let notes = all(&s, Table::Records("notes")).await;
    assert_eq!(
        notes.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>(),
        strs(&["B", "a", "a b", "aa", "b", "c", "é"])
    );
    assert!(notes
        .iter()
        .all(|(key, v)| matches!(key, Key::Str(id) if v["d"]["id"] == json!(id))));
    let aliases = all(&s, Table::Aliases).await;
    assert_eq!(
        aliases
            .iter()
            .map(|(key, _)| key.clone())
            .collect::<Vec<_>>(),
        vec![pair("notes", "z"), pair("todos", "a"), pair("todos", "b")]
    );
    assert_eq!(aliases[0].1, json!("notes/z"));
    assert!(all(&s, Table::Rejected).await.is_empty());
    assert!(all(&s, Table::Records("todos")).await.is_empty());
}

/// Equality lookups on a records index: encoded keys keep false, 0, "false" and null apart.
pub async fn get_by_index_on_records<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "get_by_index_on_records").await;
    let t = Table::Records("todos");
    let rows = [
        json!({"id": "i", "done": [1]}),
        json!({"id": "h", "done": {"x": 1}}),
        json!({"id": "g", "done": "false"}),
        json!({"id": "f", "done": 0}),
        json!({"id": "e", "done": false, "n": "1"}),
        json!({"id": "d"}),
        json!({"id": "c", "done": null}),
        json!({"id": "b", "done": true, "n": 2}),
        json!({"id": "a", "done": false, "n": 1}),
    ];
    let entries: Vec<_> = rows
        .iter()
        .map(|r| (t, k(r["id"].as_str().expect("id")), todo(&cfg, r.clone())))
        .collect();
    put_all(&s, &entries).await;
    let done = field_index("done");
    assert_eq!(
        keys_by_index(&s, t, &done, &ix(json!(false))).await,
        strs(&["a", "e"])
    );
    assert_eq!(
        keys_by_index(&s, t, &done, &ix(json!(true))).await,
        strs(&["b"])
    );
    assert_eq!(
        keys_by_index(&s, t, &done, &ix(Value::Null)).await,
        strs(&["c", "d"])
    );
    assert_eq!(
        keys_by_index(&s, t, &done, &ix(json!(0))).await,
        strs(&["f"])
    );
    assert_eq!(
        keys_by_index(&s, t, &done, &ix(json!("false"))).await,
        strs(&["g"])
    );
    assert_eq!(
        keys_by_index(&s, t, &field_index("n"), &ix(json!(1))).await,
        strs(&["a"])
    );
    assert_eq!(
        keys_by_index(&s, t, &field_index("n"), &ix(json!("1"))).await,
        strs(&["e"])
    );
    assert!(keys_by_index(&s, t, &done, &ix(json!("nope")))
        .await
        .is_empty());

    let tx = s.begin(false).await.expect("begin");
    let hits = tx
        .get_by_index(t, &done, &ix(json!(false)))
        .await
        .expect("get_by_index");
    assert_eq!(
        hits,
        vec![entries[8].clone(), entries[4].clone()]
            .into_iter()
            .map(|(_, key, v)| (key, v))
            .collect::<Vec<_>>()
    );
    drop(tx);

    // The index follows writes.
    let tx = s.begin(true).await.expect("begin");
    tx.put(t, &k("a"), &todo(&cfg, json!({"id": "a", "done": true})))
        .expect("put");
    tx.delete(t, &k("b")).expect("delete");
    assert_eq!(
        tx.get_by_index(t, &done, &ix(json!(true)))
            .await
            .expect("in-transaction read"),
        vec![(k("a"), todo(&cfg, json!({"id": "a", "done": true})))]
    );
    tx.commit().await.expect("commit");
    assert_eq!(
        keys_by_index(&s, t, &done, &ix(json!(true))).await,
        strs(&["a"])
    );
    assert_eq!(
        keys_by_index(&s, t, &done, &ix(json!(false))).await,
        strs(&["e"])
    );
}

/// The outbox `record` index looks entries up by `[collection, record id]`.
pub async fn get_by_index_on_outbox<H: Harness>(h: &H) {
    let (_, s) = open(h, "get_by_index_on_outbox").await;
    let entries = [
        (5, "todos", "a"),
        (2, "todos", "a"),
        (3, "todos", "b"),
        (4, "notes", "a"),
        (7, "todos", "a b"),
    ];
    let rows: Vec<_> = entries
        .iter()
        .map(|(n, c, r)| {
            (
                Table::Outbox,
                Key::Num(*n),
                json!({"seq": n, "c": c, "r": r, "kind": "update"}),
            )
        })
        .collect();
    put_all(&s, &rows).await;
    let by = |c: &str, r: &str| json!([c, r]);
    assert_eq!(
        keys_by_index(&s, Table::Outbox, OUTBOX_BY_RECORD, &by("todos", "a")).await,
        nums(&[2, 5])
    );
    assert_eq!(
        keys_by_index(&s, Table::Outbox, OUTBOX_BY_RECORD, &by("notes", "a")).await,
        nums(&[4])
    );
    assert_eq!(
        keys_by_index(&s, Table::Outbox, OUTBOX_BY_RECORD, &by("todos", "a b")).await,
        nums(&[7])
    );
    assert!(
        keys_by_index(&s, Table::Outbox, OUTBOX_BY_RECORD, &by("todos", "zz"))
            .await
            .is_empty()
    );
    let tx = s.begin(false).await.expect("begin");
    let hits = tx
        .get_by_index(Table::Outbox, OUTBOX_BY_RECORD, &by("todos", "b"))
        .await
        .expect("get_by_index");
    assert_eq!(hits, vec![(Key::Num(3), rows[2].2.clone())]);
}

/// count follows puts and deletes; an empty table counts 0.
pub async fn count_every_table<H: Harness>(h: &H) {
    let (_, s) = open(h, "count_every_table").await;
    for t in [
        Table::Records("todos"),
        Table::Outbox,
        Table::State,
        Table::Aliases,
        Table::Rejected,
        Table::Conflicts,
    ] {
        assert_eq!(count(&s, t).await, 0, "{t:?}");
    }
    let mut entries: Vec<_> = (1..=5u64)
        .map(|n| (Table::Outbox, Key::Num(n), json!({"seq": n})))
        .collect();
    entries
        .extend((1..=3u64).map(|n| (Table::Records("notes"), k(&n.to_string()), json!({"d": {}}))));
    entries.push((Table::Aliases, pair("notes", "t"), json!("s")));
    put_all(&s, &entries).await;
    assert_eq!(count(&s, Table::Outbox).await, 5);
    assert_eq!(count(&s, Table::Records("notes")).await, 3);
    assert_eq!(count(&s, Table::Aliases).await, 1);
    assert_eq!(count(&s, Table::Records("todos")).await, 0);
    let tx = s.begin(true).await.expect("begin");
    tx.delete(Table::Outbox, &Key::Num(2)).expect("delete");
    tx.put(
        Table::Outbox,
        &Key::Num(1),
        &json!({"seq": 1, "again": true}),
    )
    .expect("put");
    assert_eq!(
        tx.count(Table::Outbox).await.expect("count"),
        4,
        "a transaction sees its own writes"
    );
    let tables = [
        Table::Records("notes"),
        Table::Outbox,
        Table::Aliases,
        Table::Records("todos"),
    ];
    assert_eq!(
        tx.count_many(&tables).await.expect("count_many"),
        vec![3, 4, 1, 0],
        "count_many answers each table, in order, with this transaction's writes"
    );
    tx.commit().await.expect("commit");
    assert_eq!(count(&s, Table::Outbox).await, 4);
}

/// Unicode, nesting, and numbers round-trip exactly through every table.
pub async fn values_round_trip_exactly<H: Harness>(h: &H) {
    let (_, s) = open(h, "values_round_trip_exactly").await;
    let mut deep = json!("bottom");
    for i in 0..60 {
        deep = if i % 2 == 0 {
            json!([deep])
        } else {
            json!({ "l": deep })
        };
    }
    let value = json!({
        "unicode": "héllo wörld ✓ 日本語 🦀 \u{2028}\u{2029} \"quotes\" \\ back\nslash\t\u{1}\u{7f}",
        "nested": {"a": [1, [2, [3, {"b": null}]], {}], "e": [], "o": {}},
        "numbers": [0, -1, 1.5, -0.25, 0.1, 0.300_000_000_000_000_04, 9_007_199_254_740_991_i64,
                    -9_007_199_254_740_991_i64, 1e300, 5e-324, 123_456_789.125, 2.5e-8, -1e-7],
        "bools": [true, false],
        "null": null,
        "键": "a unicode key",
        "": "an empty key",
        "10": "a numeric-looking key",
        "2": "another",
        "deep": deep,
        "big": format!("{}🦀", "x".repeat(200_000)),
    });
    let entries = vec![
        (Table::Records("notes"), k("ünï/cødé 🦀"), value.clone()),
        (Table::Outbox, Key::Num(42), value.clone()),
        (Table::State, k("v"), value["numbers"].clone()),
        (
            Table::Aliases,
            pair("nötes", "tmp 🦀"),
            value["unicode"].clone(),
        ),
        (Table::Conflicts, Key::Num(1), value["nested"].clone()),
    ];
    put_all(&s, &entries).await;
    for (t, key, v) in &entries {
        let got = get(&s, *t, key).await.expect("stored");
        assert!(got == *v, "{t:?} {key:?} did not round-trip");
    }
    let listed = all(&s, Table::Records("notes")).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].0 == k("ünï/cødé 🦀") && listed[0].1 == value);
    let numbers = get(&s, Table::State, &k("v")).await.expect("stored");
    assert!(
        numbers[6].is_u64() && numbers[7].is_i64() && numbers[2].is_f64(),
        "number kinds are kept: {numbers}"
    );
}
