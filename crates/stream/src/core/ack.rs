//! Which positions may be reported to the server: the feedback rules.

use pg_walstream_codec::pgoutput::Message;
use pg_walstream_codec::{Lsn, Xid};

/// Positions of one status update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Positions {
    pub(crate) write: Lsn,
    pub(crate) flush: Lsn,
    pub(crate) apply: Lsn,
}

/// Tracks what was received and which units (transactions, prepares, non-transactional
/// messages) are open or still need the application's report.
#[derive(Debug)]
pub(crate) struct AckTracker {
    /// Position already confirmed before this stream started (slot's confirmed_flush_lsn or
    /// the start LSN): never report less, older servers would move the slot backwards.
    floor: Lsn,
    /// Highest WAL position received (XLogData and keepalive `wal_end`).
    received: Lsn,
    /// Highest acknowledgement position of every unit received: the application must report
    /// at least this before keepalives may move the flush position.
    required: Lsn,
    /// Highest keepalive `wal_end` received while streaming.
    keepalive_end: Lsn,
    /// Between Begin and Commit, or Begin Prepare and Prepare.
    txn_open: bool,
    /// Streamed top-level transactions neither committed, prepared nor aborted yet.
    streams_open: Vec<Xid>,
}

impl AckTracker {
    pub(crate) fn new(floor: Lsn) -> Self {
        AckTracker {
            floor,
            received: floor,
            required: Lsn::INVALID,
            keepalive_end: Lsn::INVALID,
            txn_open: false,
            streams_open: Vec::new(),
        }
    }

    pub(crate) fn received(&self) -> Lsn {
        self.received
    }

    /// Whether a plain transaction (Begin … Commit, or Begin Prepare … Prepare) is open.
    pub(crate) fn in_transaction(&self) -> bool {
        self.txn_open
    }

    /// Whether no transaction (plain, prepared or streamed) is open.
    pub(crate) fn no_open_transaction(&self) -> bool {
        !self.txn_open && self.streams_open.is_empty()
    }

    pub(crate) fn on_keepalive(&mut self, wal_end: Lsn) {
        self.received = self.received.max(wal_end);
        self.keepalive_end = self.keepalive_end.max(wal_end);
    }

    /// Updates the state for one decoded message carried by a frame ending at `wal_end`.
    ///
    /// Transaction framing is not checked here: every message reaches this only after
    /// [`PgOutputDecoder::decode`](pg_walstream_codec::pgoutput::PgOutputDecoder::decode)
    /// accepted it, and the decoder — created with this tracker, fed the same messages —
    /// rejects a Begin inside an open transaction and a Commit or Prepare without its Begin.
    pub(crate) fn on_message(&mut self, message: &Message<'_>, wal_end: Lsn) {
        self.note_received(wal_end);
        match message {
            Message::Begin(_) | Message::BeginPrepare(_) => self.txn_open = true,
            Message::Commit(c) => self.close_txn(c.end_lsn),
            Message::Prepare(p) => self.close_txn(p.end_lsn),
            Message::CommitPrepared(c) => self.require(c.end_lsn),
            Message::RollbackPrepared(r) => self.require(r.rollback_end_lsn),
            Message::StreamStart(s) if !self.streams_open.contains(&s.xid) => {
                self.streams_open.push(s.xid);
            }
            Message::StreamCommit(c) => {
                self.close_stream(c.xid);
                self.require(c.end_lsn);
            }
            Message::StreamPrepare(p) => {
                self.close_stream(p.xid);
                self.require(p.end_lsn);
            }
            Message::StreamAbort(a) if a.xid == a.subxid => self.close_stream(a.xid),
            // `lsn` is the end of the message's record (see `Event::ack_lsn`).
            Message::Message(m) if !m.is_transactional() => self.require(m.lsn),
            _ => {}
        }
    }

    /// Notes a frame ending at `wal_end` — all that a row change (Insert, Update, Delete)
    /// does to the tracker: it opens, closes and requires nothing.
    pub(crate) fn note_received(&mut self, wal_end: Lsn) {
        self.received = self.received.max(wal_end);
    }

    fn close_txn(&mut self, end: Lsn) {
        self.txn_open = false;
        self.require(end);
    }

    fn close_stream(&mut self, xid: Xid) {
        self.streams_open.retain(|x| *x != xid);
    }

    fn require(&mut self, ack: Lsn) {
        self.required = self.required.max(ack);
    }

    /// The positions to report, given the application's report `reported`:
    /// write = received; flush = min(reported, received), or the last keepalive's `wal_end`
    /// when everything received is reported and no transaction is open; apply = min(reported,
    /// received). None is ever below the floor.
    pub(crate) fn positions(&self, reported: Lsn) -> Positions {
        let confirmed = reported.min(self.received);
        let mut flush = confirmed;
        if self.no_open_transaction() && reported >= self.required {
            flush = flush.max(self.keepalive_end.min(self.received));
        }
        Positions {
            write: self.received,
            flush: flush.max(self.floor),
            apply: confirmed.max(self.floor),
        }
    }
}
