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
    /// The client key file can be read by group or others (libpq's rule: mode 0600 or less
    /// when owned by the current user, 0640 or less when owned by root).
    #[error(
        "private key file \"{path}\" has group or world access (mode {mode:04o}); file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root"
    )]
    KeyFilePermissions {
        /// The key file's path.
        path: String,
        /// Its permission bits.
        mode: u32,
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

    /// Whether retrying the same operation later may succeed; see [`classify`](Self::classify).
    pub fn is_transient(&self) -> bool {
        self.classify() == ErrorClass::Transient
    }

    /// Whether this error may go away on a new connection, decided by its kind and, for a
    /// server error, by its SQLSTATE ([`classify_sqlstate`]) — never by message text, except
    /// for libpq's own connection failures, which come with no SQLSTATE.
    ///
    /// Transient: [`Connect`](Self::Connect), [`ConnectTimeout`](Self::ConnectTimeout),
    /// [`Io`](Self::Io) on an established connection (a reset, or a TLS record error
    /// mid-stream, which the TLS layer reports as I/O), [`Closed`](Self::Closed) (EOF), and
    /// libpq's network failures (connection refused or reset, server closed the connection,
    /// timeout). Permanent: everything else — the TLS handshake ([`Tls`](Self::Tls): a
    /// certificate that does not verify will not verify next time either), TLS files and
    /// configuration, [`SslRefused`](Self::SslRefused), client-side authentication failures,
    /// protocol violations, invalid use and configuration.
    ///
    /// ```
    /// use pg_walstream_transport::{ErrorClass, TransportError};
    /// assert_eq!(TransportError::Closed.classify(), ErrorClass::Transient);
    /// assert_eq!(
    ///     TransportError::InvalidState("busy").classify(),
    ///     ErrorClass::Permanent
    /// );
    /// ```
    pub fn classify(&self) -> ErrorClass {
        match self {
            TransportError::Connect { .. }
            | TransportError::ConnectTimeout { .. }
            | TransportError::Io(_)
            | TransportError::Closed => ErrorClass::Transient,
            TransportError::Libpq(message) if libpq_message_is_transient(message) => {
                ErrorClass::Transient
            }
            TransportError::Server(e) => classify_sqlstate(e.code),
            _ => ErrorClass::Permanent,
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

/// Whether a failure may go away by retrying on a new connection.
///
/// One classification serves the whole workspace: [`TransportError::classify`], the slot
/// crate's and the stream crate's errors all come down to [`classify_sqlstate`] and the error
/// kinds listed on [`TransportError::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Reconnecting (after a backoff) and resuming may succeed.
    Transient,
    /// Retrying cannot succeed until something outside the program changes: stop and report.
    Permanent,
}

impl ErrorClass {
    /// `true` for [`ErrorClass::Transient`].
    pub fn is_transient(self) -> bool {
        self == ErrorClass::Transient
    }
}

/// Classifies a server error by its SQLSTATE alone.
///
/// | SQLSTATE | meaning | class |
/// |---|---|---|
/// | `08xxx` | connection exception (class 08) | transient |
/// | `57P01` | admin shutdown (e.g. `pg_terminate_backend`, fast shutdown) | transient |
/// | `57P02` | crash shutdown | transient |
/// | `57P03` | cannot connect now (starting up, shutting down, recovery) | transient |
/// | `53300` | too many connections (also `max_wal_senders` reached) | transient |
/// | `55006` | object in use: the slot is still active for a walsender that has not noticed its connection is gone | transient |
/// | `28P01`, `28000` | authentication failed, no `pg_hba.conf` entry | permanent |
/// | `42704` | undefined object: slot or publication missing | permanent |
/// | `55000` | object not in prerequisite state: slot invalidated, WAL removed | permanent |
/// | `0A000`, `22023`, `42601` | unsupported feature or option, bad value, syntax | permanent |
/// | anything else | | permanent |
///
/// ```
/// use pg_walstream_transport::{ErrorClass, SqlState, classify_sqlstate};
/// assert_eq!(classify_sqlstate(SqlState::ADMIN_SHUTDOWN), ErrorClass::Transient);
/// assert_eq!(classify_sqlstate(SqlState::INVALID_PASSWORD), ErrorClass::Permanent);
/// ```
pub fn classify_sqlstate(code: SqlState) -> ErrorClass {
    const TRANSIENT: [SqlState; 5] = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::OBJECT_IN_USE,
    ];
    if code.class() == "08" || TRANSIENT.contains(&code) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
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
    fn sqlstate_table() {
        let table = [
            ("08000", ErrorClass::Transient),
            ("08006", ErrorClass::Transient),
            ("08001", ErrorClass::Transient),
            ("08P01", ErrorClass::Transient),
            ("57P01", ErrorClass::Transient),
            ("57P02", ErrorClass::Transient),
            ("57P03", ErrorClass::Transient),
            ("53300", ErrorClass::Transient),
            ("55006", ErrorClass::Transient),
            ("28P01", ErrorClass::Permanent),
            ("28000", ErrorClass::Permanent),
            ("42704", ErrorClass::Permanent),
            ("55000", ErrorClass::Permanent),
            ("0A000", ErrorClass::Permanent),
            ("22023", ErrorClass::Permanent),
            ("42601", ErrorClass::Permanent),
            ("42710", ErrorClass::Permanent),
            ("42501", ErrorClass::Permanent),
            ("3D000", ErrorClass::Permanent),
            ("57014", ErrorClass::Permanent),
            ("53400", ErrorClass::Permanent),
            ("XX000", ErrorClass::Permanent),
        ];
        for (code, class) in table {
            let state = SqlState::from_code(code).expect("well-formed");
            assert_eq!(classify_sqlstate(state), class, "{code}");
            let server = TransportError::server(Box::new(
                DbError::parse(b'E', format!("SFATAL\0C{code}\0Mx\0\0").as_bytes()).expect("valid"),
            ));
            assert_eq!(server.classify(), class, "{code} as a server error");
            assert_eq!(server.is_transient(), class.is_transient());
        }
    }

    #[test]
    fn kind_table() {
        let reset = || io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        let tls_record = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        let table = [
            (
                TransportError::Connect {
                    address: "a".into(),
                    source: io::Error::new(io::ErrorKind::ConnectionRefused, "refused"),
                },
                ErrorClass::Transient,
            ),
            (
                TransportError::ConnectTimeout {
                    address: "a".into(),
                    timeout: Duration::from_secs(1),
                },
                ErrorClass::Transient,
            ),
            (TransportError::io(reset()), ErrorClass::Transient),
            (
                TransportError::io(io::Error::new(io::ErrorKind::UnexpectedEof, "eof")),
                ErrorClass::Transient,
            ),
            (TransportError::io(tls_record), ErrorClass::Transient),
            (TransportError::Closed, ErrorClass::Transient),
            (
                TransportError::Libpq("could not connect to server: Connection refused".into()),
                ErrorClass::Transient,
            ),
            (
                TransportError::Libpq("server closed the connection unexpectedly".into()),
                ErrorClass::Transient,
            ),
            (
                TransportError::Libpq("invalid sslmode value".into()),
                ErrorClass::Permanent,
            ),
            (
                TransportError::Tls {
                    address: "a".into(),
                    source: rustls::Error::InvalidCertificate(
                        rustls::CertificateError::UnknownIssuer,
                    ),
                },
                ErrorClass::Permanent,
            ),
            (
                TransportError::SslRefused {
                    address: "a".into(),
                },
                ErrorClass::Permanent,
            ),
            (
                TransportError::TlsConfig(rustls::Error::DecryptError),
                ErrorClass::Permanent,
            ),
            (TransportError::Config("x".into()), ErrorClass::Permanent),
            (TransportError::InvalidState("x"), ErrorClass::Permanent),
            (
                TransportError::Protocol(MessageError::UnknownTag(b'?')),
                ErrorClass::Permanent,
            ),
            (
                TransportError::Unexpected {
                    got: "x",
                    during: "y",
                },
                ErrorClass::Permanent,
            ),
        ];
        for (error, class) in table {
            assert_eq!(error.classify(), class, "{error:?}");
        }
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
