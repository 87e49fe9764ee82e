//! Sync in real Chromium against the real reference server on loopback (started by
//! `scripts/with-server`, which passes its URL at build time as FERRY_SERVER_URL). Each test uses
//! its own collections, so tests never see each other's data or faults.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

async fn stats() -> JsValue {
    http("GET", "/__admin/stats", None).await
}

async fn open(name: &str, collections: &[(&str, &str)], extra: &str) -> Ferry {
    let cols: Vec<String> = collections
        .iter()
        .map(|(c, more)| format!(r#""{c}":{{"url":"{}/api/{c}"{more}}}"#, server()))
        .collect();
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{{}}}{extra}}}"#,
        cols.join(",")
    ));
    Ferry::open(opts).await.expect("open")
}

#[wasm_bindgen_test]
async fn offline_changes_reach_the_server_and_ids_come_back() {
    let (p, t) = (unique("projects"), unique("todos"));
    let refs = format!(r#","refs":{{"projectId":"{p}"}},"indexes":["projectId"]"#);
    let db = open(&unique("sync1"), &[(&p, ""), (&t, &refs)], "").await;
    let projects = db.collection(&p).unwrap();
    let todos = db.collection(&t).unwrap();
    let proj = ok(projects.create(js(r#"{"name":"home"}"#))).await;
    let tmp = get(&proj, "id");
    let a = ok(todos.create(js(&format!(
        r#"{{"title":"a","projectId":{}}}"#,
        js_sys::JSON::stringify(&tmp).unwrap()
    ))))
    .await;
    let b = ok(todos.create(js(r#"{"title":"b"}"#))).await;
    ok(todos.update(get(&a, "id"), js(r#"{"done":true}"#))).await;
    ok(todos.delete(get(&b, "id"))).await;
    ok(db.sync()).await;
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    let on_server = server_records(&t).await;
    assert_eq!(
        on_server.length(),
        1,
        "b was created and deleted offline: never sent"
    );
    let sa = on_server.get(0);
    assert_eq!(get(&sa, "done"), true);
    let sp = server_records(&p).await.get(0);
    assert_eq!(
        get(&sa, "projectId"),
        get(&sp, "id"),
        "the reference carries the server's id"
    );
    let local = ok(todos.get(get(&a, "id"))).await;
    assert_eq!(
        get(&local, "id"),
        get(&sa, "id"),
        "the temporary id still finds the record"
    );
    assert_eq!(get(&local, "version"), get(&sa, "version"));
    db.close();
}

#[wasm_bindgen_test]
async fn a_lost_answer_is_retried_without_a_duplicate() {
    let t = unique("lost");
    let db = open(&unique("sync2"), &[(&t, "")], "").await;
    let todos = db.collection(&t).unwrap();
    ok(todos.create(js(r#"{"title":"once"}"#))).await;
    http("POST", "/__admin/stats/reset", None).await;
    faults(&format!(r#"{{"dropAfterCommit":1,"match":"/api/{t}"}}"#)).await;
    // Chromium itself may resend a POST whose reused connection closed without an answer; then
    // the first sync already succeeds. Either way the same Idempotency-Key reaches the server twice.
    if JsFuture::from(db.sync()).await.is_err() {
        assert_eq!(
            server_records(&t).await.length(),
            1,
            "the server committed before the answer was lost"
        );
        ok(db.sync()).await;
    }
    assert!(
        get(&stats().await, "idempotentReplays").as_f64().unwrap() >= 1.0,
        "the retry was a replay"
    );
    assert_eq!(
        server_records(&t).await.length(),
        1,
        "the retry was recognised by its Idempotency-Key"
    );
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    db.close();
}

#[wasm_bindgen_test]
async fn transient_failures_are_retried_and_retry_after_is_honoured() {
    let t = unique("flaky");
    let db = open(&unique("sync3"), &[(&t, "")], "").await;
    let todos = db.collection(&t).unwrap();
    ok(todos.create(js(r#"{"title":"x"}"#))).await;
    faults(&format!(
        r#"{{"failNext":1,"status":503,"match":"/api/{t}"}}"#
    ))
    .await;
    assert!(fails(db.sync()).await.contains("503"));
    assert_eq!(
        ok(db.pending_count()).await.as_f64(),
        Some(1.0),
        "a 5xx never drops a mutation"
    );
    faults(&format!(
        r#"{{"failNext":1,"status":429,"retryAfter":"3","match":"/api/{t}"}}"#
    ))
    .await;
    let before = js_sys::Date::now();
    assert!(fails(db.sync()).await.contains("429"));
    let status = ok(db.status()).await;
    let next = get(&status, "nextRetryAt").as_f64().expect("a retry time");
    assert!(
        next >= before + 2_900.0,
        "Retry-After: 3 is honoured ({next} vs {before})"
    );
    // The app's own `sync()` within the pause sends nothing, and says why.
    let why = fails(db.sync()).await;
    assert!(why.contains("Retry-After"), "{why}");
    let outbox = Array::from(&ok(db.outbox()).await);
    assert_eq!(
        get(&outbox.get(0), "attempts"),
        2,
        "not sent during the pause"
    );
    sleep((next - js_sys::Date::now()).max(0.0) as i32 + 100).await;
    ok(db.sync()).await;
    assert_eq!(server_records(&t).await.length(), 1);
    db.close();
}

#[wasm_bindgen_test]
async fn a_rejected_mutation_does_not_block_the_rest() {
    let (bad, good) = (unique("bad"), unique("good"));
    let db = open(&unique("sync4"), &[(&bad, ""), (&good, "")], "").await;
    let rejects = Array::new();
    let sink = rejects.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        sink.push(&e);
    })
    .into_js_value();
    db.on("rejected", f.unchecked_into()).unwrap();
    let r = ok(db
        .collection(&bad)
        .unwrap()
        .create(js(r#"{"title":"refused"}"#)))
    .await;
    ok(db
        .collection(&good)
        .unwrap()
        .create(js(r#"{"title":"fine"}"#)))
    .await;
    faults(&format!(
        r#"{{"failNext":1,"status":422,"match":"/api/{bad}"}}"#
    ))
    .await;
    ok(db.sync()).await;
    assert_eq!(
        server_records(&good).await.length(),
        1,
        "the rest of the queue went on"
    );
    assert_eq!(server_records(&bad).await.length(), 0);
    let list = Array::from(&ok(db.rejected()).await);
    assert_eq!(list.length(), 1);
    assert_eq!(get(&list.get(0), "status"), 422);
    assert_eq!(rejects.length(), 1, "a rejected event was emitted");
    assert!(
        ok(db.collection(&bad).unwrap().get(get(&r, "id")))
            .await
            .is_undefined(),
        "back to the server's state"
    );
    ok(db.retry_rejected(get(&list.get(0), "mutationId"), None)).await;
    ok(db.sync()).await;
    assert_eq!(
        server_records(&bad).await.length(),
        1,
        "retry sends it again"
    );
    assert_eq!(Array::from(&ok(db.rejected()).await).length(), 0);
    db.close();
}

#[wasm_bindgen_test]
async fn a_captive_portal_page_is_not_an_acknowledgement() {
    let t = unique("portal");
    let db = open(&unique("sync5"), &[(&t, "")], "").await;
    ok(db.collection(&t).unwrap().create(js(r#"{"title":"x"}"#))).await;
    faults(&format!(r#"{{"htmlNext":1,"match":"/api/{t}"}}"#)).await;
    let why = fails(db.sync()).await;
    assert!(why.contains("HTML"), "{why}");
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(1.0));
    ok(db.sync()).await;
    assert_eq!(server_records(&t).await.length(), 1);
    db.close();
}

/// A store of collection `t` whose `getHeaders` gives a stale token the first time and a fresh
/// one after; with the number of times it was asked.
async fn open_asking_for_headers(t: &str) -> (Ferry, std::rc::Rc<std::cell::Cell<u32>>) {
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = calls.clone();
    let get_headers = Closure::<dyn FnMut() -> JsValue>::new(move || {
        counter.set(counter.get() + 1);
        let token = if counter.get() == 1 { "stale" } else { "fresh" };
        js(&format!(r#"{{"Authorization":"Bearer {token}"}}"#))
    })
    .into_js_value();
    let cols = format!(
        r#"{{"name":"{}","autoSync":false,"collections":{{"{t}":{{"url":"{}/api/{t}"}}}}}}"#,
        unique("auth"),
        server()
    );
    let opts = js(&cols);
    Reflect::set(&opts, &"getHeaders".into(), &get_headers).unwrap();
    (Ferry::open(opts).await.expect("open"), calls)
}

#[wasm_bindgen_test]
async fn a_401_asks_the_app_for_headers_again() {
    let t = unique("auth");
    let (db, calls) = open_asking_for_headers(&t).await;
    ok(db
        .collection(&t)
        .unwrap()
        .create(js(r#"{"title":"secret"}"#)))
    .await;
    http("POST", "/__admin/token", Some(r#"{"token":"fresh"}"#)).await;
    let result = JsFuture::from(db.sync()).await;
    http("POST", "/__admin/token", Some(r#"{"token":null}"#)).await;
    result.expect("the second headers call gave a working token");
    assert_eq!(calls.get(), 2);
    assert_eq!(server_records(&t).await.length(), 1);
    db.close();
}

/// With nothing pending, the first request is a read: its 401 asks for headers again too, and
/// a 401 that fresh headers do not cure is a NetworkError with the status.
#[wasm_bindgen_test]
async fn a_read_answered_401_asks_the_app_for_headers_again() {
    let t = unique("auth-read");
    let (db, calls) = open_asking_for_headers(&t).await;
    let todos = db.collection(&t).unwrap();
    http("POST", &format!("/api/{t}"), Some(r#"{"title":"theirs"}"#)).await;
    http("POST", "/__admin/token", Some(r#"{"token":"fresh"}"#)).await;
    let pulled = JsFuture::from(todos.pull(None)).await;
    let asked = calls.get();
    let all = JsFuture::from(todos.all()).await;
    http("POST", "/__admin/token", Some(r#"{"token":"other"}"#)).await;
    let refused = JsFuture::from(todos.pull(None)).await;
    http("POST", "/__admin/token", Some(r#"{"token":null}"#)).await;
    pulled.expect("the second headers call gave a working token");
    assert_eq!(asked, 2);
    assert_eq!(Array::from(&all.unwrap()).length(), 1);
    let e = refused.expect_err("no headers cure a token the server no longer takes");
    assert_eq!(get(&e, "name"), "NetworkError");
    assert_eq!(get(&e, "status"), 401);
    assert_eq!(
        calls.get(),
        4,
        "asked for the read, once more after its 401, then given up"
    );
    db.close();
}

/// A `getHeaders` that never settles is given up after `timeoutMs`: sync says why, and does not
/// hang.
#[wasm_bindgen_test]
async fn a_get_headers_that_never_settles_times_out() {
    let t = unique("auth-hang");
    let never = Closure::<dyn FnMut() -> JsValue>::new(|| Promise::new(&mut |_, _| {}).into())
        .into_js_value();
    let opts = js(&format!(
        r#"{{"name":"{}","autoSync":false,"timeoutMs":300,"collections":{{"{t}":{{"url":"{}/api/{t}"}}}}}}"#,
        unique("sync6h"),
        server()
    ));
    Reflect::set(&opts, &"getHeaders".into(), &never).unwrap();
    let db = Ferry::open(opts).await.expect("open");
    let e = JsFuture::from(db.collection(&t).unwrap().pull(None))
        .await
        .expect_err("no headers, no read");
    assert_eq!(get(&e, "name"), "NetworkError");
    let msg = get(&e, "message").as_string().unwrap();
    assert!(msg.contains("getHeaders"), "{msg}");
    db.close();
}

/// One collection's read failing does not keep `sync()` from reading the others.
#[wasm_bindgen_test]
async fn a_failing_read_of_one_collection_does_not_stop_the_others() {
    let (a, z) = (unique("aa-first"), unique("zz-second"));
    let db = open(&unique("sync-pulls"), &[(&a, ""), (&z, "")], "").await;
    http("POST", &format!("/api/{z}"), Some(r#"{"title":"theirs"}"#)).await;
    faults(&format!(
        r#"{{"failNext":1,"status":403,"match":"/api/{a}","methods":["GET"]}}"#
    ))
    .await;
    assert!(fails(db.sync()).await.contains("403"));
    let got = Array::from(&ok(db.collection(&z).unwrap().all()).await);
    assert_eq!(
        got.length(),
        1,
        "the second collection was read all the same"
    );
    db.close();
}

#[wasm_bindgen_test]
async fn batching_reaches_the_same_state_with_fewer_requests() {
    let (t1, t2) = (unique("single"), unique("batched"));
    let mut requests = Vec::new();
    for (t, extra) in [
        (&t1, String::new()),
        (
            &t2,
            format!(r#","batchUrl":"{}/api/$batch","batchSize":50"#, server()),
        ),
    ] {
        let db = open(&unique("sync7"), &[(t, "")], &extra).await;
        let todos = db.collection(t).unwrap();
        let many: Vec<String> = (0..20).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
        let made = Array::from(&ok(todos.create_many(js(&format!("[{}]", many.join(","))))).await);
        ok(db.sync()).await;
        for i in 0..10 {
            ok(todos.update(get(&made.get(i), "id"), js(r#"{"seen":true}"#))).await;
        }
        http("POST", "/__admin/stats/reset", None).await;
        ok(db.sync()).await;
        requests.push(get(&stats().await, "requests").as_f64().unwrap());
        let on_server = server_records(t).await;
        assert_eq!(on_server.length(), 20);
        let seen = on_server.iter().filter(|r| get(r, "seen") == true).count();
        assert_eq!(seen, 10);
        db.close();
    }
    // 10 updates: 10 PUTs alone; one batch (plus the pull's GET in both cases).
    assert!(
        requests[1] * 3.0 < requests[0],
        "batched {} vs single {}",
        requests[1],
        requests[0]
    );
}

#[wasm_bindgen_test]
async fn a_pull_keeps_pending_local_changes() {
    let t = unique("pull");
    let db = open(&unique("sync8"), &[(&t, "")], "").await;
    let todos = db.collection(&t).unwrap();
    let r = ok(todos.create(js(r#"{"a":1,"b":1}"#))).await;
    ok(db.sync()).await;
    let id = get(&ok(todos.get(get(&r, "id"))).await, "id")
        .as_string()
        .unwrap();
    // Another client changes b on the server; this one changes a locally.
    let current = http("GET", &format!("/api/{t}/{id}"), None).await;
    Reflect::set(&current, &"b".into(), &JsValue::from(2)).unwrap();
    http(
        "PUT",
        &format!("/api/{t}/{id}"),
        Some(
            &js_sys::JSON::stringify(&current)
                .unwrap()
                .as_string()
                .unwrap(),
        ),
    )
    .await;
    ok(todos.update(id.clone().into(), js(r#"{"a":5}"#))).await;
    ok(todos.pull(None)).await;
    let local = ok(todos.get(id.clone().into())).await;
    assert_eq!(
        (get(&local, "a"), get(&local, "b")),
        (JsValue::from(5), JsValue::from(2))
    );
    assert_eq!(
        ok(db.pending_count()).await.as_f64(),
        Some(1.0),
        "the local change is still pending"
    );
    ok(db.sync()).await;
    let on_server = http("GET", &format!("/api/{t}/{id}"), None).await;
    assert_eq!(
        (get(&on_server, "a"), get(&on_server, "b")),
        (JsValue::from(5), JsValue::from(2))
    );
    db.close();
}

#[wasm_bindgen_test]
async fn reopening_during_a_flush_loses_and_duplicates_nothing() {
    let t = unique("reload");
    let name = unique("sync9");
    let db = open(&name, &[(&t, "")], "").await;
    let todos = db.collection(&t).unwrap();
    ok(todos.create(js(r#"{"title":"in flight"}"#))).await;
    // The server commits, then holds its answer; the page "reloads" meanwhile.
    faults(&format!(r#"{{"delayMs":400,"match":"/api/{t}"}}"#)).await;
    let pending = db.sync();
    let wait = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 100)
            .unwrap();
    });
    ok(wait).await;
    db.close();
    let _ = JsFuture::from(pending).await;
    http("POST", "/__admin/reset", None).await;
    let db = open(&name, &[(&t, "")], "").await;
    let outbox = Array::from(&ok(db.outbox()).await);
    assert_eq!(
        outbox.length(),
        1,
        "the mutation is still there after the reload"
    );
    assert_eq!(
        get(&outbox.get(0), "inFlight"),
        true,
        "and known to have been sent"
    );
    ok(db.sync()).await;
    assert_eq!(
        server_records(&t).await.length(),
        1,
        "sent again under the same key: no duplicate"
    );
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));
    db.close();
}

#[wasm_bindgen_test]
async fn opened_offline_it_sends_nothing_until_set_online() {
    let t = unique("openoff");
    let name = unique("sync10");
    let opts = js(&format!(
        r#"{{"name":"{name}","offline":true,"debounceMs":0,"collections":{{"{t}":{{"url":"{}/api/{t}"}}}}}}"#,
        server()
    ));
    let db = Ferry::open(opts).await.expect("open");
    ok(db.collection(&t).unwrap().create(js(r#"{"title":"held"}"#))).await;
    assert_eq!(get(&ok(db.status()).await, "online"), false);
    let wait = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 300)
            .unwrap();
    });
    ok(wait).await;
    assert_eq!(
        server_records(&t).await.length(),
        0,
        "nothing was sent while offline"
    );
    db.set_offline(false.into()).unwrap();
    ok(db.sync()).await;
    assert_eq!(server_records(&t).await.length(), 1);
    db.close();
}

/// A store of collection `t` that pulls every 150 ms by itself, and another that writes to it.
async fn reader_and_writer(t: &str) -> (Ferry, Ferry) {
    let writer = open(&unique("writer"), &[(t, "")], "").await;
    let opts = js(&format!(
        r#"{{"name":"{}","pullIntervalMs":150,"collections":{{"{t}":{{"url":"{}/api/{t}"}}}}}}"#,
        unique("reader"),
        server()
    ));
    (Ferry::open(opts).await.expect("open"), writer)
}

/// How many records `db` holds in `t` once it holds `n`, or after about 5 s.
async fn count_reaches(db: &Ferry, t: &str, n: u32) -> u32 {
    let mut seen = 0;
    for _ in 0..50 {
        seen = Array::from(&ok(db.collection(t).unwrap().all()).await).length();
        if seen == n {
            break;
        }
        sleep(100).await;
    }
    seen
}

#[wasm_bindgen_test]
async fn pull_interval_brings_other_devices_changes_without_a_call() {
    let t = unique("poll");
    let (reader, writer) = reader_and_writer(&t).await;
    ok(writer
        .collection(&t)
        .unwrap()
        .create(js(r#"{"title":"from elsewhere"}"#)))
    .await;
    ok(writer.sync()).await;
    assert_eq!(
        count_reaches(&reader, &t, 1).await,
        1,
        "the reader pulled by itself"
    );
    writer.close();
    reader.close();
}

#[wasm_bindgen_test]
async fn a_mutation_the_server_keeps_failing_does_not_stop_the_pulls() {
    let t = unique("poisoned");
    let (reader, writer) = reader_and_writer(&t).await;
    ok(reader
        .collection(&t)
        .unwrap()
        .create(js(r#"{"title":"a"}"#)))
    .await;
    ok(reader.sync()).await;
    // Every update the reader sends fails; the writer's create goes through.
    faults(&format!(
        r#"{{"failNext":100000,"status":500,"methods":["PUT","PATCH"],"match":"/api/{t}"}}"#
    ))
    .await;
    let id = get(
        &get(&ok(reader.collection(&t).unwrap().all()).await, "0"),
        "id",
    );
    ok(reader
        .collection(&t)
        .unwrap()
        .update(id, js(r#"{"title":"stuck"}"#)))
    .await;
    ok(writer
        .collection(&t)
        .unwrap()
        .create(js(r#"{"title":"from elsewhere"}"#)))
    .await;
    ok(writer.sync()).await;
    let seen = count_reaches(&reader, &t, 2).await;
    faults(r#"{"failNext":0,"methods":null,"match":null}"#).await;
    assert_eq!(
        seen, 2,
        "the reader pulled the other store's record meanwhile"
    );
    assert_eq!(ok(reader.pending_count()).await.as_f64(), Some(1.0));
    writer.close();
    reader.close();
}

#[wasm_bindgen_test]
async fn a_full_pull_drops_records_the_server_lost_without_a_tombstone() {
    let t = unique("lost");
    let db = open(&unique("sync15"), &[(&t, "")], "").await;
    let todos = db.collection(&t).unwrap();
    ok(todos.create(js(r#"{"title":"a"}"#))).await;
    ok(db.sync()).await; // sent, then pulled: the store holds a cursor
    http("POST", "/__admin/wipe", Some("{}")).await;
    ok(todos.pull(None)).await;
    assert_eq!(
        Array::from(&ok(todos.all()).await).length(),
        1,
        "a delta cannot tell"
    );
    ok(todos.pull(Some(js(r#"{"full":true}"#)))).await;
    assert_eq!(Array::from(&ok(todos.all()).await).length(), 0);
    db.close();
}
