//! Fuzzing (proptest, stable Rust) of everything that reads outside input: server answers
//! (status, bodies, ETag, Retry-After, batch answers, pull answers), records coming from the app,
//! and stored rows and outbox entries read back from an older or damaged database. The rules:
//! no panic anywhere, a clear error, and nothing stored half-way (a failed call leaves storage
//! exactly as it was). `FERRY_FUZZ_CASES` scales the number of cases (default in `cases()`).
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::collections::BTreeMap;

use ferry::core::mutation::Kind;
use ferry::core::sync::batch;
use ferry::core::sync::classify::{classify, parse_retry_after, Verdict, MAX_KEPT_BODY};
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::sync::report::Report;
use ferry::core::{
    CollectionConfig, Engine, ErrorKind, Key, MemoryStorage, Op, Storage, Table, Txn,
};
use mem_server::MemServer;
use native_env::{block_on, config, rec, TestEnv};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

type Db = Engine<MemoryStorage, TestEnv>;

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- generators

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z0-9 .\u{e9}\u{1F600}/%-]{0,12}".prop_map(Value::String),
        prop_oneof![Just("id"), Just("clientId"), Just("version"), Just("data")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop_oneof![
            Just("id"), Just("clientId"), Just("version"), Just("data"), Just("deleted"),
            Just("cursor"), Just("responses"), Just("status"), Just("body"), Just("headers"),
            Just("title"), Just("ix"), Just("d"), Just("")
        ].prop_map(str::to_string),
        1 => "[a-zA-Z_.$ \u{e9}-]{0,8}",
    ]
}

/// A body as a server might send it: JSON, near-JSON, HTML, nothing, or hostile shapes.
fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string()),
        1 => ".{0,64}",
        1 => Just(String::new()),
        1 => Just("<!doctype html><html>sign in</html>".to_string()),
        // Far deeper than serde_json's recursion limit (128): must be an error, not a crash.
        1 => (100usize..50_000).prop_map(|n| "[".repeat(n) + &"]".repeat(n)),
        1 => (100usize..20_000).prop_map(|n| "{\"data\":".repeat(n) + "1" + &"}".repeat(n)),
        1 => (1usize..200_000).prop_map(|n| format!("{{\"id\":\"1\",\"x\":\"{}\"}}", "é".repeat(n))),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("ETag"),
        Just("etag"),
        Just("Retry-After"),
        Just("Content-Type"),
        Just("Idempotent-Replayed"),
        Just("X-Other")
    ];
    let value = prop_oneof![
        ".{0,40}",
        "(W/)?\"[0-9a-z]{0,300}\"",
        "[0-9]{1,25}",
        "(Mon|Sun), [0-9]{1,3} (Jan|Nov|Xyz) [0-9]{1,5} [0-9]{1,5}:[0-9]{1,3}:[0-9]{1,3} GMT",
        Just("text/html".to_string()),
        Just("application/json".to_string()),
    ];
    prop::collection::vec((name.prop_map(str::to_string), value), 0..4)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Create), Just(Kind::Update), Just(Kind::Delete)]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => prop_oneof![Just(200u16), Just(201), Just(204), Just(404), Just(409), Just(410),
                         Just(412), Just(401), Just(429), Just(503), Just(422), Just(400)],
        1 => any::<u16>(),
    ]
}

// ---------------------------------------------------------------- storage snapshots

/// Everything in the tables the engine uses, for "nothing changed" comparisons.
fn dump(s: &MemoryStorage) -> BTreeMap<String, Vec<(Key, Value)>> {
    block_on(async {
        let t = s.begin(false).await.unwrap();
        let mut out = BTreeMap::new();
        for (name, table) in [
            ("todos", Table::Records("todos")),
            ("outbox", Table::Outbox),
            ("state", Table::State),
            ("aliases", Table::Aliases),
            ("rejected", Table::Rejected),
            ("conflicts", Table::Conflicts),
        ] {
            out.insert(name.to_string(), t.get_all(table).await.unwrap());
        }
        out
    })
}

/// A store with a synced record, a pending update, a pending create and a pending delete.
fn populated() -> (Db, MemoryStorage) {
    let (db, storage, _) = populated_with();
    (db, storage)
}

/// [`populated`], with the server it synced with.
fn populated_with() -> (Db, MemoryStorage, MemServer) {
    let storage = MemoryStorage::new();
    let db = block_on(Engine::open(
        config(&["todos"]),
        storage.clone(),
        TestEnv::new(),
    ))
    .unwrap();
    let s = MemServer::new();
    for i in 0..3 {
        block_on(db.write("todos", vec![Op::Create(rec(json!({"n": i})))])).unwrap();
    }
    block_on(db.flush(&s, &[])).unwrap();
    block_on(db.pull(&s, &[], "todos")).unwrap();
    block_on(db.write("todos", vec![Op::Update("1".into(), rec(json!({"n": 9})))])).unwrap();
    block_on(db.write("todos", vec![Op::Delete("2".into())])).unwrap();
    block_on(db.write("todos", vec![Op::Create(rec(json!({"n": 7})))])).unwrap();
    (db, storage, s)
}

/// A transport that answers every request with the same thing.
struct Canned(Result<HttpResponse, NetError>);

impl Transport for Canned {
    async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, NetError> {
        self.0.clone()
    }
}

fn clear_error(kind: ErrorKind, allowed: &[ErrorKind], msg: &str) {
    assert!(allowed.contains(&kind), "unexpected {kind:?}: {msg}");
    assert!(!msg.trim().is_empty(), "an error without a message");
}

// ---------------------------------------------------------------- server answers

fn pull_body() -> impl Strategy<Value = String> {
    let record = prop::collection::btree_map(field_name(), json_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>()));
    let id = prop_oneof![
        "[0-9]{1,3}".prop_map(Value::String),
        any::<u8>().prop_map(|n| json!(n)),
        json_value()
    ];
    let rec_with_id = (record, id, any::<bool>()).prop_map(|(mut r, id, del)| {
        r["id"] = id;
        if del {
            r["deleted"] = json!(true);
        }
        r
    });
    let list = prop::collection::vec(rec_with_id, 0..6).boxed();
    prop_oneof![
        2 => body(),
        2 => list.clone().prop_map(|l| Value::Array(l).to_string()),
        3 => (list, prop_oneof![Just(Value::Null), json_value()])
            .prop_map(|(l, c)| json!({"data": l, "cursor": c}).to_string()),
    ]
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn classify_any_answer(st in status(), hs in headers(), b in body(), k in kind(), now in 0.0f64..4e12) {
        let cfg = CollectionConfig::new("todos", "/api/todos");
        let res = Ok(HttpResponse { status: st, headers: hs, body: b });
        match classify(&cfg, k, &res, now) {
            Verdict::Transient { reason, retry_after, .. } => {
                prop_assert!(!reason.is_empty());
                if let Some(t) = retry_after {
                    prop_assert!(t >= now && t <= now + 3_600_000.0, "retry at {t}");
                }
            }
            Verdict::Rejected { body, .. } => prop_assert!(body.len() <= MAX_KEPT_BODY),
            Verdict::Ack(Some(r), _) if k == Kind::Create => prop_assert!(r.contains_key("id")),
            _ => {}
        }
    }

    #[test]
    fn retry_after_any_value(v in prop_oneof![
        ".{0,40}",
        "[0-9]{1,30}",
        "(Mon|Sun), [0-9]{1,3} (Jan|Nov|Feb) [0-9]{1,5} [0-9]{1,5}:[0-9]{1,5}:[0-9]{1,5} GMT",
    ], now in 0.0f64..4e12) {
        if let Some(t) = parse_retry_after(&v, now) {
            prop_assert!(t >= now && t <= now + 3_600_000.0, "{v:?} gave {t}");
        }
    }

    #[test]
    fn batch_answers(b in prop_oneof![
        body(),
        prop::collection::vec(
            (json_value(), prop_oneof![json_value(), (0u64..700).prop_map(|n| json!(n))], json_value(), body()),
            0..8,
        ).prop_map(|items| {
            let r: Vec<Value> = items.into_iter()
                .map(|(id, st, h, b)| json!({"id": id, "status": st, "headers": h, "body": b}))
                .collect();
            json!({"responses": r}).to_string()
        }),
    ], count in 0usize..12) {
        if let Ok(list) = batch::decode(&b, count) {
            prop_assert_eq!(list.len(), count);
        }
    }
}

proptest! {
    #![proptest_config(cases(400))]

    /// A pull answer never panics, never drops a pending mutation, and a refused one changes nothing.
    #[test]
    fn pull_any_answer(st in status(), hs in headers(), b in pull_body(), net in 0u8..8) {
        let (db, storage) = populated();
        let before = dump(&storage);
        let res = match net {
            0 => Err(NetError::Offline),
            1 => Err(NetError::Timeout),
            _ => Ok(HttpResponse { status: st, headers: hs, body: b }),
        };
        match block_on(db.pull(&Canned(res), &[], "todos")) {
            Ok(_) => {
                prop_assert_eq!(block_on(db.pending_count()).unwrap(), 3);
                block_on(db.all("todos")).unwrap();
            }
            Err(e) => {
                clear_error(e.kind, &[ErrorKind::Network, ErrorKind::Offline, ErrorKind::Protocol], &e.message);
                prop_assert_eq!(dump(&storage), before);
            }
        }
    }

    /// Any answer to a flush round is classified and applied without a panic, and whatever
    /// happened the store stays readable.
    #[test]
    fn flush_any_answer(st in status(), hs in headers(), b in pull_body(), batch in any::<bool>()) {
        let (db, storage) = populated();
        let mut db = db;
        if batch {
            db.config.batch_url = Some("/api/$batch".into());
        }
        let t = Canned(Ok(HttpResponse { status: st, headers: hs, body: b }));
        for _ in 0..3 {
            let mut r = Report::default();
            if let Err(e) = block_on(db.flush_round(&t, &[], &mut r)) {
                panic!("a round failed: {e}");
            }
        }
        block_on(db.outbox()).unwrap();
        block_on(db.all("todos")).unwrap();
        let _ = storage;
    }
}

// ---------------------------------------------------------------- stored data and app records

/// Garbage put into one table: anything under any key, or a real outbox entry with one field
/// replaced by anything.
fn damage() -> impl Strategy<Value = (u8, Key, Option<String>, Value)> {
    let key = prop_oneof![
        (0u64..6).prop_map(Key::Num),
        prop_oneof![
            Just("1"),
            Just("2"),
            Just("clock"),
            Just("cursor:todos"),
            Just("indexes:todos")
        ]
        .prop_map(Key::str),
        ("[a-z0-9:-]{0,8}", "[a-z0-9-]{0,8}").prop_map(|(a, b)| Key::Pair(a, b)),
    ];
    let field = prop_oneof![
        Just(None),
        prop_oneof![
            Just("seq"),
            Just("id"),
            Just("c"),
            Just("r"),
            Just("kind"),
            Just("fields"),
            Just("made"),
            Just("at"),
            Just("sent"),
            Just("base"),
            Just("base_v"),
            Just("replace"),
            Just("attempts"),
            Just("d"),
            Just("v"),
            Just("b"),
            Just("node"),
            Just("hlc")
        ]
        .prop_map(|f| Some(f.to_string())),
    ];
    (0u8..6, key, field, json_value())
}

fn table(t: u8) -> Table<'static> {
    match t {
        0 => Table::Records("todos"),
        1 => Table::Outbox,
        2 => Table::State,
        3 => Table::Aliases,
        4 => Table::Rejected,
        _ => Table::Conflicts,
    }
}

/// Runs `f`; when it fails, the error is a clear one of `allowed` and storage is untouched.
fn guarded<T>(
    storage: &MemoryStorage,
    allowed: &[ErrorKind],
    f: impl FnOnce() -> ferry::core::Result<T>,
) {
    let before = dump(storage);
    if let Err(e) = f() {
        clear_error(e.kind, allowed, &e.message);
        assert_eq!(dump(storage), before, "a failed call changed storage: {e}");
    }
}

const STORED: &[ErrorKind] = &[
    ErrorKind::Storage,
    ErrorKind::NotFound,
    ErrorKind::Validation,
    ErrorKind::Constraint,
];

proptest! {
    #![proptest_config(cases(400))]

    /// Rows, outbox entries, the clock, aliases, rejected items and conflicts read back damaged:
    /// every call either works or fails with a clear error that changed nothing.
    #[test]
    fn damaged_storage((t, key, field, v) in damage()) {
        let (db, storage, s) = populated_with();
        drop(db);
        block_on(async {
            let tx = storage.begin(true).await.unwrap();
            let value = match (&field, tx.get(table(t), &key).await.unwrap()) {
                (Some(f), Some(Value::Object(mut m))) => {
                    m.insert(f.clone(), v);
                    Value::Object(m)
                }
                _ => v,
            };
            tx.put(table(t), &key, &value).unwrap();
            tx.commit().await.unwrap();
        });
        let before = dump(&storage);
        let db = match block_on(Engine::open(config(&["todos"]), storage.clone(), TestEnv::seeded(5))) {
            Ok(db) => db,
            Err(e) => {
                clear_error(e.kind, &[ErrorKind::Storage], &e.message);
                prop_assert_eq!(dump(&storage), before);
                return Ok(());
            }
        };
        guarded(&storage, STORED, || block_on(db.get("todos", "1")));
        guarded(&storage, STORED, || block_on(db.all("todos")));
        guarded(&storage, STORED, || block_on(db.outbox()));
        guarded(&storage, STORED, || block_on(db.rejected()));
        guarded(&storage, STORED, || block_on(db.pending_count()));
        guarded(&storage, STORED, || block_on(db.query("todos", &Default::default())));
        guarded(&storage, STORED, || block_on(db.write("todos", vec![Op::Update("1".into(), rec(json!({"z": 1})))])));
        guarded(&storage, STORED, || block_on(db.write("todos", vec![Op::Create(rec(json!({"z": 2})))])));
        guarded(&storage, STORED, || block_on(db.write("todos", vec![Op::Delete("0".into())])));
        for _ in 0..3 {
            guarded(&storage, STORED, || block_on(db.flush_round(&s, &[], &mut Report::default())));
        }
        // A damaged cursor is refused by the server (400): a network error, nothing stored.
        let read = [STORED, &[ErrorKind::Network]].concat();
        guarded(&storage, &read, || block_on(db.pull(&s, &[], "todos")));
    }

    /// Records with odd keys and values, and odd ids, through every kind of local write; then
    /// whatever was stored syncs without a panic.
    #[test]
    fn odd_records_from_the_app(ops in prop::collection::vec((0u8..4, json_value(), json_value()), 1..6)) {
        let (db, storage, s) = populated_with();
        for (k, id, v) in ops {
            let idk = match &id { Value::String(x) => x.clone(), other => other.to_string() };
            let obj = match v { Value::Object(m) => m, other => rec(json!({"v": other, "id": id})) };
            let op = match k {
                0 => Op::Create(obj),
                1 => Op::Update(idk, obj),
                2 => Op::Replace(idk, obj),
                _ => Op::Delete(idk),
            };
            guarded(&storage, &[ErrorKind::Validation, ErrorKind::NotFound, ErrorKind::Constraint], || {
                block_on(db.write("todos", vec![op]))
            });
        }
        for _ in 0..4 {
            block_on(db.flush_round(&s, &[], &mut Report::default())).unwrap();
        }
        block_on(db.pull(&s, &[], "todos")).unwrap();
        block_on(db.all("todos")).unwrap();
    }
}

// ---------------------------------------------------------------- regressions found by fuzzing

/// An IMF-fixdate whose clock fields are huge overflows i64 arithmetic: a panic in debug builds,
/// a silently wrapped (wrong) time in release/wasm.
#[test]
fn regression_retry_after_date_with_huge_clock_fields() {
    let v = "Sun, 06 Nov 1994 9223372036854775807:00:00 GMT";
    let got = std::panic::catch_unwind(|| parse_retry_after(v, 0.0));
    assert_eq!(
        got.ok(),
        Some(None),
        "a date with hour 9223372036854775807 must be refused"
    );
}

/// A damaged outbox entry whose `attempts` is u32::MAX makes the next flush overflow.
#[test]
fn regression_outbox_attempts_overflow() {
    let (db, storage) = populated();
    block_on(async {
        let tx = storage.begin(true).await.unwrap();
        let (k, mut v) = tx.get_all(Table::Outbox).await.unwrap().remove(0);
        v["attempts"] = json!(u32::MAX);
        tx.put(Table::Outbox, &k, &v).unwrap();
        tx.commit().await.unwrap();
    });
    let s = MemServer::new();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(db.flush_round(&s, &[], &mut Report::default()))
    }));
    assert!(res.is_ok(), "the flush panicked");
}

/// A damaged clock whose `seq` is u64::MAX makes the next local write overflow.
#[test]
fn regression_clock_seq_overflow() {
    let (db, storage) = populated();
    block_on(async {
        let tx = storage.begin(true).await.unwrap();
        let mut v = tx
            .get(Table::State, &Key::str("clock"))
            .await
            .unwrap()
            .unwrap();
        v["seq"] = json!(u64::MAX);
        tx.put(Table::State, &Key::str("clock"), &v).unwrap();
        tx.commit().await.unwrap();
    });
    // A new engine (a reload): the first write reserves positions from the damaged clock.
    drop(db);
    let db = block_on(Engine::open(
        config(&["todos"]),
        storage.clone(),
        TestEnv::new(),
    ))
    .unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(db.write("todos", vec![Op::Create(rec(json!({"x": 1})))]))
    }));
    assert!(
        matches!(res, Ok(Err(_))),
        "must fail with a StorageError, not panic or wrap"
    );
}

/// A damaged outbox entry stored under another key than its `seq`: acknowledging it deletes
/// `seq`, not the key it was read from, so it is sent again every round and the outbox never drains
/// (`Engine::flush` loops for ever).
#[test]
fn regression_outbox_entry_under_another_key_never_drains() {
    let (db, storage, s) = populated_with();
    block_on(async {
        let tx = storage.begin(true).await.unwrap();
        let (k, mut v) = tx.get_all(Table::Outbox).await.unwrap().remove(0);
        v["seq"] = json!(1000);
        tx.put(Table::Outbox, &k, &v).unwrap();
        tx.commit().await.unwrap();
    });
    for _ in 0..10 {
        block_on(db.flush_round(&s, &[], &mut Report::default())).unwrap();
    }
    assert_eq!(
        block_on(db.pending_count()).unwrap(),
        0,
        "{:?}",
        block_on(db.outbox())
    );
}
