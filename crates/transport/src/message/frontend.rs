//! Frontend (client → server) message encoders writing into a caller's buffer.
//!
//! Every encoder appends one whole message to `buf`, so several messages can be batched and
//! written with one syscall. Nothing is written when an encoder returns an error.

use bytes::{BufMut, BytesMut};

use super::MessageError;

/// Protocol version 3.0, as sent in the StartupMessage.
pub const PROTOCOL_VERSION_3_0: i32 = 196_608;
const SSL_REQUEST_CODE: i32 = 80_877_103;
const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// Largest message body the encoders produce (the length field is a signed 32-bit integer).
const MAX_FRONTEND_LEN: usize = i32::MAX as usize - 4;

/// Appends a message: optional tag, length, then whatever `body` writes.
fn framed(
    buf: &mut BytesMut,
    tag: Option<u8>,
    body_len: usize,
    body: impl FnOnce(&mut BytesMut),
) -> Result<(), MessageError> {
    if body_len > MAX_FRONTEND_LEN {
        return Err(MessageError::TooLarge {
            tag: tag.unwrap_or(0),
            len: body_len,
        });
    }
    buf.reserve(usize::from(tag.is_some()) + 4 + body_len);
    if let Some(tag) = tag {
        buf.put_u8(tag);
    }
    buf.put_i32((body_len + 4) as i32);
    let start = buf.len();
    body(buf);
    debug_assert_eq!(buf.len() - start, body_len);
    Ok(())
}

fn no_nul(tag: u8, what: &'static str, s: &[u8]) -> Result<(), MessageError> {
    if s.contains(&0) {
        return Err(MessageError::InteriorNul { tag, what });
    }
    Ok(())
}

/// StartupMessage (protocol 3.0) with the given parameters, e.g. `("user", "u")`,
/// `("database", "d")`, `("replication", "database")`.
///
/// ```
/// use bytes::BytesMut;
/// use pg_walstream_transport::message::frontend;
/// let mut buf = BytesMut::new();
/// frontend::startup(&mut buf, [("user", "u")]).unwrap();
/// assert_eq!(&buf[..], b"\0\0\0\x10\0\x03\0\0user\0u\0\0");
/// ```
///
/// # Errors
/// [`MessageError::InteriorNul`] when a name or value contains a NUL byte.
pub fn startup<'a>(
    buf: &mut BytesMut,
    params: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> Result<(), MessageError> {
    let mut len = 4 + 1;
    for (name, value) in params.clone() {
        no_nul(0, "startup parameter", name.as_bytes())?;
        no_nul(0, "startup parameter", value.as_bytes())?;
        len += name.len() + value.len() + 2;
    }
    framed(buf, None, len, |buf| {
        buf.put_i32(PROTOCOL_VERSION_3_0);
        for (name, value) in params {
            buf.put_slice(name.as_bytes());
            buf.put_u8(0);
            buf.put_slice(value.as_bytes());
            buf.put_u8(0);
        }
        buf.put_u8(0);
    })
}

/// SSLRequest.
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_i32(8);
    buf.put_i32(SSL_REQUEST_CODE);
}

/// CancelRequest for the session identified by BackendKeyData.
///
/// # Errors
/// [`MessageError::TooLarge`] when the secret key is absurdly long.
pub fn cancel_request(
    buf: &mut BytesMut,
    process_id: i32,
    secret_key: &[u8],
) -> Result<(), MessageError> {
    if secret_key.len() > 256 {
        return Err(MessageError::TooLarge {
            tag: 0,
            len: secret_key.len(),
        });
    }
    framed(buf, None, 8 + secret_key.len(), |buf| {
        buf.put_i32(CANCEL_REQUEST_CODE);
        buf.put_i32(process_id);
        buf.put_slice(secret_key);
    })
}

/// PasswordMessage carrying a cleartext password or an MD5 response (NUL-terminated).
///
/// # Errors
/// [`MessageError::InteriorNul`] when the password contains a NUL byte.
pub fn password(buf: &mut BytesMut, password: &[u8]) -> Result<(), MessageError> {
    no_nul(b'p', "password", password)?;
    framed(buf, Some(b'p'), password.len() + 1, |buf| {
        buf.put_slice(password);
        buf.put_u8(0);
    })
}

/// SASLInitialResponse: the chosen mechanism and the client-first-message.
///
/// # Errors
/// [`MessageError::InteriorNul`] for a NUL in the mechanism name, [`MessageError::TooLarge`]
/// for absurd sizes.
pub fn sasl_initial_response(
    buf: &mut BytesMut,
    mechanism: &str,
    data: &[u8],
) -> Result<(), MessageError> {
    no_nul(b'p', "SASL mechanism", mechanism.as_bytes())?;
    framed(
        buf,
        Some(b'p'),
        mechanism.len() + 1 + 4 + data.len(),
        |buf| {
            buf.put_slice(mechanism.as_bytes());
            buf.put_u8(0);
            buf.put_i32(data.len() as i32);
            buf.put_slice(data);
        },
    )
}

/// SASLResponse: a continuation of the SASL exchange (e.g. client-final-message).
///
/// # Errors
/// [`MessageError::TooLarge`] for absurd sizes.
pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) -> Result<(), MessageError> {
    framed(buf, Some(b'p'), data.len(), |buf| buf.put_slice(data))
}

/// Query (simple query protocol). Replication commands are sent this way too.
///
/// # Errors
/// [`MessageError::InteriorNul`] when the query contains a NUL byte.
pub fn query(buf: &mut BytesMut, sql: &str) -> Result<(), MessageError> {
    no_nul(b'Q', "query", sql.as_bytes())?;
    framed(buf, Some(b'Q'), sql.len() + 1, |buf| {
        buf.put_slice(sql.as_bytes());
        buf.put_u8(0);
    })
}

/// CopyData carrying `data` (e.g. a StandbyStatusUpdate).
///
/// # Errors
/// [`MessageError::TooLarge`] for absurd sizes.
pub fn copy_data(buf: &mut BytesMut, data: &[u8]) -> Result<(), MessageError> {
    framed(buf, Some(b'd'), data.len(), |buf| buf.put_slice(data))
}

/// CopyDone.
pub fn copy_done(buf: &mut BytesMut) {
    buf.put_u8(b'c');
    buf.put_i32(4);
}

/// CopyFail with an error message for the server's log.
///
/// # Errors
/// [`MessageError::InteriorNul`] when the message contains a NUL byte.
pub fn copy_fail(buf: &mut BytesMut, message: &str) -> Result<(), MessageError> {
    no_nul(b'f', "CopyFail message", message.as_bytes())?;
    framed(buf, Some(b'f'), message.len() + 1, |buf| {
        buf.put_slice(message.as_bytes());
        buf.put_u8(0);
    })
}

/// Terminate.
pub fn terminate(buf: &mut BytesMut) {
    buf.put_u8(b'X');
    buf.put_i32(4);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut buf = BytesMut::new();
        f(&mut buf);
        buf.to_vec()
    }

    #[test]
    fn fixed_messages() {
        assert_eq!(enc(ssl_request), b"\0\0\0\x08\x04\xd2\x16\x2f");
        assert_eq!(enc(copy_done), b"c\0\0\0\x04");
        assert_eq!(enc(terminate), b"X\0\0\0\x04");
    }

    #[test]
    fn startup_with_replication() {
        let bytes = enc(|b| {
            startup(
                b,
                [
                    ("user", "u"),
                    ("database", "d"),
                    ("replication", "database"),
                ],
            )
            .unwrap();
        });
        let body = b"\0\x03\0\0user\0u\0database\0d\0replication\0database\0\0";
        let mut expected = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        expected.extend_from_slice(body);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn cancel_and_sasl() {
        assert_eq!(
            enc(|b| cancel_request(b, 0x0102_0304, &[9, 8, 7, 6]).unwrap()),
            b"\0\0\0\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\x09\x08\x07\x06"
        );
        assert_eq!(
            enc(|b| sasl_initial_response(b, "SCRAM-SHA-256", b"n,,n=,r=x").unwrap()),
            b"p\0\0\0\x1fSCRAM-SHA-256\0\0\0\0\x09n,,n=,r=x"
        );
        assert_eq!(
            enc(|b| sasl_response(b, b"abc").unwrap()),
            b"p\0\0\0\x07abc"
        );
        assert_eq!(enc(|b| password(b, b"pw").unwrap()), b"p\0\0\0\x07pw\0");
    }

    #[test]
    fn query_copy_messages() {
        assert_eq!(
            enc(|b| query(b, "SELECT 1").unwrap()),
            b"Q\0\0\0\x0dSELECT 1\0"
        );
        assert_eq!(enc(|b| copy_data(b, b"r").unwrap()), b"d\0\0\0\x05r");
        assert_eq!(enc(|b| copy_fail(b, "no").unwrap()), b"f\0\0\0\x07no\0");
    }

    #[test]
    fn nul_bytes_rejected_without_writing() {
        let mut buf = BytesMut::new();
        assert!(matches!(
            query(&mut buf, "a\0b"),
            Err(MessageError::InteriorNul { tag: b'Q', .. })
        ));
        assert!(matches!(
            password(&mut buf, b"a\0"),
            Err(MessageError::InteriorNul { .. })
        ));
        assert!(startup(&mut buf, [("user", "a\0")]).is_err());
        assert!(buf.is_empty());
    }
}
