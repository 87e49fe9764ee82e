//! Queries: equality filters, one sort field, offset and limit. A query whose `where` names an
//! indexed field reads only the matching rows through the index; any other query scans the
//! collection (fine for thousands of records, worth an index beyond that).

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;

use super::record::{index_key, Record};

/// A query, as `collection.query(q)` takes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    /// Field equalities, all of which must hold. `null` also matches a missing field.
    #[serde(default, rename = "where")]
    pub filter: Record,
    /// Sort by this field (missing and null first, then booleans, numbers, strings).
    #[serde(default)]
    pub order_by: Option<String>,
    /// Sort descending.
    #[serde(default)]
    pub desc: bool,
    /// Skip this many results.
    #[serde(default)]
    pub offset: usize,
    /// Return at most this many.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl Query {
    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &Record) -> bool {
        self.filter
            .iter()
            .all(|(k, want)| match (record.get(k), want) {
                (None, Value::Null) => true,
                (got, want) => got == Some(want),
            })
    }

    /// The `where` field a query reads through its index, if any, and the index key to look up:
    /// the first field (in `where` order) that is in `indexes` and holds a scalar (arrays and
    /// objects are not indexed).
    pub fn index_lookup(&self, indexes: &[String]) -> Option<(&str, Value)> {
        self.filter.iter().find_map(|(f, v)| {
            indexes
                .contains(f)
                .then(|| index_key(Some(v)).map(|k| (f.as_str(), k)))
                .flatten()
        })
    }

    /// Sorts, skips and cuts `records` (already filtered; given in key order, which breaks ties).
    pub fn finish(&self, mut records: Vec<Record>) -> Vec<Record> {
        if let Some(field) = &self.order_by {
            records.sort_by(|a, b| {
                let o = compare(a.get(field), b.get(field));
                if self.desc {
                    o.reverse()
                } else {
                    o
                }
            });
        } else if self.desc {
            records.reverse();
        }
        let limit = self.limit.unwrap_or(usize::MAX);
        records.into_iter().skip(self.offset).take(limit).collect()
    }
}

fn rank(v: Option<&Value>) -> u8 {
    match v {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(Value::Array(_)) => 4,
        Some(Value::Object(_)) => 5,
    }
}

/// The order of field values in `orderBy`.
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn filter_sort_limit() {
        let q: Query = serde_json::from_value(
            json!({"where": {"done": false}, "orderBy": "n", "desc": true, "limit": 2}),
        )
        .unwrap();
        let rs: Vec<Record> = [
            json!({"n": 1, "done": false}),
            json!({"n": 3, "done": false}),
            json!({"n": 2}),
            json!({"n": 5, "done": false}),
        ]
        .into_iter()
        .map(rec)
        .filter(|r| q.matches(r))
        .collect();
        let out = q.finish(rs);
        assert_eq!(
            out,
            vec![
                rec(json!({"n": 5, "done": false})),
                rec(json!({"n": 3, "done": false}))
            ]
        );
    }

    #[test]
    fn null_matches_missing() {
        let q: Query = serde_json::from_value(json!({"where": {"p": null}})).unwrap();
        assert!(q.matches(&rec(json!({"a": 1}))));
        assert!(q.matches(&rec(json!({"p": null}))));
        assert!(!q.matches(&rec(json!({"p": 0}))));
    }

    #[test]
    fn index_lookup_takes_the_first_indexed_scalar() {
        let q: Query =
            serde_json::from_value(json!({"where": {"a": [1], "b": true, "c": "x"}})).unwrap();
        let ix = |fs: &[&str]| fs.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        assert_eq!(q.index_lookup(&ix(&["a"])), None);
        assert_eq!(
            q.index_lookup(&ix(&["a", "c", "b"])),
            Some(("b", json!([1, 1])))
        );
        assert_eq!(q.index_lookup(&ix(&["c"])), Some(("c", json!([3, "x"]))));
    }

    #[test]
    fn unknown_option_is_an_error() {
        assert!(serde_json::from_value::<Query>(json!({"wher": {}})).is_err());
    }
}
