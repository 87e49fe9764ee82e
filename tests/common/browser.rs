//! Helpers shared by the browser tests that talk to the reference server (its URL comes at build
//! time as FERRY_SERVER_URL, from scripts/with-server).
#![allow(dead_code)]

use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

pub const SERVER: Option<&str> = option_env!("FERRY_SERVER_URL");

pub fn server() -> &'static str {
    SERVER.expect("FERRY_SERVER_URL must be set at build time (run through scripts/with-server)")
}

pub fn js(text: &str) -> JsValue {
    js_sys::JSON::parse(text).expect("test JSON")
}

pub fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

pub fn unique(name: &str) -> String {
    format!("{name}{}", (js_sys::Math::random() * 1e9) as u64)
}

pub async fn ok(p: Promise) -> JsValue {
    JsFuture::from(p).await.expect("promise resolves")
}

pub async fn fails(p: Promise) -> String {
    let e = JsFuture::from(p).await.expect_err("promise rejects");
    let e: js_sys::Error = e.dyn_into().expect("an Error");
    format!("{}: {}", String::from(e.name()), String::from(e.message()))
}

pub async fn http(method: &str, path: &str, body: Option<&str>) -> JsValue {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(b) = body {
        init.set_body(&JsValue::from_str(b));
    }
    let window = web_sys::window().unwrap();
    let res: web_sys::Response =
        JsFuture::from(window.fetch_with_str_and_init(&format!("{}{path}", server()), &init))
            .await
            .unwrap()
            .dyn_into()
            .unwrap();
    let text = JsFuture::from(res.text().unwrap())
        .await
        .unwrap()
        .as_string()
        .unwrap();
    if text.is_empty() {
        JsValue::NULL
    } else {
        js_sys::JSON::parse(&text).unwrap_or(JsValue::from_str(&text))
    }
}

/// Sets the server's faults to `json`, and only those: they merge on the server, so it starts
/// from none, and no earlier `match` lingers.
pub async fn faults(json: &str) {
    http("POST", "/__admin/reset", None).await;
    http("POST", "/__admin/faults", Some(json)).await;
}

/// The server's records of collection `c`.
pub async fn server_records(c: &str) -> Array {
    Array::from(&get(&http("GET", &format!("/api/{c}"), None).await, "data"))
}

/// Polls `check` every 20 ms for up to 2 s; whether it said yes.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    mut check: impl FnMut() -> F,
) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        sleep(20).await;
    }
    false
}

pub async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    ok(p).await;
}
