//! `db.collection(name)`: local reads and writes of one collection.

use std::rc::Rc;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::core::config::CollectionConfig;
use crate::core::{Op, Query};

use super::convert::{js_error, to_id, to_record, value_to_js};
use super::ferry::Inner;
use serde_json::Value;

/// One collection of a store. Every method returns a Promise and may be called while another is
/// pending: the object holds only a shared handle, never a borrow across an await.
#[wasm_bindgen]
pub struct Collection {
    pub(crate) inner: Rc<Inner>,
    pub(crate) name: String,
}

impl Collection {
    fn write(&self, ops: Result<Vec<Op>, crate::core::Error>, many: bool) -> Promise {
        let inner = self.inner.clone();
        let name = self.name.clone();
        future_to_promise(async move {
            let ops = ops.map_err(js_error)?;
            let (records, changes) = inner.engine.write(&name, ops).await.map_err(js_error)?;
            inner.announce(&changes);
            inner.after_write();
            if many {
                // One JSON crossing for the whole array, not one per record; moved, not cloned.
                let all = records.into_iter().flatten().map(Value::Object).collect();
                return Ok(value_to_js(&Value::Array(all)));
            }
            Ok(records
                .into_iter()
                .next()
                .flatten()
                .map(|r| value_to_js(&Value::Object(r)))
                .unwrap_or(JsValue::UNDEFINED))
        })
    }
}

/// Checks what the engine's reads check first: the collection exists and the store is open.
/// Reads then go straight to IndexedDB ([`crate::web::IdbStorage::read_get`] and its siblings),
/// which hands its own objects back instead of decoding and re-encoding every record.
fn readable<'a>(inner: &'a Inner, name: &str) -> Result<&'a CollectionConfig, JsValue> {
    let cfg = inner.engine.collection(name).map_err(js_error)?;
    inner.check_open()?;
    Ok(cfg)
}

#[wasm_bindgen]
impl Collection {
    /// The collection's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Creates a record and queues it for the server. Without an id it gets a temporary client
    /// id (`tmp-…`) at once; the server's id replaces it after sync (the old id keeps working).
    #[wasm_bindgen(unchecked_return_type = "Promise<T>")]
    pub fn create(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RecordInput<T>")] record: JsValue,
    ) -> Promise {
        self.write(
            to_record(&record, "the record").map(|r| vec![Op::Create(r)]),
            false,
        )
    }

    /// Creates many records in one transaction: all of them or, on any error, none.
    #[wasm_bindgen(js_name = createMany, unchecked_return_type = "Promise<T[]>")]
    pub fn create_many(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RecordInput<T>[]")] records: JsValue,
    ) -> Promise {
        let ops = if Array::is_array(&records) {
            Array::from(&records)
                .iter()
                .enumerate()
                .map(|(i, r)| to_record(&r, &format!("record {i}")).map(Op::Create))
                .collect()
        } else {
            Err(crate::core::Error::validation(
                "createMany takes an array of records",
            ))
        };
        self.write(ops, true)
    }

    /// Merges `changes` into record `id` (a shallow merge: top-level fields are replaced).
    #[wasm_bindgen(unchecked_return_type = "Promise<T>")]
    pub fn update(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RecordId")] id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "RecordInput<T>")] changes: JsValue,
    ) -> Promise {
        let ops =
            to_id(&id).and_then(|id| Ok(vec![Op::Update(id, to_record(&changes, "the changes")?)]));
        self.write(ops, false)
    }

    /// Replaces record `id` with `record` (fields it lacks are removed; the id stays).
    #[wasm_bindgen(unchecked_return_type = "Promise<T>")]
    pub fn replace(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RecordId")] id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "RecordInput<T>")] record: JsValue,
    ) -> Promise {
        let ops =
            to_id(&id).and_then(|id| Ok(vec![Op::Replace(id, to_record(&record, "the record")?)]));
        self.write(ops, false)
    }

    /// Deletes record `id`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn delete(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RecordId")] id: JsValue,
    ) -> Promise {
        self.write(to_id(&id).map(|id| vec![Op::Delete(id)]), false)
    }

    /// The record `id`, or `undefined`. A temporary id still finds its record after sync.
    #[wasm_bindgen(unchecked_return_type = "Promise<T | undefined>")]
    pub fn get(&self, #[wasm_bindgen(unchecked_param_type = "RecordId")] id: JsValue) -> Promise {
        let inner = self.inner.clone();
        let name = self.name.clone();
        future_to_promise(async move {
            let id = to_id(&id).map_err(js_error)?;
            readable(&inner, &name)?;
            inner
                .engine
                .storage
                .read_get(&name, &id)
                .await
                .map_err(js_error)
        })
    }

    /// Every record, in id order (numeric ids by value, then string ids).
    #[wasm_bindgen(unchecked_return_type = "Promise<T[]>")]
    pub fn all(&self) -> Promise {
        let inner = self.inner.clone();
        let name = self.name.clone();
        future_to_promise(async move {
            let cfg = readable(&inner, &name)?;
            let idp = &cfg.id_property;
            inner
                .engine
                .storage
                .read_all(&name, idp)
                .await
                .map_err(js_error)
        })
    }

    /// The records matching `query`. A `where` on an indexed field reads through the index;
    /// otherwise the collection is scanned.
    #[wasm_bindgen(unchecked_return_type = "Promise<T[]>")]
    pub fn query(&self, #[wasm_bindgen(unchecked_param_type = "Query")] query: JsValue) -> Promise {
        let inner = self.inner.clone();
        let name = self.name.clone();
        future_to_promise(async move {
            undefined_in_where(&query).map_err(js_error)?;
            let q = to_record(&query, "the query").map_err(js_error)?;
            let q: Query = serde_json::from_value(serde_json::Value::Object(q)).map_err(|e| {
                let e = e
                    .to_string()
                    .replace("expected usize", "expected a whole number, 0 or more");
                js_error(crate::core::Error::validation(format!(
                    "the query is not valid: {e}"
                )))
            })?;
            let cfg = readable(&inner, &name)?;
            // A `refs` field matches by id (aliases followed, `7` and `"7"` alike): the
            // engine's query does that; plain ones take the direct read.
            if q.filter.keys().any(|f| cfg.refs.contains_key(f)) {
                let (hits, _) = inner.engine.query(&name, &q).await.map_err(js_error)?;
                let hits = hits.into_iter().map(Value::Object).collect();
                return Ok(value_to_js(&Value::Array(hits)));
            }
            q.check().map_err(js_error)?; // the engine's query checks it itself
            inner
                .engine
                .storage
                .read_query(cfg, &q)
                .await
                .map_err(js_error)
        })
    }

    /// Calls `listener` after every committed change of this collection (local or from the
    /// server). Returns the function that stops it.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn subscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(change: Change<T>) => void")] listener: Function,
    ) -> Result<JsValue, JsValue> {
        self.inner
            .listen("change", Some(self.name.clone()), listener)
    }

    /// Reads the collection from the server now and merges it (a `since` delta when the server
    /// gave a cursor). Records with pending local changes keep them. `{ full: true }` reads
    /// everything instead, as a first pull does: records the server no longer has (and that have
    /// no pending change) go, whatever the deltas said. (Its TypeScript signature, with the
    /// options optional, is in `types.rs`.)
    #[wasm_bindgen(skip_typescript)]
    pub fn pull(&self, options: Option<JsValue>) -> Promise {
        let inner = self.inner.clone();
        let name = self.name.clone();
        let full = options
            .and_then(|o| js_sys::Reflect::get(&o, &"full".into()).ok())
            .is_some_and(|v| v.is_truthy());
        future_to_promise(async move {
            inner.pull(&name, full).await.map_err(js_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// A `where` field whose value is `undefined` would vanish in JSON and match every record
/// (`where: { projectId: current?.id }` listing all projects' records): it is an error instead.
fn undefined_in_where(query: &JsValue) -> Result<(), crate::core::Error> {
    let Ok(filter) = js_sys::Reflect::get(query, &"where".into()) else {
        return Ok(());
    };
    if !filter.is_object() {
        return Ok(());
    }
    for key in js_sys::Object::keys(filter.unchecked_ref::<js_sys::Object>()).iter() {
        let undefined = js_sys::Reflect::get(&filter, &key).is_ok_and(|v| v.is_undefined());
        if undefined {
            return Err(crate::core::Error::validation(format!(
                "`where.{}` is undefined (use null to match records without the field)",
                key.as_string().unwrap_or_default()
            )));
        }
    }
    Ok(())
}
