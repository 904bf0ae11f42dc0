//! What both feedback handles ([`Feedback`](crate::Feedback) and
//! [`PhysicalFeedback`](crate::PhysicalFeedback)) share: the positions of the last status
//! update sent, what the server said last, and the request for an immediate update.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use pg_walstream_codec::{Lsn, PgTimestamp};
use tokio::sync::Notify;

/// The status-update side of a feedback handle, shared between the application and the
/// driver task.
#[derive(Debug, Default)]
pub(crate) struct SentStatus {
    sent_write: AtomicU64,
    sent_flush: AtomicU64,
    sent_apply: AtomicU64,
    updates_sent: AtomicU64,
    server_wal_end: AtomicU64,
    server_time: AtomicI64,
    status_requested: AtomicBool,
    wake: Notify,
}

impl SentStatus {
    /// Asks the driver for a status update now.
    pub(crate) fn request_update(&self) {
        self.status_requested.store(true, Ordering::Release);
        self.wake();
    }

    /// Wakes the driver (something it should send changed).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves after [`wake`](Self::wake) (or a request) was called.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Whether a request is pending.
    pub(crate) fn request_pending(&self) -> bool {
        self.status_requested.load(Ordering::Acquire)
    }

    /// Takes a pending request.
    pub(crate) fn take_request(&self) -> bool {
        self.status_requested.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn sent_write(&self) -> Lsn {
        Lsn(self.sent_write.load(Ordering::Acquire))
    }

    pub(crate) fn sent_flush(&self) -> Lsn {
        Lsn(self.sent_flush.load(Ordering::Acquire))
    }

    pub(crate) fn sent_apply(&self) -> Lsn {
        Lsn(self.sent_apply.load(Ordering::Acquire))
    }

    pub(crate) fn updates_sent(&self) -> u64 {
        self.updates_sent.load(Ordering::Acquire)
    }

    pub(crate) fn server_wal_end(&self) -> Lsn {
        Lsn(self.server_wal_end.load(Ordering::Relaxed))
    }

    pub(crate) fn server_time(&self) -> PgTimestamp {
        PgTimestamp(self.server_time.load(Ordering::Relaxed))
    }

    /// Records what the server said in its latest message (the WAL end only moves forward).
    pub(crate) fn record_server(&self, wal_end: Lsn, send_time: PgTimestamp) {
        self.server_wal_end.fetch_max(wal_end.0, Ordering::Relaxed);
        self.server_time.store(send_time.0, Ordering::Relaxed);
    }

    /// The slot's confirmed flush position before any update was sent (only moves forward).
    pub(crate) fn start_flush_at(&self, flush: Lsn) {
        self.sent_flush.fetch_max(flush.0, Ordering::AcqRel);
    }

    /// Records a status update that is about to be written.
    pub(crate) fn record_sent(&self, write: Lsn, flush: Lsn, apply: Lsn) {
        self.sent_write.store(write.0, Ordering::Release);
        self.sent_flush.store(flush.0, Ordering::Release);
        self.sent_apply.store(apply.0, Ordering::Release);
        self.updates_sent.fetch_add(1, Ordering::AcqRel);
    }
}
