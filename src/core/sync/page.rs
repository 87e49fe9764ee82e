//! A read answer as Ferry takes it: the list of records (a bare array or an envelope's root
//! property), the cursor for the next delta read, and what else the envelope holds (paging).

use serde_json::Value;

use crate::core::config::CollectionConfig;
use crate::core::record::Record;

/// A read answer: records, the next cursor, and the rest of its envelope (paging).
pub(super) struct Page {
    pub(super) records: Vec<Record>,
    /// Entries of the list that are not records (not objects), left out of `records`.
    pub(super) others: usize,
    /// Why the read may hold only part of the list (pages Ferry cannot ask for, fewer records
    /// than the server counts): applied, such a read removes nothing.
    pub(super) partial: Option<String>,
    pub(super) cursor: Option<String>,
    pub(super) envelope: Option<serde_json::Map<String, Value>>,
}

/// `url` as an error message shows it: a cursor can make a URL of megabytes.
pub(super) fn shown(url: &str) -> String {
    const MAX: usize = 200;
    match url.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… ({} characters)", &url[..at], url.chars().count()),
        None => url.to_string(),
    }
}

pub(super) fn parse_page(cfg: &CollectionConfig, body: &str) -> std::result::Result<Page, String> {
    let root = cfg.root_property.as_str();
    let v: Value =
        super::json_body::parse(body).map_err(|e| format!("the read answer is not JSON ({e})"))?;
    let (list, cursor, envelope) = match v {
        Value::Array(a) => (a, None, None),
        Value::Object(mut m) => {
            // Sencha's `{"success": false, "data": []}`: a failed read, not an empty snapshot.
            if let Some(field) = cfg.success_field() {
                if m.get(field) == Some(&Value::Bool(false)) {
                    return Err(format!(
                        "the read answer says `{field}: false`{}",
                        super::excerpt::said_in(&Value::Object(m))
                    ));
                }
            }
            let cursor = match m.remove("cursor") {
                Some(Value::String(s)) => Some(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            match m.remove(root) {
                Some(Value::Array(a)) => (a, cursor, Some(m)),
                _ => return Err(format!("the read answer has no `{root}` array")),
            }
        }
        _ => return Err("the read answer is neither an array nor an envelope".into()),
    };
    let entries = list.len();
    let records: Vec<Record> = list
        .into_iter()
        .filter_map(|r| {
            if let Value::Object(m) = r {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    Ok(Page {
        partial: None,
        others: entries - records.len(),
        records,
        cursor,
        envelope,
    })
}
