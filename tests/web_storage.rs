//! The storage contract (`tests/common/contract.rs`) over `IdbStorage` in a real browser, plus what
//! only IndexedDB has: schema upgrades, other tabs' upgrades, closing, error mapping.
//! Run with `scripts/browser-test --test web_storage` (headless Chromium).
//!
//! Not tested: a real `QuotaExceededError`. Headless Chromium's quota is a share of the disk and a
//! page cannot lower it (DevTools' `Storage.overrideQuotaForOrigin` is out of reach of the test
//! runner), so `error_mapping` checks the mapping on a constructed `DOMException` instead, and the
//! path a failed request takes into `commit` is covered by `fail_next_commit` (a real
//! `ConstraintError` that aborts the transaction).
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;

use ferry::core::record::{index_key, Row};
use ferry::core::storage::field_index;
use ferry::core::{
    CollectionConfig, Engine, Env, ErrorKind, Key, Op, Storage, StoreConfig, Table, Txn,
};
use ferry::web::idb::{idb_error, store_name};
use ferry::web::{BrowserEnv, IdbStorage};
use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

#[macro_use]
#[path = "common/contract.rs"]
mod contract;

wasm_bindgen_test_configure!(run_in_browser);

fn unique(test: &str) -> String {
    format!(
        "ferry-{test}-{}-{}",
        js_sys::Date::now(),
        (js_sys::Math::random() * 1e9) as u64
    )
}

struct Idb;

impl contract::Harness for Idb {
    type S = IdbStorage;
    type E = BrowserEnv;

    fn db_name(&self, test: &str) -> String {
        unique(test)
    }
    async fn open(&self, config: &StoreConfig) -> IdbStorage {
        IdbStorage::open(config)
            .await
            .unwrap_or_else(|e| panic!("IdbStorage::open: {e}"))
    }
    fn env(&self) -> BrowserEnv {
        BrowserEnv::new()
    }
    fn fail_next_commit(&self, storage: &IdbStorage) {
        storage.fail_next_commit();
    }
}

macro_rules! idb_test {
    ($name:ident) => {
        #[wasm_bindgen_test]
        async fn $name() {
            contract::$name(&Idb).await;
        }
    };
}

for_each_contract!(idb_test);

// ---------------------------------------------------------------------------------------------
// IndexedDB only

fn log(msg: &str) {
    web_sys::console::log_1(&JsValue::from_str(msg));
}

fn with(name: &str, collections: &[(&str, &[&str])]) -> StoreConfig {
    let cs = collections
        .iter()
        .map(|(c, indexes)| {
            let mut cfg = CollectionConfig::new(c, &format!("/api/{c}"));
            cfg.indexes = indexes.iter().map(|s| s.to_string()).collect();
            cfg
        })
        .collect();
    StoreConfig::new(name, cs)
}

async fn open(config: &StoreConfig) -> IdbStorage {
    IdbStorage::open(config)
        .await
        .unwrap_or_else(|e| panic!("IdbStorage::open: {e}"))
}

/// The database as IndexedDB has it: version, and each store with its index names (sorted).
async fn raw_layout(name: &str) -> (f64, Vec<(String, Vec<String>)>) {
    let db = Database::open(name).await.expect("raw open");
    let version = db.version();
    let stores: Vec<String> = db.object_store_names().collect();
    let mut out = Vec::new();
    if !stores.is_empty() {
        let tx = db
            .transaction(stores.as_slice())
            .build()
            .expect("raw transaction");
        for s in &stores {
            let mut ix: Vec<String> = tx.object_store(s).expect("store").index_names().collect();
            ix.sort();
            out.push((s.clone(), ix));
        }
    }
    db.close();
    (version, out)
}

fn row(c: &CollectionConfig, v: Value) -> Value {
    Row::new(c, v.as_object().cloned().expect("object")).to_value()
}

async fn put_rows(s: &IdbStorage, cfg: &StoreConfig, c: &str, rows: &[Value]) {
    let tx = s.begin(true).await.expect("begin");
    for r in rows {
        let id = r["id"].as_str().expect("id");
        tx.put(
            Table::Records(c),
            &Key::str(id),
            &row(cfg.collection(c).expect("collection"), r.clone()),
        )
        .expect("put");
    }
    tx.commit().await.expect("commit");
}

async fn ids_by_index(s: &IdbStorage, c: &str, field: &str, v: Value) -> Vec<Key> {
    let tx = s.begin(false).await.expect("begin");
    let hits = tx
        .get_by_index(
            Table::Records(c),
            &field_index(field),
            &index_key(Some(&v)).expect("key"),
        )
        .await;
    hits.expect("get_by_index")
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

async fn count(s: &IdbStorage, t: Table<'_>) -> u64 {
    s.begin(false)
        .await
        .expect("begin")
        .count(t)
        .await
        .expect("count")
}

#[wasm_bindgen_test]
async fn layout_is_as_documented() {
    let name = unique("layout");
    drop(open(&with(&name, &[("todos", &["done", "n"]), ("notes", &[])])).await);
    let (version, stores) = raw_layout(&name).await;
    assert_eq!(version, 2.0, "created empty at 1, upgraded once");
    let expect = |s: &str, ix: &[&str]| {
        (
            s.to_string(),
            ix.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        )
    };
    let mut want = vec![
        expect("aliases", &[]),
        expect("conflicts", &[]),
        expect("ghosts", &[]),
        expect("outbox", &["record"]),
        expect("r:notes", &[]),
        expect("r:todos", &["ix.done", "ix.n"]),
        expect("rejected", &[]),
        expect("state", &[]),
    ];
    want.sort();
    assert_eq!(stores, want);
    assert_eq!(store_name(Table::Records("todos")), "r:todos");
    // Opening with the same configuration changes nothing.
    drop(open(&with(&name, &[("notes", &[]), ("todos", &["n", "done"])])).await);
    assert_eq!(raw_layout(&name).await.0, 2.0);
}

#[wasm_bindgen_test]
async fn reopen_with_added_collection_and_index_keeps_data() {
    let name = unique("added");
    let before = with(&name, &[("todos", &["done"]), ("notes", &[])]);
    let after = with(
        &name,
        &[
            ("todos", &["done", "n"]),
            ("notes", &[]),
            ("projects", &["owner"]),
        ],
    );
    let s = open(&before).await;
    // Rows that already carry `ix.n` (the engine's business), before the store has that index.
    put_rows(
        &s,
        &after,
        "todos",
        &[
            json!({"id": "a", "done": true, "n": 1}),
            json!({"id": "b", "n": 2}),
        ],
    )
    .await;
    put_rows(&s, &before, "notes", &[json!({"id": "x"})]).await;
    drop(s);

    let s = open(&after).await;
    assert_eq!(count(&s, Table::Records("todos")).await, 2);
    assert_eq!(count(&s, Table::Records("notes")).await, 1);
    assert_eq!(
        ids_by_index(&s, "todos", "done", json!(true)).await,
        vec![Key::str("a")]
    );
    // The new index was built from the rows already there.
    assert_eq!(
        ids_by_index(&s, "todos", "n", json!(2)).await,
        vec![Key::str("b")]
    );
    put_rows(&s, &after, "projects", &[json!({"id": "p", "owner": "me"})]).await;
    assert_eq!(
        ids_by_index(&s, "projects", "owner", json!("me")).await,
        vec![Key::str("p")]
    );
    drop(s);
    assert_eq!(raw_layout(&name).await.0, 3.0);
}

#[wasm_bindgen_test]
async fn reopen_with_removed_collection_and_index_keeps_the_collection() {
    let name = unique("removed");
    let full = with(&name, &[("todos", &["done", "n"]), ("notes", &[])]);
    let s = open(&full).await;
    put_rows(
        &s,
        &full,
        "todos",
        &[json!({"id": "a", "done": false, "n": 1})],
    )
    .await;
    put_rows(&s, &full, "notes", &[json!({"id": "x"})]).await;
    drop(s);

    let less = with(&name, &[("todos", &["done"])]);
    let s = open(&less).await;
    assert_eq!(s.kept(), [("todos".to_string(), "n".to_string())]);
    assert_eq!(
        ids_by_index(&s, "todos", "done", json!(false)).await,
        vec![Key::str("a")]
    );
    drop(s);
    let (_, stores) = raw_layout(&name).await;
    assert!(
        stores.iter().any(|(s, _)| s == "r:notes"),
        "the notes store is kept: {stores:?}"
    );
    let todos = stores
        .iter()
        .find(|(s, _)| s == "r:todos")
        .expect("todos kept");
    // Kept too: another tab may declare it (and this one's writes keep it up to date).
    assert_eq!(todos.1, ["ix.done", "ix.n"]);

    let s = open(&full).await;
    assert_eq!(
        count(&s, Table::Records("notes")).await,
        1,
        "a collection that comes back has its records"
    );
    assert_eq!(
        ids_by_index(&s, "todos", "n", json!(1)).await,
        vec![Key::str("a")],
        "the index kept"
    );
}

#[wasm_bindgen_test]
async fn another_tabs_upgrade_closes_this_connection() {
    let name = unique("versionchange");
    let old = open(&with(&name, &[("todos", &[])])).await;
    put_rows(
        &old,
        &with(&name, &[("todos", &[])]),
        "todos",
        &[json!({"id": "a"})],
    )
    .await;
    // A second connection that needs a new layout, as a newer tab would open it.
    let new = open(&with(&name, &[("todos", &[]), ("notes", &[])])).await;
    assert!(old.is_closed());
    let err = old
        .begin(false)
        .await
        .err()
        .expect("the old connection is closed");
    assert_eq!(err.kind, ErrorKind::Closed);
    assert!(
        err.message.contains("another tab is upgrading it"),
        "{}",
        err.message
    );
    assert_eq!(count(&new, Table::Records("todos")).await, 1);
}

async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let window = web_sys::window().expect("window");
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

#[wasm_bindgen_test]
async fn upgrade_waits_for_an_old_connection_to_close() {
    let name = unique("blocked");
    drop(open(&with(&name, &[("todos", &[])])).await);
    // A connection that ignores `versionchange`, as an old tab without Ferry's handler would.
    let blocker = Database::open(name.as_str()).await.expect("raw open");
    let closed_at = Rc::new(Cell::new(0.0));
    let at = closed_at.clone();
    wasm_bindgen_futures::spawn_local(async move {
        sleep(300).await;
        at.set(js_sys::Date::now());
        blocker.close();
    });
    let s = open(&with(&name, &[("todos", &[]), ("notes", &[])])).await;
    let done_at = js_sys::Date::now();
    assert!(
        closed_at.get() > 0.0 && done_at >= closed_at.get(),
        "the upgrade waited"
    );
    assert_eq!(count(&s, Table::Records("notes")).await, 0);
}

#[wasm_bindgen_test]
async fn an_index_field_idb_cannot_index_fails_open_cleanly() {
    let name = unique("badindex");
    drop(open(&with(&name, &[("todos", &[])])).await);
    // Key paths must be JS identifiers: IndexedDB refuses `ix.due-date`.
    let err = IdbStorage::open(&with(&name, &[("todos", &["due-date"])])).await;
    let err = err.err().expect("a SyntaxError from createIndex");
    assert_eq!(err.kind, ErrorKind::Storage);
    assert!(
        err.message.starts_with("IndexedDB SyntaxError"),
        "{}",
        err.message
    );
    // The failed upgrade was rolled back: the database still opens as it was.
    drop(open(&with(&name, &[("todos", &[])])).await);
}

#[wasm_bindgen_test]
async fn close_fails_later_calls_and_reopen_works() {
    let cfg = with(&unique("close"), &[("todos", &[])]);
    let s = open(&cfg).await;
    put_rows(&s, &cfg, "todos", &[json!({"id": "a"})]).await;
    s.close();
    s.close(); // twice is fine
    let err = s.begin(true).await.err().expect("closed");
    assert_eq!(
        (err.kind, err.kind.name()),
        (ErrorKind::Closed, "ClosedError")
    );
    let again = open(&cfg).await;
    assert_eq!(count(&again, Table::Records("todos")).await, 1);
}

#[wasm_bindgen_test]
async fn error_mapping() {
    let dom = |name: &str, msg: &str| {
        JsValue::from(
            web_sys::DomException::new_with_message_and_name(msg, name).expect("DOMException"),
        )
    };
    let quota = idb_error(&dom("QuotaExceededError", "disk full"));
    assert_eq!(quota.kind, ErrorKind::Quota);
    assert!(quota
        .message
        .starts_with("IndexedDB QuotaExceededError: disk full; nothing was written"));
    // Chromium's own quota errors come without a message: Ferry says what it means.
    let bare = idb_error(&dom("QuotaExceededError", ""));
    assert!(
        bare.message
            .contains("the storage quota for this site is full"),
        "{}",
        bare.message
    );
    let constraint = idb_error(&dom("ConstraintError", "Key already exists"));
    assert_eq!(
        (constraint.kind, constraint.message.as_str()),
        (
            ErrorKind::Storage,
            "IndexedDB ConstraintError: Key already exists"
        )
    );
    let other = idb_error(&JsValue::from(js_sys::TypeError::new("bad")));
    assert_eq!(
        (other.kind, other.message.as_str()),
        (ErrorKind::Storage, "IndexedDB TypeError: bad")
    );
    assert_eq!(
        idb_error(&JsValue::from_str("odd")).kind,
        ErrorKind::Storage
    );

    // A request that fails after the writes were issued: its error is the commit's.
    let cfg = with(&unique("errors"), &[("todos", &[])]);
    let s = open(&cfg).await;
    s.fail_next_commit();
    let tx = s.begin(true).await.expect("begin");
    tx.put(Table::State, &Key::str("x"), &json!(1))
        .expect("put");
    let err = tx.commit().await.expect_err("injected");
    assert_eq!(err.kind, ErrorKind::Storage);
    assert!(
        err.message.starts_with("IndexedDB ConstraintError: "),
        "{}",
        err.message
    );
    // A missing store is a storage error, not a panic.
    let tx = s.begin(false).await.expect("begin");
    let err = tx
        .get(Table::Records("nope"), &Key::str("a"))
        .await
        .expect_err("no such store");
    assert!(
        err.message.starts_with("IndexedDB NotFoundError"),
        "{}",
        err.message
    );
}

#[wasm_bindgen_test]
fn browser_env() {
    let env = BrowserEnv::new();
    let now = js_sys::Date::now();
    assert!((env.now_ms() - now).abs() < 5_000.0);
    let draws: Vec<u32> = (0..16).map(|_| env.random_u32()).collect();
    assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
}

#[wasm_bindgen_test]
async fn bulk_writes_and_reads() {
    const N: usize = 5_000;
    let cfg = with(&unique("bulk"), &[("todos", &["done"])]);
    let s = open(&cfg).await;
    let todos = cfg.collection("todos").expect("todos");
    let rows: Vec<Value> = (0..N)
        .map(|i| {
            row(
                todos,
                json!({"id": format!("{i:06}"), "done": i % 2 == 0, "title": "a todo", "n": i}),
            )
        })
        .collect();
    let t0 = js_sys::Date::now();
    let tx = s.begin(true).await.expect("begin");
    for (i, r) in rows.iter().enumerate() {
        tx.put(Table::Records("todos"), &Key::str(format!("{i:06}")), r)
            .expect("put");
    }
    tx.commit().await.expect("commit");
    let t1 = js_sys::Date::now();
    let tx = s.begin(false).await.expect("begin");
    let all = tx.get_all(Table::Records("todos")).await.expect("get_all");
    let (done, yes) = (
        field_index("done"),
        index_key(Some(&json!(true))).expect("key"),
    );
    let evens = tx
        .get_by_index(Table::Records("todos"), &done, &yes)
        .await
        .expect("get_by_index");
    let t2 = js_sys::Date::now();
    assert_eq!(all.len(), N);
    assert_eq!(all[17].1, rows[17]);
    assert_eq!(evens.len(), N / 2);
    drop(tx);

    let e = Engine::open(cfg.clone(), s, BrowserEnv::new())
        .await
        .expect("engine");
    let ops = (0..1_000).map(|i| {
        Op::Create(
            json!({"id": format!("e{i}"), "done": false})
                .as_object()
                .cloned()
                .expect("object"),
        )
    });
    let t3 = js_sys::Date::now();
    e.write("todos", ops.collect()).await.expect("write");
    let t4 = js_sys::Date::now();
    assert_eq!(e.pending_count().await.expect("count"), 1_000);
    log(&format!(
        "bulk: {N} raw puts + commit {:.0} ms ({:.0}/s); getAll + index getAll {:.0} ms; \
         engine write of 1000 creates (record + outbox) {:.0} ms ({:.0}/s)",
        t1 - t0,
        N as f64 / ((t1 - t0).max(1.0) / 1000.0),
        t2 - t1,
        t4 - t3,
        1000.0 / ((t4 - t3).max(1.0) / 1000.0)
    ));
}

/// Hides IndexedDB 3's `getAllRecords` (as browsers before Chromium 141 lack it) while alive.
struct WithoutGetAllRecords(Vec<(JsValue, JsValue)>);

impl WithoutGetAllRecords {
    fn new() -> Self {
        let mut hidden = Vec::new();
        for class in ["IDBObjectStore", "IDBIndex"] {
            let ctor = js_sys::Reflect::get(&js_sys::global(), &class.into()).expect(class);
            let proto = js_sys::Reflect::get(&ctor, &"prototype".into()).expect("prototype");
            let f = js_sys::Reflect::get(&proto, &"getAllRecords".into()).expect("get");
            if !f.is_undefined() {
                js_sys::Reflect::delete_property(&proto.clone().into(), &"getAllRecords".into())
                    .expect("delete");
                hidden.push((proto, f));
            }
        }
        WithoutGetAllRecords(hidden)
    }
}

impl Drop for WithoutGetAllRecords {
    fn drop(&mut self) {
        for (proto, f) in &self.0 {
            js_sys::Reflect::set(proto, &"getAllRecords".into(), f).expect("restore");
        }
    }
}

#[wasm_bindgen_test]
async fn reads_without_get_all_records() {
    let hidden = WithoutGetAllRecords::new();
    let index: JsValue = js_sys::eval("IDBIndex.prototype.getAllRecords").expect("eval");
    assert!(
        index.is_undefined(),
        "getAllRecords is hidden for this test"
    );
    contract::round_trip_every_table(&Idb).await;
    contract::get_all_in_key_order(&Idb).await;
    contract::get_by_index_on_records(&Idb).await;
    contract::get_by_index_on_outbox(&Idb).await;
    contract::read_many_answers_each_read_in_order(&Idb).await;
    contract::get_first_in_key_order(&Idb).await;
    drop(hidden);
}

#[wasm_bindgen_test]
async fn a_damaged_row_fails_the_reads_that_meet_it_instead_of_hanging() {
    let cfg = with(&unique("damaged"), &[("todos", &["n"])]);
    let s = open(&cfg).await;
    let tx = s.begin(true).await.expect("begin");
    let good = Row::new(
        &cfg.collections["todos"],
        contract::rec(json!({"id": "a", "n": 1})),
    );
    tx.put(Table::Records("todos"), &Key::str("a"), &good.to_value())
        .expect("put");
    // Written by something else than Ferry: no record in it.
    tx.put(Table::Records("todos"), &Key::str("b"), &json!("garbage"))
        .expect("put");
    tx.commit().await.expect("commit");
    let todos = &cfg.collections["todos"];
    let all = s
        .read_all("todos", "id")
        .await
        .expect_err("all() meets the damaged row");
    assert_eq!(all.kind, ErrorKind::Storage);
    assert!(
        all.message.contains("r:todos is damaged"),
        "{}",
        all.message
    );
    let q = ferry::core::Query::default();
    let err = s.read_query(todos, &q).await.expect_err("so does a query");
    assert_eq!(err.kind, ErrorKind::Storage);
    let err = s.read_get("todos", "b").await.expect_err("and a get of it");
    assert_eq!(err.kind, ErrorKind::Storage);
    // The other record still reads.
    assert!(!s
        .read_get("todos", "a")
        .await
        .expect("get a")
        .is_undefined());
}
