//! A server that gives versions only as `ETag`s (PROTOCOL.md section 4): its lists carry none,
//! so a device that only pulled a record does not know its version. Its writes read the
//! server's record first rather than going without `If-Match` over other devices' changes.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/etag_devices.rs"]
mod etag_devices;
#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use etag_devices::*;
use ferry::core::sync::http::{HttpRequest, HttpResponse, NetError, Transport};
use ferry::core::{Engine, MemoryStorage, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use std::future::Future;

#[test]
fn an_edit_of_a_pulled_record_meets_the_change_made_since() {
    let (a, b, tap, sid) = two_devices(|| config(&["todos"]));
    update(&a, "todos", &sid, json!({"title": "A's"}));
    flush_all(&a, &tap);
    update(&b, "todos", &sid, json!({"title": "B's"}));
    tap.clear();
    let report = flush_all(&b, &tap);
    assert_eq!(report.conflicts.len(), 1, "told, not lost silently");
    // `merge`, a field changed on both: the server's by default.
    assert_eq!(tap.inner.record("todos", &sid).unwrap()["title"], "A's");
    assert_eq!(get(&b, "todos", &sid).unwrap()["title"], "A's");
    let first = &tap.requests()[0];
    assert_eq!(first.method, "GET", "the server's record is read first");
    assert!(
        tap.requests().iter().all(|r| r.method != "PUT"),
        "no write over A's change"
    );
}

#[test]
fn an_edit_of_an_unchanged_pulled_record_goes_with_its_version() {
    let (a, b, tap, sid) = two_devices(|| config(&["todos"]));
    update(&a, "todos", &sid, json!({"n": 2}));
    flush_all(&a, &tap);
    pull(&b, &tap, "todos"); // B has A's change, still without a version
    update(&b, "todos", &sid, json!({"title": "B's"}));
    tap.clear();
    let report = flush_all(&b, &tap);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let put = tap
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(if_match(&put), Some("\"2\""), "the version the GET gave");
    let theirs = tap.inner.record("todos", &sid).unwrap();
    assert_eq!((&theirs["title"], &theirs["n"]), (&json!("B's"), &json!(2)));

    // Now B knows the version (the answer's ETag): its next write reads nothing first.
    update(&b, "todos", &sid, json!({"n": 3}));
    tap.clear();
    flush_all(&b, &tap);
    let methods: Vec<String> = tap.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["PUT"]);
}

#[test]
fn a_patch_compares_only_its_own_fields() {
    let cfg = || {
        let mut cfg = config(&["todos"]);
        cfg.collections.get_mut("todos").unwrap().update_method = UpdateMethod::Patch;
        cfg
    };
    let (a, b, tap, sid) = two_devices(cfg);
    update(&a, "todos", &sid, json!({"n": 2}));
    flush_all(&a, &tap);
    update(&b, "todos", &sid, json!({"title": "B's"}));
    let report = flush_all(&b, &tap);
    assert!(report.conflicts.is_empty(), "A changed another field");
    let theirs = tap.inner.record("todos", &sid).unwrap();
    assert_eq!((&theirs["title"], &theirs["n"]), (&json!("B's"), &json!(2)));
    assert_eq!(get(&b, "todos", &sid).unwrap()["n"], 2, "B has A's field");
}

#[test]
fn a_delete_of_a_pulled_record_meets_the_change_made_since() {
    let (a, b, tap, sid) = two_devices(|| config(&["todos"]));
    update(&a, "todos", &sid, json!({"title": "A's"}));
    flush_all(&a, &tap);
    delete(&b, "todos", &sid);
    let report = flush_all(&b, &tap);
    assert_eq!(report.conflicts.len(), 1);
    // `merge`: a delete over a changed record gives way; the record comes back.
    assert!(tap.inner.record("todos", &sid).is_some());
    assert_eq!(get(&b, "todos", &sid).unwrap()["title"], "A's");
}

#[test]
fn a_server_without_versions_is_read_first_once() {
    let s = MemServer::plain();
    let tap = Tap::new(s.clone());
    let (db, _) = open_todos();
    let id = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    for (i, want) in [(1, vec!["GET", "PUT"]), (2, vec!["PUT"]), (3, vec!["PUT"])] {
        update(&db, "todos", &sid, json!({ "n": i }));
        tap.clear();
        flush_all(&db, &tap);
        let methods: Vec<String> = tap.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, want, "update {i}");
        assert_eq!(s.record("todos", &sid).unwrap()["n"], i);
    }
}

#[test]
fn a_batch_goes_around_the_write_that_met_a_change() {
    let cfg = || {
        let mut cfg = config(&["todos"]);
        cfg.batch_url = Some("/api/$batch".into());
        cfg
    };
    let (a, b, tap) = devices(cfg);
    let s = tap.inner.clone();
    let ids: Vec<String> = (0..4)
        .map(|i| create(&a, "todos", json!({ "title": "first", "i": i })))
        .collect();
    flush_all(&a, &tap);
    let sids: Vec<String> = ids
        .iter()
        .map(|id| id_of(&get(&a, "todos", id).unwrap()))
        .collect();
    pull(&b, &tap, "todos");
    update(&a, "todos", &sids[1], json!({"title": "A's"}));
    flush_all(&a, &tap);
    for sid in &sids {
        update(&b, "todos", sid, json!({"title": "B's"}));
    }
    let report = flush_all(&b, &tap);
    assert_eq!(report.conflicts.len(), 1, "{:?}", report.conflicts);
    let titles: Vec<Value> = sids
        .iter()
        .map(|id| s.record("todos", id).unwrap()["title"].clone())
        .collect();
    assert_eq!(
        titles,
        [json!("B's"), json!("A's"), json!("B's"), json!("B's")]
    );
    for (sid, want) in sids.iter().zip(&titles) {
        assert_eq!(
            &get(&b, "todos", sid).unwrap()["title"],
            want,
            "B as the server"
        );
    }
}

/// With a server that keeps `Idempotency-Key`s the write sent again is answered as the first
/// time; with one that ignores them it meets 412 with its own change in the record: done. Also
/// when the page reloaded while the write was out.
#[test]
fn a_write_whose_answer_was_lost_is_not_its_own_conflict() {
    for keys in [true, false] {
        for reload in [false, true] {
            answer_lost(keys, reload);
        }
    }
}

fn answer_lost(keys: bool, reload: bool) {
    let (_a, b, tap, sid) = two_devices(|| config(&["todos"]));
    tap.inner.set_idempotency(keys);
    update(&b, "todos", &sid, json!({"title": "B's"}));
    let b = lose_the_answer(b, &tap, reload);
    let s = tap.inner.clone();
    let tap2 = etag_only(&s);
    tap2.clear();
    let report = flush_all(&b, &tap2);
    assert!(
        report.conflicts.is_empty(),
        "keys {keys}, reload {reload}: {:?}",
        report.conflicts
    );
    assert_eq!(s.record("todos", &sid).unwrap()["title"], "B's");
    assert_eq!(pending(&b), 0);
}

/// As above, and another device changes the same field after B's write landed: sent again, B's
/// write names the version it was read at, under its own key (a server that keeps keys answers
/// as the first time), instead of reading the record again and taking its own change, landed,
/// for a conflict that overwrites the other device's later one. Also when the page reloaded
/// while the write was out, before its failure could be written down.
#[test]
fn a_write_sent_again_after_a_lost_answer_keeps_the_version_it_was_read_at() {
    for reload in [false, true] {
        sent_again_after_a_lost_answer(reload);
    }
}

/// `T`, whose writes reach the server and are never answered (the page reloads meanwhile).
struct WritesVanish<'a, T>(&'a T);

impl<T: Transport> Transport for WritesVanish<'_, T> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError> {
        let write = req.method != "GET";
        let res = self.0.send(req).await;
        if write {
            std::future::pending().await
        }
        res
    }
}

/// Flushes `b`'s queued PUT, which the server applies and whose answer never arrives: cut off,
/// or the page reloaded while it was out (`b` is then opened again on its storage).
fn lose_the_answer(b: Db, tap: &Tap<MemServer>, reload: bool) -> Db {
    if reload {
        let storage = b.storage.clone();
        {
            let out = WritesVanish(tap);
            let mut flush = std::pin::pin!(b.flush(&out, &[]));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(flush.as_mut().poll(&mut cx).is_pending());
        }
        drop(b);
        let cfg = config(&["todos"]);
        block_on(Engine::open(cfg, storage, TestEnv::seeded(2))).unwrap()
    } else {
        let server = tap.inner.clone();
        tap.hook(move |req| {
            if req.method == "PUT" {
                let _ = server.send_now(req.clone());
                return Some(Err(ferry::core::sync::http::NetError::Failed(
                    "cut off".into(),
                )));
            }
            None
        });
        flush(&b, tap);
        tap.unhook();
        b
    }
}

fn sent_again_after_a_lost_answer(reload: bool) {
    let (a, b, tap, sid) = two_devices(|| config(&["todos"]));
    update(&b, "todos", &sid, json!({"title": "B's"}));
    let b = lose_the_answer(b, &tap, reload);
    let first = tap.requests().into_iter().find(|r| r.method == "PUT");
    let first = first.expect("B's write went out");
    assert_eq!(tap.inner.record("todos", &sid).unwrap()["title"], "B's");
    pull(&a, &tap, "todos"); // A sees B's change, and writes over it
    update(&a, "todos", &sid, json!({"title": "A's, later"}));
    assert!(flush_all(&a, &tap).conflicts.is_empty());
    tap.clear();
    let report = flush_all(&b, &tap);
    assert!(
        report.conflicts.is_empty(),
        "reload {reload}: {:?}",
        report.conflicts
    );
    let again = tap.requests().into_iter().find(|r| r.method == "PUT");
    let again = again.expect("B's write went again");
    assert_eq!(
        if_match(&again),
        if_match(&first),
        "the version it was read at"
    );
    assert_eq!(
        header(&again, "Idempotency-Key"),
        header(&first, "Idempotency-Key")
    );
    assert_eq!(
        tap.inner.record("todos", &sid).unwrap()["title"],
        "A's, later",
        "A's later change stands"
    );
    assert_eq!(pending(&b), 0);
    pull(&b, &tap, "todos");
    assert_eq!(get(&b, "todos", &sid).unwrap()["title"], "A's, later");
}

#[test]
fn a_record_url_that_shows_more_than_the_list_is_not_a_change() {
    // A detail serializer adds the record's own `url` and writes the id as text; under
    // `serverWins` a false conflict would throw the edit away.
    let cfg = || {
        let mut cfg = config(&["todos"]);
        cfg.collections.get_mut("todos").unwrap().conflict =
            ferry::core::ConflictPolicy::ServerWins;
        cfg
    };
    let (_a, b, tap, sid) = two_devices(cfg);
    let server = tap.inner.clone();
    let id = sid.clone();
    tap.hook(move |req| {
        let single = req.method == "GET" && req.url.ends_with(&format!("/{id}"));
        single.then(|| {
            let mut res = server.send_now(req.clone())?;
            let mut v: Value = serde_json::from_str(&res.body).unwrap();
            mem_server::strip_versions(&mut v);
            v["url"] = json!(format!("/api/todos/{id}"));
            v["id"] = json!(id.clone());
            res.body = v.to_string();
            Ok(res)
        })
    });
    update(&b, "todos", &sid, json!({"title": "B's"}));
    let report = flush_all(&b, &tap);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(tap.inner.record("todos", &sid).unwrap()["title"], "B's");
}

#[test]
fn a_server_without_the_record_route_is_read_first_once() {
    let s = MemServer::plain();
    let tap = Tap::new(s.clone());
    tap.hook(|req| {
        (req.method == "GET" && !req.url.ends_with("/todos")).then(|| {
            Ok(ferry::core::sync::http::HttpResponse {
                status: 404,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body: "<pre>Cannot GET</pre>".into(),
            })
        })
    });
    let (db, _) = open_todos();
    let id = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    let sid = id_of(&get(&db, "todos", &id).unwrap());
    for (i, want) in [(1, vec!["GET", "PUT"]), (2, vec!["PUT"])] {
        update(&db, "todos", &sid, json!({ "n": i }));
        tap.clear();
        flush_all(&db, &tap);
        let methods: Vec<String> = tap.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, want, "update {i}");
    }
}

/// `T`, whose requests each wait one turn before they are answered, counting how many are out
/// at once.
struct Slow<T> {
    inner: T,
    out: std::cell::Cell<usize>,
    most: std::cell::Cell<usize>,
}

impl<T: ferry::core::sync::http::Transport> ferry::core::sync::http::Transport for Slow<T> {
    async fn send(
        &self,
        req: HttpRequest,
    ) -> Result<ferry::core::sync::http::HttpResponse, ferry::core::sync::http::NetError> {
        self.out.set(self.out.get() + 1);
        self.most.set(self.most.get().max(self.out.get()));
        let mut turned = false;
        std::future::poll_fn(|_| {
            if std::mem::replace(&mut turned, true) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        self.out.set(self.out.get() - 1);
        self.inner.send(req).await
    }
}

/// Polls `f` until it is ready (a noop waker: the futures here only wait a turn).
fn run<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    loop {
        if let std::task::Poll::Ready(v) =
            f.as_mut().poll(&mut std::task::Context::from_waker(waker))
        {
            return v;
        }
    }
}

#[test]
fn the_reads_before_a_round_of_writes_go_together() {
    let (b, tap) = pulled_then_updated(5);
    let slow = Slow {
        inner: tap,
        out: Default::default(),
        most: Default::default(),
    };
    run(b.flush(&slow, &[])).expect("a flush");
    // The first alone (it may show the server keeps no versions), then the other four at once.
    assert_eq!(slow.most.get(), 4);
    assert_eq!(pending(&b), 0);
}

/// A server that writes only with `If-Match` (flask-smorest's ETags answer 428 without it):
/// a write that went without one (its read first failed) reads the record and goes again with
/// its version, instead of being refused and undone.
#[test]
fn a_write_that_needs_its_version_reads_it_and_goes_again() {
    let (b, tap) = pulled_then_updated(1);
    let server = tap.inner.clone();
    let mut first_read = true;
    tap.hook(move |req| {
        let record_read = req.method == "GET" && !req.url.ends_with("/todos");
        if record_read && std::mem::take(&mut first_read) {
            return Some(Err(ferry::core::sync::http::NetError::Timeout));
        }
        if req.method == "PUT" && if_match(req).is_none() {
            return Some(Ok(json_response(
                428,
                json!({"message": "Precondition required"}),
            )));
        }
        Some(server.send_now(req.clone()))
    });
    tap.clear();
    flush_all(&b, &tap);
    assert!(block_on(b.rejected()).unwrap().is_empty(), "not refused");
    assert_eq!(pending(&b), 0);
    let puts: Vec<_> = tap
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert!(
        if_match(puts.last().unwrap()).is_some(),
        "sent again with its version"
    );
    let stored = tap.inner.records("todos");
    assert!(stored.iter().any(|r| r["n"] == 1), "{stored:?}");
}

/// A server that writes only with `If-Match` but whose records carry no version Ferry can
/// read: the write waits with a message that says so, not a conflict every round.
#[test]
fn a_server_that_needs_a_version_it_never_shows_says_so() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    let id = s.server_create("todos", json!({"title": "a"}));
    pull(&db, &s, "todos");
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        if req.method == "PUT" {
            return Some(Ok(json_response(
                428,
                json!({"message": "If-Match required"}),
            )));
        }
        Some(server.send_now(req.clone()))
    });
    update(&db, "todos", &id, json!({"title": "b"}));
    let (end, report) = flush(&db, &tap);
    let reason = match end {
        ferry::core::sync::flush::RoundEnd::Wait { reason, .. } => reason,
        end => panic!("{end:?}"),
    };
    assert!(
        reason.contains("428") && reason.contains("If-Match"),
        "{reason}"
    );
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(
        get(&db, "todos", &id).unwrap()["title"],
        "b",
        "the edit stays"
    );
}

/// Express (under Sails, Feathers and most Node servers) puts a weak hash of the body on every
/// answer, `ETag: W/"<length>-<hash>"`, and checks no version: such tags are not versions.
/// Taken for them, an edit of a pulled record was read first (and a change made since dropped
/// it), while an edit of a record written before went with a stale `If-Match` and silently
/// won: the same edit, opposite outcomes. Now both are plain last-write-wins.
#[test]
fn express_weak_etags_are_not_versions() {
    let tap = Tap::new(MemServer::plain());
    let server = tap.inner.clone();
    tap.hook(move |req| {
        let mut res = server.send_now(req.clone());
        if let Ok(r) = &mut res {
            let tag = format!("W/\"{:x}-{}\"", r.body.len(), r.body.len() * 31);
            r.headers.push(("ETag".into(), tag));
        }
        Some(res)
    });
    let (a, b) = (
        open(config(&["todos"]), MemoryStorage::new()),
        block_on(Engine::open(
            config(&["todos"]),
            MemoryStorage::new(),
            TestEnv::seeded(2),
        ))
        .unwrap(),
    );
    let tmp = create(&b, "todos", json!({"title": "first"})); // B wrote it: an answer's tag
    flush_all(&b, &tap);
    let sid = id_of(&get(&b, "todos", &tmp).unwrap());
    pull(&a, &tap, "todos"); // A only pulled it
    for (first, second) in [(&a, &b), (&b, &a)] {
        update(first, "todos", &sid, json!({"title": "earlier"}));
        flush_all(first, &tap);
        update(second, "todos", &sid, json!({"title": "later"}));
        tap.clear();
        let report = flush_all(second, &tap);
        assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
        let reqs = tap.requests();
        let put = reqs.iter().find(|r| r.method == "PUT").expect("sent");
        assert_eq!(if_match(put), None, "no tag sent as a version");
        assert_eq!(tap.inner.record("todos", &sid).unwrap()["title"], "later");
        assert_eq!(get(second, "todos", &sid).unwrap()["title"], "later");
    }
}
