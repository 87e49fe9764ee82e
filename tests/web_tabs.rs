//! Tabs of one store opened with different collections, in real Chromium against the reference
//! server. Only the leading tab sends, and it cannot send a collection it does not declare: an
//! older page left open, leading, held a newer page's new collection back until it closed.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

async fn open(name: &str, collections: &[&str]) -> Ferry {
    let list: Vec<String> = collections
        .iter()
        .map(|c| format!(r#""{c}":{{"url":"{}/api/{c}"}}"#, server()))
        .collect();
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{{}}}}}"#,
        list.join(",")
    ));
    Ferry::open(opts).await.expect("open")
}

async fn leads(db: &Ferry) -> bool {
    get(&ok(db.status()).await, "leader") == JsValue::TRUE
}

#[wasm_bindgen_test]
async fn a_tab_that_declares_more_collections_takes_the_lead_and_sends_them() {
    let (name, notes, folders) = (unique("tabs"), unique("notes"), unique("folders"));
    // The newer page ran once: the database has both stores, so the older one opens without
    // an upgrade (which would close it) and leads, having opened first.
    open(&name, &[&notes, &folders]).await.close();
    let older = open(&name, &[&notes]).await;
    sleep(50).await;
    assert!(leads(&older).await);
    let newer = open(&name, &[&notes, &folders]).await;
    let f = newer.collection(&folders).unwrap();
    ok(f.create(js(r#"{"title":"made in the newer page"}"#))).await;
    ok(newer.sync()).await;
    let sent = server_records(&folders).await;
    assert_eq!(sent.length(), 1, "the folder reached the server");
    assert!(leads(&newer).await, "the newer page leads");
    assert!(!leads(&older).await);
    // The older page's writes go through the newer one now.
    ok(older
        .collection(&notes)
        .unwrap()
        .create(js(r#"{"title":"n"}"#)))
    .await;
    ok(older.sync()).await;
    assert_eq!(server_records(&notes).await.length(), 1);
    // Closed, the newer page gives the lead back.
    newer.close();
    assert!(
        eventually(|| leads(&older)).await,
        "the older page leads again"
    );
    older.close();
}

/// `setOffline(true)` holds for every tab of the store, also one opened after it: that tab
/// led once the others closed, and sent.
#[wasm_bindgen_test]
async fn a_tab_opened_after_set_offline_is_offline_too() {
    let (name, notes) = (unique("offline"), unique("notes"));
    let first = open(&name, &[&notes]).await;
    first.set_offline(true.into()).unwrap();
    let later = open(&name, &[&notes]).await;
    let offline = || {
        let status = later.status();
        async move { get(&ok(status).await, "online") == JsValue::FALSE }
    };
    assert!(eventually(offline).await, "told by the other tab");
    first.close();
    assert!(eventually(|| leads(&later)).await);
    ok(later
        .collection(&notes)
        .unwrap()
        .create(js(r#"{"title":"kept here"}"#)))
    .await;
    assert!(fails(later.sync()).await.contains("Offline"));
    assert_eq!(server_records(&notes).await.length(), 0, "nothing sent");
    later.close();
}
