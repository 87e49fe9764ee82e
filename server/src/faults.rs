//! Fault switches and request counters, changed at run time through the admin API.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Faults {
    pub fail_next: u64,
    pub status: u16,
    /// The body of a `failNext` answer (JSON); `{"error": "injected fault"}` when unset. With
    /// `"status": 200` and `{"success": false, …}`, a refusal as servers written for Sencha's
    /// proxies give it.
    pub body: Option<Value>,
    pub retry_after: Option<String>,
    /// Only /api paths starting with this are affected by any fault.
    pub match_prefix: Option<String>,
    /// Only requests with one of these methods (upper case) are affected by any fault.
    pub methods: Option<Vec<String>>,
    pub drop_after_commit: u64,
    pub delay_ms: u64,
    /// Held this long before it is processed (a slow server: the client may give up, or its
    /// page reload, before the write is stored).
    pub stall_ms: u64,
    /// Writes ignore `Idempotency-Key` (it is optional in PROTOCOL.md): a request sent again
    /// is stored again.
    pub ignore_keys: bool,
    pub html_next: u64,
    /// /api paths starting with this answer versions only as `ETag` headers, none in bodies
    /// (PROTOCOL.md section 4: a list then names none). Apart from `match` and `methods`.
    pub etag_only: Option<String>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            fail_next: 0,
            status: 503,
            body: None,
            retry_after: None,
            match_prefix: None,
            methods: None,
            drop_after_commit: 0,
            delay_ms: 0,
            stall_ms: 0,
            ignore_keys: false,
            html_next: 0,
            etag_only: None,
        }
    }
}

/// What to do with one /api request, decided up front under one lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Fail {
        status: u16,
        retry_after: Option<String>,
        body: Option<Value>,
    },
    Html,
    /// Process normally; `drop` closes the connection instead of answering.
    Proceed {
        drop: bool,
    },
}

fn count(v: &Value, name: &str) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("{name} must be a non-negative integer"))
}

/// `"methods": ["PUT", "DELETE"]` (any case; stored upper case) or `null` for every method.
fn methods(v: &Value) -> Result<Option<Vec<String>>, String> {
    const ERR: &str = "methods must be a non-empty array of HTTP method names, or null";
    match v {
        Value::Null => Ok(None),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|m| {
                m.as_str()
                    .filter(|s| {
                        !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphabetic())
                    })
                    .map(str::to_ascii_uppercase)
                    .ok_or_else(|| ERR.to_string())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(ERR.into()),
    }
}

impl Faults {
    /// Merges the given fields into the current settings; absent fields keep their value.
    pub fn merge(&mut self, v: &Value) -> Result<(), String> {
        let obj = v.as_object().ok_or("faults must be a JSON object")?;
        // Validate everything first so a bad field changes nothing.
        let mut next = self.clone();
        for (k, val) in obj {
            match k.as_str() {
                "failNext" => next.fail_next = count(val, k)?,
                "status" => {
                    next.status = val
                        .as_u64()
                        .filter(|s| (100..=599).contains(s))
                        .ok_or("status must be an HTTP status code")?
                        as u16
                }
                "body" => next.body = (!val.is_null()).then(|| val.clone()),
                "retryAfter" => {
                    next.retry_after = match val {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => return Err("retryAfter must be a string or number".into()),
                    }
                }
                "match" => {
                    next.match_prefix = match val {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        _ => return Err("match must be a string".into()),
                    }
                }
                "methods" => next.methods = methods(val)?,
                "dropAfterCommit" => next.drop_after_commit = count(val, k)?,
                "delayMs" => next.delay_ms = count(val, k)?,
                "stallMs" => next.stall_ms = count(val, k)?,
                "ignoreIdempotencyKey" => {
                    next.ignore_keys = val
                        .as_bool()
                        .ok_or("ignoreIdempotencyKey must be a boolean")?
                }
                "htmlNext" => next.html_next = count(val, k)?,
                "etagOnly" => {
                    next.etag_only = match val {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        _ => return Err("etagOnly must be a path prefix or null".into()),
                    }
                }
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        *self = next;
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "failNext": self.fail_next,
            "status": self.status,
            "body": self.body,
            "retryAfter": self.retry_after,
            "match": self.match_prefix,
            "methods": self.methods,
            "dropAfterCommit": self.drop_after_commit,
            "delayMs": self.delay_ms,
            "stallMs": self.stall_ms,
            "ignoreIdempotencyKey": self.ignore_keys,
            "htmlNext": self.html_next,
            "etagOnly": self.etag_only,
        })
    }

    /// Whether the answers to `path` keep their versions only in `ETag` headers.
    pub fn etag_only(&self, path: &str) -> bool {
        self.etag_only
            .as_deref()
            .is_some_and(|p| path.starts_with(p))
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.match_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p))
            && self
                .methods
                .as_ref()
                .is_none_or(|ms| ms.iter().any(|m| m == method))
    }

    /// How long a request is held before it is processed.
    pub fn stall(&self, method: &str, path: &str) -> u64 {
        if self.matches(method, path) {
            self.stall_ms
        } else {
            0
        }
    }

    /// Delay in ms and the action for a request, consuming one count of the fault it triggers.
    /// A batch is one `POST`.
    pub fn plan(&mut self, method: &str, path: &str) -> (u64, Action) {
        let is_write = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
        if !self.matches(method, path) {
            return (0, Action::Proceed { drop: false });
        }
        let action = if self.fail_next > 0 {
            self.fail_next -= 1;
            Action::Fail {
                status: self.status,
                retry_after: self.retry_after.clone(),
                body: self.body.clone(),
            }
        } else if self.html_next > 0 {
            self.html_next -= 1;
            Action::Html
        } else if is_write && self.drop_after_commit > 0 {
            self.drop_after_commit -= 1;
            Action::Proceed { drop: true }
        } else {
            Action::Proceed { drop: false }
        };
        (self.delay_ms, action)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub requests: u64,
    pub writes: u64,
    pub by_method: BTreeMap<String, u64>,
    pub idempotent_replays: u64,
    pub faulted: u64,
    pub dropped: u64,
    pub batches: u64,
    pub batch_items: u64,
}

impl Stats {
    pub fn to_json(&self) -> Value {
        let by_method: Map<String, Value> = self
            .by_method
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({
            "requests": self.requests,
            "writes": self.writes,
            "byMethod": by_method,
            "idempotentReplays": self.idempotent_replays,
            "faulted": self.faulted,
            "dropped": self.dropped,
            "batches": self.batches,
            "batchItems": self.batch_items,
        })
    }
}

pub const CAPTIVE_PAGE: &str =
    "<!doctype html>\n<html><head><title>Sign in to Wi-Fi</title></head>\
<body><h1>Welcome to Free Wi-Fi</h1><p>Please accept the terms to continue.</p>\
<form method=\"post\" action=\"/login\"><button>Accept</button></form></body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_plan() {
        let mut f = Faults::default();
        f.merge(&json!({"failNext": 1, "retryAfter": 2, "match": "/api/a"}))
            .unwrap();
        assert!(f.merge(&json!({"failNext": -1})).is_err());
        assert!(f.merge(&json!({"status": 99})).is_err());
        assert!(f.merge(&json!({"nope": 1})).is_err());
        assert_eq!(f.fail_next, 1);
        assert_eq!(f.plan("POST", "/api/b").1, Action::Proceed { drop: false });
        assert_eq!(
            f.plan("PUT", "/api/a/1").1,
            Action::Fail {
                status: 503,
                retry_after: Some("2".into()),
                body: None,
            }
        );
        f.merge(&json!({"dropAfterCommit": 1, "htmlNext": 1, "match": null}))
            .unwrap();
        assert_eq!(f.plan("GET", "/api/x").1, Action::Html);
        assert_eq!(f.plan("GET", "/api/x").1, Action::Proceed { drop: false });
        assert_eq!(f.plan("DELETE", "/api/x").1, Action::Proceed { drop: true });
        assert_eq!(
            f.plan("DELETE", "/api/x").1,
            Action::Proceed { drop: false }
        );
    }

    #[test]
    fn methods_filter() {
        let mut f = Faults::default();
        f.merge(&json!({"failNext": 2, "methods": ["put", "DELETE"]}))
            .unwrap();
        assert_eq!(f.to_json()["methods"], json!(["PUT", "DELETE"]));
        for bad in [
            json!([]),
            json!("PUT"),
            json!([1]),
            json!(["P UT"]),
            json!([""]),
        ] {
            assert!(f.merge(&json!({"methods": bad, "failNext": 9})).is_err());
        }
        assert_eq!(f.fail_next, 2, "a bad field changes nothing");
        assert_eq!(f.plan("GET", "/api/a").1, Action::Proceed { drop: false });
        assert_eq!(f.plan("POST", "/api/a").1, Action::Proceed { drop: false });
        assert!(matches!(f.plan("PUT", "/api/a/1").1, Action::Fail { .. }));
        assert!(matches!(
            f.plan("DELETE", "/api/a/1").1,
            Action::Fail { .. }
        ));
        assert_eq!(f.plan("PUT", "/api/a/1").1, Action::Proceed { drop: false });
        f.merge(&json!({"methods": null, "delayMs": 5})).unwrap();
        assert_eq!(f.methods, None);
        assert_eq!(
            f.plan("GET", "/api/a"),
            (5, Action::Proceed { drop: false })
        );
    }
}
