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

/// The outdone leader is mid-run (its answer held by the server) when the newer tab asks it to
/// sync: it does not carry that `sync()` out (it cannot send the newer tab's collection), hands
/// the lead on once its run ends, and the newer tab's `sync()` sends everything.
#[wasm_bindgen_test]
async fn an_outdone_leader_in_the_middle_of_a_run_leaves_the_sync_to_the_newer_tab() {
    let (name, notes, folders) = (unique("midrun"), unique("notes"), unique("folders"));
    open(&name, &[&notes, &folders]).await.close();
    let older = open(&name, &[&notes]).await;
    assert!(eventually(|| leads(&older)).await);
    faults(r#"{"delayMs":600,"methods":["POST"]}"#).await;
    let n = older.collection(&notes).unwrap();
    ok(n.create(js(r#"{"title":"held"}"#))).await;
    let running = wasm_bindgen_futures::JsFuture::from(older.sync());
    sleep(100).await; // its POST is out
    let newer = open(&name, &[&notes, &folders]).await;
    let f = newer.collection(&folders).unwrap();
    ok(f.create(js(r#"{"title":"made in the newer page"}"#))).await;
    let sync = newer.sync();
    ok(sync).await;
    running.await.expect("the older tab's own sync()");
    assert_eq!(
        server_records(&folders).await.length(),
        1,
        "sent when sync() resolved"
    );
    assert!(leads(&newer).await);
    faults("{}").await;
    older.close();
    newer.close();
}

/// Two tabs call `setOffline` at once with opposite values: each applied its own call and then
/// the other's message, and the two stayed crossed (one offline, one online) for good. Every
/// tab now keeps the later call, so they agree, whichever it is.
#[wasm_bindgen_test]
async fn crossing_set_offline_calls_leave_every_tab_agreeing() {
    let (name, notes) = (unique("crossing"), unique("notes"));
    let a = open(&name, &[&notes]).await;
    let b = open(&name, &[&notes]).await;
    let online = |db: &Ferry| {
        let status = db.status();
        async move { get(&ok(status).await, "online") }
    };
    for round in 0..3 {
        // In one turn of the event loop: neither tab has heard the other's call yet.
        a.set_offline(true.into()).unwrap();
        b.set_offline(false.into()).unwrap();
        sleep(100).await;
        assert_eq!(online(&a).await, online(&b).await, "round {round}");
    }
    a.close();
    b.close();
}
