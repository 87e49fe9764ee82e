//! Records as the app sees them (JSON objects) and rows as storage keeps them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::CollectionConfig;
use super::error::{Error, Result};

/// A record: a JSON object.
pub type Record = Map<String, Value>;

/// The storage key of an id. Ids are strings or numbers; `17` and `"17"` name the same record,
/// because servers disagree on the type and a URL cannot tell them apart.
pub fn id_key(id: &Value) -> Result<String> {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0; // 2^53: JS numbers are exact below
    match id {
        // `.` and `..` would be read as path steps by every URL parser, even percent-encoded.
        Value::String(s) if s == "." || s == ".." => Err(Error::validation(format!(
            "the id {s:?} cannot be used: it is a URL path step"
        ))),
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        // `7.0`, as some servers write every number, names the same record as `7`.
        Value::Number(n) => Ok(match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < MAX_SAFE_INTEGER => {
                (f as i64).to_string()
            }
            _ => n.to_string(),
        }),
        other => Err(Error::validation(format!(
            "an id must be a non-empty string or a number, got {}",
            short(other)
        ))),
    }
}

/// A value cut short for an error message.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        let cut = (0..=80).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

/// Checks that `v` is a JSON object and returns it.
pub fn expect_object(v: Value, what: &str) -> Result<Record> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(Error::validation(format!(
            "{what} must be a plain object, got {}",
            kind_of(&other)
        ))),
    }
}

/// The JSON kind of a value, for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A stored row: the record plus what sync needs to know about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The record, exactly as the app reads it.
    pub d: Record,
    /// Index keys of the declared indexed fields, encoded so IndexedDB can index every JSON
    /// scalar (it cannot index booleans or null as they are).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub ix: Record,
    /// The server's version of this record, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// The server's record that pending local changes were made on (the base of a three-way
    /// merge). Absent when nothing is pending or the server has never seen the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<Record>,
}

impl Row {
    /// A row for `d`, with index keys computed for `config`.
    pub fn new(config: &CollectionConfig, d: Record) -> Row {
        let mut row = Row {
            d,
            ix: Map::new(),
            v: None,
            b: None,
        };
        row.reindex(config);
        row
    }

    /// Recomputes the index keys after `d` changed.
    pub fn reindex(&mut self, config: &CollectionConfig) {
        self.ix.clear();
        for f in &config.indexes {
            if let Some(k) = index_key(self.d.get(f)) {
                self.ix.insert(f.clone(), k);
            }
        }
    }

    /// Decodes a stored row.
    pub fn from_value(v: Value) -> Result<Row> {
        Ok(serde_json::from_value(v)?)
    }

    /// Decodes what a records store holds under a key: a row, or nothing for a [`ghost`].
    pub fn from_stored(v: Value) -> Result<Option<Row>> {
        if is_ghost(&v) {
            return Ok(None);
        }
        Row::from_value(v).map(Some)
    }

    /// Encodes the row for storage.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a row is always valid JSON")
    }
}

/// What a records store keeps under an id that holds no record but is still in use: its record
/// was deleted and the delete is pending, or the id became another (a server's rename). Every
/// read takes it for no row. It is there for a create with the app's id, which then needs no read
/// to find the id in use: its add of the row fails (`quick.rs`). It has no `d` (so no reader takes
/// it for a record) and no `ix` (so no index lists it).
pub fn ghost() -> Value {
    let mut m = Map::new();
    m.insert("g".into(), Value::from(1));
    Value::Object(m)
}

/// Whether a stored value is a [`ghost`].
pub fn is_ghost(v: &Value) -> bool {
    v.get("g").is_some() && v.get("d").is_none()
}

/// The index key of a field value: a `[type, value]` pair that keeps `false`, `0` and `"0"` apart
/// and makes booleans and null indexable. Objects and arrays are not indexed.
pub fn index_key(v: Option<&Value>) -> Option<Value> {
    Some(match v {
        None | Some(Value::Null) => Value::Array(vec![0.into()]),
        Some(Value::Bool(b)) => Value::Array(vec![1.into(), u8::from(*b).into()]),
        Some(Value::Number(n)) => Value::Array(vec![2.into(), Value::Number(n.clone())]),
        Some(Value::String(s)) => Value::Array(vec![3.into(), s.clone().into()]),
        Some(_) => return None,
    })
}

/// The record with the id field set.
pub fn with_id(mut d: Record, config: &CollectionConfig, id: &str) -> Record {
    d.insert(config.id_property.clone(), Value::String(id.to_string()));
    d
}

/// Field names whose values differ between `a` and `b` (present in one only counts), sorted.
pub fn changed_fields(a: &Record, b: &Record) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}
