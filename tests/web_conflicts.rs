//! Conflicts between two devices (two stores) and tabs of one store, in real Chromium against
//! the real reference server (run through scripts/with-server, like web_sync.rs).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use ferry::api::Ferry;
use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

async fn server_record(c: &str, id: &str) -> JsValue {
    let window = web_sys::window().unwrap();
    let res: web_sys::Response =
        JsFuture::from(window.fetch_with_str(&format!("{}/api/{c}/{id}", server())))
            .await
            .unwrap()
            .dyn_into()
            .unwrap();
    JsFuture::from(res.json().unwrap()).await.unwrap()
}

/// A store of one collection `c`; `extra` is more options JSON (starting with a comma).
async fn device(name: &str, c: &str, col_extra: &str, resolver: Option<Function>) -> Ferry {
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{"{c}":{{"url":"{}/api/{c}"{col_extra}}}}}}}"#,
        server()
    ));
    if let Some(f) = resolver {
        Reflect::set(&opts, &"resolveConflict".into(), &f).unwrap();
    }
    Ferry::open(opts).await.expect("open")
}

/// Two devices holding the same synced record `{title, a: 1, b: 1}`; returns them and its id.
async fn two_devices(
    c: &str,
    col_extra: &str,
    resolver: Option<Function>,
) -> (Ferry, Ferry, String) {
    let a = device(&unique("devA"), c, col_extra, None).await;
    let b = device(&unique("devB"), c, col_extra, resolver).await;
    let rec = ok(a
        .collection(c)
        .unwrap()
        .create(js(r#"{"title":"t","a":1,"b":1}"#)))
    .await;
    ok(a.sync()).await;
    ok(b.sync()).await; // pulls the record
    let id = get(
        &ok(a.collection(c).unwrap().get(get(&rec, "id"))).await,
        "id",
    )
    .as_string()
    .unwrap();
    assert!(
        !ok(b.collection(c).unwrap().get(id.clone().into()))
            .await
            .is_undefined(),
        "B pulled it"
    );
    (a, b, id)
}

fn collect(db: &Ferry, kind: &str) -> Array {
    let seen = Array::new();
    let sink = seen.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        sink.push(&e);
    })
    .into_js_value();
    db.on(kind, f.unchecked_into()).unwrap();
    seen
}

#[wasm_bindgen_test]
async fn merge_keeps_both_devices_changes_to_different_fields() {
    let c = unique("merge");
    let (a, b, id) = two_devices(&c, "", None).await;
    let events = collect(&b, "conflict");
    ok(a.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"a":2}"#)))
    .await;
    ok(a.sync()).await;
    ok(b.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"b":3}"#)))
    .await;
    ok(b.sync()).await;
    let on_server = server_record(&c, &id).await;
    assert_eq!(
        (get(&on_server, "a"), get(&on_server, "b")),
        (JsValue::from(2), JsValue::from(3))
    );
    assert_eq!(events.length(), 1, "B was told of the conflict");
    let e = events.get(0);
    assert_eq!(get(&get(&e, "base"), "a"), 1);
    assert_eq!(get(&get(&e, "server"), "a"), 2);
    assert_eq!(get(&get(&e, "local"), "b"), 3);
    assert_eq!(get(&get(&e, "result"), "b"), 3);
    let local_b = ok(b.collection(&c).unwrap().get(id.into())).await;
    assert_eq!(
        (get(&local_b, "a"), get(&local_b, "b")),
        (JsValue::from(2), JsValue::from(3))
    );
    a.close();
    b.close();
}

#[wasm_bindgen_test]
async fn server_wins_and_client_wins_decide_a_same_field_conflict() {
    for (policy, winner) in [("serverWins", "from A"), ("clientWins", "from B")] {
        let c = unique(policy);
        let (a, b, id) = two_devices(&c, &format!(r#","conflict":"{policy}""#), None).await;
        ok(a.collection(&c)
            .unwrap()
            .update(id.clone().into(), js(r#"{"title":"from A"}"#)))
        .await;
        ok(a.sync()).await;
        ok(b.collection(&c)
            .unwrap()
            .update(id.clone().into(), js(r#"{"title":"from B"}"#)))
        .await;
        ok(b.sync()).await;
        assert_eq!(
            get(&server_record(&c, &id).await, "title"),
            winner,
            "{policy}"
        );
        assert_eq!(
            get(&ok(b.collection(&c).unwrap().get(id.into())).await, "title"),
            winner,
            "{policy}"
        );
        a.close();
        b.close();
    }
}

#[wasm_bindgen_test]
async fn a_custom_resolver_decides_and_its_record_reaches_the_server() {
    let c = unique("custom");
    let resolver = Function::new_with_args(
        "c",
        "return Promise.resolve({ ...c.server, title: c.local.title + ' + ' + c.server.title });",
    );
    let (a, b, id) = two_devices(&c, r#","conflict":"custom""#, Some(resolver)).await;
    ok(a.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"title":"A"}"#)))
    .await;
    ok(a.sync()).await;
    ok(b.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"title":"B"}"#)))
    .await;
    let _ = JsFuture::from(b.sync()).await;
    // The resolver runs after the run that met the conflict; its answer is sent by the next one.
    for _ in 0..50 {
        if get(&server_record(&c, &id).await, "title") == "B + A" {
            break;
        }
        sleep(100).await;
    }
    assert_eq!(get(&server_record(&c, &id).await, "title"), "B + A");
    assert_eq!(Array::from(&ok(b.conflicts()).await).length(), 0);
    a.close();
    b.close();
}

#[wasm_bindgen_test]
async fn a_deferred_conflict_survives_a_reload_and_is_resolved_later() {
    let c = unique("defer");
    let name_b = unique("devB");
    let a = device(&unique("devA"), &c, r#","conflict":"custom""#, None).await;
    let defer = || Some(Function::new_with_args("c", "return 'defer';"));
    let b = device(&name_b, &c, r#","conflict":"custom""#, defer()).await;
    let rec = ok(a.collection(&c).unwrap().create(js(r#"{"title":"t"}"#))).await;
    ok(a.sync()).await;
    ok(b.sync()).await;
    let id = get(
        &ok(a.collection(&c).unwrap().get(get(&rec, "id"))).await,
        "id",
    )
    .as_string()
    .unwrap();
    ok(a.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"title":"A"}"#)))
    .await;
    ok(a.sync()).await;
    ok(b.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"title":"B"}"#)))
    .await;
    let _ = JsFuture::from(b.sync()).await;
    let mut listed = Array::new();
    for _ in 0..50 {
        listed = Array::from(&ok(b.conflicts()).await);
        if listed.length() == 1 && get(&listed.get(0), "state") == "deferred" {
            break;
        }
        sleep(50).await;
    }
    assert_eq!(get(&listed.get(0), "state"), "deferred");
    b.close();
    let b = device(&name_b, &c, r#","conflict":"custom""#, defer()).await;
    let listed = Array::from(&ok(b.conflicts()).await);
    assert_eq!(listed.length(), 1, "it survived the reload");
    let conflict = listed.get(0);
    assert_eq!(get(&get(&conflict, "local"), "title"), "B");
    assert_eq!(get(&get(&conflict, "server"), "title"), "A");
    let chosen = js(&format!(r#"{{"id":"{id}","title":"chosen"}}"#));
    ok(b.resolve_conflict(get(&conflict, "conflictId"), chosen)).await;
    ok(b.sync()).await;
    assert_eq!(get(&server_record(&c, &id).await, "title"), "chosen");
    a.close();
    b.close();
}

/// A tab that opens the store with more collections upgrades the database, which closes the
/// leading tab's connection: that tab can no longer write, so the lead passes to the new one.
#[wasm_bindgen_test]
async fn a_tab_that_upgrades_the_database_takes_the_lead_from_the_one_it_closed() {
    let (c, more) = (unique("upg"), unique("upg-more"));
    let name = unique("upgrade");
    let first = device(&name, &c, "", None).await;
    sleep(50).await;
    assert_eq!(get(&ok(first.status()).await, "leader"), true);
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{"{c}":{{"url":"{0}/api/{c}"}},"{more}":{{"url":"{0}/api/{more}"}}}}}}"#,
        server()
    ));
    let second = Ferry::open(opts).await.expect("open, upgrading");
    let mut leads = false;
    for _ in 0..100 {
        if get(&ok(second.status()).await, "leader").as_bool() == Some(true) {
            leads = true;
            break;
        }
        sleep(20).await;
    }
    assert!(
        leads,
        "the upgrading tab leads once the other's connection is gone"
    );
    // Every call of the closed tab fails, saying why: `collection()` as a read would.
    let e = first
        .collection(&c)
        .err()
        .expect("the first tab's connection is closed");
    assert_eq!(get(&e, "name"), "ClosedError");
    assert!(get(&e, "message")
        .as_string()
        .unwrap()
        .contains("upgrading"));
    // Its sync() says so too, rather than wait for a run that will never come.
    let e = JsFuture::from(first.sync())
        .await
        .expect_err("no sync without a connection");
    assert_eq!(get(&e, "name"), "ClosedError");
    assert!(
        get(&e, "message")
            .as_string()
            .unwrap()
            .contains("upgrading"),
        "{:?}",
        get(&e, "message")
    );
    ok(second
        .collection(&c)
        .unwrap()
        .create(js(r#"{"title":"after the upgrade"}"#)))
    .await;
    ok(second.sync()).await;
    assert_eq!(ok(second.pending_count()).await.as_f64(), Some(0.0));
    assert_eq!(
        get(&server_records(&c).await.get(0), "title"),
        "after the upgrade"
    );
    first.close();
    second.close();
}

#[wasm_bindgen_test]
async fn two_tabs_one_flusher_every_change_seen_and_takeover_on_close() {
    let c = unique("tabs");
    let name = unique("tabs");
    let first = device(&name, &c, "", None).await;
    sleep(50).await;
    let second = device(&name, &c, "", None).await;
    sleep(50).await;
    let lead_first = get(&ok(first.status()).await, "leader").as_bool().unwrap();
    let lead_second = get(&ok(second.status()).await, "leader").as_bool().unwrap();
    assert!(
        lead_first && !lead_second,
        "exactly one tab leads: the first"
    );
    // The second tab hears the first tab's writes without reloading, and the reverse.
    let heard = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = heard.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |ch: JsValue| {
        sink.borrow_mut()
            .push(get(&ch, "type").as_string().unwrap());
    })
    .into_js_value();
    second
        .collection(&c)
        .unwrap()
        .subscribe(f.unchecked_into())
        .unwrap();
    ok(first
        .collection(&c)
        .unwrap()
        .create(js(r#"{"title":"from the first"}"#)))
    .await;
    ok(second
        .collection(&c)
        .unwrap()
        .create(js(r#"{"title":"from the second"}"#)))
    .await;
    for _ in 0..50 {
        if !heard.borrow().is_empty() {
            break;
        }
        sleep(20).await;
    }
    assert_eq!(heard.borrow().first().map(String::as_str), Some("created"));
    // A sync asked in the follower is carried out by the leader, once.
    ok(second.sync()).await;
    let all: Array = {
        let window = web_sys::window().unwrap();
        let res: web_sys::Response =
            JsFuture::from(window.fetch_with_str(&format!("{}/api/{c}", server())))
                .await
                .unwrap()
                .dyn_into()
                .unwrap();
        Array::from(&get(
            &JsFuture::from(res.json().unwrap()).await.unwrap(),
            "data",
        ))
    };
    assert_eq!(all.length(), 2, "both records, each sent once");
    assert_eq!(ok(second.pending_count()).await.as_f64(), Some(0.0));
    // The leader closes: the other tab takes over.
    first.close();
    let mut took_over = false;
    for _ in 0..100 {
        if get(&ok(second.status()).await, "leader").as_bool() == Some(true) {
            took_over = true;
            break;
        }
        sleep(20).await;
    }
    assert!(took_over, "the remaining tab leads after the leader closed");
    ok(second
        .collection(&c)
        .unwrap()
        .create(js(r#"{"title":"after"}"#)))
    .await;
    ok(second.sync()).await;
    assert_eq!(ok(second.pending_count()).await.as_f64(), Some(0.0));
    second.close();
}

#[wasm_bindgen_test]
async fn a_burst_of_writes_reaches_the_other_tab_whole_and_in_order() {
    // A tab posts the changes of a quick run of writes together; none may be lost or reordered.
    let c = unique("burst");
    let name = unique("burst");
    let first = device(&name, &c, "", None).await;
    let second = device(&name, &c, "", None).await;
    let heard = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = heard.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |ch: JsValue| {
        let title = get(&get(&ch, "record"), "title").as_string();
        sink.borrow_mut().push(title.unwrap_or_default());
    })
    .into_js_value();
    second
        .collection(&c)
        .unwrap()
        .subscribe(f.unchecked_into())
        .unwrap();
    let col = first.collection(&c).unwrap();
    for i in 0..30 {
        ok(col.create(js(&format!(r#"{{"title":"t{i}"}}"#)))).await;
    }
    for _ in 0..100 {
        if heard.borrow().len() >= 30 {
            break;
        }
        sleep(20).await;
    }
    let want: Vec<String> = (0..30).map(|i| format!("t{i}")).collect();
    assert_eq!(*heard.borrow(), want);
    first.close();
    second.close();
}

#[wasm_bindgen_test]
async fn set_offline_holds_for_every_tab_of_the_store() {
    let c = unique("offline");
    let name = unique("offtabs");
    let leader = device(&name, &c, "", None).await;
    sleep(50).await;
    let follower = device(&name, &c, "", None).await;
    sleep(50).await;
    assert_eq!(get(&ok(leader.status()).await, "leader"), true);
    follower.set_offline(true.into()).unwrap();
    sleep(50).await;
    assert_eq!(
        get(&ok(leader.status()).await, "online"),
        false,
        "the leader heard it"
    );
    ok(follower
        .collection(&c)
        .unwrap()
        .create(js(r#"{"title":"kept local"}"#)))
    .await;
    let e = JsFuture::from(follower.sync()).await.expect_err("offline");
    assert_eq!(
        String::from(e.dyn_into::<js_sys::Error>().unwrap().name()),
        "OfflineError"
    );
    assert_eq!(
        ok(follower.pending_count()).await.as_f64(),
        Some(1.0),
        "nothing was sent"
    );
    follower.set_offline(false.into()).unwrap();
    sleep(50).await;
    ok(follower.sync()).await;
    assert_eq!(ok(follower.pending_count()).await.as_f64(), Some(0.0));
    leader.close();
    follower.close();
}

#[wasm_bindgen_test]
async fn a_follower_that_comes_back_online_syncs_at_once() {
    let c = unique("backon");
    let name = unique("backon");
    let leader = device(&name, &c, "", None).await;
    sleep(50).await;
    let follower = device(&name, &c, "", None).await;
    sleep(50).await;
    follower.set_offline(true.into()).unwrap();
    ok(follower
        .collection(&c)
        .unwrap()
        .create(js(r#"{"title":"waiting"}"#)))
    .await;
    follower.set_offline(false.into()).unwrap();
    ok(follower.sync()).await; // no OfflineError from a leader that had not heard yet
    assert_eq!(ok(follower.pending_count()).await.as_f64(), Some(0.0));
    leader.close();
    follower.close();
}

#[wasm_bindgen_test]
async fn a_slow_resolver_is_asked_once_per_conflict() {
    let c = unique("slow");
    let calls = Rc::new(RefCell::new(0));
    let count = calls.clone();
    let resolver = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |conflict: JsValue| {
        *count.borrow_mut() += 1;
        let server = get(&conflict, "server");
        Promise::new(&mut |resolve, _| {
            let value = server.clone();
            let done = Closure::once_into_js(move || {
                let _ = resolve.call1(&JsValue::NULL, &value);
            });
            web_sys::window()
                .unwrap()
                .set_timeout_with_callback_and_timeout_and_arguments_0(done.unchecked_ref(), 300)
                .unwrap();
        })
    })
    .into_js_value();
    let (a, b, id) = two_devices(
        &c,
        r#","conflict":"custom""#,
        Some(resolver.unchecked_into()),
    )
    .await;
    ok(a.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"title":"A"}"#)))
    .await;
    ok(a.sync()).await;
    ok(b.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"title":"B"}"#)))
    .await;
    let _ = JsFuture::from(b.sync()).await;
    // More runs while the resolver is still deciding.
    for _ in 0..3 {
        let _ = JsFuture::from(b.sync()).await;
    }
    for _ in 0..50 {
        if Array::from(&ok(b.conflicts()).await).length() == 0 {
            break;
        }
        sleep(50).await;
    }
    assert_eq!(*calls.borrow(), 1, "asked once");
    assert_eq!(Array::from(&ok(b.conflicts()).await).length(), 0);
    a.close();
    b.close();
}

/// A conflict settled by a page that went before its event was out (a reload a few ms after the
/// answer, between the commit and the event): the next store opened on that database tells it,
/// once, to the listeners put on right after `open`. The page that went is played by the engine
/// itself on B's database: it settles the conflict and never tells it.
#[wasm_bindgen_test]
async fn a_conflict_a_page_settled_and_could_not_tell_is_told_by_the_next_page() {
    use ferry::core::{Engine, Op, StoreConfig};
    use ferry::web::{BrowserEnv, FetchTransport, IdbStorage};

    let c = unique("untold");
    let name = unique("devB");
    let (a, b, id) = {
        let a = device(&unique("devA"), &c, "", None).await;
        let b = device(&name, &c, "", None).await;
        let rec = ok(a
            .collection(&c)
            .unwrap()
            .create(js(r#"{"title":"t","a":1}"#)))
        .await;
        ok(a.sync()).await;
        ok(b.sync()).await;
        let id = get(
            &ok(a.collection(&c).unwrap().get(get(&rec, "id"))).await,
            "id",
        );
        (a, b, id.as_string().unwrap())
    };
    b.close();
    ok(a.collection(&c)
        .unwrap()
        .update(id.clone().into(), js(r#"{"a":2}"#)))
    .await;
    ok(a.sync()).await;
    // The page that went: B deletes the record, and its delete meets A's edit (under `merge`,
    // the edit comes back).
    let cfg: StoreConfig = serde_json::from_value(serde_json::json!({
        "name": name, "autoSync": false,
        "collections": { c.clone(): { "url": format!("{}/api/{c}", server()) } }
    }))
    .unwrap();
    let storage = IdbStorage::open(&cfg).await.unwrap();
    let engine = Engine::open(cfg, storage, BrowserEnv::new()).await.unwrap();
    engine
        .write(&c, vec![Op::Delete(id.clone())])
        .await
        .unwrap();
    let transport = FetchTransport {
        timeout_ms: 10_000,
        credentials: Default::default(),
    };
    let (_, report) = engine.flush(&transport, &[]).await.unwrap();
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    engine.storage.close();
    // The next page.
    let b = device(&name, &c, "", None).await;
    let told = collect(&b, "conflict");
    sleep(300).await;
    assert_eq!(told.length(), 1, "told by the next page");
    assert_eq!(get(&told.get(0), "kind"), "delete");
    assert_eq!(get(&get(&told.get(0), "result"), "a"), 2);
    b.close();
    let b = device(&name, &c, "", None).await;
    let again = collect(&b, "conflict");
    sleep(300).await;
    assert_eq!(again.length(), 0, "told once");
    a.close();
    b.close();
}
