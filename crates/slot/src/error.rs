//! The slot crate's error type.

use pg_walstream_transport::{DbError, SqlState, TransportError};

/// Why a replication command failed.
///
/// Server errors that callers commonly branch on are their own variants, decided by SQLSTATE
/// (never by message text); any other server error is [`SlotError::Server`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// The connected server cannot do what was asked; nothing was sent.
    #[error("{feature} needs PostgreSQL {needs}; server is {server}")]
    Unsupported {
        /// What was asked for, e.g. "failover slots".
        feature: &'static str,
        /// The first major version that has it.
        needs: u32,
        /// The server's version, as `major.minor`.
        server: String,
    },
    /// The options contradict each other (e.g. a snapshot action on a physical slot);
    /// nothing was sent.
    #[error("invalid replication command: {0}")]
    InvalidOptions(&'static str),
    /// A name (slot, publication, plugin, setting) that cannot be used safely.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What kind of name.
        kind: &'static str,
        /// The rejected name (never a secret).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The slot or publication already exists (SQLSTATE 42710).
    #[error("already exists: {}", .0.message)]
    AlreadyExists(Box<DbError>),
    /// The slot or publication does not exist (SQLSTATE 42704).
    #[error("does not exist: {}", .0.message)]
    DoesNotExist(Box<DbError>),
    /// The slot is in use by another process (SQLSTATE 55006).
    #[error("in use: {}", .0.message)]
    InUse(Box<DbError>),
    /// The user lacks the privilege (SQLSTATE 42501).
    #[error("insufficient privilege: {}", .0.message)]
    InsufficientPrivilege(Box<DbError>),
    /// Any other error reported by the server.
    #[error("server error: {}", .0.message)]
    Server(Box<DbError>),
    /// The connection failed.
    #[error("replication command failed on the connection")]
    Transport(#[source] TransportError),
    /// The server answered with a result of an unexpected shape.
    #[error("unexpected result of {command}: {reason}")]
    BadResult {
        /// The command.
        command: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl SlotError {
    /// The server error behind this one, if the server reported it.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            SlotError::AlreadyExists(error)
            | SlotError::DoesNotExist(error)
            | SlotError::InUse(error)
            | SlotError::InsufficientPrivilege(error)
            | SlotError::Server(error) => Some(error),
            SlotError::Transport(error) => error.db_error(),
            _ => None,
        }
    }

    /// The SQLSTATE of the server error behind this one.
    pub fn code(&self) -> Option<SqlState> {
        self.db_error().map(|error| error.code)
    }

    pub(crate) fn bad_result(command: &'static str, reason: impl Into<String>) -> Self {
        SlotError::BadResult {
            command,
            reason: reason.into(),
        }
    }
}

impl From<TransportError> for SlotError {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::Server(db) => match db.code {
                SqlState::DUPLICATE_OBJECT => SlotError::AlreadyExists(db),
                SqlState::UNDEFINED_OBJECT => SlotError::DoesNotExist(db),
                SqlState::OBJECT_IN_USE => SlotError::InUse(db),
                SqlState::INSUFFICIENT_PRIVILEGE => SlotError::InsufficientPrivilege(db),
                _ => SlotError::Server(db),
            },
            other => SlotError::Transport(other),
        }
    }
}
