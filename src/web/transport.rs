//! The engine's [`Transport`] over `fetch`, with a timeout through AbortController. The request
//! is a few lines of JavaScript (a wrapper crate such as gloo-net costs more wasm than the whole
//! call); the answer crosses as one array.

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};

use super::js::ferry_on_line;

#[wasm_bindgen(inline_js = r#"
const TIMEOUT = 'ferry:timeout';
export function ferry_fetch(url, method, headers, body, timeoutMs) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; controller.abort(); }, timeoutMs);
  const h = new Headers();
  for (let i = 0; i + 1 < headers.length; i += 2) h.append(headers[i], headers[i + 1]);
  const init = { method, headers: h, signal: controller.signal };
  if (body !== undefined) init.body = body;
  return fetch(url, init)
    .then((res) => res.text().then((text) => {
      const out = [res.status, text];
      for (const [k, v] of res.headers) out.push(k, v);
      return out;
    }))
    .then((out) => { clearTimeout(timer); return out; }, (e) => {
      clearTimeout(timer);
      if (timedOut || controller.signal.aborted) throw TIMEOUT;
      throw (e && e.name ? e.name + ': ' + e.message : String(e));
    });
}
"#)]
extern "C" {
    /// `fetch` with a timeout. Resolves to `[status, body, name1, value1, …]`; rejects with
    /// `"ferry:timeout"` or the error's `"name: message"`.
    #[wasm_bindgen(catch)]
    fn ferry_fetch(
        url: &str,
        method: &str,
        headers: Array,
        body: Option<String>,
        timeout_ms: f64,
    ) -> Result<Promise, JsValue>;
}

/// Sends requests with `fetch`.
#[derive(Debug, Clone)]
pub struct FetchTransport {
    /// Abort a request after this many milliseconds.
    pub timeout_ms: u32,
}

fn method(m: &str) -> &'static str {
    match m {
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "GET",
    }
}

fn failed(e: JsValue) -> NetError {
    match e.as_string() {
        Some(s) if s == "ferry:timeout" => NetError::Timeout,
        Some(s) => NetError::Failed(s),
        None => NetError::Failed("fetch failed".into()),
    }
}

impl Transport for FetchTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        if !ferry_on_line() {
            return Err(NetError::Offline);
        }
        let headers = Array::new();
        for (k, v) in &req.headers {
            headers.push(&JsValue::from_str(k));
            headers.push(&JsValue::from_str(v));
        }
        let answer = ferry_fetch(
            &req.url,
            method(&req.method),
            headers,
            req.body,
            f64::from(self.timeout_ms),
        )
        .map_err(failed)?;
        let out = Array::from(&JsFuture::from(answer).await.map_err(failed)?);
        let status = out.get(0).as_f64().unwrap_or(0.0) as u16;
        let body = out.get(1).as_string().unwrap_or_default();
        let headers = (2..out.length().saturating_sub(1))
            .step_by(2)
            .map(|i| {
                let s = |j| out.get(j).as_string().unwrap_or_default();
                (s(i), s(i + 1))
            })
            .collect();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}
