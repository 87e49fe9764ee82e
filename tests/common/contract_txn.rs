//! The transaction half of the storage contract (`contract.rs`): reads issued together, the
//! head of a table, scopes, read-only transactions, rollback and all-or-nothing commits.

use ferry::core::storage::{Checked, Read, OUTBOX_BY_RECORD};
use ferry::core::{ErrorKind, Key, Storage, Table, Txn};
use serde_json::{json, Value};

use super::{all, count, get, k, nums, open, pair, put_all, strs, Harness};

/// read_many answers gets, index reads, first keys and whole tables in the order asked, as the single reads
/// would, with the transaction's own writes.
pub async fn read_many_answers_each_read_in_order<H: Harness>(h: &H) {
    let (_, s) = open(h, "read_many").await;
    let row = |n: u64| json!({"d": {"id": n.to_string(), "n": n}, "ix": {"n": n}});
    let mut rows: Vec<_> = (1..=3u64)
        .map(|n| (Table::Records("todos"), k(&n.to_string()), row(n)))
        .collect();
    rows.push((
        Table::Outbox,
        Key::Num(9),
        json!({"seq": 9, "c": "todos", "r": "2", "kind": "update"}),
    ));
    rows.push((Table::Aliases, pair("todos", "t1"), json!("1")));
    put_all(&s, &rows).await;
    let tx = s.begin(true).await.expect("begin");
    tx.put(Table::Records("todos"), &k("4"), &row(4))
        .expect("put");
    for n in [12, 4] {
        let e = json!({"seq": n, "c": "todos", "r": "3", "kind": "update"});
        tx.put(Table::Outbox, &Key::Num(n), &e).expect("put");
    }
    let reads = [
        Read::Get(Table::Records("todos"), k("2")),
        Read::Get(Table::Records("todos"), k("missing")),
        Read::Index(Table::Outbox, OUTBOX_BY_RECORD, json!(["todos", "2"])),
        Read::Index(Table::Outbox, OUTBOX_BY_RECORD, json!(["todos", "1"])),
        Read::All(Table::Aliases),
        Read::Index(Table::Records("todos"), "ix.n", json!(4)),
        Read::Index(Table::Records("todos"), "ix.n", json!(true)),
        Read::All(Table::Records("todos")),
        Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, json!(["todos", "2"])),
        Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, json!(["todos", "3"])),
        Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, json!(["todos", "1"])),
        Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, json!(true)),
    ];
    let got = tx.read_many(&reads).await.expect("read_many");
    assert_eq!(got.len(), reads.len());
    assert_eq!(got[0], vec![(k("2"), row(2))]);
    assert!(got[1].is_empty());
    assert_eq!(got[2], vec![(Key::Num(9), rows[3].2.clone())]);
    assert!(got[3].is_empty());
    assert_eq!(got[4], vec![(pair("todos", "t1"), json!("1"))]);
    assert_eq!(
        got[5],
        vec![(k("4"), row(4))],
        "its own write, through the index"
    );
    assert!(
        got[6].is_empty(),
        "true is no key: nothing is indexed under it"
    );
    let all: Vec<Key> = got[7].iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(all, strs(&["1", "2", "3", "4"]));
    assert_eq!(got[8], vec![(Key::Num(9), Value::Null)]);
    assert_eq!(
        got[9],
        vec![(Key::Num(4), Value::Null)],
        "the lowest position of the record's entries, its own writes seen"
    );
    assert!(got[10].is_empty(), "no entry: no key");
    assert!(got[11].is_empty(), "true is no key");
}

/// get_first answers the first entries in key order, with the transaction's own writes.
pub async fn get_first_in_key_order<H: Harness>(h: &H) {
    let (_, s) = open(h, "get_first").await;
    let entry = |n: u64| json!({"seq": n, "c": "todos", "r": n.to_string(), "kind": "create"});
    let rows: Vec<_> = [5u64, 2, 30, 7]
        .iter()
        .map(|n| (Table::Outbox, Key::Num(*n), entry(*n)))
        .collect();
    put_all(&s, &rows).await;
    let tx = s.begin(true).await.expect("begin");
    tx.put(Table::Outbox, &Key::Num(3), &entry(3)).expect("put");
    let keys = |got: Vec<(Key, Value)>| got.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let first = tx.get_first(Table::Outbox, 2).await.expect("get_first");
    assert_eq!(first[0], (Key::Num(2), entry(2)));
    assert_eq!(keys(first), nums(&[2, 3]));
    let all = tx.get_first(Table::Outbox, 10).await.expect("get_first");
    assert_eq!(keys(all), nums(&[2, 3, 5, 7, 30]));
    assert!(tx
        .get_first(Table::Outbox, 0)
        .await
        .expect("get_first")
        .is_empty());
    assert!(tx
        .get_first(Table::Aliases, 3)
        .await
        .expect("get_first")
        .is_empty());
}

/// A transaction over some tables works on them, and refuses the others.
pub async fn scoped_transaction_keeps_to_its_tables<H: Harness>(h: &H) {
    let (_, s) = open(h, "scoped").await;
    let scope = [Table::Records("todos"), Table::Outbox];
    let tx = s.begin_in(true, &scope).await.expect("begin_in");
    tx.put(Table::Records("todos"), &k("a"), &json!({"d": {}}))
        .expect("put in scope");
    tx.put(
        Table::Outbox,
        &Key::Num(1),
        &json!({"seq": 1, "c": "todos", "r": "a"}),
    )
    .expect("put in scope");
    assert!(
        tx.get(Table::State, &k("clock")).await.is_err(),
        "a read outside the scope fails"
    );
    tx.commit().await.expect("commit");
    let tx = s.begin_in(true, &scope).await.expect("begin_in");
    tx.put(Table::Records("todos"), &k("b"), &json!({"d": {}}))
        .expect("put in scope");
    assert!(
        tx.put(Table::Aliases, &pair("todos", "x"), &json!("y"))
            .is_err(),
        "a write outside the scope fails"
    );
    assert!(
        tx.commit().await.is_err(),
        "and dooms the transaction: nothing of it commits"
    );
    assert_eq!(count(&s, Table::Records("todos")).await, 1);
    assert_eq!(count(&s, Table::Outbox).await, 1);
    assert_eq!(count(&s, Table::Aliases).await, 0);
}

/// A write transaction dropped without commit leaves nothing behind.
pub async fn dropped_transaction_rolls_back<H: Harness>(h: &H) {
    let (_, s) = open(h, "dropped_transaction_rolls_back").await;
    put_all(&s, &[(Table::State, k("kept"), json!(1))]).await;
    {
        let tx = s.begin(true).await.expect("begin");
        tx.put(Table::Records("notes"), &k("x"), &json!({"d": {"id": "x"}}))
            .expect("put");
        tx.put(Table::Outbox, &Key::Num(1), &json!({"seq": 1}))
            .expect("put");
        tx.put(Table::State, &k("kept"), &json!(2)).expect("put");
        tx.delete(Table::State, &k("kept")).expect("delete");
        assert_eq!(tx.count(Table::Outbox).await.expect("count"), 1);
        // dropped here, uncommitted
    }
    assert_eq!(get(&s, Table::Records("notes"), &k("x")).await, None);
    assert_eq!(count(&s, Table::Outbox).await, 0);
    assert_eq!(get(&s, Table::State, &k("kept")).await, Some(json!(1)));
}

/// Writes in a read-only transaction fail and change nothing.
pub async fn read_only_transaction_rejects_writes<H: Harness>(h: &H) {
    let (_, s) = open(h, "read_only_transaction_rejects_writes").await;
    put_all(&s, &[(Table::State, k("kept"), json!(1))]).await;
    let tx = s.begin(false).await.expect("begin");
    let put = tx.put(Table::State, &k("new"), &json!(2));
    assert_eq!(
        put.expect_err("put in a read-only transaction").kind,
        ErrorKind::Storage
    );
    let del = tx.delete(Table::State, &k("kept"));
    assert_eq!(
        del.expect_err("delete in a read-only transaction").kind,
        ErrorKind::Storage
    );
    drop(tx);
    assert_eq!(get(&s, Table::State, &k("new")).await, None);
    assert_eq!(get(&s, Table::State, &k("kept")).await, Some(json!(1)));
}

/// A commit makes all of a transaction's writes durable together, or (when it fails) none.
pub async fn commit_is_all_or_nothing<H: Harness>(h: &H) {
    let (_, s) = open(h, "commit_is_all_or_nothing").await;
    put_all(&s, &[(Table::State, k("old"), json!("old"))]).await;
    let batch = |tag: &str| {
        vec![
            (
                Table::Records("notes"),
                k(&format!("{tag}-1")),
                json!({"d": {"id": tag}}),
            ),
            (
                Table::Outbox,
                Key::Num(if tag == "ok" { 1 } else { 2 }),
                json!({"tag": tag}),
            ),
            (Table::Aliases, pair("notes", tag), json!(tag)),
        ]
    };
    let write = |entries: Vec<(Table<'static>, Key, Value)>, delete: Option<Key>| {
        let s = &s;
        async move {
            let tx = s.begin(true).await.expect("begin");
            for (t, key, v) in &entries {
                tx.put(*t, key, v).expect("put");
            }
            if let Some(key) = delete {
                tx.delete(Table::State, &key).expect("delete");
            }
            tx.commit().await
        }
    };
    write(batch("ok"), None).await.expect("commit");
    for (t, key, v) in batch("ok") {
        assert_eq!(get(&s, t, &key).await, Some(v));
    }

    h.fail_next_commit(&s);
    let err = write(batch("bad"), Some(k("old")))
        .await
        .expect_err("the injected failure");
    assert!(
        matches!(err.kind, ErrorKind::Storage | ErrorKind::Quota),
        "{err}"
    );
    for (t, key, _) in batch("bad") {
        assert_eq!(
            get(&s, t, &key).await,
            None,
            "{t:?} {key:?} after a failed commit"
        );
    }
    assert_eq!(
        get(&s, Table::State, &k("old")).await,
        Some(json!("old")),
        "the delete was rolled back too"
    );
    assert_eq!(count(&s, Table::Outbox).await, 1);

    write(batch("after"), None)
        .await
        .expect("the storage still works after a failed commit");
}

/// A range read answers the entries between two keys, of a table or of an index, in IndexedDB's
/// order (strings by UTF-16 code units: U+10000 sorts before U+E000), at most `limit` of them,
/// with writes of the same transaction seen; an upside-down range answers nothing.
pub async fn get_range_in_idb_order<H: Harness>(h: &H) {
    let (_, s) = open(h, "get_range").await;
    let ids = ["a", "b", "c", "d", "e", "\u{E000}", "\u{10000}"];
    let rows: Vec<_> = ids
        .iter()
        .map(|id| (Table::Records("notes"), k(id), json!({ "d": { "id": id } })))
        .collect();
    put_all(&s, &rows).await;
    let entries = [(5, "a"), (2, "b"), (3, "a"), (4, "c"), (9, "e")];
    let rows: Vec<_> = entries
        .iter()
        .map(|(n, r)| {
            let v = json!({"seq": n, "c": "todos", "r": r, "kind": "update"});
            (Table::Outbox, Key::Num(*n), v)
        })
        .collect();
    put_all(&s, &rows).await;

    let tx = s.begin(true).await.expect("begin");
    tx.delete(Table::Records("notes"), &k("c")).expect("delete");
    let keys = |got: Vec<(Key, Value)>| got.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let notes = Table::Records("notes");
    let range = |lo: &str, hi: &str, limit: usize| {
        let (lo, hi) = (k(lo), k(hi));
        let tx = &tx;
        async move {
            keys(
                tx.get_range(notes, None, &lo, &hi, limit)
                    .await
                    .expect("range"),
            )
        }
    };
    assert_eq!(range("b", "e", 10).await, vec![k("b"), k("d"), k("e")]);
    assert_eq!(range("b", "e", 2).await, vec![k("b"), k("d")]);
    assert_eq!(range("e", "b", 10).await, Vec::<Key>::new());
    assert_eq!(
        range("\u{10000}", "\u{E000}", 10).await,
        vec![k("\u{10000}"), k("\u{E000}")]
    );
    let got = tx
        .get_range(notes, None, &k("a"), &k("a"), 5)
        .await
        .expect("range");
    assert_eq!(got, vec![(k("a"), json!({ "d": { "id": "a" } }))]);

    let by = |r: &str| pair("todos", r);
    let outbox = |lo: &str, hi: &str, limit: usize| {
        let (lo, hi) = (by(lo), by(hi));
        let tx = &tx;
        async move {
            keys(
                tx.get_range(Table::Outbox, Some(OUTBOX_BY_RECORD), &lo, &hi, limit)
                    .await
                    .expect("index range"),
            )
        }
    };
    assert_eq!(outbox("a", "c", 10).await, nums(&[3, 5, 2, 4]));
    assert_eq!(outbox("a", "c", 3).await, nums(&[3, 5, 2]));
    assert_eq!(outbox("b", "d", 10).await, nums(&[2, 4]));
    let read = Read::Range {
        table: notes,
        index: None,
        lo: k("d"),
        hi: k("\u{E000}"),
        limit: 10,
    };
    let many = tx.read_many(&[read]).await.expect("read_many");
    assert_eq!(
        keys(many.into_iter().next().expect("one answer")),
        vec![k("d"), k("e"), k("\u{10000}"), k("\u{E000}")]
    );
}

/// A range delete removes the keys between its bounds, bounds included, and nothing else; the
/// same transaction reads without them, and an upside-down range removes nothing.
pub async fn delete_range_removes_the_keys_between<H: Harness>(h: &H) {
    let (_, s) = open(h, "delete_range").await;
    let entry = |n: u64| json!({"seq": n, "c": "todos", "r": n.to_string(), "kind": "create"});
    let rows: Vec<_> = [1u64, 2, 3, 5, 8, 13]
        .iter()
        .map(|n| (Table::Outbox, Key::Num(*n), entry(*n)))
        .collect();
    put_all(&s, &rows).await;
    let keys = |got: Vec<(Key, Value)>| got.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let tx = s.begin(true).await.expect("begin");
    tx.delete_range(Table::Outbox, &Key::Num(2), &Key::Num(8))
        .expect("delete_range");
    tx.delete_range(Table::Outbox, &Key::Num(13), &Key::Num(1))
        .expect("an upside-down range");
    tx.put(Table::Outbox, &Key::Num(4), &entry(4)).expect("put");
    let seen = tx.get_all(Table::Outbox).await.expect("get_all");
    assert_eq!(keys(seen), nums(&[1, 4, 13]));
    tx.commit().await.expect("commit");
    assert_eq!(keys(all(&s, Table::Outbox).await), nums(&[1, 4, 13]));
}

/// read_then_write answers its reads as the transaction stood before its adds and writes, the
/// writes are then there for later reads and at commit, and an add whose key is taken writes
/// nothing and fails alone: the transaction goes on and commits.
pub async fn read_then_write_reads_before_writing<H: Harness>(h: &H) {
    let (_, s) = open(h, "read_then_write").await;
    let notes = Table::Records("notes");
    put_all(
        &s,
        &[
            (notes, k("old"), json!({"d": {"id": "old"}})),
            (notes, k("kept"), json!({"d": {"id": "kept"}})),
        ],
    )
    .await;
    let tx = s.begin(true).await.expect("begin");
    let reads = [
        Read::Get(notes, k("old")),
        Read::Get(notes, k("new")),
        Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, json!(["notes", "new"])),
    ];
    let entry = json!({"seq": 1, "c": "notes", "r": "new", "kind": "create"});
    let adds = [
        (Table::Outbox, Key::Num(1), entry),
        (notes, k("kept"), json!({"d": {"id": "kept", "by": "add"}})),
    ];
    let writes = [
        (notes, k("new"), Some(json!({"d": {"id": "new"}}))),
        (notes, k("old"), None),
    ];
    let (got, added) = tx
        .read_then_write(&reads, &adds, &writes)
        .await
        .expect("read_then_write");
    assert_eq!(got[0], vec![(k("old"), json!({"d": {"id": "old"}}))]);
    assert!(
        got[1].is_empty() && got[2].is_empty(),
        "before the writes: {got:?}"
    );
    assert_eq!(added, vec![true, false], "the second add's key is taken");
    let after = tx.read_many(&reads).await.expect("read_many");
    assert!(after[0].is_empty(), "the delete is seen");
    assert_eq!(after[1], vec![(k("new"), json!({"d": {"id": "new"}}))]);
    assert_eq!(after[2], vec![(Key::Num(1), Value::Null)]);
    tx.commit()
        .await
        .expect("a failed add does not fail the commit");
    assert_eq!(get(&s, notes, &k("old")).await, None);
    assert_eq!(
        get(&s, notes, &k("kept")).await,
        Some(json!({"d": {"id": "kept"}})),
        "a failed add leaves what was there"
    );
    assert_eq!(count(&s, Table::Outbox).await, 1);
}

/// add_new writes its adds with the commit; where one finds its key taken, the transaction
/// fails whole (at the add, or at the latest at the commit): the other add is not written and
/// what held the key is left as it was.
pub async fn add_new_on_a_taken_key_writes_nothing<H: Harness>(h: &H) {
    let (_, s) = open(h, "add_new").await;
    let notes = Table::Records("notes");
    let entry = |r: &str| json!({"seq": 1, "c": "notes", "r": r, "kind": "create"});
    let tx = s.begin(true).await.expect("begin");
    tx.add_new(&[
        (Table::Outbox, Key::Num(1), entry("a")),
        (notes, k("a"), json!({"d": {"id": "a"}})),
    ])
    .await
    .expect("free keys");
    tx.commit().await.expect("commit");
    assert_eq!(
        get(&s, notes, &k("a")).await,
        Some(json!({"d": {"id": "a"}}))
    );
    assert_eq!(count(&s, Table::Outbox).await, 1);

    let tx = s.begin(true).await.expect("begin");
    let failed = async {
        tx.add_new(&[
            (Table::Outbox, Key::Num(2), entry("a")),
            (notes, k("a"), json!({"d": {"id": "a", "by": "second"}})),
        ])
        .await?;
        tx.commit().await
    }
    .await;
    assert!(failed.is_err(), "a taken key fails the transaction");
    assert_eq!(
        get(&s, notes, &k("a")).await,
        Some(json!({"d": {"id": "a"}})),
        "what held the key is left"
    );
    assert_eq!(
        count(&s, Table::Outbox).await,
        1,
        "the other add is not written either"
    );
}

/// add_unless_found commits at once when its reads find nothing; an add that then finds its key
/// taken writes nothing, the other add included; a read that finds something hands the
/// transaction back open, its adds written where their keys were free.
pub async fn add_unless_found_commits_or_hands_back<H: Harness>(h: &H) {
    let (_, s) = open(h, "add_unless_found").await;
    let notes = Table::Records("notes");
    let entry = |n: u64, r: &str| json!({"seq": n, "c": "notes", "r": r, "kind": "create"});
    let checks = |r: &str| {
        [
            Read::Get(Table::Aliases, pair("notes", r)),
            Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, json!(["notes", r])),
        ]
    };
    let adds = |n: u64, r: &str, by: &str| {
        [
            (Table::Outbox, Key::Num(n), entry(n, r)),
            (notes, k(r), json!({"d": {"id": r, "by": by}})),
        ]
    };
    let tx = s.begin(true).await.expect("begin");
    match tx
        .add_unless_found(&checks("a"), &adds(1, "a", "first"))
        .await
    {
        Ok(Checked::Committed) => {}
        Ok(_) => panic!("nothing found, every key free: committed"),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(
        get(&s, notes, &k("a")).await,
        Some(json!({"d": {"id": "a", "by": "first"}}))
    );
    assert_eq!(count(&s, Table::Outbox).await, 1);

    // The row's key is taken (a record with nothing pending): nothing of this transaction is
    // written.
    let kept = json!({"d": {"id": "z", "by": "synced"}});
    put_all(&s, &[(notes, k("z"), kept.clone())]).await;
    let tx = s.begin(true).await.expect("begin");
    match tx
        .add_unless_found(&checks("z"), &adds(2, "z", "second"))
        .await
    {
        Ok(Checked::Taken(taken)) => assert_eq!(taken, vec![false, true], "the row's key"),
        // An add answered before the commit went out comes back open, as `read_then_write`.
        Ok(Checked::Open(_, got, added)) => {
            assert!(got.iter().all(|g| g.is_empty()), "{got:?}");
            assert_eq!(added, vec![true, false]);
        }
        Ok(Checked::Committed) => panic!("a taken key committed"),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(
        get(&s, notes, &k("z")).await,
        Some(kept),
        "what held the key is left"
    );
    assert_eq!(
        count(&s, Table::Outbox).await,
        1,
        "the entry is not written either"
    );

    // A read finds something: the transaction comes back open, the free adds written in it.
    put_all(&s, &[(Table::Aliases, pair("notes", "b"), json!("a"))]).await;
    let tx = s.begin(true).await.expect("begin");
    let Checked::Open(tx, got, added) = tx
        .add_unless_found(&checks("b"), &adds(3, "b", "third"))
        .await
        .expect("add_unless_found")
    else {
        panic!("an alias was found: the transaction comes back open");
    };
    assert_eq!(got[0], vec![(pair("notes", "b"), json!("a"))]);
    assert!(got[1].is_empty());
    assert_eq!(added, vec![true, true]);
    tx.delete(Table::Outbox, &Key::Num(3)).expect("delete");
    tx.commit().await.expect("commit");
    assert_eq!(
        get(&s, notes, &k("b")).await,
        Some(json!({"d": {"id": "b", "by": "third"}}))
    );
    assert_eq!(count(&s, Table::Outbox).await, 1);
}
