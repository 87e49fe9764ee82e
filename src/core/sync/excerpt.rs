//! What an error answer says, in a few words for an error message: a bare "the server answered
//! 500" leaves the app (and its developer) guessing at what the body explains.

use serde_json::Value;

use super::http::HttpResponse;

/// At most this many characters of what an answer says.
const MAX: usize = 160;

/// `: <what the answer says>` for a message, or nothing for an empty or unreadable body: the
/// `message`, `detail`, `error` or `title` of a JSON body, the `<title>` of an HTML page
/// (Django's debug page names the exception there), or the first line of a text body.
pub(super) fn said(res: &HttpResponse) -> String {
    let body = res.body.trim();
    let mut what = match super::json_body::parse::<Value>(body) {
        Ok(v) => from_json(&v),
        Err(_) if body.starts_with('<') => html_title(body),
        Err(_) => body
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string),
    };
    // Django with DEBUG on answers a PUT, PATCH, POST or DELETE to a URL without its trailing
    // slash with a 500 (it cannot redirect those), and names the cause only in the page.
    if body.contains("APPEND_SLASH") {
        let hint = "Django's APPEND_SLASH: the collection URL needs a trailing slash";
        what = Some(match what {
            Some(w) => format!("{w} ({hint})"),
            None => hint.to_string(),
        });
    }
    colon(what)
}

/// [`said`] of a body already read as JSON.
pub(super) fn said_in(v: &Value) -> String {
    colon(from_json(v))
}

/// `: <what>`, cut short, or nothing.
fn colon(what: Option<String>) -> String {
    match what.map(|w| short(&w)).filter(|w| !w.is_empty()) {
        Some(w) => format!(": {w}"),
        None => String::new(),
    }
}

fn from_json(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // `msg`: Ext JS's examples and many of the servers written for them.
        Value::Object(m) => [
            "message",
            "detail",
            "error",
            "title",
            "error_description",
            "msg",
        ]
        .iter()
        .find_map(|k| match m.get(*k)? {
            Value::String(s) => Some(s.clone()),
            inner @ Value::Object(_) => from_json(inner),
            _ => None,
        }),
        _ => None,
    }
}

/// The `<title>` of an HTML page, or where that says only "Error" (Express's default error
/// page), the first line of its `<h1>` or `<pre>`.
fn html_title(body: &str) -> Option<String> {
    ["title", "h1", "pre"].into_iter().find_map(|tag| {
        let text = element_text(body, tag)?;
        // A title is one line however it is wrapped (Django's is); in a page's text a line
        // break ends the message (Express's `<pre>` goes on with the stack).
        let first = match tag {
            "title" => text.trim().to_string(),
            _ => text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())?
                .to_string(),
        };
        (!first.is_empty() && !first.eq_ignore_ascii_case("error")).then_some(first)
    })
}

fn element_text(body: &str, tag: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = lower.find(&format!("<{tag}"))?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find(&format!("</{tag}"))?;
    // Text only: the tags inside go, and escaped angle brackets stay harmless (a message may
    // end up in the page's HTML).
    let mut text = String::new();
    let mut in_tag = false;
    let inner = &body[open_end..end];
    for (i, ch) in inner.char_indices() {
        match ch {
            '<' => {
                in_tag = true;
                if inner[i..]
                    .get(..3)
                    .is_some_and(|t| t.eq_ignore_ascii_case("<br"))
                {
                    text.push('\n');
                }
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(ch),
            _ => {}
        }
    }
    Some(
        text.replace("&lt;", "‹")
            .replace("&gt;", "›")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&nbsp;", " ")
            .replace("&amp;", "&"),
    )
}

/// `text` on one line, cut to [`MAX`] characters, without control characters or the
/// direction overrides that make a text read otherwise than it is.
fn short(text: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let clean: String = text
        .chars()
        .filter(|c| !bidi(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(body: &str) -> HttpResponse {
        HttpResponse {
            status: 500,
            headers: vec![],
            body: body.into(),
        }
    }

    #[test]
    fn an_answer_says_what_went_wrong_in_a_few_words() {
        assert_eq!(said(&res("")), "");
        assert_eq!(
            said(&res(r#"{"message": "Insert failed, duplicate id"}"#)),
            ": Insert failed, duplicate id"
        );
        assert_eq!(
            said(&res(r#"{"error": {"message": "db down"}}"#)),
            ": db down"
        );
        assert_eq!(said(&res(r#"{"name": "GeneralError", "code": 500}"#)), "");
        assert_eq!(said(&res("Bad gateway\nnginx")), ": Bad gateway");
        let django = "<!DOCTYPE html><html><head><title>RuntimeError\n at /api/todos</title>\
            </head><body>You called this URL via PUT ... APPEND_SLASH set.</body></html>";
        assert_eq!(
            said(&res(django)),
            ": RuntimeError at /api/todos (Django's APPEND_SLASH: the collection URL needs a \
             trailing slash)"
        );
        assert_eq!(said(&res(&"x".repeat(500))).chars().count(), 2 + MAX + 1);
        let express = "<!DOCTYPE html><html><head><title>Error</title></head><body><pre>Error: \
            Insert failed, duplicate id<br> &nbsp; &nbsp;at Function.insert</pre></body></html>";
        assert_eq!(said(&res(express)), ": Error: Insert failed, duplicate id");
        let hostile = "<title>ValueError: &lt;img src=x onerror=alert(1)&gt;</title>";
        assert_eq!(
            said(&res(hostile)),
            ": ValueError: ‹img src=x onerror=alert(1)›"
        );
        let tags = "<title>Error</title><h1><a href=x>click</a><script>alert(1)</script></h1>";
        assert_eq!(said(&res(tags)), ": clickalert(1)");
        let controls = r#"{"message": "a\u0000b\u001b[31mc\u202ed"}"#;
        assert_eq!(said(&res(controls)), ": a b [31mcd");
    }
}
