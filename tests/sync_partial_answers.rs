//! A write's 2xx answer that is only part of the record is merged over what was sent, so that
//! no field is lost, locally or (by the next PUT) on the server. Only an answer that is the whole
//! record and lacks a field the write added is taken alone: a last-writer-wins server's answer
//! to a write that lost (tests/sync_changed_at.rs).
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::sync::http::HttpResponse;
use ferry::core::{MemoryStorage, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

type Answer = fn(Value) -> HttpResponse;

/// The server for `tap` stores every update, and answers `answer(the record it stored)`.
fn answer_updates(tap: &Tap<MemServer>, answer: Answer) {
    let inner = tap.inner.clone();
    tap.hook(move |req| {
        (req.method == "PUT" || req.method == "PATCH").then(|| {
            let res = inner.send_now(req.clone()).expect("the server answers");
            Ok(answer(serde_json::from_str(&res.body).expect("a record")))
        })
    });
}

fn without(mut r: Value, fields: &[&str]) -> Value {
    for f in fields {
        r.as_object_mut().unwrap().remove(*f);
    }
    r
}

#[test]
fn an_update_answered_with_part_of_the_record_keeps_the_rest() {
    let cases: [(&str, UpdateMethod, Answer); 5] = [
        ("its id and dates", UpdateMethod::Put, |r| {
            json_response(
                200,
                json!({"id": r["id"], "createdAt": "t0", "updatedAt": "t1"}),
            )
        }),
        // A server that ignores fields it does not know, and leaves relations out of answers.
        ("the record without a relation", UpdateMethod::Put, |r| {
            json_response(200, without(r, &["tags", "tag", "more"]))
        }),
        (
            "a message under a strong ETag that never changes",
            UpdateMethod::Put,
            |r| {
                let mut res = json_response(200, json!({"id": r["id"], "message": "updated"}));
                res.headers.push(("ETag".into(), "\"5d41402a\"".into()));
                res
            },
        ),
        ("the changed fields and a date", UpdateMethod::Patch, |r| {
            json_response(
                200,
                json!({"id": r["id"], "title": r["title"], "updatedAt": "t1"}),
            )
        }),
        ("the record without a relation", UpdateMethod::Patch, |r| {
            json_response(200, without(r, &["tags", "tag", "more"]))
        }),
    ];
    for (what, method, answer) in cases {
        let what = format!("answered {what}, {method:?}");
        let mut cfg = config(&["todos"]);
        cfg.collections.get_mut("todos").unwrap().update_method = method;
        let db = open(cfg, MemoryStorage::new());
        let tap = Tap::new(MemServer::plain());
        let s = tap.inner.clone();
        let record = json!({"title": "a", "n": 1, "tags": ["x"], "createdAt": "t0"});
        let a = create(&db, "todos", record);
        flush_all(&db, &tap);
        let sid = id_of(&get(&db, "todos", &a).expect("created"));
        answer_updates(&tap, answer);
        // Each update adds a field (one the server may not store, or not show).
        update(&db, "todos", &sid, json!({"title": "b", "tag": "new"}));
        flush_all(&db, &tap);
        update(&db, "todos", &sid, json!({"n": 2, "more": "yes"}));
        flush_all(&db, &tap);
        let mine = get(&db, "todos", &sid).expect("still there");
        let expect = [
            ("title", json!("b")),
            ("n", json!(2)),
            ("tags", json!(["x"])),
            ("createdAt", json!("t0")),
            ("tag", json!("new")),
            ("more", json!("yes")),
        ];
        for (f, v) in expect {
            assert_eq!(mine.get(f), Some(&v), "{f}: {what}: {mine:?}");
        }
        let theirs = s.record("todos", &sid).expect("on the server");
        assert_eq!(theirs["tags"], json!(["x"]), "{what}: {theirs}");
    }
}
