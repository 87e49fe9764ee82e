//! Tests of the in-memory protocol server itself (tests/common/mem_server.rs): CRUD, ids,
//! versions, idempotency and delta reads.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_client.rs"]
mod mem_client;
#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use mem_client::*;
use mem_server::MemServer;
use serde_json::{json, Value};

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
