//! The engine-level half of the storage contract (`contract.rs`): the same engine over each
//! storage, through its public operations (write, get, all, query, outbox, pending_count).

use ferry::core::mutation::Kind;
use ferry::core::record::Row;
use ferry::core::sync::flush::join;
use ferry::core::{Engine, Env, ErrorKind, Op, Query, Storage, StoreConfig, Table};
use serde_json::{json, Value};

use super::{ids, k, open, put_all, rec, Harness};

async fn engine<H: Harness>(h: &H, cfg: &StoreConfig, s: H::S) -> Engine<H::S, H::E> {
    Engine::open(cfg.clone(), s, h.env())
        .await
        .expect("Engine::open")
}

async fn write<S: Storage, E: Env>(e: &Engine<S, E>, c: &str, ops: Vec<Op>) {
    e.write(c, ops).await.expect("write");
}

/// create+update is one create, update+update one update, create+delete nothing, update+delete a
/// delete; the outbox keeps the order of first mutations.
pub async fn engine_coalesces_local_writes<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "engine_coalesces_local_writes").await;
    let mut known = Row::new(
        cfg.collection("todos").expect("todos"),
        rec(json!({"id": "s1", "title": "srv", "done": false})),
    );
    known.v = Some("v1".into());
    put_all(&s, &[(Table::Records("todos"), k("s1"), known.to_value())]).await;
    let e = engine(h, &cfg, s).await;

    write(
        &e,
        "todos",
        vec![Op::Create(rec(json!({"id": "a", "title": "A"})))],
    )
    .await;
    write(
        &e,
        "todos",
        vec![Op::Update("a".into(), rec(json!({"title": "A2"})))],
    )
    .await;
    let out = e.outbox().await.expect("outbox");
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].kind, out[0].record_id.as_str()),
        (Kind::Create, "a")
    );
    assert_eq!(out[0].changes, rec(json!({"id": "a", "title": "A2"})));

    write(
        &e,
        "todos",
        vec![Op::Update("s1".into(), rec(json!({"title": "x"})))],
    )
    .await;
    write(
        &e,
        "todos",
        vec![Op::Update("s1".into(), rec(json!({"done": true})))],
    )
    .await;
    let out = e.outbox().await.expect("outbox");
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[1].kind, out[1].record_id.as_str()),
        (Kind::Update, "s1")
    );
    assert_eq!(out[1].changes, rec(json!({"done": true, "title": "x"})));
    assert_eq!(
        out[1].base,
        Some(rec(json!({"id": "s1", "title": "srv", "done": false})))
    );

    write(
        &e,
        "todos",
        vec![Op::Create(rec(json!({"id": "b"}))), Op::Delete("b".into())],
    )
    .await;
    assert_eq!(
        e.pending_count().await.expect("count"),
        2,
        "create+delete leaves nothing"
    );
    assert_eq!(e.get("todos", "b").await.expect("get"), None);

    write(
        &e,
        "todos",
        vec![Op::Replace(
            "s1".into(),
            rec(json!({"id": "s1", "title": "y"})),
        )],
    )
    .await;
    let out = e.outbox().await.expect("outbox");
    assert_eq!(
        out[1].changes,
        rec(json!({"done": null, "title": "y"})),
        "a replace removes fields"
    );

    write(&e, "todos", vec![Op::Delete("s1".into())]).await;
    let out = e.outbox().await.expect("outbox");
    let shape: Vec<_> = out.iter().map(|i| (i.kind, i.record_id.as_str())).collect();
    assert_eq!(shape, vec![(Kind::Create, "a"), (Kind::Delete, "s1")]);
    assert_eq!(
        out[1].base,
        Some(rec(json!({"id": "s1", "title": "srv", "done": false})))
    );
    assert_eq!(ids(&e.all("todos").await.expect("all")), vec!["a"]);
    assert_eq!(e.pending_count().await.expect("count"), 2);
}

/// A query on an indexed field reads through the index and says so; others scan.
pub async fn engine_query_uses_index<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "engine_query_uses_index").await;
    let e = engine(h, &cfg, s).await;
    let todos = [
        json!({"id": "1", "done": false, "n": 3}),
        json!({"id": "2", "done": true, "n": 1}),
        json!({"id": "3", "n": 2}),
        json!({"id": "4", "done": false, "n": 1}),
        json!({"id": "5", "done": null, "title": "x"}),
    ];
    write(
        &e,
        "todos",
        todos.iter().map(|t| Op::Create(rec(t.clone()))).collect(),
    )
    .await;
    let q = |filter: Value| Query {
        filter: rec(filter),
        ..Query::default()
    };

    let (hits, used) = e
        .query("todos", &q(json!({"done": false})))
        .await
        .expect("query");
    assert_eq!(
        (ids(&hits), used.as_deref()),
        (vec!["1".into(), "4".into()], Some("done"))
    );
    let sorted = Query {
        order_by: Some("n".into()),
        ..q(json!({"done": false}))
    };
    assert_eq!(
        ids(&e.query("todos", &sorted).await.expect("query").0),
        vec!["4", "1"]
    );
    let (hits, used) = e
        .query("todos", &q(json!({"done": null})))
        .await
        .expect("query");
    assert_eq!(
        (ids(&hits), used.as_deref()),
        (vec!["3".into(), "5".into()], Some("done"))
    );
    let (hits, used) = e.query("todos", &q(json!({"n": 1}))).await.expect("query");
    assert_eq!(
        (ids(&hits), used.as_deref()),
        (vec!["2".into(), "4".into()], Some("n"))
    );
    let (hits, used) = e
        .query("todos", &q(json!({"title": "x"})))
        .await
        .expect("query");
    assert_eq!((ids(&hits), used), (vec!["5".into()], None));
    let (hits, used) = e.query("todos", &q(json!({}))).await.expect("query");
    assert_eq!((hits.len(), used), (5, None));
}

/// A write that fails half-way (a duplicate id, a failed commit) leaves no record and no outbox entry.
pub async fn engine_failed_write_leaves_nothing<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "engine_failed_write_leaves_nothing").await;
    let e = engine(h, &cfg, s).await;
    let create = |v: Value| Op::Create(rec(v));

    let err = e
        .write(
            "todos",
            vec![create(json!({"id": "x1"})), create(json!({"id": "x1"}))],
        )
        .await;
    assert_eq!(err.expect_err("duplicate id").kind, ErrorKind::Constraint);
    assert_eq!(e.get("todos", "x1").await.expect("get"), None);
    assert!(e.outbox().await.expect("outbox").is_empty());

    write(
        &e,
        "todos",
        vec![create(json!({"id": "e1", "title": "kept"}))],
    )
    .await;
    let before = e.outbox().await.expect("outbox");
    let ops = vec![
        create(json!({"id": "x2"})),
        Op::Update("e1".into(), rec(json!({"title": "changed"}))),
        create(json!({"id": "e1"})),
    ];
    assert_eq!(
        e.write("todos", ops).await.expect_err("duplicate id").kind,
        ErrorKind::Constraint
    );
    assert_eq!(e.get("todos", "x2").await.expect("get"), None);
    assert_eq!(
        e.get("todos", "e1").await.expect("get"),
        Some(rec(json!({"id": "e1", "title": "kept"})))
    );
    assert_eq!(e.outbox().await.expect("outbox"), before);

    h.fail_next_commit(&e.storage);
    let err = e
        .write("todos", vec![create(json!({"id": "x3"}))])
        .await
        .expect_err("injected failure");
    assert!(
        matches!(err.kind, ErrorKind::Storage | ErrorKind::Quota),
        "{err}"
    );
    assert_eq!(e.get("todos", "x3").await.expect("get"), None);
    assert_eq!(e.outbox().await.expect("outbox"), before);

    write(&e, "todos", vec![create(json!({"id": "x4"}))]).await;
    assert_eq!(e.pending_count().await.expect("count"), 2);
}

/// Closing and opening the store again keeps records, the outbox and the client's node id.
pub async fn engine_reopen_keeps_records_and_outbox<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "engine_reopen_keeps_records_and_outbox").await;
    let e = engine(h, &cfg, s).await;
    write(
        &e,
        "todos",
        vec![
            Op::Create(rec(json!({"id": "a", "done": false}))),
            Op::Create(rec(json!({"id": "b"}))),
        ],
    )
    .await;
    write(
        &e,
        "notes",
        vec![Op::Create(rec(json!({"text": "no id: a temporary one"})))],
    )
    .await;
    write(
        &e,
        "todos",
        vec![Op::Update("a".into(), rec(json!({"done": true})))],
    )
    .await;
    let (records, notes, outbox) = (e.all("todos").await, e.all("notes").await, e.outbox().await);
    drop(e);

    let e = engine(h, &cfg, h.open(&cfg).await).await;
    assert_eq!(e.all("todos").await, records);
    assert_eq!(e.all("notes").await, notes);
    let outbox = outbox.expect("outbox");
    assert_eq!(e.outbox().await.expect("outbox"), outbox);
    assert_eq!(outbox.len(), 3);
    let (hits, used) = e
        .query(
            "todos",
            &Query {
                filter: rec(json!({"done": true})),
                ..Query::default()
            },
        )
        .await
        .expect("query");
    assert_eq!(
        (ids(&hits), used.as_deref()),
        (vec!["a".into()], Some("done"))
    );

    write(&e, "todos", vec![Op::Create(rec(json!({"id": "c"})))]).await;
    let after = e.outbox().await.expect("outbox");
    let node = |id: &str| id.rsplit_once('-').map(|(node, _)| node.to_string());
    assert_eq!(
        node(&after[3].mutation_id),
        node(&outbox[0].mutation_id),
        "same client after reopening"
    );
    assert_ne!(after[3].mutation_id, outbox[2].mutation_id);
}

/// Records written before an index was declared are found through it after a reopen that adds
/// it (and still after another reopen), and a write after that keeps them indexed.
pub async fn engine_index_added_later_finds_old_records<H: Harness>(h: &H) {
    let (mut cfg, s) = open(h, "engine_index_added_later").await;
    let notes = cfg.collections.get_mut("notes").expect("notes");
    notes.indexes.clear();
    let e = engine(h, &cfg, s).await;
    write(
        &e,
        "notes",
        vec![
            Op::Create(rec(json!({"id": "a", "tag": "x"}))),
            Op::Create(rec(json!({"id": "b", "tag": "y"}))),
            Op::Create(rec(json!({"id": "c", "tag": "x"}))),
            Op::Create(rec(json!({"id": "d", "tag": {"not": "indexable"}}))),
        ],
    )
    .await;
    drop(e);

    cfg.collections.get_mut("notes").expect("notes").indexes = vec!["tag".into()];
    let by_tag = Query {
        filter: rec(json!({"tag": "x"})),
        ..Query::default()
    };
    for _ in 0..2 {
        let e = engine(h, &cfg, h.open(&cfg).await).await;
        let (hits, used) = e.query("notes", &by_tag).await.expect("query");
        assert_eq!(used.as_deref(), Some("tag"), "the new index is used");
        assert_eq!(ids(&hits), vec!["a", "c"]);
        drop(e);
    }
    let e = engine(h, &cfg, h.open(&cfg).await).await;
    write(
        &e,
        "notes",
        vec![Op::Update("b".into(), rec(json!({"tag": "x"})))],
    )
    .await;
    let (hits, _) = e.query("notes", &by_tag).await.expect("query");
    assert_eq!(ids(&hits), vec!["a", "b", "c"]);
}

/// Two indexes declared at once on a collection that has records: both find them (IndexedDB keys
/// the rows for both in one pass; two passes would each drop the other's key).
pub async fn engine_two_indexes_added_later_find_old_records<H: Harness>(h: &H) {
    let (mut cfg, s) = open(h, "engine_two_indexes_added_later").await;
    cfg.collections
        .get_mut("notes")
        .expect("notes")
        .indexes
        .clear();
    let e = engine(h, &cfg, s).await;
    write(
        &e,
        "notes",
        vec![
            Op::Create(rec(json!({"id": "a", "tag": "x", "prio": 1}))),
            Op::Create(rec(json!({"id": "b", "tag": "y", "prio": 2}))),
            Op::Create(rec(json!({"id": "c", "tag": "x", "prio": 1}))),
        ],
    )
    .await;
    drop(e);
    cfg.collections.get_mut("notes").expect("notes").indexes = vec!["tag".into(), "prio".into()];
    let e = engine(h, &cfg, h.open(&cfg).await).await;
    for (field, value) in [("tag", json!("x")), ("prio", json!(1))] {
        let q = Query {
            filter: rec(json!({ field: value })),
            ..Query::default()
        };
        let (hits, used) = e.query("notes", &q).await.expect("query");
        assert_eq!(used.as_deref(), Some(field));
        assert_eq!(ids(&hits), vec!["a", "c"], "through the {field} index");
    }
}

/// A collection left out of a later configuration keeps its records and its pending mutations:
/// the store opened without it still lists them, and the store that declares it again has them.
pub async fn engine_collection_left_out_keeps_its_data<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "engine_collection_left_out").await;
    let e = engine(h, &cfg, s).await;
    write(
        &e,
        "notes",
        vec![Op::Create(rec(json!({"id": "n1", "text": "kept"})))],
    )
    .await;
    write(&e, "todos", vec![Op::Create(rec(json!({"id": "t1"})))]).await;
    drop(e);

    let mut without = cfg.clone();
    without.collections.remove("notes");
    let e = engine(h, &without, h.open(&without).await).await;
    let out = e.outbox().await.expect("outbox");
    let listed: Vec<(&str, &str)> = out
        .iter()
        .map(|o| (o.collection.as_str(), o.record_id.as_str()))
        .collect();
    assert_eq!(listed, vec![("notes", "n1"), ("todos", "t1")]);
    assert_eq!(out[0].changes, rec(json!({"id": "n1", "text": "kept"})));
    let err = e
        .write("notes", vec![Op::Create(rec(json!({"id": "n2"})))])
        .await
        .expect_err("notes is not declared here");
    assert_eq!(err.kind, ErrorKind::UnknownCollection);
    write(&e, "todos", vec![Op::Create(rec(json!({"id": "t2"})))]).await;
    drop(e);

    let e = engine(h, &cfg, h.open(&cfg).await).await;
    let got = e.get("notes", "n1").await.expect("get");
    assert_eq!(got, Some(rec(json!({"id": "n1", "text": "kept"}))));
    assert_eq!(e.pending_count().await.expect("pending"), 3);
}

/// A write of many records spread thinly over a big collection (its range read is capped before
/// it reaches them all) still sees every row and every pending entry: updates find their
/// records and coalesce into what is pending.
pub async fn engine_big_write_over_sparse_ids_sees_everything<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "engine_big_sparse_write").await;
    let notes = cfg.collection("notes").expect("notes");
    let rows: Vec<_> = (0..300)
        .map(|n| {
            let id = format!("r{n:03}");
            let row = Row::new(notes, rec(json!({"id": id, "n": n})));
            (Table::Records("notes"), k(&id), row.to_value())
        })
        .collect();
    put_all(&s, &rows).await;
    let e = engine(h, &cfg, s).await;
    let picked: Vec<String> = (0..300).step_by(7).map(|n| format!("r{n:03}")).collect();
    let patch = |v: Value| -> Vec<Op> {
        picked
            .iter()
            .map(|id| Op::Update(id.clone(), rec(v.clone())))
            .collect()
    };
    let (out, _) = e
        .write("notes", patch(json!({"a": 1})))
        .await
        .expect("write");
    assert!(out.iter().all(Option::is_some), "every record was found");
    // Now every record has a pending entry: the entries' range is capped too.
    let every: Vec<Op> = (0..300)
        .map(|n| Op::Update(format!("r{n:03}"), rec(json!({"z": 0}))))
        .collect();
    write(&e, "notes", every).await;
    let (out, _) = e
        .write("notes", patch(json!({"b": 2})))
        .await
        .expect("write");
    assert!(out.iter().all(Option::is_some));
    let outbox = e.outbox().await.expect("outbox");
    assert_eq!(
        outbox.len(),
        300,
        "every write coalesced into one entry per record"
    );
    for item in &outbox {
        let n: u64 = item.record_id[1..].parse().expect("a number");
        let want = if n % 7 == 0 {
            json!({"a": 1, "b": 2, "z": 0})
        } else {
            json!({"z": 0})
        };
        assert_eq!(item.changes, rec(want), "{}", item.record_id);
        assert_eq!(item.base, Some(rec(json!({"id": item.record_id, "n": n}))));
    }
}

/// Two clients (tabs) on one database take turns creating. A client that writes without reading
/// first checks that the clock is where it left it, so no outbox position is handed out twice, a
/// create over a taken id still fails, and one over a pending delete still folds into it.
pub async fn engine_two_clients_interleave_creates<H: Harness>(h: &H) {
    let (cfg, s) = open(h, "engine_two_clients").await;
    let synced = Row::new(
        cfg.collection("todos").expect("todos"),
        rec(json!({"id": "s1", "title": "srv"})),
    );
    put_all(&s, &[(Table::Records("todos"), k("s1"), synced.to_value())]).await;
    let a = engine(h, &cfg, s).await;
    let b = engine(h, &cfg, h.open(&cfg).await).await;
    let create = |v: Value| vec![Op::Create(rec(v))];

    // Each tab hears the other's writes (the tabs layer calls `retire_block`), so the outbox
    // keeps the order in which they wrote.
    write(&a, "todos", create(json!({"id": "x1"}))).await;
    write(&a, "todos", create(json!({"id": "x2"}))).await;
    b.retire_block();
    write(&b, "todos", create(json!({"id": "y1"}))).await;
    a.retire_block();
    write(&a, "todos", create(json!({"title": "no id"}))).await;
    write(&a, "todos", create(json!({"id": "x3"}))).await;
    let taken = a.write("todos", create(json!({"id": "y1"}))).await;
    assert_eq!(taken.expect_err("y1 is b's").kind, ErrorKind::Constraint);
    write(&a, "todos", vec![Op::Delete("s1".into())]).await;
    b.retire_block();
    write(&b, "todos", create(json!({"id": "y2"}))).await;
    a.retire_block();
    write(&a, "todos", create(json!({"id": "x4"}))).await;
    write(&a, "todos", create(json!({"id": "s1", "title": "again"}))).await;

    let out = a.outbox().await.expect("outbox");
    let shape: Vec<_> = out
        .iter()
        .map(|i| (i.kind, i.record_id.as_str()))
        .filter(|(_, r)| !r.starts_with("tmp-"))
        .collect();
    use Kind::{Create, Update};
    assert_eq!(
        shape,
        vec![
            (Create, "x1"),
            (Create, "x2"),
            (Create, "y1"),
            (Create, "x3"),
            (Update, "s1"),
            (Create, "y2"),
            (Create, "x4"),
        ],
        "every create kept, in order; the delete of s1 and its create again are one replace"
    );
    assert_eq!(out.len(), 8, "and the create without an id");
    let mut ids: Vec<&str> = out.iter().map(|i| i.mutation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "no mutation id twice");
    let all = b.all("todos").await.expect("all");
    assert_eq!(all.len(), 8, "s1, x1-x4, y1, y2 and the one without an id");

    // After the other client wrote, a create and an update of it called at once: the create
    // reserves new positions, and it must still take effect before the update called after it.
    b.retire_block();
    write(&b, "todos", create(json!({"id": "y3"}))).await;
    a.retire_block();
    let edit = vec![Op::Update("x5".into(), rec(json!({"title": "edited"})))];
    let (made, edited) = join(
        a.write("todos", create(json!({"id": "x5"}))),
        a.write("todos", edit),
    )
    .await;
    made.expect("create");
    edited.expect("the update runs after the create called before it");
    let out = b.outbox().await.expect("outbox");
    let last: Vec<_> = out
        .iter()
        .rev()
        .take(2)
        .map(|i| i.record_id.as_str())
        .collect();
    assert_eq!(last, vec!["x5", "y3"], "y3, then x5 (its update folded in)");
    let x5 = b.get("todos", "x5").await.expect("get").expect("x5");
    assert_eq!(x5["title"], "edited");
}
