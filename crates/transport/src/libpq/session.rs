//! A libpq session: connect, simple queries, COPY streams, cancel, close — all without
//! blocking the runtime.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::ffi::{
    self, CopyData, ErrorFields, PollStatus, RawCancel, RawConn, RawResult, ResultStatus, Socket,
    register_socket, reregister_socket,
};
use super::params::{check_process_environment, connection_params};
use super::results::{blocking, connect_failure, db_error, libpq_error, result_set};
use crate::cancel::CancelToken;
use crate::conninfo::Config;
use crate::error::{Result, TransportError};
use crate::message::DbError;
use crate::result::{Response, ResultSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Busy,
    /// A COPY stream; a CopyIn stream is `both: false` with `server_done` (the server sends
    /// nothing in it) and `client_done: false` until `PQputCopyEnd`.
    Copy {
        both: bool,
        /// `PQgetCopyData` reported the end; the result that follows is not read yet.
        ended: bool,
        server_done: bool,
        client_done: bool,
    },
    Broken,
}

/// A session established by the libpq backend.
pub struct LibpqConnection {
    // Declared before `conn`: deregistered from the reactor before PQfinish closes the socket;
    // taken out (deregistered) as soon as libpq reports a failure.
    socket: Option<AsyncFd<Socket>>,
    /// The socket while [`park_reads`](Self::park_reads) keeps it off the reactor.
    parked: Option<Socket>,
    conn: RawConn,
    state: State,
    /// A result read ahead while ending a COPY stream, returned by the next `next_response`.
    pending_result: Option<RawResult>,
    /// CopyData libpq could not queue yet (its buffer was full); sent on `flush`.
    unqueued: Vec<Bytes>,
    /// The server failed a CopyIn stream while we were still writing it (libpq left COPY
    /// mode): further CopyData is dropped and the error is read by `next_response`, as the
    /// native backend does.
    copy_in_failed: bool,
    /// A server error whose remaining results are still being read: kept here first, so a
    /// call cancelled meanwhile loses nothing and the next call delivers it.
    pending_error: Option<ErrorFields>,
    cancel: Option<(i32, Arc<RawCancel>)>,
    /// The connection runs over a Unix-domain socket (found once, from the socket).
    unix_socket: bool,
}

impl core::fmt::Debug for LibpqConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LibpqConnection")
            .field(
                "socket",
                &self
                    .socket
                    .as_ref()
                    .map(|socket| socket.get_ref().as_raw_fd()),
            )
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl LibpqConnection {
    /// Connects with libpq using the same parsed configuration as the native backend.
    /// `connect_timeout` (per host, as in libpq) bounds the attempt on every host.
    ///
    /// # Errors
    /// [`TransportError::Config`] for settings the linked libpq cannot honour;
    /// [`TransportError::Libpq`] with libpq's message when the connection fails;
    /// [`TransportError::ConnectTimeout`] when it takes too long.
    pub async fn connect(config: &Config) -> Result<Self> {
        let options = ffi::environment_options();
        let params = connection_params(config, ffi::library_version(), &options)?;
        check_process_environment(config, &params, &options)?;
        let attempt = Self::connect_params(params);
        let connection = match config.connect_timeout {
            None => attempt.await?,
            Some(timeout) => {
                let total = timeout * u32::try_from(config.hosts.len()).unwrap_or(1).max(1);
                tokio::time::timeout(total, attempt).await.map_err(|_| {
                    TransportError::ConnectTimeout {
                        address: config
                            .hosts
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                        timeout: total,
                    }
                })??
            }
        };
        if let Some(size) = config.recv_buffer_size {
            // The registered descriptor is a duplicate of libpq's: same socket.
            socket2::SockRef::from(connection.socket()?.get_ref())
                .set_recv_buffer_size(size)
                .map_err(TransportError::io)?;
        }
        Ok(connection)
    }

    /// `PQconnectStartParams` and each `PQconnectPoll` run on tokio's blocking pool: they may
    /// resolve host names (blocking `getaddrinfo`) and run the SCRAM key derivation (as many
    /// PBKDF2 rounds as the server asks for; libpq has no limit), which must not stall the
    /// async worker threads, and `connect_timeout` keeps working meanwhile.
    async fn connect_params(params: Vec<(&'static str, String)>) -> Result<Self> {
        let mut conn = blocking(move || {
            let borrowed: Vec<(&str, &str)> =
                params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            RawConn::start(&borrowed)
        })
        .await?
        .map_err(TransportError::Libpq)?;
        if conn.is_bad() {
            return Err(connect_failure(&conn));
        }
        conn.set_verbose_errors();
        loop {
            let (returned, status) = blocking(move || {
                let status = conn.connect_poll();
                (conn, status)
            })
            .await?;
            conn = returned;
            let interest = match status {
                PollStatus::Ok => break,
                PollStatus::Failed => return Err(connect_failure(&conn)),
                PollStatus::Reading => Interest::READABLE,
                PollStatus::Writing => Interest::WRITABLE,
            };
            let fd = conn
                .socket()
                .ok_or_else(|| TransportError::Libpq(conn.error_message()))?;
            // The socket can change between polls (next host, SSL fallback): register anew.
            let waiter = register_socket(fd, interest).map_err(TransportError::io)?;
            let mut guard = waiter.ready(interest).await.map_err(TransportError::io)?;
            guard.clear_ready();
            drop(guard);
            drop(waiter);
        }
        conn.set_nonblocking().map_err(TransportError::Libpq)?;
        let fd = conn
            .socket()
            .ok_or_else(|| TransportError::Libpq(conn.error_message()))?;
        let socket = Some(
            register_socket(fd, Interest::READABLE | Interest::WRITABLE)
                .map_err(TransportError::io)?,
        );
        let unix_socket = socket.as_ref().is_some_and(|registered| {
            socket2::SockRef::from(registered.get_ref())
                .local_addr()
                .is_ok_and(|address| address.is_unix())
        });
        let process_id = conn.backend_pid();
        let cancel = conn
            .cancel_handle()
            .map(|handle| (process_id, Arc::new(handle)));
        Ok(LibpqConnection {
            socket,
            parked: None,
            conn,
            state: State::Idle,
            pending_result: None,
            unqueued: Vec::new(),
            copy_in_failed: false,
            pending_error: None,
            cancel,
            unix_socket,
        })
    }

    /// A run-time parameter the server reported.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.conn.parameter(name)
    }

    /// Whether the session is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.ssl_in_use()
    }

    /// Whether the session runs over a Unix-domain socket.
    pub fn is_unix_socket(&self) -> bool {
        self.unix_socket
    }

    /// Notices received since the last call.
    pub fn take_notices(&mut self) -> Vec<DbError> {
        self.conn
            .take_notices()
            .iter()
            .filter_map(|fields| db_error(b'N', fields))
            .collect()
    }

    /// A token that cancels the running query from another task (`PQcancel`, run on a
    /// blocking thread).
    pub fn cancel_token(&self) -> Option<CancelToken> {
        let (process_id, handle) = self.cancel.as_ref()?;
        Some(CancelToken::libpq(*process_id, Arc::clone(handle)))
    }

    fn broken(&mut self, message: String) -> TransportError {
        self.mark_broken();
        libpq_error(message)
    }

    /// After a libpq failure the socket may be closed: deregister it now.
    fn mark_broken(&mut self) {
        self.state = State::Broken;
        if let Some(socket) = self.socket.take() {
            let _deregistered = socket.into_inner();
        }
        self.parked = None;
    }

    /// Takes the socket off the runtime's reactor until the next read or write
    /// ([`Transport::park_reads`](crate::Transport::park_reads)). libpq's buffered input
    /// stays readable with `try_read_copy_data` meanwhile.
    ///
    /// # Errors
    /// A broken connection.
    pub fn park_reads(&mut self) -> Result<()> {
        if self.parked.is_none() {
            let socket = self.socket.take().ok_or(TransportError::InvalidState(
                "the connection is broken after an earlier error",
            ))?;
            self.parked = Some(socket.into_inner());
        }
        Ok(())
    }

    /// Puts a parked socket back on the reactor.
    fn unpark(&mut self) -> Result<()> {
        if let Some(socket) = self.parked.take() {
            match reregister_socket(socket, Interest::READABLE | Interest::WRITABLE) {
                Ok(registered) => self.socket = Some(registered),
                Err(error) => {
                    self.mark_broken();
                    return Err(TransportError::io(error));
                }
            }
        }
        Ok(())
    }

    fn socket(&self) -> Result<&AsyncFd<Socket>> {
        self.socket.as_ref().ok_or(TransportError::InvalidState(
            "the connection is broken after an earlier error",
        ))
    }

    fn check_usable(&self) -> Result<()> {
        if self.state == State::Broken {
            return Err(TransportError::InvalidState(
                "the connection is broken after an earlier error",
            ));
        }
        Ok(())
    }

    /// Waits until libpq has new input: reads it with `PQconsumeInput`. Only clears the
    /// socket's readiness after seeing that a read would block, so no wake-up is lost.
    async fn wait_for_input(&mut self) -> Result<()> {
        self.unpark()?;
        loop {
            let fd = self.socket()?.get_ref().as_raw_fd();
            let has_input = match ffi::socket_has_input(fd) {
                Ok(has_input) => has_input || self.conn.tls_read_pending(),
                Err(error) => {
                    self.mark_broken();
                    return Err(TransportError::io(error));
                }
            };
            if has_input {
                return self
                    .conn
                    .consume_input()
                    .map_err(|message| self.broken(message));
            }
            let mut guard = self
                .socket()?
                .readable()
                .await
                .map_err(TransportError::io)?;
            if !ffi::socket_has_input(fd).map_err(TransportError::io)? {
                guard.clear_ready();
            }
        }
    }

    /// Sends everything libpq has queued, reading input meanwhile so neither side stalls.
    async fn flush_output(&mut self) -> Result<()> {
        self.unpark()?;
        loop {
            if self.conn.flush().map_err(|message| self.broken(message))? {
                return Ok(());
            }
            let Some(socket) = self.socket.as_ref() else {
                return Err(TransportError::InvalidState(
                    "the connection is broken after an earlier error",
                ));
            };
            let mut guard = socket.writable().await.map_err(TransportError::io)?;
            let progress = self.conn.consume_input().and_then(|()| self.conn.flush());
            match progress {
                Ok(true) => return Ok(()),
                Ok(false) => guard.clear_ready(),
                Err(message) => {
                    drop(guard);
                    return Err(self.broken(message));
                }
            }
        }
    }

    async fn next_result(&mut self) -> Result<Option<RawResult>> {
        if let Some(result) = self.pending_result.take() {
            return Ok(Some(result));
        }
        while self.conn.is_busy() {
            self.wait_for_input().await?;
        }
        Ok(self.conn.get_result())
    }

    /// Reads the remaining results after an error, then returns it; the session is idle.
    /// Cancel-safe: the error waits in `pending_error` until the drain completes.
    async fn finish_with_error(&mut self, fields: ErrorFields) -> TransportError {
        self.pending_error = Some(fields);
        self.finish_pending_error().await
    }

    /// Continues [`Self::finish_with_error`] (also after a cancelled call).
    async fn finish_pending_error(&mut self) -> TransportError {
        loop {
            match self.next_result().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    self.pending_error = None;
                    return error;
                }
            }
        }
        self.state = State::Idle;
        let fields = self.pending_error.take().unwrap_or_default();
        match db_error(b'E', &fields) {
            Some(error) => TransportError::server(Box::new(error)),
            None => TransportError::Libpq(
                "the server reported an error libpq could not describe".into(),
            ),
        }
    }

    /// Sends a query; read its responses with [`Self::next_response`].
    ///
    /// # Errors
    /// [`TransportError::InvalidState`] when another query runs; libpq and I/O errors.
    pub async fn send_query(&mut self, sql: &str) -> Result<()> {
        self.check_usable()?;
        if self.state != State::Idle {
            return Err(TransportError::InvalidState(
                "a query is already in progress",
            ));
        }
        let sql = CString::new(sql)
            .map_err(|_| TransportError::Config("a query must not contain NUL bytes".into()))?;
        self.conn
            .send_query(&sql)
            .map_err(|message| self.broken(message))?;
        self.state = State::Busy;
        self.flush_output().await
    }

    /// The next response of the running query (see the `Transport` contract).
    ///
    /// # Errors
    /// [`TransportError::Server`] when the query failed (the session stays usable), state,
    /// libpq and I/O errors.
    pub async fn next_response(&mut self) -> Result<Response> {
        self.check_usable()?;
        if self.pending_error.is_some() {
            return Err(self.finish_pending_error().await);
        }
        match self.state {
            State::Idle => return Err(TransportError::InvalidState("no query in progress")),
            State::Copy {
                both: false,
                client_done: false,
                ..
            } => {
                return Err(TransportError::InvalidState(
                    "the CopyIn stream has not been ended with send_copy_done",
                ));
            }
            State::Copy {
                server_done: false, ..
            } => {
                return Err(TransportError::InvalidState(
                    "the COPY stream has not been read to its end",
                ));
            }
            State::Copy {
                both, client_done, ..
            } => {
                if both && !client_done {
                    self.end_copy().await?;
                }
                self.state = State::Busy;
            }
            State::Busy | State::Broken => {}
        }
        loop {
            let Some(result) = self.next_result().await? else {
                self.state = State::Idle;
                return Ok(Response::Ready);
            };
            match result.status() {
                ResultStatus::CommandOk | ResultStatus::TuplesOk => {
                    return Ok(Response::ResultSet(result_set(&result)));
                }
                ResultStatus::EmptyQuery => {}
                ResultStatus::CopyOut => {
                    self.state = State::Copy {
                        both: false,
                        ended: false,
                        server_done: false,
                        client_done: true,
                    };
                    return Ok(Response::CopyOut);
                }
                ResultStatus::CopyBoth => {
                    self.state = State::Copy {
                        both: true,
                        ended: false,
                        server_done: false,
                        client_done: false,
                    };
                    return Ok(Response::CopyBoth);
                }
                ResultStatus::CopyIn => {
                    self.state = State::Copy {
                        both: false,
                        ended: false,
                        server_done: true,
                        client_done: false,
                    };
                    return Ok(Response::CopyIn);
                }
                ResultStatus::FatalError => {
                    return Err(self.finish_with_error(result.error_fields()).await);
                }
                ResultStatus::Other => {
                    self.state = State::Broken;
                    return Err(TransportError::Unexpected {
                        got: "an unexpected libpq result",
                        during: "reading query results",
                    });
                }
            }
        }
    }

    async fn end_copy(&mut self) -> Result<()> {
        loop {
            match self.conn.put_copy_end() {
                Ok(true) => break,
                Ok(false) => self.flush_output().await?,
                // The server ended a CopyIn with an error first: `next_response` reads it.
                Err(_) if self.in_copy_in() => break,
                Err(message) => return Err(self.broken(message)),
            }
        }
        if let State::Copy { client_done, .. } = &mut self.state {
            *client_done = true;
        }
        self.flush_output().await
    }

    /// Runs `sql` and collects every result set.
    ///
    /// # Errors
    /// As [`Self::next_response`]; [`TransportError::Unexpected`] when it starts a COPY.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>> {
        self.send_query(sql).await?;
        let mut sets = Vec::new();
        loop {
            match self.next_response().await? {
                Response::ResultSet(set) => sets.push(set),
                Response::Ready => return Ok(sets),
                Response::CopyOut | Response::CopyBoth | Response::CopyIn => {
                    self.state = State::Broken;
                    return Err(TransportError::Unexpected {
                        got: "a COPY stream",
                        during: "running a simple query",
                    });
                }
            }
        }
    }

    /// Sends `sql` and waits for its CopyBoth stream.
    ///
    /// # Errors
    /// As [`Self::next_response`]; [`TransportError::Unexpected`] for any other response.
    pub async fn copy_both(&mut self, sql: &str) -> Result<()> {
        self.send_query(sql).await?;
        if self.next_response().await? == Response::CopyBoth {
            return Ok(());
        }
        self.state = State::Broken;
        Err(TransportError::Unexpected {
            got: "a response other than CopyBoth",
            during: "starting a CopyBoth stream",
        })
    }

    /// The next CopyData payload (zero-copy: libpq's buffer, freed when the `Bytes` drops),
    /// `None` once the server ended the stream. Every frame libpq has buffered is returned
    /// before the socket is polled again. Cancel-safe: a server error that ends the stream is
    /// delivered by the next call if this one is dropped before the session is idle again.
    ///
    /// # Errors
    /// [`TransportError::Server`] when the server ended the stream with an error; state,
    /// libpq and I/O errors.
    pub async fn read_copy_data(&mut self) -> Result<Option<Bytes>> {
        if self.pending_error.is_some() {
            return Err(self.finish_pending_error().await);
        }
        let both = match self.state {
            State::Copy {
                server_done: true, ..
            } => return Ok(None),
            State::Copy {
                ended: true, both, ..
            } => return self.copy_ended(both).await,
            State::Copy { both, .. } => both,
            _ => return Err(TransportError::InvalidState("no COPY stream in progress")),
        };
        loop {
            match self.conn.get_copy_data() {
                CopyData::Data(data) => return Ok(Some(data)),
                CopyData::WouldBlock => self.wait_for_input().await?,
                CopyData::Done => return self.copy_ended(both).await,
                CopyData::Error => {
                    let message = self.conn.error_message();
                    return Err(self.broken(message));
                }
            }
        }
    }

    /// The next CopyData payload if libpq already holds it (no read from the socket, no
    /// waiting); `None` when it holds nothing complete or the COPY is ending (then
    /// [`read_copy_data`](Self::read_copy_data) takes over).
    ///
    /// # Errors
    /// A broken connection.
    pub fn try_read_copy_data(&mut self) -> Result<Option<Bytes>> {
        if self.pending_error.is_some()
            || !matches!(
                self.state,
                State::Copy {
                    server_done: false,
                    ended: false,
                    ..
                }
            )
        {
            return Ok(None);
        }
        match self.conn.get_copy_data() {
            CopyData::Data(data) => Ok(Some(data)),
            CopyData::WouldBlock => Ok(None),
            CopyData::Done => {
                // libpq has moved past the COPY: the next read collects its result.
                if let State::Copy { ended, .. } = &mut self.state {
                    *ended = true;
                }
                Ok(None)
            }
            CopyData::Error => {
                let message = self.conn.error_message();
                Err(self.broken(message))
            }
        }
    }

    /// The server ended the COPY: an error surfaces now; otherwise the following result is
    /// kept for `next_response`.
    /// Cancel-safe: until the result is read, `ended` makes the next call come back here.
    async fn copy_ended(&mut self, both: bool) -> Result<Option<Bytes>> {
        if let State::Copy { ended, .. } = &mut self.state {
            *ended = true;
        }
        let result = self.next_result().await?;
        if let State::Copy { server_done, .. } = &mut self.state {
            *server_done = true;
        }
        match result {
            Some(result) if result.status() == ResultStatus::FatalError => {
                Err(self.finish_with_error(result.error_fields()).await)
            }
            // In CopyBoth libpq now reports COPY_IN until we send CopyDone: just a marker.
            Some(result) if both && result.status() == ResultStatus::CopyIn => Ok(None),
            other => {
                if both && let State::Copy { client_done, .. } = &mut self.state {
                    // A CopyBoth the server ended without CopyDone (a shutting-down walsender
                    // sends CommandComplete): libpq has left COPY mode, so no CopyDone of
                    // ours is expected (PQputCopyEnd would fail with "no COPY in progress").
                    *client_done = true;
                }
                self.pending_result = other;
                Ok(None)
            }
        }
    }

    /// Whether [`try_read_copy_data`](Self::try_read_copy_data) saw the COPY end and its
    /// result has not been read yet. Writes are then dropped: libpq may have left COPY mode
    /// (a lost connection, a walsender's CommandComplete) and would refuse them with "no
    /// COPY in progress", and the next [`read_copy_data`](Self::read_copy_data) reports how
    /// the stream ended — as when the end was read before any write.
    fn copy_ending(&self) -> bool {
        matches!(
            self.state,
            State::Copy {
                ended: true,
                server_done: false,
                ..
            }
        )
    }

    fn check_can_write(&self) -> Result<()> {
        match self.state {
            State::Copy {
                client_done: false, ..
            } => Ok(()),
            _ => Err(TransportError::InvalidState(
                "no CopyBoth or CopyIn stream open for writing",
            )),
        }
    }

    /// Queues one CopyData message (`PQputCopyData`); [`Self::flush`] sends it.
    ///
    /// # Errors
    /// When no CopyBoth or CopyIn stream is open for writing; libpq errors.
    pub fn write_copy_data(&mut self, data: &[u8]) -> Result<()> {
        self.check_can_write()?;
        if self.copy_in_failed || self.copy_ending() {
            return Ok(());
        }
        if self.unqueued.is_empty() && self.put_copy_data(data)? {
            return Ok(());
        }
        let mut copy = BytesMut::with_capacity(data.len());
        copy.put_slice(data);
        self.unqueued.push(copy.freeze());
        Ok(())
    }

    /// `PQputCopyData`; in a CopyIn stream the server already ended with an error, marks it
    /// failed (the error is read later) instead of breaking the session.
    fn put_copy_data(&mut self, data: &[u8]) -> Result<bool> {
        match self.conn.put_copy_data(data) {
            Ok(queued) => Ok(queued),
            Err(_) if self.in_copy_in() => {
                self.copy_in_failed = true;
                self.unqueued.clear();
                Ok(true)
            }
            Err(message) => Err(self.broken(message)),
        }
    }

    fn in_copy_in(&self) -> bool {
        matches!(
            self.state,
            State::Copy {
                both: false,
                client_done: false,
                ..
            }
        )
    }

    /// Sends everything queued.
    ///
    /// # Errors
    /// libpq and I/O errors.
    pub async fn flush(&mut self) -> Result<()> {
        if self.copy_ending() {
            self.unqueued.clear();
            return Ok(());
        }
        while let Some(data) = self.unqueued.first().cloned() {
            if self.put_copy_data(&data)? {
                if !self.unqueued.is_empty() {
                    self.unqueued.remove(0);
                }
            } else {
                self.flush_output().await?;
            }
        }
        self.flush_output().await
    }

    /// Ends the client side of a CopyBoth or CopyIn stream (`PQputCopyEnd`); after a CopyIn,
    /// [`Self::next_response`] reads the command's result.
    ///
    /// # Errors
    /// When no CopyBoth or CopyIn stream is open for writing; libpq and I/O errors.
    pub async fn send_copy_done(&mut self) -> Result<()> {
        self.check_can_write()?;
        if self.copy_ending() {
            return Ok(());
        }
        self.flush().await?;
        if self.copy_in_failed {
            self.copy_in_failed = false;
            if let State::Copy { client_done, .. } = &mut self.state {
                *client_done = true;
            }
            return Ok(());
        }
        self.end_copy().await
    }

    /// Ends the session (`PQfinish` sends Terminate).
    ///
    /// # Errors
    /// None in practice; the signature matches the other backends.
    #[allow(clippy::unused_async, reason = "same signature as the other backends")]
    pub async fn close(self) -> Result<()> {
        drop(self);
        Ok(())
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
