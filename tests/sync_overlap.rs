//! Overlapping flush rounds (a batch picked while one is out, sent while the answers of the one
//! before are applied) keep every order a round without the overlap keeps, and hand each
//! batch's report over as soon as it is committed.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use ferry::core::sync::report::{Report, Resolution};
use ferry::core::{ConflictPolicy, MemoryStorage};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;

fn key_of(req: &ferry::core::sync::http::HttpRequest) -> String {
    header(req, "Idempotency-Key").unwrap_or("").to_string()
}

/// An open (custom) conflict on record R holds back R's first entry e0; a later edit e1 of R
/// waits behind it. The app resolves the conflict while batch A (another record, queued between
/// e0 and e1) is out. Pick B reads only after A's last position, so it does not see e0, sees e1
/// with R no longer blocked, and sends e1 before e0's resend: the same record out of order.
#[test]
fn resolving_a_conflict_while_a_batch_is_out_sends_the_later_edit_first() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().conflict = ConflictPolicy::Custom;
    let db = Rc::new(open(cfg, MemoryStorage::new()));
    let s = MemServer::new();
    let r = create(&db, "todos", json!({"title": "r", "a": 1}));
    flush_all(&db, &s);
    let r = id_of(&get(&db, "todos", &r).unwrap());
    s.server_patch("todos", &r, json!({"a": 2}));
    update(&db, "todos", &r, json!({"a": 3})); // e0
    let (_, rep) = flush(&db, &s);
    assert_eq!(rep.conflicts.len(), 1, "an open conflict on r");
    let cid = block_on(db.conflicts()).unwrap()[0].conflict_id.clone();
    let x = create(&db, "todos", json!({"title": "x"})); // batch A
    update(&db, "todos", &r, json!({"title": "later"})); // e1, after x
    let ob = block_on(db.outbox()).unwrap();
    assert_eq!(ob.len(), 3, "{ob:?}");
    let (e0, e1) = (ob[0].mutation_id.clone(), ob[2].mutation_id.clone());
    assert_eq!(
        (
            ob[0].record_id.as_str(),
            ob[1].record_id.as_str(),
            ob[2].record_id.as_str()
        ),
        (r.as_str(), x.as_str(), r.as_str())
    );

    let tap = Tap::new(s.clone());
    let done = Rc::new(RefCell::new(false));
    {
        let (db, done, cid) = (db.clone(), done.clone(), cid.clone());
        tap.hook(move |req| {
            // While x's create is out, the app settles r's conflict with its own record.
            if req.method == "POST" && !*done.borrow() {
                *done.borrow_mut() = true;
                let mut rec = ferry::core::Record::new();
                rec.insert("title".into(), json!("resolved"));
                rec.insert("a".into(), json!(9));
                block_on(db.resolve_conflict(&cid, Resolution::Record(rec))).expect("resolve");
            }
            None
        });
    }
    let mut report = Report::default();
    block_on(db.flush_round(&tap, &[], &mut report)).expect("round");
    tap.unhook();
    flush_all(&db, &tap);
    let keys: Vec<String> = tap.requests().iter().map(key_of).collect();
    let first_e0 = keys
        .iter()
        .position(|k| k.starts_with(&e0))
        .expect("e0 resent");
    let first_e1 = keys.iter().position(|k| *k == e1).expect("e1 sent");
    assert!(
        first_e0 < first_e1,
        "r's later edit reached the server before its earlier (resolved) mutation: {keys:?}"
    );
}

/// The same kind of reordering across records: a conflict in batch A (settled by merge and sent
/// again) is resent only after batch B, whereas without the overlap the resend (at the head of
/// the outbox) goes first. README: "the server sees exactly the order it would without".
#[test]
fn a_merged_conflict_is_resent_after_the_next_batch() {
    let mut cfg = config(&["todos"]);
    cfg.batch_size = 1;
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    let r = create(&db, "todos", json!({"title": "r", "a": 1}));
    flush_all(&db, &s);
    let r = id_of(&get(&db, "todos", &r).unwrap());
    s.server_patch("todos", &r, json!({"b": 2}));
    update(&db, "todos", &r, json!({"a": 3}));
    let x = create(&db, "todos", json!({"title": "x"}));
    let ob = block_on(db.outbox()).unwrap();
    let (e0, ex) = (ob[0].mutation_id.clone(), ob[1].mutation_id.clone());
    let _ = x;
    let tap = Tap::new(s.clone());
    flush_all(&db, &tap);
    let keys: Vec<String> = tap.requests().iter().map(key_of).collect();
    let resend = keys
        .iter()
        .position(|k| k.starts_with(&format!("{e0}.")))
        .expect("resent");
    let xi = keys.iter().position(|k| *k == ex).expect("x sent");
    assert!(
        resend < xi,
        "server order differs from the non-overlapped order: {keys:?}"
    );
}

/// A collection left out of one store's configuration keeps its records and pending mutations.
/// When that store syncs a parent's create, `rewrite_refs` only walks the collections it
/// declares: the left-out child's `refs` field keeps the temporary id, and when a store that
/// declares the child syncs it, the server receives the temporary id.
#[test]
fn a_left_out_child_keeps_its_parents_temporary_id() {
    let full = projects_and_todos;
    let storage = MemoryStorage::new();
    let s = MemServer::new();
    let db = open(full(), storage.clone());
    let p = create(&db, "projects", json!({"name": "p"}));
    let t = create(&db, "todos", json!({"title": "t", "projectId": p}));
    drop(db);
    // An older page opens the same store with projects only, and syncs.
    let db = open(config(&["projects"]), storage.clone());
    flush_all(&db, &s);
    drop(db);
    let db = open(full(), storage.clone());
    flush_all(&db, &s);
    let pid = id_of(&get(&db, "projects", &p).unwrap());
    let tid = id_of(&get(&db, "todos", &t).unwrap());
    let server_todo = s.record("todos", &tid).expect("todo on the server");
    assert_eq!(
        server_todo["projectId"],
        json!(pid),
        "the server got the temporary id {p} instead of {pid}"
    );
}

/// A round abandoned while a batch is out (page closed, engine dropped: the simulator's "crash
/// mid-request") has handed over the report of every batch it committed before: a conflict
/// that overrode a local edit is never applied without its event. (Applying a batch's answers
/// while the next was out, and reporting only at the end, lost it: simulator seeds 105, 202 and
/// 249 of 300.)
#[test]
fn a_round_dropped_while_the_next_batch_is_out_keeps_the_conflict_event() {
    let mut cfg = config(&["todos"]);
    cfg.batch_size = 1;
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    let r = create(&db, "todos", json!({"title": "r", "c": "0"}));
    flush_all(&db, &s);
    let r = id_of(&get(&db, "todos", &r).unwrap());
    s.server_patch("todos", &r, json!({"c": "server"}));
    update(&db, "todos", &r, json!({"c": "local"})); // same field: the tie goes to the server
    create(&db, "todos", json!({"title": "y"})); // batch B, its POST never answers
    let net = HangAfter(s.clone(), std::cell::Cell::new(0));
    let mut returned: Vec<String> = Vec::new();
    for _ in 0..5 {
        let mut report = Report::default();
        let done = {
            let f = std::pin::pin!(db.flush_round(&net, &[], &mut report));
            let mut f = f;
            matches!(
                f.as_mut()
                    .poll(&mut std::task::Context::from_waker(std::task::Waker::noop())),
                std::task::Poll::Ready(_)
            )
        };
        if !done {
            break; // abandoned: what it reported is never handed back
        }
        returned.extend(
            report
                .conflicts
                .iter()
                .map(|c| ferry::core::id_key(&c.id).unwrap()),
        );
    }
    let local_c = get(&db, "todos", &r).unwrap()["c"].clone();
    assert!(
        local_c == json!("local") || returned.contains(&r),
        "the local edit is gone ({local_c}) and no returned report named {r}"
    );
}

/// A transport whose POSTs after the first `n` never answer.
struct HangAfter(MemServer, std::cell::Cell<u32>);
impl ferry::core::sync::http::Transport for HangAfter {
    async fn send(
        &self,
        req: ferry::core::sync::http::HttpRequest,
    ) -> Result<ferry::core::sync::http::HttpResponse, ferry::core::sync::http::NetError> {
        if req.method == "POST" {
            if self.1.get() == 0 {
                return std::future::pending().await;
            }
            self.1.set(self.1.get() - 1);
        }
        self.0.send_now(req)
    }
}

/// A round of two batches hands the first one's report over as soon as its answers are
/// committed, while the second one is still out: the app (and the other tabs) hear about the
/// first batch's new id even if the page dies before the second one is answered.
#[test]
fn the_first_batchs_report_is_handed_over_while_the_next_is_out() {
    let mut cfg = config(&["todos"]);
    cfg.batch_size = 1;
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    let a = create(&db, "todos", json!({"title": "a"}));
    create(&db, "todos", json!({"title": "b"}));
    let net = HangAfter(s.clone(), std::cell::Cell::new(1));
    let mut emitted: Vec<Report> = Vec::new();
    {
        let mut keep = |r: Report| emitted.push(r);
        let mut f = std::pin::pin!(db.flush_round_emitting(&net, &[], &mut keep));
        let waker = std::task::Waker::noop();
        let polled = f.as_mut().poll(&mut std::task::Context::from_waker(waker));
        assert!(polled.is_pending(), "the second batch is still out");
    }
    let ids: Vec<&str> = emitted
        .iter()
        .flat_map(|r| r.ids.iter().map(|i| i.from.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![a.as_str()],
        "the first batch's id change was handed over"
    );
    assert_eq!(emitted.iter().map(|r| r.acked).sum::<usize>(), 1);
    assert_eq!(s.records("todos").len(), 1);
}
