//! Lists that servers written by others page in their own ways (Feathers' `skip`/`limit`/
//! `total`, json-server's `_page` numbers and `Link` headers): every page is read, and a list
//! that says it is longer than what Ferry could read fails the read rather than making the
//! records on the other pages (an acknowledged create among them) look deleted.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use ferry::core::sync::http::HttpRequest;
use mem_server::MemServer;
use native_env::*;
use serde_json::{json, Value};

/// Every record `s` holds in `todos`, as a full read gives them.
fn all_of(s: &MemServer, req: &HttpRequest) -> Vec<Value> {
    let all = s.send_now(HttpRequest {
        url: "/api/todos".into(),
        ..req.clone()
    });
    let v: Value = serde_json::from_str(&all.unwrap().body).unwrap();
    match v {
        Value::Array(a) => a,
        v => v["data"].as_array().unwrap().clone(),
    }
}

/// The number in query parameter `name` of `url`, or `none`.
fn param(url: &str, name: &str, none: usize) -> usize {
    url.split(['?', '&'])
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .map_or(none, |v| v.parse().unwrap())
}

/// A server without cursors, whose reads `answer(all records, url)` pages.
fn paged(
    answer: impl Fn(Vec<Value>, &str) -> HttpResponseOf + 'static,
) -> (MemServer, Tap<MemServer>) {
    let s = MemServer::plain();
    let tap = paging_over(&s, answer);
    (s, tap)
}

/// `s` with its reads paged by `answer(all records, url)`: a body and headers.
fn paging_over(
    s: &MemServer,
    answer: impl Fn(Vec<Value>, &str) -> HttpResponseOf + 'static,
) -> Tap<MemServer> {
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        (req.method == "GET").then(|| {
            let (body, headers) = answer(all_of(&server, req), &req.url);
            let mut res = json_response(200, body);
            res.headers.extend(headers);
            Ok(res)
        })
    });
    tap
}

type HttpResponseOf = (Value, Vec<(String, String)>);

/// Feathers: `{ total, limit, skip, data }`, two records a page, `$skip` asking for the next.
fn feathers() -> (MemServer, Tap<MemServer>) {
    paged(|all, url| {
        let skip = param(url, "$skip", 0);
        let data: Vec<Value> = all.iter().skip(skip).take(2).cloned().collect();
        let body = json!({"total": all.len(), "limit": 2, "skip": skip, "data": data});
        (body, vec![])
    })
}

fn titles(db: &Db) -> Vec<Value> {
    let mut t: Vec<Value> = local(db, "todos")
        .iter()
        .map(|r| r["title"].clone())
        .collect();
    t.sort_by_key(|v| v.to_string());
    t
}

#[test]
fn feathers_pages_are_read_and_an_acknowledged_create_stays() {
    let (db, _) = open_todos();
    let (s, tap) = feathers();
    for i in 0..5 {
        s.server_create("todos", json!({"title": format!("s{i}")}));
    }
    let report = pull(&db, &tap, "todos");
    assert_eq!(report.requests, 3, "pages at skip 0, 2 and 4");
    assert_eq!(local(&db, "todos").len(), 5);
    let mine = create(&db, "todos", json!({"title": "mine"}));
    flush_all(&db, &tap);
    pull(&db, &tap, "todos");
    assert_eq!(
        local(&db, "todos").len(),
        6,
        "nothing on a later page taken for deleted"
    );
    assert!(
        get(&db, "todos", &mine).is_some(),
        "the create found by its temporary id"
    );
}

#[test]
fn json_server_page_numbers_and_link_headers_are_followed() {
    // json-server 1.x, asked for pages in the collection URL: `next` is a page number.
    let (s, tap) = paged(|all, url| {
        let page = param(url, "_page", 1);
        let data: Vec<Value> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
        let pages = all.len().div_ceil(2);
        let next = (page < pages).then_some(page + 1);
        let body = json!({"first": 1, "prev": null, "next": next, "last": pages, "pages": pages,
            "items": all.len(), "data": data});
        (body, vec![])
    });
    // json-server 0.17: a bare array, the pages in a `Link` header, the total in another.
    let (s2, tap2) = paged(|all, url| {
        let page = param(url, "_page", 1);
        let data: Vec<Value> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
        let mut links = vec![r#"<http://h/api/todos?_page=1&_limit=2>; rel="first""#.to_string()];
        if page * 2 < all.len() {
            links.push(format!(
                r#"<http://h/api/todos?_page={}&_limit=2>; rel="next""#,
                page + 1
            ));
        }
        let headers = vec![
            ("Link".to_string(), links.join(", ")),
            ("X-Total-Count".to_string(), all.len().to_string()),
        ];
        (Value::Array(data), headers)
    });
    for (s, tap, url) in [
        (s, tap, "/api/todos?_page=1&_per_page=2"),
        (s2, tap2, "/api/todos?_page=1&_limit=2"),
    ] {
        let mut cfg = config(&["todos"]);
        cfg.collections.get_mut("todos").unwrap().url = url.into();
        let db = open(cfg, ferry::core::MemoryStorage::new());
        for i in 0..5 {
            s.server_create("todos", json!({"title": format!("s{i}")}));
        }
        let report = pull(&db, &tap, "todos");
        assert_eq!(report.requests, 3, "{url}: pages 1, 2 and 3");
        assert_eq!(titles(&db), ["s0", "s1", "s2", "s3", "s4"], "{url}");
    }
}

#[test]
fn a_longer_list_that_cannot_be_paged_through_is_applied_without_removals() {
    type Answer = fn(Vec<Value>, &str) -> HttpResponseOf;
    // A page number, and no page parameter in the URL to ask for it with.
    let numbered: Answer = |all, _| {
        let data: Vec<Value> = all.into_iter().take(2).collect();
        (
            json!({"next": 2, "pages": 3, "items": 5, "data": data}),
            vec![],
        )
    };
    // A count larger than the list, and no link (a page limit the server applies silently).
    let counted: Answer = |all, _| {
        let (count, data): (usize, Vec<Value>) = (all.len(), all.into_iter().take(2).collect());
        (json!({"count": count, "next": null, "data": data}), vec![])
    };
    for (answer, says) in [
        (numbered, "one page of a longer list"),
        (counted, "where the server counts 5"),
    ] {
        let (db, _) = open_todos();
        let s = MemServer::plain();
        for i in 0..5 {
            s.server_create("todos", json!({"title": format!("s{i}")}));
        }
        pull(&db, &s, "todos");
        assert_eq!(
            local(&db, "todos").len(),
            5,
            "read whole before the server pages"
        );
        s.server_put("todos", "1", json!({"id": "1", "title": "changed"}));
        pull(&db, &paging_over(&s, answer), "todos");
        assert_eq!(local(&db, "todos").len(), 5, "{says}: nothing deleted");
        assert_eq!(
            get(&db, "todos", "1").unwrap()["title"],
            "changed",
            "what it read is applied"
        );
        let warned = db.env.warnings.borrow();
        assert!(warned.len() == 1 && warned[0].contains(says), "{warned:?}");
    }
}

#[test]
fn a_delta_may_be_shorter_than_the_list() {
    let (db, _) = open_todos();
    let s = MemServer::new(); // cursors
    s.server_create("todos", json!({"title": "a"}));
    pull(&db, &s, "todos");
    s.server_create("todos", json!({"title": "b"}));
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        let res = server.send_now(req.clone()).unwrap();
        let mut v: Value = serde_json::from_str(&res.body).unwrap();
        v["count"] = json!(40); // the whole list's size, beside a delta of one
        v["next"] = Value::Null;
        Some(Ok(json_response(res.status, v)))
    });
    pull(&db, &tap, "todos");
    assert_eq!(titles(&db), ["a", "b"]);
}

#[test]
fn a_lost_create_is_looked_for_on_every_page() {
    let (db, _) = open_todos();
    let (s, tap) = feathers();
    s.set_idempotency(false);
    for i in 0..5 {
        s.server_create("todos", json!({"title": format!("s{i}")}));
    }
    pull(&db, &tap, "todos");
    create(&db, "todos", json!({"title": "mine"}));
    s.drop_after_commit(1);
    flush(&db, &tap);
    tap.clear();
    flush_all(&db, &tap);
    let posts = tap.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 0, "found on the last page, not sent again");
    assert_eq!(s.records("todos").len(), 6, "stored once");
    assert_eq!(pending(&db), 0);
}

#[test]
fn a_record_read_twice_stands_for_one_skipped() {
    // Offset pages over a list that changed between them: the second page repeats the last
    // record of the first and the record after it is never read (Feathers sorted by a field
    // another client just edited), or a server ignores `$skip` and answers the first page again.
    type Answer = fn(Vec<Value>, &str) -> HttpResponseOf;
    let shifted: Answer = |mut all, url| {
        let skip = param(url, "$skip", 0);
        if skip > 0 {
            all.rotate_right(1); // the last record, just edited, now sorts first
        }
        let data: Vec<Value> = all.iter().skip(skip).take(2).cloned().collect();
        (
            json!({"total": all.len(), "limit": 2, "skip": skip, "data": data}),
            vec![],
        )
    };
    let ignored: Answer = |all, url| {
        let skip = param(url, "$skip", 0);
        let data: Vec<Value> = all.iter().take(2).cloned().collect();
        (
            json!({"total": all.len(), "limit": 2, "skip": skip, "data": data}),
            vec![],
        )
    };
    // One that ignores `$skip` is seen at its second page, which holds nothing new.
    for (answer, said) in [
        (shifted, "where the server counts 5"),
        (ignored, "repeats records read before"),
    ] {
        let (db, _) = open_todos();
        let s = MemServer::plain();
        for i in 0..5 {
            s.server_create("todos", json!({"title": format!("s{i}")}));
        }
        pull(&db, &s, "todos");
        pull(&db, &paging_over(&s, answer), "todos");
        assert_eq!(local(&db, "todos").len(), 5, "nothing deleted");
        let warned = db.env.warnings.borrow();
        assert!(warned[0].contains(said), "{warned:?}");
    }
}

#[test]
fn flask_smorest_pages_in_its_x_pagination_header() {
    let (db, _) = open_todos();
    let (s, tap) = paged(|all, url| {
        let page = param(url, "page", 1);
        let data: Vec<Value> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
        let last = all.len().div_ceil(2);
        let mut meta = json!({"total": all.len(), "total_pages": last, "first_page": 1,
            "last_page": last, "page": page});
        if page < last {
            meta["next_page"] = json!(page + 1);
        }
        (
            Value::Array(data),
            vec![("X-Pagination".into(), meta.to_string())],
        )
    });
    for i in 0..5 {
        s.server_create("todos", json!({"title": format!("s{i}")}));
    }
    let report = pull(&db, &tap, "todos");
    assert_eq!(report.requests, 3);
    assert_eq!(titles(&db), ["s0", "s1", "s2", "s3", "s4"]);
}

/// An update answered 404 is looked for in the whole list, every page, before it is taken for
/// deleted: a record on the second page is there.
#[test]
fn an_update_answered_404_is_looked_for_on_every_page() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    let ids: Vec<String> = (0..3)
        .map(|i| s.server_create("todos", json!({"title": format!("s{i}")})))
        .collect();
    pull(&db, &s, "todos");
    let tap = Tap::new(s.clone());
    let server = s.clone();
    tap.hook(move |req| {
        if req.url.split('?').next() != Some("/api/todos") {
            return Some(Ok(json_response(404, json!({"code": 404}))));
        }
        let page = param(&req.url, "page", 1);
        let all = all_of(&server, req);
        let data: Vec<Value> = all.iter().skip(page - 1).take(1).cloned().collect();
        let mut res = json_response(200, Value::Array(data));
        if page < all.len() {
            let link = format!("</api/todos?page={}>; rel=\"next\"", page + 1);
            res.headers.push(("Link".into(), link));
        }
        Ok(res).into()
    });
    update(&db, "todos", &ids[2], json!({"title": "edited"}));
    let (end, _) = flush(&db, &tap);
    let reason = match end {
        ferry::core::sync::flush::RoundEnd::Wait { reason, .. } => reason,
        end => panic!("{end:?}"),
    };
    assert!(reason.contains("trailing slash"), "{reason}");
    assert_eq!(
        get(&db, "todos", &ids[2]).unwrap()["title"],
        "edited",
        "the edit stays"
    );
}

/// A lost create looked for in a list that may be partial (a count above what was listed, no
/// way to the rest): not found there proves nothing; it goes again, and the console says so.
#[test]
fn a_lost_create_not_in_a_partial_list_goes_with_a_warning() {
    let (db, _) = open_todos();
    let s = MemServer::plain();
    let tap = paging_over(&s, |all, _| {
        let count = all.len() + 10; // records the listing leaves out
        let data: Vec<Value> = all.into_iter().take(1).collect();
        (json!({"count": count, "next": null, "data": data}), vec![])
    });
    s.server_create("todos", json!({"title": "first"}));
    create(&db, "todos", json!({"title": "mine"}));
    s.drop_after_commit(1);
    flush(&db, &tap);
    db.env.advance(60_000.0);
    flush_all(&db, &tap);
    assert_eq!(pending(&db), 0, "not held for good");
    let warned = db.env.warnings.borrow();
    assert!(
        warned.iter().any(|w| w.contains("may be stored twice")),
        "{warned:?}"
    );
}

/// A server written for Sencha's proxies: `{ success, total, data }`, three records a page by
/// default, the next asked for as Sencha asks (`start`, `limit`, `page`). Every page is read,
/// and a record deleted on the server is removed; one that ignores `start` (the same page
/// again) is read once more, then taken for part of the list: nothing removed.
#[test]
fn sencha_pages_are_read_and_a_server_that_ignores_them_removes_nothing() {
    for honours_start in [true, false] {
        let (db, _) = open_todos();
        let (s, tap) = paged(move |all, url| {
            let start = if honours_start {
                param(url, "start", 0)
            } else {
                0
            };
            let data: Vec<Value> = all.iter().skip(start).take(3).cloned().collect();
            let body = json!({"success": true, "total": all.len(), "data": data});
            (body, vec![])
        });
        let ids: Vec<String> = (0..8)
            .map(|i| s.server_create("todos", json!({"title": format!("s{i}")})))
            .collect();
        let report = pull(&db, &tap, "todos");
        let n = local(&db, "todos").len();
        if honours_start {
            assert_eq!(report.requests, 3, "pages at start 0, 3 and 6");
            assert_eq!(n, 8);
        } else {
            assert_eq!(report.requests, 2, "the first page, and the same again");
            assert_eq!(n, 3);
        }
        s.server_delete("todos", &ids[1]);
        pull(&db, &tap, "todos");
        if honours_start {
            assert_eq!(local(&db, "todos").len(), 7, "{:?}", titles(&db));
            assert!(get(&db, "todos", &ids[1]).is_none(), "removed");
        } else {
            // Its first page now holds s0, s2 and s3: s3 comes, s1 is not proven gone.
            assert_eq!(local(&db, "todos").len(), 4, "{:?}", titles(&db));
            assert!(get(&db, "todos", &ids[1]).is_some(), "nothing removed");
        }
    }
}

/// A delta may list a record once per change: its second page holding only records of the first
/// (one edited again) is read, and the newer version kept; only a full read stops at such a page.
#[test]
fn a_delta_page_of_records_already_read_is_applied() {
    let (db, _) = open_todos();
    let s = MemServer::new();
    let a = s.server_create("todos", json!({"title": "a"}));
    let b = s.server_create("todos", json!({"title": "b"}));
    pull(&db, &s, "todos");
    let tap = Tap::new(s.clone());
    let (ia, ib) = (a.clone(), b.clone());
    tap.hook(move |req| {
        (req.method == "GET" && req.url.contains("since=")).then(|| {
            let body = if req.url.contains("p=2") {
                json!({"data": [{"id": ia, "title": "a3", "version": 3}], "cursor": "99"})
            } else {
                json!({"data": [{"id": ia, "title": "a2", "version": 2},
                                {"id": ib, "title": "b2", "version": 2}],
                       "next": "/api/todos?since=0&p=2", "cursor": "99"})
            };
            Ok(json_response(200, body))
        })
    });
    pull(&db, &tap, "todos");
    assert_eq!(
        get(&db, "todos", &a).unwrap()["title"],
        "a3",
        "the later change"
    );
    assert_eq!(get(&db, "todos", &b).unwrap()["title"], "b2");
}

#[test]
fn a_next_page_on_another_origin_is_not_followed_with_the_apps_headers() {
    // A server that builds its links from a spoofable `Host` (or a hostile answer) names a page
    // elsewhere: the read fails, nothing is applied, and the app's credentials stay home.
    let next_at = |host: &'static str| {
        paged(move |all, url| {
            let page = param(url, "_page", 1);
            let data: Vec<Value> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
            let next = format!(r#"<{host}/api/todos?_page={}>; rel="next""#, page + 1);
            let headers = (page * 2 < all.len()).then(|| ("Link".to_string(), next));
            (Value::Array(data), headers.into_iter().collect())
        })
    };
    for (host, followed) in [
        ("http://evil.example", false),
        ("//evil.example", false),
        ("/\\evil.example", false),
        ("/\t/evil.example", false),
        ("https://evil.example\\@127.0.0.1:8080", false),
        ("HTTP://127.0.0.1:8080", true),
        ("http://127.0.0.1:8081", false),
        ("http://127.0.0.1:8080", true),
        ("", true),
    ] {
        let (s, tap) = next_at(host);
        let mut cfg = config(&["todos"]);
        let todos = cfg.collections.get_mut("todos").unwrap();
        todos.url = "/api/todos?_page=1".into();
        todos.page_origin = Some("http://127.0.0.1:8080".into());
        let db = open(cfg, ferry::core::MemoryStorage::new());
        for i in 0..3 {
            s.server_create("todos", json!({"title": format!("s{i}")}));
        }
        let got = block_on(db.pull(
            &tap,
            &[("Authorization".into(), "Bearer t".into())],
            "todos",
        ));
        let urls: Vec<String> = tap.requests().into_iter().map(|r| r.url).collect();
        if followed {
            got.unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(titles(&db).len(), 3, "{host}");
        } else {
            let e = got.expect_err(host);
            assert!(
                e.message.contains("not on the collection's origin"),
                "{host}: {e}"
            );
            assert_eq!(
                urls,
                ["/api/todos?_page=1"],
                "{host}: only the first page was asked"
            );
            assert!(titles(&db).is_empty(), "{host}: nothing applied");
        }
    }
}
