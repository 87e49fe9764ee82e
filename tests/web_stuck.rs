//! Writes the real reference server will not take as sent, in real Chromium: one it fails every
//! time (a 500 to each attempt, never a refusal), where `rejectPending` is the app's way out and
//! the changes behind it then go; and a batch over its body limit.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::Array;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

#[wasm_bindgen_test]
async fn a_write_the_server_always_fails_can_be_rejected_by_the_app() {
    let t = unique("stuck");
    let opts = js(&format!(
        r#"{{"name":"{t}","autoSync":false,"collections":{{"{t}":{{"url":"{}/api/{t}"}}}}}}"#,
        server()
    ));
    let db = Ferry::open(opts).await.expect("open");
    let col = db.collection(&t).unwrap();
    let made = ok(col.create(js(r#"{"title":"a","notes":"n"}"#))).await;
    ok(db.sync()).await;
    let id = get(&made, "id"); // its temporary id, which still finds it
    http("POST", "/__admin/reset", None).await;
    let rule = format!(
        r#"{{"failNext":100000,"status":500,"methods":["PUT","PATCH"],"match":"/api/{t}"}}"#
    );
    http("POST", "/__admin/faults", Some(&rule)).await;
    ok(col.update(id.clone(), js(r#"{"title":"stuck"}"#))).await;
    let failed = fails(db.sync()).await;
    assert!(failed.contains("500"), "{failed}");
    // Made after the failed attempt: queued behind the stuck write.
    ok(col.update(id.clone(), js(r#"{"notes":"later"}"#))).await;
    let outbox = Array::from(&ok(db.outbox()).await);
    assert_eq!(outbox.length(), 2);
    let stuck = get(&outbox.get(0), "mutationId");
    let behind = get(&outbox.get(1), "mutationId");
    assert!(fails(db.reject_pending(behind))
        .await
        .contains("first pending"));
    ok(db.reject_pending(stuck.clone())).await;
    let rejected = Array::from(&ok(db.rejected()).await);
    assert_eq!(rejected.length(), 1);
    assert_eq!(get(&rejected.get(0), "status").as_f64(), Some(0.0));
    let mine = ok(col.get(id.clone())).await;
    assert_eq!(
        get(&mine, "title").as_string().as_deref(),
        Some("a"),
        "back to the server's"
    );
    assert_eq!(get(&mine, "notes").as_string().as_deref(), Some("later"));
    // The server mended: the change behind it goes.
    http("POST", "/__admin/reset", None).await;
    ok(db.sync()).await;
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    let on_server = server_records(&t).await;
    assert_eq!(
        get(&on_server.get(0), "title").as_string().as_deref(),
        Some("a")
    );
    assert_eq!(
        get(&on_server.get(0), "notes").as_string().as_deref(),
        Some("later")
    );
    ok(db.discard_rejected(stuck)).await;
    db.close();
}

/// A batch over the server's body limit (1 MiB: it answers 413) goes again in smaller batches:
/// everything arrives, and not as one request per mutation.
#[wasm_bindgen_test]
async fn a_batch_over_the_servers_body_limit_goes_in_smaller_batches() {
    let t = unique("large");
    let opts = js(&format!(
        r#"{{"name":"{t}","autoSync":false,"batchUrl":"{s}/api/$batch","batchSize":40,
            "collections":{{"{t}":{{"url":"{s}/api/{t}"}}}}}}"#,
        s = server()
    ));
    let db = Ferry::open(opts).await.expect("open");
    let col = db.collection(&t).unwrap();
    let filler = "x".repeat(40_000); // 40 of them: 1.6 MB in one batch, 0.8 MB in half of it
    let many: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"n":{i},"filler":"{filler}"}}"#))
        .collect();
    ok(col.create_many(js(&format!("[{}]", many.join(","))))).await;
    http("POST", "/__admin/stats/reset", None).await;
    ok(db.sync()).await;
    let requests = get(&http("GET", "/__admin/stats", None).await, "requests");
    assert_eq!(server_records(&t).await.length(), 40);
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    assert!(Array::from(&ok(db.rejected()).await).length() == 0);
    // The batch of 40 refused, two of 20, the pull: one request per mutation would be 40 more.
    let requests = requests.as_f64().unwrap();
    assert!(requests <= 6.0, "{requests} requests");
    db.close();
}
