//! A pull made while one of this store's creates may have landed without its answer arriving
//! (out now, or its answer lost): the record it landed as may be one another device deleted
//! since, which the pull meets as the deletion of an id it does not know (or, read in full, does
//! not see at all). The pull keeps its cursor, so that the read after the create's answer meets
//! the deletion (src/core/sync/pull.rs).
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::MemoryStorage;
use mem_server::MemServer;
use native_env::*;
use serde_json::json;

/// Device A's create lands, its answer lost; device B deletes the record; A pulls (the
/// tombstone names an id A does not know yet) and then sends the create again, which a server
/// keeping keys answers as the first time. A's next pull must still take the record away: the
/// pull that met the tombstone (a delta) or missed the record (a full read) while A's create
/// was out left its cursor where it was.
#[test]
fn a_record_deleted_elsewhere_while_its_create_was_unanswered_goes() {
    for delta in [false, true] {
        deleted_while_unanswered(delta);
    }
}

/// A server and two devices of it; with `cursor`, A has read B's first record (A's later pulls
/// are deltas).
fn devices(cursor: bool) -> (MemServer, Tap<MemServer>, Db, Db) {
    let s = MemServer::new();
    let tap = Tap::new(s.clone());
    let (a, _) = open_todos();
    let b = block_on(ferry::core::Engine::open(
        config(&["todos"]),
        MemoryStorage::new(),
        TestEnv::seeded(2),
    ))
    .unwrap();
    if cursor {
        create(&b, "todos", json!({"title": "older"}));
        flush_all(&b, &tap);
        pull(&a, &tap, "todos");
    }
    (s, tap, a, b)
}

/// B reads A's record ("short-lived") and deletes it on the server; its id there.
fn b_deletes_it(b: &Db, tap: &Tap<MemServer>) -> String {
    pull(b, tap, "todos");
    let mine = local(b, "todos")
        .into_iter()
        .find(|r| r["title"] == "short-lived");
    let sid = id_of(mine.unwrap().as_object().unwrap());
    delete(b, "todos", &sid);
    flush_all(b, tap);
    sid
}

fn deleted_while_unanswered(delta: bool) {
    let (s, tap, a, b) = devices(delta);
    create(&a, "todos", json!({"title": "short-lived"}));
    s.drop_after_commit(1);
    flush(&a, &tap);
    let n = usize::from(delta);
    assert_eq!(s.records("todos").len(), n + 1, "stored, its answer lost");
    let sid = b_deletes_it(&b, &tap);
    assert_eq!(s.records("todos").len(), n, "deleted by B");
    pull(&a, &tap, "todos");
    flush_all(&a, &tap);
    assert_eq!(pending(&a), 0);
    pull(&a, &tap, "todos");
    assert_eq!(
        local(&a, "todos").len(),
        n,
        "gone here too (delta: {delta})"
    );
    assert_eq!(get(&a, "todos", &sid), None);
}

/// As above, with A's pull made while its create is still out (no outcome written yet: the
/// leading tab's request, while this tab or the app pulls).
#[test]
fn a_record_deleted_elsewhere_while_its_create_is_still_out_goes() {
    let (s, tap, a, b) = devices(true);
    create(&a, "todos", json!({"title": "short-lived"}));
    {
        use std::future::Future;
        let out = Vanishing(s.clone());
        let mut report = ferry::core::sync::report::Report::default();
        let mut flush = std::pin::pin!(a.flush_round(&out, &[], &mut report));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            flush.as_mut().poll(&mut cx).is_pending(),
            "the create is out"
        );
    }
    assert_eq!(s.records("todos").len(), 2, "stored, no answer yet");
    let sid = b_deletes_it(&b, &tap);
    pull(&a, &tap, "todos"); // meets the deletion of an id it does not know yet
    flush_all(&a, &tap);
    assert_eq!(pending(&a), 0);
    pull(&a, &tap, "todos");
    assert_eq!(local(&a, "todos").len(), 1, "gone here too");
    assert_eq!(get(&a, "todos", &sid), None);
}

/// The `since` the next pull of `db` asks with (None: a full read).
fn next_since(db: &Db, tap: &Tap<MemServer>) -> Option<String> {
    tap.clear();
    pull(db, tap, "todos");
    let get = tap.requests().into_iter().find(|r| r.method == "GET");
    let url = get.expect("a read").url;
    ferry::core::sync::http::query_param(&url, "since").map(str::to_string)
}

/// A create that may have landed unheard holds the cursor (above) for a few sends only: one
/// answered 500 for good would otherwise keep every later pull a full read.
#[test]
fn a_create_failing_for_good_stops_holding_the_cursor() {
    for fails in [1, 9] {
        let s = MemServer::new();
        let tap = Tap::new(s.clone());
        let (a, _) = open_todos();
        create(&a, "todos", json!({"title": "refused"}));
        tap.hook(|req| {
            (req.method == "POST").then(|| Ok(json_response(500, json!({"error": "no"}))))
        });
        for _ in 0..fails {
            flush(&a, &tap);
            a.env.advance(120_000.0);
        }
        pull(&a, &tap, "todos"); // in full: there is no cursor yet
        let since = next_since(&a, &tap);
        assert_eq!(since.is_some(), fails > 1, "{fails} sends: {since:?}");
        assert_eq!(pending(&a), 1);
    }
}

/// `pull({ full: true })` while such a create is out (sent, no answer: it may yet land) keeps
/// the cursor it had.
#[test]
fn a_full_read_while_a_create_is_unanswered_keeps_the_cursor() {
    let s = MemServer::new();
    let tap = Tap::new(s.clone());
    let (a, _) = open_todos();
    s.server_create("todos", json!({"title": "theirs"}));
    pull(&a, &tap, "todos");
    let before = next_since(&a, &tap).expect("a cursor");
    create(&a, "todos", json!({"title": "mine"}));
    tap.hook(|req| {
        (req.method == "POST").then_some(Err(ferry::core::sync::http::NetError::Timeout))
    });
    flush(&a, &tap);
    tap.unhook();
    block_on(a.pull_full(&tap, &[], "todos")).expect("full read");
    assert_eq!(next_since(&a, &tap), Some(before), "kept, not dropped");
}

/// A record edited (or deleted) here whose deletion elsewhere a full read cannot show (no
/// tombstones in a snapshot); the change is then refused and dropped. The next read must still
/// take the record away: the full read that missed it kept no cursor past the deletion.
#[test]
fn a_change_refused_after_a_full_read_missed_the_deletion_leaves_nothing() {
    for edit in [true, false] {
        refused_after_a_full_read(edit);
    }
}

fn refused_after_a_full_read(edit: bool) {
    let (s, tap, a, b) = devices(false);
    let id = create(&a, "todos", json!({"title": "short-lived"}));
    flush_all(&a, &tap);
    let sid = id_of(&get(&a, "todos", &id).unwrap());
    b_deletes_it(&b, &tap);
    if edit {
        update(&a, "todos", &sid, json!({"title": "edited"}));
    } else {
        delete(&a, "todos", &sid);
    }
    pull(&a, &tap, "todos"); // in full: the record is missing, the change pending
    let refuse = |req: &ferry::core::sync::http::HttpRequest| {
        (req.method != "GET").then(|| Ok(json_response(403, json!({"error": "no"}))))
    };
    tap.hook(refuse);
    flush(&a, &tap);
    tap.unhook();
    let refused = block_on(a.rejected()).unwrap();
    block_on(a.discard_rejected(&refused[0].mutation_id)).unwrap();
    assert!(
        get(&a, "todos", &sid).is_some(),
        "back as the server had it"
    );
    pull(&a, &tap, "todos");
    assert_eq!(get(&a, "todos", &sid), None, "edit {edit}: gone here too");
    assert!(s.records("todos").is_empty());
}
