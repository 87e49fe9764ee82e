//! `MemServer`: an in-memory server that speaks PROTOCOL.md the way the reference server
//! (server/src) does, so native tests and the simulator can run the real sync engine without
//! sockets. Every `send` answers at once. Clones share one state.
//!
//! Include it with `#[path = "common/mem_server.rs"] mod mem_server;`.
#![allow(dead_code)]

#[path = "mem_server_batch.rs"]
mod batch;
#[path = "mem_server_inspect.rs"]
mod inspect;

use batch::{encode, split_url, Route};
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Request counters (like the reference server's `/__admin/stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests that reached the server (not offline, not `drop_before`); batches count once.
    pub requests: u64,
    /// Writes that changed stored data (batch sub-requests included; server_* helpers not).
    pub writes_applied: u64,
    /// Answers replayed from an idempotency key.
    pub replays: u64,
    /// Top-level requests by method.
    pub by_method: BTreeMap<String, u64>,
    /// `POST /api/$batch` requests handled.
    pub batch_requests: u64,
    /// Sub-requests inside those batches.
    pub batch_items: u64,
    /// Requests answered by `fail_next` or `html_next`.
    pub faulted: u64,
    /// Requests that got a network error from `drop_before` or `drop_after_commit`.
    pub dropped: u64,
}

/// One logged request. `status` is 0 when the client got a network error instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub method: String,
    pub url: String,
    pub idempotency_key: Option<String>,
    pub status: u16,
    /// A sub-request of a batch.
    pub in_batch: bool,
}

#[derive(Clone, Debug)]
enum Body {
    Empty,
    Json(Value),
    Html(String),
}

/// A transport-neutral answer, as in the reference server.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    applied: bool,
}

impl Reply {
    fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Json(v),
            applied: false,
        }
    }
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            applied: false,
        }
    }
    fn error(status: u16, msg: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": msg.into() }))
    }
    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    fn etag(self, versioned: bool, version: i64) -> Reply {
        if versioned {
            self.header("ETag", format!("\"{version}\""))
        } else {
            self
        }
    }
    fn applied(mut self) -> Reply {
        self.applied = true;
        self
    }
    fn into_response(self, head: bool) -> HttpResponse {
        let (body, ct) = match self.body {
            Body::Empty => (String::new(), None),
            Body::Json(v) => (v.to_string(), Some("application/json")),
            Body::Html(s) => (s, Some("text/html; charset=utf-8")),
        };
        let mut headers: Vec<(String, String)> = ct
            .map(|c| ("Content-Type".to_string(), c.to_string()))
            .into_iter()
            .collect();
        headers.extend(self.headers);
        HttpResponse {
            status: self.status,
            headers,
            body: if head { String::new() } else { body },
        }
    }
}

/// A request after URL splitting, header names lower-cased.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug)]
struct Row {
    body: Value,
    version: i64,
    changed_at: i64,
    seq: i64,
    /// Creation order, kept across updates and deletes (SQLite's rowid in the reference).
    order: u64,
    deleted: bool,
}

#[derive(Default)]
struct Coll {
    rows: BTreeMap<String, Row>,
    next_id: u64,
}

struct Stored {
    method: String,
    path: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

enum Action {
    DropBefore,
    Fail {
        status: u16,
        retry_after: Option<String>,
    },
    Html,
    Proceed {
        drop: bool,
    },
}

struct Faults {
    drop_before: u64,
    fail_next: u64,
    status: u16,
    retry_after: Option<String>,
    html_next: u64,
    drop_after_commit: u64,
    match_prefix: Option<String>,
}

impl Faults {
    /// Consumes one count of the fault that applies; same order as the reference server.
    fn plan(&mut self, path: &str, is_write: bool) -> Action {
        if self
            .match_prefix
            .as_deref()
            .is_some_and(|p| !path.starts_with(p))
        {
            return Action::Proceed { drop: false };
        }
        if self.drop_before > 0 {
            self.drop_before -= 1;
            Action::DropBefore
        } else if self.fail_next > 0 {
            self.fail_next -= 1;
            Action::Fail {
                status: self.status,
                retry_after: self.retry_after.clone(),
            }
        } else if self.html_next > 0 {
            self.html_next -= 1;
            Action::Html
        } else if is_write && self.drop_after_commit > 0 {
            self.drop_after_commit -= 1;
            Action::Proceed { drop: true }
        } else {
            Action::Proceed { drop: false }
        }
    }
}

struct State {
    colls: BTreeMap<String, Coll>,
    seq: i64,
    order: u64,
    idem: HashMap<String, Stored>,
    versioned: bool,
    idempotency: bool,
    envelope: bool,
    wrap_records: bool,
    batch: bool,
    lww: bool,
    offline: bool,
    token: Option<String>,
    now: Option<i64>,
    etag_only: bool,
    stamped: bool,
    numeric_ids: bool,
    faults: Faults,
    stats: Stats,
    log: Vec<LogEntry>,
    applied_keys: Vec<String>,
}

pub const CAPTIVE_PAGE: &str = "<!doctype html>\n<html><head><title>Sign in to Wi-Fi</title>\
</head><body><h1>Welcome to Free Wi-Fi</h1><p>Please accept the terms to continue.</p>\
<form method=\"post\" action=\"/login\"><button>Accept</button></form></body></html>\n";

/// The in-memory server. `Clone` shares the state (several clients, one server).
#[derive(Clone)]
pub struct MemServer(Rc<RefCell<State>>);

impl Default for MemServer {
    fn default() -> Self {
        MemServer::new()
    }
}

impl Transport for MemServer {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        self.send_now(req)
    }
}

/// `pub fn name(&self, v: T)` setting one field of the state.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($t:ty) => $($field:ident).+;)*) => {
        impl MemServer {
            $($(#[$doc])* pub fn $name(&self, v: $t) { self.0.borrow_mut().$($field).+ = v; })*
        }
    };
}

setters! {
    /// false: no `version` field, no ETag, If-Match ignored (never 412).
    set_versioned(bool) => versioned;
    /// false: Idempotency-Key is ignored, so a repeated request is applied again.
    set_idempotency(bool) => idempotency;
    /// false: reads answer a bare array and ignore `since` (no cursor: every read is a snapshot).
    set_envelope(bool) => envelope;
    /// true: single-record answers (GET one, writes, 412 bodies) come as `{"data": record}`.
    set_wrap_records(bool) => wrap_records;
    /// false: `POST /api/$batch` answers 404, as a server without batches would.
    set_batch(bool) => batch;
    /// Last-writer-wins by Ferry-Changed-At; If-Match is ignored.
    set_lww(bool) => lww;
    /// Every send fails with `NetError::Offline` (not logged, not counted).
    set_offline(bool) => offline;
    /// Some(t): requests need `Authorization: Bearer t`, else 401.
    require_token(Option<String>) => token;
    /// The server clock for writes without Ferry-Changed-At (default: the wall clock).
    set_now(Option<i64>) => now;
    /// true: versions travel only as `ETag` headers: no `version` field in any body.
    set_etag_only(bool) => etag_only;
    /// true: the server stamps fields of its own on every write, which no client sets:
    /// `updatedAt` (new at each write) and `createdAt` (kept by every update, also a PUT
    /// without it).
    set_stamped(bool) => stamped;
    /// true: ids the server gives are JSON numbers (`"id": 7`), as SQL-backed servers write them.
    set_numeric_ids(bool) => numeric_ids;
    /// The next `n` writes are applied, then the client gets `Failed("connection reset")`.
    drop_after_commit(u64) => faults.drop_after_commit;
    /// The next `n` requests fail with `Failed("connection refused")` before reaching the server.
    drop_before(u64) => faults.drop_before;
    /// The next `n` requests get a 200 captive-portal HTML page, applying nothing.
    html_next(u64) => faults.html_next;
}

impl MemServer {
    /// A versioned server with idempotency, envelopes, batches, no token, no faults.
    pub fn new() -> MemServer {
        MemServer(Rc::new(RefCell::new(State {
            colls: BTreeMap::new(),
            seq: 0,
            order: 0,
            idem: HashMap::new(),
            versioned: true,
            idempotency: true,
            envelope: true,
            wrap_records: false,
            batch: true,
            lww: false,
            offline: false,
            token: None,
            now: None,
            etag_only: false,
            stamped: false,
            numeric_ids: false,
            faults: Faults {
                drop_before: 0,
                fail_next: 0,
                status: 503,
                retry_after: None,
                html_next: 0,
                drop_after_commit: 0,
                match_prefix: None,
            },
            stats: Stats::default(),
            log: Vec::new(),
            applied_keys: Vec::new(),
        })))
    }

    /// A "plain REST" server like json-server: no versions, no idempotency, bare arrays, no batch.
    pub fn plain() -> MemServer {
        let s = MemServer::new();
        s.set_versioned(false);
        s.set_idempotency(false);
        s.set_envelope(false);
        s.set_batch(false);
        s
    }

    /// What `send` does, without the future.
    pub fn send_now(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        let mut res = self.0.borrow_mut().send(req);
        if let (true, Ok(r)) = (self.0.borrow().etag_only, &mut res) {
            if let Ok(mut v) = serde_json::from_str::<Value>(&r.body) {
                strip_versions(&mut v);
                r.body = v.to_string();
            }
        }
        res
    }

    /// The next `n` requests answer `status` (with `Retry-After` if given), applying nothing.
    pub fn fail_next(&self, n: u64, status: u16, retry_after: Option<&str>) {
        let f = &mut self.0.borrow_mut().faults;
        f.fail_next = n;
        f.status = status;
        f.retry_after = retry_after.map(str::to_string);
    }
    /// Some(prefix): faults only hit paths starting with it (e.g. "/api/todos").
    pub fn fault_match(&self, prefix: Option<&str>) {
        self.0.borrow_mut().faults.match_prefix = prefix.map(str::to_string);
    }
    /// Clears every fault count and the match prefix.
    pub fn clear_faults(&self) {
        let f = &mut self.0.borrow_mut().faults;
        (f.drop_before, f.fail_next, f.html_next, f.drop_after_commit) = (0, 0, 0, 0);
        f.match_prefix = None;
    }
    /// Deletes records and stored answers; counters (ids, cursor) go on, as in the reference.
    pub fn wipe(&self) {
        let mut st = self.0.borrow_mut();
        st.colls.values_mut().for_each(|c| c.rows.clear());
        st.idem.clear();
    }

    // ---- acting as another client (no faults, token, idempotency, stats or log) ----

    /// Runs one write (or read) directly. `id` None addresses the collection.
    pub fn server_write(
        &self,
        c: &str,
        method: &str,
        id: Option<&str>,
        body: Option<Value>,
    ) -> HttpResponse {
        self.server_write_with(c, method, id, body, &[])
    }
    /// `server_write` with extra headers (e.g. `Ferry-Changed-At`, `If-Match`).
    pub fn server_write_with(
        &self,
        c: &str,
        method: &str,
        id: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let path = match id {
            Some(id) => format!("/api/{c}/{}", encode(id)),
            None => format!("/api/{c}"),
        };
        let req = Req {
            method: method.to_ascii_uppercase(),
            path,
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.map(|b| b.to_string()).unwrap_or_default(),
        };
        self.0.borrow_mut().api(&req).into_response(false)
    }
    /// Creates a record; its id, or "" if it was rejected.
    pub fn server_create(&self, c: &str, record: Value) -> String {
        let r = self.server_write(c, "POST", None, Some(record));
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let v = if v.get("data").is_some() {
            v["data"].clone()
        } else {
            v
        };
        match (r.status, v.get("id")) {
            (201, Some(Value::String(s))) => s.clone(),
            (201, Some(Value::Number(n))) => n.to_string(),
            _ => String::new(),
        }
    }
    /// Replaces a live record; the stored record, None if missing or rejected.
    pub fn server_put(&self, c: &str, id: &str, record: Value) -> Option<Value> {
        let r = self.server_write(c, "PUT", Some(id), Some(record));
        (r.status == 200).then(|| self.record(c, id)).flatten()
    }
    /// Merge-patches a live record; the stored record, None if missing or rejected.
    pub fn server_patch(&self, c: &str, id: &str, fields: Value) -> Option<Value> {
        let r = self.server_write(c, "PATCH", Some(id), Some(fields));
        (r.status == 200).then(|| self.record(c, id)).flatten()
    }
    /// Deletes a live record (leaving a tombstone); false if it was not there.
    pub fn server_delete(&self, c: &str, id: &str) -> bool {
        self.server_write(c, "DELETE", Some(id), None).status == 204
    }
}

fn lower_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.clone()))
        .collect()
}

fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl State {
    fn send(&mut self, http: HttpRequest) -> Result<HttpResponse, NetError> {
        if self.offline {
            return Err(NetError::Offline);
        }
        let method = http.method.trim().to_ascii_uppercase();
        let (path, query) = split_url(&http.url);
        let headers = lower_headers(&http.headers);
        let req = Req {
            method,
            path,
            query,
            headers,
            body: http.body.unwrap_or_default(),
        };
        let head = req.method == "HEAD";
        let at = self.log.len();
        self.log.push(LogEntry {
            method: req.method.clone(),
            url: http.url,
            idempotency_key: req.header("idempotency-key").map(str::to_string),
            status: 0,
            in_batch: false,
        });
        if !(req.path == "/api" || req.path.starts_with("/api/")) {
            self.log[at].status = 404;
            return Ok(Reply::error(404, "no such resource").into_response(head));
        }
        let is_write = matches!(req.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
        let action = self.faults.plan(&req.path, is_write);
        if let Action::DropBefore = action {
            self.stats.dropped += 1;
            return Err(NetError::Failed("connection refused".into()));
        }
        self.stats.requests += 1;
        *self.stats.by_method.entry(req.method.clone()).or_insert(0) += 1;
        let reply = match action {
            Action::Fail {
                status,
                retry_after,
            } => {
                self.stats.faulted += 1;
                let r = Reply::error(status, "injected fault");
                match retry_after {
                    Some(ra) => r.header("Retry-After", ra),
                    None => r,
                }
            }
            Action::Html => {
                self.stats.faulted += 1;
                Reply {
                    body: Body::Html(CAPTIVE_PAGE.into()),
                    ..Reply::empty(200)
                }
            }
            Action::DropBefore | Action::Proceed { .. } => {
                let reply = match self.check_token(&req) {
                    Some(denied) => denied,
                    None => match self.route(&req.method, &req.path) {
                        Ok(Route::Batch) => batch::run(self, &req.body),
                        _ => self.api_counted(&req),
                    },
                };
                if let Action::Proceed { drop: true } = action {
                    self.stats.dropped += 1;
                    return Err(NetError::Failed("connection reset".into()));
                }
                reply
            }
        };
        self.log[at].status = reply.status;
        Ok(reply.into_response(head))
    }

    fn check_token(&self, req: &Req) -> Option<Reply> {
        let token = self.token.as_deref()?;
        let ok = req
            .header("authorization")
            .and_then(|v| v.trim().split_once(' '))
            .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t.trim() == token);
        (!ok).then(|| {
            Reply::error(401, "missing or wrong bearer token").header("WWW-Authenticate", "Bearer")
        })
    }

    /// `api`, counting an applied write and its key.
    fn api_counted(&mut self, req: &Req) -> Reply {
        let reply = self.api(req);
        if reply.applied {
            self.stats.writes_applied += 1;
            if let Some(k) = req
                .header("idempotency-key")
                .map(str::trim)
                .filter(|k| !k.is_empty())
            {
                self.applied_keys.push(k.to_string());
            }
        }
        reply
    }
}

/// `v` without a `version` field anywhere (a record, a list, a batch's answers).
pub fn strip_versions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("version");
            m.values_mut().for_each(strip_versions);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_versions),
        _ => {}
    }
}
