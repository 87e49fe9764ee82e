//! HTTP as plain data, and the transport trait the browser (fetch) and the tests implement.

#![allow(async_fn_in_trait)] // single-threaded (wasm) use only

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// Absolute or page-relative URL.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// JSON text, if any.
    pub body: Option<String>,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (names in any case).
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A header the fetch transport adds to an answer that came after redirects: the URL it came
/// from. (A POST redirected with 301, 302 or 303 is sent on as a GET, so such an answer is not
/// the create's.)
pub const REDIRECTED_TO: &str = "Ferry-Redirected-To";

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The client knows it is offline; nothing was sent.
    Offline,
    /// No answer in time (the request may or may not have reached the server).
    Timeout,
    /// The connection failed (refused, reset, DNS, CORS...).
    Failed(String),
    /// An answer came, with this status, that cannot be read (a batch answer that is not one).
    Unreadable(String, u16),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Offline => write!(f, "offline"),
            NetError::Timeout => write!(f, "the request timed out"),
            NetError::Failed(m) => write!(f, "network error: {m}"),
            NetError::Unreadable(m, _) => write!(f, "unexpected answer: {m}"),
        }
    }
}

/// Sends requests. Implemented over fetch in the browser and by in-memory servers in tests.
pub trait Transport {
    /// Sends `req` and returns the answer, whatever its status.
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, NetError>;
}

/// Percent-encodes `id` as one path segment: everything but RFC 3986's unreserved characters
/// is escaped, so `a/b`, `../admin` or `?x` can never change the path or the query.
pub fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The path of `url` (a path or an absolute URL), without query or fragment.
fn path_of(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    Some(match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => path,
    })
}

/// The path `location` refers to, resolved against `base` as RFC 3986 says (`./todos/17` and
/// `17` are relative to `base`'s folder), without dot segments or a trailing slash.
fn resolve_path(base: &str, location: &str) -> Option<String> {
    let loc = path_of(location)?;
    let joined = if location.contains("://") || loc.starts_with('/') {
        loc.to_string()
    } else {
        let base = path_of(base)?;
        format!("{}{loc}", &base[..=base.rfind('/')?])
    };
    let mut out: Vec<&str> = Vec::new();
    for seg in joined.split('/').skip(1) {
        match seg {
            "." | "" => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    Some(format!("/{}", out.join("/")))
}

/// The id that `location` (a `Location` header) names as a record of the collection at `base`:
/// its last path segment, percent-decoded, when the rest of the path is `base`'s.
pub fn id_from_location(location: &str, base: &str) -> Option<String> {
    let path = resolve_path(base, location)?;
    let (parent, seg) = path.rsplit_once('/')?;
    if parent != path_of(base)?.trim_end_matches('/') {
        return None;
    }
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |k: usize| bytes.get(k).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    let id = String::from_utf8(out).ok()?;
    (!id.is_empty() && id != "." && id != "..").then_some(id)
}

/// `{base}/{id}` with the id encoded as one segment. A `base` that ends in `/` (as Django REST
/// framework's routers write them, which redirect or fail a write to a URL without it) gives
/// record URLs that end in `/` too. A query in `base` (`/api/notes?tenant=3`) stays the query
/// of the record's URL: the id goes into the path, never after the `?`.
pub fn record_url(base: &str, id: &str) -> String {
    let (path, query) = base.split_at(base.find(['?', '#']).unwrap_or(base.len()));
    let query = query.split('#').next().unwrap_or_default();
    let slash = if path.ends_with('/') { "/" } else { "" };
    format!(
        "{}/{}{slash}{query}",
        path.trim_end_matches('/'),
        encode_segment(id)
    )
}

/// The URL `reference` (a link in an answer: absolute, `/path`, `?query` or relative) names,
/// resolved against `base` (a collection URL, itself absolute or a path), as RFC 3986 does for
/// the forms servers write.
pub fn resolve_url(base: &str, reference: &str) -> String {
    let origin = authority(base)
        .map(|(scheme, host)| format!("{scheme}://{host}"))
        .unwrap_or_default();
    let no_query = base.split(['?', '#']).next().unwrap_or(base);
    if absolute(reference) {
        reference.to_string()
    } else if let Some(rest) = reference.strip_prefix("//") {
        match authority(base) {
            Some((scheme, _)) => format!("{scheme}://{rest}"),
            None => reference.to_string(),
        }
    } else if reference.starts_with('/') {
        format!("{origin}{reference}")
    } else if reference.starts_with('?') {
        format!("{no_query}{reference}")
    } else {
        let folder = no_query.rfind('/').map_or("", |i| &no_query[..=i]);
        format!("{folder}{reference}")
    }
}

/// Whether `url` begins with a scheme (`https://…`, and `https:host/x` or `mailto:x` too, as
/// RFC 3986 and browsers read them), not a path or a query that holds one (`/items?u=http://x`).
fn absolute(url: &str) -> bool {
    let head = url.split(['/', '?', '#']).next().unwrap_or_default();
    head.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The scheme and the authority (`host[:port]`, with any user info) of `url`, when it is an
/// absolute URL with `//`.
fn authority(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://").filter(|_| absolute(url))?;
    Some((
        scheme,
        rest.split(['/', '\\', '?', '#']).next().unwrap_or(rest),
    ))
}

/// The origin (`scheme://host[:port]`, lowercase, without a default port) of `url`; a path or
/// a protocol-relative URL takes its part from `page`, the page's origin, when it is known.
pub fn origin_of(url: &str, page: Option<&str>) -> Option<String> {
    let of = |u: &str| -> Option<String> {
        let (scheme, host) = authority(u)?;
        let host = host.rsplit('@').next().unwrap_or(host); // user info is no part of it
        let (scheme, mut host) = (scheme.to_ascii_lowercase(), host.to_ascii_lowercase());
        let default_port = match scheme.as_str() {
            "http" => Some(":80"),
            "https" => Some(":443"),
            _ => None,
        };
        if let Some(port) = default_port.filter(|p| host.ends_with(p)) {
            host.truncate(host.len() - port.len());
        }
        Some(format!("{scheme}://{host}"))
    };
    if absolute(url) {
        of(url)
    } else if let Some(rest) = url.strip_prefix("//") {
        let scheme = page?.split_once("://")?.0;
        of(&format!("{scheme}://{rest}"))
    } else {
        of(page?)
    }
}

/// `url` with `name=value` added to its query string (value percent-encoded); a fragment,
/// which is never sent, goes.
pub fn with_query(url: &str, name: &str, value: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={}", encode_segment(value))
}

/// The value of query parameter `name` in `url`, as written (not decoded).
pub fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let url = url.split('#').next().unwrap_or_default();
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if pair == name => Some(""),
            _ => None,
        })
}

/// `url` with query parameter `name` set to `value` (percent-encoded): replaced where the URL
/// has it, added where not.
pub fn set_query(url: &str, name: &str, value: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let Some((path, query)) = url.split_once('?') else {
        return with_query(url, name, value);
    };
    let mut found = false;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if key == name && !found {
                found = true;
                format!("{name}={}", encode_segment(value))
            } else {
                pair.to_string()
            }
        })
        .collect();
    if !found {
        return with_query(url, name, value);
    }
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_against_the_collection_url() {
        let abs = "https://h.example/api/todos/?page=1";
        assert_eq!(resolve_url(abs, "https://x/y?page=2"), "https://x/y?page=2");
        assert_eq!(
            resolve_url(abs, "/api/todos/?page=2"),
            "https://h.example/api/todos/?page=2"
        );
        assert_eq!(
            resolve_url(abs, "?page=2"),
            "https://h.example/api/todos/?page=2"
        );
        assert_eq!(resolve_url(abs, "//cdn/x"), "https://cdn/x");
        assert_eq!(resolve_url("/api/todos", "?page=2"), "/api/todos?page=2");
        assert_eq!(
            resolve_url("/api/todos", "todos?page=2"),
            "/api/todos?page=2"
        );
        assert_eq!(resolve_url("/api/todos", "/v2/todos"), "/v2/todos");
        assert_eq!(
            resolve_url(abs, "/items?cb=http://x"),
            "https://h.example/items?cb=http://x"
        );
    }

    #[test]
    fn origins() {
        let page = Some("http://127.0.0.1:8080");
        let o = |u: &str| origin_of(u, page);
        assert_eq!(
            o("/api/todos?page=2").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            o("HTTP://127.0.0.1:8080/x").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            o("http://127.0.0.1:8081/x").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(
            o("//evil.example/x").as_deref(),
            Some("http://evil.example")
        );
        assert_eq!(
            o("https://a.example:443/x").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(
            o("http://a.example:80?x").as_deref(),
            Some("http://a.example")
        );
        assert_eq!(
            o("http://u:p@a.example/x").as_deref(),
            Some("http://a.example")
        );
        assert_eq!(o("todos?page=2").as_deref(), Some("http://127.0.0.1:8080"));
        // A query that holds a URL is no scheme.
        assert_eq!(
            o("/api?next=http://evil/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        // A scheme without `//` is absolute to a browser: no origin this can compare.
        assert_eq!(o("https:evil.example/x"), None);
        assert_eq!(o("mailto:x"), None);
        assert_eq!(origin_of("/api/todos", None), None);
    }

    #[test]
    fn record_urls_keep_the_collections_trailing_slash() {
        assert_eq!(record_url("/api/todos", "7"), "/api/todos/7");
        assert_eq!(record_url("/api/todos/", "7"), "/api/todos/7/");
        assert_eq!(
            record_url("/api/notes?tenant=3", "5"),
            "/api/notes/5?tenant=3"
        );
        assert_eq!(
            record_url("https://h/api/notes/?tenant=3&x=a/b#top", "a/b"),
            "https://h/api/notes/a%2Fb/?tenant=3&x=a/b"
        );
        assert_eq!(record_url("/api/notes#top", "5"), "/api/notes/5");
        assert_eq!(
            record_url("https://h/api/todos/", "a/b"),
            "https://h/api/todos/a%2Fb/"
        );
        assert_eq!(
            id_from_location("/api/todos/7/", "/api/todos/"),
            Some("7".into())
        );
    }

    #[test]
    fn ids_from_location() {
        let at = |loc: &str, base: &str| id_from_location(loc, base);
        assert_eq!(at("/api/todos/17", "/api/todos").as_deref(), Some("17"));
        assert_eq!(
            at("https://h.example/api/todos/a%2Fb?x=1#f", "/api/todos/").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            at("/api/todos/17/", "http://h:1/api/todos").as_deref(),
            Some("17")
        );
        assert_eq!(at("./todos/17", "/api/todos").as_deref(), Some("17"));
        assert_eq!(at("17", "/api/todos/").as_deref(), Some("17"));
        assert_eq!(
            at("../api/todos/17", "http://h/api/todos").as_deref(),
            Some("17")
        );
        assert_eq!(at("17", "/api/todos"), None, "that is /api/17");
        assert_eq!(at("/api/todos", "/api/todos"), None);
        assert_eq!(at("/api/other/17", "/api/todos"), None);
        assert_eq!(at("https://h.example", "/api/todos"), None);
        assert_eq!(at("", "/api/todos"), None);
    }

    #[test]
    fn ids_stay_one_segment() {
        assert_eq!(record_url("/api/todos", "a/b"), "/api/todos/a%2Fb");
        assert_eq!(
            record_url("/api/todos", "../admin"),
            "/api/todos/%2E%2E%2Fadmin"
        );
        assert_eq!(record_url("/api/todos", "x?y#z"), "/api/todos/x%3Fy%23z");
        assert_eq!(
            record_url("/api/todos", "ünï"),
            "/api/todos/%C3%BC%6E%C3%AF".replace("%6E", "n")
        );
    }
}
