//! What a sync step tells the app: record changes, id replacements, rejections and conflicts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::engine::Change;
use crate::core::mutation::{Entry, Kind};
use crate::core::record::Record;

/// A temporary id that became the server's id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdChange {
    /// The collection.
    pub collection: String,
    /// The temporary id.
    pub from: String,
    /// The server's id.
    pub to: Value,
}

/// A mutation the server refused for good, kept until the app retries or discards it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedItem {
    /// The mutation id.
    pub mutation_id: String,
    /// The collection.
    pub collection: String,
    /// The record's id.
    pub record_id: String,
    /// What the mutation did.
    pub kind: Kind,
    /// The server's status.
    pub status: u16,
    /// The server's answer body (text, cut at 16 KiB).
    pub body: String,
    /// The local record as it was before the rejection undid it (absent for a delete).
    pub record: Option<Record>,
    /// The fields an update changed.
    pub fields: Vec<String>,
    /// For an update: the values the rejection put back in its fields (null where it removed
    /// one). A retry makes the change again only in the fields that still hold them: a field
    /// edited since keeps the newer edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Record>,
    /// For a delete the app made by the record's temporary id: that id (a retry deletes by it
    /// again, so that it is forgotten once the delete is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_id: Option<String>,
    /// When it was rejected (ms since epoch).
    pub at: f64,
    /// The outbox entry as it was (internal; used by retry).
    #[serde(skip_serializing, default)]
    pub entry: Option<Entry>,
}

/// A conflict and how it was settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictEvent {
    /// The collection.
    pub collection: String,
    /// The record's id, as its record holds it (a number stays a number, as in a `Change`).
    pub id: Value,
    /// What the local mutation did.
    pub kind: Kind,
    /// The server's record the local change was made on.
    pub base: Option<Record>,
    /// The local record (absent when the local change was a delete).
    pub local: Option<Record>,
    /// The server's record (absent when the server deleted it).
    pub server: Option<Record>,
    /// What the record is now (absent when deleted).
    pub result: Option<Record>,
    /// Which policy decided.
    pub policy: String,
    /// Whether the local change is being sent again.
    pub resent: bool,
    /// Whether the conflict waits for a decision (`conflicts()`), rather than being settled.
    pub open: bool,
}

/// Where an open conflict stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConflictState {
    /// Waiting for the app's resolver (it is offered again after a reload).
    Open,
    /// The resolver answered "defer": it waits for `resolveConflict` or `discardConflict`.
    Deferred,
    /// The resolver threw or returned something unusable; `error` says what.
    Failed,
}
unit_enum_deserialize!(ConflictState {
    "open" => ConflictState::Open,
    "deferred" => ConflictState::Deferred,
    "failed" => ConflictState::Failed,
});

/// A conflict that waits for a decision, kept in storage until it is resolved or discarded.
/// Its record's later mutations wait behind it; the rest of the queue goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenConflict {
    /// The id to resolve it by (the mutation id of the change that met the conflict).
    pub conflict_id: String,
    /// The collection.
    pub collection: String,
    /// The record's id.
    pub record_id: String,
    /// What the local mutation did.
    pub kind: Kind,
    /// The server's record the local change was made on.
    pub base: Option<Record>,
    /// The local record when the conflict was met (absent for a local delete).
    pub local: Option<Record>,
    /// The server's record (absent when the server deleted it).
    pub server: Option<Record>,
    /// The server's version of `server`.
    pub server_version: Option<String>,
    /// Where it stands.
    pub state: ConflictState,
    /// Why the resolver failed, if it did.
    pub error: Option<String>,
    /// When it was met (ms since epoch).
    pub at: f64,
    /// The outbox position of the mutation (internal).
    #[serde(default)]
    pub seq: u64,
}

/// How the app settles an open conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// This record is the result: it is sent over the server's version (or created again).
    Record(Record),
    /// The record is deleted (on the server too, if it is still there).
    Delete,
    /// The local change is dropped: the server's state stands.
    Discard,
}

/// Everything a sync step changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Records changed by the server's answers or a pull.
    pub changes: Vec<Change>,
    /// Temporary ids replaced.
    pub ids: Vec<IdChange>,
    /// Mutations moved to the rejected list.
    pub rejected: Vec<RejectedItem>,
    /// Conflicts met and settled.
    pub conflicts: Vec<ConflictEvent>,
    /// Mutations acknowledged.
    pub acked: usize,
    /// HTTP requests made.
    pub requests: usize,
    /// The keys under which its settled conflicts wait to be told (`untold.rs`): dropped once
    /// the report's events went out.
    #[serde(skip)]
    pub untold: Vec<String>,
}

impl Report {
    /// Appends another step's report.
    pub fn extend(&mut self, other: Report) {
        self.changes.extend(other.changes);
        self.ids.extend(other.ids);
        self.rejected.extend(other.rejected);
        self.conflicts.extend(other.conflicts);
        self.acked += other.acked;
        self.requests += other.requests;
        self.untold.extend(other.untold);
    }
}
