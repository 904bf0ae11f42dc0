//! The CopyData messages of a `BASE_BACKUP` CopyOut stream (PostgreSQL 15+).
//!
//! From 15 on the server sends every archive and the manifest in one CopyOut stream, each
//! CopyData starting with a type byte (`basebackup_copy.c`):
//!
//! | byte | message | body |
//! |---|---|---|
//! | `n` | [`NewArchive`] | archive name, then the tablespace location (both NUL-terminated; the location is empty for the main data directory) |
//! | `d` | [`BackupMessage::Data`] | a chunk of the current archive, or of the manifest once `m` was sent |
//! | `p` | [`BackupMessage::Progress`] | `int64` bytes of archive content done so far (before server-side compression) |
//! | `m` | [`BackupMessage::Manifest`] | no body: the `d` messages that follow are the backup manifest |
//!
//! An archive ends where the next `n` or `m` starts, or with the end of the COPY. PostgreSQL
//! 14 sends no type bytes: one CopyOut per tablespace of raw tar, then one for the manifest;
//! the backup crate's driver turns that into the same sequence.
//!
//! ```
//! use bytes::Bytes;
//! use pg_walstream_codec::backup::BackupMessage;
//!
//! let frame = Bytes::from_static(b"n16385.tar\0/srv/tblspc\0");
//! let BackupMessage::NewArchive(archive) = BackupMessage::parse(&frame)? else { panic!() };
//! assert_eq!(archive.name, "16385.tar");
//! assert_eq!(archive.tablespace_location.as_deref(), Some("/srv/tblspc"));
//!
//! let data = Bytes::from_static(b"dtar bytes");
//! let BackupMessage::Data(chunk) = BackupMessage::parse(&data)? else { panic!() };
//! assert_eq!(chunk.as_ptr(), data[1..].as_ptr()); // zero-copy
//! # Ok::<(), pg_walstream_codec::DecodeError>(())
//! ```

use alloc::string::{String, ToString};

use bytes::{BufMut, Bytes};

use crate::error::DecodeError;
use crate::reader::Reader;

/// Tag of [`NewArchive`].
pub const NEW_ARCHIVE_TAG: u8 = b'n';
/// Tag of archive or manifest data.
pub const DATA_TAG: u8 = b'd';
/// Tag of a progress report.
pub const PROGRESS_TAG: u8 = b'p';
/// Tag of the start of the manifest.
pub const MANIFEST_TAG: u8 = b'm';

const EXPECTED_TAG: &str = "base backup message 'n', 'd', 'p' or 'm'";

/// `n`: the start of a new archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArchive {
    /// The archive's file name as the server names it: `base.tar` for the main data
    /// directory, `<tablespace oid>.tar` for a tablespace, with the server-side compression's
    /// suffix (`base.tar.gz`, `.tar.lz4`, `.tar.zst`).
    pub name: String,
    /// The tablespace's location on the server; `None` for the main data directory (sent as
    /// an empty string).
    pub tablespace_location: Option<String>,
}

/// One CopyData payload of a PostgreSQL 15+ `BASE_BACKUP` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupMessage {
    /// `n`: a new archive starts.
    NewArchive(NewArchive),
    /// `d`: archive or manifest bytes, a zero-copy slice of the CopyData payload.
    Data(Bytes),
    /// `p`: bytes of archive content done so far.
    Progress(u64),
    /// `m`: the manifest follows as `d` messages.
    Manifest,
}

impl BackupMessage {
    /// Parses one CopyData payload. `Data` is a slice of `copy_data` (no copy).
    ///
    /// # Errors
    /// [`DecodeError`] for an empty payload, an unknown type byte, a truncated or over-long
    /// message, a name that is not UTF-8 or a negative progress count.
    pub fn parse(copy_data: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::message(copy_data, EXPECTED_TAG)?;
        let message = match r.tag() {
            DATA_TAG => return Ok(Self::Data(copy_data.slice(1..))),
            NEW_ARCHIVE_TAG => {
                let name = r.cstr("archive name")?.to_string();
                let location = r.cstr("tablespace location")?;
                Self::NewArchive(NewArchive {
                    name,
                    tablespace_location: (!location.is_empty()).then(|| location.to_string()),
                })
            }
            PROGRESS_TAG => {
                let done = r.i64("progress bytes done")?;
                if done < 0 {
                    return Err(r.invalid(8, done, "a byte count of 0 or more"));
                }
                Self::Progress(done as u64)
            }
            MANIFEST_TAG => Self::Manifest,
            other => return Err(r.unknown_tag(other, EXPECTED_TAG)),
        };
        r.finish()?;
        Ok(message)
    }

    /// Appends the CopyData payload (type byte included) to `buf`, as the server sends it.
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Self::NewArchive(archive) => {
                buf.put_u8(NEW_ARCHIVE_TAG);
                buf.put_slice(archive.name.as_bytes());
                buf.put_u8(0);
                if let Some(location) = &archive.tablespace_location {
                    buf.put_slice(location.as_bytes());
                }
                buf.put_u8(0);
            }
            Self::Data(data) => {
                buf.put_u8(DATA_TAG);
                buf.put_slice(data);
            }
            Self::Progress(done) => {
                buf.put_u8(PROGRESS_TAG);
                buf.put_i64(*done as i64);
            }
            Self::Manifest => buf.put_u8(MANIFEST_TAG),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::error::Tag;

    fn roundtrip(message: &BackupMessage) {
        let mut wire = Vec::new();
        message.encode(&mut wire);
        assert_eq!(&BackupMessage::parse(&Bytes::from(wire)).unwrap(), message);
    }

    #[test]
    fn every_message_roundtrips() {
        roundtrip(&BackupMessage::NewArchive(NewArchive {
            name: "base.tar.zst".into(),
            tablespace_location: None,
        }));
        roundtrip(&BackupMessage::NewArchive(NewArchive {
            name: "16400.tar".into(),
            tablespace_location: Some("/tmp/ts".into()),
        }));
        roundtrip(&BackupMessage::Data(Bytes::from_static(b"\0\x01ustar")));
        roundtrip(&BackupMessage::Data(Bytes::new()));
        roundtrip(&BackupMessage::Progress(123_456_789));
        roundtrip(&BackupMessage::Manifest);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let parse = |bytes: &'static [u8]| BackupMessage::parse(&Bytes::from_static(bytes));
        assert!(matches!(parse(b""), Err(DecodeError::Empty { .. })));
        assert!(matches!(
            parse(b"x"),
            Err(DecodeError::UnknownTag {
                found: Tag(b'x'),
                offset: 0,
                ..
            })
        ));
        assert!(matches!(
            parse(b"nbase.tar"),
            Err(DecodeError::Truncated { offset: 9, .. })
        ));
        assert!(matches!(
            parse(b"nbase.tar\0"),
            Err(DecodeError::Truncated { offset: 10, .. })
        ));
        assert!(matches!(
            parse(b"n\xff\0\0"),
            Err(DecodeError::InvalidUtf8 { offset: 1, .. })
        ));
        assert!(matches!(
            parse(b"p\0\0\0"),
            Err(DecodeError::Truncated { offset: 1, .. })
        ));
        assert!(matches!(
            parse(b"p\xff\xff\xff\xff\xff\xff\xff\xff"),
            Err(DecodeError::InvalidValue {
                value: -1,
                offset: 1,
                ..
            })
        ));
        assert!(matches!(
            parse(b"p\0\0\0\0\0\0\0\x01!"),
            Err(DecodeError::TrailingBytes {
                offset: 9,
                count: 1,
                ..
            })
        ));
        assert!(matches!(
            parse(b"m!"),
            Err(DecodeError::TrailingBytes { offset: 1, .. })
        ));
        assert!(matches!(
            parse(b"na\0b\0c"),
            Err(DecodeError::TrailingBytes { offset: 5, .. })
        ));
    }
}
