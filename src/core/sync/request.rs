//! Turning an outbox entry into the request that carries it (PROTOCOL.md sections 1 to 4).

use serde_json::Value;

use crate::core::config::{CollectionConfig, UpdateMethod};
use crate::core::mutation::{Entry, Kind, Sent};
use crate::core::record::{Record, Row};

use super::http::{record_url, HttpRequest};

/// Whether `id` is a temporary client id (made by `create` without an id).
pub fn is_temp_id(id: &str) -> bool {
    id.starts_with("tmp-")
}

/// The value a create carries in `clientIdProperty`: the temporary id, or for a record that has
/// its own id already (one the app chose, or a record created again) the mutation id, so the
/// server's copy can always be told apart from another client's record of the same id.
pub fn client_id_of(e: &Entry) -> &str {
    if is_temp_id(&e.r) {
        &e.r
    } else {
        &e.id
    }
}

/// `"v"`, the If-Match form of a version.
pub fn quote_version(v: &str) -> String {
    format!("\"{}\"", v.trim_matches('"'))
}

/// The request for `e`, made from the record's current row (`None` once deleted), stamped
/// `Ferry-Changed-At: changed_at`. Returns `None` when there is nothing to send (an update
/// whose record is gone meanwhile is carried by the delete that follows it).
pub fn freeze(
    cfg: &CollectionConfig,
    e: &Entry,
    row: Option<&Row>,
    changed_at: u64,
) -> Option<Sent> {
    let mut headers = vec![
        ("Idempotency-Key".to_string(), e.id.clone()),
        ("Ferry-Changed-At".to_string(), changed_at.to_string()),
    ];
    let (method, url, body, version, base) = match e.kind {
        Kind::Create => {
            let row = row?;
            let mut body = row.d.clone();
            if is_temp_id(&e.r) {
                body.remove(&cfg.id_property);
            }
            body.insert(
                cfg.client_id_property.clone(),
                Value::String(client_id_of(e).to_string()),
            );
            ("POST", cfg.url.clone(), Some(body), None, None)
        }
        Kind::Update => {
            let row = row?;
            let body: Record = match cfg.update_method {
                UpdateMethod::Put => row.d.clone(),
                // A replacing update (delete then create of one id) also clears what the
                // server holds and the local record lacks.
                UpdateMethod::Patch if e.replace => {
                    let mut body = row.d.clone();
                    for f in row.b.iter().flat_map(|b| b.keys()) {
                        if !body.contains_key(f) && f != &cfg.version_property {
                            body.insert(f.clone(), Value::Null);
                        }
                    }
                    body
                }
                UpdateMethod::Patch => e
                    .fields
                    .iter()
                    .map(|f| (f.clone(), row.d.get(f).cloned().unwrap_or(Value::Null)))
                    .collect(),
            };
            let method = match cfg.update_method {
                UpdateMethod::Put => "PUT",
                UpdateMethod::Patch => "PATCH",
            };
            (
                method,
                record_url(&cfg.url, &e.r),
                Some(body),
                row.v.clone(),
                row.b.as_ref(),
            )
        }
        Kind::Delete => (
            "DELETE",
            record_url(&cfg.url, &e.r),
            None,
            e.base_v.clone(),
            e.base.as_ref(),
        ),
    };
    let check = base.filter(|_| version.is_none()).cloned();
    if let Some(v) = version {
        headers.push(("If-Match".to_string(), quote_version(&v)));
    }
    Some(Sent {
        method: method.into(),
        url,
        headers,
        body: body.map(Value::Object),
        check,
        frozen_at: None,
    })
}

/// The HTTP request for a frozen mutation, with the store's own headers added.
pub fn to_http(sent: &Sent, extra: &[(String, String)]) -> HttpRequest {
    let mut headers: Vec<(String, String)> = extra.to_vec();
    if sent.body.is_some() {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    headers.extend(sent.headers.iter().cloned());
    HttpRequest {
        method: sent.method.clone(),
        url: sent.url.clone(),
        headers,
        body: sent.body.as_ref().map(|b| b.to_string()),
    }
}

/// `entries` with the versions `read_first` found (by index) written into their frozen requests
/// as `If-Match`, and nothing left to read first; `None` when there are none.
pub(super) fn pin_versions(entries: &[Entry], pinned: &[(usize, String)]) -> Option<Vec<Entry>> {
    if pinned.is_empty() {
        return None;
    }
    let mut out = entries.to_vec();
    for (i, v) in pinned {
        let Some(sent) = out.get_mut(*i).and_then(|e| e.sent.as_mut()) else {
            continue;
        };
        sent.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("If-Match"));
        sent.headers
            .push(("If-Match".to_string(), quote_version(v)));
        sent.check = None;
    }
    Some(out)
}
