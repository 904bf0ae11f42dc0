//! The codec's single error type.

use core::fmt;

/// A message tag byte, displayed as a quoted character when printable (`'I'`) or as hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub u8);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "0x{:02X}", self.0)
        }
    }
}

/// Why a message could not be decoded.
///
/// Every variant names the message `tag` it was decoding, the byte `offset` within that
/// message where decoding failed (where it applies) and what was expected there. The type is
/// `Copy` and allocation-free, so returning it costs nothing on hot paths.
///
/// ```
/// use pg_walstream_codec::{DecodeError, pgoutput::{decode_message, ProtocolVersion}};
///
/// // A Begin message cut short after its tag and two bytes.
/// let err = decode_message(b"B\0\0", ProtocolVersion::V1, false).unwrap_err();
/// assert!(matches!(err, DecodeError::Truncated { offset: 1, .. }));
/// assert_eq!(err.offset(), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message was empty: not even a tag byte.
    #[error("empty message, expected {expected}")]
    Empty {
        /// What kind of message was expected.
        expected: &'static str,
    },
    /// The input ended before a field was complete.
    #[error("message {tag}: input ends at byte {offset}, expected {expected}")]
    Truncated {
        /// Tag of the message being decoded.
        tag: Tag,
        /// Byte offset of the incomplete field.
        offset: usize,
        /// The field that was expected.
        expected: &'static str,
    },
    /// A length or count on the wire is larger than the bytes that remain.
    #[error(
        "message {tag}: {expected} at byte {offset} declares {declared} but only {available} bytes remain"
    )]
    Oversized {
        /// Tag of the message being decoded.
        tag: Tag,
        /// Byte offset of the length or count field.
        offset: usize,
        /// The declared length or count.
        declared: u64,
        /// Bytes remaining after the field.
        available: usize,
        /// The field that declared it.
        expected: &'static str,
    },
    /// A tag byte (of a message, a tuple column, an old-tuple marker …) is not known.
    #[error("message {tag}: unknown tag {found} at byte {offset}, expected {expected}")]
    UnknownTag {
        /// Tag of the message being decoded (equal to `found` for an unknown message tag).
        tag: Tag,
        /// Byte offset of the unknown byte.
        offset: usize,
        /// The byte that was found.
        found: Tag,
        /// What was expected there.
        expected: &'static str,
    },
    /// A string field is not valid UTF-8.
    #[error("message {tag}: invalid UTF-8 in {expected} at byte {offset}")]
    InvalidUtf8 {
        /// Tag of the message being decoded.
        tag: Tag,
        /// Byte offset where the string starts.
        offset: usize,
        /// The string field.
        expected: &'static str,
    },
    /// A field holds a value outside its allowed range (e.g. a negative length).
    #[error("message {tag}: invalid value {value} at byte {offset}, expected {expected}")]
    InvalidValue {
        /// Tag of the message being decoded.
        tag: Tag,
        /// Byte offset of the field.
        offset: usize,
        /// The value found.
        value: i64,
        /// What the field may hold.
        expected: &'static str,
    },
    /// Bytes remain after the last field of a message.
    #[error("message {tag}: {count} unexpected bytes after the last field at byte {offset}")]
    TrailingBytes {
        /// Tag of the message being decoded.
        tag: Tag,
        /// Byte offset of the first extra byte.
        offset: usize,
        /// How many bytes are left over.
        count: usize,
    },
    /// The message exists in pgoutput, but not in the negotiated protocol version.
    #[error(
        "message {tag} needs pgoutput protocol version {required}, but version {proto_version} is in use"
    )]
    UnsupportedMessage {
        /// Tag of the message.
        tag: Tag,
        /// The protocol version in use.
        proto_version: u32,
        /// The first version that has this message.
        required: u32,
    },
    /// The message cannot appear at this point of the stream: inside a Stream Start/Stop
    /// block when it must be outside one, or the other way round; or against transaction
    /// framing ([`PgOutputDecoder`](crate::pgoutput::PgOutputDecoder)): a Commit or Prepare
    /// with no transaction open, a Begin (or a streamed or two-phase control message)
    /// inside an open transaction.
    #[error("message {tag} is not allowed {state}")]
    UnexpectedStreamState {
        /// Tag of the message.
        tag: Tag,
        /// Where the message was, e.g. `"inside a streamed block"`, `"outside a streamed
        /// block"`, `"outside a transaction (no Begin or Begin Prepare is open)"`.
        state: &'static str,
    },
    /// A pgoutput protocol version outside 1–4 was requested.
    #[error("unsupported pgoutput protocol version {version}, expected 1 to 4")]
    UnsupportedProtocolVersion {
        /// The requested version.
        version: u32,
    },
}

impl DecodeError {
    /// The tag of the message being decoded, if the error has one.
    pub fn tag(&self) -> Option<u8> {
        match *self {
            Self::Truncated { tag, .. }
            | Self::Oversized { tag, .. }
            | Self::UnknownTag { tag, .. }
            | Self::InvalidUtf8 { tag, .. }
            | Self::InvalidValue { tag, .. }
            | Self::TrailingBytes { tag, .. }
            | Self::UnsupportedMessage { tag, .. }
            | Self::UnexpectedStreamState { tag, .. } => Some(tag.0),
            Self::Empty { .. } | Self::UnsupportedProtocolVersion { .. } => None,
        }
    }

    /// The byte offset within the message where decoding failed, if the error has one.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            Self::Truncated { offset, .. }
            | Self::Oversized { offset, .. }
            | Self::UnknownTag { offset, .. }
            | Self::InvalidUtf8 { offset, .. }
            | Self::InvalidValue { offset, .. }
            | Self::TrailingBytes { offset, .. } => Some(offset),
            Self::Empty { .. } => Some(0),
            Self::UnsupportedMessage { .. }
            | Self::UnexpectedStreamState { .. }
            | Self::UnsupportedProtocolVersion { .. } => None,
        }
    }
}
