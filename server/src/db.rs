//! SQLite storage. Every function takes a plain `&Connection` so callers can pass a
//! `Transaction` (it derefs to one) and group a write with its idempotency record.

use rusqlite::{params, Connection, OptionalExtension, Result};
use serde_json::{Map, Value};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    version INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS records_seq ON records (collection, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT,
    etag TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

pub fn open(path: Option<&Path>) -> Result<Connection> {
    let conn = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    // WAL lets a reader (sqlite3 CLI, a backup) look at the file while the server writes;
    // NORMAL sync is durable across a process crash, which is what the tests exercise.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// One stored row. For a tombstone `body` is `{ "id": ..., "deleted": true }`.
#[derive(Clone, Debug)]
pub struct Row {
    pub body: Value,
    pub version: i64,
    pub changed_at: i64,
    pub deleted: bool,
}

fn parse_body(text: String) -> Value {
    // The server wrote every body itself, so this only fails if the file was edited by hand.
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub fn get(conn: &Connection, collection: &str, id: &str) -> Result<Option<Row>> {
    conn.query_row(
        "SELECT body, version, changed_at, deleted FROM records WHERE collection = ?1 AND id = ?2",
        params![collection, id],
        |r| {
            Ok(Row {
                body: parse_body(r.get(0)?),
                version: r.get(1)?,
                changed_at: r.get(2)?,
                deleted: r.get::<_, i64>(3)? != 0,
            })
        },
    )
    .optional()
}

fn bump(conn: &Connection, key: &str) -> Result<i64> {
    conn.query_row(
        "INSERT INTO meta (key, value) VALUES (?1, 1)
         ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
        params![key],
        |r| r.get(0),
    )
}

/// The last change sequence handed out; the cursor of a read.
pub fn current_seq(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = 'seq'", [], |r| r.get(0))
        .optional()
        .map(|v| v.unwrap_or(0))
}

/// Stores a row (insert or replace) under a fresh change sequence number.
pub fn put(
    conn: &Connection,
    collection: &str,
    id: &str,
    body: &Value,
    version: i64,
    changed_at: i64,
    deleted: bool,
) -> Result<()> {
    let seq = bump(conn, "seq")?;
    // ON CONFLICT keeps the rowid, so a full snapshot keeps listing records in creation order.
    conn.execute(
        "INSERT INTO records (collection, id, body, version, changed_at, seq, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (collection, id) DO UPDATE SET body = excluded.body,
           version = excluded.version, changed_at = excluded.changed_at,
           seq = excluded.seq, deleted = excluded.deleted",
        params![
            collection,
            id,
            body.to_string(),
            version,
            changed_at,
            seq,
            deleted as i64
        ],
    )?;
    Ok(())
}

pub fn exists(conn: &Connection, collection: &str, id: &str) -> Result<bool> {
    conn.query_row(
        "SELECT 1 FROM records WHERE collection = ?1 AND id = ?2",
        params![collection, id],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// Next server id of a collection: "1", "2", ... skipping ids a client chose itself.
pub fn next_id(conn: &Connection, collection: &str) -> Result<String> {
    loop {
        let id = bump(conn, &format!("id:{collection}"))?.to_string();
        if !exists(conn, collection, &id)? {
            return Ok(id);
        }
    }
}

fn bodies(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| r.get::<_, String>(0))?;
    rows.map(|r| r.map(parse_body)).collect()
}

/// Live records of a collection in creation order.
pub fn list(conn: &Connection, collection: &str) -> Result<Vec<Value>> {
    bodies(
        conn,
        "SELECT body FROM records WHERE collection = ?1 AND deleted = 0 ORDER BY rowid",
        params![collection],
    )
}

/// Records and tombstones changed after `since`, in change order.
pub fn changes_since(conn: &Connection, collection: &str, since: i64) -> Result<Vec<Value>> {
    bodies(
        conn,
        "SELECT body FROM records WHERE collection = ?1 AND seq > ?2 ORDER BY seq",
        params![collection, since],
    )
}

/// A stored answer to an idempotent request.
#[derive(Clone, Debug)]
pub struct Stored {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: Option<String>,
    pub etag: Option<String>,
}

pub fn idem_get(conn: &Connection, key: &str) -> Result<Option<Stored>> {
    conn.query_row(
        "SELECT method, path, status, body, etag FROM idempotency WHERE key = ?1",
        params![key],
        |r| {
            Ok(Stored {
                method: r.get(0)?,
                path: r.get(1)?,
                status: r.get(2)?,
                body: r.get(3)?,
                etag: r.get(4)?,
            })
        },
    )
    .optional()
}

pub fn idem_put(conn: &Connection, key: &str, s: &Stored, now_ms: i64) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO idempotency (key, method, path, status, body, etag, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![key, s.method, s.path, s.status, s.body, s.etag, now_ms],
    )?;
    Ok(())
}

/// All live records, grouped by collection.
pub fn dump(conn: &Connection) -> Result<Map<String, Value>> {
    let mut stmt = conn.prepare(
        "SELECT collection, body FROM records WHERE deleted = 0 ORDER BY collection, rowid",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Map::new();
    for row in rows {
        let (c, body) = row?;
        if let Value::Array(a) = out.entry(c).or_insert_with(|| Value::Array(Vec::new())) {
            a.push(parse_body(body));
        }
    }
    Ok(out)
}

/// Deletes records and stored answers. Counters stay, so no old cursor or id is ever reused
/// for different data.
pub fn wipe(conn: &Connection) -> Result<()> {
    conn.execute_batch("DELETE FROM records; DELETE FROM idempotency;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counters_rows_and_idempotency() {
        let c = open(None).unwrap();
        assert_eq!(current_seq(&c).unwrap(), 0);
        put(&c, "t", "2", &json!({"id": "2"}), 1, 5, false).unwrap();
        assert_eq!(next_id(&c, "t").unwrap(), "1");
        assert_eq!(next_id(&c, "t").unwrap(), "3");
        put(&c, "t", "1", &json!({"id": "1"}), 1, 5, false).unwrap();
        put(
            &c,
            "t",
            "2",
            &json!({"id": "2", "deleted": true}),
            2,
            6,
            true,
        )
        .unwrap();
        assert_eq!(current_seq(&c).unwrap(), 3);
        assert_eq!(list(&c, "t").unwrap(), vec![json!({"id": "1"})]);
        assert_eq!(changes_since(&c, "t", 1).unwrap().len(), 2);
        let row = get(&c, "t", "2").unwrap().unwrap();
        assert!(row.deleted && row.version == 2 && row.changed_at == 6);
        let s = Stored {
            method: "POST".into(),
            path: "/api/t".into(),
            status: 201,
            body: Some("{}".into()),
            etag: None,
        };
        idem_put(&c, "k", &s, 0).unwrap();
        assert_eq!(idem_get(&c, "k").unwrap().unwrap().status, 201);
        wipe(&c).unwrap();
        assert!(dump(&c).unwrap().is_empty());
        assert_eq!(current_seq(&c).unwrap(), 3);
    }
}
