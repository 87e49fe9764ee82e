//! OData-style JSON batch: `{ "requests": [...] }` → `{ "responses": [...] }`. Each sub-request
//! goes through the same `api::handle` as a lone request, so it is answered exactly as it would
//! be alone; the batch is not a transaction.

use crate::api::{self, ApiRequest};
use crate::reply::{body_as_value, Reply};
use crate::state::{lock, AppState};
use serde_json::{json, Map, Value};

pub const MAX_ITEMS: usize = 1000;

pub fn run(state: &AppState, body: &[u8]) -> Reply {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Reply::error(400, format!("malformed JSON: {e}")),
    };
    let Some(items) = doc.get("requests").and_then(Value::as_array) else {
        return Reply::error(400, "a batch is an object with a \"requests\" array");
    };
    if items.len() > MAX_ITEMS {
        return Reply::error(413, format!("at most {MAX_ITEMS} requests per batch"));
    }
    {
        let mut stats = lock(&state.stats);
        stats.batches += 1;
        stats.batch_items += items.len() as u64;
    }
    let responses: Vec<Value> = items.iter().map(|item| run_one(state, item)).collect();
    Reply::json(200, json!({ "responses": responses }))
}

fn run_one(state: &AppState, item: &Value) -> Value {
    let id = item.get("id").cloned().unwrap_or(Value::Null);
    let reply = match sub_request(item) {
        // `etagOnly` by each sub-request's own path, as if it came alone.
        Ok(req) if lock(&state.faults).etag_only(&req.path) => {
            api::handle(state, &req).without_versions()
        }
        Ok(req) => api::handle(state, &req),
        Err(msg) => Reply::error(400, msg),
    };
    let mut out = Map::new();
    out.insert("id".into(), id);
    out.insert("status".into(), json!(reply.status));
    if !reply.headers.is_empty() {
        let headers: Map<String, Value> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect();
        out.insert("headers".into(), Value::Object(headers));
    }
    if let Some(body) = body_as_value(&reply.body) {
        out.insert("body".into(), body);
    }
    Value::Object(out)
}

fn sub_request(item: &Value) -> Result<ApiRequest, String> {
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
        None | Some(Value::Null) => Vec::new(),
        Some(v) => v.to_string().into_bytes(),
    };
    Ok(ApiRequest {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// Accepts `/api/x`, `x` (relative to /api/) and `http://host/api/x`.
fn split_url(url: &str) -> (String, String) {
    let url = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => url,
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/api/{path}")
    };
    (path, query.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("/api/t?since=1"),
            ("/api/t".into(), "since=1".into())
        );
        assert_eq!(split_url("t/1"), ("/api/t/1".into(), String::new()));
        assert_eq!(
            split_url("http://h:1/api/t"),
            ("/api/t".into(), String::new())
        );
    }
}
