//! Writes called one after another without awaiting (several promises in flight, as
//! `create(...)` then `update(...)` in JS) take effect in the order they were called, also when a
//! single create's quick path (src/core/quick.rs) finds an assumption broken and falls back.
//!
//! `MemoryStorage` futures never wait, so two engine calls cannot interleave over it. This file
//! wraps it in a storage that behaves like IndexedDB where it matters here: transactions run one
//! at a time, in the order they were created, and every read waits once (a round trip through
//! the event loop), so a call made later can create its transaction while an earlier call's
//! transaction is still reading.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ferry::core::memory::MemoryTxn;
use ferry::core::mutation::Kind;
use ferry::core::record::Row;
use ferry::core::storage::{add_unless_found_answered, Checked, Read};
use ferry::core::{
    Engine, ErrorKind, Key, MemoryStorage, Op, Record, Result, Storage, StoreConfig, Table, Txn,
};
use mem_server::MemServer;
use native_env::{body, config, rec, Tap, TestEnv};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// A storage that serializes transactions in creation order and yields once per read.

#[derive(Default)]
struct Gate {
    next: Cell<u64>,
    current: Cell<u64>,
    finished: RefCell<BTreeSet<u64>>,
}

impl Gate {
    fn ticket(&self) -> u64 {
        let t = self.next.get();
        self.next.set(t + 1);
        t
    }
    fn finish(&self, t: u64) {
        self.finished.borrow_mut().insert(t);
        let mut cur = self.current.get();
        while self.finished.borrow_mut().remove(&cur) {
            cur += 1;
        }
        self.current.set(cur);
    }
}

/// Releases its ticket when dropped (commit or rollback).
struct Turn {
    gate: Rc<Gate>,
    t: u64,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.gate.finish(self.t);
    }
}

struct WaitTurn<'g> {
    gate: &'g Gate,
    t: u64,
}

impl Future for WaitTurn<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.current.get() == self.t {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_once() -> YieldOnce {
    YieldOnce(false)
}

#[derive(Clone, Default)]
struct SerialStorage {
    inner: MemoryStorage,
    gate: Rc<Gate>,
    /// A check-then-add create hears that an add found its key taken before its commit goes
    /// out (IndexedDB: when the add's answer came before the check ran), instead of after.
    adds_answered_first: bool,
}

struct SerialTxn<'a> {
    inner: MemoryTxn<'a>,
    turn: Turn,
    adds_answered_first: bool,
}

impl SerialStorage {
    async fn turn(&self) -> Turn {
        // Taken when the call is first polled: the transaction is created now, and runs after
        // every transaction created before it.
        let t = self.gate.ticket();
        let turn = Turn {
            gate: self.gate.clone(),
            t,
        };
        WaitTurn {
            gate: &self.gate,
            t,
        }
        .await;
        turn
    }
}

impl Storage for SerialStorage {
    type Txn<'a> = SerialTxn<'a>;
    async fn begin(&self, write: bool) -> Result<SerialTxn<'_>> {
        let turn = self.turn().await;
        Ok(SerialTxn {
            inner: self.inner.begin(write).await?,
            turn,
            adds_answered_first: self.adds_answered_first,
        })
    }
    async fn begin_in(&self, write: bool, scope: &[Table<'_>]) -> Result<SerialTxn<'_>> {
        let turn = self.turn().await;
        Ok(SerialTxn {
            inner: self.inner.begin_in(write, scope).await?,
            turn,
            adds_answered_first: self.adds_answered_first,
        })
    }
}

impl Txn for SerialTxn<'_> {
    async fn get(&self, table: Table<'_>, key: &Key) -> Result<Option<Value>> {
        yield_once().await;
        self.inner.get(table, key).await
    }
    async fn get_all(&self, table: Table<'_>) -> Result<Vec<(Key, Value)>> {
        yield_once().await;
        self.inner.get_all(table).await
    }
    async fn get_by_index(
        &self,
        table: Table<'_>,
        index: &str,
        value: &Value,
    ) -> Result<Vec<(Key, Value)>> {
        yield_once().await;
        self.inner.get_by_index(table, index, value).await
    }
    async fn count(&self, table: Table<'_>) -> Result<u64> {
        yield_once().await;
        self.inner.count(table).await
    }
    fn put(&self, table: Table<'_>, key: &Key, value: &Value) -> Result<()> {
        self.inner.put(table, key, value)
    }
    fn delete(&self, table: Table<'_>, key: &Key) -> Result<()> {
        self.inner.delete(table, key)
    }
    fn delete_range(&self, table: Table<'_>, lo: &Key, hi: &Key) -> Result<()> {
        self.inner.delete_range(table, lo, hi)
    }
    async fn add_unless_found(
        self,
        reads: &[Read<'_>],
        adds: &[(Table<'_>, Key, Value)],
    ) -> Result<Checked<Self>> {
        if !self.adds_answered_first {
            return add_unless_found_answered(self, reads, adds).await;
        }
        let (got, added) = self.read_then_write(reads, adds, &[]).await?;
        if got.iter().all(|g| g.is_empty()) && !added.contains(&false) {
            self.commit().await?;
            return Ok(Checked::Committed);
        }
        Ok(Checked::Open(self, got, added))
    }
    async fn commit(self) -> Result<()> {
        let SerialTxn { inner, turn, .. } = self;
        let out = inner.commit().await;
        drop(turn);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny executor: polls every future, in order, until all are done.

fn run<T>(mut futs: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        let mut all = true;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(&mut cx) {
                    Poll::Ready(v) => out[i] = Some(v),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            return out.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("deadlock: futures never finished");
}

fn block<T>(f: impl Future<Output = T>) -> T {
    run(vec![Box::pin(f)]).pop().unwrap()
}

type Db = Engine<SerialStorage, TestEnv>;
type Written = Result<(Vec<Option<Record>>, Vec<ferry::core::Change>)>;

fn open(cfg: StoreConfig, s: SerialStorage, seed: u32) -> Db {
    block(Engine::open(cfg, s, TestEnv::seeded(seed))).expect("open")
}

fn write(db: &Db, ops: Vec<Op>) {
    block(db.write("todos", ops)).expect("write");
}

/// Calls `first` and then `second` on `db` without awaiting `first`, and answers both.
fn both(db: &Db, first: Vec<Op>, second: Vec<Op>) -> (Written, Written) {
    let mut got = run(vec![
        Box::pin(db.write("todos", first)),
        Box::pin(db.write("todos", second)),
    ]);
    let b = got.pop().unwrap();
    let a = got.pop().unwrap();
    (a, b)
}

/// Two tabs over one database, where tab b wrote last: tab a's remembered clock is stale.
fn stale_tabs() -> (Db, Db) {
    let s = SerialStorage::default();
    let a = open(config(&["todos"]), s.clone(), 1);
    let b = open(config(&["todos"]), s, 2);
    write(&a, create(json!({"id": "a1"})));
    write(&b, create(json!({"id": "b1"})));
    // As the tabs layer does when it hears b's write: a's positions now lie below b's.
    a.retire_block();
    (a, b)
}

/// Creates record `id` and, without awaiting that, edits it; both must succeed, in that order.
fn create_then_edit(db: &Db, id: &str) {
    let (c, u) = both(
        db,
        create(json!({"id": id, "title": "new"})),
        vec![Op::Update(id.into(), rec(json!({"title": "edited"})))],
    );
    c.expect("create");
    if let Err(e) = &u {
        assert_ne!(
            e.kind,
            ErrorKind::NotFound,
            "the update ran before the create: {e:?}"
        );
    }
    u.expect("update");
    let x = block(db.get("todos", id)).unwrap().expect("the record");
    assert_eq!(x["title"], "edited");
}

fn create(v: Value) -> Vec<Op> {
    vec![Op::Create(rec(v))]
}

fn outbox_shape(db: &Db) -> Vec<(Kind, String)> {
    block(db.outbox())
        .expect("outbox")
        .into_iter()
        .map(|i| (i.kind, i.record_id))
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// Sanity check of the harness: with the stored clock where the engine left it, the quick
/// create succeeds and a later call waits behind it, as in IndexedDB.
#[test]
fn harness_create_then_update_in_flight_when_nothing_moved() {
    let db = open(config(&["todos"]), SerialStorage::default(), 1);
    write(&db, create(json!({"id": "a1"}))); // the engine now knows the clock
    create_then_edit(&db, "x");
}

/// Two tabs. Tab b writes, so tab a's outbox positions lie below b's. Tab a then calls
/// `create({id: "x"})` and `update("x", ...)` without awaiting the create. The create takes new
/// positions (above b's) in its own transaction; it must still run before the update, and its
/// entry must come after b's.
#[test]
fn two_tabs_update_right_after_create_is_not_lost() {
    let (a, _b) = stale_tabs();
    create_then_edit(&a, "x");
    let shape = outbox_shape(&a);
    let ids: Vec<&str> = shape.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(ids, vec!["a1", "b1", "x"]);
    assert!(block(a.get("todos", "b1")).unwrap().is_some());
}

/// A store over `s` holding record s1 as the server gave it: nothing pending.
fn with_synced_s1(s: SerialStorage) -> Db {
    with_synced(s, &["s1"])
}

/// A store over `s` holding records `ids` as the server gave them: nothing pending.
fn with_synced(s: SerialStorage, ids: &[&str]) -> Db {
    let cfg = config(&["todos"]);
    let valid = cfg.clone().validate().expect("valid");
    let tx = block(s.inner.begin(true)).expect("begin");
    for id in ids {
        let row = Row::new(
            valid.collection("todos").expect("todos"),
            rec(json!({"id": id, "title": "srv"})),
        );
        tx.put(Table::Records("todos"), &Key::str(*id), &row.to_value())
            .expect("put");
    }
    block(tx.commit()).expect("commit");
    open(cfg, s, 1)
}

/// Calls `create(z)` (which closes z's gate), `delete(s1)` (which waits at it) and
/// `create({id: s1})` without awaiting any: the create of s1 must come after the delete called
/// before it, fold into it and stand, not overtake it, be refused and then see s1 deleted.
fn create_after_a_waiting_delete(db: &Db, z: &str) {
    let mut got = run(vec![
        Box::pin(db.write("todos", create(json!({"id": z})))),
        Box::pin(db.write("todos", vec![Op::Delete("s1".into())])),
        Box::pin(db.write("todos", create(json!({"id": "s1", "title": "new"})))),
    ]);
    got.pop()
        .unwrap()
        .expect("the create of s1 comes after its delete");
    got.pop().unwrap().expect("the delete");
    let _ = got.pop().unwrap(); // create z: refused or not, it is not what is checked
    let x = block(db.get("todos", "s1"))
        .unwrap()
        .expect("s1 created again");
    assert_eq!(x["title"], "new");
}

/// The first writes after opening (no block of positions yet: every write reads first).
#[test]
fn a_create_called_after_a_delete_waiting_at_a_gate_comes_after_it() {
    let db = with_synced_s1(SerialStorage::default());
    create_after_a_waiting_delete(&db, "z");
}

/// With a block: z's quick create finds its id in use (its delete is pending) and is done again.
#[test]
fn a_create_called_after_a_delete_waiting_for_a_redone_create_comes_after_it() {
    let db = with_synced(SerialStorage::default(), &["s1", "s2"]);
    write(&db, vec![Op::Delete("s2".into())]);
    create_after_a_waiting_delete(&db, "s2");
}

/// One tab. A record the server has is deleted (the delete is pending), then created again under
/// its id and edited, without awaiting the create. The quick create's id check sees the pending
/// delete and falls back; the update must still find the record.

#[test]
fn recreate_over_pending_delete_then_update_in_flight() {
    let db = with_synced_s1(SerialStorage::default());
    write(&db, vec![Op::Delete("s1".into())]);
    create_then_edit(&db, "s1");
}

/// As above, with the update naming the record by an old id of it (an alias, as a temporary
/// id that became the server's id): it waits for the create all the same.
#[test]
fn recreate_over_pending_delete_then_update_by_an_alias_in_flight() {
    let s = SerialStorage::default();
    let tx = block(s.inner.begin(true)).expect("begin");
    let alias = Key::Pair("todos".into(), "old-s1".into());
    tx.put(Table::Aliases, &alias, &json!("s1")).expect("put");
    block(tx.commit()).expect("commit");
    let db = with_synced_s1(s);
    write(&db, vec![Op::Delete("s1".into())]);
    let (c, u) = both(
        &db,
        create(json!({"id": "s1", "title": "new"})),
        vec![Op::Update("old-s1".into(), rec(json!({"title": "edited"})))],
    );
    c.expect("created again");
    u.expect("the update runs after the create");
    let x = block(db.get("todos", "s1")).unwrap().expect("the record");
    assert_eq!(x["title"], "edited");
}

/// A create under a synced record's id and, not awaiting it, a delete of that record: the
/// create fails (the id is taken) before the delete runs, whether its add heard the key taken
/// after its commit went out or before. Were the create retried in a transaction of its own,
/// the delete would run first and the create would then succeed over the pending delete.
#[test]
fn create_under_a_taken_id_fails_before_a_delete_called_after_it() {
    for adds_answered_first in [false, true] {
        let db = with_synced_s1(SerialStorage {
            adds_answered_first,
            ..SerialStorage::default()
        });
        write(&db, create(json!({"id": "w"}))); // reserves the positions quick creates take
        let (c, d) = both(
            &db,
            create(json!({"id": "s1", "title": "mine"})),
            vec![Op::Delete("s1".into())],
        );
        let e = c.expect_err("the id is taken");
        assert_eq!(e.kind, ErrorKind::Constraint, "{e}");
        d.expect("the delete goes through");
        assert_eq!(block(db.get("todos", "s1")).expect("get"), None);
        assert_eq!(
            outbox_shape(&db),
            [(Kind::Create, "w".into()), (Kind::Delete, "s1".into())],
            "adds answered first: {adds_answered_first}"
        );
    }
}

/// DESIGN.md: "across records, in the order of their first mutation, so a parent created before
/// its child reaches the server first". Two tabs as above; tab a creates a parent and then, not
/// awaiting it, its children in one write. The parent's create reserves new positions in its own
/// transaction; the parent must still come first in the outbox.
#[test]
fn parent_created_before_children_stays_first_in_outbox() {
    let (a, _b) = stale_tabs();
    let (p, kids) = both(
        &a,
        create(json!({"id": "p"})),
        vec![
            Op::Create(rec(json!({"id": "c1", "parent": "p"}))),
            Op::Create(rec(json!({"id": "c2", "parent": "p"}))),
        ],
    );
    p.expect("parent");
    kids.expect("children");
    let shape: Vec<String> = outbox_shape(&a)
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| ["p", "c1", "c2"].contains(&r.as_str()))
        .collect();
    assert_eq!(
        shape,
        vec!["p", "c1", "c2"],
        "calls were parent, then children"
    );
}

/// The other way round: the parents are created in one write (the general path, which numbers
/// its changes when its transaction runs) and, not awaiting it, a child with a create of its own
/// (the quick path, which takes its position when called). The child must not go first.
#[test]
fn parents_written_together_stay_before_a_child_created_after() {
    let db = open(config(&["todos"]), SerialStorage::default(), 1);
    write(&db, create(json!({"id": "w"}))); // reserves the positions quick creates take
    let (parents, child) = both(
        &db,
        vec![
            Op::Create(rec(json!({"id": "p1"}))),
            Op::Create(rec(json!({"id": "p2"}))),
        ],
        create(json!({"id": "c", "parent": "p1"})),
    );
    parents.expect("parents");
    child.expect("child");
    let order: Vec<String> = outbox_shape(&db).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        order,
        ["w", "p1", "p2", "c"],
        "calls were the parents, then the child"
    );
}

/// Record s1 synced, then deleted here (the delete pending), and a server holding it.
fn deleted_s1() -> (Db, Tap<MemServer>) {
    let db = with_synced_s1(SerialStorage::default());
    write(&db, vec![Op::Delete("s1".into())]);
    let tap = Tap::new(MemServer::new());
    tap.inner
        .server_put("todos", "s1", json!({"id": "s1", "title": "srv"}));
    (db, tap)
}

/// The writes `tap` sent, in order: each as its method and the record it is about (by its URL,
/// or a POST by its body's id).
fn writes_sent(tap: &Tap<MemServer>) -> Vec<(String, String)> {
    tap.requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            let id = match body(r).get("id").and_then(Value::as_str) {
                Some(id) if r.method == "POST" => id.to_string(),
                _ => r.url.rsplit('/').next().unwrap_or("").to_string(),
            };
            (r.method.clone(), id)
        })
        .collect()
}

/// `db.write("todos", ops)`, its answer left out.
async fn call(db: &Db, ops: Vec<Op>) -> Result<()> {
    db.write("todos", ops).await.map(|_| ())
}

/// A record whose delete is pending is created again (done twice: its first transaction finds
/// the id held) and, not awaiting it, a child of it is created; a flush starts meanwhile. The
/// flush must not send the child, stored first, before the parent's change: a server that
/// checks references would refuse it.
#[test]
fn a_flush_waits_for_a_create_being_done_again() {
    let (db, tap) = deleted_s1();
    let mut got = run(vec![
        Box::pin(call(&db, create(json!({"id": "s1"})))),
        Box::pin(call(&db, create(json!({"id": "kid", "parent": "s1"})))),
        Box::pin(async { db.flush(&tap, &[]).await.map(|_| ()) }),
    ]);
    while let Some(done) = got.pop() {
        done.expect("each call");
    }
    let sent = writes_sent(&tap);
    let at = |id: &str| sent.iter().position(|(_, r)| r == id);
    let (parent, kid) = (at("s1"), at("kid"));
    assert!(parent.is_some() && kid.is_some(), "{sent:?}");
    assert!(parent < kid, "the parent's change first: {sent:?}");
    assert!(
        sent.iter().all(|(m, _)| m != "DELETE"),
        "created again: no delete goes out: {sent:?}"
    );
}

/// As above, but the flush is already waiting for another create when the parent and the child
/// are called: it wakes with the child stored and the parent still to be done again, and must
/// leave the child for a later round.
#[test]
fn a_flush_woken_meanwhile_sends_no_child_before_its_parent() {
    let (db, tap) = deleted_s1();
    let mut got = run(vec![
        Box::pin(call(&db, create(json!({"id": "other"})))),
        Box::pin(async { db.flush(&tap, &[]).await.map(|_| ()) }),
        Box::pin(call(&db, create(json!({"id": "s1"})))),
        Box::pin(call(&db, create(json!({"id": "kid", "parent": "s1"})))),
    ]);
    while let Some(done) = got.pop() {
        done.expect("each call");
    }
    block(db.flush(&tap, &[])).expect("the rest");
    let sent = writes_sent(&tap);
    let last_parent = sent
        .iter()
        .rposition(|(_, id)| id == "s1")
        .expect("the parent");
    let kid = sent
        .iter()
        .position(|(_, id)| id == "kid")
        .expect("the child");
    assert!(
        last_parent < kid,
        "the parent's create before its child: {sent:?}"
    );
}
