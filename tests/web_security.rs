//! Hostile and careless input in real Chromium: credentials never reach IndexedDB, deeply nested
//! records are refused cleanly, oversized records are rejected by the server without blocking the
//! queue, and ids that try to leave the URL path stay one segment.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

/// Every value of every object store of database `name`, as one JSON text.
async fn dump_idb(name: &str) -> String {
    let f = Function::new_with_args(
        "name",
        "return new Promise((resolve, reject) => {
           const open = indexedDB.open(name);
           open.onerror = () => reject(open.error);
           open.onsuccess = () => {
             const db = open.result;
             const names = Array.from(db.objectStoreNames);
             const tx = db.transaction(names, 'readonly');
             const out = {};
             for (const n of names) {
               const req = tx.objectStore(n).getAll();
               req.onsuccess = () => { out[n] = req.result; };
             }
             tx.oncomplete = () => { db.close(); resolve(JSON.stringify(out)); };
             tx.onerror = () => reject(tx.error);
           };
         });",
    );
    let p: Promise = f
        .call1(&JsValue::NULL, &name.into())
        .unwrap()
        .unchecked_into();
    ok(p).await.as_string().unwrap()
}

#[wasm_bindgen_test]
async fn credentials_are_never_written_to_indexeddb() {
    let (name, c) = (unique("creds"), unique("creds"));
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"headers":{{"X-Api-Key":"STATIC-SECRET-1"}},
            "collections":{{"{c}":{{"url":"{}/api/{c}"}}}}}}"#,
        server()
    ));
    let get_headers = Function::new_no_args("return { Authorization: 'Bearer DYNAMIC-SECRET-2' };");
    Reflect::set(&opts, &"getHeaders".into(), &get_headers).unwrap();
    let db = Ferry::open(opts).await.expect("open");
    let todos = db.collection(&c).unwrap();
    ok(todos.create(js(r#"{"title":"a"}"#))).await;
    ok(db.sync()).await;
    ok(todos.create(js(r#"{"title":"b"}"#))).await; // pending: a frozen request would show here
    let dump = dump_idb(&name).await;
    assert!(
        dump.contains("\"title\":\"b\""),
        "the dump reads the store: {dump}"
    );
    assert!(
        !dump.contains("SECRET"),
        "no credential in IndexedDB: {dump}"
    );
    db.close();
}

#[wasm_bindgen_test]
async fn a_record_nested_too_deep_is_refused_and_nothing_is_stored() {
    let name = unique("deep");
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{"t":{{"url":"/api/t"}}}}}}"#
    ));
    let db = Ferry::open(opts).await.expect("open");
    let t = db.collection("t").unwrap();
    let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(500), "]".repeat(500));
    let e = JsFuture::from(t.create(js(&deep)))
        .await
        .expect_err("refused");
    let e: js_sys::Error = e.dyn_into().unwrap();
    assert_eq!(String::from(e.name()), "ValidationError");
    assert_eq!(Array::from(&ok(t.all()).await).length(), 0);
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    db.close();
}

#[wasm_bindgen_test]
async fn an_oversized_record_is_rejected_by_the_server_and_the_rest_flows() {
    let (name, c) = (unique("big"), unique("big"));
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{"{c}":{{"url":"{}/api/{c}"}}}}}}"#,
        server()
    ));
    let db = Ferry::open(opts).await.expect("open");
    let t = db.collection(&c).unwrap();
    // Over the reference server's 1 MiB body limit: kept locally, refused by the server (413).
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(1_200_000));
    ok(t.create(js(&big))).await;
    ok(t.create(js(r#"{"title":"small"}"#))).await;
    ok(db.sync()).await;
    let rejected = Array::from(&ok(db.rejected()).await);
    assert_eq!(rejected.length(), 1);
    assert_eq!(get(&rejected.get(0), "status"), 413);
    let all = Array::from(&ok(t.all()).await);
    assert_eq!(
        all.length(),
        1,
        "the refused create went back to the server's state"
    );
    assert_eq!(get(&all.get(0), "title"), "small");
    db.close();
}

#[wasm_bindgen_test]
async fn ids_that_try_to_leave_the_path_stay_one_segment() {
    let (name, c) = (unique("ids"), unique("ids"));
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{"{c}":{{"url":"{}/api/{c}"}}}}}}"#,
        server()
    ));
    let db = Ferry::open(opts).await.expect("open");
    let t = db.collection(&c).unwrap();
    for id in ["../admin", "a/b", "x?y=1#z", "%2e%2e"] {
        let rec = js(&format!(
            r#"{{"id":{},"n":1}}"#,
            js_sys::JSON::stringify(&id.into()).unwrap()
        ));
        ok(t.create(rec)).await;
    }
    ok(db.sync()).await;
    for id in ["../admin", "a/b", "x?y=1#z", "%2e%2e"] {
        ok(t.update(id.into(), js(r#"{"n":2}"#))).await;
    }
    ok(db.sync()).await;
    let window = web_sys::window().unwrap();
    let res: web_sys::Response =
        JsFuture::from(window.fetch_with_str(&format!("{}/api/{c}", server())))
            .await
            .unwrap()
            .dyn_into()
            .unwrap();
    let data = Array::from(&get(
        &JsFuture::from(res.json().unwrap()).await.unwrap(),
        "data",
    ));
    assert_eq!(
        data.length(),
        4,
        "four records, no path escaped the collection"
    );
    assert!(
        data.iter().all(|r| get(&r, "n") == 2),
        "every update reached its own record"
    );
    let e = JsFuture::from(t.create(js(r#"{"id":".."}"#)))
        .await
        .expect_err("refused");
    assert_eq!(
        String::from(e.dyn_into::<js_sys::Error>().unwrap().name()),
        "ValidationError"
    );
    db.close();
}
