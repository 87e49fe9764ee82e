//! The simulated network between one client and the shared `MemServer`: by seeded chance it
//! drops a request, drops the answer after the server committed, sends a request twice, holds
//! it back to arrive later, answers 503/429/422 or a captive portal's page, answers a write it
//! applied tersely (a create with its id alone, an update with `{"ok": true}`, a delete with a
//! plain-text "OK"), aborts the client's next storage commit, or leaves the client hanging (a
//! crash mid-request). It also watches
//! every answer the server gave, which is the ground truth the invariants are checked against.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport, REDIRECTED_TO};
use ferry::core::{ErrorKind, MemoryStorage};
use serde_json::Value;

use super::rng::Rng;
use super::shapes::{as_page, as_sencha, page_skip};
use crate::mem_server::MemServer;

/// One write the server applied (not a replay), as the network saw it.
#[derive(Clone, Debug)]
pub struct Applied {
    pub client: usize,
    pub c: String,
    pub id: String,
    pub key: String,
    /// The outbox position in the key (`{node}-{seq}` or `{node}-{seq}.{n}`).
    pub seq: u64,
}

/// What reached the server.
#[derive(Default)]
pub struct Observed {
    /// String values seen in the body of a write the server acknowledged.
    pub delivered: HashSet<String>,
    /// Applied writes, in the order the server applied them.
    pub applied: Vec<Applied>,
}

/// State shared by every client's network: chance, counters, what was observed, held requests.
pub struct Shared {
    pub rng: RefCell<Rng>,
    pub faults: RefCell<BTreeMap<&'static str, u64>>,
    pub observed: RefCell<Observed>,
    /// Requests held back (client, request): they reach the server at a later step.
    pub delayed: RefCell<Vec<(usize, HttpRequest)>>,
    /// Faults are injected only while this is set (the final convergence heals the network).
    pub enabled: Cell<bool>,
    /// The network may duplicate or hold back a `POST` (not against `ServerKind::Keyless`,
    /// where that stores a create twice whatever the client does).
    pub post_copies: Cell<bool>,
    /// Answers are reshaped as a server written for Sencha's proxies gives them
    /// (`ServerKind::Sencha`).
    pub sencha: Cell<bool>,
    /// Lists are paged by offset (`ServerKind::Paged`).
    pub paged: Cell<bool>,
}

impl Shared {
    pub fn new(seed: u64) -> Rc<Shared> {
        Rc::new(Shared {
            rng: RefCell::new(Rng::new(seed.wrapping_mul(31).wrapping_add(7))),
            faults: RefCell::default(),
            observed: RefCell::default(),
            delayed: RefCell::default(),
            enabled: Cell::new(true),
            post_copies: Cell::new(true),
            sencha: Cell::new(false),
            paged: Cell::new(false),
        })
    }
    pub fn count(&self, kind: &'static str) {
        *self.faults.borrow_mut().entry(kind).or_insert(0) += 1;
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    DropRequest,
    DropAnswer,
    Duplicate,
    Delay,
    Status(u16),
    Portal,
    Terse,
    Crash { reached: bool },
    StorageAbort,
}

/// Per request, in percent (they add up to about 25%).
const TABLE: &[(Fault, u32)] = &[
    (Fault::DropRequest, 40),
    (Fault::DropAnswer, 40),
    (Fault::Duplicate, 30),
    (Fault::Delay, 25),
    (Fault::Status(503), 30),
    (Fault::Status(429), 20),
    (Fault::Status(422), 8),
    (Fault::Portal, 15),
    (Fault::Terse, 25),
    (Fault::Crash { reached: true }, 6),
    (Fault::Crash { reached: false }, 4),
    (Fault::StorageAbort, 20),
];

fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::DropRequest => "request dropped",
        Fault::DropAnswer => "answer dropped after commit",
        Fault::Duplicate => "request duplicated",
        Fault::Delay => "request delayed (arrives later)",
        Fault::Status(503) => "503 answered",
        Fault::Status(429) => "429 answered (Retry-After)",
        Fault::Status(_) => "422 rejection answered",
        Fault::Portal => "captive portal page (200 HTML)",
        Fault::Terse => "write applied, answered tersely",
        Fault::Crash { reached: true } => "crash mid-request (after server)",
        Fault::Crash { reached: false } => "crash mid-request (before server)",
        Fault::StorageAbort => "storage commit aborted after answer",
    }
}

/// One client's network.
pub struct SimNet {
    pub client: usize,
    pub server: MemServer,
    pub shared: Rc<Shared>,
    pub offline: Rc<Cell<bool>>,
    pub storage: MemoryStorage,
    /// Set when a request left the client hanging: the simulator then crashes the client.
    pub crashed: Cell<bool>,
    /// Crashing mid-request is allowed (only inside a flush the simulator can abandon).
    pub may_crash: Cell<bool>,
}

impl SimNet {
    fn roll(&self, write: bool, post: bool, batch: bool, applied: bool) -> Option<Fault> {
        if !self.shared.enabled.get() {
            return None;
        }
        let mut rng = self.shared.rng.borrow_mut();
        let mut n = rng.below(1000) as u32;
        for (f, per_mille) in TABLE {
            if n < *per_mille {
                let allowed = match f {
                    Fault::Crash { .. } => self.may_crash.get(),
                    Fault::StorageAbort => write,
                    // A real server answers a key it already applied with the first answer, so
                    // a refusal is only realistic for a single write it has not applied.
                    Fault::Status(422) => write && !batch && !applied,
                    Fault::Terse => write && !batch,
                    Fault::Duplicate | Fault::Delay => !post || self.shared.post_copies.get(),
                    _ => true,
                };
                return allowed.then_some(*f);
            }
            n -= per_mille;
        }
        None
    }

    /// Hands one held-back request (any client's, chosen by chance) to the server.
    fn deliver_one_delayed(&self) {
        let taken = {
            let mut q = self.shared.delayed.borrow_mut();
            if q.is_empty() {
                return;
            }
            let i = self.shared.rng.borrow_mut().below(q.len());
            q.remove(i)
        };
        self.shared.count("held request arrived between pages");
        let _ = deliver(&self.server, &self.shared, taken.0, taken.1);
    }

    /// Hands `req` to the server and records what it did.
    pub fn deliver(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        deliver(&self.server, &self.shared, self.client, req)
    }
}

/// Hands `req` from `client` to the server and records what it did.
pub fn deliver(
    server: &MemServer,
    shared: &Shared,
    client: usize,
    req: HttpRequest,
) -> Result<HttpResponse, NetError> {
    let res = server.send_now(req.clone());
    if let Ok(r) = &res {
        observe(&mut shared.observed.borrow_mut(), client, &req, r);
    }
    res
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
    }
}

impl Transport for SimNet {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        if self.offline.get() {
            self.shared.count("request refused while offline");
            return Err(NetError::Offline);
        }
        let write = req.method != "GET";
        let batch = req.url.ends_with("$batch");
        // Applied, or on its way in a request the network holds back (the server will apply it
        // when it arrives): a server that refuses a key is one that never applies it.
        let applied = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
            .is_some_and(|(_, k)| {
                let quoted = format!("\"{k}\"");
                self.server.applied_keys().contains(k)
                    || self.shared.delayed.borrow().iter().any(|(_, d)| {
                        d.headers.iter().any(|(_, v)| v == k)
                            || d.body.as_deref().is_some_and(|b| b.contains(&quoted))
                    })
            });
        let fault = self.roll(write, req.method == "POST", batch, applied);
        if let Some(f) = fault {
            self.shared.count(fault_name(f));
        }
        // `FERRY_SIM_TRACE=1`: every request, its fault and its answer, on stderr.
        let trace = std::env::var_os("FERRY_SIM_TRACE").is_some();
        let said = trace.then(|| {
            format!(
                "c{} {} {} {:?}",
                self.client, req.method, req.url, req.headers
            )
        });
        // A server that pages its lists by offset: a later page may be read after writes that
        // were on their way (held back) arrived, as it is when other devices write meanwhile.
        let skip = self.shared.paged.get().then(|| page_skip(&req)).flatten();
        if skip.is_some_and(|n| n > 0) {
            self.deliver_one_delayed();
        }
        let mut res = self.faulted(req, fault).await;
        if let Some(skip) = skip {
            let sencha = self.shared.sencha.get();
            res = res.map(|r| as_page(r, skip, sencha));
        }
        if self.shared.sencha.get() {
            res = res.map(as_sencha);
        }
        if let Some(said) = said {
            let fault = fault.map_or("", fault_name);
            match &res {
                Ok(r) => eprintln!("  net {said} [{fault}] -> {} {}", r.status, r.body),
                Err(e) => eprintln!("  net {said} [{fault}] -> {e:?}"),
            }
        }
        res
    }
}

impl SimNet {
    async fn faulted(
        &self,
        req: HttpRequest,
        fault: Option<Fault>,
    ) -> Result<HttpResponse, NetError> {
        match fault {
            None => self.deliver(req),
            Some(Fault::DropRequest) => Err(NetError::Failed("connection refused (sim)".into())),
            Some(Fault::DropAnswer) => {
                let _ = self.deliver(req);
                Err(NetError::Failed("connection reset (sim)".into()))
            }
            Some(Fault::Duplicate) => {
                let _ = self.deliver(req.clone());
                self.deliver(req)
            }
            Some(Fault::Delay) => {
                self.shared.delayed.borrow_mut().push((self.client, req));
                Err(NetError::Timeout)
            }
            Some(Fault::Status(503)) => Ok(answer(503, &[], "")),
            Some(Fault::Status(429)) => Ok(answer(429, &[("Retry-After", "2")], "")),
            Some(Fault::Status(s)) => Ok(answer(
                s,
                &[("Content-Type", "application/json")],
                r#"{"error":"refused by the simulator"}"#,
            )),
            // A portal redirects to its page (fetch follows, and says it did).
            Some(Fault::Portal) => Ok(answer(
                200,
                &[
                    ("Content-Type", "text/html"),
                    (REDIRECTED_TO, "http://portal.example/login"),
                ],
                crate::mem_server::CAPTIVE_PAGE,
            )),
            Some(Fault::Terse) => {
                let method = req.method.clone();
                Ok(match self.deliver(req)? {
                    r if !(200..300).contains(&r.status) => r,
                    r if method == "POST" => {
                        let v: Value = serde_json::from_str(&r.body).unwrap_or_default();
                        let id = serde_json::json!({ "id": v["id"] });
                        answer(
                            r.status,
                            &[("Content-Type", "application/json")],
                            &id.to_string(),
                        )
                    }
                    _ if method == "DELETE" => answer(200, &[("Content-Type", "text/plain")], "OK"),
                    _ => answer(
                        200,
                        &[("Content-Type", "application/json")],
                        r#"{"ok":true}"#,
                    ),
                })
            }
            Some(Fault::Crash { reached }) => {
                if reached {
                    let _ = self.deliver(req);
                }
                self.crashed.set(true);
                std::future::pending().await
            }
            Some(Fault::StorageAbort) => {
                let res = self.deliver(req);
                self.storage.fail_next_commit(ErrorKind::Storage);
                res
            }
        }
    }
}

// ---------------------------------------------------------------- observing the server

fn decode_segment(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| {
            b.get(j)
                .and_then(|c| (*c as char).to_digit(16))
                .map(|d| d as u8)
        };
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h * 16 + l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (collection, record id) of `/api/{c}[/{id}]`.
fn parts(url: &str) -> (String, Option<String>) {
    let path = url.split('?').next().unwrap_or("");
    let rest = path.trim_start_matches("/api/");
    let mut it = rest.splitn(2, '/');
    let c = it.next().unwrap_or("").to_string();
    (c, it.next().map(decode_segment))
}

fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The outbox position inside an Idempotency-Key.
pub fn seq_of(key: &str) -> Option<u64> {
    let rest = key.split_once('-')?.1;
    rest.split('.').next()?.parse().ok()
}

struct Sub<'a> {
    method: &'a str,
    url: &'a str,
    key: Option<String>,
    body: Option<Value>,
    status: u16,
    replayed: bool,
    answer: Option<Value>,
}

fn observe(obs: &mut Observed, client: usize, req: &HttpRequest, res: &HttpResponse) {
    let header = |hs: &[(String, String)], n: &str| {
        hs.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    if req.url.ends_with("$batch") {
        let Some(body) = req.body.as_deref() else {
            return;
        };
        let Ok(rq) = serde_json::from_str::<Value>(body) else {
            return;
        };
        let Ok(rs) = serde_json::from_str::<Value>(&res.body) else {
            return;
        };
        let (Some(rq), Some(rs)) = (rq["requests"].as_array(), rs["responses"].as_array()) else {
            return;
        };
        for r in rq {
            let Some(a) = rs.iter().find(|a| a["id"] == r["id"]) else {
                continue;
            };
            let key = r["headers"]
                .as_object()
                .and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
                })
                .and_then(|(_, v)| v.as_str().map(str::to_string));
            let replayed = a["headers"].as_object().is_some_and(|h| {
                h.keys()
                    .any(|k| k.eq_ignore_ascii_case("idempotent-replayed"))
            });
            one(
                obs,
                client,
                Sub {
                    method: r["method"].as_str().unwrap_or(""),
                    url: r["url"].as_str().unwrap_or(""),
                    key,
                    body: r.get("body").cloned(),
                    status: a["status"].as_u64().unwrap_or(0) as u16,
                    replayed,
                    answer: a.get("body").cloned(),
                },
            );
        }
        return;
    }
    one(
        obs,
        client,
        Sub {
            method: &req.method,
            url: &req.url,
            key: header(&req.headers, "idempotency-key"),
            body: req
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok()),
            status: res.status,
            replayed: header(&res.headers, "idempotent-replayed").is_some(),
            answer: serde_json::from_str(&res.body).ok(),
        },
    );
}

fn one(obs: &mut Observed, client: usize, s: Sub<'_>) {
    if s.method == "GET" || !(200..300).contains(&s.status) {
        return;
    }
    if let Some(Value::Object(m)) = &s.body {
        for v in m.values() {
            if let Value::String(v) = v {
                obs.delivered.insert(v.clone());
            }
        }
    }
    if s.replayed {
        return;
    }
    let (c, id) = parts(s.url);
    let id = match s.method {
        "POST" => id_string(s.answer.as_ref().and_then(|a| a.get("id"))),
        _ => id,
    };
    if let (Some(id), Some(key)) = (id, s.key) {
        let seq = seq_of(&key).unwrap_or(u64::MAX);
        obs.applied.push(Applied {
            client,
            c,
            id,
            key,
            seq,
        });
    }
}
