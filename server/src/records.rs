//! The write rules: server ids, versions, If-Match, last-writer-wins, tombstones.

use crate::db;
use crate::pathenc::encode;
use crate::reply::Reply;
use rusqlite::{Connection, Result};
use serde_json::{json, Map, Value};

pub enum Write {
    Create {
        collection: String,
    },
    Update {
        collection: String,
        id: String,
        patch: bool,
    },
    Delete {
        collection: String,
        id: String,
    },
}

/// Applies one write inside the caller's transaction. `if_match` is None in LWW mode.
pub fn apply(
    conn: &Connection,
    op: Write,
    body: Map<String, Value>,
    if_match: Option<&str>,
    lww: bool,
    changed_at: i64,
) -> Result<Reply> {
    match op {
        Write::Create { collection } => create(conn, &collection, body, changed_at),
        Write::Update {
            collection,
            id,
            patch,
        } => {
            let Some(row) = live(conn, &collection, &id)? else {
                return Ok(missing(&collection, &id));
            };
            if let Some(reply) = precondition(&row, if_match, lww, changed_at) {
                return Ok(reply);
            }
            update(conn, &collection, &id, row, body, patch, changed_at)
        }
        Write::Delete { collection, id } => {
            let Some(row) = live(conn, &collection, &id)? else {
                return Ok(missing(&collection, &id));
            };
            if let Some(reply) = precondition(&row, if_match, lww, changed_at) {
                // A 2xx to a DELETE means "deleted" (PROTOCOL.md section 1): a delete that lost
                // is a conflict, with the record that won.
                let lost = reply.status == 200;
                return Ok(if lost {
                    Reply {
                        status: 409,
                        ..reply
                    }
                } else {
                    reply
                });
            }
            let tombstone = json!({ "id": id_value(&row.body, &id), "deleted": true });
            db::put(
                conn,
                &collection,
                &id,
                &tombstone,
                row.version + 1,
                changed_at,
                true,
            )?;
            Ok(Reply::empty(204).applied())
        }
    }
}

fn live(conn: &Connection, collection: &str, id: &str) -> Result<Option<db::Row>> {
    Ok(db::get(conn, collection, id)?.filter(|r| !r.deleted))
}

fn missing(collection: &str, id: &str) -> Reply {
    Reply::error(404, format!("no record {id:?} in {collection}"))
}

/// The id as the record spells it (a client may have chosen a number), else the key.
fn id_value(body: &Value, key: &str) -> Value {
    body.get("id")
        .cloned()
        .unwrap_or_else(|| Value::String(key.to_string()))
}

fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Some(answer) when the write must not be applied.
fn precondition(
    row: &db::Row,
    if_match: Option<&str>,
    lww: bool,
    changed_at: i64,
) -> Option<Reply> {
    let current = || Reply::json(0, row.body.clone()).etag(row.version);
    if lww {
        // The older write lost: answer 200 with the winner so the client adopts it (a delete
        // turns it into a 409).
        return (changed_at < row.changed_at).then(|| Reply {
            status: 200,
            ..current()
        });
    }
    match if_match {
        Some(h) if !etag_matches(h, row.version) => Some(Reply {
            status: 412,
            ..current()
        }),
        _ => None,
    }
}

/// If-Match against a version: `"3"`, `3`, `W/"3"`, `*`, or a comma-separated list of those.
pub fn etag_matches(header: &str, version: i64) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || tag.trim_matches('"') == version.to_string()
    })
}

fn create(
    conn: &Connection,
    collection: &str,
    mut body: Map<String, Value>,
    changed_at: i64,
) -> Result<Reply> {
    let wanted = body
        .get("id")
        .and_then(|v| id_key(v).map(|k| (k, v.clone())));
    let (key, id) = match wanted {
        Some((k, v)) if !db::exists(conn, collection, &k)? => (k, v),
        _ => {
            let k = db::next_id(conn, collection)?;
            (k.clone(), Value::String(k))
        }
    };
    body.insert("id".into(), id);
    body.insert("version".into(), json!(1));
    let record = Value::Object(body);
    db::put(conn, collection, &key, &record, 1, changed_at, false)?;
    Ok(Reply::json(201, record)
        .etag(1)
        .header("Location", format!("/api/{collection}/{}", encode(&key)))
        .applied())
}

fn update(
    conn: &Connection,
    collection: &str,
    id: &str,
    row: db::Row,
    mut body: Map<String, Value>,
    patch: bool,
    changed_at: i64,
) -> Result<Reply> {
    match body.get("id") {
        None | Some(Value::Null) => {}
        Some(v) if id_key(v).as_deref() == Some(id) => {}
        Some(_) => {
            return Ok(Reply::error(
                422,
                "the body's id differs from the id in the URL",
            ))
        }
    }
    // The server owns these two fields; what the client sent for them is ignored.
    body.remove("id");
    body.remove("version");
    let mut record = if patch {
        let mut base = row.body.clone();
        merge_patch(&mut base, Value::Object(body));
        base
    } else {
        Value::Object(body)
    };
    let version = row.version + 1;
    if let Value::Object(m) = &mut record {
        m.insert("id".into(), id_value(&row.body, id));
        m.insert("version".into(), json!(version));
    }
    db::put(conn, collection, id, &record, version, changed_at, false)?;
    Ok(Reply::json(200, record).etag(version).applied())
}

/// RFC 7396 JSON merge patch: objects merge recursively, null removes a field.
pub fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(&k);
            } else {
                merge_patch(t.entry(k).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert!(etag_matches("\"3\"", 3));
        assert!(etag_matches("3", 3));
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("*", 9));
        assert!(etag_matches("\"1\", \"3\"", 3));
        assert!(!etag_matches("\"2\"", 3));
        assert!(!etag_matches("", 3));
    }

    #[test]
    fn merge_patch_rules() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4});
        merge_patch(
            &mut t,
            json!({"a": null, "b": {"c": 5, "d": null}, "f": [1]}),
        );
        assert_eq!(t, json!({"b": {"c": 5}, "e": 4, "f": [1]}));
    }
}
