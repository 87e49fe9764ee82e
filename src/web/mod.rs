//! Browser adapters behind the core's traits: IndexedDB storage ([`IdbStorage`]) and the host
//! environment ([`BrowserEnv`]). Compiled for `wasm32` only.

pub mod env;
pub mod idb;

pub use env::BrowserEnv;
pub use idb::IdbStorage;
pub mod js;
pub mod transport;

pub use transport::FetchTransport;
