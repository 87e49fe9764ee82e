//! The read fast path: `get`, `all` and `query` hand IndexedDB's own objects back to the app.
//!
//! The engine's reads decode every row into `serde_json` values (`JSON.stringify`, then a parse in
//! Rust) and the API encodes the records again (`JSON.parse`), two conversions per record that a
//! read does not need: a stored row is `{ d, ix, v, b }` and `d` is the record exactly as the app
//! reads it. These reads run in a few lines of JavaScript over the structured clones IndexedDB
//! returns, in a read-only transaction over the stores they need. A query still picks its index
//! in Rust ([`Query::index_lookup`]) and filters, sorts and cuts in JS with the exact semantics of
//! [`Query::matches`] and [`Query::finish`] (null matches a missing field; missing and null <
//! booleans < numbers < strings < arrays = objects; strings by code point, as Rust orders them;
//! ties keep key order).

use js_sys::Promise;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::IdbDatabase;

use super::{idb_error, store_name, IdbStorage};
use crate::core::config::CollectionConfig;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::query::Query;
use crate::core::record::id_key;
use crate::core::storage::{field_index, Table};

#[wasm_bindgen(inline_js = r#"
function tx(db, stores) { return db.transaction(stores, 'readonly'); }
function req(t, r, then, fail) {
  // A throw in `then` (a damaged row) rejects the read rather than leaving it pending for ever.
  r.onsuccess = () => { try { then(r.result); } catch (e) { fail(e); } };
  r.onerror = (e) => { e.preventDefault(); fail(t.error || r.error); };
}
// The record a stored row holds; a row that holds none (written by something else than Ferry,
// or damaged) is an error naming its store, not a record of another shape.
function row(r, store) {
  const d = r !== null && typeof r === 'object' ? r.d : undefined;
  if (d === null || typeof d !== 'object' || Array.isArray(d)) {
    const what = String(JSON.stringify(r)).slice(0, 80);
    throw new Error(`a row of ${store} is damaged: it holds no record (${what})`);
  }
  return d;
}
// A ghost (`ghost` in record.rs: `{ g }` without `d`) holds an id in use and no record.
const ghost = (r) => r !== null && typeof r === 'object' && r.g !== undefined && r.d === undefined;
function data(rows, store) {
  const out = [];
  for (let i = 0; i < rows.length; i++) if (!ghost(rows[i])) out.push(row(rows[i], store));
  return out;
}
export function ferry_read_get(db, store, c, id) {
  return new Promise((ok, fail) => {
    const t = tx(db, [store, 'aliases', 'state']);
    const recs = t.objectStore(store), als = t.objectStore('aliases'), st = t.objectStore('state');
    let steps = 0;
    // A temporary id that became a server id (maybe more than once) finds the record: at most
    // 8 steps along the alias chain, as the engine's `resolve`.
    const follow = (next) => {
      if (typeof next !== 'string') return ok(undefined);
      steps++;
      req(t, recs.get(next), (r) => r !== undefined && !ghost(r) ? ok(row(r, store)) : steps < 8 ? alias(next) : ok(undefined), fail);
    };
    const single = (k) => req(t, als.get([c, k]), follow, fail);
    // Ferry's temporary ids have theirs in a bucket of a hundred in `state`, which wins over
    // one under the id's own key (written before buckets): `bucket_key` in tx/aliases.rs.
    const alias = (k) => {
      const m = /^tmp-(.+)-(\d{10,})$/.exec(k);
      if (!m) return single(k);
      req(t, st.get(`aliases:${k.slice(0, -2)}:${c}`), (b) => {
        const next = b !== null && typeof b === 'object' ? b[k] : undefined;
        typeof next === 'string' ? follow(next) : single(k);
      }, fail);
    };
    req(t, recs.get(id), (r) => r !== undefined && !ghost(r) ? ok(row(r, store)) : alias(id), fail);
  });
}
// Rows are keyed by the id's text (10 before 9): numeric ids go first, by value, as the engine's
// `in_id_order`; a stable sort keeps string ids in key order.
function inIdOrder(ds, idp) {
  const num = (d) => typeof field(d, idp) === 'number';
  if (!ds.some(num)) return ds;
  return ds.sort((a, b) => {
    const x = num(a), y = num(b);
    if (x && y) return a[idp] < b[idp] ? -1 : a[idp] > b[idp] ? 1 : 0;
    return x === y ? 0 : x ? -1 : 1;
  });
}
export function ferry_read_all(db, store, idp) {
  return new Promise((ok, fail) => {
    const t = tx(db, store);
    req(t, t.objectStore(store).getAll(), (rows) => ok(inIdOrder(data(rows, store), idp)), fail);
  });
}
const own = Object.prototype.hasOwnProperty;
// A top-level field, else (a dotted name) the nested one its path leads to: `query.rs` `field`.
const field = (d, f) => {
  if (own.call(d, f)) return d[f];
  if (!f.includes('.')) return undefined;
  let v = d;
  for (const step of f.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !own.call(v, step)) return undefined;
    v = v[step];
  }
  return v;
};
function same(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!own.call(b, k) || !same(a[k], b[k])) return false;
  return true;
}
function rank(v) {
  if (v === undefined || v === null) return 0;
  switch (typeof v) { case 'boolean': return 1; case 'number': return 2; case 'string': return 3; }
  return Array.isArray(v) ? 4 : 5;
}
// Code point order (UTF-8 byte order, as Rust compares strings), not UTF-16 code unit order.
function cmpStr(x, y) {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    let a = x.charCodeAt(i), b = y.charCodeAt(i);
    if (a !== b) {
      if (a >= 0xd800 && b >= 0xd800) {
        a += a < 0xe000 ? 0x2000 : -0x800;
        b += b < 0xe000 ? 0x2000 : -0x800;
      }
      return a < b ? -1 : 1;
    }
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}
export function ferry_compare(a, b) {
  const ta = typeof a;
  if (ta === typeof b && a !== null && b !== null) {
    if (ta === 'boolean') return a === b ? 0 : a ? 1 : -1;
    if (ta === 'number') return a < b ? -1 : a > b ? 1 : 0;
    if (ta === 'string') return a === b ? 0 : cmpStr(a, b);
  }
  return rank(a) - rank(b);
}
export function ferry_finish(ds, where, orderBy, desc, offset, limit) {
  const keys = Object.keys(where);
  let hits = ds;
  if (keys.length) {
    hits = [];
    for (const d of ds) {
      let ok = true;
      for (const k of keys) {
        const got = field(d, k), want = where[k];
        if (!(got === undefined ? want === null : same(got, want))) { ok = false; break; }
      }
      if (ok) hits.push(d);
    }
  }
  if (orderBy !== undefined) {
    const sign = desc ? -1 : 1;
    const keyed = hits.map((d, i) => [field(d, orderBy), d]);
    keyed.sort((a, b) => sign * ferry_compare(a[0], b[0]));
    hits = keyed.map((x) => x[1]);
  } else if (desc) {
    hits.reverse();
  }
  const end = limit === undefined ? hits.length : offset + limit;
  return offset === 0 && end >= hits.length ? hits : hits.slice(offset, end);
}
export function ferry_read_query(db, store, idp, index, key, where, orderBy, desc, offset, limit) {
  return new Promise((ok, fail) => {
    const t = tx(db, store);
    const s = t.objectStore(store);
    const r = index === undefined ? s.getAll() : s.index(index).getAll(key);
    req(t, r, (rows) => ok(ferry_finish(inIdOrder(data(rows, store), idp), where, orderBy, desc, offset, limit)), fail);
  });
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn ferry_read_get(db: &IdbDatabase, store: &str, c: &str, id: &str)
        -> Result<Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn ferry_read_all(db: &IdbDatabase, store: &str, idp: &str) -> Result<Promise, JsValue>;
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(catch)]
    fn ferry_read_query(
        db: &IdbDatabase,
        store: &str,
        idp: &str,
        index: Option<String>,
        key: &JsValue,
        filter: &JsValue,
        order_by: Option<String>,
        desc: bool,
        offset: f64,
        limit: Option<f64>,
    ) -> Result<Promise, JsValue>;
    /// The order of `orderBy` ([`crate::core::query::compare`]) over JS values, for tests.
    #[cfg(test)]
    fn ferry_compare(a: &JsValue, b: &JsValue) -> f64;
    /// Filters, sorts and cuts `records` as [`Query::matches`] and [`Query::finish`].
    #[wasm_bindgen(catch)]
    fn ferry_finish(
        records: &JsValue,
        filter: &JsValue,
        order_by: Option<String>,
        desc: bool,
        offset: f64,
        limit: Option<f64>,
    ) -> Result<JsValue, JsValue>;
}

impl IdbStorage {
    fn closed_error(&self) -> Result<()> {
        match self.closed.get() {
            Some(why) => Err(Error::new(ErrorKind::Closed, why.clone())),
            None => Ok(()),
        }
    }

    async fn answer(&self, p: std::result::Result<Promise, JsValue>) -> Result<JsValue> {
        JsFuture::from(p.map_err(|e| idb_error(&e))?)
            .await
            .map_err(|e| idb_error(&e))
    }

    /// The record `id` of collection `c` as IndexedDB returns it, following a temporary id to
    /// its server id; `undefined` when there is none.
    pub async fn read_get(&self, c: &str, id: &str) -> Result<JsValue> {
        self.closed_error()?;
        let store = store_name(Table::Records(c));
        self.answer(ferry_read_get(&self.raw, &store, c, id)).await
    }

    /// Every record of `c`, in id order (`idp` its id field), as a JS array.
    pub async fn read_all(&self, c: &str, idp: &str) -> Result<JsValue> {
        self.closed_error()?;
        let store = store_name(Table::Records(c));
        self.answer(ferry_read_all(&self.raw, &store, idp)).await
    }

    /// The records of `c` that match `q`, as a JS array, in id order before `q` sorts them;
    /// `cfg` tells its id field and indexed fields (the first `where` field among them is read
    /// through its index).
    pub async fn read_query(&self, cfg: &CollectionConfig, q: &Query) -> Result<JsValue> {
        let (c, indexes) = (cfg.name.as_str(), &cfg.indexes);
        self.closed_error()?;
        let store = store_name(Table::Records(c));
        if let Some(id) = q.filter.get(&cfg.id_property) {
            // By id, as `get` finds it: `7` and `"7"` alike, a temporary id after its rename.
            let mut rest = q.filter.clone();
            rest.remove(&cfg.id_property);
            let found = match id_key(id) {
                Ok(key) => self.read_get(c, &key).await?,
                Err(_) => JsValue::UNDEFINED,
            };
            let found = if found.is_undefined() {
                js_sys::Array::new()
            } else {
                js_sys::Array::of1(&found)
            };
            return ferry_finish(
                &found,
                &super::to_js(&Value::Object(rest))?,
                q.order_by.clone(),
                q.desc,
                q.offset as f64,
                q.limit.map(|l| l as f64),
            )
            .map_err(|e| idb_error(&e));
        }
        let (index, key) = match q.index_lookup(indexes) {
            Some((f, k)) => (Some(field_index(f)), super::to_js(&k)?),
            None => (None, JsValue::UNDEFINED),
        };
        let filter = super::to_js(&Value::Object(q.filter.clone()))?;
        let p = ferry_read_query(
            &self.raw,
            &store,
            &cfg.id_property,
            index,
            &key,
            &filter,
            q.order_by.clone(),
            q.desc,
            q.offset as f64,
            q.limit.map(|l| l as f64),
        );
        self.answer(p).await
    }
}

#[cfg(test)]
mod tests {
    //! The JS filter and sort against the engine's own, on values where they could disagree.
    use super::*;
    use crate::core::query::compare;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    fn values() -> Vec<Value> {
        vec![
            json!(null),
            json!(false),
            json!(true),
            json!(-1.5),
            json!(0),
            json!(2),
            json!(1e21),
            json!(""),
            json!("a"),
            json!("ab"),
            json!("B"),
            json!("\u{ffff}"),
            json!("\u{10000}"),
            json!("\u{e000}x"),
            json!([1, 2]),
            json!([]),
            json!({"a": 1, "b": [true]}),
            json!({"b": [true], "a": 1}),
            json!({}),
        ]
    }

    fn js(v: &Value) -> JsValue {
        super::super::to_js(v).unwrap()
    }

    #[wasm_bindgen_test]
    fn compare_agrees_with_the_engine() {
        let vs = values();
        for a in &vs {
            for b in &vs {
                let want = compare(Some(a), Some(b)) as i8 as f64;
                let got = ferry_compare(&js(a), &js(b));
                let got = if got == 0.0 { 0.0 } else { got.signum() };
                assert_eq!(got, want, "compare({a}, {b})");
            }
        }
        assert_eq!(ferry_compare(&JsValue::UNDEFINED, &js(&json!(null))), 0.0);
    }

    #[wasm_bindgen_test]
    fn finish_agrees_with_the_engine() {
        let vs = values();
        let records: Vec<Value> = (0..vs.len() * 2)
            .map(|i| {
                let mut r = json!({"i": i, "k": vs[i % vs.len()], "m": vs[(i * 7) % vs.len()]});
                if i % 5 == 0 {
                    r.as_object_mut().unwrap().remove("k");
                }
                r
            })
            .collect();
        let mut queries = vec![
            json!({}),
            json!({"desc": true}),
            json!({"offset": 3, "limit": 4}),
        ];
        for v in vs.iter().take(19) {
            queries.push(json!({"where": {"k": v}}));
            queries.push(json!({"where": {"k": v, "m": v}, "orderBy": "i", "desc": true}));
        }
        for f in ["k", "m", "missing"] {
            queries.push(json!({"orderBy": f}));
            queries.push(json!({"orderBy": f, "desc": true, "offset": 2, "limit": 30}));
            queries.push(json!({"orderBy": f, "limit": 0}));
        }
        for q in queries {
            let query: Query = serde_json::from_value(q.clone()).unwrap();
            let recs: Vec<_> = records
                .iter()
                .map(|r| r.as_object().unwrap().clone())
                .filter(|r| query.matches(r))
                .collect();
            let want = Value::Array(query.finish(recs).into_iter().map(Value::Object).collect());
            let got = ferry_finish(
                &js(&Value::Array(records.clone())),
                &js(&Value::Object(query.filter.clone())),
                query.order_by.clone(),
                query.desc,
                query.offset as f64,
                query.limit.map(|l| l as f64),
            )
            .unwrap();
            let got: Value =
                serde_json::from_str(&String::from(js_sys::JSON::stringify(&got).unwrap()))
                    .unwrap();
            assert_eq!(got, want, "query {q}");
        }
    }
}
