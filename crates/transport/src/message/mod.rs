//! Sans-IO wire messages of PostgreSQL's frontend/backend protocol 3.0.
//!
//! [`frontend`] encoders append messages to a caller's `BytesMut`; [`backend::parse`] splits
//! whole messages zero-copy off the front of one large read buffer.

pub mod backend;
mod db_error;
pub mod frontend;
mod sqlstate;

pub use backend::{Authentication, BackendMessage, DataRow, RowDescription};
pub use db_error::{DbError, Severity};
pub use sqlstate::SqlState;

/// A message could not be encoded or the server sent bytes that are not a valid message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A message's length is larger than the configured limit.
    #[error("message {} of {len} bytes exceeds the size limit", Tag(*.tag))]
    TooLarge {
        /// Message type byte (0 for untagged startup-phase messages).
        tag: u8,
        /// The claimed length.
        len: usize,
    },
    /// A backend message claims a length below the 4 bytes of the length field itself.
    #[error("message {} has invalid length {len}", Tag(*.tag))]
    BadLength {
        /// Message type byte.
        tag: u8,
        /// The claimed length.
        len: usize,
    },
    /// The server sent a message type this protocol version does not have.
    #[error("unknown backend message type {}", Tag(*.0))]
    UnknownTag(u8),
    /// A message body does not have the documented layout.
    #[error("malformed message {}: {what}", Tag(*.tag))]
    Malformed {
        /// Message type byte.
        tag: u8,
        /// What was wrong.
        what: &'static str,
    },
    /// A string to be sent contains a NUL byte, which the protocol cannot carry.
    #[error("{what} contains a NUL byte")]
    InteriorNul {
        /// Message type byte (0 for the StartupMessage).
        tag: u8,
        /// Which value.
        what: &'static str,
    },
}

/// Displays a message type byte as `'Z'` or `0x00`.
struct Tag(u8);

impl core::fmt::Display for Tag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}
