//! The raw capture format written by `recv --format raw` and read by `decode`.
//!
//! A capture keeps every XLogData frame of a logical stream undecoded, so it can be decoded
//! again later (or by another tool). All integers are big-endian.
//!
//! ```text
//! header (12 bytes):
//!   magic          8 bytes  "PGWSRAW\0"
//!   format version u16      1
//!   proto_version  u8       pgoutput protocol version the stream used (1-4)
//!   flags          u8       bit 0: binary mode was requested; other bits 0
//! frames, until end of file:
//!   length         u32      number of bytes of `data`
//!   wal_start      u64      XLogData dataStart
//!   wal_end        u64      XLogData walEnd
//!   send_time      i64      XLogData sendTime (microseconds since 2000-01-01 UTC)
//!   data           length bytes: one pgoutput message
//! ```
//!
//! A file that ends inside a header or a frame is an error (never silently shortened).

use std::io::{self, Read, Write};

use bytes::Bytes;
use pg_walstream_codec::pgoutput::ProtocolVersion;
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, PgTimestamp};

/// The magic bytes that open a raw capture.
pub(crate) const MAGIC: [u8; 8] = *b"PGWSRAW\0";
/// The format version this program writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Header flag: binary mode was requested.
pub(crate) const FLAG_BINARY: u8 = 1;
/// Bytes before each frame's data.
const FRAME_HEADER_LEN: usize = 4 + 8 + 8 + 8;
/// Largest frame accepted (a pgoutput message holds at most a few 1 GB values in practice).
const MAX_FRAME_LEN: u32 = 0x7fff_ffff;

/// Why a raw capture cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RawError {
    /// The file does not start with the magic bytes.
    #[error("not a pg-walstream raw capture (the file does not start with \"PGWSRAW\\0\")")]
    BadMagic,
    /// A format version this program does not know.
    #[error("raw capture format version {0} is not supported (this program reads version 1)")]
    UnsupportedVersion(u16),
    /// The header names a protocol version outside 1–4.
    #[error("raw capture header names pgoutput protocol version {0}, which does not exist")]
    BadProtocol(u8),
    /// The file ends inside the header or a frame.
    #[error("raw capture is truncated: frame {frame} at byte {offset} is incomplete")]
    Truncated {
        /// Index of the incomplete frame (0-based).
        frame: u64,
        /// Byte offset where it starts.
        offset: u64,
    },
    /// A frame declares more data than any frame may hold.
    #[error("raw capture frame {frame} at byte {offset} declares {length} bytes")]
    Oversized {
        /// Index of the frame.
        frame: u64,
        /// Byte offset where it starts.
        offset: u64,
        /// The declared length.
        length: u32,
    },
    /// Reading failed.
    #[error("reading the raw capture failed")]
    Io(#[from] io::Error),
}

/// The header of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    /// pgoutput protocol version of the captured stream.
    pub(crate) proto: ProtocolVersion,
    /// [`FLAG_BINARY`] and future flags.
    pub(crate) flags: u8,
}

/// Writes the header.
///
/// # Errors
/// Write failures.
pub(crate) fn write_header(out: &mut impl Write, header: RawHeader) -> io::Result<()> {
    out.write_all(&MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_be_bytes())?;
    out.write_all(&[header.proto.as_u32() as u8, header.flags])
}

/// Writes one frame.
///
/// # Errors
/// Write failures, or `InvalidInput` for data longer than a frame may hold.
pub(crate) fn write_frame(out: &mut impl Write, frame: &XLogData) -> io::Result<()> {
    let length = u32::try_from(frame.data.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME_LEN)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut head = [0u8; FRAME_HEADER_LEN];
    head[..4].copy_from_slice(&length.to_be_bytes());
    head[4..12].copy_from_slice(&frame.wal_start.0.to_be_bytes());
    head[12..20].copy_from_slice(&frame.wal_end.0.to_be_bytes());
    head[20..28].copy_from_slice(&frame.send_time.0.to_be_bytes());
    out.write_all(&head)?;
    out.write_all(&frame.data)
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of file before the first
/// byte, `Err(UnexpectedEof)` after some.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads a capture frame by frame.
#[derive(Debug)]
pub(crate) struct RawReader<R> {
    input: R,
    header: RawHeader,
    frame: u64,
    offset: u64,
}

impl<R: Read> RawReader<R> {
    /// Reads and checks the header.
    ///
    /// # Errors
    /// [`RawError::BadMagic`], [`RawError::UnsupportedVersion`], [`RawError::BadProtocol`],
    /// [`RawError::Truncated`], I/O errors.
    pub(crate) fn new(mut input: R) -> Result<Self, RawError> {
        let mut head = [0u8; 12];
        let truncated = RawError::Truncated {
            frame: 0,
            offset: 0,
        };
        match read_full(&mut input, &mut head) {
            Ok(true) => {}
            Ok(false) => return Err(RawError::BadMagic),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(if head.starts_with(&MAGIC) {
                    truncated
                } else {
                    RawError::BadMagic
                });
            }
            Err(e) => return Err(e.into()),
        }
        if head[..8] != MAGIC {
            return Err(RawError::BadMagic);
        }
        let version = u16::from_be_bytes([head[8], head[9]]);
        if version != FORMAT_VERSION {
            return Err(RawError::UnsupportedVersion(version));
        }
        let proto = ProtocolVersion::try_from(u32::from(head[10]))
            .map_err(|_| RawError::BadProtocol(head[10]))?;
        Ok(RawReader {
            input,
            header: RawHeader {
                proto,
                flags: head[11],
            },
            frame: 0,
            offset: 12,
        })
    }

    /// The capture's header.
    pub(crate) fn header(&self) -> RawHeader {
        self.header
    }

    /// The next frame, `None` at the end of the file.
    ///
    /// # Errors
    /// [`RawError::Truncated`], [`RawError::Oversized`], I/O errors.
    pub(crate) fn next_frame(&mut self) -> Result<Option<XLogData>, RawError> {
        let truncated = RawError::Truncated {
            frame: self.frame,
            offset: self.offset,
        };
        let mut head = [0u8; FRAME_HEADER_LEN];
        match read_full(&mut self.input, &mut head) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(truncated),
            Err(e) => return Err(e.into()),
        }
        let be64 = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if length > MAX_FRAME_LEN {
            return Err(RawError::Oversized {
                frame: self.frame,
                offset: self.offset,
                length,
            });
        }
        // Grows with the bytes actually present, so a corrupt length cannot force a huge
        // allocation up front.
        let mut data = Vec::new();
        (&mut self.input)
            .take(u64::from(length))
            .read_to_end(&mut data)?;
        if data.len() != length as usize {
            return Err(truncated);
        }
        self.frame += 1;
        self.offset += (FRAME_HEADER_LEN + data.len()) as u64;
        Ok(Some(XLogData {
            wal_start: Lsn(be64(4)),
            wal_end: Lsn(be64(12)),
            send_time: PgTimestamp(be64(20) as i64),
            data: Bytes::from(data),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(start: u64, data: &'static [u8]) -> XLogData {
        XLogData {
            wal_start: Lsn(start),
            wal_end: Lsn(start + 100),
            send_time: PgTimestamp(-5),
            data: Bytes::from_static(data),
        }
    }

    fn capture(frames: &[XLogData]) -> Vec<u8> {
        let mut out = Vec::new();
        let header = RawHeader {
            proto: ProtocolVersion::V2,
            flags: FLAG_BINARY,
        };
        write_header(&mut out, header).unwrap();
        for f in frames {
            write_frame(&mut out, f).unwrap();
        }
        out
    }

    #[test]
    fn round_trip_keeps_positions_and_data() {
        let frames = [frame(0x10, b"B123"), frame(0x20, b""), frame(0x30, b"C")];
        let bytes = capture(&frames);
        assert_eq!(&bytes[..8], b"PGWSRAW\0");
        assert_eq!(bytes.len(), 12 + 3 * FRAME_HEADER_LEN + 5);
        let mut reader = RawReader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.header().proto, ProtocolVersion::V2);
        assert_eq!(reader.header().flags, FLAG_BINARY);
        for expected in &frames {
            assert_eq!(reader.next_frame().unwrap().as_ref(), Some(expected));
        }
        assert!(reader.next_frame().unwrap().is_none());
    }

    #[test]
    fn every_truncation_is_an_error_naming_the_frame() {
        let bytes = capture(&[frame(1, b"abc"), frame(2, b"defg")]);
        let second = 12 + FRAME_HEADER_LEN + 3;
        for cut in 1..bytes.len() {
            let input = &bytes[..cut];
            let result = RawReader::new(input).and_then(|mut r| {
                while r.next_frame()?.is_some() {}
                Ok(())
            });
            if cut == 12 || cut == second {
                assert!(result.is_ok(), "cut at a frame boundary {cut}: {result:?}");
                continue;
            }
            match result {
                Err(RawError::Truncated { frame, offset }) => {
                    if cut > second {
                        assert_eq!((frame, offset), (1, second as u64), "cut {cut}");
                    } else if cut > 12 {
                        assert_eq!((frame, offset), (0, 12), "cut {cut}");
                    }
                }
                Err(RawError::BadMagic) => assert!(cut < 8, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_headers_are_rejected() {
        assert!(matches!(RawReader::new(&b""[..]), Err(RawError::BadMagic)));
        assert!(matches!(
            RawReader::new(&b"0/16B3748\t744\t\\x42"[..]),
            Err(RawError::BadMagic)
        ));
        let mut bytes = capture(&[]);
        bytes[9] = 2;
        assert!(matches!(
            RawReader::new(bytes.as_slice()),
            Err(RawError::UnsupportedVersion(2))
        ));
        let mut bytes = capture(&[]);
        bytes[10] = 9;
        assert!(matches!(
            RawReader::new(bytes.as_slice()),
            Err(RawError::BadProtocol(9))
        ));
        let mut bytes = capture(&[]);
        bytes.extend_from_slice(&[0xff; FRAME_HEADER_LEN]);
        let mut reader = RawReader::new(bytes.as_slice()).unwrap();
        assert!(matches!(
            reader.next_frame(),
            Err(RawError::Oversized { frame: 0, .. })
        ));
    }
}
