//! Replication protocol CopyData payloads, in both directions.
//!
//! The server sends [`XLogData`] (`w`) and [`PrimaryKeepalive`] (`k`); the client sends
//! [`StandbyStatusUpdate`] (`r`) and [`HotStandbyFeedback`] (`h`). These are the bodies of
//! CopyData messages during `START_REPLICATION`, starting with their one-byte tag.
//!
//! ```
//! use bytes::Bytes;
//! use pg_walstream_codec::{Lsn, PgTimestamp};
//! use pg_walstream_codec::replication::{BackendMessage, XLogData};
//!
//! let msg = XLogData {
//!     wal_start: Lsn(0x100),
//!     wal_end: Lsn(0x200),
//!     send_time: PgTimestamp(42),
//!     data: Bytes::from_static(b"payload"),
//! };
//! let mut wire = Vec::new();
//! msg.encode(&mut wire);
//! let wire = Bytes::from(wire);
//! let BackendMessage::XLogData(parsed) = BackendMessage::parse(&wire).unwrap() else {
//!     panic!("not XLogData")
//! };
//! assert_eq!(parsed, msg);
//! assert_eq!(parsed.data.as_ptr(), wire[25..].as_ptr()); // zero-copy
//! ```

use bytes::{Buf, BufMut, Bytes};

use crate::error::DecodeError;
use crate::ids::Xid;
use crate::lsn::Lsn;
use crate::reader::Reader;
use crate::time::PgTimestamp;

/// Tag of [`XLogData`].
pub const XLOG_DATA_TAG: u8 = b'w';
/// Tag of [`PrimaryKeepalive`].
pub const PRIMARY_KEEPALIVE_TAG: u8 = b'k';
/// Tag of [`StandbyStatusUpdate`].
pub const STANDBY_STATUS_UPDATE_TAG: u8 = b'r';
/// Tag of [`HotStandbyFeedback`].
pub const HOT_STANDBY_FEEDBACK_TAG: u8 = b'h';

/// `w`: a chunk of WAL (physical) or one pgoutput message (logical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLogData {
    /// WAL position of the start of `data`.
    pub wal_start: Lsn,
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// The server's clock when the message was sent.
    pub send_time: PgTimestamp,
    /// The payload, sharing the received buffer.
    pub data: Bytes,
}

/// `k`: primary keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// The server's clock when the message was sent.
    pub send_time: PgTimestamp,
    /// The server asks for a status update immediately.
    pub reply_requested: bool,
}

/// `r`: standby status update sent by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandbyStatusUpdate {
    /// Last WAL byte + 1 received and written.
    pub write: Lsn,
    /// Last WAL byte + 1 flushed (durably processed); the slot may advance to here.
    pub flush: Lsn,
    /// Last WAL byte + 1 applied.
    pub apply: Lsn,
    /// The client's clock when the message was sent.
    pub send_time: PgTimestamp,
    /// Ask the server to reply immediately (with a keepalive).
    pub reply_requested: bool,
}

/// `h`: hot standby feedback sent by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotStandbyFeedback {
    /// The client's clock when the message was sent.
    pub send_time: PgTimestamp,
    /// The standby's current global xmin (0 = none).
    pub xmin: Xid,
    /// Epoch of `xmin`.
    pub xmin_epoch: u32,
    /// The standby's current catalog xmin (0 = none).
    pub catalog_xmin: Xid,
    /// Epoch of `catalog_xmin`.
    pub catalog_xmin_epoch: u32,
}

/// A CopyData payload sent by the server during replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `w`.
    XLogData(XLogData),
    /// `k`.
    PrimaryKeepalive(PrimaryKeepalive),
}

/// A CopyData payload sent by the client during replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendMessage {
    /// `r`.
    StandbyStatusUpdate(StandbyStatusUpdate),
    /// `h`.
    HotStandbyFeedback(HotStandbyFeedback),
}

fn flag(r: &mut Reader<'_>, expected: &'static str) -> Result<bool, DecodeError> {
    match r.u8(expected)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(r.invalid(1, other.into(), expected)),
    }
}

impl BackendMessage {
    /// Parses a server CopyData payload. `XLogData::data` is a slice of `copy_data` (no
    /// copy).
    ///
    /// # Errors
    /// [`DecodeError`] for an empty, truncated or over-long payload, an unknown tag or a
    /// reply flag other than 0/1.
    pub fn parse(copy_data: &Bytes) -> Result<Self, DecodeError> {
        Self::parse_owned(copy_data.clone())
    }

    /// [`parse`](Self::parse) for a payload the caller gives up: `XLogData::data` is
    /// `copy_data` itself, advanced past the header (no reference count is taken).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use pg_walstream_codec::replication::BackendMessage;
    /// let mut frame = vec![b'w'];
    /// frame.extend_from_slice(&[0; 24]);
    /// frame.extend_from_slice(b"payload");
    /// let BackendMessage::XLogData(x) = BackendMessage::parse_owned(Bytes::from(frame))? else {
    ///     panic!()
    /// };
    /// assert_eq!(&x.data[..], b"payload");
    /// # Ok::<(), pg_walstream_codec::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_owned(mut copy_data: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::message(&copy_data, "replication message 'w' or 'k'")?;
        match r.tag() {
            XLOG_DATA_TAG => {
                let wal_start = Lsn(r.u64("XLogData wal_start")?);
                let wal_end = Lsn(r.u64("XLogData wal_end")?);
                let send_time = PgTimestamp(r.i64("XLogData send_time")?);
                let start = r.offset();
                copy_data.advance(start);
                Ok(Self::XLogData(XLogData {
                    wal_start,
                    wal_end,
                    send_time,
                    data: copy_data,
                }))
            }
            PRIMARY_KEEPALIVE_TAG => {
                let wal_end = Lsn(r.u64("keepalive wal_end")?);
                let send_time = PgTimestamp(r.i64("keepalive send_time")?);
                let reply_requested = flag(&mut r, "keepalive reply flag 0 or 1")?;
                r.finish()?;
                Ok(Self::PrimaryKeepalive(PrimaryKeepalive {
                    wal_end,
                    send_time,
                    reply_requested,
                }))
            }
            other => Err(r.unknown_tag(other, "replication message 'w' or 'k'")),
        }
    }

    /// Appends the CopyData payload (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Self::XLogData(m) => m.encode(buf),
            Self::PrimaryKeepalive(m) => m.encode(buf),
        }
    }
}

impl FrontendMessage {
    /// Parses a client CopyData payload.
    ///
    /// # Errors
    /// [`DecodeError`] for an empty, truncated or over-long payload, an unknown tag or a
    /// reply flag other than 0/1.
    pub fn parse(copy_data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::message(copy_data, "replication message 'r' or 'h'")?;
        let msg = match r.tag() {
            STANDBY_STATUS_UPDATE_TAG => Self::StandbyStatusUpdate(StandbyStatusUpdate {
                write: Lsn(r.u64("status update write position")?),
                flush: Lsn(r.u64("status update flush position")?),
                apply: Lsn(r.u64("status update apply position")?),
                send_time: PgTimestamp(r.i64("status update send_time")?),
                reply_requested: flag(&mut r, "status update reply flag 0 or 1")?,
            }),
            HOT_STANDBY_FEEDBACK_TAG => Self::HotStandbyFeedback(HotStandbyFeedback {
                send_time: PgTimestamp(r.i64("feedback send_time")?),
                xmin: Xid(r.u32("feedback xmin")?),
                xmin_epoch: r.u32("feedback xmin epoch")?,
                catalog_xmin: Xid(r.u32("feedback catalog_xmin")?),
                catalog_xmin_epoch: r.u32("feedback catalog_xmin epoch")?,
            }),
            other => return Err(r.unknown_tag(other, "replication message 'r' or 'h'")),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Appends the CopyData payload (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Self::StandbyStatusUpdate(m) => m.encode(buf),
            Self::HotStandbyFeedback(m) => m.encode(buf),
        }
    }
}

impl XLogData {
    /// Length of the header before `data` (tag included).
    pub const HEADER_LEN: usize = 25;

    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(XLOG_DATA_TAG);
        buf.put_u64(self.wal_start.0);
        buf.put_u64(self.wal_end.0);
        buf.put_i64(self.send_time.0);
        buf.put_slice(&self.data);
    }
}

impl PrimaryKeepalive {
    /// Encoded length (tag included).
    pub const LEN: usize = 18;

    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(PRIMARY_KEEPALIVE_TAG);
        buf.put_u64(self.wal_end.0);
        buf.put_i64(self.send_time.0);
        buf.put_u8(self.reply_requested.into());
    }
}

impl StandbyStatusUpdate {
    /// Encoded length (tag included).
    pub const LEN: usize = 34;

    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// ```
    /// use pg_walstream_codec::{Lsn, PgTimestamp, replication::StandbyStatusUpdate};
    /// let mut buf = Vec::new();
    /// StandbyStatusUpdate {
    ///     write: Lsn(3), flush: Lsn(2), apply: Lsn(1),
    ///     send_time: PgTimestamp(0), reply_requested: false,
    /// }.encode(&mut buf);
    /// assert_eq!(buf.len(), StandbyStatusUpdate::LEN);
    /// assert_eq!(&buf[..2], b"r\0");
    /// ```
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(STANDBY_STATUS_UPDATE_TAG);
        buf.put_u64(self.write.0);
        buf.put_u64(self.flush.0);
        buf.put_u64(self.apply.0);
        buf.put_i64(self.send_time.0);
        buf.put_u8(self.reply_requested.into());
    }
}

impl HotStandbyFeedback {
    /// Encoded length (tag included).
    pub const LEN: usize = 25;

    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(HOT_STANDBY_FEEDBACK_TAG);
        buf.put_i64(self.send_time.0);
        buf.put_u32(self.xmin.0);
        buf.put_u32(self.xmin_epoch);
        buf.put_u32(self.catalog_xmin.0);
        buf.put_u32(self.catalog_xmin_epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn keepalive_layout() {
        let k = PrimaryKeepalive {
            wal_end: Lsn(0x0102_0304_0506_0708),
            send_time: PgTimestamp(-2),
            reply_requested: true,
        };
        let mut buf = Vec::new();
        k.encode(&mut buf);
        assert_eq!(buf.len(), PrimaryKeepalive::LEN);
        assert_eq!(&buf[..9], b"k\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(buf[17], 1);
        let parsed = BackendMessage::parse(&Bytes::from(buf.clone())).unwrap();
        assert_eq!(parsed, BackendMessage::PrimaryKeepalive(k));
        buf[17] = 2;
        let err = BackendMessage::parse(&Bytes::from(buf.clone())).unwrap_err();
        assert_eq!(err.offset(), Some(17));
        buf[17] = 0;
        buf.push(0);
        let err = BackendMessage::parse(&Bytes::from(buf)).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::TrailingBytes {
                offset: 18,
                count: 1,
                ..
            }
        ));
    }

    #[test]
    fn errors_on_bad_input() {
        assert!(matches!(
            BackendMessage::parse(&Bytes::new()),
            Err(DecodeError::Empty { .. })
        ));
        let err = BackendMessage::parse(&Bytes::from_static(b"w\0\0")).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { offset: 1, .. }),
            "{err}"
        );
        let err = BackendMessage::parse(&Bytes::from_static(b"r")).unwrap_err();
        assert!(
            matches!(err, DecodeError::UnknownTag { offset: 0, .. }),
            "{err}"
        );
        let err = FrontendMessage::parse(b"h\0\0\0\0\0\0\0\0\0").unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { offset: 9, .. }),
            "{err}"
        );
    }

    #[test]
    fn feedback_layout() {
        let h = HotStandbyFeedback {
            send_time: PgTimestamp(7),
            xmin: Xid(1),
            xmin_epoch: 2,
            catalog_xmin: Xid(3),
            catalog_xmin_epoch: 4,
        };
        let mut buf = Vec::new();
        h.encode(&mut buf);
        assert_eq!(buf.len(), HotStandbyFeedback::LEN);
        assert_eq!(&buf[9..], b"\0\0\0\x01\0\0\0\x02\0\0\0\x03\0\0\0\x04");
        assert_eq!(
            FrontendMessage::parse(&buf),
            Ok(FrontendMessage::HotStandbyFeedback(h))
        );
    }
}
