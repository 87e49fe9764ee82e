//! The headers of sync requests: the store's `headers` and what `getHeaders` gives. The app is
//! asked at the start of every sync run and read, so credentials it renewed are used at once
//! (also after a session that expired without a 401), and again after a 401. Calls that overlap
//! (a `pull()` beside a sync run, several reads answered 401 at once) share one answer: a
//! refresh token that may be used once must not be spent twice.

use js_sys::Promise;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::core::{Error, ErrorKind};
use crate::web::js::Timer;

use super::convert::{from_js_error, to_record};
use super::ferry::Inner;

/// A `getHeaders` call in flight: its answer, raced with `timeoutMs`; the timer of that; and
/// what rejects it early (when the store closes).
pub(crate) type HeadersCall = (Promise, Timer, js_sys::Function);

impl Inner {
    /// The headers for a sync run or a read, asking `getHeaders` now.
    pub(crate) async fn headers(&self) -> Result<Vec<(String, String)>, Error> {
        if self.get_headers.is_some() {
            self.ask_headers().await?;
        }
        Ok(self.compose_headers())
    }

    /// New headers after a 401 answered to a request sent with `used`: from `getHeaders`,
    /// unless they changed since `used` (another caller refreshed them meanwhile).
    pub(crate) async fn refresh_headers(
        &self,
        used: &[(String, String)],
    ) -> Result<Vec<(String, String)>, Error> {
        if self.compose_headers() == used {
            self.ask_headers().await?;
        }
        Ok(self.compose_headers())
    }

    /// Ends a `getHeaders` call in flight (the store closes): what waits on it fails now, not
    /// after `timeoutMs`.
    pub(crate) fn drop_headers_call(&self, why: &JsValue) {
        if let Some((_, _, reject)) = self.headers_call.borrow_mut().take() {
            let _ = reject.call1(&JsValue::NULL, why);
        }
    }

    fn compose_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .engine
            .config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        h.extend(self.auth.borrow().iter().cloned());
        h
    }

    /// Asks `getHeaders` (or joins the call in flight) and keeps what it gives.
    async fn ask_headers(&self) -> Result<(), Error> {
        let Some(f) = &self.get_headers else {
            return Ok(());
        };
        let failed = |e: JsValue| {
            let e = from_js_error(e, ErrorKind::Network);
            Error::new(e.kind, format!("getHeaders failed: {}", e.message))
        };
        let call = self.headers_call.borrow().as_ref().map(|(p, ..)| p.clone());
        let call = match call {
            Some(p) => p,
            None => {
                let v = f.call0(&JsValue::NULL).map_err(failed)?;
                // A getHeaders that never settles must not hold sync (and `pull()`) for ever.
                let ms = f64::from(self.engine.config.timeout_ms);
                let mut timer = None;
                let mut early = None;
                let late = Promise::new(&mut |_, reject| {
                    early = Some(reject.clone());
                    let why = format!("it did not settle within {ms} ms (timeoutMs)");
                    timer = Some(Timer::new(ms, move || {
                        let _ = reject.call1(&JsValue::NULL, &JsValue::from_str(&why));
                    }));
                });
                let raced = Promise::race(&js_sys::Array::of2(&Promise::resolve(&v), &late));
                if let (Some(timer), Some(early)) = (timer, early) {
                    *self.headers_call.borrow_mut() = Some((raced.clone(), timer, early));
                }
                raced
            }
        };
        let v = JsFuture::from(call.clone()).await;
        let done = matches!(&*self.headers_call.borrow(), Some((p, ..)) if JsValue::from(p) == JsValue::from(&call));
        if done {
            self.headers_call.borrow_mut().take();
        }
        if self.engine.is_closed() {
            return Err(Error::new(ErrorKind::Closed, "the store was closed"));
        }
        let rec = to_record(&v.map_err(failed)?, "the result of getHeaders")?;
        let mut list = Vec::with_capacity(rec.len());
        for (k, v) in rec {
            let v = match v {
                Value::String(s) => s,
                // Header values are text; a number or a boolean is written as one.
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                // null leaves the header out.
                Value::Null => continue,
                _ => {
                    return Err(Error::validation(format!(
                        "the result of getHeaders: header `{k}` is not text, a number, a \
                         boolean or null"
                    )))
                }
            };
            list.push((k, v));
        }
        *self.auth.borrow_mut() = list;
        Ok(())
    }
}
