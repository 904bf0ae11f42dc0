//! What a physical stream delivers.

use bytes::Bytes;
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, PgTimestamp};
use pg_walstream_slot::TimelineHistory;

/// One item of a [`PhysicalStream`](crate::PhysicalStream).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PhysicalEvent {
    /// Raw WAL bytes.
    Wal(WalData),
    /// The server ended a timeline; the stream continues on the next one from
    /// [`resume_at`](TimelineSwitch::resume_at).
    TimelineSwitch(TimelineSwitch),
}

/// A run of WAL bytes: `data` is the WAL from [`start`](Self::start) to [`end`](Self::end)
/// on [`timeline`](Self::timeline), zero-copy from the server's CopyData.
#[derive(Debug, Clone)]
pub struct WalData {
    /// The timeline the bytes belong to.
    pub timeline: u32,
    /// The position after the last byte.
    pub end: Lsn,
    /// The frame as received (`wal_start`, the server's `wal_end` and send time, the bytes).
    pub xlog: XLogData,
}

impl WalData {
    /// The position of the first byte.
    pub fn start(&self) -> Lsn {
        self.xlog.wal_start
    }

    /// The WAL bytes.
    pub fn data(&self) -> &Bytes {
        &self.xlog.data
    }

    /// The server's clock when it sent the frame.
    pub fn send_time(&self) -> PgTimestamp {
        self.xlog.send_time
    }
}

/// The end of one timeline and the start of the next, as the server reported them.
///
/// WAL of the new timeline resumes at the start of the segment holding the switch point (the
/// new timeline's segment file begins with the old timeline's bytes), so a segment writer
/// closes the old timeline's segment as `.partial` and starts a new file, exactly as
/// `pg_receivewal` does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TimelineSwitch {
    /// The timeline that ended.
    pub previous_timeline: u32,
    /// Where the stream of the previous timeline ended (everything before was delivered).
    pub ended_at: Lsn,
    /// The next timeline.
    pub timeline: u32,
    /// Where the next timeline begins (its switch point).
    pub switchpoint: Lsn,
    /// Where streaming resumes on the next timeline (the segment start of the switch point).
    pub resume_at: Lsn,
    /// The next timeline's history file (`TIMELINE_HISTORY`).
    pub history: TimelineHistory,
}
