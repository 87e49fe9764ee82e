//! Devices of an ETag-only server (PROTOCOL.md section 4), shared by the ETag-only tests.
#![allow(dead_code)]

use crate::mem_server::MemServer;
use crate::native_env::*;
use ferry::core::sync::http::HttpRequest;
use ferry::core::{Engine, MemoryStorage};
use serde_json::json;

/// `s` without the `version` field in any body: versions only in `ETag`.
pub fn etag_only(s: &MemServer) -> Tap<MemServer> {
    s.set_etag_only(true);
    Tap::new(s.clone())
}

pub fn if_match(req: &HttpRequest) -> Option<&str> {
    header(req, "If-Match")
}

/// Two devices (stores of different clients) of an ETag-only server.
pub fn devices(cfg: impl Fn() -> ferry::core::StoreConfig) -> (Db, Db, Tap<MemServer>) {
    let tap = etag_only(&MemServer::new());
    let a = open(cfg(), MemoryStorage::new());
    let b = block_on(Engine::open(
        cfg(),
        MemoryStorage::new(),
        TestEnv::seeded(2),
    ))
    .unwrap();
    (a, b, tap)
}

/// Device A creates a record; device B only pulls it.
pub fn two_devices(cfg: impl Fn() -> ferry::core::StoreConfig) -> (Db, Db, Tap<MemServer>, String) {
    let (a, b, tap) = devices(cfg);
    let id = create(&a, "todos", json!({"title": "first", "n": 1}));
    flush_all(&a, &tap);
    let sid = id_of(&get(&a, "todos", &id).unwrap());
    pull(&b, &tap, "todos");
    (a, b, tap, sid)
}

/// Device B pulls `n` records another client stored (no versions known), then updates each.
pub fn pulled_then_updated(n: usize) -> (Db, Tap<MemServer>) {
    let (_a, b, tap, _) = two_devices(|| crate::native_env::config(&["todos"]));
    let ids: Vec<String> = (0..n)
        .map(|i| tap.inner.server_create("todos", json!({ "i": i })))
        .collect();
    pull(&b, &tap, "todos");
    for id in &ids {
        update(&b, "todos", id, json!({"n": 1}));
    }
    (b, tap)
}
