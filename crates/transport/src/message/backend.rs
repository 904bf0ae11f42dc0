//! Backend (server → client) messages, split zero-copy out of one large read buffer.

use bytes::{Buf, Bytes, BytesMut};

use super::{DbError, MessageError};

/// Default upper bound for one backend message (CopyData, DataRow, RowDescription,
/// ErrorResponse, NoticeResponse). PostgreSQL never sends single values above 1 GiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = (1 << 30) + 1024;

/// Upper bound for the small control messages (ReadyForQuery, CommandComplete,
/// Authentication, ParameterStatus, ...). Anything larger is a corrupt stream.
pub const MAX_CONTROL_FRAME_LEN: usize = 1 << 20;

/// An authentication request (`R` message).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authentication {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationCleartextPassword.
    CleartextPassword,
    /// AuthenticationMD5Password with its 4-byte salt.
    Md5Password {
        /// The salt.
        salt: [u8; 4],
    },
    /// AuthenticationSASL with the mechanisms the server offers.
    Sasl {
        /// Mechanism names, e.g. `SCRAM-SHA-256-PLUS`, `SCRAM-SHA-256`.
        mechanisms: Vec<String>,
    },
    /// AuthenticationSASLContinue (server-first-message).
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal (server-final-message).
    SaslFinal(Bytes),
    /// A method this crate does not implement (Kerberos 2, SCM 6, GSS 7/8, SSPI 9, ...).
    Unsupported(i32),
}

/// One message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendMessage {
    /// `R`: authentication request or result.
    Authentication(Authentication),
    /// `K`: the key for CancelRequest.
    BackendKeyData {
        /// Backend process id.
        process_id: i32,
        /// Secret key (4 bytes before protocol 3.2).
        secret_key: Bytes,
    },
    /// `S`: a run-time parameter's value.
    ParameterStatus {
        /// Parameter name.
        name: String,
        /// Parameter value.
        value: String,
    },
    /// `Z`: ready for a new query, with the transaction status byte (`I`, `T`, `E`).
    ReadyForQuery(u8),
    /// `T`: the columns of the rows that follow (body kept, parsed on demand).
    RowDescription(RowDescription),
    /// `D`: one row (body kept, parsed on demand).
    DataRow(DataRow),
    /// `C`: a command finished, with its tag (e.g. `SELECT 1`).
    CommandComplete(String),
    /// `I`: the query string was empty.
    EmptyQueryResponse,
    /// `E`: the command or session failed.
    ErrorResponse(Box<DbError>),
    /// `N`: a warning or notice.
    NoticeResponse(Box<DbError>),
    /// `G`: the server is ready to receive COPY data.
    CopyInResponse,
    /// `H`: COPY TO STDOUT / BASE_BACKUP data follows.
    CopyOutResponse,
    /// `W`: replication stream (CopyBoth) started.
    CopyBothResponse,
    /// `d`: one CopyData payload.
    CopyData(Bytes),
    /// `c`: the copy stream ended.
    CopyDone,
    /// `A`: asynchronous LISTEN/NOTIFY notification.
    NotificationResponse {
        /// Notifying backend's process id.
        process_id: i32,
        /// Channel name.
        channel: String,
        /// Payload.
        payload: String,
    },
    /// `v`: the server does not support the requested minor version or options.
    NegotiateProtocolVersion {
        /// Newest minor protocol version the server supports.
        newest_minor: i32,
        /// Protocol options the server did not recognize.
        unrecognized: Vec<String>,
    },
}

/// A RowDescription body; [`RowDescription::column_names`] parses the names on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDescription(Bytes);

/// A DataRow body; [`DataRow::values`] slices the column values out without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow(Bytes);

fn malformed(tag: u8, what: &'static str) -> MessageError {
    MessageError::Malformed { tag, what }
}

fn cstr(tag: u8, body: &mut Bytes) -> Result<String, MessageError> {
    let end = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(malformed(tag, "string not NUL-terminated"))?;
    let s = String::from_utf8_lossy(&body[..end]).into_owned();
    body.advance(end + 1);
    Ok(s)
}

fn i32_at(tag: u8, body: &mut Bytes) -> Result<i32, MessageError> {
    if body.len() < 4 {
        return Err(malformed(tag, "truncated integer"));
    }
    Ok(body.get_i32())
}

fn i16_at(tag: u8, body: &mut Bytes) -> Result<i16, MessageError> {
    if body.len() < 2 {
        return Err(malformed(tag, "truncated integer"));
    }
    Ok(body.get_i16())
}

impl RowDescription {
    /// Column names in order.
    ///
    /// # Errors
    /// [`MessageError::Malformed`] when the body is truncated.
    pub fn column_names(&self) -> Result<Vec<String>, MessageError> {
        let tag = b'T';
        let mut body = self.0.clone();
        let count = i16_at(tag, &mut body)?;
        let count = usize::try_from(count).map_err(|_| malformed(tag, "negative column count"))?;
        let mut names = Vec::with_capacity(count.min(1600));
        for _ in 0..count {
            names.push(cstr(tag, &mut body)?);
            // table oid, column number, type oid, type size, type modifier, format code
            if body.len() < 18 {
                return Err(malformed(tag, "truncated field description"));
            }
            body.advance(18);
        }
        if !body.is_empty() {
            return Err(malformed(tag, "trailing bytes"));
        }
        Ok(names)
    }
}

impl DataRow {
    /// Column values (`None` for SQL NULL), each a zero-copy slice of the row.
    ///
    /// # Errors
    /// [`MessageError::Malformed`] when the body is truncated or a length is invalid.
    pub fn values(&self) -> Result<Vec<Option<Bytes>>, MessageError> {
        let tag = b'D';
        let mut body = self.0.clone();
        let count = i16_at(tag, &mut body)?;
        let count = usize::try_from(count).map_err(|_| malformed(tag, "negative column count"))?;
        let mut values = Vec::with_capacity(count.min(1600));
        for _ in 0..count {
            let len = i32_at(tag, &mut body)?;
            if len == -1 {
                values.push(None);
                continue;
            }
            let len = usize::try_from(len).map_err(|_| malformed(tag, "negative value length"))?;
            if body.len() < len {
                return Err(malformed(tag, "truncated value"));
            }
            values.push(Some(body.split_to(len)));
        }
        if !body.is_empty() {
            return Err(malformed(tag, "trailing bytes"));
        }
        Ok(values)
    }
}

/// Splits the next whole message off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole message (and reserves room for the
/// rest of it). Message bodies are zero-copy views of the buffer (`split_to(..).freeze()`).
///
/// ```
/// use bytes::BytesMut;
/// use pg_walstream_transport::message::backend::{parse, BackendMessage, DEFAULT_MAX_FRAME_LEN};
/// let mut buf = BytesMut::from(&b"d\0\0\0\x06hiZ\0\0\0\x05I"[..]);
/// let Some(BackendMessage::CopyData(data)) = parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap() else { panic!() };
/// assert_eq!(&data[..], b"hi");
/// assert_eq!(parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(), Some(BackendMessage::ReadyForQuery(b'I')));
/// assert_eq!(parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(), None);
/// ```
///
/// # Errors
/// [`MessageError`] for a length below 4, above `max_len` (or above
/// [`MAX_CONTROL_FRAME_LEN`] for control messages), an unknown tag or a malformed body.
/// The buffer is left untouched on error; the stream cannot be resynchronised.
pub fn parse(buf: &mut BytesMut, max_len: usize) -> Result<Option<BackendMessage>, MessageError> {
    let Some((tag, len)) = header(buf, max_len)? else {
        return Ok(None);
    };
    let total = len + 1;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    // Validate the tag before consuming, so an error leaves the buffer as it was.
    if tag != b'd' && !b"RKSZTDCIENGHWcAv".contains(&tag) {
        return Err(MessageError::UnknownTag(tag));
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(5);
    decode(tag, frame).map(Some)
}

/// Whole CopyData messages split off the front of a read buffer in one piece — one split
/// and one reference count for all of them, the hot path of a replication stream — and
/// handed out one body at a time: iterating yields what [`parse`] would return as
/// [`BackendMessage::CopyData`], in order.
///
/// ```
/// use bytes::BytesMut;
/// use pg_walstream_transport::message::backend::{CopyDataRun, DEFAULT_MAX_FRAME_LEN};
/// let mut buf = BytesMut::from(&b"d\0\0\0\x06hid\0\0\0\x04Z\0\0\0\x05I"[..]);
/// let mut run = CopyDataRun::split_from(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap();
/// assert_eq!(run.next().as_deref(), Some(&b"hi"[..]));
/// assert_eq!(run.next().as_deref(), Some(&b""[..]));
/// assert_eq!(run.next(), None);
/// // ReadyForQuery is not CopyData: left in the buffer.
/// assert_eq!(buf.len(), 6);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CopyDataRun {
    /// Whole frames (tag, length, body), each length checked when the run was split.
    frames: Bytes,
}

impl CopyDataRun {
    /// Splits off the front of `buf` every whole CopyData message that lies there, up to the
    /// first incomplete one or other message; an empty run when `buf` starts with neither a
    /// whole CopyData nor a bad one. Nothing is reserved.
    ///
    /// # Errors
    /// [`MessageError`] when the first message is a CopyData whose length is below 4 or above
    /// `max_len`, as [`parse`] reports it; the buffer is left untouched. Such a message
    /// further on ends the run before it, and is reported once it is at the front.
    pub fn split_from(buf: &mut BytesMut, max_len: usize) -> Result<Self, MessageError> {
        let mut end = 0;
        while buf.get(end) == Some(&b'd') {
            match header(&buf[end..], max_len) {
                Ok(Some((_, len))) if buf.len() - end > len => end += len + 1,
                Err(error) if end == 0 => return Err(error),
                _ => break,
            }
        }
        if end == 0 {
            // No split: that would share the buffer for nothing.
            return Ok(CopyDataRun::default());
        }
        Ok(CopyDataRun {
            frames: buf.split_to(end).freeze(),
        })
    }

    /// Whether every body has been taken.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of the frames not taken yet, headers included.
    pub fn remaining_bytes(&self) -> usize {
        self.frames.len()
    }
}

impl Iterator for CopyDataRun {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let &[_, a, b, c, d] = self.frames.first_chunk::<5>()?;
        let total = u32::from_be_bytes([a, b, c, d]) as usize + 1;
        // Checked by `split_from`: every frame is whole.
        if total > self.frames.len() {
            return None;
        }
        let mut body = self.frames.split_to(total);
        body.advance(5);
        Some(body)
    }
}

/// The tag and length of the message at the front of `buf`, checked against the limits for
/// its tag; `None` while fewer than 5 bytes are buffered.
fn header(buf: &[u8], max_len: usize) -> Result<Option<(u8, usize)>, MessageError> {
    let Some(&[tag, a, b, c, d]) = buf.first_chunk::<5>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len < 4 {
        return Err(MessageError::BadLength { tag, len });
    }
    let limit = match tag {
        b'd' | b'D' | b'T' | b'E' | b'N' | b'A' => max_len,
        _ => MAX_CONTROL_FRAME_LEN.min(max_len),
    };
    if len > limit {
        return Err(MessageError::TooLarge { tag, len });
    }
    Ok(Some((tag, len)))
}

fn decode(tag: u8, mut body: Bytes) -> Result<BackendMessage, MessageError> {
    let exact = |body: &Bytes, n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err(malformed(tag, "wrong body length"))
        }
    };
    Ok(match tag {
        b'd' => BackendMessage::CopyData(body),
        b'D' => BackendMessage::DataRow(DataRow(body)),
        b'T' => BackendMessage::RowDescription(RowDescription(body)),
        b'R' => BackendMessage::Authentication(decode_auth(body)?),
        b'K' => {
            let process_id = i32_at(tag, &mut body)?;
            if body.len() < 4 || body.len() > 256 {
                return Err(malformed(tag, "bad secret key length"));
            }
            BackendMessage::BackendKeyData {
                process_id,
                secret_key: body,
            }
        }
        b'S' => {
            let name = cstr(tag, &mut body)?;
            let value = cstr(tag, &mut body)?;
            exact(&body, 0)?;
            BackendMessage::ParameterStatus { name, value }
        }
        b'Z' => {
            exact(&body, 1)?;
            BackendMessage::ReadyForQuery(body[0])
        }
        b'C' => {
            let tag_text = cstr(tag, &mut body)?;
            exact(&body, 0)?;
            BackendMessage::CommandComplete(tag_text)
        }
        b'I' => {
            exact(&body, 0)?;
            BackendMessage::EmptyQueryResponse
        }
        b'E' => BackendMessage::ErrorResponse(Box::new(DbError::parse(tag, &body)?)),
        b'N' => BackendMessage::NoticeResponse(Box::new(DbError::parse(tag, &body)?)),
        b'G' | b'H' | b'W' => {
            // overall format (i8), column count (i16), per-column format codes (i16 each)
            if body.len() < 3 {
                return Err(malformed(tag, "truncated copy response"));
            }
            body.advance(1);
            let columns = usize::try_from(body.get_i16())
                .map_err(|_| malformed(tag, "negative column count"))?;
            exact(&body, columns * 2)?;
            match tag {
                b'G' => BackendMessage::CopyInResponse,
                b'H' => BackendMessage::CopyOutResponse,
                _ => BackendMessage::CopyBothResponse,
            }
        }
        b'c' => {
            exact(&body, 0)?;
            BackendMessage::CopyDone
        }
        b'A' => {
            let process_id = i32_at(tag, &mut body)?;
            let channel = cstr(tag, &mut body)?;
            let payload = cstr(tag, &mut body)?;
            exact(&body, 0)?;
            BackendMessage::NotificationResponse {
                process_id,
                channel,
                payload,
            }
        }
        b'v' => {
            let newest_minor = i32_at(tag, &mut body)?;
            let count = usize::try_from(i32_at(tag, &mut body)?)
                .map_err(|_| malformed(tag, "negative count"))?;
            let mut unrecognized = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                unrecognized.push(cstr(tag, &mut body)?);
            }
            exact(&body, 0)?;
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            }
        }
        other => return Err(MessageError::UnknownTag(other)),
    })
}

fn decode_auth(mut body: Bytes) -> Result<Authentication, MessageError> {
    let tag = b'R';
    let kind = i32_at(tag, &mut body)?;
    let none = |body: &Bytes, a| {
        if body.is_empty() {
            Ok(a)
        } else {
            Err(malformed(tag, "trailing bytes"))
        }
    };
    match kind {
        0 => none(&body, Authentication::Ok),
        3 => none(&body, Authentication::CleartextPassword),
        5 => {
            let salt: [u8; 4] = body[..]
                .try_into()
                .map_err(|_| malformed(tag, "MD5 salt not 4 bytes"))?;
            Ok(Authentication::Md5Password { salt })
        }
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let name = cstr(tag, &mut body)?;
                if name.is_empty() {
                    break;
                }
                mechanisms.push(name);
            }
            none(&body, Authentication::Sasl { mechanisms })
        }
        11 => Ok(Authentication::SaslContinue(body)),
        12 => Ok(Authentication::SaslFinal(body)),
        other => Ok(Authentication::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests;
