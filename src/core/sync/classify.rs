//! Classifying an answer (PROTOCOL.md section 7). Pure: status, headers and body in, a verdict
//! out. Anything a hostile or broken server sends maps to a verdict; nothing here panics.

use serde_json::Value;

use crate::core::config::CollectionConfig;
use crate::core::error::ErrorKind;
use crate::core::mutation::Kind;
use crate::core::record::{id_key, Record};

use super::http::{id_from_location, HttpResponse, NetError, REDIRECTED_TO};
use super::json_body::{cut_json, not_json, parse};
use super::redirected::redirected_create;

/// The server's state of a record in a conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerState {
    /// The server's current record and version.
    Record(Record, Option<String>),
    /// The server deleted it.
    Deleted,
    /// The server did not say; it must be read.
    Unknown,
}

/// What an answer means for the mutation that caused it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Acknowledged; the server's record and version when it sent them.
    Ack(Option<Record>, Option<String>),
    /// The write collides with the server's state.
    Conflict(ServerState),
    /// 401: credentials are needed; the queue pauses.
    Unauthorized,
    /// Try again later (after at least `retry_after` ms, when the server said).
    Transient {
        /// What went wrong.
        reason: String,
        /// Not before this time (ms since epoch), when the server said so.
        retry_after: Option<f64>,
        /// [`ErrorKind::Network`] (no answer, or the server's 5xx), or
        /// [`ErrorKind::Protocol`] (an answer that cannot be read or trusted).
        kind: ErrorKind,
        /// The server's status, when it answered.
        status: Option<u16>,
    },
    /// Not sent: a create out when the page went, not on the server yet, waits until `until`
    /// (ms since epoch) for it to show, with `reason` (`out_marks.rs`).
    #[allow(missing_docs)]
    Held { reason: String, until: f64 },
    /// Refused for good: this mutation goes to the rejected list.
    Rejected {
        /// The server's status.
        status: u16,
        /// The server's body (cut at [`MAX_KEPT_BODY`]).
        body: String,
    },
}

/// The largest server body kept with a rejected mutation.
pub const MAX_KEPT_BODY: usize = 16 * 1024;

/// Classifies the answer (or the failure) to a mutation of kind `kind`.
pub fn classify(
    cfg: &CollectionConfig,
    kind: Kind,
    res: &Result<HttpResponse, NetError>,
    now_ms: f64,
) -> Verdict {
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            let (kind, status) = match e {
                NetError::Unreadable(_, status) => (ErrorKind::Protocol, Some(*status)),
                _ => (ErrorKind::Network, None),
            };
            return Verdict::Transient {
                reason: e.to_string(),
                retry_after: None,
                kind,
                status,
            };
        }
    };
    let status = res.status;
    let retry_after = res
        .header("Retry-After")
        .and_then(|v| parse_retry_after_at(v, now_ms, res.header("Date")));
    match status {
        200..=299 => classify_success(cfg, kind, res),
        // A 404 that is a page (a proxy's, a router's "Cannot PUT") is not the API saying the
        // record is gone: what the server holds is read before anything is decided.
        404 | 410 if kind != Kind::Create && not_json(res) => {
            Verdict::Conflict(ServerState::Unknown)
        }
        404 | 410 if kind == Kind::Delete => Verdict::Ack(None, None),
        // Read first: a record whose URL is wrong (a trailing slash its route does not take)
        // answers 404 too, while the collection still lists it.
        404 | 410 if kind == Kind::Update => Verdict::Conflict(ServerState::Unknown),
        // 428 Precondition Required: the server writes only with `If-Match` (flask-smorest's
        // ETags). Not a refusal: the record is read for its version, as after a bodiless 412.
        428 if kind != Kind::Create => Verdict::Conflict(ServerState::Unknown),
        // Only a body naming the record is its server state: `{"error": "stale"}` is not.
        409 | 412 => match record_of(cfg, res) {
            Ok(Some(r)) if has_id(cfg, &r) => {
                let v = version_of(cfg, res, Some(&r));
                Verdict::Conflict(ServerState::Record(r, v))
            }
            _ => Verdict::Conflict(ServerState::Unknown),
        },
        s if cfg.is_auth_status(s) => Verdict::Unauthorized,
        408 | 425 | 429 | 500..=599 => Verdict::Transient {
            reason: format!("the server answered {status}{}", super::excerpt::said(res)),
            retry_after,
            kind: ErrorKind::Network,
            status: Some(status),
        },
        _ => Verdict::Rejected {
            status,
            body: keep_body(&res.body),
        },
    }
}

fn classify_success(cfg: &CollectionConfig, kind: Kind, res: &HttpResponse) -> Verdict {
    if res.body.trim().is_empty() && kind != Kind::Create {
        return Verdict::Ack(None, version_of(cfg, res, None));
    }
    if let Some(to) = res.header(REDIRECTED_TO) {
        if kind == Kind::Create && res.status != 201 && res.header("Location").is_none() {
            return redirected_create(cfg, res, to);
        }
    }
    match (kind, record_of(cfg, res)) {
        // A delete may be answered with anything but a captive portal's page: `true`, `{}`,
        // a plain-text "OK".
        (Kind::Delete, Ok(_)) => Verdict::Ack(None, None),
        // JSON cut short or garbled on the way (a proxy, a server that died mid-answer) says
        // nothing of whether the write was applied: it is sent again, under its key.
        (kind, Err(why)) if kind != Kind::Create && cut_json(res) => invalid(res, why),
        (Kind::Delete, Err(_)) if !looks_like_html(res) => Verdict::Ack(None, None),
        (_, Ok(Some(r))) if has_id(cfg, &r) => {
            let v = version_of(cfg, res, Some(&r));
            Verdict::Ack(Some(r), v)
        }
        // A create answered without its id (no body, `{}`, a plain-text "Created") but with a
        // `Location` naming a record of the collection (RFC 9110): the id is the URL's last
        // segment, and the record what was sent with the answer's fields over it. Retried
        // instead, a server without idempotency keys would store it again.
        (Kind::Create, rec) => {
            let id = res
                .header("Location")
                .filter(|_| !looks_like_html(res))
                .and_then(|l| id_from_location(l, &cfg.url));
            match (id, rec) {
                (Some(id), rec) => {
                    let mut r = rec.ok().flatten().unwrap_or_default();
                    r.insert(cfg.id_property.clone(), Value::String(id));
                    let v = version_of(cfg, res, Some(&r));
                    Verdict::Ack(Some(r), v)
                }
                (None, Err(_)) if res.body.trim().is_empty() => invalid(
                    res,
                    format!(
                        "the server's answer to a create has no body, and no `Location` naming \
                         the record: its `{}` is unknown",
                        cfg.id_property
                    ),
                ),
                (None, Err(why)) => invalid(res, why),
                (None, Ok(_)) => invalid(
                    res,
                    format!(
                        "the server's answer to a create has no usable `{}`",
                        cfg.id_property
                    ),
                ),
            }
        }
        // An update answered with something else than the record (`{"ok": true}`, `{}`, a
        // plain-text "OK" as Express's `sendStatus(200)` sends) was applied all the same: as a
        // 204, the server holds what was sent. Sent again, it would get the same answer for
        // ever. A page of HTML is a captive portal's, not the server's.
        (_, Ok(_)) => Verdict::Ack(None, version_of(cfg, res, None)),
        (_, Err(_)) if !looks_like_html(res) => Verdict::Ack(None, version_of(cfg, res, None)),
        (_, Err(why)) => invalid(res, why),
    }
}

/// Whether `r` names its record: an object without a usable id is not a record.
pub fn has_id(cfg: &CollectionConfig, r: &Record) -> bool {
    r.get(&cfg.id_property).is_some_and(|v| id_key(v).is_ok())
}

pub(super) fn invalid(res: &HttpResponse, reason: String) -> Verdict {
    Verdict::Transient {
        reason: format!("unexpected answer: {reason}"),
        retry_after: None,
        kind: ErrorKind::Protocol,
        status: Some(res.status),
    }
}

/// Whether `res` is a page of HTML (a captive portal's, a login page), not an API's answer. An
/// empty body is no page, whatever its type: Django labels every answer `text/html` unless told
/// otherwise, tastypie's empty 201 (the id in `Location`) included.
pub(super) fn looks_like_html(res: &HttpResponse) -> bool {
    let ct = res
        .header("Content-Type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = res.body.trim_start_matches('\u{feff}').trim_start();
    // Labels lie both ways: Django's `HttpResponse(json.dumps(...))` is JSON labelled
    // `text/html`, and its `HttpResponse("OK")` is no page either. A page has markup.
    body.starts_with('<')
        || (ct.contains("html")
            && body.contains('<')
            && parse::<serde::de::IgnoredAny>(body).is_err())
}

/// The record in a write answer: the body itself or the envelope's root property (an object or
/// an array of one). `Ok(None)` for JSON that holds no record; `Err` for a body that is not JSON.
pub fn record_of(cfg: &CollectionConfig, res: &HttpResponse) -> Result<Option<Record>, String> {
    if looks_like_html(res) {
        return Err(
            "an HTML page where JSON was expected (a captive portal, a login page?)".into(),
        );
    }
    let v: Value = parse(&res.body).map_err(|e| format!("the body is not JSON ({e})"))?;
    Ok(match v {
        // `{"todo": {"id": 1, ...}}` (Rails' and Ember's single-record root): one key, holding
        // an object with the id, around an object without one is an envelope, not a field.
        Value::Object(m)
            if m.len() == 1
                && !m.contains_key(&cfg.id_property)
                && m.values().all(|v| {
                    v.as_object()
                        .is_some_and(|o| o.contains_key(&cfg.id_property))
                }) =>
        {
            m.into_iter().next().and_then(|(_, v)| match v {
                Value::Object(inner) => Some(inner),
                _ => None,
            })
        }
        Value::Object(mut m) => match m.remove(&cfg.root_property) {
            Some(Value::Object(inner)) => Some(inner),
            Some(Value::Array(mut a)) if a.len() == 1 => match a.pop() {
                Some(Value::Object(inner)) => Some(inner),
                _ => None,
            },
            Some(other) => {
                // `data` was an ordinary field of the record, not an envelope.
                m.insert(cfg.root_property.clone(), other);
                Some(m)
            }
            None => Some(m),
        },
        Value::Array(mut a) if a.len() == 1 => match a.pop() {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        },
        _ => None,
    })
}

/// The version: a strong ETag header, else the record's version field. A weak ETag (`W/"…"`)
/// is not one: `If-Match` compares strongly (RFC 9110 section 13.1.1), so it can never match,
/// and Express (Sails, Feathers and most Node servers) puts a weak hash of the body on every
/// answer, a server that checks no version. Taken for versions, such tags made writes on
/// records read first (and held) or sent with a stale tag (and not), by chance.
pub fn version_of(
    cfg: &CollectionConfig,
    res: &HttpResponse,
    rec: Option<&Record>,
) -> Option<String> {
    if let Some(tag) = res.header("ETag") {
        let tag = tag.trim();
        let t = tag.trim_matches('"');
        if !tag.starts_with("W/") && !t.is_empty() && t.len() <= 256 {
            return Some(t.to_string());
        }
    }
    version_field(cfg, rec?)
}

/// The record's own version field, as a string.
pub fn version_field(cfg: &CollectionConfig, rec: &Record) -> Option<String> {
    match rec.get(&cfg.version_property)? {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Retry-After` as an absolute time (ms): delta-seconds or an HTTP date. Capped at one hour so a
/// hostile value cannot park the queue for ever.
pub fn parse_retry_after(v: &str, now_ms: f64) -> Option<f64> {
    parse_retry_after_at(v, now_ms, None)
}

/// [`parse_retry_after`] of an answer sent at `date` (its `Date` header): an HTTP date is then
/// a wait from the server's clock, so a device clock hours off neither parks the queue for the
/// cap nor retries at once.
pub fn parse_retry_after_at(v: &str, now_ms: f64, date: Option<&str>) -> Option<f64> {
    const CAP_MS: f64 = 3_600_000.0;
    let v = v.trim();
    let delay = if let Ok(secs) = v.parse::<u64>() {
        secs as f64 * 1000.0
    } else {
        let sent = date.and_then(|d| http_date_ms(d.trim())).unwrap_or(now_ms);
        http_date_ms(v)? - sent
    };
    Some(now_ms + delay.clamp(0.0, CAP_MS))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into ms since the epoch.
fn http_date_ms(v: &str) -> Option<f64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[2])? as i64 + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let clock_ok = hms.len() == 3
        && (0..24).contains(&hms[0])
        && (0..60).contains(&hms[1])
        && (0..=60).contains(&hms[2]);
    if !clock_ok || !(1..=31).contains(&day) || !(1970..=9999).contains(&year) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1000) as f64)
}

pub(super) fn keep_body(body: &str) -> String {
    if body.len() <= MAX_KEPT_BODY {
        return body.to_string();
    }
    let cut = (0..=MAX_KEPT_BODY)
        .rev()
        .find(|i| body.is_char_boundary(*i))
        .unwrap_or(0);
    body[..cut].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(status: u16, headers: &[(&str, &str)], body: &str) -> Result<HttpResponse, NetError> {
        Ok(HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            body: body.into(),
        })
    }

    #[test]
    fn table_of_section_7() {
        let cfg = CollectionConfig::new("t", "/t");
        let c = |k, r| classify(&cfg, k, &r, 1000.0);
        assert!(
            matches!(c(Kind::Create, res(201, &[], r#"{"id":"1","version":1}"#)), Verdict::Ack(Some(_), Some(v)) if v == "1")
        );
        assert!(
            matches!(c(Kind::Create, res(200, &[], r#"{"data":{"id":7}}"#)), Verdict::Ack(Some(r), None) if r["id"] == 7)
        );
        assert!(
            matches!(c(Kind::Update, res(204, &[("ETag", "\"4\"")], "")), Verdict::Ack(None, Some(v)) if v == "4")
        );
        // Express's weak body hash is no version; the record's own field is.
        assert!(matches!(
            c(
                Kind::Update,
                res(200, &[("ETag", "W/\"4-x\"")], r#"{"id":"1"}"#)
            ),
            Verdict::Ack(Some(_), None)
        ));
        assert!(
            matches!(c(Kind::Update, res(200, &[("ETag", "W/\"4-x\"")], r#"{"id":"1","version":5}"#)), Verdict::Ack(Some(_), Some(v)) if v == "5")
        );
        assert!(matches!(
            c(Kind::Delete, res(404, &[], "")),
            Verdict::Ack(None, None)
        ));
        // Read first: the record may be listed under a URL that is wrong.
        assert!(matches!(
            c(Kind::Update, res(410, &[], "")),
            Verdict::Conflict(ServerState::Unknown)
        ));
        assert!(
            matches!(c(Kind::Update, res(412, &[], "{\"id\":\"1\",\"version\":3}")), Verdict::Conflict(ServerState::Record(_, Some(v))) if v == "3")
        );
        assert!(matches!(
            c(Kind::Update, res(409, &[], "")),
            Verdict::Conflict(ServerState::Unknown)
        ));
        assert_eq!(c(Kind::Update, res(401, &[], "")), Verdict::Unauthorized);
        // An answer that cannot be read (a batch answer that is not one) keeps its status.
        let unreadable = Err(NetError::Unreadable("not a batch answer".into(), 200));
        assert!(matches!(
            c(Kind::Create, unreadable),
            Verdict::Transient {
                kind: ErrorKind::Protocol,
                status: Some(200),
                ..
            }
        ));
        assert!(
            matches!(c(Kind::Update, res(429, &[("Retry-After", "7")], "")), Verdict::Transient { retry_after: Some(t), .. } if t == 8000.0)
        );
        assert!(matches!(
            c(Kind::Update, res(503, &[], "")),
            Verdict::Transient {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            c(
                Kind::Update,
                res(200, &[("Content-Type", "text/html")], "<html>login</html>")
            ),
            Verdict::Transient { .. }
        ));
        assert!(matches!(
            c(Kind::Create, res(201, &[], "{\"title\":\"no id\"}")),
            Verdict::Transient { .. }
        ));
        assert!(matches!(
            c(Kind::Create, res(422, &[], "{\"error\":\"bad\"}")),
            Verdict::Rejected { status: 422, .. }
        ));
        assert!(matches!(
            c(Kind::Delete, Err(NetError::Timeout)),
            Verdict::Transient { .. }
        ));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", 0.0), Some(120_000.0));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),
            Some(10_000.0)
        );
        assert_eq!(parse_retry_after("99999999", 0.0), Some(3_600_000.0));
        assert_eq!(parse_retry_after("soon", 0.0), None);
        // The device clock 3 h slow: the date is read against the answer's own `Date`.
        let now = -3.0 * 3_600_000.0;
        let at = parse_retry_after_at(
            "Thu, 01 Jan 1970 00:02:00 GMT",
            now,
            Some("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(at, Some(now + 120_000.0));
    }
    #[test]
    fn a_single_record_root_is_unwrapped() {
        let cfg = CollectionConfig::new("todos", "/api/todos");
        let wrapped = res(
            201,
            &[("Location", "/api/todos/1")],
            r#"{"todo":{"id":1,"t":"x"}}"#,
        );
        match classify(&cfg, Kind::Create, &wrapped, 0.0) {
            Verdict::Ack(Some(r), _) => {
                assert_eq!(Value::Object(r), serde_json::json!({"id": 1, "t": "x"}))
            }
            v => panic!("{v:?}"),
        }
        // A field that happens to hold an object is a field when the record has its id.
        let plain = res(200, &[], r#"{"id":1,"meta":{"id":2}}"#);
        match classify(&cfg, Kind::Update, &plain, 0.0) {
            Verdict::Ack(Some(r), _) => assert_eq!(r["id"], serde_json::json!(1)),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn an_empty_created_labelled_html_is_acked_by_its_location() {
        let cfg = CollectionConfig::new("todos", "/api/v1/todo/");
        let tastypie = res(
            201,
            &[
                ("Content-Type", "text/html; charset=utf-8"),
                ("Location", "/api/v1/todo/7/"),
            ],
            "",
        );
        match classify(&cfg, Kind::Create, &tastypie, 0.0) {
            Verdict::Ack(Some(r), _) => assert_eq!(r["id"], serde_json::json!("7")),
            v => panic!("{v:?}"),
        }
        // With a page in it, it is a page.
        let portal = res(
            201,
            &[
                ("Content-Type", "text/html"),
                ("Location", "/api/v1/todo/7/"),
            ],
            "<html>sign in</html>",
        );
        assert!(matches!(
            classify(&cfg, Kind::Create, &portal, 0.0),
            Verdict::Transient { .. }
        ));
    }

    #[test]
    fn a_create_redirected_into_a_get_is_acked_only_by_a_record_url() {
        let cfg = CollectionConfig::new("todos", "/api/todos");
        // Post/Redirect/Get to the new record's page: created, and the URL names it.
        let prg = res(
            200,
            &[(REDIRECTED_TO, "http://h/api/todos/7")],
            "<html>todo 7</html>",
        );
        match classify(&cfg, Kind::Create, &prg, 0.0) {
            Verdict::Ack(Some(r), _) => assert_eq!(r["id"], serde_json::json!("7")),
            v => panic!("{v:?}"),
        }
        // A 301 to the collection with a slash made the POST a GET of the list: one record in
        // it is not this create's answer.
        let list = res(
            200,
            &[(REDIRECTED_TO, "http://h/api/todos/")],
            r#"[{"id":3}]"#,
        );
        assert!(
            matches!(
                classify(&cfg, Kind::Create, &list, 0.0),
                Verdict::Transient { kind: ErrorKind::Protocol, ref reason, .. }
                    if reason.contains("trailing slash")
            ),
            "{:?}",
            classify(&cfg, Kind::Create, &list, 0.0)
        );
    }
}
