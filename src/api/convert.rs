//! Values across the JS boundary. Records cross as JSON text: one `JSON.stringify` (validating,
//! in JS) and one `serde_json` parse, which beats walking objects field by field from Rust.

use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::core::record::{expect_object, Record};
use crate::core::{Error, ErrorKind};
use crate::web::js::ferry_stringify;

/// A JS value that must be a plain JSON object (a record, a patch, options).
pub fn to_record(v: &JsValue, what: &str) -> Result<Record, Error> {
    let text = ferry_stringify(v).map_err(|e| {
        let msg = js_sys::Error::from(e)
            .message()
            .as_string()
            .unwrap_or_default();
        if msg.starts_with("must be") {
            // The value itself is not an object: "the query must be a plain object, got null".
            return Error::validation(format!("{what} {msg}"));
        }
        let msg = if msg.contains("circular") {
            "it refers to itself (a cycle)".to_string()
        } else {
            msg
        };
        Error::validation(format!("{what}: {msg}"))
    })?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| Error::validation(format!("{what}: {e}")))?;
    expect_object(v, what)
}

/// Any serialisable value as a plain JS value (maps become objects).
pub fn to_js<T: Serialize + ?Sized>(v: &T) -> JsValue {
    // Through a `Value`: the text serializer is then instantiated for `Value` alone (the idb
    // layer has it already), not once per returned type.
    match serde_json::to_value(v) {
        Ok(v) => value_to_js(&v),
        Err(_) => JsValue::UNDEFINED,
    }
}

/// A JSON value as a plain JS value (one `JSON.parse`).
pub fn value_to_js(v: &Value) -> JsValue {
    match serde_json::to_string(v) {
        Ok(text) => js_sys::JSON::parse(&text).unwrap_or(JsValue::UNDEFINED),
        Err(_) => JsValue::UNDEFINED,
    }
}

/// A record id from JS: a string or a finite number.
pub fn to_id(v: &JsValue) -> Result<String, Error> {
    if let Some(s) = v.as_string() {
        return crate::core::record::id_key(&Value::String(s));
    }
    if v.as_f64().is_some_and(f64::is_finite) {
        // Read as a record's own id reaches the engine (JSON text, as JS writes the number), so
        // that `get(1e16)` finds the record created with `{id: 1e16}`.
        let text = js_sys::JSON::stringify(v).ok().and_then(|t| t.as_string());
        if let Some(Ok(value)) = text.map(|t| serde_json::from_str::<Value>(&t)) {
            return crate::core::record::id_key(&value);
        }
    }
    Err(Error::validation(
        "an id must be a non-empty string or a finite number",
    ))
}

/// An engine error as a JS `Error` whose `name` is the stable kind name.
pub fn js_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name(e.kind.name());
    if let Some(status) = e.status {
        // Best effort: the error is thrown either way.
        let _ = js_sys::Reflect::set(&err, &"status".into(), &status.into());
    }
    err.into()
}

/// Maps a JS exception (a DOMException from storage, a thrown value) into an engine error.
pub fn from_js_error(e: JsValue, kind: ErrorKind) -> Error {
    let msg = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| format!("{}: {}", String::from(e.name()), String::from(e.message())))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| describe(&e));
    Error::new(kind, msg)
}

/// A JS value as a message shows it: JSON where it has one (`42`, `{"a":1}`), else its type
/// (`undefined`, a function), never wasm-bindgen's `JsValue(...)` debug form.
pub fn describe(v: &JsValue) -> String {
    if v.is_undefined() {
        return "undefined".into();
    }
    match js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()) {
        Some(text) => text.chars().take(200).collect(),
        None => format!("a {}", v.js_typeof().as_string().unwrap_or_default()),
    }
}
