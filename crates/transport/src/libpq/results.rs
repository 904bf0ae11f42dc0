//! Turning libpq's results and failures into this crate's types, and running blocking libpq
//! calls off the async threads.

use std::sync::Arc;

use super::connect_error::server_error;
use super::ffi::{ErrorFields, RawConn, RawResult};
use crate::error::{Result, TransportError};
use crate::message::DbError;
use crate::result::{ResultSet, Row};

/// Runs `work` on tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| TransportError::io(std::io::Error::other(e)))
}

/// The error for a failed connection attempt: the server's error with its SQLSTATE when the
/// server refused us, libpq's message otherwise.
pub(super) fn connect_failure(conn: &RawConn) -> TransportError {
    libpq_error(conn.error_message())
}

/// A libpq failure message as an error: the server's error (with SQLSTATE) when the message
/// carries one (e.g. FATAL from `pg_terminate_backend`), libpq's own message otherwise.
pub(super) fn libpq_error(message: String) -> TransportError {
    match server_error(&message) {
        Some(error) => TransportError::server(Box::new(error)),
        None => TransportError::Libpq(message),
    }
}

/// Builds a [`DbError`] from libpq's error fields by re-encoding them as the ErrorResponse
/// body they came from, so both backends share one parser.
pub(super) fn db_error(tag: u8, fields: &ErrorFields) -> Option<DbError> {
    let mut body = Vec::new();
    for (code, text) in fields {
        body.push(*code);
        body.extend_from_slice(text.as_bytes());
        body.push(0);
    }
    body.push(0);
    DbError::parse(tag, &body).ok()
}

pub(super) fn result_set(result: &RawResult) -> ResultSet {
    let columns: Arc<[String]> = (0..result.columns())
        .map(|c| result.column_name(c))
        .collect();
    let rows = (0..result.rows())
        .map(|row| {
            Row::new(
                (0..columns.len())
                    .map(|column| result.value(row, column))
                    .collect(),
            )
        })
        .collect();
    ResultSet::new(columns, rows, result.command_tag())
}
