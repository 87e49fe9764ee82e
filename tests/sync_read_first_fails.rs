//! A server that gives versions only as `ETag`s, whose record URL fails to answer the read a
//! write makes first (PROTOCOL.md section 4): the writes wait, never going without `If-Match`.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/etag_devices.rs"]
mod etag_devices;
#[path = "common/mem_server.rs"]
mod mem_server;
#[path = "common/native_env.rs"]
mod native_env;

use etag_devices::*;
use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::http::{HttpResponse, REDIRECTED_TO};
use native_env::*;
use serde_json::json;

/// A record URL that does not answer (a timeout, a 503, a 429, a captive portal's page) is read
/// once a round, and the writes wait for a read that answers: sent without `If-Match`, they
/// would go over what others changed, and, held back by the network and delivered late, over
/// themselves sent again.
#[test]
fn a_record_url_that_does_not_answer_is_read_once_a_round_and_the_writes_wait() {
    for failure in [None, Some(503), Some(429), Some(200)] {
        let (b, tap) = pulled_then_updated(3);
        tap.hook(move |req| {
            (req.method == "GET" && !req.url.ends_with("/todos")).then(|| match failure {
                None => Err(ferry::core::sync::http::NetError::Timeout),
                // A captive portal's page, in the server's stead (fetch followed its redirect).
                Some(200) => Ok(page(Some("http://portal.example/login"))),
                Some(status) => Ok(json_response(status, json!({"error": "busy"}))),
            })
        });
        tap.clear();
        let (end, _) = flush(&b, &tap);
        assert!(matches!(end, RoundEnd::Wait { .. }), "{failure:?}: {end:?}");
        let methods: Vec<String> = tap.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["GET"], "{failure:?}");
        assert_eq!(pending(&b), 3, "{failure:?}");
        tap.unhook();
        tap.clear();
        flush_all(&b, &tap);
        let puts: Vec<_> = tap
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .collect();
        assert_eq!(puts.len(), 3, "{failure:?}");
        assert!(puts.iter().all(|r| if_match(r).is_some()), "{failure:?}");
    }
}

/// A record URL that keeps answering 5xx holds the writes, and the warning says it is that
/// read, not the write, that fails (the write never left, so the server has nothing to refuse).
#[test]
fn a_record_url_that_keeps_failing_is_named_in_the_warning() {
    let (b, tap) = pulled_then_updated(1);
    tap.hook(|req| {
        (req.method == "GET" && !req.url.ends_with("/todos"))
            .then(|| Ok(json_response(503, json!({"error": "busy"}))))
    });
    tap.clear();
    for _ in 0..6 {
        flush(&b, &tap);
        b.env.advance(3_600_000.0);
    }
    let sent: Vec<_> = tap
        .requests()
        .into_iter()
        .map(|r| (r.method, r.url))
        .collect();
    assert!(sent.iter().all(|(m, _)| m == "GET"), "{sent:?}");
    let warned = b.env.warnings.borrow();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("waited 5 times for `GET`"), "{warned:?}");
    assert!(warned[0].contains("which last answered 503"), "{warned:?}");
    assert!(!warned[0].contains("should answer 4xx"), "{warned:?}");
}

/// A `Retry-After` on the read first pauses the round, as one on a write does: the create
/// queued behind the held write waits too.
#[test]
fn a_retry_after_on_the_read_first_pauses_the_round() {
    let (b, tap) = pulled_then_updated(1);
    create(&b, "todos", json!({"title": "new"}));
    tap.hook(|req| {
        (req.method == "GET" && !req.url.ends_with("/todos")).then(|| {
            let mut busy = json_response(429, json!({"error": "slow down"}));
            busy.headers.push(("Retry-After".into(), "30".into()));
            Ok(busy)
        })
    });
    tap.clear();
    let (end, _) = flush(&b, &tap);
    assert!(matches!(end, RoundEnd::Wait { .. }), "{end:?}");
    let methods: Vec<String> = tap.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["GET"]);
    tap.unhook();
    b.env.advance(31_000.0);
    flush_all(&b, &tap);
    assert_eq!(pending(&b), 0);
}

/// A page of HTML, reached by a redirect to `from` or answered in place.
fn page(from: Option<&str>) -> HttpResponse {
    let mut headers = vec![("Content-Type".to_string(), "text/html".to_string())];
    headers.extend(from.map(|to| (REDIRECTED_TO.to_string(), to.to_string())));
    HttpResponse {
        status: 200,
        headers,
        body: "<!doctype html><html><body>Sign in</body></html>".into(),
    }
}

/// A page answered in place, not by a redirect, is the server's own catch-all (an app's
/// `index.html` for every URL its API lacks, `GET {url}/{id}` included): the writes go as they
/// are, rather than waiting for a read that never answers.
#[test]
fn a_catch_all_page_for_the_record_url_lets_the_writes_go() {
    let (b, tap) = pulled_then_updated(2);
    tap.hook(|req| (req.method == "GET" && !req.url.ends_with("/todos")).then(|| Ok(page(None))));
    flush_all(&b, &tap);
    assert_eq!(pending(&b), 0);
    let puts = tap.requests().into_iter().filter(|r| r.method == "PUT");
    assert_eq!(puts.count(), 2);
}

/// The read first fails for three minutes; then the write goes, times out, and is answered
/// "still being processed" (409) while the server applies its first send. The two minutes a
/// server may take count from when the write first left, not from when it was frozen: else the
/// 409s met the conflict policy (an event, and a new key while the first send could land).
#[test]
fn the_time_a_server_may_take_counts_from_the_first_send_not_the_reads_before_it() {
    let (b, tap) = pulled_then_updated(1);
    let (mut gets, mut puts) = (0, 0);
    tap.hook(move |req| match req.method.as_str() {
        "GET" if !req.url.ends_with("/todos") => {
            gets += 1;
            (gets <= 3).then(|| Ok(json_response(503, json!({"error": "busy"}))))
        }
        "PUT" => {
            puts += 1;
            match puts {
                1 => Some(Err(ferry::core::sync::http::NetError::Timeout)),
                2..=5 => Some(Ok(json_response(409, json!({"error": "being processed"})))),
                _ => None,
            }
        }
        _ => None,
    });
    let mut conflicts = 0;
    for round in 0..16 {
        let (end, r) = flush(&b, &tap);
        conflicts += r.conflicts.len();
        if end == RoundEnd::Idle {
            break;
        }
        b.env.advance(if round < 3 { 60_000.0 } else { 8_000.0 });
    }
    assert_eq!(pending(&b), 0);
    assert_eq!(conflicts, 0, "no conflict");
    let keys = tap.keys("PUT");
    assert_eq!(keys.len(), 6);
    assert!(keys.iter().all(|k| *k == keys[0]), "one key: {keys:?}");
}
