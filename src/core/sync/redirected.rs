//! A create answered after a redirect (Post/Redirect/Get, or a 307 to the URL with a trailing
//! slash): what the page it ended on says of the create.

use serde_json::Value;

use crate::core::config::CollectionConfig;
use crate::core::record::{id_key, Record};

use super::classify::{has_id, invalid, record_of, version_of, Verdict};
use super::http::{id_from_location, HttpResponse};
use super::json_body::parse;

/// A create whose answer came after a redirect that made it a GET: a page of the new record
/// (Post/Redirect/Get: created, and the URL names it) or anything else, which says nothing of the
/// create (a list, when the collection URL lacks the trailing slash the server wants).
pub(super) fn redirected_create(cfg: &CollectionConfig, res: &HttpResponse, to: &str) -> Verdict {
    let Some(id) = id_from_location(to, &cfg.url) else {
        // A 307 or 308 (FastAPI's to the URL with the trailing slash) keeps the method: the
        // create was made at the new URL, and the answer is its record, an object (a list
        // read after a 301, 302 or 303 is an array). Taken for a failure, it would be sent
        // again, and stored again, at every retry.
        if let Some(r) = single_record(cfg, res) {
            let v = version_of(cfg, res, Some(&r));
            return Verdict::Ack(Some(r), v);
        }
        return invalid(
            res,
            format!(
                "the create was redirected to {to}, which is not a record of {} (does the \
                 collection URL need a trailing slash, or the server an `Accept: application/json`?)",
                cfg.url
            ),
        );
    };
    // The page's record, when it is JSON and this record; else what was sent stands.
    let mut r = record_of(cfg, res)
        .ok()
        .flatten()
        .filter(|r| r.get(&cfg.id_property).and_then(|v| id_key(v).ok()) == Some(id.clone()))
        .unwrap_or_default();
    r.insert(cfg.id_property.clone(), Value::String(id));
    let v = version_of(cfg, res, Some(&r));
    Verdict::Ack(Some(r), v)
}

/// The record a body is, as an object with an id (itself or under the root property), never
/// an array: a list of one record is not a write's answer here.
fn single_record(cfg: &CollectionConfig, res: &HttpResponse) -> Option<Record> {
    let body = res.body.trim_start_matches('\u{feff}').trim();
    let Ok(Value::Object(mut m)) = parse::<Value>(body) else {
        return None;
    };
    if !has_id(cfg, &m) {
        match m.remove(&cfg.root_property) {
            Some(Value::Object(inner)) => m = inner,
            _ => return None,
        }
    }
    has_id(cfg, &m).then_some(m)
}
