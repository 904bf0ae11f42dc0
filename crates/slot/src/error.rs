//! The slot crate's error type.

use pg_walstream_transport::{DbError, ErrorClass, SqlState, TransportError, classify_sqlstate};

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

    /// Whether the command may succeed on a new connection; see [`classify`](Self::classify).
    pub fn is_transient(&self) -> bool {
        self.classify() == ErrorClass::Transient
    }

    /// The workspace's one classification (see
    /// [`classify_sqlstate`](pg_walstream_transport::classify_sqlstate)): a server error by its
    /// SQLSTATE — so [`InUse`](Self::InUse) (55006, a slot still held by a walsender that has
    /// not noticed its connection is gone) and a 57P01 during `IDENTIFY_SYSTEM` are transient —,
    /// a connection failure as [`TransportError::classify`] says; requests this crate refused
    /// before sending and malformed answers are permanent.
    ///
    /// ```
    /// use pg_walstream_slot::SlotError;
    /// use pg_walstream_transport::{ErrorClass, TransportError};
    /// let error = SlotError::from(TransportError::Closed);
    /// assert_eq!(error.classify(), ErrorClass::Transient);
    /// assert!(!SlotError::InvalidOptions("contradiction").is_transient());
    /// ```
    pub fn classify(&self) -> ErrorClass {
        match self {
            SlotError::Transport(error) => error.classify(),
            other => other
                .code()
                .map_or(ErrorClass::Permanent, classify_sqlstate),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> SlotError {
        let body = format!("SFATAL\0C{code}\0Mx\0\0");
        let db = DbError::parse(b'E', body.as_bytes()).expect("valid error body");
        SlotError::from(TransportError::Server(Box::new(db)))
    }

    #[test]
    fn server_errors_follow_the_sqlstate_table() {
        let table = [
            ("57P01", true),
            ("57P02", true),
            ("57P03", true),
            ("08006", true),
            ("53300", true),
            ("55006", true),
            ("28P01", false),
            ("28000", false),
            ("42704", false),
            ("42710", false),
            ("42501", false),
            ("55000", false),
            ("0A000", false),
        ];
        for (code, transient) in table {
            let error = server(code);
            assert_eq!(error.is_transient(), transient, "{code}: {error:?}");
            let state = SqlState::from_code(code).expect("well-formed");
            assert_eq!(error.classify(), classify_sqlstate(state), "{code}");
        }
        assert!(matches!(server("55006"), SlotError::InUse(_)));
        assert!(matches!(server("57P01"), SlotError::Server(_)));
    }

    #[test]
    fn other_kinds() {
        assert!(SlotError::from(TransportError::Closed).is_transient());
        assert!(!SlotError::from(TransportError::InvalidState("x")).is_transient());
        assert!(!SlotError::InvalidOptions("x").is_transient());
        assert!(!SlotError::bad_result("IDENTIFY_SYSTEM", "no rows").is_transient());
        let unsupported = SlotError::Unsupported {
            feature: "failover slots",
            needs: 17,
            server: "16.4".into(),
        };
        assert!(!unsupported.is_transient());
    }
}
