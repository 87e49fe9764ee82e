//! What the server's answer says beyond its status, read as PROTOCOL.md means it: a `Retry-After`
//! pauses the whole queue, a 404 page is not "deleted", an update acknowledged without its new
//! version has that version read back, a 409 at the version sent is a refusal (unless the
//! record, read, is at another version: the body was the write echoed back), and a collection
//! URL's query stays a query.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpResponse, Transport};
use ferry::core::{ConflictPolicy, MemoryStorage};
use mem_server::MemServer;
use native_env::*;
use serde_json::json;
use sync_asserts::*;

/// A created and synced record `{title: "a", n: 1}`: its server id.
fn synced<T: Transport>(db: &Db, t: &T) -> String {
    let a = create(db, "todos", json!({"title": "a", "n": 1}));
    flush_all(db, t);
    id_of(&get(db, "todos", &a).expect("created"))
}

fn page(status: u16) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: "<html><body><h1>404 Not Found</h1>nginx</body></html>".into(),
    }
}

#[test]
fn an_update_acknowledged_without_its_version_reads_it_back() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    // The server applies each PUT and answers 204, with no ETag.
    let inner = s.clone();
    tap.hook(move |req| {
        (req.method == "PUT").then(|| {
            let res = block_on(inner.send(req.clone()))?;
            Ok(HttpResponse {
                status: if res.status == 200 { 204 } else { res.status },
                headers: Vec::new(),
                body: if res.status == 200 {
                    String::new()
                } else {
                    res.body
                },
            })
        })
    });
    update(&db, "todos", &sid, json!({"n": 2}));
    flush_all(&db, &tap);
    // Another client changes another field; then this one writes again.
    s.server_patch("todos", &sid, json!({"title": "theirs"}));
    update(&db, "todos", &sid, json!({"n": 3}));
    flush_all(&db, &tap);
    let theirs = s.record("todos", &sid).expect("on the server");
    assert_eq!(
        strip(&theirs),
        json!({"title": "theirs", "n": 3}),
        "the second PUT went over the other client's change without If-Match"
    );
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_404_page_to_an_update_is_not_taken_for_a_deletion() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    // A proxy in front of the API answers its 404 page to writes; reads still reach the API.
    tap.hook(|req| (req.method == "PUT").then(|| Ok(page(404))));
    update(&db, "todos", &sid, json!({"n": 2}));
    for _ in 0..4 {
        flush(&db, &tap);
        db.env.advance(120_000.0);
    }
    let mine = get(&db, "todos", &sid).expect("the record is still here");
    assert_eq!(mine["n"], 2, "and keeps the local change: {mine:?}");
    assert!(pending(&db) > 0, "the change waits to be sent");
    assert!(s.record("todos", &sid).is_some());
    // The proxy is fixed: the change goes through.
    tap.unhook();
    flush_all(&db, &tap);
    assert_eq!(s.record("todos", &sid).expect("on the server")["n"], 2);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_404_page_to_a_delete_of_a_record_the_server_has_does_not_drop_it_silently() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    tap.hook(|req| (req.method == "DELETE").then(|| Ok(page(404))));
    delete(&db, "todos", &sid);
    flush(&db, &tap);
    assert!(pending(&db) > 0, "the delete is not taken as done");
    tap.unhook();
    flush_all(&db, &tap);
    assert!(s.record("todos", &sid).is_none(), "deleted on the server");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_404_page_to_a_delete_of_a_record_already_gone_is_done() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    s.server_delete("todos", &sid);
    tap.hook(|req| (req.method == "DELETE").then(|| Ok(page(404))));
    delete(&db, "todos", &sid);
    let report = flush_all(&db, &tap);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(pending(&db), 0);
}

#[test]
fn retry_after_pauses_the_queue_even_when_other_mutations_went_through() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    for n in 0..3 {
        create(&db, "todos", json!({"title": "t", "n": n}));
    }
    // The second create is answered 429 with a pause of 5 s, once.
    let (mut posts, mut refused) = (0, false);
    tap.hook(move |req| {
        posts += usize::from(req.method == "POST");
        (posts == 2 && !refused).then(|| {
            refused = true;
            Ok(HttpResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "5".into())],
                body: String::new(),
            })
        })
    });
    let now = db.env.now();
    let (end, _) = flush(&db, &tap);
    match end {
        RoundEnd::Wait { retry_at, .. } => assert!(retry_at >= now + 4_000.0, "{retry_at}"),
        other => panic!("the queue went on at once: {other:?}"),
    }
    assert_eq!(
        tap.requests().len(),
        2,
        "nothing more was sent after the 429"
    );
    assert_eq!(s.records("todos").len(), 1);
    db.env.advance(5_000.0);
    flush_all(&db, &tap);
    assert_eq!(s.records("todos").len(), 3);
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_409_at_the_version_sent_is_a_refusal_not_a_conflict_for_ever() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    // A unique field taken: 409 with the record as the server holds it, at the version sent.
    let inner = s.clone();
    let id = sid.clone();
    tap.hook(move |req| {
        (req.method == "PUT").then(|| {
            let current = inner.record("todos", &id).expect("on the server");
            Ok(json_response(409, current))
        })
    });
    update(&db, "todos", &sid, json!({"title": "taken"}));
    let report = flush_all(&db, &tap);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let puts = tap.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 1, "sent once, not again and again");
    assert_eq!(get(&db, "todos", &sid).expect("kept")["title"], "a");
}

/// The server's stale-version check answers the write itself, at the version it was sent with
/// (Rails: `rescue_from(ActiveRecord::StaleObjectError) { |e| render json: e.record, status:
/// :conflict }`, the refused record as the client sent it). Read, the record is at a newer
/// version: a conflict, which `merge` settles, not a refusal that undoes the change.
fn echo_stale_writes(tap: &Tap<MemServer>) {
    let inner = tap.inner.clone();
    tap.hook(move |req| {
        let method = req.method.as_str();
        let sent = header(req, "If-Match")?
            .trim_matches('"')
            .parse::<i64>()
            .ok()?;
        let id = req.url.rsplit('/').next()?.to_string();
        if !matches!(method, "PUT" | "DELETE") || inner.version("todos", &id) == Some(sent) {
            return None;
        }
        let mut echo = match &req.body {
            Some(b) => serde_json::from_str(b).expect("a JSON body"),
            None => inner.record("todos", &id).expect("on the server"),
        };
        echo["id"] = json!(id);
        echo["version"] = json!(sent);
        Some(Ok(json_response(409, echo)))
    });
}

#[test]
fn a_409_echoing_a_stale_write_is_a_conflict_not_a_refusal() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    s.server_patch("todos", &sid, json!({"n": 2})); // another device, meanwhile
    echo_stale_writes(&tap);
    update(&db, "todos", &sid, json!({"title": "mine"}));
    let report = flush_all(&db, &tap);
    assert!(report.rejected.is_empty(), "refused: {:?}", report.rejected);
    let server = s.record("todos", &sid).expect("on the server");
    assert_eq!(
        (&server["title"], &server["n"]),
        (&json!("mine"), &json!(2))
    );
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_409_echoing_a_stale_delete_is_a_conflict_not_a_refusal() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    s.server_patch("todos", &sid, json!({"n": 2}));
    echo_stale_writes(&tap);
    delete(&db, "todos", &sid);
    let report = flush_all(&db, &tap);
    assert!(report.rejected.is_empty(), "refused: {:?}", report.rejected);
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn a_409_at_the_version_sent_stays_a_refusal_when_reads_carry_a_content_hash_etag() {
    // Django's `ConditionalGetMiddleware`, Spring's `ShallowEtagHeaderFilter`: a strong ETag on
    // reads alone, a hash of the content, beside the record's `version`. The read is compared
    // by its `version`, as the 409's was: still at the version sent, the refusal stands (not a
    // conflict sent again with the hash, and again with the version, for ever).
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced(&db, &tap);
    let inner = s.clone();
    let id = sid.clone();
    tap.hook(move |req| match req.method.as_str() {
        "PUT" => Some(Ok(json_response(409, inner.record("todos", &id)?))),
        "GET" => {
            let mut res = inner.send_now(req.clone()).ok()?;
            res.headers.retain(|(h, _)| !h.eq_ignore_ascii_case("ETag"));
            res.headers
                .push(("ETag".into(), "\"5d41402abc4b2a76\"".into()));
            Some(Ok(res))
        }
        _ => None,
    });
    update(&db, "todos", &sid, json!({"title": "taken"}));
    let report = flush_all(&db, &tap);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let puts = tap.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 1, "sent once");
}

/// As above with an error body: the record is read back, unchanged, at the version sent. That
/// is no stale version (a conflict that is none would be sent again, and refused, for ever): the
/// policy decides, and `serverWins` keeps the server's record, with its event.
#[test]
fn a_409_with_an_error_body_over_an_unchanged_record_is_not_sent_again_for_ever() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().conflict = ConflictPolicy::ServerWins;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let sid = synced(&db, &tap);
    tap.hook(|req| {
        (req.method == "PUT").then(|| Ok(json_response(409, json!({"error": "taken"}))))
    });
    update(&db, "todos", &sid, json!({"title": "taken"}));
    let report = flush_all(&db, &tap);
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    let puts = tap.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 1, "sent once, not again and again");
    assert_eq!(get(&db, "todos", &sid).expect("kept")["title"], "a");
}

#[test]
fn a_collection_url_with_a_query_keeps_it_after_the_record_id() {
    let mut cfg = config(&["todos"]);
    for c in cfg.collections.values_mut() {
        c.url = format!("{}?tenant=3", c.url);
    }
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    let a = create(&db, "todos", json!({"title": "a"}));
    let _ = flush(&db, &tap);
    let sid = id_of(&get(&db, "todos", &a).expect("created"));
    update(&db, "todos", &sid, json!({"title": "b"}));
    delete(&db, "todos", &sid);
    let _ = flush(&db, &tap);
    let urls: Vec<(String, String)> = tap
        .requests()
        .into_iter()
        .map(|r| (r.method, r.url))
        .collect();
    assert_eq!(
        urls,
        [
            ("POST".to_string(), "/api/todos?tenant=3".to_string()),
            ("DELETE".to_string(), format!("/api/todos/{sid}?tenant=3")),
        ]
    );
}

#[test]
fn a_create_answered_with_the_id_of_another_record_created_here_overwrites_nothing() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let x = create(&db, "todos", json!({"title": "x"}));
    // The app's own record, under an id of its choosing, not sent yet.
    create(&db, "todos", json!({"id": "7", "title": "mine"}));
    // The server gives X the id 7.
    tap.hook(|req| {
        let sent = body(req);
        (req.method == "POST" && sent.get("id").is_none()).then(|| {
            let mut answer = sent.clone();
            answer["id"] = json!("7");
            Ok(json_response(201, answer))
        })
    });
    // One round: X's answer is refused while the app's own 7 waits to be sent.
    block_on(db.flush_round(&tap, &[], &mut Default::default())).expect("a round");
    assert_eq!(get(&db, "todos", "7").expect("kept")["title"], "mine");
    assert_eq!(get(&db, "todos", &x).expect("still here")["title"], "x");
    let sent_as_7: Vec<_> = tap
        .requests()
        .iter()
        .map(body)
        .filter(|b| b.get("id") == Some(&json!("7")))
        .collect();
    assert!(
        sent_as_7.iter().all(|b| b["title"] == "mine"),
        "X's data went out as record 7: {sent_as_7:?}"
    );
    let status = block_on(db.outbox()).expect("outbox");
    assert!(
        status.iter().any(|e| e.record_id == x),
        "X's create waits to be sent again"
    );
}

#[test]
fn an_id_the_server_gives_out_again_names_the_new_record() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let old = synced(&db, &tap);
    // The server is wiped (restored from an old backup): it gives the next record the old id.
    s.wipe();
    let inner = s.clone();
    let reused = old.clone();
    tap.hook(move |req| {
        (req.method == "POST").then(|| {
            let res = block_on(inner.send(req.clone()))?;
            let mut r: serde_json::Value = serde_json::from_str(&res.body).expect("a record");
            inner.server_delete("todos", r["id"].as_str().unwrap_or_default());
            inner.server_put("todos", &reused, r.clone());
            r["id"] = json!(reused);
            Ok(json_response(201, r))
        })
    });
    let x = create(&db, "todos", json!({"title": "new"}));
    flush_all(&db, &tap);
    assert_eq!(pending(&db), 0, "the create is not refused for ever");
    assert_eq!(
        get(&db, "todos", &old).expect("the new record")["title"],
        "new"
    );
    assert_eq!(
        get(&db, "todos", &x).expect("by its temporary id")["title"],
        "new"
    );
}

#[test]
fn a_round_of_ids_given_out_together_is_checked_whole() {
    // Enough creates that their new ids are read as one key range; then also rows of other
    // records inside that range, more than the range's limit, so that the rest is read key by
    // key.
    for between in [0, 60] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::new());
        for i in 0..between {
            create(
                &db,
                "todos",
                json!({"id": format!("k01-{i:03}"), "title": "between"}),
            );
        }
        flush_all(&db, &tap);
        let xs: Vec<String> = (0..20)
            .map(|i| create(&db, "todos", json!({ "title": format!("x{i}") })))
            .collect();
        // The app's own records, under ids of its choosing, not sent yet.
        for k in ["k05", "k12"] {
            create(&db, "todos", json!({"id": k, "title": "mine"}));
        }
        let next = std::cell::Cell::new(0);
        tap.hook(move |req| {
            let sent = body(req);
            (req.method == "POST" && sent.get("id").is_none()).then(|| {
                let mut answer = sent.clone();
                answer["id"] = json!(format!("k{:02}", next.get()));
                next.set(next.get() + 1);
                Ok(json_response(201, answer))
            })
        });
        block_on(db.flush_round(&tap, &[], &mut Default::default())).expect("a round");
        for k in ["k05", "k12"] {
            assert_eq!(get(&db, "todos", k).expect("kept")["title"], "mine", "{k}");
        }
        for (i, x) in xs.iter().enumerate() {
            let mine = get(&db, "todos", x).expect("by its temporary id");
            assert_eq!(mine["title"], format!("x{i}"));
            let moved = i != 5 && i != 12;
            let id = json!(format!("k{i:02}"));
            assert_eq!(mine["id"] == id, moved, "{between} {i}: {mine:?}");
        }
        assert_eq!(local(&db, "todos").len(), between + 22);
    }
}
