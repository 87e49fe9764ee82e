//! Errors of the engine. Each kind has a stable name that the JS layer turns into `Error.name`,
//! so apps can branch on it without parsing messages.

use std::fmt;

/// What went wrong, by kind. The names are part of the public API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller passed something Ferry cannot store or understand.
    Validation,
    /// No record (or rejected mutation, or conflict) with that id.
    NotFound,
    /// The id is already taken by another record.
    Constraint,
    /// The collection was not declared when the store was opened.
    UnknownCollection,
    /// The store was closed.
    Closed,
    /// The storage backend failed (IndexedDB error, aborted transaction).
    Storage,
    /// The storage backend is out of space.
    Quota,
    /// The browser is offline, so nothing can be sent now.
    Offline,
    /// A request failed at the network level or the server answered with an error.
    Network,
    /// The server's answer could not be understood.
    Protocol,
    /// A write conflicts with the server's state and was not resolved.
    Conflict,
}

impl ErrorKind {
    /// The stable name, used as the JS `Error.name`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Validation => "ValidationError",
            ErrorKind::NotFound => "NotFoundError",
            ErrorKind::Constraint => "ConstraintError",
            ErrorKind::UnknownCollection => "UnknownCollectionError",
            ErrorKind::Closed => "ClosedError",
            ErrorKind::Storage => "StorageError",
            ErrorKind::Quota => "QuotaExceededError",
            ErrorKind::Offline => "OfflineError",
            ErrorKind::Network => "NetworkError",
            ErrorKind::Protocol => "ProtocolError",
            ErrorKind::Conflict => "ConflictError",
        }
    }
}

/// An engine error: a kind and a message meant for a developer reading the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The kind, which decides the JS error name.
    pub kind: ErrorKind,
    /// What happened, in words.
    pub message: String,
    /// The status of the server's answer, when the error is one (a read answered 401, say).
    pub status: Option<u16>,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
        }
    }
    /// A [`ErrorKind::Network`] error for a server's answer of `status`.
    pub fn answered(status: u16, message: impl Into<String>) -> Self {
        Error {
            status: Some(status),
            ..Self::new(ErrorKind::Network, message)
        }
    }
    /// A [`ErrorKind::Validation`] error.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
    /// A [`ErrorKind::Storage`] error.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Storage, message)
    }
    /// A [`ErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        // Only stored data is decoded with serde in the engine, so a failure means damaged storage.
        Error::storage(format!("stored data could not be decoded: {e}"))
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
