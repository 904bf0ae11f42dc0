//! The transport's error type.

use std::io;
use std::time::Duration;

use crate::message::{DbError, MessageError, SqlState};

/// Everything that can go wrong while connecting or talking to a server.
///
/// `Display` describes this layer; the underlying I/O, TLS or protocol error is the
/// [`source`](std::error::Error::source). No variant ever contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Opening the socket to `address` failed.
    #[error("could not connect to server at {address}")]
    Connect {
        /// `host:port` or the unix socket path.
        address: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The whole connection attempt to `address` did not finish within `connect_timeout`.
    #[error("timeout expired after {timeout:?} connecting to server at {address}")]
    ConnectTimeout {
        /// `host:port` or the unix socket path.
        address: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// Reading from or writing to an established connection failed.
    #[error("I/O error on the server connection")]
    Io(#[source] io::Error),
    /// The server closed the connection unexpectedly.
    #[error("server closed the connection unexpectedly")]
    Closed,
    /// The TLS handshake or TLS record layer failed (bad certificate, wrong host name, ...).
    #[error("TLS error with server at {address}")]
    Tls {
        /// `host:port`.
        address: String,
        /// The TLS library's error.
        #[source]
        source: rustls::Error,
    },
    /// TLS material (root certificates, client certificate or key) could not be loaded.
    #[error("could not load {what} from \"{path}\"")]
    TlsFile {
        /// Which file (e.g. "root certificate file").
        what: &'static str,
        /// The file's path.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS client configuration could not be built.
    #[error("invalid TLS configuration")]
    TlsConfig(#[source] rustls::Error),
    /// The server answered SSLRequest with "no" but the sslmode requires TLS.
    #[error("server at {address} does not support SSL, but SSL was required")]
    SslRefused {
        /// `host:port`.
        address: String,
    },
    /// Direct TLS (`sslnegotiation=direct`) failed: servers before PostgreSQL 17 close the
    /// connection when the first bytes are a TLS ClientHello.
    #[error(
        "direct SSL connection to {address} failed (the server may not support sslnegotiation=direct, which needs PostgreSQL 17 or later)"
    )]
    DirectTlsRefused {
        /// `host:port`.
        address: String,
        /// What the handshake saw.
        #[source]
        source: io::Error,
    },
    /// The server reported an error (bad password, no pg_hba.conf entry, SQL error, ...).
    #[error("server error: {0}")]
    Server(Box<DbError>),
    /// Authentication failed on the client side: a method refused by `require_auth` or
    /// `channel_binding`, a missing password, a SCRAM server signature that does not verify.
    #[error("authentication failed")]
    Auth(#[from] pg_walstream_auth::AuthError),
    /// The server sent bytes that are not a valid protocol message.
    #[error("protocol violation")]
    Protocol(#[from] MessageError),
    /// The server sent a valid message that makes no sense at this point.
    #[error("unexpected message from server: {got} while {during}")]
    Unexpected {
        /// What was received.
        got: &'static str,
        /// What the connection was doing.
        during: &'static str,
    },
    /// The libpq backend reported an error (its message; libpq gives no SQLSTATE for
    /// connection failures).
    #[error("libpq: {0}")]
    Libpq(String),
    /// The caller used the connection in a way its state does not allow (a bug in the caller).
    #[error("invalid use of connection: {0}")]
    InvalidState(&'static str),
    /// The connection configuration cannot be used (e.g. no host left to try).
    #[error("invalid connection configuration: {0}")]
    Config(String),
    /// A column value requested from a row is absent or not valid UTF-8.
    #[error("column {index}: {what}")]
    Column {
        /// Column index.
        index: usize,
        /// What was wrong.
        what: &'static str,
    },
}

impl TransportError {
    /// The server's error, if this is one.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            TransportError::Server(e) => Some(e),
            _ => None,
        }
    }

    /// The SQLSTATE of a server error.
    pub fn code(&self) -> Option<SqlState> {
        self.db_error().map(|e| e.code)
    }

    /// Whether retrying the same operation later may succeed: network failures, timeouts,
    /// the server shutting down or refusing connections for now. Authentication, TLS
    /// verification, configuration and protocol errors are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Connect { .. }
            | TransportError::ConnectTimeout { .. }
            | TransportError::Io(_)
            | TransportError::Closed => true,
            TransportError::Libpq(message) => libpq_message_is_transient(message),
            TransportError::Server(e) => {
                e.code.class() == "08"
                    || [
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CRASH_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                        SqlState::TOO_MANY_CONNECTIONS,
                    ]
                    .contains(&e.code)
            }
            _ => false,
        }
    }

    pub(crate) fn server(e: Box<DbError>) -> Self {
        TransportError::Server(e)
    }

    /// Maps an I/O error of an established connection.
    pub(crate) fn io(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TransportError::Closed
        } else {
            TransportError::Io(e)
        }
    }
}

/// libpq reports network failures only as (English, unless translated) text; these phrases
/// mark the ones a retry can fix. Unknown messages count as permanent.
fn libpq_message_is_transient(message: &str) -> bool {
    const PHRASES: [&str; 6] = [
        "Connection refused",
        "could not connect",
        "timeout expired",
        "server closed the connection unexpectedly",
        "Connection reset",
        "no connection to the server",
    ];
    PHRASES.iter().any(|phrase| message.contains(phrase))
}

/// Result alias of this crate.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        let db = |code| {
            TransportError::server(Box::new(
                DbError::parse(b'E', format!("SFATAL\0C{code}\0Mx\0\0").as_bytes()).expect("valid"),
            ))
        };
        assert!(db("57P01").is_transient());
        assert!(db("08006").is_transient());
        assert!(!db("28P01").is_transient());
        assert!(!db("42710").is_transient());
        assert_eq!(db("42710").code(), Some(SqlState::DUPLICATE_OBJECT));
        assert!(TransportError::Closed.is_transient());
        assert!(!TransportError::InvalidState("x").is_transient());
        assert!(!TransportError::Protocol(MessageError::UnknownTag(b'?')).is_transient());
    }

    #[test]
    fn display_layers() {
        let e = TransportError::io(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        assert!(matches!(e, TransportError::Closed));
        let e = TransportError::Protocol(MessageError::UnknownTag(b'?'));
        assert_eq!(e.to_string(), "protocol violation");
        let source = std::error::Error::source(&e)
            .expect("has source")
            .to_string();
        assert_eq!(source, "unknown backend message type '?'");
    }
}
