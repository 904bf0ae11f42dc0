//! An established native session: simple queries, CopyBoth, CopyOut and CopyIn, close.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::framed::Framed;
use crate::cancel::CancelToken;
use crate::error::{Result, TransportError};
use crate::message::{BackendMessage, DbError, Severity, frontend};
use crate::result::{Response, ResultSet, Row};
use crate::transport::MAX_KEPT_NOTICES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Ready for a query.
    Idle,
    /// A query was sent; responses are being read.
    Busy,
    /// Inside a COPY stream. A CopyIn stream is `both: false` with `server_done` (the server
    /// sends nothing in it) and `client_done: false` until our CopyDone.
    Copy {
        both: bool,
        server_done: bool,
        client_done: bool,
    },
    /// A protocol or I/O error left the stream unusable.
    Broken,
}

/// A session established by the pure-Rust backend.
#[derive(Debug)]
pub struct NativeConnection {
    io: Framed,
    state: State,
    parameters: HashMap<String, String>,
    notices: VecDeque<Box<DbError>>,
    /// A server error whose ReadyForQuery has not been read yet: kept here first, so a call
    /// cancelled meanwhile loses nothing and the next call delivers it.
    pending_error: Option<Box<DbError>>,
    cancel: Option<CancelToken>,
}

impl NativeConnection {
    pub(crate) fn new(
        io: Framed,
        parameters: HashMap<String, String>,
        cancel: Option<CancelToken>,
    ) -> Self {
        NativeConnection {
            io,
            state: State::Idle,
            parameters,
            notices: VecDeque::new(),
            pending_error: None,
            cancel,
        }
    }

    /// A run-time parameter the server reported (`server_version`, `integer_datetimes`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// Whether the session is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        self.io.stream.is_tls()
    }

    /// Whether the session runs over a Unix-domain socket.
    pub fn is_unix_socket(&self) -> bool {
        self.io.stream.is_unix_socket()
    }

    /// A token that cancels the running query from another task, if the server sent
    /// BackendKeyData.
    pub fn cancel_token(&self) -> Option<CancelToken> {
        self.cancel.clone()
    }

    /// Notices (warnings, infos) received since the last call.
    pub fn take_notices(&mut self) -> Vec<DbError> {
        self.notices.drain(..).map(|n| *n).collect()
    }

    /// Receives the next message, handling asynchronous ones (notices, parameter changes).
    async fn recv(&mut self) -> Result<BackendMessage> {
        loop {
            let message = match self.io.read_message().await {
                Ok(m) => m,
                Err(e) => {
                    self.state = State::Broken;
                    return Err(e);
                }
            };
            match message {
                BackendMessage::NoticeResponse(notice) => {
                    tracing::info!(target: "pg_walstream::server", severity = %notice.severity, code = %notice.code, "{}", notice.message);
                    if self.notices.len() == MAX_KEPT_NOTICES {
                        self.notices.pop_front();
                    }
                    self.notices.push_back(notice);
                }
                BackendMessage::ParameterStatus { name, value } => {
                    self.parameters.insert(name, value);
                }
                BackendMessage::NotificationResponse { .. } => {}
                other => return Ok(other),
            }
        }
    }

    fn unexpected(&mut self, message: &BackendMessage, during: &'static str) -> TransportError {
        self.state = State::Broken;
        TransportError::Unexpected {
            got: message_name(message),
            during,
        }
    }

    /// After an ErrorResponse: reads up to ReadyForQuery, then returns the server error.
    ///
    /// A FATAL or PANIC error ends the session (the server closes the socket), and so does a
    /// failure while draining; either way the server's error is what the caller gets, so its
    /// SQLSTATE (e.g. `ADMIN_SHUTDOWN`) stays visible.
    ///
    /// Cancel-safe: the error waits in `pending_error` until ReadyForQuery arrives; a call
    /// dropped meanwhile leaves it for the next call ([`Self::finish_pending_error`]).
    async fn finish_with_error(&mut self, error: Box<DbError>) -> TransportError {
        if matches!(error.severity, Severity::Fatal | Severity::Panic) {
            self.state = State::Broken;
            return TransportError::server(error);
        }
        self.pending_error = Some(error);
        self.finish_pending_error().await
    }

    /// Reads up to ReadyForQuery, then returns the pending server error.
    async fn finish_pending_error(&mut self) -> TransportError {
        loop {
            match self.recv().await {
                Ok(BackendMessage::ReadyForQuery(_)) => {
                    self.state = State::Idle;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        match self.pending_error.take() {
            Some(error) => TransportError::server(error),
            None => TransportError::InvalidState("no server error pending"),
        }
    }

    fn check_usable(&self) -> Result<()> {
        if self.state == State::Broken {
            return Err(TransportError::InvalidState(
                "the connection is broken after an earlier error",
            ));
        }
        Ok(())
    }

    /// Sends a query (simple protocol); read its responses with [`Self::next_response`].
    ///
    /// # Errors
    /// [`TransportError::InvalidState`] when another query is still running, I/O errors.
    pub async fn send_query(&mut self, sql: &str) -> Result<()> {
        self.check_usable()?;
        if self.state != State::Idle {
            return Err(TransportError::InvalidState(
                "a query is already in progress",
            ));
        }
        frontend::query(&mut self.io.write_buf, sql)?;
        self.state = State::Busy;
        self.io.flush().await
    }

    /// The next response to the running query: a result set, the start of a COPY stream, or
    /// [`Response::Ready`] when the query is finished.
    ///
    /// After a CopyBoth stream ended from the server side, a CopyDone is sent automatically if
    /// the caller has not sent one. A CopyIn stream must be ended with
    /// [`Self::send_copy_done`] first.
    ///
    /// # Errors
    /// [`TransportError::Server`] when the query failed (the connection stays usable),
    /// [`TransportError::InvalidState`] when no query runs or a COPY stream is unfinished,
    /// protocol and I/O errors.
    pub async fn next_response(&mut self) -> Result<Response> {
        if self.pending_error.is_some() {
            return Err(self.finish_pending_error().await);
        }
        self.check_usable()?;
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
                    frontend::copy_done(&mut self.io.write_buf);
                    self.io.flush().await?;
                }
                self.state = State::Busy;
            }
            State::Busy | State::Broken => {}
        }
        let mut columns: Option<Arc<[String]>> = None;
        let mut rows = Vec::new();
        loop {
            match self.recv().await? {
                BackendMessage::RowDescription(desc) => columns = Some(desc.column_names()?.into()),
                BackendMessage::DataRow(row) if columns.is_some() => {
                    rows.push(Row::new(row.values()?));
                }
                BackendMessage::CommandComplete(tag) => {
                    let columns = columns.take().unwrap_or_else(|| Arc::from(Vec::new()));
                    return Ok(Response::ResultSet(ResultSet::new(
                        columns,
                        core::mem::take(&mut rows),
                        tag,
                    )));
                }
                BackendMessage::EmptyQueryResponse => {}
                // A walsender may still send a keepalive after its CopyDone; libpq drops
                // CopyData outside COPY mode silently, and so do we.
                BackendMessage::CopyData(_) | BackendMessage::CopyDone => {
                    tracing::debug!(
                        "dropping copy message that arrived after the COPY stream ended"
                    );
                }
                BackendMessage::CopyOutResponse => {
                    self.state = State::Copy {
                        both: false,
                        server_done: false,
                        client_done: true,
                    };
                    return Ok(Response::CopyOut);
                }
                BackendMessage::CopyBothResponse => {
                    self.state = State::Copy {
                        both: true,
                        server_done: false,
                        client_done: false,
                    };
                    return Ok(Response::CopyBoth);
                }
                BackendMessage::CopyInResponse => {
                    self.state = State::Copy {
                        both: false,
                        server_done: true,
                        client_done: false,
                    };
                    return Ok(Response::CopyIn);
                }
                BackendMessage::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    return Ok(Response::Ready);
                }
                BackendMessage::ErrorResponse(e) => return Err(self.finish_with_error(e).await),
                other => return Err(self.unexpected(&other, "reading query results")),
            }
        }
    }

    /// Runs `sql` and collects every result set until the server is ready again.
    ///
    /// # Errors
    /// [`TransportError::Server`] when the query failed; [`TransportError::Unexpected`] when
    /// it started a COPY stream (use [`Self::send_query`] and [`Self::next_response`] for
    /// those); protocol and I/O errors.
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

    /// Sends `sql` and waits for its CopyBoth stream (e.g. `START_REPLICATION`).
    ///
    /// # Errors
    /// [`TransportError::Server`] when the command failed, [`TransportError::Unexpected`]
    /// when it produced something else, protocol and I/O errors.
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

    /// The next CopyData payload of the current COPY stream, or `None` once the server sent
    /// CopyDone. The payload is a view into the read buffer: no copy is made.
    ///
    /// Cancel-safe: dropping the future (e.g. in `tokio::select!`) loses no data, and a
    /// server error that ends the stream is delivered by the next call if this one is dropped
    /// before the session is idle again.
    ///
    /// # Errors
    /// [`TransportError::Server`] when the server ended the stream with an error (the session
    /// is then idle), [`TransportError::InvalidState`] outside a COPY stream, protocol and I/O
    /// errors.
    pub async fn read_copy_data(&mut self) -> Result<Option<Bytes>> {
        if self.pending_error.is_some() {
            return Err(self.finish_pending_error().await);
        }
        match &mut self.state {
            State::Copy {
                server_done: true, ..
            } => return Ok(None),
            State::Copy { .. } => {}
            _ => return Err(TransportError::InvalidState("no COPY stream in progress")),
        }
        match self.recv().await? {
            BackendMessage::CopyData(data) => Ok(Some(data)),
            BackendMessage::CopyDone => {
                if let State::Copy { server_done, .. } = &mut self.state {
                    *server_done = true;
                }
                Ok(None)
            }
            // A walsender that shuts down (WalSndDone) ends the COPY with CommandComplete and
            // no CopyDone, then exits; libpq treats that as the end of the COPY, and so do we.
            BackendMessage::CommandComplete(_) => {
                self.state = State::Busy;
                Ok(None)
            }
            BackendMessage::ErrorResponse(e) => Err(self.finish_with_error(e).await),
            other => Err(self.unexpected(&other, "reading a COPY stream")),
        }
    }

    /// The next CopyData payload if one is already buffered (no I/O, no waiting); `None`
    /// when nothing complete is buffered or the next message is not CopyData (then
    /// [`read_copy_data`](Self::read_copy_data) handles it).
    ///
    /// # Errors
    /// Protocol errors (a message longer than the limit).
    pub fn try_read_copy_data(&mut self) -> Result<Option<Bytes>> {
        if self.pending_error.is_some()
            || !matches!(
                self.state,
                State::Copy {
                    server_done: false,
                    ..
                }
            )
        {
            return Ok(None);
        }
        self.io.try_copy_data().inspect_err(|_| {
            self.state = State::Broken;
        })
    }

    /// Takes the socket off the runtime's reactor until the next read or write
    /// ([`Transport::park_reads`](crate::Transport::park_reads)).
    ///
    /// # Errors
    /// When the socket cannot leave the reactor: the connection is broken then.
    pub fn park_reads(&mut self) -> Result<()> {
        self.io.park().inspect_err(|_| {
            self.state = State::Broken;
        })
    }

    fn check_can_write(&self) -> Result<()> {
        match self.state {
            State::Copy {
                client_done: false, ..
            } => Ok(()),
            State::Broken => Err(TransportError::InvalidState(
                "the connection is broken after an earlier error",
            )),
            _ => Err(TransportError::InvalidState(
                "no CopyBoth or CopyIn stream open for writing",
            )),
        }
    }

    /// Queues one CopyData message (e.g. a standby status update, or a chunk of a CopyIn
    /// stream); [`Self::flush`] sends it.
    ///
    /// # Errors
    /// [`TransportError::InvalidState`] outside an open CopyBoth or CopyIn stream.
    pub fn write_copy_data(&mut self, data: &[u8]) -> Result<()> {
        self.check_can_write()?;
        frontend::copy_data(&mut self.io.write_buf, data)?;
        Ok(())
    }

    /// Sends everything queued with one write.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn flush(&mut self) -> Result<()> {
        self.io.flush().await
    }

    /// Ends the client side of a CopyBoth stream (CopyDone) and flushes. Keep reading with
    /// [`Self::read_copy_data`] until it returns `None`. For a CopyIn stream, read the
    /// command's result with [`Self::next_response`] next.
    ///
    /// # Errors
    /// [`TransportError::InvalidState`] outside an open CopyBoth or CopyIn stream, I/O errors.
    pub async fn send_copy_done(&mut self) -> Result<()> {
        self.check_can_write()?;
        frontend::copy_done(&mut self.io.write_buf);
        if let State::Copy { client_done, .. } = &mut self.state {
            *client_done = true;
        }
        self.io.flush().await
    }

    /// Sends Terminate and shuts the socket down.
    ///
    /// # Errors
    /// I/O errors while sending (the connection is closed either way).
    pub async fn close(mut self) -> Result<()> {
        frontend::terminate(&mut self.io.write_buf);
        self.io.flush().await?;
        let mut stream = self.io.into_stream();
        stream.shutdown().await.map_err(TransportError::io)
    }
}

/// The protocol name of a message, for errors.
pub(crate) fn message_name(message: &BackendMessage) -> &'static str {
    match message {
        BackendMessage::Authentication(_) => "Authentication",
        BackendMessage::BackendKeyData { .. } => "BackendKeyData",
        BackendMessage::ParameterStatus { .. } => "ParameterStatus",
        BackendMessage::ReadyForQuery(_) => "ReadyForQuery",
        BackendMessage::RowDescription(_) => "RowDescription",
        BackendMessage::DataRow(_) => "DataRow",
        BackendMessage::CommandComplete(_) => "CommandComplete",
        BackendMessage::EmptyQueryResponse => "EmptyQueryResponse",
        BackendMessage::ErrorResponse(_) => "ErrorResponse",
        BackendMessage::NoticeResponse(_) => "NoticeResponse",
        BackendMessage::CopyInResponse => "CopyInResponse",
        BackendMessage::CopyOutResponse => "CopyOutResponse",
        BackendMessage::CopyBothResponse => "CopyBothResponse",
        BackendMessage::CopyData(_) => "CopyData",
        BackendMessage::CopyDone => "CopyDone",
        BackendMessage::NotificationResponse { .. } => "NotificationResponse",
        BackendMessage::NegotiateProtocolVersion { .. } => "NegotiateProtocolVersion",
    }
}
