//! `"methods"` in `/__admin/faults`: faults hit only the listed methods; other requests pass.

mod common;

use common::Server;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn faults_hit_only_the_listed_methods() {
    let s = Server::start(&[]);
    assert_eq!(s.post("/api/notes", json!({"t": "a"})).status, 201);
    assert_eq!(s.post("/api/notes", json!({"t": "b"})).status, 201);
    let f = s
        .admin(
            "faults",
            json!({"failNext": 2, "methods": ["put", "DELETE"]}),
        )
        .json();
    assert_eq!(f["methods"], json!(["PUT", "DELETE"]));

    // GET and POST pass and do not use up the fault.
    assert_eq!(s.get("/api/notes").status, 200);
    assert_eq!(s.get("/api/notes/1").status, 200);
    assert_eq!(s.post("/api/notes", json!({"t": "c"})).status, 201);
    assert_eq!(s.get("/__admin/faults").json()["failNext"], 2);

    let r = s.req("PUT", "/api/notes/1").json(json!({"t": "A"})).send();
    assert_eq!(r.status, 503);
    assert_eq!(s.req("DELETE", "/api/notes/2").send().status, 503);
    // Not applied, and the count is used up.
    assert_eq!(s.get("/api/notes/1").json()["t"], "a");
    assert_eq!(s.get("/api/notes/2").status, 200);
    let r = s.req("PUT", "/api/notes/1").json(json!({"t": "A"})).send();
    assert_eq!((r.status, r.json()["t"].clone()), (200, json!("A")));
    assert_eq!(s.get("/__admin/stats").json()["faulted"], 2);

    // delayMs follows the filter too: reads answer at once, PUTs wait.
    s.admin("faults", json!({"delayMs": 400, "methods": ["PUT"]}));
    let t = Instant::now();
    assert_eq!(s.get("/api/notes").status, 200);
    assert!(t.elapsed() < Duration::from_millis(300));
    let t = Instant::now();
    let r = s.req("PUT", "/api/notes/1").json(json!({"t": "B"})).send();
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(400));

    // A batch is one POST: ["PUT"] lets it through, ["POST"] catches it whole.
    s.admin("faults", json!({"delayMs": 0, "failNext": 1}));
    let batch =
        json!({"requests": [{"id": "1", "method": "PUT", "url": "notes/1", "body": {"t": "C"}}]});
    let r = s.req("POST", "/api/$batch").json(batch.clone()).send();
    assert_eq!(r.status, 200);
    s.admin("faults", json!({"methods": ["POST"]}));
    assert_eq!(s.req("POST", "/api/$batch").json(batch).send().status, 503);

    // Bad values are refused whole; null clears the filter.
    for bad in [json!([]), json!("PUT"), json!([7]), json!(["GE T"])] {
        let r = s
            .req("POST", "/__admin/faults")
            .json(json!({"methods": bad, "failNext": 5}))
            .send();
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(s.get("/__admin/faults").json()["methods"], json!(["POST"]));
    s.admin("faults", json!({"methods": null, "failNext": 1}));
    assert_eq!(s.get("/api/notes").status, 503);
    s.admin("reset", json!({}));
    assert_eq!(s.get("/__admin/faults").json()["methods"], json!(null));
}
