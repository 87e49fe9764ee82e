//! Batches and last-writer-wins ordering.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn batch_applies_each_request_as_alone() {
    let s = Server::start(&[]);
    let existing = s.post("/api/todos", json!({"t": "old"})).json();
    let eid = existing["id"].as_str().unwrap();
    let batch = json!({ "requests": [
        { "id": "1", "method": "POST", "url": "/api/todos",
          "headers": { "Idempotency-Key": "b-1" }, "body": { "t": "new", "clientId": "c-9" } },
        { "id": "2", "method": "PUT", "url": format!("/api/todos/{eid}"),
          "headers": { "If-Match": "\"1\"" }, "body": { "t": "changed" } },
        { "id": "3", "method": "PATCH", "url": format!("/api/todos/{eid}"),
          "headers": { "If-Match": "\"1\"" }, "body": { "t": "stale" } },
        { "id": "4", "method": "DELETE", "url": "/api/todos/missing" },
        { "id": "5", "method": "POST", "url": "/api/todos", "body": [1] },
        { "id": "6", "method": "GET", "url": format!("/api/todos/{eid}") },
        { "id": "7", "url": "/api/todos" },
        { "id": "8", "method": "POST", "url": "/api/$batch", "body": { "requests": [] } },
        { "id": "9", "method": "DELETE", "url": format!("http://example.invalid/api/todos/{eid}") },
    ]});
    let r = s.post("/api/$batch", batch.clone());
    assert_eq!(r.status, 200);
    let out = r.json();
    let resp = out["responses"].as_array().unwrap();
    let statuses: Vec<_> = resp.iter().map(|x| x["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 200, 412, 404, 400, 200, 400, 400, 204]);
    let ids: Vec<_> = resp.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(resp[0]["body"]["clientId"], "c-9");
    assert_eq!(resp[0]["headers"]["ETag"], "\"1\"");
    assert_eq!(resp[1]["body"]["version"], 2);
    // The conflict carries the current record, as it would alone.
    assert_eq!(resp[2]["body"]["t"], "changed");
    assert!(resp[3]["body"]["error"].is_string());
    assert!(resp[8].get("body").is_none());

    // Replaying the whole batch: the keyed create is not repeated.
    let again = s.post("/api/batch", batch).json();
    assert_eq!(again["responses"][0]["status"], 201);
    assert_eq!(again["responses"][0]["body"], resp[0]["body"]);
    let live = s.get("/api/todos").json()["data"].as_array().unwrap().len();
    assert_eq!(live, 1);

    assert_eq!(s.post("/api/$batch", json!([])).status, 400);
    assert_eq!(s.req("POST", "/api/$batch").raw(b"{").send().status, 400);
    let many: Vec<_> = (0..1001)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/api/todos"}))
        .collect();
    assert_eq!(
        s.post("/api/$batch", json!({ "requests": many })).status,
        413
    );
}

#[test]
fn lww_orders_writes_by_changed_at() {
    let s = Server::start(&["--mode", "lww"]);
    let create = s
        .req("POST", "/api/l")
        .header("Ferry-Changed-At", "1000")
        .json(json!({"v": "first"}))
        .send();
    let id = create.json()["id"].as_str().unwrap().to_string();
    let url = format!("/api/l/{id}");
    let write = |at: &str, v: &str| {
        s.req("PUT", &url)
            .header("Ferry-Changed-At", at)
            // Ignored in this mode.
            .header("If-Match", "\"99\"")
            .json(json!({"v": v}))
            .send()
    };
    let r = write("3000", "late");
    assert_eq!((r.status, r.json()["v"].clone()), (200, json!("late")));
    // Made earlier, arrived later: loses, and the answer is the winner.
    let r = write("2000", "early");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["v"], "late");
    assert_eq!(r.json()["version"], 2);
    assert_eq!(r.header("etag"), Some("\"2\""));
    // Equal time wins.
    assert_eq!(write("3000", "tie").json()["v"], "tie");
    let patch = s
        .req("PATCH", &url)
        .header("Ferry-Changed-At", "2500")
        .json(json!({"v": "p"}))
        .send();
    assert_eq!(patch.json()["v"], "tie");
    // An older delete loses too: a conflict (a 2xx would say "deleted"), with the survivor.
    let del = s
        .req("DELETE", &url)
        .header("Ferry-Changed-At", "2999")
        .send();
    assert_eq!((del.status, del.json()["v"].clone()), (409, json!("tie")));
    assert_eq!(s.get(&url).status, 200);
    let del = s
        .req("DELETE", &url)
        .header("Ferry-Changed-At", "4000")
        .send();
    assert_eq!(del.status, 204);
    assert_eq!(write("5000", "after").status, 404);
    assert_eq!(s.get("/__admin/stats").json()["writes"], 4);

    // The mode can be switched at run time; versioned mode checks If-Match again.
    s.admin("mode", json!({"mode": "versioned"}));
    let id = s.post("/api/l", json!({})).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .req("PUT", &format!("/api/l/{id}"))
        .header("If-Match", "\"7\"")
        .json(json!({}))
        .send();
    assert_eq!(r.status, 412);
}
