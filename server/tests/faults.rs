//! Fault switches, bearer tokens and the rest of the admin API.

mod common;

use common::Server;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn fail_next_with_retry_after_and_match() {
    let s = Server::start(&[]);
    s.admin(
        "faults",
        json!({"failNext": 2, "status": 503, "retryAfter": "1", "match": "/api/a"}),
    );
    // Not matching the prefix: untouched.
    assert_eq!(s.post("/api/b", json!({})).status, 201);
    for _ in 0..2 {
        let r = s.post("/api/a", json!({"x": 1}));
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(s.post("/api/a", json!({"x": 1})).status, 201);
    // Failed requests were not applied.
    assert_eq!(s.get("/api/a").json()["data"].as_array().unwrap().len(), 1);
    let f = s.get("/__admin/faults").json();
    assert_eq!(f["failNext"], 0);
    assert_eq!(f["match"], "/api/a");

    // A refusal as servers written for Sencha's proxies give it: a 200 that says no.
    let no = json!({"success": false, "message": "Title is required"});
    s.admin(
        "faults",
        json!({"failNext": 1, "status": 200, "body": no.clone()}),
    );
    let r = s.post("/api/a", json!({"x": 2}));
    assert_eq!((r.status, r.json()), (200, no));
    assert_eq!(s.get("/api/a").json()["data"].as_array().unwrap().len(), 1);

    s.admin("reset", json!({}));
    s.admin("faults", json!({"failNext": 1, "status": 429}));
    let r = s.get("/api/a");
    assert_eq!((r.status, r.header("retry-after")), (429, None));
    let stats = s.get("/__admin/stats").json();
    assert_eq!(stats["faulted"], 4);
    assert_eq!(stats["writes"], 2);
    // Bad settings are refused whole.
    let r = s
        .req("POST", "/__admin/faults")
        .json(json!({"failNext": 1, "status": "x"}))
        .send();
    assert_eq!(r.status, 400);
    assert_eq!(s.get("/__admin/faults").json()["failNext"], 0);
}

#[test]
fn dropped_answer_then_retry_gets_committed_answer() {
    let s = Server::start(&[]);
    s.admin("faults", json!({"dropAfterCommit": 1}));
    let send = || {
        s.req("POST", "/api/orders")
            .header("Idempotency-Key", "order-1")
            .json(json!({"clientId": "tmp", "total": 5}))
            .try_send()
    };
    assert!(send().is_err(), "the first answer must be lost");
    // It was committed all the same.
    assert_eq!(
        s.get("/api/orders").json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = send().unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["clientId"], "tmp");
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    let data = s.get("/api/orders").json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 1);
    assert_eq!(data[0], r.json());
    // Reads are not writes: they are never dropped.
    s.admin("faults", json!({"dropAfterCommit": 1}));
    assert_eq!(s.get("/api/orders").status, 200);
    assert!(s.req("DELETE", "/api/orders/1").try_send().is_err());
    assert_eq!(s.get("/api/orders/1").status, 404);
    assert_eq!(s.get("/__admin/stats").json()["dropped"], 2);
}

#[test]
fn html_next_and_delay() {
    let s = Server::start(&[]);
    s.admin("faults", json!({"htmlNext": 1}));
    let r = s.post("/api/p", json!({}));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("<html"));
    assert_eq!(s.get("/api/p").json()["data"], json!([]));

    s.admin("faults", json!({"delayMs": 300}));
    let t = Instant::now();
    assert_eq!(s.post("/api/p", json!({})).status, 201);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Admin and static requests are not delayed.
    let t = Instant::now();
    s.get("/__admin/faults");
    assert!(t.elapsed() < Duration::from_millis(300));
    s.admin("reset", json!(null));
    let t = Instant::now();
    s.get("/api/p");
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[test]
fn bearer_token_required_and_changeable() {
    let s = Server::start(&["--require-token", "secret"]);
    let r = s.get("/api/t");
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].is_string());
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let ok = s
        .req("GET", "/api/t")
        .header("Authorization", "Bearer secret")
        .send();
    assert_eq!(ok.status, 200);
    let batch = json!({"requests": [{"id": "1", "method": "GET", "url": "/api/t"}]});
    assert_eq!(s.post("/api/$batch", batch).status, 401);

    s.admin("token", json!({"token": "rotated"}));
    let old = s
        .req("GET", "/api/t")
        .header("Authorization", "Bearer secret")
        .send();
    assert_eq!(old.status, 401);
    let new = s
        .req("GET", "/api/t")
        .header("Authorization", "bearer rotated")
        .send();
    assert_eq!(new.status, 200);
    s.admin("token", json!({"token": null}));
    assert_eq!(s.get("/api/t").status, 200);
    // A refused write is not applied.
    s.admin("token", json!({"token": "x"}));
    assert_eq!(s.post("/api/t", json!({})).status, 401);
    assert_eq!(s.get("/__admin/stats").json()["writes"], 0);
}

#[test]
fn dump_wipe_and_stats() {
    let s = Server::start(&[]);
    let a = s.post("/api/a", json!({"n": 1})).json();
    s.post("/api/b", json!({"n": 2}));
    let gone = s.post("/api/b", json!({"n": 3})).json();
    s.req(
        "DELETE",
        &format!("/api/b/{}", gone["id"].as_str().unwrap()),
    )
    .send();
    let dump = s.get("/__admin/dump").json();
    assert_eq!(dump["a"], json!([a]));
    assert_eq!(dump["b"].as_array().unwrap().len(), 1);

    let stats = s.get("/__admin/stats").json();
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["writes"], 4);
    assert_eq!(stats["byMethod"]["POST"], 3);
    assert_eq!(stats["byMethod"]["DELETE"], 1);
    s.admin("stats/reset", json!({}));
    assert_eq!(s.get("/__admin/stats").json()["requests"], 0);

    let cursor = s.get("/api/a").json()["cursor"].clone();
    s.admin("wipe", json!({}));
    assert_eq!(s.get("/__admin/dump").json(), json!({}));
    // Counters survive a wipe: old cursors stay valid and ids are not reused.
    assert_eq!(s.get("/api/a").json()["cursor"], cursor);
    assert_ne!(s.post("/api/a", json!({})).json()["id"], a["id"]);
    assert_eq!(s.get("/__admin/health").json()["ok"], true);
    assert_eq!(s.get("/__admin/nope").status, 404);
}

#[test]
fn etag_only_keeps_versions_out_of_bodies() {
    let s = Server::start(&[]);
    s.admin("faults", json!({"etagOnly": "/api/e"}));
    let made = s.post("/api/e", json!({"title": "a"}));
    assert_eq!(made.status, 201);
    assert_eq!(made.header("etag"), Some("\"1\""));
    let id = made.json()["id"].as_str().unwrap().to_string();
    assert!(made.json().get("version").is_none(), "{}", made.text());
    let one = s.get(&format!("/api/e/{id}"));
    assert_eq!(one.header("etag"), Some("\"1\""));
    assert!(one.json().get("version").is_none());
    let list = s.get("/api/e").json();
    assert!(list["data"][0].get("version").is_none(), "{list}");
    assert_eq!(list["data"][0]["title"], "a");
    // A 412's record, a replay and a batch's answers carry none either.
    let stale = s
        .req("PUT", &format!("/api/e/{id}"))
        .header("If-Match", "\"9\"")
        .json(json!({"title": "b"}))
        .send();
    assert_eq!(stale.status, 412);
    assert_eq!(stale.header("etag"), Some("\"1\""));
    assert!(stale.json().get("version").is_none(), "{}", stale.text());
    for _ in 0..2 {
        let r = s
            .req("PUT", &format!("/api/e/{id}"))
            .header("Idempotency-Key", "k1")
            .json(json!({"title": "c"}))
            .send();
        assert_eq!((r.status, r.header("etag")), (200, Some("\"2\"")));
        assert!(r.json().get("version").is_none(), "{}", r.text());
    }
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/api/e", "body": {"title": "d"}},
        {"id": "2", "method": "POST", "url": "/api/other", "body": {}}
    ]});
    let answers = s.post("/api/$batch", batch).json();
    let answers = answers["responses"].as_array().unwrap().clone();
    assert!(answers[0]["body"].get("version").is_none(), "{answers:?}");
    assert_eq!(answers[0]["headers"]["ETag"], "\"1\"");
    assert_eq!(answers[1]["body"]["version"], 1, "{answers:?}");
    // Other collections keep theirs.
    assert_eq!(s.post("/api/other", json!({})).json()["version"], 1);
    assert_eq!(s.get("/__admin/faults").json()["etagOnly"], "/api/e");
    let bad = s
        .req("POST", "/__admin/faults")
        .json(json!({"etagOnly": 1}));
    assert_eq!(bad.send().status, 400);
}
