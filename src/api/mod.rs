//! The JS-facing surface (`#[wasm_bindgen]`): the only place that knows `JsValue`.

pub mod auth;
pub mod collection;
pub mod convert;
pub mod driver;
pub mod events;
pub mod ferry;
mod offline;
pub mod resolver;
pub mod tabs;
pub mod types;

pub use collection::Collection;
pub use ferry::Ferry;
