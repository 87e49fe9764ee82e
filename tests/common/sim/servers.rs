//! The servers a simulation can run against: the reference protocol and its variants.

use crate::mem_server::MemServer;

/// How the shared server speaks: the reference protocol, or one of the variants PROTOCOL.md
/// allows (or that servers in the wild have), so that a survey can try Ferry against each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// Versions, ETags, idempotency keys, read envelopes with cursors and tombstones, batches.
    Reference,
    /// Single-record answers wrapped as `{"data": record}`.
    Wrapped,
    /// No batch endpoint (404), whatever the client is configured for.
    NoBatch,
    /// Reads answer a bare array and ignore `since`: every pull is a snapshot, deletions show
    /// only as absence.
    Snapshot,
    /// Last writer wins by `Ferry-Changed-At`; `If-Match` ignored.
    Lww,
    /// No versions and no ETags; `If-Match` ignored.
    Unversioned,
    /// Versions only as `ETag` headers, none in any body: a device that only pulled a record
    /// reads it before it writes it.
    EtagOnly,
    /// Fields the server sets and no client does: `updatedAt` at each write, `createdAt` kept
    /// by every update.
    Stamped,
    /// The reference protocol without `Idempotency-Key` (optional in PROTOCOL.md): a request
    /// sent again is applied again, unless its `If-Match` stops it. The network then never
    /// duplicates or holds back a `POST`, which would store a create twice whatever the client
    /// does. For surveys only (not in `server_variants`): a few seeds in a hundred still fail on
    /// what no client can tell without keys (an update whose answer was lost, overwritten
    /// since, is sent again as a conflict; a create whose answer was lost, deleted since by
    /// another device, shows in the list as a tombstone without its client id, and is sent
    /// again). Its first survey found one real bug (seed 34, fixed in `landed.rs`).
    Keyless,
    /// Written for Sencha's proxies: every 2xx JSON answer carries `"success": true` (a record
    /// as `{"success": true, "data": record}`), and a write it refuses, or a record it does
    /// not have, is answered `200 {"success": false, "message": …}` instead of a 422, 404 or
    /// 410. Lists are paged as `{success, total, data}`, the next page asked with `start`; no
    /// cursors, no batch endpoint.
    Sencha,
    /// Lists paged by offset, Feathers' way (`{total, limit, skip, data}`, the next page asked
    /// with `$skip`), without cursors: every pull is a snapshot read page by page, and a
    /// request held back on the network may arrive between two pages, shifting the list.
    Paged,
    /// Ids it gives are JSON numbers (`"id": 7`), as SQL-backed servers write them; the
    /// records' references to them (`todo`) stay what the client wrote.
    Numeric,
}

impl ServerKind {
    pub const ALL: [ServerKind; 12] = [
        ServerKind::Reference,
        ServerKind::Wrapped,
        ServerKind::NoBatch,
        ServerKind::Snapshot,
        ServerKind::Lww,
        ServerKind::Unversioned,
        ServerKind::EtagOnly,
        ServerKind::Stamped,
        ServerKind::Keyless,
        ServerKind::Sencha,
        ServerKind::Paged,
        ServerKind::Numeric,
    ];

    /// The kind named (case-insensitive, as printed by `{:?}`), for `FERRY_SIM_SERVER`.
    pub fn named(name: &str) -> Option<ServerKind> {
        Self::ALL
            .into_iter()
            .find(|k| format!("{k:?}").eq_ignore_ascii_case(name.trim()))
    }

    pub fn apply(self, s: &MemServer) {
        match self {
            ServerKind::Reference => {}
            ServerKind::Wrapped => s.set_wrap_records(true),
            ServerKind::NoBatch => s.set_batch(false),
            ServerKind::Snapshot => s.set_envelope(false),
            ServerKind::Lww => s.set_lww(true),
            ServerKind::Unversioned => s.set_versioned(false),
            ServerKind::EtagOnly => s.set_etag_only(true),
            ServerKind::Stamped => s.set_stamped(true),
            ServerKind::Keyless => s.set_idempotency(false),
            // The answers are reshaped on the way (`net.rs`, `as_sencha`).
            ServerKind::Sencha => {
                s.set_batch(false);
                s.set_envelope(false);
            }
            // Bare arrays, `since` ignored; the pages are cut on the way (`shapes.rs`).
            ServerKind::Paged => s.set_envelope(false),
            ServerKind::Numeric => s.set_numeric_ids(true),
        }
    }
}
