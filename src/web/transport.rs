//! The engine's [`Transport`] over `fetch` (gloo-net), with a timeout through AbortController.

use gloo_net::http::{Method, RequestBuilder};
use web_sys::RequestCredentials;

use crate::core::config::Credentials;
use crate::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport, REDIRECTED_TO};

use super::js::{ferry_on_line, Timer};

/// Sends requests with `fetch`.
#[derive(Debug, Clone)]
pub struct FetchTransport {
    /// Abort a request after this many milliseconds.
    pub timeout_ms: u32,
    /// Whether cookies go with requests.
    pub credentials: Credentials,
}

fn method(m: &str) -> Method {
    match m {
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        _ => Method::GET,
    }
}

impl Transport for FetchTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        if !ferry_on_line() {
            return Err(NetError::Offline);
        }
        let controller =
            web_sys::AbortController::new().map_err(|e| NetError::Failed(format!("{e:?}")))?;
        let credentials = match self.credentials {
            Credentials::SameOrigin => RequestCredentials::SameOrigin,
            Credentials::Include => RequestCredentials::Include,
            Credentials::Omit => RequestCredentials::Omit,
        };
        let mut b = RequestBuilder::new(&req.url)
            .method(method(&req.method))
            .credentials(credentials)
            .abort_signal(Some(&controller.signal()));
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        // Frameworks that pick the answer's format from `Accept` (Rails, Laravel) answer `*/*`
        // with HTML: a validation error becomes a redirect to a form page.
        if !req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Accept"))
        {
            b = b.header("Accept", "application/json");
        }
        let request = match req.body {
            Some(body) => b.body(body),
            None => b.build(),
        }
        .map_err(|e| NetError::Failed(e.to_string()))?;
        let timer = {
            let c = controller.clone();
            Timer::new(f64::from(self.timeout_ms), move || c.abort())
        };
        let result = async {
            let res = request
                .send()
                .await
                .map_err(|e| NetError::Failed(e.to_string()))?;
            let mut headers: Vec<(String, String)> = res.headers().entries().collect();
            if res.redirected() {
                headers.push((REDIRECTED_TO.to_string(), res.url()));
            }
            let status = res.status();
            let body = res
                .text()
                .await
                .map_err(|e| NetError::Failed(e.to_string()))?;
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        }
        .await;
        drop(timer);
        match result {
            Err(_) if controller.signal().aborted() => Err(NetError::Timeout),
            other => other,
        }
    }
}
