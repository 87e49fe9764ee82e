//! Queries: equality filters, one sort field, offset and limit. A query whose `where` names an
//! indexed field reads only the matching rows through the index; any other query scans the
//! collection (fine for thousands of records, worth an index beyond that). A field name with
//! dots that is not a top-level field names a nested one (`meta.pinned`), as in Dexie.

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;

use super::error::{Error, Result};
use super::record::{id_key, index_key, Record};

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
    /// A `where` value that is an operator (`{ $gt: 1 }`, as Mongo, PouchDB, LokiJS or Strapi
    /// write them: an object whose keys all start with `$`) would be compared as a value and
    /// match nothing, without a word: an error instead. Keys that JSON formats use in values
    /// (`{ $ref: … }`, `{ $oid: … }`) leave it a value to compare.
    pub fn check(&self) -> Result<()> {
        const VALUE_KEYS: &[&str] = &[
            "$ref",
            "$id",
            "$schema",
            "$oid",
            "$date",
            "$numberLong",
            "$numberInt",
            "$numberDouble",
            "$numberDecimal",
            "$binary",
            "$uuid",
            "$type",
            "$values",
        ];
        for (k, v) in &self.filter {
            if let Some(op) = v
                .as_object()
                .filter(|o| !o.is_empty() && o.keys().all(|key| key.starts_with('$')))
                .and_then(|o| o.keys().find(|key| !VALUE_KEYS.contains(&key.as_str())))
            {
                return Err(Error::validation(format!(
                    "`where.{k}` holds the operator `{op}`: `where` matches equal values only \
                     (filter the results for ranges and sets)"
                )));
            }
        }
        Ok(())
    }

    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &Record) -> bool {
        self.filter
            .iter()
            .all(|(k, want)| match (field(record, k), want) {
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
                let o = compare(self::field(a, field), self::field(b, field));
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

/// The value of `name` in `record`: its top-level field of that name, else, for a dotted name,
/// the nested field the path leads to.
pub fn field<'r>(record: &'r Record, name: &str) -> Option<&'r Value> {
    if let Some(v) = record.get(name) {
        return Some(v);
    }
    let mut path = name.split('.');
    let mut v = record.get(path.next()?)?;
    let mut nested = false;
    for step in path {
        v = v.as_object()?.get(step)?;
        nested = true;
    }
    nested.then_some(v)
}

/// Whether field `name` of `record` holds the id whose key is `key` (`7` and `"7"` alike).
pub fn holds_id(record: &Record, name: &str, key: &str) -> bool {
    field(record, name).and_then(|v| id_key(v).ok()).as_deref() == Some(key)
}

/// The index keys under which a field holding the id whose key is `key` may be stored: the
/// string, and the number when `key` is one's (a server's ids are numbers, an app's `<select>`
/// gives strings).
pub fn id_index_keys(key: &str) -> Vec<Value> {
    let text = Value::String(key.to_string());
    // serde_json's number parser, not `str::parse::<f64>` (whose code would add ~15 KB): a key
    // that is no JSON number is no id `id_key` writes either.
    let number = match serde_json::from_str::<Value>(key) {
        Ok(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
    .and_then(serde_json::Number::from_f64)
    .map(|n| match key.parse::<i64>() {
        Ok(i) => Value::from(i),
        Err(_) => Value::Number(n),
    })
    .filter(|n| id_key(n).ok().as_deref() == Some(key));
    [Some(text), number]
        .into_iter()
        .flatten()
        .filter_map(|v| index_key(Some(&v)))
        .collect()
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
    fn dotted_names_reach_nested_fields_unless_a_top_level_field_has_the_name() {
        let r = rec(json!({"meta": {"pinned": true, "n": {"x": 2}}, "a.b": 1, "a": {"b": 2}}));
        assert_eq!(field(&r, "meta.pinned"), Some(&json!(true)));
        assert_eq!(field(&r, "meta.n.x"), Some(&json!(2)));
        assert_eq!(field(&r, "a.b"), Some(&json!(1)));
        assert_eq!(field(&r, "meta.missing"), None);
        assert_eq!(field(&r, "meta.pinned.deeper"), None);
        assert_eq!(field(&r, "meta."), None);
        let q: Query = serde_json::from_value(json!({"where": {"meta.pinned": true}})).unwrap();
        assert!(q.matches(&r));
        assert!(!q.matches(&rec(json!({"meta": {"pinned": false}}))));
        let q: Query = serde_json::from_value(json!({"orderBy": "meta.n"})).unwrap();
        let out = q.finish(vec![
            rec(json!({"k": 1, "meta": {"n": 3}})),
            rec(json!({"k": 2, "meta": {"n": 1}})),
        ]);
        assert_eq!(out[0]["k"], 2);
    }

    #[test]
    fn ids_are_looked_up_as_strings_and_as_the_numbers_they_spell() {
        assert_eq!(id_index_keys("7"), vec![json!([3, "7"]), json!([2, 7])]);
        assert_eq!(
            id_index_keys("1.5"),
            vec![json!([3, "1.5"]), json!([2, 1.5])]
        );
        for not_a_number in ["tmp-a-0000000001", "07", "1e3", "NaN", "inf", "+7"] {
            assert_eq!(id_index_keys(not_a_number).len(), 1, "{not_a_number}");
        }
        let r = rec(json!({"folderId": 7}));
        assert!(holds_id(&r, "folderId", "7"));
        assert!(!holds_id(&r, "folderId", "8"));
    }

    #[test]
    fn unknown_option_is_an_error() {
        assert!(serde_json::from_value::<Query>(json!({"wher": {}})).is_err());
    }

    #[test]
    fn operators_are_refused_and_dollar_values_compared() {
        let q = |w: Value| Query {
            filter: rec(w),
            ..Query::default()
        };
        let e = q(json!({"n": {"$gt": 1}})).check().unwrap_err();
        assert!(e.message.contains("`$gt`"), "{e:?}");
        assert!(q(json!({"n": {"$between": [1, 2]}})).check().is_err());
        assert!(
            q(json!({"n": {"$in": [1], "x": 2}})).check().is_ok(),
            "a value"
        );
        assert!(q(json!({"n": {"$type": "T"}})).check().is_ok());
        assert!(q(json!({"meta": {"$ref": "#/x"}})).check().is_ok());
        assert!(q(json!({"n": 2})).check().is_ok());
    }
}
