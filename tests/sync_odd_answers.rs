//! Answers third-party servers give that are not quite PROTOCOL.md's: error objects with a
//! conflict status, write answers that are not the whole record, plain-text deletes, no route for
//! `GET {url}/{id}`, integers written as floats. None of them may lose a field, locally or on the
//! server, or stop the queue.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;
#[path = "common/sync_asserts.rs"]
mod sync_asserts;

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpRequest, HttpResponse, Transport};
use ferry::core::{MemoryStorage, UpdateMethod};
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};
use sync_asserts::*;

/// The server's own answer to `req`, with its body replaced by `body` (status kept).
fn rewrite(s: &MemServer, req: &HttpRequest, body: Value) -> HttpResponse {
    let res = block_on(s.send(req.clone())).expect("the server answers");
    json_response(res.status, body)
}

/// The server for `tap`'s creates stores them, and `answer` says what it answers instead, given
/// the record it stored.
fn answer_creates(tap: &Tap<MemServer>, answer: impl Fn(Value) -> HttpResponse + 'static) {
    let inner = tap.inner.clone();
    tap.hook(move |req| {
        (req.method == "POST").then(|| {
            let res = block_on(inner.send(req.clone())).expect("the server answers");
            Ok(answer(serde_json::from_str(&res.body).expect("a record")))
        })
    });
}

/// The server for `tap` answers a conflict (409 or 412) with `answer` instead of its own.
fn answer_conflicts(tap: &Tap<MemServer>, answer: HttpResponse) {
    let inner = tap.inner.clone();
    tap.hook(move |req| {
        let res = block_on(inner.send(req.clone()));
        Some(res.map(|r| match r.status {
            409 | 412 => answer.clone(),
            _ => r,
        }))
    });
}

/// A created and synced record `{title, n: 1, tags}`: its server id.
fn synced_record<T: Transport>(db: &Db, t: &T) -> String {
    let a = create(db, "todos", json!({"title": "a", "n": 1, "tags": ["x"]}));
    flush_all(db, t);
    id_of(&get(db, "todos", &a).expect("created"))
}

#[test]
fn a_conflict_answered_with_an_error_object_is_not_taken_for_the_record() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    let sid = synced_record(&db, &tap);
    s.server_patch("todos", &sid, json!({"tags": ["theirs"]}));
    let stale = json!({"error": "conflict", "message": "stale"});
    answer_conflicts(&tap, json_response(409, stale));
    update(&db, "todos", &sid, json!({"n": 2}));
    let report = flush_all(&db, &tap);
    assert_eq!(report.conflicts.len(), 1);
    let mine = get(&db, "todos", &sid).expect("still there");
    assert!(mine.get("error").is_none(), "{mine:?}");
    let theirs = s.record("todos", &sid).expect("still on the server");
    assert_eq!(
        strip(&theirs),
        json!({"title": "a", "n": 2, "tags": ["theirs"]})
    );
    assert_in_sync(&db, &s, "todos");
}

/// A conflict body that names another record (the one a unique field collides with, or an
/// error object with an id of its own) is not this record's server state either.
#[test]
fn a_conflict_answered_with_another_record_is_not_taken_for_this_one() {
    for body in [json!({"id": "err_8fk2", "error": "conflict"}), json!(null)] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::new());
        let s = tap.inner.clone();
        let other = synced_record(&db, &tap);
        let sid = synced_record(&db, &tap);
        s.server_patch("todos", &sid, json!({"tags": ["theirs"]}));
        let body = match body {
            Value::Null => s.record("todos", &other).unwrap(),
            b => b,
        };
        answer_conflicts(&tap, json_response(409, body));
        update(&db, "todos", &sid, json!({"n": 2}));
        let report = flush_all(&db, &tap);
        assert_eq!(report.conflicts.len(), 1);
        let theirs = s.record("todos", &sid).expect("still on the server");
        assert_eq!(
            strip(&theirs),
            json!({"title": "a", "n": 2, "tags": ["theirs"]})
        );
        assert_eq!(s.records("todos").len(), 2);
        assert_eq!(local(&db, "todos").len(), 2);
        assert_in_sync(&db, &s, "todos");
    }
}

#[test]
fn a_create_answered_with_only_its_id_keeps_what_was_sent() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::plain());
    let s = tap.inner.clone();
    answer_creates(&tap, |stored| {
        json_response(201, json!({ "id": stored["id"] }))
    });
    let sid = synced_record(&db, &tap);
    let mine = get(&db, "todos", &sid).expect("under its server id");
    assert_eq!(
        strip(&Value::Object(mine)),
        json!({"title": "a", "n": 1, "tags": ["x"]})
    );
    // The next PUT carries every field, so the server keeps them.
    update(&db, "todos", &sid, json!({"n": 2}));
    flush_all(&db, &tap);
    let theirs = s.record("todos", &sid).expect("on the server");
    assert_eq!(strip(&theirs), json!({"title": "a", "n": 2, "tags": ["x"]}));
}

#[test]
fn an_update_answered_with_json_that_is_not_the_record_counts_as_done() {
    for answer in [
        json!({"ok": true}),
        json!({}),
        json!({"data": {"status": "saved"}}),
    ] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::plain());
        let s = tap.inner.clone();
        let sid = synced_record(&db, &tap);
        let inner = s.clone();
        let a = answer.clone();
        tap.hook(move |req| (req.method == "PUT").then(|| Ok(rewrite(&inner, req, a.clone()))));
        // A null a PUT sends is a value the server now holds, not a field cleared.
        update(&db, "todos", &sid, json!({"n": 2, "note": null}));
        flush_all(&db, &tap);
        let mine = get(&db, "todos", &sid).expect("still there");
        assert_eq!(
            strip(&Value::Object(mine)),
            json!({"title": "a", "n": 2, "tags": ["x"], "note": null}),
            "answered {answer}"
        );
        update(&db, "todos", &sid, json!({"n": 3}));
        flush_all(&db, &tap);
        let theirs = s.record("todos", &sid).expect("on the server");
        assert_eq!(
            strip(&theirs),
            json!({"title": "a", "n": 3, "tags": ["x"], "note": null}),
            "answered {answer}"
        );
    }
}

#[test]
fn a_patch_answered_with_only_the_changed_fields_keeps_the_others() {
    let mut cfg = config(&["todos"]);
    cfg.collections.get_mut("todos").unwrap().update_method = UpdateMethod::Patch;
    let db = open(cfg, MemoryStorage::new());
    let tap = Tap::new(MemServer::plain());
    let s = tap.inner.clone();
    let sid = synced_record(&db, &tap);
    let inner = s.clone();
    tap.hook(move |req| {
        (req.method == "PATCH").then(|| {
            let mut answer = body(req);
            answer["id"] = json!(req.url.rsplit('/').next().unwrap());
            Ok(rewrite(&inner, req, answer))
        })
    });
    update(&db, "todos", &sid, json!({"n": 2}));
    flush_all(&db, &tap);
    let mine = get(&db, "todos", &sid).expect("still there");
    assert_eq!(
        strip(&Value::Object(mine)),
        json!({"title": "a", "n": 2, "tags": ["x"]})
    );
    assert_in_sync(&db, &s, "todos");
}

/// A delete or an update answered `200 OK` in plain text (Express's `sendStatus(200)`) was
/// done; a captive portal's page of HTML is no answer from the server.
#[test]
fn a_write_answered_with_plain_text_is_done_and_a_login_page_is_not() {
    for method in ["DELETE", "PUT"] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::plain());
        let s = tap.inner.clone();
        let sid = synced_record(&db, &tap);
        let text = |ct: &str, body: &str| HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), ct.into())],
            body: body.into(),
        };
        let page = text("text/html", "<html><form>Log in</form></html>");
        tap.hook(move |req| (req.method == method).then(|| Ok(page.clone())));
        match method {
            "DELETE" => delete(&db, "todos", &sid),
            _ => drop(update(&db, "todos", &sid, json!({"n": 2}))),
        }
        let (_, report) = flush(&db, &tap);
        assert_eq!(report.acked, 0);
        assert_eq!(
            pending(&db),
            1,
            "a captive portal's page acknowledges nothing"
        );
        let inner = s.clone();
        tap.hook(move |req| {
            (req.method == method).then(|| {
                block_on(inner.send(req.clone())).expect("answers");
                Ok(text("text/plain", "OK"))
            })
        });
        create(&db, "todos", json!({"title": "behind it"}));
        flush_all(&db, &tap);
        assert_eq!(pending(&db), 0, "{method}");
        assert_in_sync(&db, &s, "todos");
    }
}

/// A server without `GET {url}/{id}` answers a bodiless 409: the record is looked for in the
/// collection, never deleted locally on the strength of the missing route's 404, and the
/// update is not rejected with the 405 of a route it never asked for.
#[test]
fn a_bodiless_conflict_on_a_server_without_get_by_id() {
    for missing in [404, 405] {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::new());
        let s = tap.inner.clone();
        let sid = synced_record(&db, &tap);
        s.server_patch("todos", &sid, json!({"tags": ["theirs"]}));
        let inner = s.clone();
        let path = format!("/{sid}");
        tap.hook(move |req| {
            if req.method == "GET" && req.url.split('?').next().unwrap().ends_with(&path) {
                return Some(Ok(json_response(missing, json!({"error": "no route"}))));
            }
            let res = block_on(inner.send(req.clone()));
            Some(res.map(|r| match r.status {
                409 | 412 => HttpResponse {
                    status: 409,
                    headers: vec![],
                    body: String::new(),
                },
                _ => r,
            }))
        });
        update(&db, "todos", &sid, json!({"n": 2}));
        let report = flush_all(&db, &tap);
        assert_eq!(report.conflicts.len(), 1, "answered {missing}");
        assert!(
            block_on(db.rejected()).unwrap().is_empty(),
            "answered {missing}"
        );
        let theirs = s.record("todos", &sid).expect("still on the server");
        assert_eq!(
            strip(&theirs),
            json!({"title": "a", "n": 2, "tags": ["theirs"]}),
            "answered {missing}"
        );
        assert_in_sync(&db, &s, "todos");
    }
}

#[test]
fn an_integer_id_written_as_a_float_names_the_same_record() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::plain());
    answer_creates(&tap, |mut stored| {
        let n: f64 = stored["id"].as_str().unwrap().parse().unwrap();
        stored["id"] = json!(n); // 1 written as 1.0
        json_response(201, stored)
    });
    let a = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &tap);
    let mine = get(&db, "todos", &a).expect("by its temporary id");
    assert_eq!(mine["id"], json!(1.0));
    // What a JS app holds is the number 1.
    assert_eq!(get(&db, "todos", "1"), Some(mine));
    update(&db, "todos", "1", json!({"title": "b"}));
    tap.clear();
    flush_all(&db, &tap);
    let writes: Vec<_> = tap
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    let put = &writes[0];
    assert_eq!(
        (put.method.as_str(), put.url.as_str()),
        ("PUT", "/api/todos/1")
    );
    assert_eq!(body(put)["title"], "b");
}

// ---------------------------------------------------------------- batches

fn batched() -> Db {
    let mut cfg = config(&["todos"]);
    cfg.batch_url = Some("/api/$batch".into());
    open(cfg, MemoryStorage::new())
}

/// A server that misnumbers its batch answers. Taken at its word, record "a" would become "b"
/// and "c" "d". Numbered from 0, one answer is to a request never sent, so none of the batch's
/// answers is trusted (even without the client ids echoed that would give them away) and the
/// store stops batching; numbered backwards, each echoed client id gives it away. Either way
/// each create is tried again (the server knows its Idempotency-Key) and every record keeps its
/// own server id, here and on the server.
#[test]
fn batch_answers_under_the_wrong_ids_are_not_applied_to_the_wrong_records() {
    let from_zero = |id: u32, _: u32| id - 1;
    let backwards = |id: u32, n: u32| n + 1 - id;
    for (renumber, echo) in [(from_zero as fn(u32, u32) -> u32, false), (backwards, true)] {
        let db = batched();
        let tap = Tap::new(MemServer::new());
        let s = tap.inner.clone();
        let inner = s.clone();
        tap.hook(move |req| {
            req.url.ends_with("$batch").then(|| {
                let res = block_on(inner.send(req.clone())).expect("answers");
                let mut v: Value = serde_json::from_str(&res.body).unwrap();
                let list = v["responses"].as_array_mut().unwrap();
                let n = list.len() as u32;
                for r in list {
                    let id: u32 = r["id"].as_str().unwrap().parse().unwrap();
                    r["id"] = json!(renumber(id, n).to_string());
                    if !echo {
                        r["body"].as_object_mut().unwrap().remove("clientId");
                    }
                }
                Ok(json_response(res.status, v))
            })
        });
        let ids: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| create(&db, "todos", json!({ "title": t })))
            .collect();
        let (_, report) = flush(&db, &tap);
        assert_eq!(report.acked, 0, "{:?}", report);
        tap.unhook();
        flush_all(&db, &tap);
        for (id, title) in ids.iter().zip(["a", "b", "c", "d"]) {
            let mine = get(&db, "todos", id).expect("by its temporary id");
            assert_eq!(mine["title"], title);
            let theirs = s.record("todos", &id_of(&mine)).expect("on the server");
            assert_eq!(theirs["title"], title);
        }
        assert_eq!(s.records("todos").len(), 4);
        assert_in_sync(&db, &s, "todos");
    }
}

/// A batch endpoint that refuses a batch as a whole (400: too large, or read otherwise) gives no
/// verdict on the mutations inside: they go one by one, rather than wait for ever.
#[test]
fn a_batch_refused_as_a_whole_goes_one_by_one() {
    let db = batched();
    let tap = Tap::new(MemServer::new());
    let s = tap.inner.clone();
    tap.hook(|req| {
        req.url.ends_with("$batch").then(|| {
            Ok(json_response(
                400,
                json!({"error": "too many requests in one batch"}),
            ))
        })
    });
    for t in ["a", "b", "c"] {
        create(&db, "todos", json!({ "title": t }));
    }
    flush_all(&db, &tap);
    assert!(block_on(db.rejected()).unwrap().is_empty());
    assert_eq!(s.records("todos").len(), 3);
    assert_in_sync(&db, &s, "todos");
}

/// `201 Created` without the record but with a `Location`: the id comes from the URL and the
/// record is what was sent; nothing is sent twice (a server without idempotency keys would store
/// it twice). As Express's `res.location(url).sendStatus(201)` answers, among others.
#[test]
fn a_create_answered_with_only_a_location_is_done() {
    let answers = [
        ("", "/api/todos/"),
        ("{}", "http://api.example/api/todos/"),
        ("Created", "./todos/"),
    ];
    for (body, at) in answers {
        let (db, _) = open_todos();
        let tap = Tap::new(MemServer::plain());
        let s = tap.inner.clone();
        answer_creates(&tap, move |stored| HttpResponse {
            status: 201,
            headers: vec![(
                "Location".into(),
                format!("{at}{}", stored["id"].as_str().unwrap()),
            )],
            body: body.into(),
        });
        let a = create(&db, "todos", json!({"title": "a", "n": 1}));
        let report = flush_all(&db, &tap);
        assert_eq!(report.requests, 1, "sent once: {body:?} at {at}");
        let mine = get(&db, "todos", &a).expect("by its temporary id");
        let theirs = s.records("todos");
        assert_eq!(theirs.len(), 1);
        assert_eq!(id_of(&mine), id_of(theirs[0].as_object().unwrap()));
        assert_eq!(strip(&Value::Object(mine)), json!({"title": "a", "n": 1}));
    }
}

/// Temporary id `x` finds nothing, and an update by it is a `NotFoundError`.
fn forgotten(db: &Db, x: &str) {
    assert!(
        get(db, "todos", x).is_none(),
        "the deleted record's temporary id finds nothing"
    );
    let update = ferry::core::Op::Update(x.to_string(), rec(json!({"title": "oops"})));
    let e = block_on(db.write("todos", vec![update])).expect_err("no record");
    assert_eq!(e.kind, ferry::core::ErrorKind::NotFound);
}

/// Another record comes under id `real`, and a pull brings it.
fn reused_by_another(db: &Db, s: &MemServer, real: &str) {
    let tap = Tap::new(s.clone());
    let reused = json!([{"id": real, "title": "b"}]);
    tap.hook(move |req| (req.method == "GET").then(|| Ok(json_response(200, reused.clone()))));
    pull(db, &tap, "todos");
    assert_eq!(get(db, "todos", real).unwrap()["title"], "b");
}

/// A server that gives a deleted record's id to the next one (json-server 0.17 numbers new
/// records from the highest id left): the deleted record's temporary id finds nothing.
#[test]
fn a_temporary_id_does_not_find_the_next_record_under_a_reused_id() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    let x = create(&db, "todos", json!({"title": "a"}));
    flush_all(&db, &s);
    let real = id_of(&get(&db, "todos", &x).expect("by its temporary id"));
    delete(&db, "todos", &x);
    flush_all(&db, &s);
    reused_by_another(&db, &s, &real);
    forgotten(&db, &x);
}

/// The same, when the delete was made while the create was still out (its key then was the
/// temporary id itself).
#[test]
fn a_delete_made_while_its_create_was_out_forgets_the_temporary_id() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let x = create(&db, "todos", json!({"title": "a"}));
    s.drop_after_commit(1); // stored; its answer lost: the create stays out
    flush(&db, &s);
    delete(&db, "todos", &x);
    db.env.advance(60_000.0);
    flush_all(&db, &s);
    assert!(s.records("todos").is_empty(), "created, then deleted");
    let deleted = s
        .log()
        .into_iter()
        .find(|(m, ..)| m == "DELETE")
        .expect("sent");
    let real = deleted.1.rsplit('/').next().unwrap().to_string();
    reused_by_another(&db, &s, &real);
    forgotten(&db, &x);
}

/// A create answered after a redirect is acknowledged by the record it was turned into only:
/// a 307 (method kept) answers with the record sent, a 302 to some other page with whatever
/// that page shows (the signed-in user, say), which is not this create's record.
#[test]
fn a_redirected_create_is_acknowledged_by_its_own_record_only() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let answer = |body: Value| {
        let mut res = json_response(200, body);
        res.headers.push((
            ferry::core::sync::http::REDIRECTED_TO.into(),
            "http://h/elsewhere".into(),
        ));
        res
    };
    tap.hook(move |req| {
        (req.method == "POST").then(|| Ok(answer(json!({"id": 5, "name": "admin"}))))
    });
    let a = create(&db, "todos", json!({"title": "mine"}));
    let (end, _) = flush(&db, &tap);
    assert!(
        matches!(&end, RoundEnd::Wait { reason, .. } if reason.contains("redirected")),
        "{end:?}"
    );
    assert_eq!(pending(&db), 1, "not taken for the user's record");
    tap.hook(move |req| {
        (req.method == "POST").then(|| Ok(answer(json!({"id": 6, "title": "mine", "done": false}))))
    });
    db.env.advance(60_000.0);
    flush_all(&db, &tap);
    assert_eq!(
        pending(&db),
        0,
        "the record sent, redirected with its method kept"
    );
    assert_eq!(get(&db, "todos", &a).unwrap()["id"], 6);
}

/// An update answered 404 whose record the collection still lists: the record's URL is wrong
/// (a trailing slash its route does not take), not the record gone; the edit stays.
#[test]
fn an_update_whose_url_is_wrong_keeps_the_edit() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let sid = synced_record(&db, &tap);
    let inner = tap.inner.clone();
    let path = format!("/api/todos/{sid}");
    tap.hook(move |req| {
        if req.url.split('?').next().unwrap().ends_with(&path) {
            return Some(Ok(json_response(
                404,
                json!({"code": 404, "status": "Not Found"}),
            )));
        }
        Some(block_on(inner.send(req.clone())))
    });
    update(&db, "todos", &sid, json!({"notes": "edited"}));
    let (end, report) = flush(&db, &tap);
    assert!(
        matches!(&end, RoundEnd::Wait { reason, .. } if reason.contains("trailing slash")),
        "{end:?}"
    );
    // The error says what happened to the write: no conflict was met.
    assert!(
        matches!(&end, RoundEnd::Wait { reason, .. } if reason.contains("answered \"not found\"") && !reason.contains("conflict")),
        "{end:?}"
    );
    assert!(report.conflicts.is_empty());
    assert_eq!(
        get(&db, "todos", &sid).unwrap()["notes"],
        "edited",
        "the edit stays"
    );
    assert_eq!(pending(&db), 1);
}

/// An update answered 404 whose record its own URL cannot show (LoopBack answers a GET by id
/// carrying the collection's `filter` with 400) and the collection does not list it: not taken
/// for deleted on the 404 alone (Fastify answers an unknown route with a JSON 404 too): the
/// edit waits, and the error says what the URL answered, until the app deletes the record.
#[test]
fn an_update_answered_404_whose_url_cannot_be_read_waits_and_says_why() {
    let (db, _) = open_todos();
    let tap = Tap::new(MemServer::new());
    let sid = synced_record(&db, &tap);
    tap.inner.server_delete("todos", &sid);
    let inner = tap.inner.clone();
    let path = format!("/api/todos/{sid}");
    tap.hook(move |req| {
        if req.method == "GET" && req.url.split('?').next().unwrap().ends_with(&path) {
            return Some(Ok(json_response(
                400,
                json!({"error": "where not allowed"}),
            )));
        }
        Some(block_on(inner.send(req.clone())))
    });
    update(&db, "todos", &sid, json!({"notes": "edited"}));
    let (end, _) = flush(&db, &tap);
    assert!(
        matches!(&end, RoundEnd::Wait { reason, .. } if reason.contains("answered 400")),
        "{end:?}"
    );
    assert_eq!(pending(&db), 1, "the edit waits");
    assert_eq!(get(&db, "todos", &sid).unwrap()["notes"], "edited");
    // The way out: the app deletes the record, and both go.
    delete(&db, "todos", &sid);
    flush_all(&db, &tap);
    assert_eq!(pending(&db), 0);
    assert!(get(&db, "todos", &sid).is_none());
}
