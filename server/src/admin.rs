//! `/__admin/...`: fault switches, token, stats, dump and wipe for tests. The HTTP layer only
//! lets loopback peers reach this.

use crate::cli::Mode;
use crate::db;
use crate::faults::{Faults, Stats};
use crate::reply::Reply;
use crate::state::{lock, AppState};
use serde_json::{json, Value};

pub fn handle(state: &AppState, method: &str, path: &str, body: &[u8]) -> Reply {
    let route = path.trim_start_matches("/__admin").trim_end_matches('/');
    let post = method == "POST";
    let get = method == "GET" || method == "HEAD";
    let parse = || -> Result<Value, Reply> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(body).map_err(|e| Reply::error(400, format!("malformed JSON: {e}")))
    };
    let result = match (route, get, post) {
        ("/faults", true, _) => Ok(Reply::json(200, lock(&state.faults).to_json())),
        ("/faults", _, true) => parse().and_then(|v| {
            let mut f = lock(&state.faults);
            f.merge(&v).map_err(|e| Reply::error(400, e))?;
            Ok(Reply::json(200, f.to_json()))
        }),
        ("/reset", _, true) => {
            let mut f = lock(&state.faults);
            *f = Faults::default();
            Ok(Reply::json(200, f.to_json()))
        }
        ("/token", true, _) => Ok(token_reply(state)),
        ("/token", _, true) => parse().and_then(|v| {
            let token = match v.get("token") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                _ => {
                    return Err(Reply::error(
                        400,
                        "token must be a non-empty string or null",
                    ))
                }
            };
            *lock(&state.token) = token;
            Ok(token_reply(state))
        }),
        ("/mode", true, _) => Ok(mode_reply(state)),
        ("/mode", _, true) => parse().and_then(|v| {
            let mode = v
                .get("mode")
                .and_then(Value::as_str)
                .and_then(Mode::parse)
                .ok_or_else(|| Reply::error(400, "mode must be \"versioned\" or \"lww\""))?;
            *lock(&state.mode) = mode;
            Ok(mode_reply(state))
        }),
        ("/stats", true, _) => Ok(Reply::json(200, lock(&state.stats).to_json())),
        ("/stats/reset", _, true) => {
            let mut s = lock(&state.stats);
            *s = Stats::default();
            Ok(Reply::json(200, s.to_json()))
        }
        ("/dump", true, _) => db::dump(&lock(&state.db))
            .map(|m| Reply::json(200, Value::Object(m)))
            .map_err(db_error),
        ("/wipe", _, true) => db::wipe(&lock(&state.db))
            .map(|()| Reply::json(200, json!({ "wiped": true })))
            .map_err(db_error),
        ("/health", true, _) => {
            let seq = db::current_seq(&lock(&state.db)).unwrap_or(-1);
            Ok(Reply::json(
                200,
                json!({ "ok": true, "mode": state.mode().name(), "seq": seq }),
            ))
        }
        _ => Err(Reply::error(404, format!("no admin route {method} {path}"))),
    };
    result.unwrap_or_else(|r| r)
}

fn db_error(e: rusqlite::Error) -> Reply {
    Reply::error(500, format!("storage error: {e}"))
}

fn token_reply(state: &AppState) -> Reply {
    // The token itself is not echoed: only whether one is required.
    Reply::json(200, json!({ "required": lock(&state.token).is_some() }))
}

fn mode_reply(state: &AppState) -> Reply {
    Reply::json(200, json!({ "mode": state.mode().name() }))
}
