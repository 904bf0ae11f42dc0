//! The stream crate's error type.

use std::fmt;
use std::time::Duration;

use pg_walstream_codec::{DecodeError, Lsn, Oid};
use pg_walstream_slot::SlotError;
use pg_walstream_transport::{DbError, ErrorClass, SqlState, TransportError};

use crate::config::ConfigError;

/// Why a replication stream failed or could not start.
///
/// Every error ends the stream: a frame that does not decode, data for a relation that was
/// never described and a silent server are never skipped or retried internally. Use
/// [`Error::is_transient`] to decide whether reconnecting (from the flushed position) may help.
///
/// `Display` includes the essential text of the whole cause chain — for a server error its
/// severity, message, detail, hint and SQLSTATE — so logging `{error}` is enough; `source()`
/// still returns the cause. [`code`](Self::code) and [`as_db_error`](Self::as_db_error) give
/// the server's error itself.
///
/// ```
/// use pg_walstream_stream::Error;
/// use pg_walstream_transport::{DbError, SqlState, TransportError};
///
/// let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"repl\"\0\0";
/// let server = DbError::parse(b'E', body).unwrap();
/// let error = Error::from(TransportError::Server(Box::new(server)));
/// assert_eq!(error.code(), Some(SqlState::INVALID_PASSWORD));
/// assert_eq!(error.as_db_error().unwrap().message, "password authentication failed for user \"repl\"");
/// assert_eq!(
///     error.to_string(),
///     "replication connection failed: server error: FATAL: password authentication failed \
///      for user \"repl\" (SQLSTATE 28P01)"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work with this server; nothing was started.
    #[error("invalid stream configuration: {}", Chain(.0))]
    Config(#[from] ConfigError),
    /// A CopyData frame from the server could not be decoded.
    #[error("undecodable replication frame after WAL position {after}: {}", Chain(.source))]
    Decode {
        /// The last WAL position received before the bad frame.
        after: Lsn,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },
    /// A change refers to a relation OID that no Relation message described.
    #[error("change at {lsn} refers to relation {oid}, which the server never described")]
    UnknownRelation {
        /// The relation OID.
        oid: Oid,
        /// WAL position of the change.
        lsn: Lsn,
    },
    /// A change's tuple has a different number of columns than the Relation message that
    /// described its relation (pgoutput always sends every column).
    #[error(
        "change at {lsn} of relation {oid} has a tuple of {got} columns, but its Relation \
         message describes {expected}"
    )]
    ColumnCount {
        /// WAL position of the change.
        lsn: Lsn,
        /// The relation OID.
        oid: Oid,
        /// Columns in the tuple.
        got: usize,
        /// Columns in the Relation message.
        expected: usize,
    },
    /// The server sent a valid message that makes no sense here (e.g. a Commit with no
    /// transaction open).
    #[error("protocol violation at {lsn}: {what}")]
    Protocol {
        /// WAL position of the message.
        lsn: Lsn,
        /// What was wrong.
        what: &'static str,
    },
    /// Nothing arrived from the server within the read deadline (even after asking it to
    /// reply): the peer or the network is presumed dead.
    #[error("no data from the server for {silent_for:?}")]
    ReadTimeout {
        /// How long the server was silent.
        silent_for: Duration,
    },
    /// The slot does not exist and the configuration does not allow creating it.
    #[error("replication slot {slot:?} does not exist")]
    SlotNotFound {
        /// The slot's name.
        slot: String,
    },
    /// The server ended the replication stream before it was asked to.
    #[error("the server ended the replication stream")]
    ServerEnded,
    /// The connection failed.
    #[error("replication connection failed: {}", Chain(.0))]
    Transport(#[from] TransportError),
    /// A replication command (IDENTIFY_SYSTEM, slot creation, ...) failed.
    #[error("replication command failed: {}", Chain(.0))]
    Slot(#[from] SlotError),
    /// A reconnect reached a server whose system identifier or timeline differs from the first
    /// connection's (a conninfo with several hosts can land elsewhere, or a standby was
    /// promoted): resuming there could skip or replay data, so the stream stops.
    #[error(
        "the server changed: system identifier {found_system_id} timeline {found_timeline}, \
         expected {expected_system_id} timeline {expected_timeline}"
    )]
    ServerChanged {
        /// The first connection's system identifier.
        expected_system_id: u64,
        /// The first connection's timeline.
        expected_timeline: u32,
        /// The new connection's system identifier.
        found_system_id: u64,
        /// The new connection's timeline.
        found_timeline: u32,
    },
    /// The transaction assembler could not write or read back a spill file.
    #[error("{action} a transaction spill file: {}", Chain(.source))]
    Spill {
        /// What was being done ("creating", "writing", "reading").
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The events given to the transaction assembler break the protocol's nesting (e.g. a
    /// change outside any transaction, a commit without a begin).
    #[error("transaction assembler: {what} (at {lsn})")]
    Assembly {
        /// WAL position of the offending event.
        lsn: Lsn,
        /// What was wrong.
        what: &'static str,
    },
    /// The stream's background task ended without reporting why (it panicked or the runtime
    /// shut down).
    #[error("the replication task ended unexpectedly")]
    TaskEnded,
    /// [`LogicalStream::connect`](crate::LogicalStream::connect) (or a start) was called
    /// outside a tokio runtime: the stream runs on a task of the current runtime.
    #[error("a replication stream must be started from within a tokio runtime")]
    NoRuntime,
    /// An event was acknowledged through another stream's [`Feedback`](crate::Feedback).
    #[error(transparent)]
    ForeignEvent(#[from] crate::feedback::ForeignEvent),
}

impl Error {
    /// The SQLSTATE of the server error behind this one, if the server reported one.
    pub fn code(&self) -> Option<SqlState> {
        self.as_db_error().map(|error| error.code)
    }

    /// The server's error (severity, SQLSTATE, message, detail, hint, ...) behind this one,
    /// if the server reported it.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Error::Transport(error) => error.db_error(),
            Error::Slot(error) => error.db_error(),
            _ => None,
        }
    }

    /// Whether reconnecting and resuming from the flushed position may succeed; see
    /// [`classify`](Self::classify).
    pub fn is_transient(&self) -> bool {
        self.classify() == ErrorClass::Transient
    }

    /// The workspace's one classification, by SQLSTATE and error kind, never by message text:
    /// connection and replication-command failures delegate to
    /// [`TransportError::classify`] and [`SlotError::classify`] (see
    /// [`classify_sqlstate`](pg_walstream_transport::classify_sqlstate) for the SQLSTATE
    /// table); a [read timeout](Error::ReadTimeout), the server ending the stream and the
    /// stream's task ending are transient; bad data, bad configuration, a missing slot and a
    /// [different server](Error::ServerChanged) are permanent.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pg_walstream_stream::{Error, ErrorClass};
    /// let timeout = Error::ReadTimeout { silent_for: Duration::from_secs(30) };
    /// assert_eq!(timeout.classify(), ErrorClass::Transient);
    /// let missing = Error::SlotNotFound { slot: "app".into() };
    /// assert_eq!(missing.classify(), ErrorClass::Permanent);
    /// ```
    pub fn classify(&self) -> ErrorClass {
        match self {
            Error::ReadTimeout { .. } | Error::ServerEnded | Error::TaskEnded => {
                ErrorClass::Transient
            }
            Error::Transport(error) => error.classify(),
            Error::Slot(error) => error.classify(),
            Error::Config(_)
            | Error::Decode { .. }
            | Error::UnknownRelation { .. }
            | Error::ColumnCount { .. }
            | Error::Protocol { .. }
            | Error::SlotNotFound { .. }
            | Error::ServerChanged { .. }
            | Error::ForeignEvent(_)
            | Error::Spill { .. }
            | Error::NoRuntime
            | Error::Assembly { .. } => ErrorClass::Permanent,
        }
    }
}

impl Error {
    pub(crate) fn spill(action: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Spill { action, source }
    }
}

/// An error and its sources joined with `: `, leaving out a source whose text is already
/// there, then the SQLSTATE of the first server error in the chain.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut code = db_error_of(self.0).map(|e| e.code);
        let mut source = self.0.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            code = code.or_else(|| db_error_of(cause).map(|e| e.code));
            source = cause.source();
        }
        f.write_str(&text)?;
        if let Some(code) = code {
            write!(f, " (SQLSTATE {code})")?;
        }
        Ok(())
    }
}

/// The server error an error of the chain is, or wraps without exposing it as a source.
fn db_error_of<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a DbError> {
    if let Some(db) = error.downcast_ref::<DbError>() {
        return Some(db);
    }
    if let Some(transport) = error.downcast_ref::<TransportError>() {
        return transport.db_error();
    }
    error
        .downcast_ref::<SlotError>()
        .and_then(SlotError::db_error)
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use pg_walstream_transport::DbError;

    fn server(code: &str) -> TransportError {
        let body = format!("SFATAL\0C{code}\0Mx\0\0");
        TransportError::Server(Box::new(
            DbError::parse(b'E', body.as_bytes()).expect("valid error body"),
        ))
    }

    #[test]
    fn delegates_to_the_one_classification() {
        let codes = [
            "08000", "08006", "57P01", "57P02", "57P03", "53300", "55006", "28P01", "28000",
            "42704", "55000", "0A000", "22023",
        ];
        for code in codes {
            let transport = server(code);
            let expected = transport.classify();
            assert_eq!(Error::Transport(transport).classify(), expected, "{code}");
            let slot = SlotError::from(server(code));
            assert_eq!(
                Error::Slot(slot).classify(),
                expected,
                "{code} as a slot error"
            );
        }
        // The cases where the stream's old copy disagreed with the transport's.
        assert!(Error::Transport(server("08006")).is_transient());
        assert!(Error::Transport(server("53300")).is_transient());
        assert!(
            Error::Transport(TransportError::Libpq(
                "connection to server failed: Connection refused".into()
            ))
            .is_transient()
        );
        assert!(Error::Slot(SlotError::from(server("57P01"))).is_transient());
    }

    #[test]
    fn display_carries_the_cause_chain_and_the_sqlstate() {
        let refused = Error::Transport(TransportError::Connect {
            address: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        });
        assert_eq!(
            refused.to_string(),
            "replication connection failed: could not connect to server at 127.0.0.1:1: \
             connection refused"
        );
        assert_eq!(refused.code(), None);
        assert!(refused.as_db_error().is_none());
        let in_use = Error::Slot(SlotError::from(server("55006")));
        assert_eq!(in_use.code(), Some(SqlState::OBJECT_IN_USE));
        assert_eq!(in_use.as_db_error().map(|e| e.message.as_str()), Some("x"));
        assert!(
            in_use.to_string().ends_with(": x (SQLSTATE 55006)"),
            "{in_use}"
        );
        let wrapped = Error::Slot(SlotError::Transport(server("57P01")));
        assert_eq!(wrapped.code(), Some(SqlState::ADMIN_SHUTDOWN));
        assert!(wrapped.to_string().contains("FATAL: x"), "{wrapped}");
        assert!(
            wrapped.to_string().ends_with("(SQLSTATE 57P01)"),
            "{wrapped}"
        );
        assert_eq!(
            Error::NoRuntime.to_string(),
            "a replication stream must be started from within a tokio runtime"
        );
    }

    #[test]
    fn stream_kinds() {
        let transient = [
            Error::ReadTimeout {
                silent_for: Duration::from_secs(1),
            },
            Error::ServerEnded,
            Error::TaskEnded,
            Error::Transport(TransportError::Closed),
        ];
        for error in transient {
            assert!(error.is_transient(), "{error:?}");
        }
        let permanent = [
            Error::SlotNotFound { slot: "s".into() },
            Error::Protocol {
                lsn: Lsn(1),
                what: "x",
            },
            Error::UnknownRelation {
                oid: Oid(7),
                lsn: Lsn(1),
            },
            Error::ServerChanged {
                expected_system_id: 1,
                expected_timeline: 1,
                found_system_id: 2,
                found_timeline: 1,
            },
            Error::Transport(server("28P01")),
        ];
        for error in permanent {
            assert!(!error.is_transient(), "{error:?}");
        }
    }
}
