//! The stream crate's error type.

use std::time::Duration;

use pg_walstream_codec::{DecodeError, Lsn, Oid};
use pg_walstream_slot::SlotError;
use pg_walstream_transport::{SqlState, TransportError};

use crate::config::ConfigError;

/// Why a replication stream failed or could not start.
///
/// Every error ends the stream: a frame that does not decode, data for a relation that was
/// never described and a silent server are never skipped or retried internally. Use
/// [`Error::is_transient`] to decide whether reconnecting (from the flushed position) may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work with this server; nothing was started.
    #[error("invalid stream configuration")]
    Config(#[from] ConfigError),
    /// A CopyData frame from the server could not be decoded.
    #[error("undecodable replication frame after WAL position {after}")]
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
    #[error("replication connection failed")]
    Transport(#[from] TransportError),
    /// A replication command (IDENTIFY_SYSTEM, slot creation, ...) failed.
    #[error("replication command failed")]
    Slot(#[from] SlotError),
    /// The stream's background task ended without reporting why (it panicked or the runtime
    /// shut down).
    #[error("the replication task ended unexpectedly")]
    TaskEnded,
    /// An event was acknowledged through another stream's [`Feedback`](crate::Feedback).
    #[error(transparent)]
    ForeignEvent(#[from] crate::feedback::ForeignEvent),
}

impl Error {
    /// Whether reconnecting and resuming from the flushed position may succeed: I/O failures,
    /// timeouts and server shutdowns are transient; bad data, bad configuration and
    /// authentication failures are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ReadTimeout { .. }
            | Error::ServerEnded
            | Error::TaskEnded
            | Error::Slot(SlotError::InUse(_)) => true,
            Error::Transport(e) | Error::Slot(SlotError::Transport(e)) => transport_is_transient(e),
            _ => false,
        }
    }
}

fn transport_is_transient(error: &TransportError) -> bool {
    matches!(
        error,
        TransportError::Io(_)
            | TransportError::Closed
            | TransportError::Connect { .. }
            | TransportError::ConnectTimeout { .. }
    ) || error.code().is_some_and(|code| {
        // A slot still held by a dying walsender is in use for a moment.
        [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::OBJECT_IN_USE,
        ]
        .contains(&code)
    })
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
