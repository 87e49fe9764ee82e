//! Listeners, and dispatching events to them once Rust holds no borrow (a listener may call
//! straight back into Ferry).

use std::cell::RefCell;

use js_sys::Function;
use wasm_bindgen::prelude::*;

/// Registered listeners: event type, optional collection filter, callback.
#[derive(Default)]
pub struct Listeners {
    next: u32,
    items: Vec<(u32, String, Option<String>, Function)>,
}

impl Listeners {
    /// Adds a listener and returns its handle.
    pub fn add(&mut self, kind: &str, collection: Option<String>, f: Function) -> u32 {
        self.next += 1;
        self.items
            .push((self.next, kind.to_string(), collection, f));
        self.next
    }
    /// Removes a listener.
    pub fn remove(&mut self, id: u32) {
        self.items.retain(|(i, ..)| *i != id);
    }
    /// Whether anyone listens to `kind`.
    pub fn has(&self, kind: &str) -> bool {
        self.items.iter().any(|(_, k, ..)| k == kind)
    }
    /// Drops every listener.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// Calls every listener of `kind` (and of `collection`, for collection listeners) with `payload`.
/// The list is copied first so no borrow is held while JS runs; a listener removed by an earlier
/// one is skipped, as `EventTarget` does. A throwing listener is reported on the console and does
/// not stop the others.
pub fn emit(
    listeners: &RefCell<Listeners>,
    kind: &str,
    collection: Option<&str>,
    payload: &JsValue,
) {
    let targets: Vec<(u32, Function)> = listeners
        .borrow()
        .items
        .iter()
        .filter(|(_, k, c, _)| k == kind && (c.is_none() || c.as_deref() == collection))
        .map(|(i, .., f)| (*i, f.clone()))
        .collect();
    for (id, f) in targets {
        if !listeners.borrow().items.iter().any(|(i, ..)| *i == id) {
            continue;
        }
        if let Err(e) = f.call1(&JsValue::NULL, payload) {
            web_sys::console::error_2(&JsValue::from_str("Ferry: a listener threw"), &e);
        }
    }
}
