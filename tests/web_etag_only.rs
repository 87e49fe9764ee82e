//! A server that gives versions only as `ETag`s (PROTOCOL.md section 4; the reference server's
//! `etagOnly` switch), in real Chromium: a device that only pulled a record reads its version
//! (`GET {url}/{id}`) before it writes it, and keeps that version with the write in IndexedDB.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

/// A store of collection `t` whose conflicts wait for a decision (so none can pass unseen).
async fn device(name: &str, t: &str) -> Ferry {
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{"{t}":{{"url":"{}/api/{t}","conflict":"custom"}}}}}}"#,
        server()
    ));
    Ferry::open(opts).await.expect("open")
}

async fn title_on_server(t: &str, id: &JsValue) -> JsValue {
    let id = id
        .as_string()
        .unwrap_or_else(|| format!("{}", id.as_f64().unwrap()));
    get(&http("GET", &format!("/api/{t}/{id}"), None).await, "title")
}

/// Device B's edit of a record it only pulled is stored by the server, whose answer is held
/// while B's page reloads. Device C then writes over it. Sent again from the reloaded page, B's
/// write names the version it read before the reload, under its own key, and the server
/// answers it as the first time. Reading the record again instead, B would find its own landed
/// change under C's and take it for a conflict (here one left open for the user to decide).
#[wasm_bindgen_test]
async fn a_write_out_when_the_page_reloaded_keeps_the_version_it_read() {
    let t = unique("etag");
    let etag_only = format!(r#""etagOnly":"/api/{t}""#);
    faults(&format!("{{{etag_only}}}")).await;
    let made = http("POST", &format!("/api/{t}"), Some(r#"{"title":"first"}"#)).await;
    assert!(
        get(&made, "version").is_undefined(),
        "versions only as ETags"
    );
    let id = get(&made, "id");
    let name_b = unique("etagB");
    let b = device(&name_b, &t).await;
    let c = device(&unique("etagC"), &t).await;
    ok(b.collection(&t).unwrap().pull(None)).await;
    ok(b.collection(&t)
        .unwrap()
        .update(id.clone(), js(r#"{"title":"B's"}"#)))
    .await;

    // The server stores B's write, and holds its answer while the page reloads.
    faults(&format!(
        r#"{{{etag_only},"delayMs":1000,"match":"/api/{t}/","methods":["PUT"]}}"#
    ))
    .await;
    let out = b.sync();
    for _ in 0..40 {
        if title_on_server(&t, &id).await == "B's" {
            break;
        }
        sleep(25).await;
    }
    assert_eq!(
        title_on_server(&t, &id).await,
        "B's",
        "B's write was stored"
    );
    b.close();
    let _ = JsFuture::from(out).await;
    faults(&format!("{{{etag_only}}}")).await;

    ok(c.collection(&t).unwrap().pull(None)).await;
    let later = js(r#"{"title":"C's, later"}"#);
    ok(c.collection(&t).unwrap().update(id.clone(), later)).await;
    ok(c.sync()).await;
    assert_eq!(title_on_server(&t, &id).await, "C's, later");

    let b = device(&name_b, &t).await;
    let outbox = Array::from(&ok(b.outbox()).await);
    assert_eq!(outbox.length(), 1, "B's write is still queued");
    assert_eq!(get(&outbox.get(0), "inFlight"), true, "and was sent");
    ok(b.sync()).await;
    let open = Array::from(&ok(b.conflicts()).await);
    assert_eq!(open.length(), 0, "no conflict with C's later change");
    assert_eq!(ok(b.pending_count()).await.as_f64(), Some(0.0));
    assert_eq!(
        title_on_server(&t, &id).await,
        "C's, later",
        "C's later change stands"
    );
    let mine = ok(b.collection(&t).unwrap().get(id.clone())).await;
    assert_eq!(get(&mine, "title"), "C's, later");
    b.close();
    c.close();
    http("POST", "/__admin/reset", None).await;
}
