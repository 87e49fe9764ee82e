//! A create with an id the app chose, in real Chromium against the reference server: its checks
//! go out with its writes and it commits before the writes are answered, so an id already taken
//! by a synced record (no alias, nothing pending: only the row's add can find it) must still
//! fail whole, with the error the general path gives, before the writes called after it run.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::Array;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

fn text(v: &JsValue) -> String {
    v.as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
async fn a_create_under_a_synced_records_id_fails_whole() {
    let t = unique("taken");
    let url = format!("{}/api/{t}", server());
    let opts = js(&format!(
        r#"{{"name":"{t}","autoSync":false,"collections":{{"{t}":{{"url":"{url}"}}}}}}"#
    ));
    http("POST", &format!("/api/{t}"), Some(r#"{"title":"theirs"}"#)).await;
    let db = Ferry::open(opts).await.expect("open");
    let col = db.collection(&t).unwrap();
    ok(col.pull(None)).await;
    let all = Array::from(&ok(col.all()).await);
    assert_eq!(all.length(), 1);
    let id = get(&all.get(0), "id");
    let id_text = id
        .as_string()
        .unwrap_or_else(|| format!("{}", id.as_f64().unwrap()));
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));

    // A first write reserves the block of outbox positions that quick creates take theirs from.
    ok(col.create(js(r#"{"id":"free-0"}"#))).await;
    // Called together, as an app that does not wait would: the taken one, a delete of that
    // record, then a free one. The create fails before the delete runs (had it been retried
    // after, it would have succeeded over the pending delete).
    let taken = col.create(js(&format!(
        r#"{{"id":{id:?},"title":"mine"}}"#,
        id = id_text
    )));
    let delete = col.delete(id.clone());
    let free = col.create(js(r#"{"id":"free-1","title":"new"}"#));
    let failed = fails(taken).await;
    assert!(failed.contains("ConstraintError"), "{failed}");
    assert!(failed.contains("already has a record"), "{failed}");
    ok(delete).await;
    ok(free).await;

    assert!(
        ok(col.get(id.clone())).await.is_undefined(),
        "deleted, not created again"
    );
    let outbox = Array::from(&ok(db.outbox()).await);
    let mut pending: Vec<(String, String)> = outbox
        .iter()
        .map(|e| (text(&get(&e, "kind")), text(&get(&e, "recordId"))))
        .collect();
    pending.sort();
    let mut want = [
        ("create", "free-0"),
        ("create", "free-1"),
        ("delete", id_text.as_str()),
    ]
    .map(|(k, r)| (k.to_string(), r.to_string()));
    want.sort();
    assert_eq!(
        pending, want,
        "the free creates and the delete, nothing of the failed create"
    );
    ok(db.sync()).await;
    let on_server = server_records(&t).await;
    assert_eq!(
        on_server.length(),
        2,
        "the two free creates; the synced record deleted"
    );
    db.close();
}
