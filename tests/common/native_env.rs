//! Shared helpers for the native sync tests: a no-op-waker `block_on`, a deterministic `Env`,
//! a transport wrapper that records requests and can override answers, and small record helpers.
//!
//! Include it with `#[path = "common/native_env.rs"] mod native_env;` (next to `mem_server`).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::sync::report::Report;
use ferry::core::{CollectionConfig, Engine, Env, MemoryStorage, Op, Record, StoreConfig};
use serde_json::{json, Value};

/// A transport that delivers each request and never answers: the page reloaded (or the leading
/// tab closed) while the request was out.
pub struct Vanishing<T>(pub T);

impl<T: Transport> Transport for Vanishing<T> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        let _ = self.0.send(req).await;
        std::future::pending().await
    }
}

/// A transport whose requests never reach the server and never get an answer, kept so that a
/// test can deliver them later: a request still on its way when the page reloaded, which a
/// slow server stores only after the reloaded page has looked for it.
pub struct Stalled(pub RefCell<Vec<HttpRequest>>);

impl Stalled {
    pub fn new() -> Stalled {
        Stalled(RefCell::default())
    }
    /// Hands the stalled requests to `to`, as the server gets round to them.
    pub fn deliver<T: Transport>(&self, to: &T) {
        for req in self.0.take() {
            let _ = block_on(to.send(req));
        }
    }
}

impl Transport for Stalled {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        self.0.borrow_mut().push(req);
        std::future::pending().await
    }
}

/// Runs a future that never waits (MemoryStorage and MemServer futures are ready at once).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a future was not ready at once"),
    }
}

/// The wall clock every test starts at.
pub const T0: f64 = 1_700_000_000_000.0;

/// A deterministic environment: a clock that only moves when told, and counter "randomness".
pub struct TestEnv {
    now: Cell<f64>,
    n: Cell<u32>,
    /// What the engine warned of (the browser's console).
    pub warnings: RefCell<Vec<String>>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::seeded(0)
    }
    /// A different seed gives a different node id (another client).
    pub fn seeded(seed: u32) -> TestEnv {
        TestEnv {
            now: Cell::new(T0),
            n: Cell::new(seed.wrapping_mul(7919)),
            warnings: RefCell::default(),
        }
    }
    pub fn now(&self) -> f64 {
        self.now.get()
    }
    pub fn advance(&self, ms: f64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl Env for TestEnv {
    fn now_ms(&self) -> f64 {
        self.now.get()
    }
    fn random_u32(&self) -> u32 {
        self.n.set(self.n.get().wrapping_add(1));
        self.n.get().wrapping_mul(2_654_435_761)
    }
    fn warn(&self, message: &str) {
        self.warnings.borrow_mut().push(message.to_string());
    }
}

pub type Db = Engine<MemoryStorage, TestEnv>;

/// A store with the given collections (each at `/api/{name}`), every other option default.
pub fn config(collections: &[&str]) -> StoreConfig {
    StoreConfig::new(
        "test",
        collections
            .iter()
            .map(|c| CollectionConfig::new(c, &format!("/api/{c}")))
            .collect(),
    )
}

/// `projects` and `todos`, whose `projectId` refers to a project.
pub fn projects_and_todos() -> StoreConfig {
    let mut cfg = config(&["projects", "todos"]);
    cfg.collections
        .get_mut("todos")
        .expect("todos")
        .refs
        .insert("projectId".into(), "projects".into());
    cfg
}

pub fn open(cfg: StoreConfig, storage: MemoryStorage) -> Db {
    block_on(Engine::open(cfg, storage, TestEnv::new())).expect("open")
}

pub fn open_todos() -> (Db, MemoryStorage) {
    let storage = MemoryStorage::new();
    (open(config(&["todos"]), storage.clone()), storage)
}

/// A JSON object literal as a `Record`.
pub fn rec(v: Value) -> Record {
    v.as_object().expect("an object").clone()
}

/// The id of a record as a string key.
pub fn id_of(r: &Record) -> String {
    match r.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        other => panic!("record without id: {other:?}"),
    }
}

/// Creates one record; its (temporary or explicit) id.
pub fn create(db: &Db, c: &str, v: Value) -> String {
    let (out, _) = block_on(db.write(c, vec![Op::Create(rec(v))])).expect("create");
    id_of(out[0].as_ref().expect("created record"))
}

pub fn update(db: &Db, c: &str, id: &str, v: Value) -> Record {
    let (out, _) = block_on(db.write(c, vec![Op::Update(id.into(), rec(v))])).expect("update");
    out[0].clone().expect("updated record")
}

pub fn replace(db: &Db, c: &str, id: &str, v: Value) -> Record {
    let (out, _) = block_on(db.write(c, vec![Op::Replace(id.into(), rec(v))])).expect("replace");
    out[0].clone().expect("replaced record")
}

pub fn delete(db: &Db, c: &str, id: &str) {
    block_on(db.write(c, vec![Op::Delete(id.into())])).expect("delete");
}

pub fn get(db: &Db, c: &str, id: &str) -> Option<Record> {
    block_on(db.get(c, id)).expect("get")
}

/// Local records as JSON values, sorted by id (string order, as MemServer::records).
pub fn local(db: &Db, c: &str) -> Vec<Value> {
    let mut all: Vec<Record> = block_on(db.all(c)).expect("all");
    all.sort_by_key(id_of);
    all.into_iter().map(Value::Object).collect()
}

pub fn pending(db: &Db) -> u64 {
    block_on(db.pending_count()).expect("pending_count")
}

pub fn flush<T: Transport>(db: &Db, t: &T) -> (RoundEnd, Report) {
    block_on(db.flush(t, &[])).expect("flush")
}

pub fn flush_with<T: Transport>(db: &Db, t: &T, headers: &[(&str, &str)]) -> (RoundEnd, Report) {
    let h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    block_on(db.flush(t, &h)).expect("flush")
}

/// Flushes until idle (a few rounds of transient failures are allowed), asserting it gets there.
pub fn flush_all<T: Transport>(db: &Db, t: &T) -> Report {
    let mut all = Report::default();
    for _ in 0..10 {
        let (end, r) = flush(db, t);
        all.extend(r);
        if end == RoundEnd::Idle {
            return all;
        }
        db.env.advance(120_000.0);
    }
    panic!("the outbox did not drain: {:?}", block_on(db.outbox()));
}

pub fn pull<T: Transport>(db: &Db, t: &T, c: &str) -> Report {
    block_on(db.pull(t, &[], c)).expect("pull")
}

/// `v` without the bookkeeping fields a server adds (id, clientId, version).
pub fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("id");
        m.remove("clientId");
        m.remove("version");
    }
    v
}

/// Header `name` of a request (case-insensitive).
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The JSON body of a request.
pub fn body(req: &HttpRequest) -> Value {
    req.body
        .as_deref()
        .map_or(Value::Null, |b| serde_json::from_str(b).unwrap_or(json!(b)))
}

type HookFn = Box<dyn FnMut(&HttpRequest) -> Option<Result<HttpResponse, NetError>>>;

/// Wraps a transport: records every request, and lets a hook answer instead of the inner one
/// (return `None` from the hook to pass the request through).
#[derive(Clone)]
pub struct Tap<T: Transport> {
    pub inner: T,
    pub sent: Rc<RefCell<Vec<HttpRequest>>>,
    hook: Rc<RefCell<Option<HookFn>>>,
}

impl<T: Transport> Tap<T> {
    pub fn new(inner: T) -> Self {
        Tap {
            inner,
            sent: Rc::default(),
            hook: Rc::default(),
        }
    }
    pub fn hook(
        &self,
        f: impl FnMut(&HttpRequest) -> Option<Result<HttpResponse, NetError>> + 'static,
    ) {
        *self.hook.borrow_mut() = Some(Box::new(f));
    }
    pub fn unhook(&self) {
        *self.hook.borrow_mut() = None;
    }
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.sent.borrow().clone()
    }
    pub fn clear(&self) {
        self.sent.borrow_mut().clear();
    }
    /// The `Idempotency-Key` of every `method` request sent, in order.
    pub fn keys(&self, method: &str) -> Vec<Option<String>> {
        let sent = self.sent.borrow();
        let of = |q: &HttpRequest| header(q, "Idempotency-Key").map(str::to_string);
        sent.iter().filter(|q| q.method == method).map(of).collect()
    }
}

impl<T: Transport> Transport for Tap<T> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        self.sent.borrow_mut().push(req.clone());
        let hooked = self.hook.borrow_mut().as_mut().and_then(|h| h(&req));
        match hooked {
            Some(answer) => answer,
            None => self.inner.send(req).await,
        }
    }
}

/// A JSON response.
pub fn json_response(status: u16, v: Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: v.to_string(),
    }
}

/// Whether `db` warned the developer with a message holding `text`; panics (listing the
/// warnings) when it did not.
pub fn assert_warned(db: &Db, text: &str) {
    let warnings = db.env.warnings.borrow();
    assert!(
        warnings.iter().any(|w| w.contains(text)),
        "no warning with {text:?}: {warnings:?}"
    );
}
