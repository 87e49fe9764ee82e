//! How a read answer says that the list goes on, and where: the paging conventions of the usual
//! frameworks and servers. A page taken for the whole list makes the records on the other pages
//! look deleted (and a lost create look unsent), so a read whose answer says there is more, in
//! a way Ferry cannot follow, or that counts more records than the pages held, is applied as
//! part of the list: nothing is removed for being absent from it (`pull.rs`).

use serde_json::{Map, Value};

use super::http::{query_param, set_query};

/// What a page says of the pages after it.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Paging {
    /// The next page's URL (relative to this page's, or absolute).
    pub(super) next: Option<String>,
    /// How many records the server says the whole list holds, where it says so.
    pub(super) total: Option<u64>,
    /// Why the answer says more pages follow without naming one Ferry can read.
    pub(super) stuck: Option<String>,
}

/// The paging headers of an answer.
#[derive(Default, Clone, Copy)]
pub(super) struct Headers<'a> {
    /// `Link` (RFC 8288).
    pub(super) link: Option<&'a str>,
    /// `X-Total-Count` (json-server, many APIs).
    pub(super) total_count: Option<&'a str>,
    /// `X-Pagination` (flask-smorest: `{"total", "page", "next_page", ...}` as JSON).
    pub(super) pagination: Option<&'a str>,
}

/// The paging of a page of `len` records read from `url`: `envelope` is the answer's object
/// (none for a bare array); `success`, the collection's `successProperty`; `delta`, whether
/// the read is one since a cursor.
pub(super) fn paging(
    envelope: Option<&Map<String, Value>>,
    len: usize,
    url: &str,
    headers: Headers<'_>,
    (success, delta): (Option<&str>, bool),
) -> Paging {
    let empty = Map::new();
    let m = envelope.unwrap_or(&empty);
    let meta: Option<Map<String, Value>> = headers
        .pagination
        .and_then(|h| super::json_body::parse(h).ok());
    let header_total = headers.total_count.and_then(|t| t.trim().parse().ok());
    let meta_total = meta.as_ref().and_then(|x| x.get("total")?.as_u64());
    let mut p = Paging {
        total: total_of(m).or(header_total).or(meta_total),
        ..Paging::default()
    };
    if let Some(n) = next_field(m) {
        match n {
            Next::Link(l) => p.next = Some(l),
            // A page number (json-server 1.x: `"next": 2`): set in the parameter the URL
            // numbers its pages with.
            Next::Number(n) => match ["_page", "page"]
                .into_iter()
                .find(|k| query_param(url, k).is_some())
            {
                Some(k) => p.next = Some(set_query(url, k, &n.to_string())),
                None => {
                    p.stuck = Some(format!(
                        "its `next` is page {n}, and the collection URL has no `page` or `_page` \
                         parameter to ask for it with"
                    ))
                }
            },
        }
        return p;
    }
    if let Some(l) = headers.link.and_then(next_in_link_header) {
        p.next = Some(l);
        return p;
    }
    // flask-smorest: the next page's number in `X-Pagination`, asked with `page`.
    if let Some(n) = meta.as_ref().and_then(|x| x.get("next_page")?.as_u64()) {
        p.next = Some(set_query(url, "page", &n.to_string()));
        return p;
    }
    // Feathers: `{ total, limit, skip, data }`, the next page asked with `$skip`.
    let num = |k: &str| m.get(k).and_then(Value::as_u64);
    if let (Some(total), Some(limit), Some(skip)) = (num("total"), num("limit"), num("skip")) {
        // `skip` counts the server's records before its hooks filter a page: a page of
        // fewer than `limit` still moves on by `limit`.
        let read = skip.saturating_add(limit.max(len as u64));
        if len > 0 && read < total {
            p.next = Some(set_query(url, "$skip", &read.to_string()));
        }
        return p;
    }
    // Sencha's reader: `{ success, total, data }` (its `totalProperty` counts the records,
    // a number or, from PHP, a string of one), the next page of a full read asked as its proxy
    // asks, with `page`, `start` and `limit` (a server reads those it knows). A page shorter
    // than the limit asked for, with more to come, is the server's own cap. A delta read
    // (`since`) is not paged so: its `total` may count the whole list.
    let count = m.get("total").and_then(|t| match t {
        Value::String(s) => s.trim().parse::<u64>().ok(),
        t => t.as_u64(),
    });
    let sencha = success.and_then(|f| m.get(f)) == Some(&Value::Bool(true));
    if let (true, Some(total), false) = (sencha, count, delta) {
        let at = |k: &str| query_param(url, k).and_then(|v| v.parse::<u64>().ok());
        let start = at("start").unwrap_or(0);
        // A page asked for with a limit keeps it (one cut short by a filter says nothing of
        // the server's size); the app's own limit may be over the server's cap.
        let limit = match (at("start"), at("limit")) {
            (Some(_), Some(l)) => l,
            (None, Some(l)) => l.min(len as u64),
            (_, None) => len as u64,
        }
        .max(1);
        let read = start.saturating_add(len as u64);
        p.total = p.total.or(Some(total));
        if len > 0 && read < total {
            let next = set_query(url, "start", &read.to_string());
            let next = set_query(&next, "limit", &limit.to_string());
            p.next = Some(set_query(&next, "page", &(read / limit + 1).to_string()));
        }
        return p;
    }
    p.stuck = more_without_link(m);
    p
}

/// A `next` in an envelope.
enum Next {
    Link(String),
    Number(u64),
}

/// The next page as paging frameworks write it in the envelope: `next` (Django REST framework;
/// a page number in json-server 1.x), `links.next` (Laravel, JSON:API), `meta.next` (tastypie),
/// `next_page_url` (Laravel's simple paginator), `_links.next.href` (HAL). Null or empty on
/// the last page.
fn next_field(m: &Map<String, Value>) -> Option<Next> {
    let fields = [
        m.get("next"),
        m.get("links").and_then(|l| l.get("next")),
        m.get("meta").and_then(|l| l.get("next")),
        m.get("next_page_url"),
        m.get("_links")
            .and_then(|l| l.get("next"))
            .and_then(|n| n.get("href")),
    ];
    fields.into_iter().flatten().find_map(|v| match v {
        Value::Number(n) => n.as_u64().map(Next::Number),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok().map(Next::Number)
        }
        Value::String(s) if !s.is_empty() => Some(Next::Link(s.clone())),
        _ => None,
    })
}

/// The `rel="next"` target of a `Link` header (RFC 8288, as GitHub's API and json-server 0.17
/// page with it). A target may hold commas (`_sort=a,b`) and a quoted parameter too, so links
/// are split where a `<` starts one, outside quotes.
fn next_in_link_header(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        rest = &rest[end + 1..];
        let mut quoted = false;
        let params_end = rest
            .char_indices()
            .find(|&(_, ch)| {
                quoted ^= ch == '"';
                ch == '<' && !quoted
            })
            .map_or(rest.len(), |(i, _)| i);
        let (params, after) = rest.split_at(params_end);
        rest = after;
        let is_next = outside_quotes(params, ';').any(|param| {
            let Some((k, v)) = param.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

/// `s` split at `sep` where it is not inside double quotes.
fn outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    s.split(move |ch| {
        quoted ^= ch == '"';
        ch == sep && !quoted
    })
}

/// A flag or a token saying more pages follow, in a way no URL can be made from (Stripe's
/// `has_more`, Google's `nextPageToken`): a list Ferry cannot read whole.
fn more_without_link(m: &Map<String, Value>) -> Option<String> {
    let flag = ["has_more", "hasMore", "hasNextPage", "has_next_page"]
        .into_iter()
        .find(|k| m.get(*k) == Some(&Value::Bool(true)));
    let token = [
        "nextPageToken",
        "next_page_token",
        "nextCursor",
        "next_cursor",
    ]
    .into_iter()
    .find(|k| {
        m.get(*k)
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    });
    flag.or(token)
        .map(|k| format!("its `{k}` says more pages follow"))
}

/// How many records the envelope says the whole list holds, read only from fields that are
/// counts by their name or beside paging fields (a `total` alone may be a sum of amounts).
fn total_of(m: &Map<String, Value>) -> Option<u64> {
    const PAGING: [&str; 12] = [
        "skip",
        "limit",
        "offset",
        "page",
        "per_page",
        "perPage",
        "pageSize",
        "page_size",
        "current_page",
        "last_page",
        "pages",
        "next",
    ];
    let num = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_u64);
    let paged = |m: &Map<String, Value>| PAGING.iter().any(|k| m.contains_key(*k));
    let named = |m: &Map<String, Value>| {
        ["totalCount", "total_count", "totalItems", "total_items"]
            .iter()
            .find_map(|k| num(m, k))
    };
    let meta = m.get("meta").and_then(Value::as_object);
    named(m)
        // tastypie: `meta: { limit, next, offset, previous, total_count }`.
        .or_else(|| named(meta?))
        .or_else(|| {
            paged(m)
                .then(|| num(m, "total").or_else(|| num(m, "count")))
                .flatten()
        })
        // json-server 1.x: `{ first, prev, next, last, pages, items, data }`.
        .or_else(|| m.contains_key("pages").then(|| num(m, "items")).flatten())
        // Laravel's API resources: `meta: { current_page, last_page, per_page, total }`.
        .or_else(|| {
            let meta = meta?;
            paged(meta).then(|| num(meta, "total")).flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(v: Value, len: usize, url: &str) -> Paging {
        paging(
            v.as_object(),
            len,
            url,
            Headers::default(),
            (Some("success"), false),
        )
    }

    #[test]
    fn frameworks_name_their_next_pages() {
        let drf = of(
            json!({"count": 5, "next": "?page=2", "results": []}),
            2,
            "/t/",
        );
        assert_eq!(drf.next.as_deref(), Some("?page=2"));
        assert_eq!(drf.total, Some(5));
        let json_server = of(
            json!({"first": 1, "prev": null, "next": 2, "last": 3, "pages": 3, "items": 250}),
            100,
            "/todos?_page=1&_per_page=100",
        );
        assert_eq!(
            json_server.next.as_deref(),
            Some("/todos?_page=2&_per_page=100")
        );
        assert_eq!(json_server.total, Some(250));
        let feathers = of(json!({"total": 25, "limit": 10, "skip": 10}), 10, "/notes");
        assert_eq!(feathers.next.as_deref(), Some("/notes?$skip=20"));
        let last = of(
            json!({"total": 25, "limit": 10, "skip": 20}),
            5,
            "/notes?$skip=20",
        );
        assert_eq!(last.next, None);
        let hal = of(json!({"_links": {"next": {"href": "/x?p=2"}}}), 1, "/x");
        assert_eq!(hal.next.as_deref(), Some("/x?p=2"));
    }

    #[test]
    fn tastypie_pages_in_its_meta() {
        let page = json!({
            "meta": {"limit": 20, "next": "/api/v1/todo/?limit=20&offset=20", "offset": 0,
                     "previous": null, "total_count": 61},
            "objects": [],
        });
        let p = of(page, 20, "/api/v1/todo/");
        assert_eq!(p.next.as_deref(), Some("/api/v1/todo/?limit=20&offset=20"));
        assert_eq!(p.total, Some(61));
        let last = json!({"meta": {"limit": 20, "next": null, "offset": 60, "total_count": 61}});
        assert_eq!(of(last, 1, "/api/v1/todo/?limit=20&offset=60").next, None);
    }

    #[test]
    fn a_page_number_without_a_parameter_to_set_is_stuck() {
        let p = of(json!({"next": 2, "items": 9, "pages": 3}), 3, "/todos");
        assert_eq!(p.next, None);
        assert!(p.stuck.unwrap().contains("page 2"));
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let h = r#"<http://h/todos?_page=1>; rel="first", <http://h/todos?_page=2>; rel="next", <http://h/todos?_page=3>; rel=last"#;
        let headers = Headers {
            link: Some(h),
            total_count: Some("30"),
            pagination: None,
        };
        let p = paging(None, 10, "/todos?_page=1", headers, (None, false));
        assert_eq!(p.next.as_deref(), Some("http://h/todos?_page=2"));
        assert_eq!(p.total, Some(30));
        assert_eq!(next_in_link_header(r#"</a>; rel="prev""#), None);
        let sorted = r#"</t?_page=1&_sort=t,id>; rel="first", </t?_page=2&_sort=t,id>; rel="next""#;
        assert_eq!(
            next_in_link_header(sorted).as_deref(),
            Some("/t?_page=2&_sort=t,id")
        );
        let titled = r#"</a>; title="first, <page>"; rel=prev, </b>; rel=next"#;
        assert_eq!(next_in_link_header(titled).as_deref(), Some("/b"));
        let tricky = r#"</x?p=0>; title="a, <b>; rel=next"; rel="item", </x?p=2>; rel="next""#;
        assert_eq!(next_in_link_header(tricky).as_deref(), Some("/x?p=2"));
        assert_eq!(
            next_in_link_header("</b>; title=x; REL=\"next last\"").as_deref(),
            Some("/b")
        );
    }

    #[test]
    fn flask_smorest_pages_in_a_header() {
        let meta = r#"{"total": 35, "total_pages": 4, "first_page": 1, "last_page": 4, "page": 1, "next_page": 2}"#;
        let headers = Headers {
            pagination: Some(meta),
            ..Headers::default()
        };
        let p = paging(None, 10, "/todos/", headers, (None, false));
        assert_eq!(p.next.as_deref(), Some("/todos/?page=2"));
        assert_eq!(p.total, Some(35));
        let last = r#"{"total": 35, "page": 4, "last_page": 4}"#;
        let headers = Headers {
            pagination: Some(last),
            ..Headers::default()
        };
        assert_eq!(
            paging(None, 5, "/todos/?page=4", headers, (None, false)).next,
            None
        );
    }

    #[test]
    fn flags_and_tokens_without_a_link_are_stuck() {
        assert!(of(json!({"has_more": true}), 10, "/x").stuck.is_some());
        assert!(of(json!({"nextPageToken": "abc"}), 10, "/x")
            .stuck
            .is_some());
        assert_eq!(
            of(json!({"has_more": false, "nextPageToken": ""}), 10, "/x").stuck,
            None
        );
    }

    #[test]
    fn sencha_pages_are_asked_for_with_start_limit_and_page() {
        let first = of(
            json!({"success": true, "total": 60, "data": []}),
            25,
            "/x?a=1",
        );
        assert_eq!(first.total, Some(60));
        assert_eq!(
            first.next.as_deref(),
            Some("/x?a=1&start=25&limit=25&page=2")
        );
        let second = of(
            json!({"success": true, "total": 60}),
            25,
            "/x?a=1&start=25&limit=25&page=2",
        );
        assert_eq!(
            second.next.as_deref(),
            Some("/x?a=1&start=50&limit=25&page=3")
        );
        let last = of(
            json!({"success": true, "total": 60}),
            10,
            "/x?start=50&limit=25",
        );
        assert_eq!(last.next, None);
        // Without the success field it is no Sencha envelope: a total alone counts nothing.
        assert_eq!(of(json!({"total": 60}), 25, "/x").next, None);
        // A total as a string (PHP); a server that caps the limit asked for (100) at 50.
        let capped = of(json!({"success": true, "total": "120"}), 50, "/x?limit=100");
        assert_eq!(capped.next.as_deref(), Some("/x?limit=50&start=50&page=2"));
        // A delta read is not paged so: its total may count the whole list.
        let body = json!({"success": true, "total": 60});
        let delta = paging(
            body.as_object(),
            3,
            "/x?since=7",
            Headers::default(),
            (Some("success"), true),
        );
        assert_eq!((delta.next, delta.total), (None, None));
        // A full read whose collection URL has a filter named `since` is paged.
        let full = of(json!({"success": true, "total": 60}), 25, "/x?since=2024");
        assert!(full.next.is_some());
        // A later page cut short (a filter after paging) keeps the limit it was asked with.
        let short = of(
            json!({"success": true, "total": 60}),
            20,
            "/x?start=25&limit=25&page=2",
        );
        assert_eq!(short.next.as_deref(), Some("/x?start=45&limit=25&page=2"));
    }

    #[test]
    fn a_total_alone_is_not_a_count() {
        assert_eq!(of(json!({"total": 1234, "data": []}), 0, "/x").total, None);
        assert_eq!(
            of(json!({"total": 1234, "limit": 10}), 0, "/x").total,
            Some(1234)
        );
        let laravel = json!({"meta": {"current_page": 1, "total": 40}, "links": {"next": null}});
        assert_eq!(of(laravel, 15, "/x").total, Some(40));
    }
}
