//! The resource protocol over real HTTP: CRUD, ids, versions, idempotency, deltas, errors.

mod common;

use common::Server;
use serde_json::{json, Value};

#[test]
fn create_read_update_delete() {
    let s = Server::start(&[]);
    let r = s.post("/api/todos", json!({"title": "a", "clientId": "tmp-1"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let rec = r.json();
    assert_eq!(rec["clientId"], "tmp-1");
    assert_eq!(rec["version"], 1);
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location").unwrap(), format!("/api/todos/{id}"));

    let r = s.get(&format!("/api/todos/{id}"));
    assert_eq!((r.status, r.json()), (200, rec.clone()));

    let r = s
        .req("PUT", &format!("/api/todos/{id}"))
        .json(json!({"title": "b", "done": true}))
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(
        r.json(),
        json!({"id": id, "title": "b", "done": true, "version": 2})
    );

    let r = s
        .req("PATCH", &format!("/api/todos/{id}"))
        .json(json!({"done": null, "tags": ["x"]}))
        .send();
    assert_eq!(
        r.json(),
        json!({"id": id, "title": "b", "tags": ["x"], "version": 3})
    );

    let list = s.get("/api/todos").json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["cursor"].is_string());

    let r = s.req("DELETE", &format!("/api/todos/{id}")).send();
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(s.get(&format!("/api/todos/{id}")).status, 404);
    assert_eq!(
        s.req("DELETE", &format!("/api/todos/{id}")).send().status,
        404
    );
    let r = s
        .req("PUT", &format!("/api/todos/{id}"))
        .json(json!({}))
        .send();
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    assert_eq!(s.get("/api/todos").json()["data"], json!([]));
}

#[test]
fn server_ids_client_ids_and_encoded_ids() {
    let s = Server::start(&[]);
    let a = s.post("/api/notes", json!({"t": 1})).json();
    let b = s.post("/api/notes", json!({"t": 2})).json();
    assert_eq!((a["id"].as_str(), b["id"].as_str()), (Some("1"), Some("2")));
    // A free client-chosen id is honoured; a taken one is replaced by a server id.
    let c = s.post("/api/notes", json!({"id": "a/b", "t": 3})).json();
    assert_eq!(c["id"], "a/b");
    let d = s.post("/api/notes", json!({"id": "1", "t": 4})).json();
    assert_eq!(d["id"], "3");
    let e = s
        .post("/api/notes", json!({"id": "../admin", "t": 5}))
        .json();
    assert_eq!(e["id"], "../admin");

    let r = s.get("/api/notes/a%2Fb");
    assert_eq!((r.status, r.json()["t"].clone()), (200, json!(3)));
    let r = s.get("/api/notes/..%2Fadmin");
    assert_eq!((r.status, r.json()["t"].clone()), (200, json!(5)));
    // Unencoded, the slash is a second segment: no such route.
    assert_eq!(s.get("/api/notes/a/b").status, 404);
    let r = s
        .req("PATCH", "/api/notes/..%2Fadmin")
        .json(json!({"t": 6}))
        .send();
    assert_eq!(r.json()["id"], "../admin");
    assert_eq!(s.req("DELETE", "/api/notes/a%2Fb").send().status, 204);
    assert_eq!(s.get("/api/notes/a%2Fb").status, 404);
    // Collections are independent and created on first use.
    assert_eq!(s.post("/api/other", json!({})).json()["id"], "1");
}

#[test]
fn versions_and_if_match() {
    let s = Server::start(&[]);
    let id = s.post("/api/t", json!({"v": 0})).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("/api/t/{id}");
    let ok = s
        .req("PUT", &url)
        .header("If-Match", "\"1\"")
        .json(json!({"v": 1}))
        .send();
    assert_eq!(ok.status, 200);
    // A stale version: 412 with the current record and its ETag, nothing applied.
    let stale = s
        .req("PUT", &url)
        .header("If-Match", "\"1\"")
        .json(json!({"v": 9}))
        .send();
    assert_eq!(stale.status, 412);
    assert_eq!(stale.header("etag"), Some("\"2\""));
    assert_eq!(stale.json(), json!({"id": id, "v": 1, "version": 2}));
    // Every accepted spelling of the current version, and `*`.
    for form in ["\"{}\"", "{}", "W/\"{}\"", "*"] {
        let cur = s.get(&url).json()["version"].as_i64().unwrap();
        let tag = form.replace("{}", &cur.to_string());
        let r = s
            .req("PATCH", &url)
            .header("If-Match", &tag)
            .json(json!({}))
            .send();
        assert_eq!(
            (r.status, r.json()["version"].as_i64()),
            (200, Some(cur + 1)),
            "{tag}"
        );
        let r = s
            .req("PATCH", &url)
            .header("If-Match", &form.replace("{}", &cur.to_string()))
            .json(json!({}))
            .send();
        assert_eq!(r.status, if form == "*" { 200 } else { 412 }, "stale {tag}");
    }
    let cur = s.get(&url).json()["version"].as_i64().unwrap();
    let del = s
        .req("DELETE", &url)
        .header("If-Match", &format!("\"{}\"", cur - 1))
        .send();
    assert_eq!(del.status, 412);
    assert_eq!(del.json()["version"], cur);
    let del = s
        .req("DELETE", &url)
        .header("If-Match", &format!("\"{cur}\""))
        .send();
    assert_eq!(del.status, 204);
    // The body's id must match the URL; its version is ignored.
    let id2 = s.post("/api/t", json!({})).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .req("PUT", &format!("/api/t/{id2}"))
        .json(json!({"id": "zzz"}))
        .send();
    assert_eq!(r.status, 422);
    let r = s
        .req("PUT", &format!("/api/t/{id2}"))
        .json(json!({"id": id2, "version": 77}))
        .send();
    assert_eq!(r.json()["version"], 2);
}

#[test]
fn idempotency_keys_replay_without_reapplying() {
    let s = Server::start(&[]);
    let create = || {
        s.req("POST", "/api/t")
            .header("Idempotency-Key", "m-1")
            .json(json!({"clientId": "c1", "x": 1}))
            .send()
    };
    let first = create();
    let second = create();
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.json(), second.json());
    assert_eq!(second.header("etag"), Some("\"1\""));
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.get("/api/t").json()["data"].as_array().unwrap().len(), 1);

    let id = first.json()["id"].as_str().unwrap().to_string();
    let patch = || {
        s.req("PATCH", &format!("/api/t/{id}"))
            .header("Idempotency-Key", "m-2")
            .header("If-Match", "\"1\"")
            .json(json!({"x": 2}))
            .send()
    };
    assert_eq!(patch().json()["version"], 2);
    // Replayed: same 200 and body, even though If-Match "1" is now stale.
    let again = patch();
    assert_eq!(
        (again.status, again.json()["version"].clone()),
        (200, json!(2))
    );
    let del = || {
        s.req("DELETE", &format!("/api/t/{id}"))
            .header("Idempotency-Key", "m-3")
            .send()
    };
    assert_eq!(del().status, 204);
    assert_eq!(del().status, 204);

    // A key reused for a different request is refused.
    let r = s
        .req("PUT", "/api/t/9")
        .header("Idempotency-Key", "m-1")
        .json(json!({}))
        .send();
    assert_eq!(r.status, 422);
    // Failures are not stored: after a 412 the same key can still succeed.
    let id2 = s.post("/api/t", json!({})).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |tag: &str| {
        s.req("PUT", &format!("/api/t/{id2}"))
            .header("Idempotency-Key", "m-4")
            .header("If-Match", tag)
            .json(json!({"y": 1}))
            .send()
    };
    assert_eq!(put("\"5\"").status, 412);
    assert_eq!(put("\"1\"").status, 200);
    let stats = s.get("/__admin/stats").json();
    assert_eq!(stats["idempotentReplays"], 3);
}

#[test]
fn delta_reads_with_tombstones() {
    let s = Server::start(&[]);
    let empty = s.get("/api/d").json();
    assert_eq!(empty, json!({"data": [], "cursor": "0"}));
    let a = s.post("/api/d", json!({"n": "a"})).json();
    let b = s.post("/api/d", json!({"n": "b"})).json();
    s.post("/api/elsewhere", json!({}));
    let snap = s.get("/api/d").json();
    assert_eq!(snap["data"], json!([a, b]));
    let cursor = snap["cursor"].as_str().unwrap().to_string();
    assert_eq!(
        s.get(&format!("/api/d?since={cursor}")).json()["data"],
        json!([])
    );

    let b2 = s
        .req("PATCH", &format!("/api/d/{}", b["id"].as_str().unwrap()))
        .json(json!({"n": "B"}))
        .send()
        .json();
    s.req("DELETE", &format!("/api/d/{}", a["id"].as_str().unwrap()))
        .send();
    let delta = s.get(&format!("/api/d?since={cursor}")).json();
    assert_eq!(delta["data"], json!([b2, {"id": a["id"], "deleted": true}]));
    let next = delta["cursor"].as_str().unwrap().to_string();
    assert!(next.parse::<u64>().unwrap() > cursor.parse::<u64>().unwrap());
    assert_eq!(
        s.get(&format!("/api/d?since={next}")).json()["data"],
        json!([])
    );
    // From the beginning: every change, tombstones included; a snapshot has no tombstones.
    assert_eq!(
        s.get("/api/d?since=0").json()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s.get("/api/d").json()["data"], json!([b2]));
    for bad in ["abc", "-1", "99999"] {
        let r = s.get(&format!("/api/d?since={bad}"));
        assert_eq!(r.status, 400, "since={bad}");
        assert!(r.json()["error"].is_string());
    }
}

#[test]
fn bad_requests_get_json_errors() {
    let s = Server::start(&["--max-body", "1000"]);
    let cases: Vec<(&str, &str, &[u8], u16)> = vec![
        ("POST", "/api/t", b"{not json", 400),
        ("POST", "/api/t", b"[1,2]", 400),
        ("POST", "/api/t", b"\"str\"", 400),
        ("POST", "/api/t", b"", 400),
        ("POST", "/api/bad.name", b"{}", 400),
        ("GET", "/api/bad%20name", b"", 400),
        ("POST", "/api/x", b"{", 400),
        ("GET", "/api/t/%zz", b"", 400),
        ("GET", "/api/t/1/extra", b"", 404),
        ("GET", "/api", b"", 404),
        ("GET", "/api/", b"", 404),
        ("GET", "/nope", b"", 404),
        ("PUT", "/api/t", b"{}", 405),
        ("POST", "/api/t/1", b"{}", 405),
    ];
    for (m, p, body, want) in cases {
        let r = s.req(m, p).raw(body).send();
        assert_eq!(r.status, want, "{m} {p}");
        assert!(r.json()["error"].is_string(), "{m} {p}: {}", r.text());
    }
    let long = "a".repeat(65);
    assert_eq!(s.get(&format!("/api/{long}")).status, 400);
    let r = s
        .req("POST", "/api/t")
        .header("Ferry-Changed-At", "yesterday")
        .json(json!({}))
        .send();
    assert_eq!(r.status, 400);
    // Over the limit: 413 with a JSON error, and the client does get to read it.
    let big = json!({"x": "y".repeat(2000)});
    let r = s.post("/api/t", big);
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_string());
    let r = s.req("POST", "/api/t").raw(&vec![b' '; 5 << 20]).send();
    assert_eq!(r.status, 413);
    // Nothing of that was stored, and the server is still fine.
    assert_eq!(s.get("/api/t").json()["data"], json!([]));
    assert_eq!(s.post("/api/t", json!({"ok": true})).status, 201);
}

#[test]
fn numbers_as_ids_and_unicode() {
    let s = Server::start(&[]);
    let r = s.post("/api/n", json!({"id": 42, "name": "ü"})).json();
    assert_eq!(r["id"], 42);
    let got = s.get("/api/n/42").json();
    assert_eq!(got["name"], "ü");
    let r = s
        .req("PUT", "/api/n/42")
        .json(json!({"id": 42, "name": "x"}))
        .send();
    assert_eq!((r.status, r.json()["id"].clone()), (200, json!(42)));
    let id = "é/ ?#";
    let enc: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let r = s.post("/api/n", json!({"id": id})).json();
    assert_eq!(r["id"], id);
    assert_eq!(
        s.get(&format!("/api/n/{enc}")).json()["id"],
        Value::from(id)
    );
}
