//! Reading a server's JSON. A JavaScript server that cuts a string inside a surrogate pair (a
//! title shortened to 20 UTF-16 units through an emoji) writes the lone half as an escape,
//! `"\ud83d"` (`JSON.stringify` does since ES2019): valid JSON, which serde_json refuses. One
//! such record would make every read of its collection fail, on every device, for as long as
//! the server holds it; so a lone surrogate is read as U+FFFD, as a browser's `TextDecoder`
//! reads a broken character.

use std::borrow::Cow;

use serde::de::DeserializeOwned;

use super::classify::looks_like_html;
use super::http::HttpResponse;

/// `body` as JSON, lone surrogate escapes read as U+FFFD.
pub(crate) fn parse<T: DeserializeOwned>(body: &str) -> serde_json::Result<T> {
    match serde_json::from_str(body) {
        // Only a failed parse pays for the second look.
        Err(e) => match mended(body) {
            Cow::Owned(mended) => serde_json::from_str(&mended),
            Cow::Borrowed(_) => Err(e),
        },
        ok => ok,
    }
}

/// Whether `res` has a body that is not JSON (an empty one is not such a body).
pub(super) fn not_json(res: &HttpResponse) -> bool {
    let body = res.body.trim_start_matches('\u{feff}').trim();
    !body.is_empty() && (looks_like_html(res) || parse::<serde::de::IgnoredAny>(body).is_err())
}

/// Whether the body of `res` is JSON cut short: an object or an array that ends before it
/// closes, or that breaks off into HTML (PHP's fatal error in mid-answer). JSON that goes
/// wrong otherwise (`NaN` from Python, `[object Object]`) or goes on after its end (a PHP
/// notice after the object) is a server's every answer, not one cut on the way.
pub(super) fn cut_json(res: &HttpResponse) -> bool {
    let body = res.body.trim_start_matches('\u{feff}').trim();
    if !(body.starts_with('{') || body.starts_with('[')) {
        return false;
    }
    let mended = mended(body);
    let first = serde_json::Deserializer::from_str(&mended)
        .into_iter::<serde::de::IgnoredAny>()
        .next();
    match first {
        Some(Err(e)) => e.is_eof() || breaks_into_markup(&mended, e.line(), e.column()),
        _ => false,
    }
}

/// Whether the text at (1-based) `line` and `column`, where a parse broke, begins with `<`.
fn breaks_into_markup(body: &str, line: usize, column: usize) -> bool {
    let Some(text) = body.split('\n').nth(line.saturating_sub(1)) else {
        return false;
    };
    let at = column.saturating_sub(1).min(text.len());
    let from = (0..=at)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[from..].trim_start().starts_with('<')
}

/// `body` with every `\uXXXX` escape of a lone surrogate replaced by `\ufffd`.
fn mended(body: &str) -> Cow<'_, str> {
    let b = body.as_bytes();
    let hex = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let escape_at = |at: usize| -> Option<u32> {
        (b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'u'))
            .then(|| hex(at + 2))
            .flatten()
    };
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = escape_at(i) else {
            i += 2; // another escape (`\\`, `\"`, ...): its second byte is no escape's start
            continue;
        };
        let high = (0xD800..0xDC00).contains(&unit);
        let paired = high && escape_at(i + 6).is_some_and(|u| (0xDC00..0xE000).contains(&u));
        if paired {
            i += 12;
        } else if (0xD800..0xE000).contains(&unit) {
            out.push_str(&body[copied..i]);
            out.push_str("\\ufffd");
            i += 6;
            copied = i;
        } else {
            i += 6;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(body);
    }
    out.push_str(&body[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn lone_surrogates_read_as_replacement_characters() {
        let v: Value = parse(r#"{"t": "ab\ud83d", "u": "\udc00x", "ok": "\ud83d\ude00"}"#).unwrap();
        assert_eq!(v, json!({"t": "ab\u{fffd}", "u": "\u{fffd}x", "ok": "😀"}));
        // A high half followed by another high half: both lone.
        let v: Value = parse(r#"["\ud83d\ud83d"]"#).unwrap();
        assert_eq!(v, json!(["\u{fffd}\u{fffd}"]));
        // An escaped backslash before `u` is no escape.
        let v: Value = parse(r#"["\\ud83d", "\ud83d"]"#).unwrap();
        assert_eq!(v, json!(["\\ud83d", "\u{fffd}"]));
    }

    #[test]
    fn only_json_that_ends_too_soon_is_cut() {
        let res = |body: &str| HttpResponse {
            status: 200,
            headers: vec![],
            body: body.into(),
        };
        for cut in [
            r#"{"id":"1","n":"#,
            "[1, 2",
            r#"{"t": "ab"#,
            "{",
            r#"{"id":"1","n":<br /><b>Fatal error</b>"#,
        ] {
            assert!(cut_json(&res(cut)), "{cut}");
        }
        for whole in [
            r#"{"ok":true}"#,
            r#"{"ok":true}<br /><b>Notice</b>"#,
            r#"{"ok":true, "t": "\ud83d"}<br />"#,
            r#"{"note": "a < b", "n": NaN}"#,
            r#"{"n": NaN}"#,
            "[object Object]",
            "OK",
            "",
        ] {
            assert!(!cut_json(&res(whole)), "{whole}");
        }
    }

    #[test]
    fn other_errors_stay_errors() {
        assert!(parse::<Value>(r#"{"id": "1", "n":"#).is_err());
        assert!(parse::<Value>(r#"{"t": "\ud83d", "#).is_err());
        assert!(parse::<Value>("OK").is_err());
    }
}
