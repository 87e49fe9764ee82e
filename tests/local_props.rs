//! Properties of local writes and the outbox: flushing the coalesced outbox gives the server the
//! same final state as replaying every write one by one; the outbox keeps records in the order of
//! their first mutation; and a few local-only rules (unknown ids, duplicate ids, `.` and `..`).
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry::core::mutation::Kind;
use ferry::core::{ErrorKind, MemoryStorage, Op, Record, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const KEYS: usize = 4;
const FIELDS: [&str; 3] = ["t", "n", "x"];

#[derive(Clone, Debug)]
enum LOp {
    /// Create logical record `k`; `explicit` reuses the id it had before it was deleted.
    Create {
        k: usize,
        explicit: bool,
        fields: Vec<(usize, u8)>,
    },
    Update {
        k: usize,
        fields: Vec<(usize, u8)>,
    },
    Replace {
        k: usize,
        fields: Vec<(usize, u8)>,
    },
    Delete {
        k: usize,
    },
    /// Flush; with `lose`, the first write's answer is lost (it stays in flight).
    Flush {
        lose: bool,
    },
}

fn fields_strategy() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((0..FIELDS.len(), 0u8..3), 0..3)
}

fn op_strategy() -> impl Strategy<Value = LOp> {
    prop_oneof![
        3 => (0..KEYS, any::<bool>(), fields_strategy())
            .prop_map(|(k, explicit, fields)| LOp::Create { k, explicit, fields }),
        4 => (0..KEYS, fields_strategy()).prop_map(|(k, fields)| LOp::Update { k, fields }),
        2 => (0..KEYS, fields_strategy()).prop_map(|(k, fields)| LOp::Replace { k, fields }),
        2 => (0..KEYS).prop_map(|k| LOp::Delete { k }),
        1 => any::<bool>().prop_map(|lose| LOp::Flush { lose }),
    ]
}

fn body_of(k: usize, fields: &[(usize, u8)]) -> Record {
    let mut r = Record::new();
    r.insert("k".into(), json!(format!("k{k}")));
    for (f, v) in fields {
        r.insert(FIELDS[*f].into(), json!(v));
    }
    r
}

/// The naive replay: every operation sent on its own, straight to a server.
struct Naive {
    server: MemServer,
    live: HashMap<usize, (String, Record)>,
}

impl Naive {
    fn create(&mut self, k: usize, rec: Record) {
        let id = self
            .server
            .server_create("todos", Value::Object(rec.clone()));
        assert!(!id.is_empty());
        self.live.insert(k, (id, rec));
    }
    fn put(&mut self, k: usize, rec: Record) {
        let (id, _) = self.live.get(&k).cloned().unwrap();
        assert!(self
            .server
            .server_put("todos", &id, Value::Object(rec.clone()))
            .is_some());
        self.live.insert(k, (id, rec));
    }
    fn delete(&mut self, k: usize) {
        let (id, _) = self.live.remove(&k).unwrap();
        assert!(self.server.server_delete("todos", &id));
    }
}

/// The records of a server (or local store), without bookkeeping fields, keyed by "k".
fn by_k(records: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for r in records {
        let k = r["k"].as_str().expect("every record carries k").to_string();
        assert!(
            out.insert(k.clone(), strip(r)).is_none(),
            "two records for {k}: {records:?}"
        );
    }
    out
}

fn run_against_naive(ops: &[LOp], patch: bool, batch: bool) {
    let mut cfg = config(&["todos"]);
    if patch {
        cfg.collections.get_mut("todos").unwrap().update_method = UpdateMethod::Patch;
    }
    if batch {
        cfg.batch_url = Some("/api/$batch".into());
        cfg.batch_size = 3;
    }
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    let mut naive = Naive {
        server: MemServer::new(),
        live: HashMap::new(),
    };
    // The engine's id of each live logical record, and the last id of each deleted one.
    let mut ids: HashMap<usize, String> = HashMap::new();
    let mut last_id: HashMap<usize, String> = HashMap::new();
    for op in ops {
        match op.clone() {
            LOp::Create {
                k,
                explicit,
                fields,
            } => {
                if ids.contains_key(&k) {
                    continue;
                }
                let rec = body_of(k, &fields);
                let mut with_id = rec.clone();
                if let (true, Some(old)) = (explicit, last_id.get(&k)) {
                    with_id.insert("id".into(), json!(old));
                }
                let id = create(&db, "todos", Value::Object(with_id));
                ids.insert(k, id);
                naive.create(k, rec);
            }
            LOp::Update { k, fields } => {
                let Some(id) = ids.get(&k) else { continue };
                let patch = body_of(k, &fields);
                update(&db, "todos", id, Value::Object(patch.clone()));
                let mut full = naive.live[&k].1.clone();
                full.extend(patch);
                naive.put(k, full);
            }
            LOp::Replace { k, fields } => {
                let Some(id) = ids.get(&k) else { continue };
                let rec = body_of(k, &fields);
                replace(&db, "todos", id, Value::Object(rec.clone()));
                naive.put(k, rec);
            }
            LOp::Delete { k } => {
                let Some(id) = ids.remove(&k) else { continue };
                let current = get(&db, "todos", &id).expect("live record");
                last_id.insert(k, id_of(&current));
                delete(&db, "todos", &id);
                naive.delete(k);
            }
            LOp::Flush { lose } => {
                if lose {
                    s.drop_after_commit(1);
                }
                flush(&db, &s);
                s.clear_faults();
            }
        }
    }
    flush_all(&db, &s);
    assert_eq!(pending(&db), 0);
    assert_eq!(
        by_k(&s.records("todos")),
        by_k(&naive.server.records("todos")),
        "server state differs from the naive replay"
    );
    assert_eq!(
        local(&db, "todos"),
        s.records("todos"),
        "local differs from the server"
    );
    let keys = s.applied_keys();
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        keys.len(),
        "a key was applied twice"
    );
    assert!(s.stats().writes_applied <= naive.server.stats().writes_applied + ops.len() as u64);
    assert!(
        block_on(db.rejected()).unwrap().is_empty(),
        "{:?}",
        block_on(db.rejected())
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn coalesced_flush_equals_naive_replay(
        ops in prop::collection::vec(op_strategy(), 0..40),
        patch in any::<bool>(),
        batch in any::<bool>(),
    ) {
        run_against_naive(&ops, patch, batch);
    }

    #[test]
    fn outbox_keeps_the_order_of_first_mutations(ops in prop::collection::vec(op_strategy(), 0..40)) {
        check_outbox_order(&ops);
    }
}

/// Starts from records the server knows, then applies `ops` offline; the outbox holds one entry
/// per changed record, in the order of its first mutation, of the right kind.
fn check_outbox_order(ops: &[LOp]) {
    let db = open(config(&["todos"]), MemoryStorage::new());
    let s = MemServer::new();
    let mut ids: HashMap<usize, String> = HashMap::new();
    for k in 0..KEYS {
        ids.insert(k, create(&db, "todos", json!({"k": format!("k{k}")})));
    }
    flush_all(&db, &s);
    let synced: HashSet<String> = s
        .records("todos")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for id in ids.values_mut() {
        *id = id_of(&get(&db, "todos", id).unwrap());
    }
    let mut last_id: HashMap<usize, String> = HashMap::new();
    // Record id -> index of the op that first put it in the outbox.
    let mut first: HashMap<String, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op.clone() {
            LOp::Create {
                k,
                explicit,
                fields,
            } => {
                if ids.contains_key(&k) {
                    continue;
                }
                let mut rec = body_of(k, &fields);
                if let (true, Some(old)) = (explicit, last_id.get(&k)) {
                    rec.insert("id".into(), json!(old));
                }
                ids.insert(k, create(&db, "todos", Value::Object(rec)));
            }
            LOp::Update { k, fields } => {
                let Some(id) = ids.get(&k) else { continue };
                update(&db, "todos", id, Value::Object(body_of(k, &fields)));
            }
            LOp::Replace { k, fields } => {
                let Some(id) = ids.get(&k) else { continue };
                replace(&db, "todos", id, Value::Object(body_of(k, &fields)));
            }
            LOp::Delete { k } => {
                let Some(id) = ids.remove(&k) else { continue };
                last_id.insert(k, id.clone());
                delete(&db, "todos", &id);
            }
            LOp::Flush { .. } => continue,
        }
        let now: HashSet<String> = block_on(db.outbox())
            .unwrap()
            .into_iter()
            .map(|e| e.record_id)
            .collect();
        first.retain(|r, _| now.contains(r));
        for r in now {
            first.entry(r).or_insert(i);
        }
    }
    let out = block_on(db.outbox()).unwrap();
    let got: Vec<String> = out.iter().map(|e| e.record_id.clone()).collect();
    let mut want: Vec<(usize, String)> = first.into_iter().map(|(r, i)| (i, r)).collect();
    want.sort();
    let want: Vec<String> = want.into_iter().map(|(_, r)| r).collect();
    assert_eq!(got, want, "outbox order");
    let live: HashSet<&String> = ids.values().collect();
    for e in &out {
        assert!(!e.in_flight);
        let expected = match (synced.contains(&e.record_id), live.contains(&e.record_id)) {
            (false, _) => Kind::Create,
            (true, true) => Kind::Update,
            (true, false) => Kind::Delete,
        };
        assert_eq!(e.kind, expected, "{e:?}");
    }
    // And the whole lot reaches the server as the local state.
    flush_all(&db, &s);
    assert_eq!(local(&db, "todos"), s.records("todos"));
}

// ---------------------------------------------------------------- local-only rules

#[test]
fn update_replace_delete_of_an_unknown_id_is_not_found() {
    let (db, _) = open_todos();
    for op in [
        Op::Update("nope".into(), rec(json!({"a": 1}))),
        Op::Replace("nope".into(), rec(json!({"a": 1}))),
        Op::Delete("nope".into()),
    ] {
        let err = block_on(db.write("todos", vec![op])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    }
    assert_eq!(pending(&db), 0);
}

#[test]
fn duplicate_explicit_id_is_a_constraint_error_and_writes_nothing() {
    let (db, _) = open_todos();
    create(&db, "todos", json!({"id": "a", "title": "first"}));
    let before_out = block_on(db.outbox()).unwrap();
    let before = local(&db, "todos");
    let err = block_on(db.write(
        "todos",
        vec![
            Op::Create(rec(json!({"id": "b", "title": "would be fine"}))),
            Op::Create(rec(json!({"id": "a", "title": "dup"}))),
        ],
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Constraint, "{err}");
    assert_eq!(local(&db, "todos"), before, "the whole write is undone");
    assert_eq!(block_on(db.outbox()).unwrap(), before_out);
    assert!(get(&db, "todos", "b").is_none());
    // Numbers and strings name the same id.
    create(&db, "todos", json!({"id": 7}));
    let err = block_on(db.write("todos", vec![Op::Create(rec(json!({"id": "7"})))])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Constraint);
}

#[test]
fn duplicate_of_a_synced_record_by_its_temp_id_is_a_constraint_error() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let tmp = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    let err = block_on(db.write(
        "todos",
        vec![Op::Create(rec(json!({"id": tmp, "title": "dup"})))],
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Constraint, "{err}");
}

#[test]
fn path_step_ids_are_rejected() {
    let (db, _) = open_todos();
    for id in [".", ".."] {
        let err =
            block_on(db.write("todos", vec![Op::Create(rec(json!({"id": id})))])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Validation, "{id}: {err}");
    }
    for bad in [
        json!(""),
        json!(null),
        json!(true),
        json!([1]),
        json!({"a": 1}),
    ] {
        let err =
            block_on(db.write("todos", vec![Op::Create(rec(json!({"id": bad})))])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Validation, "{bad}: {err}");
    }
    assert_eq!(pending(&db), 0);
    assert!(local(&db, "todos").is_empty());
}

#[test]
fn the_id_of_a_record_cannot_change() {
    let (db, _) = open_todos();
    create(&db, "todos", json!({"id": "a"}));
    let err = block_on(db.write(
        "todos",
        vec![Op::Update("a".into(), rec(json!({"id": "b"})))],
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    let err = block_on(db.write(
        "todos",
        vec![Op::Replace("a".into(), rec(json!({"id": "b"})))],
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    assert!(get(&db, "todos", "a").is_some());
    assert!(get(&db, "todos", "b").is_none());
}

#[test]
fn unknown_collection_is_an_error() {
    let (db, _) = open_todos();
    let err = block_on(db.write("nope", vec![Op::Create(rec(json!({})))])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownCollection);
}

#[test]
fn a_no_op_update_queues_nothing() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"a": 1}));
    flush_all(&db, &s);
    let (_, changes) =
        block_on(db.write("todos", vec![Op::Update(id.clone(), rec(json!({"a": 1})))])).unwrap();
    assert!(changes.is_empty());
    assert_eq!(pending(&db), 0);
}

#[test]
fn failed_commit_writes_nothing() {
    let storage = MemoryStorage::new();
    let db = open(config(&["todos"]), storage.clone());
    storage.fail_next_commit(ErrorKind::Quota);
    let err = block_on(db.write("todos", vec![Op::Create(rec(json!({"a": 1})))])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Quota);
    assert!(local(&db, "todos").is_empty());
    assert_eq!(pending(&db), 0);
}

/// Found by the proptest: with PATCH, a record deleted and created again while its create was in
/// flight must lose the fields the server kept from the first create.
#[test]
fn regression_patch_recreate_over_in_flight_create() {
    let ops = [
        LOp::Create {
            k: 1,
            explicit: false,
            fields: vec![(0, 0)],
        },
        LOp::Flush { lose: true },
        LOp::Delete { k: 1 },
        LOp::Create {
            k: 1,
            explicit: true,
            fields: vec![],
        },
    ];
    run_against_naive(&ops, true, false);
}

/// Found by the proptest (about one run in 30): a record deleted by its temporary id while its
/// create's answer was lost, then created again under that id. The delete, done after the new
/// create was acknowledged, forgot the temporary id the new record now goes by, and `update`
/// by it found nothing.
#[test]
fn regression_create_again_under_a_deleted_temporary_id() {
    let lose = || LOp::Flush { lose: true };
    let ops = [
        LOp::Create {
            k: 0,
            explicit: false,
            fields: vec![],
        },
        lose(),
        LOp::Delete { k: 0 },
        lose(),
        LOp::Create {
            k: 0,
            explicit: true,
            fields: vec![],
        },
        lose(),
        lose(),
        LOp::Update {
            k: 0,
            fields: vec![],
        },
    ];
    run_against_naive(&ops, false, false);
}

#[test]
fn all_and_query_list_records_in_id_order_numbers_by_value() {
    let (db, _) = open_todos();
    for id in [
        json!(10),
        json!("b"),
        json!(9),
        json!(2),
        json!("a"),
        json!(1.5),
        json!(-1),
    ] {
        create(&db, "todos", json!({ "id": id }));
    }
    let ids = |rs: Vec<Record>| rs.into_iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    let want = vec![
        json!(-1),
        json!(1.5),
        json!(2),
        json!(9),
        json!(10),
        json!("a"),
        json!("b"),
    ];
    assert_eq!(ids(block_on(db.all("todos")).unwrap()), want);
    let q = |v: Value| serde_json::from_value::<ferry::core::Query>(v).unwrap();
    let first = block_on(db.query("todos", &q(json!({"limit": 3}))))
        .unwrap()
        .0;
    assert_eq!(ids(first), want[..3].to_vec());
    let last = block_on(db.query("todos", &q(json!({"desc": true, "limit": 3}))))
        .unwrap()
        .0;
    assert_eq!(ids(last), vec![json!("b"), json!("a"), json!(10)]);
    // `where` on the id finds the record as `get` does: 9 and "9" alike.
    for id in [json!(9), json!("9"), json!(9.0)] {
        let by_id = block_on(db.query("todos", &q(json!({"where": {"id": id}}))))
            .unwrap()
            .0;
        assert_eq!(ids(by_id), vec![json!(9)], "where id {id}");
    }
    let none = block_on(db.query("todos", &q(json!({"where": {"id": "9", "x": 1}})))).unwrap();
    assert!(none.0.is_empty(), "the other fields still filter");
}
