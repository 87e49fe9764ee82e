//! Pulls against the in-memory protocol server: full snapshots, `since` deltas with tombstones,
//! and pending local changes kept on top of the server's version.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::{ChangeKind, MemoryStorage};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

// ---------------------------------------------------------------- pulls

#[test]
fn full_pull_adds_updates_and_removes() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = s.server_create("todos", json!({"title": "a"}));
    let b = s.server_create("todos", json!({"title": "b"}));
    let report = pull(&db, &s, "todos");
    assert_eq!(report.changes.len(), 2);
    assert_in_sync(&db, &s, "todos");
    // A second client changes things; a plain server gives full snapshots every time.
    let plain = MemServer::plain();
    let (db2, _) = open_todos();
    let x = plain.server_create("todos", json!({"title": "x"}));
    let y = plain.server_create("todos", json!({"title": "y"}));
    pull(&db2, &plain, "todos");
    plain.server_put("todos", &x, json!({"title": "x2"}));
    plain.server_delete("todos", &y);
    let z = plain.server_create("todos", json!({"title": "z"}));
    let report = pull(&db2, &plain, "todos");
    assert_in_sync(&db2, &plain, "todos");
    let kinds: Vec<(ChangeKind, Value)> = report
        .changes
        .iter()
        .map(|c| (c.kind, c.id.clone()))
        .collect();
    assert!(
        kinds.contains(&(ChangeKind::Updated, json!(x))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ChangeKind::Deleted, json!(y))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ChangeKind::Created, json!(z))),
        "{kinds:?}"
    );
    assert!(report.changes.iter().all(|c| c.remote));
    let _ = (a, b);
}

#[test]
fn delta_pull_applies_changes_and_tombstones() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = s.server_create("todos", json!({"title": "a"}));
    let b = s.server_create("todos", json!({"title": "b"}));
    let c = s.server_create("todos", json!({"title": "c"}));
    pull(&db, &s, "todos");
    s.server_patch("todos", &a, json!({"title": "a2"}));
    s.server_delete("todos", &b);
    let d = s.server_create("todos", json!({"title": "d"}));
    s.reset_stats();
    let report = pull(&db, &s, "todos");
    let url = &s.log()[0].1;
    assert!(url.contains("since="), "the second pull is a delta: {url}");
    assert_eq!(report.changes.len(), 3, "{:?}", report.changes);
    assert_in_sync(&db, &s, "todos");
    assert!(get(&db, "todos", &b).is_none());
    assert_eq!(get(&db, "todos", &a).unwrap()["title"], "a2");
    assert!(get(&db, "todos", &c).is_some());
    assert!(get(&db, "todos", &d).is_some());
    // Nothing changed: an empty delta changes nothing.
    let report = pull(&db, &s, "todos");
    assert!(report.changes.is_empty(), "{:?}", report.changes);
}

#[test]
fn pull_keeps_a_pending_change_rebased_on_the_new_version() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let id = create(&db, "todos", json!({"a": 1, "b": 1}));
    flush_all(&db, &s);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    update(&db, "todos", &sid, json!({"a": 2}));
    s.server_patch("todos", &sid, json!({"b": 3}));
    pull(&db, &s, "todos");
    let l = get(&db, "todos", &sid).unwrap();
    assert_eq!(
        (l["a"].clone(), l["b"].clone()),
        (json!(2), json!(3)),
        "{l:?}"
    );
    assert_eq!(
        l["version"], 2,
        "the local row is based on the server's new version"
    );
    assert_eq!(pending(&db), 1, "the local change is still queued");
    let report = flush_all(&db, &s);
    assert!(
        report.conflicts.is_empty(),
        "rebased on the new version, no conflict: {:?}",
        report.conflicts
    );
    let sr = s.record("todos", &sid).unwrap();
    assert_eq!((sr["a"].clone(), sr["b"].clone()), (json!(2), json!(3)));
    assert_in_sync(&db, &s, "todos");
}

#[test]
fn full_pull_keeps_local_pending_creates() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    s.server_create("todos", json!({"title": "server"}));
    let mine = create(&db, "todos", json!({"title": "mine"}));
    pull(&db, &s, "todos");
    assert!(
        get(&db, "todos", &mine).is_some(),
        "a snapshot never removes a pending create"
    );
    assert_eq!(local(&db, "todos").len(), 2);
    flush_all(&db, &s);
    pull(&db, &s, "todos");
    assert_in_sync(&db, &s, "todos");
}

/// A create whose answer was lost is on the server, and carries our temp id in `clientId`.
/// A pull before the retry must not show the record twice.
#[test]
fn pull_after_a_lost_create_answer_does_not_duplicate_locally() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "only one"}));
    s.drop_after_commit(1);
    flush(&db, &s);
    pull(&db, &s, "todos");
    let titles: Vec<Value> = local(&db, "todos")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(
        titles,
        vec![json!("only one")],
        "the same record appears twice locally"
    );
}

#[test]
fn pull_after_a_lost_create_answer_converges_after_flush() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "only one"}));
    s.drop_after_commit(1);
    flush(&db, &s);
    pull(&db, &s, "todos");
    flush_all(&db, &s);
    pull(&db, &s, "todos");
    assert_eq!(local(&db, "todos").len(), 1);
    assert_in_sync(&db, &s, "todos");
}

// ---------------------------------------------------------------- a flush during a pull

/// The server for a pull whose read is answered with what the server held when it was sent,
/// while a flush of the same store applies its answers before the read's answer arrives (the
/// app's `pull()` beside a sync, or another tab's flush). Only the first read is overtaken.
struct FlushDuringRead<'a> {
    server: MemServer,
    db: &'a Db,
    done: std::cell::Cell<bool>,
}

impl Transport for FlushDuringRead<'_> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        let res = self.server.send(req).await;
        if !self.done.replace(true) {
            flush_all(self.db, &self.server);
        }
        res
    }
}

#[test]
fn a_read_overtaken_by_a_flush_is_made_again() {
    for server in [MemServer::new(), MemServer::plain()] {
        let (db, _) = open_todos();
        let kept = create(&db, "todos", json!({"title": "kept", "n": 1}));
        let gone = create(&db, "todos", json!({"title": "gone"}));
        flush_all(&db, &server);
        let kept = id_of(&get(&db, "todos", &kept).unwrap());
        let gone = id_of(&get(&db, "todos", &gone).unwrap());
        let new = create(&db, "todos", json!({"title": "new"}));
        update(&db, "todos", &kept, json!({"n": 2}));
        delete(&db, "todos", &gone);
        let t = FlushDuringRead {
            server: server.clone(),
            db: &db,
            done: Default::default(),
        };
        let report = block_on(db.pull(&t, &[], "todos")).expect("pull");
        assert_eq!(pending(&db), 0);
        assert!(get(&db, "todos", &new).is_some(), "the acked create stays");
        assert_eq!(
            get(&db, "todos", &kept).unwrap()["n"],
            2,
            "the acked update stays"
        );
        assert!(get(&db, "todos", &gone).is_none(), "the acked delete stays");
        assert_in_sync(&db, &server, "todos");
        assert_eq!(report.requests, 2, "read again");
    }
}

/// Answers applied to another collection meanwhile do not make a read stale: with the app
/// writing to one collection all the time, a pull of another is not read again and again.
#[test]
fn a_flush_of_another_collection_does_not_make_a_read_again() {
    let db = open(
        config(&["todos", "notes"]),
        ferry::core::MemoryStorage::new(),
    );
    let server = MemServer::new();
    server.server_create("todos", json!({"title": "theirs"}));
    create(&db, "notes", json!({"text": "mine"}));
    let t = FlushDuringRead {
        server: server.clone(),
        db: &db,
        done: Default::default(),
    };
    let report = block_on(db.pull(&t, &[], "todos")).expect("pull");
    assert_eq!(report.requests, 1);
    assert_eq!(pending(&db), 0);
    assert_in_sync(&db, &server, "todos");
}

#[test]
fn a_list_without_versions_keeps_the_version_the_last_answer_gave() {
    // A server that gives versions only as ETags (PROTOCOL.md section 4): its list has none.
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let server = tap.inner.clone();
    tap.hook(move |req| {
        let mut res = server.send_now(req.clone());
        if req.method == "GET" {
            if let Ok(r) = &mut res {
                let mut v: Value = serde_json::from_str(&r.body).unwrap();
                for rec in v["data"].as_array_mut().unwrap() {
                    rec.as_object_mut().unwrap().remove("version");
                }
                r.body = v.to_string();
            }
        }
        Some(res)
    });
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &a).unwrap());
    pull(&db, &tap, "todos");
    tap.clear();
    update(&db, "todos", &sid, json!({"title": "b"}));
    flush_all(&db, &tap);
    let put = &tap.requests()[0];
    assert_eq!(put.method, "PUT");
    assert!(
        put.headers
            .iter()
            .any(|(k, v)| k == "If-Match" && v == "\"1\""),
        "the update still says which version it changes: {:?}",
        put.headers
    );
}

/// The `page=` number of a paged read's URL (1 without one).
fn page_of(url: &str) -> usize {
    url.split("page=").nth(1).map_or(1, |p| p.parse().unwrap())
}

/// A Django REST framework style server over `s`: `{count, next, previous, results}`, two
/// records a page, `next` an absolute URL; `fail_page` answers 500.
fn paged(s: &MemServer, fail_page: Option<usize>) -> Tap<MemServer> {
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        if req.method != "GET" {
            return None;
        }
        let page = page_of(&req.url);
        if Some(page) == fail_page {
            return Some(Ok(json_response(500, json!({"detail": "boom"}))));
        }
        let all = server.send_now(HttpRequest {
            url: "/api/todos".into(),
            ..req.clone()
        });
        let v: Value = serde_json::from_str(&all.unwrap().body).unwrap();
        let recs = v["data"].as_array().unwrap().clone();
        let chunk: Vec<Value> = recs.iter().skip((page - 1) * 2).take(2).cloned().collect();
        let next = (page * 2 < recs.len())
            .then(|| format!("http://testserver/api/todos?page={}", page + 1));
        Some(Ok(json_response(
            200,
            json!({"count": recs.len(), "next": next, "previous": null, "results": chunk}),
        )))
    });
    tap
}

#[test]
fn a_paged_list_is_read_to_its_last_page() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().root_property = "results".into();
    let db = open(cfg, MemoryStorage::new());
    let s = MemServer::new();
    for i in 0..5 {
        create(&db, "todos", json!({ "i": i }));
    }
    flush_all(&db, &s);
    s.server_create("todos", json!({"i": 5}));
    let tap = paged(&s, None);
    let report = pull(&db, &tap, "todos");
    assert_eq!(report.requests, 3, "pages of 2, 2 and 2");
    assert_eq!(
        block_on(db.all("todos")).unwrap().len(),
        6,
        "no record on a later page taken for deleted"
    );

    // A page that fails fails the read: nothing of it is applied.
    s.server_create("todos", json!({"i": 6}));
    let tap = paged(&s, Some(3));
    assert!(block_on(db.pull(&tap, &[], "todos")).is_err());
    assert_eq!(block_on(db.all("todos")).unwrap().len(), 6);
}

#[test]
fn a_read_answered_with_a_page_is_a_protocol_error_with_its_status() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    tap.hook(|req| {
        (req.method == "GET").then(|| {
            Ok(HttpResponse {
                status: 200,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body: "<html>Sign in to the Wi-Fi</html>".into(),
            })
        })
    });
    let e = block_on(db.pull(&tap, &[], "todos")).expect_err("not a page of records");
    assert_eq!(e.kind, ferry::core::ErrorKind::Protocol);
    assert_eq!(e.status, Some(200));
    assert!(e.message.contains("HTML"), "{}", e.message);
}

#[test]
fn a_full_pull_removes_what_the_deltas_never_said_was_gone() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    pull(&db, &s, "todos"); // a snapshot, and a cursor
    s.wipe(); // gone on the server, and no tombstone says so
    pull(&db, &s, "todos");
    assert_eq!(local(&db, "todos").len(), 1, "a delta cannot tell");
    // A full read that fails leaves the cursor: the next pull is still a delta.
    s.fail_next(1, 503, None);
    block_on(db.pull_full(&s, &[], "todos")).expect_err("a 503");
    s.reset_stats();
    pull(&db, &s, "todos");
    assert!(s.log()[0].1.contains("since="), "{:?}", s.log());
    block_on(db.pull_full(&s, &[], "todos")).expect("a full read");
    assert!(local(&db, "todos").is_empty(), "{:?}", local(&db, "todos"));
}

/// `s`, answering every read since a cursor with `status`, and every full read with the records
/// and a cursor of 50,000 characters.
fn refusing_cursors(s: &MemServer, status: u16) -> Tap<MemServer> {
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        if req.method != "GET" {
            return None;
        }
        if req.url.contains("since=") {
            return Some(Ok(json_response(status, json!({"error": "no"}))));
        }
        let all = server.send_now(req.clone()).unwrap();
        let v: Value = serde_json::from_str(&all.body).unwrap();
        let cursor = "c".repeat(8_000); // as long as is kept: see sync_garbled_answers.rs
        Some(Ok(json_response(
            200,
            json!({"data": v["data"], "cursor": cursor}),
        )))
    });
    tap
}

#[test]
fn a_cursor_too_long_for_a_url_falls_back_to_a_full_read() {
    // 414, or 431 from servers (Node's) whose header limit a long URL passes first.
    for status in [414, 431] {
        let (db, _) = open_todos();
        let s = MemServer::new();
        s.server_create("todos", json!({"title": "a"}));
        let tap = refusing_cursors(&s, status);
        pull(&db, &tap, "todos");
        s.server_create("todos", json!({"title": "b"}));
        tap.clear();
        pull(&db, &tap, "todos"); // refused delta: read in full
        let urls: Vec<String> = tap.requests().into_iter().map(|r| r.url).collect();
        assert_eq!(urls.len(), 2, "{status}");
        assert!(
            !urls[1].contains("since="),
            "{status}: the second read is a full one"
        );
        assert_eq!(local(&db, "todos").len(), 2, "{status}: b arrived");
    }
}

#[test]
fn an_error_names_a_long_url_in_short() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let tap = refusing_cursors(&s, 500);
    pull(&db, &tap, "todos");
    let e = block_on(db.pull(&tap, &[], "todos")).expect_err("a 500");
    assert_eq!(e.status, Some(500));
    assert!(e.message.len() < 400, "{} characters", e.message.len());
    assert!(e.message.contains("(8017 characters)"), "{}", &e.message);
}

#[test]
fn next_links_that_go_on_without_records_end_the_read() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().root_property = "results".into();
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::new());
    tap.hook(|req| {
        let page = page_of(&req.url);
        let next = format!("/api/todos?page={}", page + 1);
        Some(Ok(json_response(200, json!({"results": [], "next": next}))))
    });
    let e = block_on(db.pull(&tap, &[], "todos")).expect_err("pages without end");
    assert_eq!(e.kind, ferry::core::ErrorKind::Protocol);
    assert!(e.message.contains("do not end"), "{}", e.message);
    let sent = tap.requests().len();
    assert!(sent <= 52, "{sent} requests");

    // Empty pages between full ones are a server's right (a filtered page): the count restarts.
    tap.hook(|req| {
        let page = page_of(&req.url);
        let recs = if page % 40 == 0 {
            json!([{"id": page, "title": "t"}])
        } else {
            json!([])
        };
        let next = (page < 200).then(|| format!("/api/todos?page={}", page + 1));
        Some(Ok(json_response(
            200,
            json!({"results": recs, "next": next}),
        )))
    });
    block_on(db.pull(&tap, &[], "todos")).expect("200 pages, 5 of them with a record");
    assert_eq!(local(&db, "todos").len(), 5);
}
