//! The browser's clock and randomness, as the engine's [`Env`]. Works in a window and in workers:
//! everything is looked up on `globalThis`, never through `window`.

use wasm_bindgen::{JsCast, JsValue};

use crate::core::clock::Env;

/// Time from `Date.now()`; randomness from `crypto.getRandomValues` (or `Math.random` where the
/// global scope has no `crypto`).
#[derive(Debug, Clone)]
pub struct BrowserEnv {
    crypto: Option<web_sys::Crypto>,
}

impl BrowserEnv {
    /// The environment of the current global scope (window, dedicated/shared/service worker).
    pub fn new() -> Self {
        let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
            .ok()
            .and_then(|c| c.dyn_into::<web_sys::Crypto>().ok());
        BrowserEnv { crypto }
    }
}

impl Default for BrowserEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for BrowserEnv {
    fn warn(&self, message: &str) {
        web_sys::console::warn_1(&wasm_bindgen::JsValue::from_str(&format!(
            "Ferry: {message}"
        )));
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn random_u32(&self) -> u32 {
        if let Some(crypto) = &self.crypto {
            let mut bytes = [0u8; 4];
            if crypto.get_random_values_with_u8_array(&mut bytes).is_ok() {
                return u32::from_le_bytes(bytes);
            }
        }
        // In [0, 1), so the product is below 2^32 and the cast never saturates.
        (js_sys::Math::random() * 4_294_967_296.0) as u32
    }
}
