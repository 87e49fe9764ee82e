//! `sync()` calls made while a run is out, in real Chromium against the reference server: the
//! run goes round once more for them. One made during a run that then failed got that run's
//! error, and the next try waited for the retry (a user who logged in again and pressed "retry"
//! while the failing run was out).
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

#[wasm_bindgen_test]
async fn a_sync_called_during_a_failing_run_gets_a_run_of_its_own() {
    let c = unique("calls");
    let opts = js(&format!(
        r#"{{"name":"{}","autoSync":false,"collections":{{"{c}":{{"url":"{}/api/{c}"}}}}}}"#,
        unique("calls"),
        server()
    ));
    let db = Ferry::open(opts).await.expect("open");
    sleep(50).await; // leads
    ok(db.collection(&c).unwrap().create(js(r#"{"title":"t"}"#))).await;
    // The first write is held 400 ms and then refused with a 503; the next one goes through.
    faults(r#"{"failNext":1,"status":503,"delayMs":400,"methods":["POST"]}"#).await;
    let first = JsFuture::from(db.sync());
    sleep(150).await;
    http("POST", "/__admin/faults", Some(r#"{"delayMs":0}"#)).await;
    let second = db.sync();
    // The run goes round once more for the second call (and the first is settled with it: by
    // then its write went through).
    ok(second).await;
    first.await.expect("settled with the second");
    assert_eq!(server_records(&c).await.length(), 1);
    faults("{}").await;
    db.close();
}
