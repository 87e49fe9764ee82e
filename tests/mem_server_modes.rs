//! Tests of the in-memory protocol server itself (tests/common/mem_server.rs): batches,
//! last-writer-wins, faults, tokens, plain mode, and odd input.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_client.rs"]
mod mem_client;
#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::sync::http::{HttpRequest, NetError, Transport};
use mem_client::*;
use mem_server::MemServer;
use native_env::block_on;
use serde_json::{json, Value};

#[test]
fn batch_applies_each_request_on_its_own() {
    let s = MemServer::new();
    s.server_create("t", json!({"n": 1}));
    let batch = json!({"requests": [
        {"id": "a", "method": "POST", "url": "/api/t", "headers": {"Idempotency-Key": "k1"}, "body": {"n": 2}},
        {"id": "b", "method": "put", "url": "http://x/api/t/1", "headers": {"If-Match": "\"9\""}, "body": {"n": 3}},
        {"id": "c", "method": "PATCH", "url": "t/1", "headers": {"If-Match": 1, "Idempotency-Key": "k2"}, "body": {"n": 4}},
        {"id": "d", "method": "DELETE", "url": "/api/t/404"},
        {"id": "e", "method": "POST", "url": "/api/t", "body": "not an object"},
        {"id": "f", "method": "POST", "url": "/api/$batch", "body": {"requests": []}},
        {"id": "g"},
        {"id": "h", "method": "POST", "url": "/api/t", "headers": {"Idempotency-Key": "k1"}, "body": {"n": 2}},
        "junk"
    ]});
    let r = call(&s, "POST", "/api/$batch", &[], Some(batch));
    assert_eq!(r.status, 200);
    let out = json_of(&r)["responses"].clone();
    let statuses: Vec<u64> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![201, 412, 200, 404, 400, 400, 400, 201, 400]);
    assert_eq!(
        out[0]["body"],
        json!({"id": "2", "n": 2, "version": 1}),
        "a JSON value, not a string"
    );
    assert_eq!(out[0]["headers"]["ETag"], json!("\"1\""));
    assert_eq!(out[1]["body"]["n"], json!(1));
    assert_eq!(out[2]["body"]["n"], json!(4));
    assert_eq!(out[7]["headers"]["Idempotent-Replayed"], json!("true"));
    assert_eq!(out[8]["id"], Value::Null);
    assert_eq!(s.records("t").len(), 2);
    let st = s.stats();
    assert_eq!(
        (
            st.requests,
            st.batch_requests,
            st.batch_items,
            st.writes_applied,
            st.replays
        ),
        (1, 1, 9, 2, 1)
    );
    let log = s.log();
    assert_eq!(log[0], ("POST".into(), "/api/$batch".into(), None, 200));
    assert_eq!(
        log[1],
        (
            "$batch POST".into(),
            "/api/t".into(),
            Some("k1".into()),
            201
        )
    );
    assert_eq!(log[3].0, "$batch PATCH");
    assert_eq!(log.len(), 10);
    assert!(s.log_entries()[1].in_batch);
    assert_eq!(
        call(&s, "POST", "/api/$batch", &[], Some(json!([1]))).status,
        400
    );
    assert_eq!(call(&s, "POST", "/api/batch", &[], None).status, 400);
    s.set_batch(false);
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/$batch",
            &[],
            Some(json!({"requests": []}))
        )
        .status,
        404
    );
}

#[test]
fn lww_orders_writes_by_changed_at() {
    let s = MemServer::new();
    s.set_lww(true);
    let at = |t: &'static str| [("Ferry-Changed-At", t), ("If-Match", "\"77\"")];
    let r = call(
        &s,
        "POST",
        "/api/t",
        &at("100"),
        Some(json!({"v": "first"})),
    );
    assert_eq!(r.status, 201);
    let r = call(
        &s,
        "PUT",
        "/api/t/1",
        &at("300"),
        Some(json!({"v": "newer"})),
    );
    assert_eq!(
        (r.status, json_of(&r)["v"].clone()),
        (200, json!("newer")),
        "If-Match ignored"
    );
    let r = call(
        &s,
        "PUT",
        "/api/t/1",
        &at("200"),
        Some(json!({"v": "older"})),
    );
    assert_eq!(
        (r.status, json_of(&r)["v"].clone()),
        (200, json!("newer")),
        "the older write loses"
    );
    assert_eq!(r.header("etag"), Some("\"2\""));
    let r = call(&s, "DELETE", "/api/t/1", &at("299"), None);
    assert_eq!(
        (r.status, json_of(&r)["v"].clone()),
        (409, json!("newer")),
        "an older delete is a conflict"
    );
    assert_eq!(
        call(&s, "PATCH", "/api/t/1", &at("300"), Some(json!({"w": 1}))).status,
        200,
        "ties apply"
    );
    assert_eq!(call(&s, "DELETE", "/api/t/1", &at("301"), None).status, 204);
    assert_eq!(s.stats().writes_applied, 4);
    assert_eq!(s.changed_at("t", "1"), Some(301));
    assert_eq!(
        call(
            &s,
            "PUT",
            "/api/t/1",
            &[("Ferry-Changed-At", "x")],
            Some(json!({}))
        )
        .status,
        400
    );

    // Writes without the header use the server clock.
    s.set_now(Some(1_000));
    let id = s.server_create("t", json!({}));
    assert_eq!(
        call(
            &s,
            "PATCH",
            &format!("/api/t/{id}"),
            &at("999"),
            Some(json!({"x": 1}))
        )
        .status,
        200
    );
    assert!(s.record("t", &id).unwrap().get("x").is_none());
}

#[test]
fn faults_fail_drop_and_serve_html() {
    let s = MemServer::new();
    s.fail_next(2, 503, Some("7"));
    let r = call(&s, "POST", "/api/t", &[], Some(json!({})));
    assert_eq!((r.status, r.header("retry-after")), (503, Some("7")));
    assert_eq!(call(&s, "GET", "/api/t", &[], None).status, 503);
    assert!(s.records("t").is_empty());

    s.html_next(1);
    let r = call(&s, "POST", "/api/t", &[], Some(json!({})));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    assert!(s.records("t").is_empty());

    s.drop_before(1);
    let e = block_on(s.send(req("POST", "/api/t", &[], Some(json!({})))));
    assert!(matches!(e, Err(NetError::Failed(_))));
    assert!(s.records("t").is_empty());

    s.drop_after_commit(1);
    assert_eq!(
        call(&s, "GET", "/api/t", &[], None).status,
        200,
        "reads are not dropped"
    );
    let e = block_on(s.send(req(
        "POST",
        "/api/t",
        &[("Idempotency-Key", "k")],
        Some(json!({})),
    )));
    assert_eq!(e, Err(NetError::Failed("connection reset".into())));
    assert_eq!(
        s.records("t").len(),
        1,
        "applied before the answer was lost"
    );
    let r = call(
        &s,
        "POST",
        "/api/t",
        &[("Idempotency-Key", "k")],
        Some(json!({})),
    );
    assert_eq!(
        (r.status, r.header("idempotent-replayed")),
        (201, Some("true"))
    );
    assert_eq!(s.records("t").len(), 1);

    s.fault_match(Some("/api/u"));
    s.fail_next(1, 500, None);
    assert_eq!(call(&s, "GET", "/api/t", &[], None).status, 200);
    assert_eq!(call(&s, "GET", "/api/u", &[], None).status, 500);

    s.set_offline(true);
    assert_eq!(
        block_on(s.send(req("GET", "/api/t", &[], None))),
        Err(NetError::Offline)
    );
    s.set_offline(false);
    let st = s.stats();
    assert_eq!(
        (st.faulted, st.dropped, st.writes_applied, st.replays),
        (4, 2, 1, 1)
    );
    let statuses: Vec<u16> = s.log().iter().map(|e| e.3).collect();
    assert_eq!(statuses, vec![503, 503, 200, 0, 200, 0, 201, 200, 500]);
}

#[test]
fn bearer_token_is_required_when_set() {
    let s = MemServer::new();
    s.require_token(Some("secret".into()));
    let r = call(&s, "GET", "/api/t", &[], None);
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/t",
            &[("Authorization", "Bearer nope")],
            None
        )
        .status,
        401
    );
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/t",
            &[("authorization", "bearer secret")],
            Some(json!({}))
        )
        .status,
        201
    );
    s.require_token(None);
    assert_eq!(call(&s, "GET", "/api/t", &[], None).status, 200);
}

#[test]
fn plain_server_has_no_versions_envelopes_or_keys() {
    let s = MemServer::plain();
    let r = call(
        &s,
        "POST",
        "/api/t",
        &[("Idempotency-Key", "k")],
        Some(json!({"a": 1})),
    );
    assert_eq!(json_of(&r), json!({"id": "1", "a": 1}));
    assert_eq!(r.header("etag"), None);
    let r = call(
        &s,
        "PUT",
        "/api/t/1",
        &[("If-Match", "\"5\"")],
        Some(json!({"a": 2})),
    );
    assert_eq!((r.status, json_of(&r)), (200, json!({"id": "1", "a": 2})));
    assert_eq!(
        json_of(&call(&s, "GET", "/api/t", &[], None)),
        json!([{"id": "1", "a": 2}])
    );

    let w = MemServer::new();
    w.set_wrap_records(true);
    let r = call(&w, "POST", "/api/t", &[], Some(json!({})));
    assert_eq!(json_of(&r), json!({"data": {"id": "1", "version": 1}}));
    assert_eq!(w.server_create("t", json!({})), "2");
}

#[test]
fn clones_share_state_and_server_writes_are_not_counted() {
    let a = MemServer::new();
    let b = a.clone();
    b.server_create("t", json!({"x": 1}));
    assert_eq!(a.records("t").len(), 1);
    assert_eq!(
        a.server_put("t", "1", json!({"x": 2})).unwrap(),
        json!({"id": "1", "x": 2, "version": 2})
    );
    assert_eq!(a.server_put("t", "9", json!({})), None);
    assert_eq!(a.stats(), mem_server::Stats::default());
    assert!(a.log().is_empty());
    a.wipe();
    assert!(a.records("t").is_empty());
    assert_eq!(a.server_create("t", json!({})), "2");
}

#[test]
fn never_panics_on_odd_input() {
    let s = MemServer::new();
    s.server_create("t", json!({"n": 1}));
    let urls = [
        "",
        "/",
        "/api",
        "/api/",
        "//",
        "http://",
        "http:///api/t",
        "https://h",
        "/api/t/1/2",
        "/api/t?",
        "/api/t?since",
        "/api/t?since=%",
        "/api/t/%",
        "/api/t/%4",
        "/api/%2F",
        "/api/t#x",
        "?",
        "://",
        "/api/t/1?x=http://y",
        "/api/\u{e9}",
        "/api/t/\u{e9}",
        "api/t",
        "t",
        "/api/$batch",
        "/api/t/",
    ];
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "", "get", "BREW",
    ];
    let bodies = [
        None,
        Some(""),
        Some("{"),
        Some("[]"),
        Some("null"),
        Some("{\"requests\": 5}"),
        Some("{}"),
    ];
    let headers = [
        ("If-Match", ""),
        ("Ferry-Changed-At", "-5"),
        ("Idempotency-Key", "\u{e9}"),
        ("", ""),
    ];
    let mut seed = 7u64;
    for _ in 0..3000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = |n: usize, shift: u32| ((seed >> shift) as usize) % n;
        let r = HttpRequest {
            method: methods[pick(methods.len(), 10)].into(),
            url: urls[pick(urls.len(), 20)].into(),
            headers: vec![(headers[pick(4, 30)].0.into(), headers[pick(4, 40)].1.into())],
            body: bodies[pick(bodies.len(), 50)].map(str::to_string),
        };
        let head = r.method == "HEAD";
        let a = s.send_now(r).expect("an answer");
        assert!((200..600).contains(&a.status));
        if a.status >= 400 && a.status != 412 && !head {
            assert!(json_of(&a).get("error").is_some(), "{a:?}");
        }
    }
}
