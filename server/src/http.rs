//! The hyper glue: body limits, CORS, auth, fault switches, and dispatch to admin, api, static.

use crate::api::{self, ApiRequest, Route};
use crate::faults::{Action, CAPTIVE_PAGE};
use crate::reply::Reply;
use crate::state::{lock, AppState};
use crate::{admin, batch, static_files};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Returned to hyper to close the connection without an answer (the "lost answer" fault).
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

const ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "idempotency-key",
    "if-match",
    "ferry-changed-at",
    "authorization",
];
// `Date` too: a `Retry-After` date is a wait from the server's clock only beside it.
const EXPOSED_HEADERS: &str = "ETag, Retry-After, Location, Idempotent-Replayed, Date";

enum BodyError {
    TooBig,
    Broken,
}

/// Reads the body up to `max` bytes. Past that it keeps reading (and discarding) up to a cap:
/// answering 413 while the client is still sending makes the kernel reset the connection, and
/// the client would see a network error instead of the 413.
async fn read_body(
    body: Incoming,
    declared: Option<u64>,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    let drain_cap = max.saturating_mul(4).max(16 << 20);
    if declared.is_some_and(|n| n > drain_cap as u64) {
        return Err(BodyError::TooBig);
    }
    let mut body = body;
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= max {
                buf.extend_from_slice(&data);
            } else if total > drain_cap {
                break;
            }
        }
    }
    if total > max {
        Err(BodyError::TooBig)
    } else {
        Ok(buf)
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn origin_allowed(state: &AppState, origin: &str) -> bool {
    state
        .cfg
        .cors_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

pub async fn serve(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = req.method().as_str().to_ascii_uppercase();
    let path = req.uri().path().to_string();
    let origin = header(&req, "origin")
        .filter(|o| origin_allowed(&state, o))
        .map(str::to_string);

    let reply = if method == "OPTIONS" {
        preflight(&req, origin.is_some())
    } else if path == "/__admin" || path.starts_with("/__admin/") {
        // to_canonical: on a dual-stack socket 127.0.0.1 arrives as ::ffff:127.0.0.1.
        if !peer.ip().to_canonical().is_loopback() {
            Reply::error(403, "the admin API only answers loopback clients")
        } else {
            let max = state.cfg.max_body;
            match read_body(req.into_body(), None, max).await {
                Ok(body) => {
                    let st = state.clone();
                    let (m, p) = (method.clone(), path.clone());
                    blocking(move || admin::handle(&st, &m, &p, &body)).await
                }
                Err(_) => Reply::error(413, "body too large"),
            }
        }
    } else if path == "/api" || path.starts_with("/api/") {
        api_request(&state, req, method.clone(), path.clone()).await?
    } else if method == "GET" || method == "HEAD" {
        static_files::serve(&state.cfg, &path).await
    } else {
        Reply::error(404, "no such resource")
    };

    if state.cfg.log {
        eprintln!("{method} {path} -> {}", reply.status);
    }
    Ok(to_response(reply, origin.as_deref()))
}

async fn blocking<F: FnOnce() -> Reply + Send + 'static>(f: F) -> Reply {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Reply::error(500, "internal error"))
}

async fn api_request(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    method: String,
    path: String,
) -> Result<Reply, Dropped> {
    {
        let mut stats = lock(&state.stats);
        stats.requests += 1;
        *stats.by_method.entry(method.clone()).or_insert(0) += 1;
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let declared = header(&req, "content-length").and_then(|v| v.parse().ok());
    // Read the body before anything else, so that every answer, even a fault, leaves the
    // connection in a state where the client can read it.
    let body = read_body(req.into_body(), declared, state.cfg.max_body).await;

    let path_of_reply = path.clone();
    let stall = lock(&state.faults).stall(&method, &path);
    let (delay, action) = lock(&state.faults).plan(&method, &path);
    let reply = match action {
        Action::Fail {
            status,
            retry_after,
            body,
        } => {
            lock(&state.stats).faulted += 1;
            let r = match body {
                Some(body) => Reply::json(status, body),
                None => Reply::error(status, "injected fault"),
            };
            match retry_after {
                Some(ra) => r.header("Retry-After", ra),
                None => r,
            }
        }
        Action::Html => {
            lock(&state.stats).faulted += 1;
            Reply::html(200, CAPTIVE_PAGE)
        }
        Action::Proceed { drop } => {
            let reply = match body {
                Err(BodyError::TooBig) => Reply::error(413, "body too large"),
                Err(BodyError::Broken) => return Err(Dropped),
                Ok(body) => match check_token(state, &headers) {
                    Some(denied) => denied,
                    None => {
                        let st = state.clone();
                        let req = ApiRequest {
                            method,
                            path,
                            query,
                            headers,
                            body,
                        };
                        // Inside the blocking task, which runs to its end even when the
                        // client goes away meanwhile, as a server busy storing a write does.
                        blocking(move || {
                            std::thread::sleep(Duration::from_millis(stall));
                            dispatch(&st, &req)
                        })
                        .await
                    }
                },
            };
            if drop {
                lock(&state.stats).dropped += 1;
                sleep(delay).await;
                return Err(Dropped);
            }
            reply
        }
    };
    sleep(delay).await;
    let etag_only = lock(&state.faults).etag_only(&path_of_reply);
    Ok(if etag_only {
        reply.without_versions()
    } else {
        reply
    })
}

fn dispatch(state: &AppState, req: &ApiRequest) -> Reply {
    match api::route(&req.method, &req.path) {
        Ok(Route::Batch) => batch::run(state, &req.body),
        _ => api::handle(state, req),
    }
}

async fn sleep(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn check_token(state: &AppState, headers: &[(String, String)]) -> Option<Reply> {
    let token = lock(&state.token).clone()?;
    let given = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.trim());
    let ok = given
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t.trim() == token);
    (!ok).then(|| {
        Reply::error(401, "missing or wrong bearer token").header("WWW-Authenticate", "Bearer")
    })
}

fn preflight(req: &Request<Incoming>, origin_ok: bool) -> Reply {
    let reply = Reply::empty(204).header("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    if !origin_ok || header(req, "access-control-request-method").is_none() {
        return reply;
    }
    let mut allowed: Vec<String> = ALLOWED_HEADERS.iter().map(|s| s.to_string()).collect();
    for h in header(req, "access-control-request-headers")
        .unwrap_or("")
        .split(',')
    {
        let h = h.trim().to_ascii_lowercase();
        if h.starts_with("x-") && !allowed.contains(&h) {
            allowed.push(h);
        }
    }
    reply
        .header(
            "Access-Control-Allow-Methods",
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        )
        .header("Access-Control-Allow-Headers", allowed.join(", "))
        .header("Access-Control-Max-Age", "600")
}

fn to_response(reply: Reply, origin: Option<&str>) -> Response<Full<Bytes>> {
    let (bytes, content_type) = reply.encode();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            h.append(n, v);
        }
    };
    if let Some(ct) = content_type {
        put("content-type", ct);
    }
    for (name, value) in &reply.headers {
        put(name, value);
    }
    if let Some(origin) = origin {
        put("access-control-allow-origin", origin);
        put("access-control-allow-credentials", "true");
        put("access-control-expose-headers", EXPOSED_HEADERS);
    }
    // Answers depend on Origin whenever CORS is on, so caches must key on it.
    put("vary", "Origin");
    resp
}
