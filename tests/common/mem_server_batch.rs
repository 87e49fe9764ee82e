//! MemServer's protocol logic, mirroring server/src/{api,records,batch,pathenc}.rs: routing,
//! reads, writes (ids, versions, If-Match, LWW, tombstones, idempotency), OData JSON batches, and
//! the wire helpers (percent-encoding, URLs, If-Match forms, JSON merge patch).

use super::{now_ms, Body, LogEntry, Reply, Req, Row, State, Stored};
use serde_json::{json, Map, Value};

pub const MAX_ITEMS: usize = 1000;

pub enum Route {
    Batch,
    Collection(String),
    Record(String, String),
}

pub fn valid_collection(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl State {
    /// `/api/{c}`, `/api/{c}/{id}` (id decoded after splitting), or the batch endpoint.
    pub(super) fn route(&self, method: &str, path: &str) -> Result<Route, Reply> {
        let rest = path
            .strip_prefix("/api/")
            .ok_or_else(|| Reply::error(404, "no such resource"))?;
        let segs: Vec<&str> = rest.split('/').collect();
        let (coll, id) = match segs.as_slice() {
            [c] | [c, ""] => (*c, None),
            [c, id] => (*c, Some(*id)),
            _ => return Err(Reply::error(404, "no such resource")),
        };
        if id.is_none() && matches!(coll, "$batch" | "batch") && method == "POST" {
            if self.batch {
                return Ok(Route::Batch);
            } else if coll == "$batch" {
                return Err(Reply::error(404, "no such resource"));
            }
        }
        if !valid_collection(coll) {
            return Err(Reply::error(
                400,
                "collection names are 1 to 64 characters of A-Z a-z 0-9 _ -",
            ));
        }
        match id {
            None => Ok(Route::Collection(coll.to_string())),
            Some(raw) => decode(raw)
                .map(|id| Route::Record(coll.to_string(), id))
                .ok_or_else(|| Reply::error(400, "bad percent-encoding in id")),
        }
    }
}

/// `{ "requests": [...] }` → `{ "responses": [...] }`, each applied alone, in order.
pub(super) fn run(st: &mut State, body: &str) -> Reply {
    let doc: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Reply::error(400, format!("malformed JSON: {e}")),
    };
    let Some(items) = doc.get("requests").and_then(Value::as_array) else {
        return Reply::error(400, "a batch is an object with a \"requests\" array");
    };
    if items.len() > MAX_ITEMS {
        return Reply::error(413, format!("at most {MAX_ITEMS} requests per batch"));
    }
    st.stats.batch_requests += 1;
    st.stats.batch_items += items.len() as u64;
    let responses: Vec<Value> = items.iter().map(|item| run_one(st, item)).collect();
    Reply::json(200, json!({ "responses": responses }))
}

fn run_one(st: &mut State, item: &Value) -> Value {
    let id = item.get("id").cloned().unwrap_or(Value::Null);
    let reply = match sub_request(item) {
        Ok(req) => st.api_counted(&req),
        Err(msg) => Reply::error(400, msg),
    };
    let str_field = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
    let key = item
        .get("headers")
        .and_then(Value::as_object)
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
                .and_then(|(_, v)| v.as_str())
        });
    st.log.push(LogEntry {
        method: str_field("method").unwrap_or_default().to_ascii_uppercase(),
        url: str_field("url").unwrap_or_default(),
        idempotency_key: key.map(str::to_string),
        status: reply.status,
        in_batch: true,
    });
    let mut out = Map::new();
    out.insert("id".into(), id);
    out.insert("status".into(), json!(reply.status));
    if !reply.headers.is_empty() {
        let h: Map<String, Value> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        out.insert("headers".into(), Value::Object(h));
    }
    match reply.body {
        Body::Empty => {}
        Body::Json(v) => {
            out.insert("body".into(), v);
        }
        Body::Html(s) => {
            out.insert("body".into(), Value::String(s));
        }
    }
    Value::Object(out)
}

fn sub_request(item: &Value) -> Result<Req, String> {
    let obj = item.as_object().ok_or("each request must be an object")?;
    let method = obj
        .get("method")
        .and_then(Value::as_str)
        .ok_or("a request needs a \"method\"")?
        .to_ascii_uppercase();
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or("a request needs a \"url\"")?;
    let (path, query) = split_url(url);
    if !path.starts_with("/api/") {
        return Err(format!("{url:?} is not under /api/"));
    }
    let mut headers = Vec::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(format!("header {k:?} must be a string")),
                };
                headers.push((k.to_ascii_lowercase(), v));
            }
        }
        Some(_) => return Err("\"headers\" must be an object".into()),
    }
    let body = match obj.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(v) => v.to_string(),
    };
    Ok(Req {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// (path, query) of `/api/x?q`, `http://host/api/x`, `//host/api/x`, `api/x` or `x` (the last
/// two relative to `/api/`, as the reference batch reads sub-request URLs). Drops a `#fragment`.
pub fn split_url(url: &str) -> (String, String) {
    let url = url.trim();
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let after_host = |rest: &str| {
        rest.find('/')
            .map_or("/".to_string(), |j| rest[j..].to_string())
    };
    let url = match url.find("://") {
        Some(i) if !url[..i].contains(['/', '?']) => after_host(&url[i + 3..]),
        _ if url.starts_with("//") => after_host(&url[2..]),
        _ => url.to_string(),
    };
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let path = if path.starts_with('/') {
        path.to_string()
    } else if path.starts_with("api/") || path == "api" {
        format!("/{path}")
    } else {
        format!("/api/{path}")
    };
    (path, query.to_string())
}

/// Decodes one path segment; None when an escape is malformed or the result is not UTF-8.
pub fn decode(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Encodes all but RFC 3986 unreserved characters: one canonical spelling of an id.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Value of `name` in a query string, decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(&k.replace('+', " "))? == name).then(|| decode(&v.replace('+', " ")))?
    })
}

/// If-Match against a version: `"3"`, `3`, `W/"3"`, `*`, or a comma-separated list of those.
pub fn etag_matches(header: &str, version: i64) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || tag.trim_matches('"') == version.to_string()
    })
}

/// RFC 7396 JSON merge patch: objects merge recursively, null removes a field.
pub fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(&k);
            } else {
                merge_patch(t.entry(k).or_insert(Value::Null), v);
            }
        }
    }
}

enum Write {
    Create { c: String },
    Update { c: String, id: String, patch: bool },
    Delete { c: String, id: String },
}

fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl State {
    /// One /api request that is not a batch.
    pub(super) fn api(&mut self, req: &Req) -> Reply {
        let m = req.method.as_str();
        match self.route(m, &req.path) {
            Err(r) => r,
            Ok(Route::Batch) => Reply::error(400, "a batch cannot be nested"),
            Ok(Route::Collection(c)) => match m {
                "GET" | "HEAD" => self.read_list(&c, &req.query),
                "POST" => self.write(req, Write::Create { c }),
                _ => Reply::error(405, "use GET or POST on a collection")
                    .header("Allow", "GET, POST"),
            },
            Ok(Route::Record(c, id)) => match m {
                "GET" | "HEAD" => self.read_one(&c, &id),
                "PUT" => self.write(
                    req,
                    Write::Update {
                        c,
                        id,
                        patch: false,
                    },
                ),
                "PATCH" => self.write(req, Write::Update { c, id, patch: true }),
                "DELETE" => self.write(req, Write::Delete { c, id }),
                _ => Reply::error(405, "use GET, PUT, PATCH or DELETE on a record")
                    .header("Allow", "GET, PUT, PATCH, DELETE"),
            },
        }
    }

    fn wrap(&self, record: Value) -> Value {
        if self.wrap_records {
            json!({ "data": record })
        } else {
            record
        }
    }

    fn live(&self, c: &str, id: &str) -> Option<Row> {
        self.colls
            .get(c)?
            .rows
            .get(id)
            .filter(|r| !r.deleted)
            .cloned()
    }

    fn read_list(&self, c: &str, query: &str) -> Reply {
        let rows: Vec<&Row> = self
            .colls
            .get(c)
            .map_or(Vec::new(), |c| c.rows.values().collect());
        let mut live: Vec<&Row> = rows.iter().copied().filter(|r| !r.deleted).collect();
        live.sort_by_key(|r| r.order);
        let snapshot = || Value::Array(live.iter().map(|r| r.body.clone()).collect());
        if !self.envelope {
            return Reply::json(200, snapshot());
        }
        let data = match query_param(query, "since") {
            None => snapshot(),
            Some(s) if s.is_empty() => snapshot(),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n > self.seq => return Reply::error(400, format!("unknown cursor {n}")),
                Ok(n) if n >= 0 => {
                    let mut changed: Vec<&Row> = rows.into_iter().filter(|r| r.seq > n).collect();
                    changed.sort_by_key(|r| r.seq);
                    Value::Array(changed.iter().map(|r| r.body.clone()).collect())
                }
                _ => return Reply::error(400, format!("invalid cursor {s:?}")),
            },
        };
        Reply::json(200, json!({ "data": data, "cursor": self.seq.to_string() }))
    }

    fn read_one(&self, c: &str, id: &str) -> Reply {
        match self.live(c, id) {
            Some(row) => Reply::json(200, self.wrap(row.body)).etag(self.versioned, row.version),
            None => Reply::error(404, format!("no record {id:?} in {c}")),
        }
    }

    /// Validates headers and body, replays a stored answer or applies the write and stores it.
    fn write(&mut self, req: &Req, op: Write) -> Reply {
        let key = match (
            self.idempotency,
            req.header("idempotency-key").map(str::trim),
        ) {
            (false, _) | (_, None) => None,
            (true, Some("")) => return Reply::error(400, "empty Idempotency-Key"),
            (true, Some(k)) if k.len() > 255 => {
                return Reply::error(400, "Idempotency-Key too long")
            }
            (true, Some(k)) => Some(k.to_string()),
        };
        let changed_at = match req.header("ferry-changed-at").map(str::trim) {
            None => self.now.unwrap_or_else(now_ms),
            Some(v) => match v.parse::<i64>() {
                Ok(n) => n,
                Err(_) => return Reply::error(400, format!("bad Ferry-Changed-At {v:?}")),
            },
        };
        let body = match op {
            Write::Delete { .. } => Map::new(),
            _ if req.body.trim().is_empty() => {
                return Reply::error(400, "a JSON object body is required")
            }
            _ => match serde_json::from_str::<Value>(&req.body) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Reply::error(400, "the body must be a JSON object"),
                Err(e) => return Reply::error(400, format!("malformed JSON: {e}")),
            },
        };
        let path = match &op {
            Write::Create { c } => format!("/api/{c}"),
            Write::Update { c, id, .. } | Write::Delete { c, id } => {
                format!("/api/{c}/{}", encode(id))
            }
        };
        if let Some(stored) = key.as_ref().and_then(|k| self.idem.get(k)) {
            if stored.method != req.method || stored.path != path {
                let msg = format!(
                    "Idempotency-Key was first used for {} {}",
                    stored.method, stored.path
                );
                return Reply::error(422, msg);
            }
            let reply = Reply {
                status: stored.status,
                headers: stored.headers.clone(),
                body: stored.body.clone(),
                applied: false,
            };
            self.stats.replays += 1;
            return reply.header("Idempotent-Replayed", "true");
        }
        let if_match = (self.versioned && !self.lww)
            .then(|| req.header("if-match"))
            .flatten();
        let reply = self.apply(op, body, if_match, changed_at);
        // Only successes are remembered: after a 412 the same key must be able to apply.
        if let (Some(key), true) = (key, (200..300).contains(&reply.status)) {
            let stored = Stored {
                method: req.method.clone(),
                path,
                status: reply.status,
                headers: reply.headers.clone(),
                body: reply.body.clone(),
            };
            self.idem.insert(key, stored);
        }
        reply
    }

    fn apply(
        &mut self,
        op: Write,
        mut body: Map<String, Value>,
        if_match: Option<&str>,
        at: i64,
    ) -> Reply {
        let v = self.versioned;
        match op {
            Write::Create { c } => {
                let coll = self.colls.entry(c.clone()).or_default();
                let wanted = body
                    .get("id")
                    .and_then(|v| id_key(v).map(|k| (k, v.clone())));
                let (key, id) = match wanted {
                    Some((k, v)) if !coll.rows.contains_key(&k) => (k, v),
                    _ => loop {
                        coll.next_id += 1;
                        let k = coll.next_id.to_string();
                        if !coll.rows.contains_key(&k) {
                            let n = coll.next_id;
                            break (
                                k.clone(),
                                if self.numeric_ids { json!(n) } else { json!(k) },
                            );
                        }
                    },
                };
                body.insert("id".into(), id);
                if v {
                    body.insert("version".into(), json!(1));
                }
                if self.stamped {
                    body.insert("createdAt".into(), json!(self.seq + 1));
                    body.insert("updatedAt".into(), json!(self.seq + 1));
                }
                let record = Value::Object(body);
                self.put(&c, &key, record.clone(), 1, at, false);
                Reply::json(201, self.wrap(record))
                    .etag(v, 1)
                    .header("Location", format!("/api/{c}/{}", encode(&key)))
                    .applied()
            }
            Write::Update { c, id, patch } => {
                let Some(row) = self.live(&c, &id) else {
                    return Reply::error(404, format!("no record {id:?} in {c}"));
                };
                if let Some(r) = self.precondition(&row, if_match, at) {
                    return r;
                }
                match body.get("id") {
                    None | Some(Value::Null) => {}
                    Some(x) if id_key(x).as_deref() == Some(id.as_str()) => {}
                    Some(_) => {
                        return Reply::error(422, "the body's id differs from the id in the URL")
                    }
                }
                body.remove("id");
                if v {
                    body.remove("version");
                }
                let mut record = if patch {
                    let mut base = row.body.clone();
                    merge_patch(&mut base, Value::Object(body));
                    base
                } else {
                    Value::Object(body)
                };
                let version = row.version + 1;
                if let Value::Object(m) = &mut record {
                    m.insert(
                        "id".into(),
                        row.body.get("id").cloned().unwrap_or(json!(id)),
                    );
                    if v {
                        m.insert("version".into(), json!(version));
                    }
                    if self.stamped {
                        let created = row.body.get("createdAt").cloned();
                        m.insert("createdAt".into(), created.unwrap_or(Value::Null));
                        m.insert("updatedAt".into(), json!(self.seq + 1));
                    }
                }
                self.put(&c, &id, record.clone(), version, at, false);
                Reply::json(200, self.wrap(record))
                    .etag(v, version)
                    .applied()
            }
            Write::Delete { c, id } => {
                let Some(row) = self.live(&c, &id) else {
                    return Reply::error(404, format!("no record {id:?} in {c}"));
                };
                if let Some(mut r) = self.precondition(&row, if_match, at) {
                    // A lost LWW delete is a conflict (a 2xx would say "deleted").
                    if r.status == 200 {
                        r.status = 409;
                    }
                    return r;
                }
                let idv = row.body.get("id").cloned().unwrap_or(json!(id));
                self.put(
                    &c,
                    &id,
                    json!({ "id": idv, "deleted": true }),
                    row.version + 1,
                    at,
                    true,
                );
                Reply::empty(204).applied()
            }
        }
    }

    /// Some(answer) when the write must not be applied: a lost LWW race or an If-Match mismatch.
    fn precondition(&self, row: &Row, if_match: Option<&str>, changed_at: i64) -> Option<Reply> {
        let current = |status| {
            Reply::json(status, self.wrap(row.body.clone())).etag(self.versioned, row.version)
        };
        if self.lww {
            return (changed_at < row.changed_at).then(|| current(200));
        }
        match if_match {
            Some(h) if !etag_matches(h, row.version) => Some(current(412)),
            _ => None,
        }
    }

    fn put(
        &mut self,
        c: &str,
        id: &str,
        body: Value,
        version: i64,
        changed_at: i64,
        deleted: bool,
    ) {
        self.seq += 1;
        self.order += 1;
        let (seq, fresh) = (self.seq, self.order);
        let coll = self.colls.entry(c.to_string()).or_default();
        let order = coll.rows.get(id).map_or(fresh, |r| r.order);
        coll.rows.insert(
            id.to_string(),
            Row {
                body,
                version,
                changed_at,
                seq,
                order,
                deleted,
            },
        );
    }
}
