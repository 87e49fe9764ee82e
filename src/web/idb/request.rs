//! IndexedDB requests awaited from Rust, and the decoding of what they answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::Value;
use wasm_bindgen::JsValue;
use web_sys::{IdbRequest, IdbRequestReadyState, IdbTransaction};

use super::{from_js, idb_error, key_from_json, Waiters};
use crate::core::error::{Error, Result};
use crate::core::storage::Key;
use crate::web::js::ferry_record_pairs;

/// The error of a failed call or request: the transaction's own error when one aborted it (the
/// cause, such as the `ConstraintError` behind a later `AbortError`), else `e`'s.
pub(super) fn cause(tx: &IdbTransaction, e: &JsValue) -> Error {
    match tx.error() {
        Some(cause) => idb_error(&cause),
        None => idb_error(e),
    }
}

/// `getAllRecords`' answer as pairs, decoded in one crossing.
pub(super) fn records_of(records: &JsValue) -> Result<Vec<(Key, Value)>> {
    let text = ferry_record_pairs(records)
        .map_err(|_| Error::storage("IndexedDB: a stored value is not JSON"))?;
    // Two arrays rather than pairs: `Vec<Value>` is the one shape the decoder already knows.
    let halves: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
        Error::storage(format!(
            "IndexedDB: a stored value could not be decoded: {e}"
        ))
    })?;
    match <[Value; 2]>::try_from(halves) {
        Ok([Value::Array(keys), Value::Array(values)]) if keys.len() == values.len() => keys
            .into_iter()
            .zip(values)
            .map(|(k, v)| Ok((key_from_json(k)?, v)))
            .collect(),
        _ => Err(Error::storage(
            "IndexedDB: getAllRecords answered something else",
        )),
    }
}

pub(super) async fn pairs_of(keys: Request<'_>, values: Request<'_>) -> Result<Vec<(Key, Value)>> {
    let keys: Vec<Value> = from_js(&keys.await?)?;
    let values: Vec<Value> = from_js(&values.await?)?;
    if keys.len() != values.len() {
        return Err(Error::storage("IndexedDB: getAllKeys and getAll disagree"));
    }
    keys.into_iter()
        .zip(values)
        .map(|(k, v)| Ok((key_from_json(k)?, v)))
        .collect()
}

/// Whether `req` failed because its key was taken.
pub(super) fn is_constraint(req: &IdbRequest) -> bool {
    matches!(req.error(), Ok(Some(e)) if e.name() == "ConstraintError")
}

/// Waits for the answers of adds that fail alone (`ferry_add_all`): for each, whether it wrote.
/// A taken key is `false`; any other failure is the error.
pub(super) async fn wrote_each(added: Vec<Request<'_>>) -> Result<Vec<bool>> {
    let mut wrote = Vec::with_capacity(added.len());
    for req in added {
        let sys = req.req.clone();
        wrote.push(match req.await {
            Ok(_) => true,
            Err(_) if is_constraint(&sys) => false,
            Err(e) => return Err(e),
        });
    }
    Ok(wrote)
}

/// One request awaited: ready once IndexedDB fired `success` or `error` on it.
pub(super) struct Request<'t> {
    pub(super) req: IdbRequest,
    pub(super) waiters: &'t Waiters,
    pub(super) tx: &'t IdbTransaction,
    pub(super) done: bool,
}

impl Future for Request<'_> {
    type Output = Result<JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.req.ready_state() != IdbRequestReadyState::Done {
            self.waiters.add(cx.waker());
            return Poll::Pending;
        }
        self.done = true;
        Poll::Ready(match self.req.error() {
            Ok(None) => self.req.result().map_err(|e| idb_error(&e)),
            Ok(Some(e)) => Err(cause(self.tx, &e)),
            Err(e) => Err(cause(self.tx, &e)),
        })
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.req.set_onsuccess(None);
            self.req.set_onerror(None);
        }
    }
}
