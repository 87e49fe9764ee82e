//! A server written for Sencha's proxies says no with a 200: `{"success": false, "message": …}`.
//! In real Chromium against the reference server (its `failNext` fault with a `body`): the
//! refusal lands in `rejected()` and the record goes back to the server's state; with
//! `successProperty: null`, the same answer is a success, but the record read back shows the
//! write was not applied: it stays queued, and goes when the server takes it.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

async fn store(c: &str, success: &str) -> Ferry {
    let opts = js(&format!(
        r#"{{"name":"{}","autoSync":false,"collections":{{"{c}":{{"url":"{}/api/{c}"{success}}}}}}}"#,
        unique("sencha"),
        server()
    ));
    Ferry::open(opts).await.expect("open")
}

/// Creates and syncs a record titled "first" in `db`'s collection `c`, then has the server
/// refuse the next `PUT` to it with a 200 that says `success: false`, and renames it; `synced`:
/// whether the `sync()` after it resolves.
async fn refused_rename_then(db: &Ferry, c: &str, synced: bool) -> JsValue {
    let t = db.collection(c).unwrap();
    let made = ok(t.create(js(r#"{"title":"first"}"#))).await;
    ok(db.sync()).await;
    let id = get(&ok(t.get(get(&made, "id"))).await, "id");
    faults(&format!(
        r#"{{"failNext":1,"status":200,"body":{{"success":false,"message":"Title is too short"}},"match":"/api/{c}/","methods":["PUT"]}}"#
    ))
    .await;
    ok(t.update(id.clone(), js(r#"{"title":"x"}"#))).await;
    if synced {
        ok(db.sync()).await;
    } else {
        let why = fails(db.sync()).await;
        assert!(why.contains("read back"), "{why}");
    }
    faults("{}").await;
    id
}

async fn refused_rename(db: &Ferry, c: &str) -> JsValue {
    refused_rename_then(db, c, true).await
}

#[wasm_bindgen_test]
async fn a_refusal_with_success_false_is_rejected_and_undone() {
    let c = unique("sencha");
    let db = store(&c, "").await;
    let id = refused_rename(&db, &c).await;
    let rejected = Array::from(&ok(db.rejected()).await);
    assert_eq!(rejected.length(), 1, "the refusal is kept for the app");
    let r = rejected.get(0);
    assert_eq!(get(&r, "status"), 200);
    assert!(get(&r, "body")
        .as_string()
        .unwrap()
        .contains("Title is too short"));
    let t = db.collection(&c).unwrap();
    assert_eq!(get(&ok(t.get(id)).await, "title"), "first", "undone");
    assert_eq!(get(&server_records(&c).await.get(0), "title"), "first");
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    db.close();
}

#[wasm_bindgen_test]
async fn with_success_property_null_the_same_answer_is_a_success_that_is_checked() {
    let c = unique("sencha");
    let db = store(&c, r#","successProperty":null"#).await;
    let id = refused_rename_then(&db, &c, false).await;
    assert_eq!(Array::from(&ok(db.rejected()).await).length(), 0);
    assert_eq!(
        ok(db.pending_count()).await.as_f64(),
        Some(1.0),
        "still queued"
    );
    let t = db.collection(&c).unwrap();
    assert_eq!(get(&ok(t.get(id)).await, "title"), "x", "the edit stays");
    ok(db.sync()).await; // the server takes it now
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    assert_eq!(get(&server_records(&c).await.get(0), "title"), "x");
    db.close();
}
