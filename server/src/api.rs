//! The /api resources: routing, reads, and the transaction around every write.

use crate::cli::Mode;
use crate::db;
use crate::pathenc::{decode, encode, query_param};
use crate::records::{self, Write};
use crate::reply::{Body, Reply};
use crate::state::{lock, now_ms, AppState};
use serde_json::{json, Map, Value};

/// A request to /api, already read off the wire (or out of a batch).
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: String,
    /// Raw (still percent-encoded) path, starting with `/api`.
    pub path: String,
    pub query: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub enum Route {
    Batch,
    Collection(String),
    Record(String, String),
}

const MAX_KEY_LEN: usize = 255;

pub fn valid_collection(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn route(method: &str, path: &str) -> Result<Route, Reply> {
    let rest = path
        .strip_prefix("/api/")
        .ok_or_else(|| Reply::error(404, "no such resource"))?;
    let segs: Vec<&str> = rest.split('/').collect();
    let (coll, id) = match segs.as_slice() {
        [c] | [c, ""] => (*c, None),
        [c, id] => (*c, Some(*id)),
        _ => return Err(Reply::error(404, "no such resource")),
    };
    if coll.is_empty() {
        return Err(Reply::error(404, "no such resource"));
    }
    if id.is_none() && matches!(coll, "$batch" | "batch") && method == "POST" {
        return Ok(Route::Batch);
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

/// Answers one /api request (not a batch; see `batch`). Runs synchronously: call it off the
/// async runtime.
pub fn handle(state: &AppState, req: &ApiRequest) -> Reply {
    let reply = match route(&req.method, &req.path) {
        Err(r) => r,
        Ok(Route::Batch) => Reply::error(400, "a batch cannot be nested"),
        Ok(Route::Collection(c)) => match req.method.as_str() {
            "GET" | "HEAD" => read_list(state, &c, &req.query),
            "POST" => write(state, req, Write::Create { collection: c }),
            _ => Reply::error(405, "use GET or POST on a collection").header("Allow", "GET, POST"),
        },
        Ok(Route::Record(c, id)) => match req.method.as_str() {
            "GET" | "HEAD" => read_one(state, &c, &id),
            "PUT" => write(
                state,
                req,
                Write::Update {
                    collection: c,
                    id,
                    patch: false,
                },
            ),
            "PATCH" => write(
                state,
                req,
                Write::Update {
                    collection: c,
                    id,
                    patch: true,
                },
            ),
            "DELETE" => write(state, req, Write::Delete { collection: c, id }),
            _ => Reply::error(405, "use GET, PUT, PATCH or DELETE on a record")
                .header("Allow", "GET, PUT, PATCH, DELETE"),
        },
    };
    if reply.applied {
        lock(&state.stats).writes += 1;
    }
    reply
}

fn storage_error(e: rusqlite::Error) -> Reply {
    Reply::error(500, format!("storage error: {e}"))
}

fn read_list(state: &AppState, collection: &str, query: &str) -> Reply {
    let since = match query_param(query, "since") {
        None => None,
        // An empty cursor is what a client without one sends when it builds the URL blindly.
        Some(s) if s.is_empty() => None,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Reply::error(400, format!("invalid cursor {s:?}")),
        },
    };
    let conn = lock(&state.db);
    let result = (|| {
        let cursor = db::current_seq(&conn)?;
        if let Some(since) = since {
            if since > cursor {
                return Ok(Reply::error(400, format!("unknown cursor {since}")));
            }
        }
        let data = match since {
            Some(since) => db::changes_since(&conn, collection, since)?,
            None => db::list(&conn, collection)?,
        };
        Ok(Reply::json(
            200,
            json!({ "data": data, "cursor": cursor.to_string() }),
        ))
    })();
    result.unwrap_or_else(storage_error)
}

fn read_one(state: &AppState, collection: &str, id: &str) -> Reply {
    let conn = lock(&state.db);
    match db::get(&conn, collection, id) {
        Ok(Some(row)) if !row.deleted => Reply::json(200, row.body).etag(row.version),
        Ok(_) => Reply::error(404, format!("no record {id:?} in {collection}")),
        Err(e) => storage_error(e),
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::error(400, "a JSON object body is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Reply::error(400, "the body must be a JSON object")),
        Err(e) => Err(Reply::error(400, format!("malformed JSON: {e}"))),
    }
}

/// Validates the headers and body, then applies the write and records its answer under the
/// idempotency key in one SQLite transaction: either both are stored or neither.
fn write(state: &AppState, req: &ApiRequest, op: Write) -> Reply {
    let ignored = lock(&state.faults).ignore_keys;
    let key = match req
        .header("idempotency-key")
        .map(str::trim)
        .filter(|_| !ignored)
    {
        Some("") => return Reply::error(400, "empty Idempotency-Key"),
        Some(k) if k.len() > MAX_KEY_LEN => return Reply::error(400, "Idempotency-Key too long"),
        k => k.map(str::to_string),
    };
    let changed_at = match req.header("ferry-changed-at").map(str::trim) {
        None => now_ms(),
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return Reply::error(400, format!("bad Ferry-Changed-At {v:?}")),
        },
    };
    let body = match op {
        Write::Delete { .. } => Map::new(),
        _ => match parse_object(&req.body) {
            Ok(m) => m,
            Err(r) => return r,
        },
    };
    let path = match &op {
        Write::Create { collection } => format!("/api/{collection}"),
        Write::Update { collection, id, .. } | Write::Delete { collection, id } => {
            format!("/api/{collection}/{}", encode(id))
        }
    };
    let if_match = match state.mode() {
        Mode::Versioned => req.header("if-match").map(str::to_string),
        Mode::Lww => None,
    };
    let lww = state.mode() == Mode::Lww;

    let mut conn = lock(&state.db);
    let result = (|| {
        let tx = conn.transaction()?;
        if let Some(key) = &key {
            if let Some(stored) = db::idem_get(&tx, key)? {
                if stored.method != req.method || stored.path != path {
                    return Ok(Reply::error(
                        422,
                        format!(
                            "Idempotency-Key was first used for {} {}",
                            stored.method, stored.path
                        ),
                    ));
                }
                lock(&state.stats).idempotent_replays += 1;
                return Ok(replay(stored));
            }
        }
        let reply = records::apply(&tx, op, body, if_match.as_deref(), lww, changed_at)?;
        // Only successes are remembered: after a 412 the client resolves the conflict and
        // sends the same mutation (same key) again, which must then be applied.
        if let (Some(key), true) = (&key, (200..300).contains(&reply.status)) {
            let (bytes, _) = reply.encode();
            let stored = db::Stored {
                method: req.method.clone(),
                path,
                status: reply.status,
                body: (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned()),
                etag: reply.get_header("ETag").map(str::to_string),
            };
            db::idem_put(&tx, key, &stored, now_ms())?;
        }
        tx.commit()?;
        Ok(reply)
    })();
    result.unwrap_or_else(storage_error)
}

fn replay(stored: db::Stored) -> Reply {
    let body = match stored.body.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(v)) => Body::Json(v),
        _ => Body::Empty,
    };
    let mut reply = Reply {
        status: stored.status,
        body,
        headers: Vec::new(),
        applied: false,
    }
    .header("Idempotent-Replayed", "true");
    if let Some(etag) = stored.etag {
        reply = reply.header("ETag", etag);
    }
    reply
}
