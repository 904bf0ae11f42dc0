//! The only `unsafe` code of the workspace: safe, owning wrappers around libpq's C API.
//!
//! Every `PGconn` is finished exactly once ([`RawConn`]'s `Drop`), every `PGresult` cleared
//! exactly once ([`RawResult`]'s `Drop`), every CopyData buffer freed with `PQfreemem` exactly
//! once (the owner inside the `Bytes` handed out), every `PGcancel` freed once
//! ([`RawCancel`]'s `Drop`). Pointers never escape these wrappers.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Mutex;

use bytes::Bytes;
use libpq_sys as pq;

mod io;

use io::ssl_pending_fn;
#[cfg(test)]
pub(crate) use io::ssl_pending_object;
pub(crate) use io::{Socket, register_socket, reregister_socket, socket_has_input};

/// Fields of an error or notice: (field code, text), as in an ErrorResponse message.
pub(crate) type ErrorFields = Vec<(u8, String)>;

/// The error field codes libpq exposes through `PQresultErrorField`.
const ERROR_FIELD_CODES: [u8; 18] = [
    b'S', b'V', b'C', b'M', b'D', b'H', b'P', b'p', b'q', b'W', b's', b't', b'c', b'd', b'n', b'F',
    b'L', b'R',
];

/// Where the notice receiver callback puts notices until the session takes them: the newest
/// [`MAX_KEPT_NOTICES`](crate::transport::MAX_KEPT_NOTICES), as the native backend keeps.
#[derive(Default)]
struct NoticeSink {
    notices: Mutex<VecDeque<ErrorFields>>,
}

/// The linked libpq's version, e.g. `150018` for 15.18 (`PQlibVersion`).
pub(crate) fn library_version() -> u32 {
    // SAFETY: PQlibVersion takes no arguments and only returns a constant.
    u32::try_from(unsafe { pq::PQlibVersion() }).unwrap_or(0)
}

/// libpq's connection options that it can fill from an environment variable, as
/// `(keyword, variable)` (`PQconndefaults`), for the linked libpq's version.
pub(crate) fn environment_options() -> Vec<(String, String)> {
    // SAFETY: PQconndefaults returns a NULL-keyword-terminated array (or NULL when out of
    // memory) that we own and free once with PQconninfoFree; strings are copied out first.
    unsafe {
        let options = pq::PQconndefaults();
        if options.is_null() {
            return Vec::new();
        }
        let mut found = Vec::new();
        let mut option = options;
        while !(*option).keyword.is_null() {
            if !(*option).envvar.is_null() {
                found.push((
                    CStr::from_ptr((*option).keyword)
                        .to_string_lossy()
                        .into_owned(),
                    CStr::from_ptr((*option).envvar)
                        .to_string_lossy()
                        .into_owned(),
                ));
            }
            option = option.add(1);
        }
        pq::PQconninfoFree(options);
        found
    }
}

/// Outcome of one `PQconnectPoll` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollStatus {
    /// Wait until the socket is readable, then poll again.
    Reading,
    /// Wait until the socket is writable, then poll again.
    Writing,
    /// The connection is established.
    Ok,
    /// The connection attempt failed (see [`RawConn::error_message`]).
    Failed,
}

/// What `PQgetCopyData` in asynchronous mode returned.
#[derive(Debug)]
pub(crate) enum CopyData {
    /// One CopyData payload.
    Data(Bytes),
    /// No complete message is buffered yet.
    WouldBlock,
    /// The COPY is over; results follow.
    Done,
    /// libpq reported an error (see [`RawConn::error_message`]).
    Error,
}

/// Status of a result, mirroring `ExecStatusType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultStatus {
    /// A command without rows completed.
    CommandOk,
    /// A query with rows completed.
    TuplesOk,
    /// An empty query string.
    EmptyQuery,
    /// A CopyOut stream begins.
    CopyOut,
    /// A CopyBoth stream begins.
    CopyBoth,
    /// A CopyIn stream begins (`UPLOAD_MANIFEST`, `COPY ... FROM STDIN`).
    CopyIn,
    /// The command failed.
    FatalError,
    /// Anything else (bad response, pipeline states).
    Other,
}

/// An owned `PGconn`.
pub(crate) struct RawConn {
    conn: NonNull<pq::PGconn>,
    sink: Box<NoticeSink>,
}

// SAFETY: a PGconn is not bound to the thread that created it; libpq only requires that one
// thread uses a connection at a time, which `&mut self` on every mutating call guarantees.
unsafe impl Send for RawConn {}
// SAFETY: the `&self` methods only read connection state (status, socket, parameters, error
// message) and are never called concurrently with `&mut self` methods (borrow rules).
unsafe impl Sync for RawConn {}

impl RawConn {
    /// `PQconnectStartParams` with `expand_dbname = 0`: every value is taken literally.
    pub(crate) fn start(params: &[(&str, &str)]) -> Result<RawConn, String> {
        let owned: Vec<(CString, CString)> = params
            .iter()
            .map(|(k, v)| Ok((CString::new(*k)?, CString::new(*v)?)))
            .collect::<Result<_, std::ffi::NulError>>()
            .map_err(|_| "connection parameters must not contain NUL bytes".to_owned())?;
        let mut keywords: Vec<*const c_char> = owned.iter().map(|(k, _)| k.as_ptr()).collect();
        let mut values: Vec<*const c_char> = owned.iter().map(|(_, v)| v.as_ptr()).collect();
        keywords.push(std::ptr::null());
        values.push(std::ptr::null());
        // SAFETY: both arrays are NULL-terminated and their strings outlive the call; libpq
        // copies what it keeps.
        let raw = unsafe { pq::PQconnectStartParams(keywords.as_ptr(), values.as_ptr(), 0) };
        let conn =
            NonNull::new(raw).ok_or_else(|| "libpq could not allocate a connection".to_owned())?;
        let mut sink = Box::new(NoticeSink::default());
        let sink_ptr: *mut NoticeSink = &raw mut *sink;
        // SAFETY: `conn` is valid; the sink is boxed (stable address) and lives until after
        // PQfinish (see Drop), so the callback never sees a dangling pointer.
        unsafe {
            pq::PQsetNoticeReceiver(
                conn.as_ptr(),
                Some(receive_notice),
                sink_ptr.cast::<c_void>(),
            );
        }
        Ok(RawConn { conn, sink })
    }

    /// Makes libpq include the SQLSTATE in its error messages (`PQERRORS_VERBOSE`), so a
    /// failed connection attempt still yields the server's code.
    pub(crate) fn set_verbose_errors(&mut self) {
        // SAFETY: valid PGconn, exclusive access.
        unsafe {
            pq::PQsetErrorVerbosity(self.conn.as_ptr(), pq::PGVerbosity::PQERRORS_VERBOSE);
        }
    }

    /// Whether the connection is in a bad state (failed start, or lost).
    pub(crate) fn is_bad(&self) -> bool {
        // SAFETY: `self.conn` is a valid PGconn for the lifetime of `self`.
        unsafe { pq::PQstatus(self.conn.as_ptr()) == pq::ConnStatusType::CONNECTION_BAD }
    }

    /// One `PQconnectPoll` step.
    pub(crate) fn connect_poll(&mut self) -> PollStatus {
        // SAFETY: valid PGconn, exclusive access.
        let status = unsafe { pq::PQconnectPoll(self.conn.as_ptr()) };
        match status {
            pq::PostgresPollingStatusType::PGRES_POLLING_OK => PollStatus::Ok,
            pq::PostgresPollingStatusType::PGRES_POLLING_READING => PollStatus::Reading,
            pq::PostgresPollingStatusType::PGRES_POLLING_WRITING => PollStatus::Writing,
            _ => PollStatus::Failed,
        }
    }

    /// The socket descriptor, if there is one.
    pub(crate) fn socket(&self) -> Option<RawFd> {
        // SAFETY: valid PGconn.
        let fd = unsafe { pq::PQsocket(self.conn.as_ptr()) };
        (fd >= 0).then_some(fd)
    }

    /// libpq's last error message, trimmed.
    pub(crate) fn error_message(&self) -> String {
        // SAFETY: valid PGconn; PQerrorMessage never returns NULL and the string lives until
        // the next libpq call on this connection; we copy it at once.
        let text = unsafe { CStr::from_ptr(pq::PQerrorMessage(self.conn.as_ptr())) };
        text.to_string_lossy().trim_end().to_owned()
    }

    /// `PQsetnonblocking(conn, 1)`.
    pub(crate) fn set_nonblocking(&mut self) -> Result<(), String> {
        // SAFETY: valid PGconn, exclusive access.
        let rc = unsafe { pq::PQsetnonblocking(self.conn.as_ptr(), 1) };
        if rc == 0 {
            Ok(())
        } else {
            Err(self.error_message())
        }
    }

    /// `PQsendQuery`.
    pub(crate) fn send_query(&mut self, sql: &CStr) -> Result<(), String> {
        // SAFETY: valid PGconn; `sql` is NUL-terminated and outlives the call.
        let rc = unsafe { pq::PQsendQuery(self.conn.as_ptr(), sql.as_ptr()) };
        if rc == 1 {
            Ok(())
        } else {
            Err(self.error_message())
        }
    }

    /// `PQconsumeInput`: reads what the socket has.
    pub(crate) fn consume_input(&mut self) -> Result<(), String> {
        // SAFETY: valid PGconn, exclusive access.
        let rc = unsafe { pq::PQconsumeInput(self.conn.as_ptr()) };
        if rc == 1 {
            Ok(())
        } else {
            Err(self.error_message())
        }
    }

    /// `PQisBusy`: whether `get_result` would have to wait for input.
    pub(crate) fn is_busy(&mut self) -> bool {
        // SAFETY: valid PGconn, exclusive access.
        unsafe { pq::PQisBusy(self.conn.as_ptr()) == 1 }
    }

    /// `PQgetResult` (call only when not busy).
    pub(crate) fn get_result(&mut self) -> Option<RawResult> {
        // SAFETY: valid PGconn; the returned result (if any) is owned by the caller.
        let raw = unsafe { pq::PQgetResult(self.conn.as_ptr()) };
        NonNull::new(raw).map(RawResult)
    }

    /// `PQgetCopyData(conn, &buf, 1)`: the payload is handed out zero-copy; the `Bytes`
    /// frees it with `PQfreemem` when its last clone is dropped.
    pub(crate) fn get_copy_data(&mut self) -> CopyData {
        let mut buffer: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid PGconn; `buffer` receives a malloc'd block we then own.
        let n = unsafe { pq::PQgetCopyData(self.conn.as_ptr(), &raw mut buffer, 1) };
        match n {
            0 => CopyData::WouldBlock,
            -1 => CopyData::Done,
            n if n > 0 => match NonNull::new(buffer.cast::<u8>()) {
                Some(ptr) => CopyData::Data(Bytes::from_owner(CopyBuffer {
                    ptr,
                    len: n as usize,
                })),
                None => CopyData::Error,
            },
            _ => CopyData::Error,
        }
    }

    /// `PQputCopyData`; `Ok(false)` when libpq could not queue it yet (retry after flush).
    pub(crate) fn put_copy_data(&mut self, data: &[u8]) -> Result<bool, String> {
        let len =
            c_int::try_from(data.len()).map_err(|_| "CopyData message too large".to_owned())?;
        // SAFETY: valid PGconn; `data` is readable for `len` bytes; libpq copies it.
        let rc =
            unsafe { pq::PQputCopyData(self.conn.as_ptr(), data.as_ptr().cast::<c_char>(), len) };
        match rc {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(self.error_message()),
        }
    }

    /// `PQputCopyEnd(conn, NULL)`; `Ok(false)` when it could not be queued yet.
    pub(crate) fn put_copy_end(&mut self) -> Result<bool, String> {
        // SAFETY: valid PGconn; NULL error message means a normal CopyDone.
        let rc = unsafe { pq::PQputCopyEnd(self.conn.as_ptr(), std::ptr::null()) };
        match rc {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(self.error_message()),
        }
    }

    /// `PQflush`: `Ok(true)` when everything queued was sent.
    pub(crate) fn flush(&mut self) -> Result<bool, String> {
        // SAFETY: valid PGconn, exclusive access.
        let rc = unsafe { pq::PQflush(self.conn.as_ptr()) };
        match rc {
            0 => Ok(true),
            1 => Ok(false),
            _ => Err(self.error_message()),
        }
    }

    /// `PQparameterStatus`: a server-reported parameter.
    pub(crate) fn parameter(&self, name: &str) -> Option<&str> {
        let name = CString::new(name).ok()?;
        // SAFETY: valid PGconn; the returned string is owned by the PGconn and stays valid
        // until libpq processes input again, which needs `&mut self`, so the borrow of
        // `self` bounds the returned reference correctly.
        let value = unsafe { pq::PQparameterStatus(self.conn.as_ptr(), name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: non-NULL, NUL-terminated string owned by the PGconn (see above).
        unsafe { CStr::from_ptr(value) }.to_str().ok()
    }

    /// The server process id (`PQbackendPID`).
    pub(crate) fn backend_pid(&self) -> i32 {
        // SAFETY: valid PGconn; only reads state.
        unsafe { pq::PQbackendPID(self.conn.as_ptr()) }
    }

    /// Whether the connection is encrypted.
    pub(crate) fn ssl_in_use(&self) -> bool {
        // SAFETY: valid PGconn; PQsslInUse only reads state.
        unsafe { pq::PQsslInUse(self.conn.as_ptr()) == 1 }
    }

    /// Whether OpenSSL holds decrypted bytes libpq has not read yet (the socket may be empty
    /// while they wait, so readiness alone would never wake us).
    pub(crate) fn tls_read_pending(&self) -> bool {
        if !self.ssl_in_use() {
            return false;
        }
        let Some(ssl_pending) = ssl_pending_fn() else {
            return false;
        };
        let name = c"OpenSSL";
        // SAFETY: valid PGconn; returns the connection's SSL* or NULL.
        let ssl = unsafe { pq::PQsslStruct(self.conn.as_ptr(), name.as_ptr()) };
        if ssl.is_null() {
            return false;
        }
        // SAFETY: `ssl` is the live SSL object of this connection; SSL_pending only reads it.
        unsafe { ssl_pending(ssl) > 0 }
    }

    /// Notices received since the last call.
    pub(crate) fn take_notices(&mut self) -> Vec<ErrorFields> {
        let mut notices = self
            .sink
            .notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        notices.drain(..).collect()
    }

    /// A cancel handle for the running query.
    pub(crate) fn cancel_handle(&self) -> Option<RawCancel> {
        // SAFETY: valid PGconn; the returned PGcancel is owned by the caller.
        let raw = unsafe { pq::PQgetCancel(self.conn.as_ptr()) };
        NonNull::new(raw).map(RawCancel)
    }
}

impl Drop for RawConn {
    fn drop(&mut self) {
        // SAFETY: the PGconn is valid and finished exactly once, here; PQfinish sends
        // Terminate and closes the socket. The notice sink is dropped after this.
        unsafe { pq::PQfinish(self.conn.as_ptr()) }
    }
}

/// The notice receiver: copies the notice's fields into the sink.
unsafe extern "C" fn receive_notice(arg: *mut c_void, result: *const pq::PGresult) {
    if arg.is_null() || result.is_null() {
        return;
    }
    // SAFETY: `arg` is the connection's boxed NoticeSink (see `RawConn::start`), alive for
    // as long as the PGconn; `result` is valid for the duration of the callback.
    let (sink, fields) = unsafe { (&*arg.cast::<NoticeSink>(), error_fields(result)) };
    if let Ok(mut notices) = sink.notices.lock() {
        if notices.len() >= crate::transport::MAX_KEPT_NOTICES {
            notices.pop_front();
            tracing::debug!("dropping the oldest unread server notice");
        }
        notices.push_back(fields);
    }
}

/// Reads every error field of `result`.
///
/// # Safety
/// `result` must be a valid PGresult.
unsafe fn error_fields(result: *const pq::PGresult) -> ErrorFields {
    let mut fields = Vec::new();
    for code in ERROR_FIELD_CODES {
        // SAFETY: the caller guarantees `result` is valid; the returned string (if any) is
        // owned by the result and copied at once.
        let value = unsafe { pq::PQresultErrorField(result, c_int::from(code)) };
        if !value.is_null() {
            // SAFETY: non-NULL, NUL-terminated string owned by the result.
            let text = unsafe { CStr::from_ptr(value) }
                .to_string_lossy()
                .into_owned();
            fields.push((code, text));
        }
    }
    fields
}

/// A CopyData buffer malloc'd by libpq, freed with `PQfreemem`.
struct CopyBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is plain heap memory exclusively owned by this value; PQfreemem may be
// called from any thread.
unsafe impl Send for CopyBuffer {}

impl AsRef<[u8]> for CopyBuffer {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: libpq returned `len` initialised bytes at `ptr`, valid until PQfreemem.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for CopyBuffer {
    fn drop(&mut self) {
        // SAFETY: the buffer came from PQgetCopyData and is freed exactly once, here.
        unsafe { pq::PQfreemem(self.ptr.as_ptr().cast::<c_void>()) }
    }
}

/// An owned `PGresult`.
pub(crate) struct RawResult(NonNull<pq::PGresult>);

// SAFETY: a PGresult is immutable data independent of its connection; it may move between
// threads and be read from several.
unsafe impl Send for RawResult {}

impl RawResult {
    /// The result's status.
    pub(crate) fn status(&self) -> ResultStatus {
        // SAFETY: valid PGresult.
        match unsafe { pq::PQresultStatus(self.0.as_ptr()) } {
            pq::ExecStatusType::PGRES_COMMAND_OK => ResultStatus::CommandOk,
            pq::ExecStatusType::PGRES_TUPLES_OK => ResultStatus::TuplesOk,
            pq::ExecStatusType::PGRES_EMPTY_QUERY => ResultStatus::EmptyQuery,
            pq::ExecStatusType::PGRES_COPY_OUT => ResultStatus::CopyOut,
            pq::ExecStatusType::PGRES_COPY_BOTH => ResultStatus::CopyBoth,
            pq::ExecStatusType::PGRES_COPY_IN => ResultStatus::CopyIn,
            pq::ExecStatusType::PGRES_FATAL_ERROR => ResultStatus::FatalError,
            _ => ResultStatus::Other,
        }
    }

    /// The error fields (empty for successful results).
    pub(crate) fn error_fields(&self) -> ErrorFields {
        // SAFETY: valid PGresult.
        unsafe { error_fields(self.0.as_ptr()) }
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        // SAFETY: valid PGresult.
        usize::try_from(unsafe { pq::PQntuples(self.0.as_ptr()) }).unwrap_or(0)
    }

    /// Number of columns.
    pub(crate) fn columns(&self) -> usize {
        // SAFETY: valid PGresult.
        usize::try_from(unsafe { pq::PQnfields(self.0.as_ptr()) }).unwrap_or(0)
    }

    /// Name of column `column` (< [`columns`](Self::columns)).
    pub(crate) fn column_name(&self, column: usize) -> String {
        let Ok(column) = c_int::try_from(column) else {
            return String::new();
        };
        // SAFETY: valid PGresult; PQfname returns NULL for out-of-range columns.
        let name = unsafe { pq::PQfname(self.0.as_ptr(), column) };
        if name.is_null() {
            return String::new();
        }
        // SAFETY: non-NULL, NUL-terminated string owned by the result; copied at once.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }

    /// The value at (`row`, `column`) copied out, `None` for NULL or out of range.
    pub(crate) fn value(&self, row: usize, column: usize) -> Option<Bytes> {
        let (row, column) = (c_int::try_from(row).ok()?, c_int::try_from(column).ok()?);
        // SAFETY: valid PGresult; indexes are checked by libpq (NULL/0 when out of range).
        unsafe {
            if pq::PQgetisnull(self.0.as_ptr(), row, column) == 1 {
                return None;
            }
            let value = pq::PQgetvalue(self.0.as_ptr(), row, column);
            let len = usize::try_from(pq::PQgetlength(self.0.as_ptr(), row, column)).ok()?;
            if value.is_null() {
                return None;
            }
            Some(Bytes::copy_from_slice(std::slice::from_raw_parts(
                value.cast::<u8>(),
                len,
            )))
        }
    }

    /// The command tag (`PQcmdStatus`).
    pub(crate) fn command_tag(&self) -> String {
        // SAFETY: valid PGresult; PQcmdStatus returns a string owned by the result (possibly
        // empty, never NULL for a valid result); copied at once.
        let tag = unsafe { pq::PQcmdStatus(self.0.as_ptr()) };
        if tag.is_null() {
            return String::new();
        }
        // SAFETY: as above.
        unsafe { CStr::from_ptr(tag) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for RawResult {
    fn drop(&mut self) {
        // SAFETY: the result is owned by this value and cleared exactly once, here.
        unsafe { pq::PQclear(self.0.as_ptr()) }
    }
}

/// An owned `PGcancel`.
pub(crate) struct RawCancel(NonNull<pq::PGcancel>);

// SAFETY: PGcancel is a self-contained copy of the connection's cancel data; libpq documents
// PQcancel as safe to call from other threads (even signal handlers).
unsafe impl Send for RawCancel {}
// SAFETY: PQcancel only reads the PGcancel object.
unsafe impl Sync for RawCancel {}

impl RawCancel {
    /// `PQcancel`: blocking; run it on a blocking thread.
    pub(crate) fn cancel(&self) -> Result<(), String> {
        let mut buffer = [0 as c_char; 256];
        // SAFETY: valid PGcancel; `buffer` is writable for its length.
        let ok =
            unsafe { pq::PQcancel(self.0.as_ptr(), buffer.as_mut_ptr(), buffer.len() as c_int) };
        if ok == 1 {
            Ok(())
        } else {
            // SAFETY: on failure PQcancel writes a NUL-terminated message into `buffer`.
            Err(unsafe { CStr::from_ptr(buffer.as_ptr()) }
                .to_string_lossy()
                .into_owned())
        }
    }
}

impl Drop for RawCancel {
    fn drop(&mut self) {
        // SAFETY: owned by this value, freed exactly once, here.
        unsafe { pq::PQfreeCancel(self.0.as_ptr()) }
    }
}
