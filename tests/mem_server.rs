//! Tests of the in-memory protocol server itself (tests/common/mem_server.rs).
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;

use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use mem_server::MemServer;
use serde_json::{json, Value};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// MemServer's futures are always ready, so one poll with a no-op waker drives them.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("MemServer futures never wait"),
    }
}

fn req(method: &str, url: &str, headers: &[(&str, &str)], body: Option<Value>) -> HttpRequest {
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

fn call(
    s: &MemServer,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> HttpResponse {
    block_on(s.send(req(method, url, headers, body))).expect("an answer")
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

#[test]
fn crud_follows_the_reference_server() {
    let s = MemServer::new();
    let r = call(
        &s,
        "POST",
        "/api/todos",
        &[],
        Some(json!({"title": "a", "clientId": "tmp-1"})),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.header("location"), Some("/api/todos/1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        json_of(&r),
        json!({"id": "1", "title": "a", "clientId": "tmp-1", "version": 1})
    );

    let r = call(&s, "GET", "/api/todos/1", &[], None);
    assert_eq!((r.status, json_of(&r)["title"].clone()), (200, json!("a")));

    let r = call(
        &s,
        "PUT",
        "/api/todos/1",
        &[],
        Some(json!({"title": "b", "version": 99, "n": {"x": 1, "y": 2}})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ETag"), Some("\"2\""));
    assert_eq!(
        json_of(&r),
        json!({"id": "1", "title": "b", "version": 2, "n": {"x": 1, "y": 2}})
    );

    let r = call(
        &s,
        "PATCH",
        "/api/todos/1",
        &[],
        Some(json!({"title": null, "n": {"x": null, "z": 3}})),
    );
    assert_eq!(
        json_of(&r),
        json!({"id": "1", "version": 3, "n": {"y": 2, "z": 3}})
    );

    let r = call(&s, "PUT", "/api/todos/1", &[], Some(json!({"id": "2"})));
    assert_eq!(r.status, 422, "body id differs from URL id");

    assert_eq!(call(&s, "DELETE", "/api/todos/1", &[], None).status, 204);
    assert_eq!(call(&s, "GET", "/api/todos/1", &[], None).status, 404);
    assert_eq!(call(&s, "DELETE", "/api/todos/1", &[], None).status, 404);
    assert_eq!(
        call(&s, "PUT", "/api/todos/1", &[], Some(json!({}))).status,
        404
    );
    assert_eq!(
        call(&s, "PATCH", "/api/todos/7", &[], Some(json!({}))).status,
        404
    );
    assert!(s.records("todos").is_empty());
    assert!(s.is_deleted("todos", "1"));
    assert_eq!(s.stats().writes_applied, 4);
    assert_eq!(
        call(&s, "PUT", "/api/todos", &[], Some(json!({}))).status,
        405
    );
}

#[test]
fn ids_assigned_honoured_and_never_reused() {
    let s = MemServer::new();
    assert_eq!(s.server_create("t", json!({"id": "2"})), "2");
    assert_eq!(s.server_create("t", json!({})), "1");
    assert_eq!(
        s.server_create("t", json!({"id": "2"})),
        "3",
        "a taken id is replaced"
    );
    assert_eq!(s.server_create("t", json!({"id": 10})), "10");
    assert_eq!(
        s.record("t", "10").unwrap()["id"],
        json!(10),
        "a numeric id stays a number"
    );
    assert!(s.server_delete("t", "1"));
    assert_eq!(
        s.server_create("t", json!({"id": "1"})),
        "4",
        "a tombstoned id is not reused"
    );
    assert_eq!(
        s.server_create("other", json!({})),
        "1",
        "counters are per collection"
    );
    let ids: Vec<Value> = s.records("t").iter().map(|r| r["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![json!(10), json!("2"), json!("3"), json!("4")],
        "sorted by id"
    );
}

#[test]
fn ids_are_one_percent_decoded_segment() {
    let s = MemServer::new();
    for id in ["a/b", "../admin", "x?y#z", "é x%"] {
        let r = call(&s, "POST", "/api/t", &[], Some(json!({"id": id})));
        assert_eq!(r.status, 201);
        let url = ferry::core::sync::http::record_url("/api/t", id);
        let r = call(&s, "GET", &url, &[], None);
        assert_eq!(
            (r.status, json_of(&r)["id"].clone()),
            (200, json!(id)),
            "{url}"
        );
        assert_eq!(
            call(&s, "PATCH", &url, &[], Some(json!({"k": 1}))).status,
            200
        );
    }
    assert!(s.record("t", "a/b").is_some());
    assert_eq!(call(&s, "GET", "/api/t/a/b", &[], None).status, 404);
    assert_eq!(call(&s, "GET", "/api/t/%zz", &[], None).status, 400);
    assert_eq!(call(&s, "GET", "/api/t/%ff", &[], None).status, 400);
    assert_eq!(call(&s, "GET", "/api/bad.name", &[], None).status, 400);
    assert_eq!(call(&s, "GET", "/api/", &[], None).status, 400);
    assert_eq!(call(&s, "GET", "/elsewhere", &[], None).status, 404);
}

#[test]
fn if_match_mismatch_is_412_with_the_current_record() {
    let s = MemServer::new();
    let id = s.server_create("t", json!({"v": 0}));
    s.server_patch("t", &id, json!({"v": 1})).unwrap();
    s.server_patch("t", &id, json!({"v": 2})).unwrap();
    assert_eq!(s.version("t", &id), Some(3));
    for stale in ["\"2\"", "2", "W/\"1\"", "\"1\", \"2\""] {
        let r = call(
            &s,
            "PUT",
            "/api/t/1",
            &[("If-Match", stale)],
            Some(json!({"v": 9})),
        );
        assert_eq!(r.status, 412, "{stale}");
        assert_eq!(r.header("etag"), Some("\"3\""));
        assert_eq!(json_of(&r), json!({"id": "1", "v": 2, "version": 3}));
    }
    assert_eq!(
        call(&s, "DELETE", "/api/t/1", &[("if-match", "\"1\"")], None).status,
        412
    );
    for ok in ["\"3\"", "3", "W/\"3\"", "*", "\"1\", \"3\""] {
        let v = s.version("t", "1").unwrap().to_string();
        let tag = if ok == "*" {
            ok.to_string()
        } else {
            ok.replace('3', &v)
        };
        let r = call(
            &s,
            "PATCH",
            "/api/t/1",
            &[("If-Match", &tag)],
            Some(json!({"ok": ok})),
        );
        assert_eq!(r.status, 200, "{tag}");
    }
    assert_eq!(s.stats().writes_applied, 5);
}

#[test]
fn idempotency_key_replays_without_applying() {
    let s = MemServer::new();
    let h = [("Idempotency-Key", "m-1")];
    let first = call(&s, "POST", "/api/t", &h, Some(json!({"clientId": "c1"})));
    let again = call(&s, "POST", "/api/t", &h, Some(json!({"clientId": "c1"})));
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.body, again.body);
    assert_eq!(again.header("etag"), Some("\"1\""));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.records("t").len(), 1);
    assert_eq!(s.stats().replays, 1);
    assert_eq!(s.applied_keys(), vec!["m-1"]);
    // Same key, another request: refused.
    assert_eq!(call(&s, "DELETE", "/api/t/1", &h, None).status, 422);
    // A 412 is not remembered: the same key applies once the conflict is resolved.
    let k = [("Idempotency-Key", "m-2"), ("If-Match", "\"7\"")];
    assert_eq!(
        call(&s, "PUT", "/api/t/1", &k, Some(json!({"a": 1}))).status,
        412
    );
    let k = [("Idempotency-Key", "m-2"), ("If-Match", "\"1\"")];
    assert_eq!(
        call(&s, "PUT", "/api/t/1", &k, Some(json!({"a": 1}))).status,
        200
    );
    assert_eq!(
        call(&s, "PUT", "/api/t/1", &k, Some(json!({"a": 1}))).status,
        200
    );
    assert_eq!(s.version("t", "1"), Some(2));
    assert_eq!(s.applied_keys(), vec!["m-1", "m-2"]);
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/t",
            &[("Idempotency-Key", " ")],
            Some(json!({}))
        )
        .status,
        400
    );
    let long = "k".repeat(256);
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/t",
            &[("Idempotency-Key", &long)],
            Some(json!({}))
        )
        .status,
        400
    );

    // Without idempotency a repeat applies twice: what the keys are for.
    s.set_idempotency(false);
    let h = [("Idempotency-Key", "m-3")];
    call(&s, "POST", "/api/t", &h, Some(json!({})));
    call(&s, "POST", "/api/t", &h, Some(json!({})));
    assert_eq!(s.records("t").len(), 3);
    assert_eq!(s.applied_keys(), vec!["m-1", "m-2", "m-3", "m-3"]);
}

#[test]
fn delta_reads_carry_tombstones_and_a_cursor() {
    let s = MemServer::new();
    let r = call(&s, "GET", "/api/t", &[], None);
    assert_eq!(json_of(&r), json!({"data": [], "cursor": "0"}));
    let a = s.server_create("t", json!({"n": "a"}));
    let b = s.server_create("t", json!({"n": "b"}));
    s.server_create("u", json!({"n": "other collection"}));
    let cursor = s.cursor();
    assert_eq!(cursor, "3");
    s.server_patch("t", &a, json!({"n": "a2"}));
    s.server_delete("t", &b);
    s.server_create("t", json!({"id": "0", "n": "c"}));
    let r = json_of(&call(
        &s,
        "GET",
        &format!("/api/t?since={cursor}"),
        &[],
        None,
    ));
    assert_eq!(r["cursor"], json!("6"));
    assert_eq!(
        r["data"],
        json!([{"id": "1", "n": "a2", "version": 2}, {"id": "2", "deleted": true}, {"id": "0", "n": "c", "version": 1}])
    );
    let full = json_of(&call(&s, "GET", "http://h:8080/api/t?since=", &[], None));
    let names: Vec<&Value> = full["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["n"])
        .collect();
    assert_eq!(
        names,
        vec!["a2", "c"],
        "a snapshot lists live records in creation order"
    );
    assert_eq!(
        json_of(&call(&s, "GET", "/api/t?since=6", &[], None))["data"],
        json!([])
    );
    assert_eq!(call(&s, "GET", "/api/t?since=7", &[], None).status, 400);
    assert_eq!(call(&s, "GET", "/api/t?since=-1", &[], None).status, 400);
    assert_eq!(call(&s, "GET", "/api/t?since=abc", &[], None).status, 400);

    s.set_envelope(false);
    let r = json_of(&call(&s, "GET", "/api/t?since=3", &[], None));
    assert_eq!(
        r.as_array().map(Vec::len),
        Some(2),
        "a plain server ignores since"
    );
}

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
    assert_eq!((r.status, json_of(&r)["v"].clone()), (200, json!("newer")));
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
