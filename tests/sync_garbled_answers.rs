//! Answers that came out wrong on the way (a proxy, a server that died mid-answer, a success
//! that was no answer to the write) and records a JavaScript server writes with half of an
//! emoji in them: the write stays queued until a real answer comes, and the rest of the
//! collection still reads.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::http::{HttpResponse, Transport};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;
use sync_asserts::*;

fn answer(status: u16, content_type: &str, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), content_type.into())],
        body: body.into(),
    }
}

/// The server for `tap` answers its reads with their bodies passed through `rewrite`.
fn reads_rewritten(tap: &Tap<MemServer>, rewrite: impl Fn(&str) -> String + 'static) {
    let inner = tap.inner.clone();
    tap.hook(move |req| {
        (req.method == "GET").then(|| {
            let mut res = block_on(inner.send(req.clone())).expect("answers");
            res.body = rewrite(&res.body);
            Ok(res)
        })
    });
}

/// Two synced records, then (offline) an edit of the first and a delete of the second.
fn edit_and_delete(db: &Db, tap: &Tap<MemServer>) -> (String, String) {
    let a = create(db, "todos", json!({"title": "a", "n": 1}));
    let b = create(db, "todos", json!({"title": "b"}));
    flush_all(db, tap);
    let a = id_of(&get(db, "todos", &a).expect("a"));
    let b = id_of(&get(db, "todos", &b).expect("b"));
    update(db, "todos", &a, json!({"n": 2}));
    delete(db, "todos", &b);
    (a, b)
}

#[test]
fn a_success_whose_json_is_cut_short_acknowledges_nothing() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let (a, b) = edit_and_delete(&db, &tap);
    // Answered by something in the way; the server never saw either write.
    tap.hook(|req| {
        (req.method != "GET").then(|| Ok(answer(200, "application/json", r#"{"id":"1","n":"#)))
    });
    let (_, report) = flush(&db, &tap);
    assert_eq!(report.acked, 0, "{report:?}");
    assert_eq!(pending(&db), 2, "both writes still queued");
    assert_eq!(get(&db, "todos", &a).expect("a")["n"], 2, "the edit stays");
    assert_eq!(get(&db, "todos", &b), None, "the delete stays");
    tap.unhook();
    flush_all(&db, &tap);
    assert_eq!(s.record("todos", &a).expect("a")["n"], 2);
    assert_eq!(s.record("todos", &b), None);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_success_the_record_read_back_does_not_show_keeps_the_write() {
    // `{"ok": true}` (or nothing) to an update the server never applied: the record, read back
    // for its version, is still at the version the write was sent over, without the edit.
    for body in [r#"{"ok":true}"#, ""] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::new());
        let s = tap.inner.clone();
        let (a, _) = edit_and_delete(&db, &tap);
        let said = body.to_string();
        tap.hook(move |req| {
            (req.method == "PUT").then(|| Ok(answer(200, "application/json", &said)))
        });
        flush(&db, &tap);
        assert_eq!(
            get(&db, "todos", &a).expect("a")["n"],
            2,
            "{body:?}: the edit stays"
        );
        assert_eq!(pending(&db), 1, "{body:?}: the update still queued");
        tap.unhook();
        flush_all(&db, &tap);
        assert_eq!(s.record("todos", &a).expect("a")["n"], 2, "{body:?}");
        assert_in_sync(&db, &s, "todos");
    }
}

#[test]
fn a_record_holding_half_of_an_emoji_does_not_stop_the_collection_from_reading() {
    // A JavaScript server cut a title through a surrogate pair: `JSON.stringify` writes the lone
    // half as `\ud83d`, which is valid JSON.
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    s.server_create("todos", json!({"title": "CUT"}));
    s.server_create("todos", json!({"title": "whole 😀"}));
    reads_rewritten(&tap, |body| body.replace("CUT", r"ab\ud83d"));
    pull(&db, &tap, "todos");
    let mut titles: Vec<String> = local(&db, "todos")
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles, ["ab\u{fffd}", "whole 😀"]);
}

#[test]
fn json_labelled_as_html_is_read_as_json_and_a_page_is_still_a_page() {
    // Django's `HttpResponse(json.dumps(...))` and `HttpResponse("OK")`: `text/html` labels on
    // answers that are no page. A captive portal's page still acknowledges nothing.
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let inner = s.clone();
    tap.hook(move |req| {
        let mut res = block_on(inner.send(req.clone())).expect("answers");
        res.headers = vec![("Content-Type".into(), "text/html; charset=utf-8".into())];
        if req.method == "DELETE" {
            res.body = "OK".into();
        }
        Some(Ok(res))
    });
    let a = create(&db, "todos", json!({"title": "a <b>"}));
    let b = create(&db, "todos", json!({"title": "b"}));
    flush_all(&db, &tap);
    let a = id_of(&get(&db, "todos", &a).expect("a: acknowledged with its server id"));
    let b = id_of(&get(&db, "todos", &b).expect("b"));
    update(&db, "todos", &a, json!({"n": 2}));
    delete(&db, "todos", &b);
    flush_all(&db, &tap);
    s.server_create("todos", json!({"title": "from elsewhere"}));
    pull(&db, &tap, "todos");
    assert_in_sync(&db, &s, "todos");
    tap.hook(|req| {
        (req.method != "GET").then(|| Ok(answer(200, "text/html", "<html><form>Log in</form>")))
    });
    update(&db, "todos", &a, json!({"n": 3}));
    let (_, report) = flush(&db, &tap);
    assert_eq!(
        (report.acked, pending(&db)),
        (0, 1),
        "a page acknowledges nothing"
    );
}

#[test]
fn a_cursor_too_long_for_a_url_is_not_sent_back() {
    // A 10,000-character cursor would make every later read's URL one the server drops: it is
    // not kept, reads stay full reads, and the developer is told why.
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    s.server_create("todos", json!({"title": "a"}));
    reads_rewritten(&tap, |body| {
        let mut v: serde_json::Value = serde_json::from_str(body).expect("json");
        v["cursor"] = json!("c".repeat(10_000));
        v.to_string()
    });
    pull(&db, &tap, "todos");
    s.server_create("todos", json!({"title": "b"}));
    pull(&db, &tap, "todos");
    let gets: Vec<String> = tap.requests().into_iter().map(|r| r.url).collect();
    assert_eq!(gets, ["/api/todos", "/api/todos"], "no `since` sent back");
    assert_in_sync(&db, &s, "todos");
    assert_warned(&db, "10000 characters");
}

#[test]
fn a_create_answered_without_a_body_or_a_location_says_so() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    tap.hook(|req| (req.method == "POST").then(|| Ok(answer(204, "application/json", ""))));
    create(&db, "todos", json!({"title": "a"}));
    flush(&db, &tap);
    let out = block_on(db.outbox()).expect("outbox");
    let why = out[0].error.as_deref().unwrap_or_default();
    assert!(
        why.contains("no body, and no `Location`"),
        "a reason the developer can act on: {why}"
    );
}

#[test]
fn a_field_the_record_read_back_lacks_is_no_proof_either_way() {
    // The record read back lacks the one field the update set: a server that drops a field it
    // does not know (and keeps its version when nothing it stores changed), or a success that
    // was no answer where the server leaves empty fields out. The update waits a few sends, and
    // then the server's record is taken, with a warning.
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    let a = id_of(&get(&db, "todos", &a).expect("a"));
    tap.hook(|req| (req.method == "PUT").then(|| Ok(answer(204, "text/plain", ""))));
    update(&db, "todos", &a, json!({"expanded": true}));
    flush(&db, &tap);
    assert_eq!(pending(&db), 1, "not taken at once");
    assert_eq!(get(&db, "todos", &a).expect("a")["expanded"], true);
    flush_all(&db, &tap);
    assert_eq!(get(&db, "todos", &a).expect("a").get("expanded"), None);
    assert_in_sync(&db, &s, "todos");
    assert_warned(&db, "does not show");
}
