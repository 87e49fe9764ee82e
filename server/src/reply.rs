//! A transport-neutral answer. The API logic produces these so that the same code answers a plain
//! HTTP request and a sub-request of a batch.

use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub enum Body {
    Empty,
    Json(Value),
    Html(String),
    Bytes(Vec<u8>, &'static str),
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
    /// True when this request changed stored data (feeds the stats, not the client).
    pub applied: bool,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
            applied: false,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: Body::Empty,
            headers: Vec::new(),
            applied: false,
        }
    }

    pub fn error(status: u16, msg: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": msg.into() }))
    }

    pub fn html(status: u16, page: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Body::Html(page.into()),
            headers: Vec::new(),
            applied: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// This answer without a `version` field anywhere in its JSON body (a record, a list, a
    /// batch's answers): versions only in `ETag` headers.
    pub fn without_versions(mut self) -> Reply {
        fn strip(v: &mut Value) {
            match v {
                Value::Object(m) => {
                    m.remove("version");
                    m.values_mut().for_each(strip);
                }
                Value::Array(a) => a.iter_mut().for_each(strip),
                _ => {}
            }
        }
        if let Body::Json(v) = &mut self.body {
            strip(v);
        }
        self
    }

    pub fn etag(self, version: i64) -> Reply {
        self.header("ETag", format!("\"{version}\""))
    }

    pub fn applied(mut self) -> Reply {
        self.applied = true;
        self
    }

    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Body as bytes plus its content type (None for an empty body).
    pub fn encode(&self) -> (Vec<u8>, Option<&'static str>) {
        match &self.body {
            Body::Empty => (Vec::new(), None),
            Body::Json(v) => (v.to_string().into_bytes(), Some("application/json")),
            Body::Html(s) => (s.clone().into_bytes(), Some("text/html; charset=utf-8")),
            Body::Bytes(b, ct) => (b.clone(), Some(*ct)),
        }
    }
}

/// The JSON body of a sub-answer in a batch: JSON stays JSON, anything else becomes a string.
pub fn body_as_value(body: &Body) -> Option<Value> {
    match body {
        Body::Empty => None,
        Body::Json(v) => Some(v.clone()),
        Body::Html(s) => Some(Value::String(s.clone())),
        Body::Bytes(b, _) => Some(Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}
