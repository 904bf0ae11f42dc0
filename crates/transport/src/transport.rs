//! The `Transport` contract every backend fulfils, and the run-time choice between backends.

use core::future::Future;

use bytes::Bytes;

use crate::cancel::CancelToken;
use crate::conninfo::Config;
use crate::error::Result;
use crate::message::DbError;
use crate::native::NativeConnection;
use crate::result::{Response, ResultSet};

/// How many unread notices a session keeps for [`Transport::take_notices`]: the newest
/// ones; older ones are dropped (and logged), so a session nobody asks for notices does not
/// grow without bound.
pub const MAX_KEPT_NOTICES: usize = 256;

/// A replication-capable session with a PostgreSQL server.
///
/// Implemented by each backend and by [`Connection`], the enum that picks one at run time.
/// Higher crates are generic over `T: Transport` or use [`Connection`]; either way no call
/// allocates or boxes a future, so a CopyData frame costs the same as calling the backend
/// directly.
///
/// Query flow: [`send_query`](Self::send_query), then [`next_response`](Self::next_response)
/// until [`Response::Ready`]; a [`Response::CopyOut`] or [`Response::CopyBoth`] is followed by
/// [`read_copy_data`](Self::read_copy_data) until it returns `None`; a [`Response::CopyIn`] by
/// [`write_copy_data`](Self::write_copy_data) and [`send_copy_done`](Self::send_copy_done)
/// before the next [`next_response`](Self::next_response).
pub trait Transport: Send {
    /// Sends a query with the simple query protocol (replication commands included).
    ///
    /// # Errors
    /// When a query is already running, or on I/O failure.
    fn send_query(&mut self, sql: &str) -> impl Future<Output = Result<()>> + Send;

    /// The next response of the running query.
    ///
    /// # Errors
    /// [`TransportError::Server`](crate::TransportError::Server) when the query failed (the
    /// session stays usable); state, protocol and I/O errors.
    fn next_response(&mut self) -> impl Future<Output = Result<Response>> + Send;

    /// Runs a query and collects all its result sets.
    ///
    /// # Errors
    /// As [`next_response`](Self::next_response); also when the query starts a COPY (of any
    /// direction).
    fn simple_query(&mut self, sql: &str) -> impl Future<Output = Result<Vec<ResultSet>>> + Send;

    /// Sends a command that starts a CopyBoth stream (`START_REPLICATION ...`) and waits for it.
    ///
    /// # Errors
    /// When the server rejects the command or answers with something else.
    fn copy_both(&mut self, sql: &str) -> impl Future<Output = Result<()>> + Send;

    /// The next CopyData payload, zero-copy; `None` once the server ended the stream.
    /// Cancel-safe.
    ///
    /// # Errors
    /// A server error ending the stream, state, protocol and I/O errors.
    fn read_copy_data(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// The next CopyData payload if it can be had without waiting — already received and
    /// buffered — or `Ok(None)` (also when the next message is something else, which
    /// [`read_copy_data`](Self::read_copy_data) then handles). Lets a caller drain a read's
    /// worth of frames in one go. The default buffers nothing.
    ///
    /// # Errors
    /// As [`read_copy_data`](Self::read_copy_data); after an error, `read_copy_data` reports
    /// the state.
    fn try_read_copy_data(&mut self) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// Stops watching the connection for incoming data until the next read or write, which
    /// resumes watching and finds what arrived meanwhile. For a caller that will not read for
    /// a while (read coalescing): readiness is edge-triggered, so a watched socket wakes the
    /// runtime at every arriving packet even when no task waits to read. The default does
    /// nothing.
    ///
    /// # Errors
    /// When the socket cannot be taken off (or later put back on) the runtime's reactor; the
    /// connection is unusable then.
    fn park_reads(&mut self) -> Result<()> {
        Ok(())
    }

    /// Queues one CopyData message; [`flush`](Self::flush) sends all queued messages at once.
    ///
    /// # Errors
    /// When no CopyBoth or CopyIn stream is open for writing.
    fn write_copy_data(&mut self, data: &[u8]) -> Result<()>;

    /// Sends everything queued.
    ///
    /// # Errors
    /// I/O errors.
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// Ends the client side of a CopyBoth stream, or a CopyIn stream (whose result
    /// [`next_response`](Self::next_response) then reads).
    ///
    /// # Errors
    /// When no CopyBoth or CopyIn stream is open for writing; I/O errors.
    fn send_copy_done(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// A token to cancel the running query from another task.
    fn cancel_token(&self) -> Option<CancelToken>;

    /// A run-time parameter reported by the server (e.g. `server_version`).
    fn parameter(&self, name: &str) -> Option<&str>;

    /// Notices received since the last call: at most [`MAX_KEPT_NOTICES`], the newest.
    fn take_notices(&mut self) -> Vec<DbError>;

    /// Whether the session is encrypted with TLS.
    fn is_tls(&self) -> bool;

    /// Whether the session runs over a Unix-domain socket. The default says no.
    fn is_unix_socket(&self) -> bool {
        false
    }

    /// Ends the session gracefully (Terminate).
    ///
    /// # Errors
    /// I/O errors while saying goodbye; the session is closed either way.
    fn close(self) -> impl Future<Output = Result<()>> + Send
    where
        Self: Sized;

    /// The server's major version × 10000 + minor (e.g. `170010` for 17.10), from the
    /// `server_version` parameter.
    fn server_version_num(&self) -> Option<u32> {
        parse_server_version(self.parameter("server_version")?)
    }
}

/// `"17.10"` → 170010, `"14.23 (Debian 14.23-1)"` → 140023, `"18beta1"` → 180000.
pub(crate) fn parse_server_version(text: &str) -> Option<u32> {
    let numeric: &str = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = numeric.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    major.checked_mul(10_000)?.checked_add(minor)
}

/// Which implementation of the protocol a [`Connection`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// The pure-Rust backend (tokio + rustls).
    #[default]
    Native,
    /// libpq through its non-blocking API (cargo feature `libpq`; without it, connecting
    /// with this backend is a [`TransportError::Config`](crate::TransportError::Config)
    /// error).
    Libpq,
}

impl Backend {
    /// Whether this build can connect with the backend.
    pub const fn is_available(self) -> bool {
        match self {
            Backend::Native => true,
            Backend::Libpq => cfg!(feature = "libpq"),
        }
    }
}

impl core::str::FromStr for Backend {
    type Err = crate::TransportError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "native" => Ok(Backend::Native),
            "libpq" => Ok(Backend::Libpq),
            other => Err(crate::TransportError::Config(format!(
                "unknown backend {other:?}: expected native or libpq"
            ))),
        }
    }
}

/// A session on whichever backend was chosen at run time.
///
/// Dispatch is a `match` per call: no boxing, no dynamic allocation.
#[derive(Debug)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "one per session, matched on every read: boxing the native side would add an indirection to the hot path to save ~200 bytes once"
)]
pub enum Connection {
    /// The pure-Rust backend.
    Native(NativeConnection),
    /// The libpq backend.
    #[cfg(feature = "libpq")]
    Libpq(crate::LibpqConnection),
}

impl Connection {
    /// Connects with the default backend ([`Backend::Native`]).
    ///
    /// # Errors
    /// As [`NativeConnection::connect`].
    pub async fn connect(config: &Config) -> Result<Self> {
        Self::connect_with(config, Backend::default()).await
    }

    /// Connects with the chosen backend.
    ///
    /// # Errors
    /// As the backend's `connect` ([`NativeConnection::connect`]).
    pub async fn connect_with(config: &Config, backend: Backend) -> Result<Self> {
        match backend {
            Backend::Native => NativeConnection::connect(config)
                .await
                .map(Connection::Native),
            #[cfg(feature = "libpq")]
            Backend::Libpq => crate::LibpqConnection::connect(config)
                .await
                .map(Connection::Libpq),
            #[cfg(not(feature = "libpq"))]
            Backend::Libpq => Err(crate::TransportError::Config(
                "this build has no libpq backend: enable the `libpq` feature of \
                 pg-walstream-transport"
                    .into(),
            )),
        }
    }

    /// The backend this session runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Connection::Native(_) => Backend::Native,
            #[cfg(feature = "libpq")]
            Connection::Libpq(_) => Backend::Libpq,
        }
    }
}

macro_rules! dispatch {
    ($self:expr, $c:ident => $e:expr) => {
        match $self {
            Connection::Native($c) => $e,
            #[cfg(feature = "libpq")]
            Connection::Libpq($c) => $e,
        }
    };
}

impl Transport for Connection {
    async fn send_query(&mut self, sql: &str) -> Result<()> {
        dispatch!(self, c => c.send_query(sql).await)
    }

    async fn next_response(&mut self) -> Result<Response> {
        dispatch!(self, c => c.next_response().await)
    }

    async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>> {
        dispatch!(self, c => c.simple_query(sql).await)
    }

    async fn copy_both(&mut self, sql: &str) -> Result<()> {
        dispatch!(self, c => c.copy_both(sql).await)
    }

    #[inline]
    async fn read_copy_data(&mut self) -> Result<Option<Bytes>> {
        dispatch!(self, c => c.read_copy_data().await)
    }

    #[inline]
    fn try_read_copy_data(&mut self) -> Result<Option<Bytes>> {
        dispatch!(self, c => c.try_read_copy_data())
    }

    fn park_reads(&mut self) -> Result<()> {
        dispatch!(self, c => c.park_reads())
    }

    fn write_copy_data(&mut self, data: &[u8]) -> Result<()> {
        dispatch!(self, c => c.write_copy_data(data))
    }

    async fn flush(&mut self) -> Result<()> {
        dispatch!(self, c => c.flush().await)
    }

    async fn send_copy_done(&mut self) -> Result<()> {
        dispatch!(self, c => c.send_copy_done().await)
    }

    fn cancel_token(&self) -> Option<CancelToken> {
        dispatch!(self, c => c.cancel_token())
    }

    fn parameter(&self, name: &str) -> Option<&str> {
        dispatch!(self, c => c.parameter(name))
    }

    fn take_notices(&mut self) -> Vec<DbError> {
        dispatch!(self, c => c.take_notices())
    }

    fn is_tls(&self) -> bool {
        dispatch!(self, c => c.is_tls())
    }

    fn is_unix_socket(&self) -> bool {
        dispatch!(self, c => c.is_unix_socket())
    }

    async fn close(self) -> Result<()> {
        dispatch!(self, c => c.close().await)
    }
}

impl Transport for NativeConnection {
    async fn send_query(&mut self, sql: &str) -> Result<()> {
        NativeConnection::send_query(self, sql).await
    }

    async fn next_response(&mut self) -> Result<Response> {
        NativeConnection::next_response(self).await
    }

    async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>> {
        NativeConnection::simple_query(self, sql).await
    }

    async fn copy_both(&mut self, sql: &str) -> Result<()> {
        NativeConnection::copy_both(self, sql).await
    }

    #[inline]
    async fn read_copy_data(&mut self) -> Result<Option<Bytes>> {
        NativeConnection::read_copy_data(self).await
    }

    #[inline]
    fn try_read_copy_data(&mut self) -> Result<Option<Bytes>> {
        NativeConnection::try_read_copy_data(self)
    }

    fn park_reads(&mut self) -> Result<()> {
        NativeConnection::park_reads(self)
    }

    fn write_copy_data(&mut self, data: &[u8]) -> Result<()> {
        NativeConnection::write_copy_data(self, data)
    }

    async fn flush(&mut self) -> Result<()> {
        NativeConnection::flush(self).await
    }

    async fn send_copy_done(&mut self) -> Result<()> {
        NativeConnection::send_copy_done(self).await
    }

    fn cancel_token(&self) -> Option<CancelToken> {
        NativeConnection::cancel_token(self)
    }

    fn parameter(&self, name: &str) -> Option<&str> {
        NativeConnection::parameter(self, name)
    }

    fn take_notices(&mut self) -> Vec<DbError> {
        NativeConnection::take_notices(self)
    }

    fn is_tls(&self) -> bool {
        NativeConnection::is_tls(self)
    }

    fn is_unix_socket(&self) -> bool {
        NativeConnection::is_unix_socket(self)
    }

    async fn close(self) -> Result<()> {
        NativeConnection::close(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_server_version;

    #[test]
    fn server_versions() {
        assert_eq!(parse_server_version("17.10"), Some(170_010));
        assert_eq!(
            parse_server_version("14.23 (Debian 14.23-1.pgdg120+1)"),
            Some(140_023)
        );
        assert_eq!(parse_server_version("18beta1"), Some(180_000));
        assert_eq!(parse_server_version("garbage"), None);
    }
}
