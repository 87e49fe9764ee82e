//! Calling a `MemServer` directly from its own tests.
#![allow(dead_code)]

use ferry::core::sync::http::{HttpRequest, HttpResponse, Transport};
use serde_json::Value;

use crate::mem_server::MemServer;
use crate::native_env::block_on;

pub fn req(method: &str, url: &str, headers: &[(&str, &str)], body: Option<Value>) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        url: url.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.map(|b| b.to_string()),
    }
}

pub fn call(
    s: &MemServer,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> HttpResponse {
    block_on(s.send(req(method, url, headers, body))).expect("an answer")
}

pub fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}
