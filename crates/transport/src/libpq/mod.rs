//! The libpq backend (feature `libpq`): the same [`Transport`](crate::Transport) contract over
//! libpq's non-blocking API.
//!
//! Connecting uses `PQconnectStartParams` + `PQconnectPoll`, waiting for socket readiness with
//! tokio's `AsyncFd` (never a blocking libpq call on the runtime). Queries use `PQsendQuery`;
//! input is read with `PQconsumeInput` and every buffered CopyData frame is drained with
//! `PQgetCopyData(async)` before waiting again; status updates go out with `PQputCopyData` +
//! `PQflush`. The connection is configured from the same parsed `Config` as the native
//! backend (rendered as libpq keywords); settings the linked libpq cannot honour are errors.
//! TLS uses the system's OpenSSL through libpq. Cancellation uses `PQcancel` on a
//! blocking thread.
//!
//! All `unsafe` code of the workspace lives in the `ffi` submodule.

mod connect_error;
mod ffi;
mod params;
mod results;
mod session;

pub(crate) use ffi::RawCancel;
pub use session::LibpqConnection;

use bytes::Bytes;

use crate::cancel::CancelToken;
use crate::error::Result;
use crate::message::DbError;
use crate::result::{Response, ResultSet};
use crate::transport::Transport;

impl Transport for LibpqConnection {
    async fn send_query(&mut self, sql: &str) -> Result<()> {
        LibpqConnection::send_query(self, sql).await
    }

    async fn next_response(&mut self) -> Result<Response> {
        LibpqConnection::next_response(self).await
    }

    async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>> {
        LibpqConnection::simple_query(self, sql).await
    }

    async fn copy_both(&mut self, sql: &str) -> Result<()> {
        LibpqConnection::copy_both(self, sql).await
    }

    #[inline]
    async fn read_copy_data(&mut self) -> Result<Option<Bytes>> {
        LibpqConnection::read_copy_data(self).await
    }

    #[inline]
    fn try_read_copy_data(&mut self) -> Result<Option<Bytes>> {
        LibpqConnection::try_read_copy_data(self)
    }

    fn park_reads(&mut self) -> Result<()> {
        LibpqConnection::park_reads(self)
    }

    fn write_copy_data(&mut self, data: &[u8]) -> Result<()> {
        LibpqConnection::write_copy_data(self, data)
    }

    async fn flush(&mut self) -> Result<()> {
        LibpqConnection::flush(self).await
    }

    async fn send_copy_done(&mut self) -> Result<()> {
        LibpqConnection::send_copy_done(self).await
    }

    fn cancel_token(&self) -> Option<CancelToken> {
        LibpqConnection::cancel_token(self)
    }

    fn parameter(&self, name: &str) -> Option<&str> {
        LibpqConnection::parameter(self, name)
    }

    fn take_notices(&mut self) -> Vec<DbError> {
        LibpqConnection::take_notices(self)
    }

    fn is_tls(&self) -> bool {
        LibpqConnection::is_tls(self)
    }

    fn is_unix_socket(&self) -> bool {
        LibpqConnection::is_unix_socket(self)
    }

    async fn close(self) -> Result<()> {
        LibpqConnection::close(self).await
    }
}
