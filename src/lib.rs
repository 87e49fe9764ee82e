//! Ferry: an offline-first record store for browser apps. Records live in IndexedDB; every change
//! also goes into a persistent outbox in the same transaction, and crosses to a REST server
//! (PROTOCOL.md) when the connection returns.
//!
//! `core` is the engine, pure Rust and tested natively; `web` adapts it to the browser
//! (IndexedDB, fetch, connectivity, tabs); `api` is the JS surface.
#![deny(missing_docs)]

#[cfg(target_arch = "wasm32")]
pub mod api;
pub mod core;
#[cfg(target_arch = "wasm32")]
pub mod web;
