//! [`PhysicalFeedback`]: where the application reports written / flushed / applied WAL and
//! sets hot standby feedback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pg_walstream_codec::{Lsn, PgTimestamp, Xid};

use crate::sent_status::SentStatus;

/// The oldest transactions a hot standby still needs, sent as hot standby feedback (`h`).
///
/// The server holds back vacuum for them: the physical slot's `xmin` / `catalog_xmin` (or the
/// walsender's, without a slot) follow these values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HotStandbyXmin {
    /// Oldest transaction still needed (`Xid::INVALID` = none).
    pub xmin: Xid,
    /// Epoch of `xmin`.
    pub xmin_epoch: u32,
    /// Oldest transaction whose catalog rows are still needed (`Xid::INVALID` = none).
    pub catalog_xmin: Xid,
    /// Epoch of `catalog_xmin`.
    pub catalog_xmin_epoch: u32,
}

/// A cheap, cloneable handle through which the application reports how far it has written,
/// flushed (made durable) and applied the WAL it received, and sets hot standby feedback.
///
/// Each position only moves forward, and status updates never report more than was received.
/// The server's physical slot (`restart_lsn`) follows the **flush** position: report there
/// only what is durable. Positions never reported go out as `0/0`, which the server ignores.
///
/// ```
/// use pg_walstream_codec::{Lsn, Xid};
/// use pg_walstream_stream::{HotStandbyXmin, PhysicalFeedback};
///
/// let feedback = PhysicalFeedback::new();
/// feedback.written(Lsn(0x300));
/// feedback.flushed(Lsn(0x200));
/// feedback.flushed(Lsn(0x100)); // ignored: positions never go backwards
/// assert_eq!(feedback.flushed_lsn(), Lsn(0x200));
/// feedback.set_hot_standby(Some(HotStandbyXmin { xmin: Xid(742), ..Default::default() }));
/// assert_eq!(feedback.hot_standby().unwrap().xmin, Xid(742));
/// ```
#[derive(Debug, Clone, Default)]
pub struct PhysicalFeedback {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    written: AtomicU64,
    flushed: AtomicU64,
    applied: AtomicU64,
    status: SentStatus,
    hot_standby_sent: AtomicU64,
    /// `xmin_epoch << 32 | xmin`, `catalog_epoch << 32 | catalog_xmin`.
    hs_xmin: AtomicU64,
    hs_catalog: AtomicU64,
    hs_enabled: AtomicBool,
    /// A change of the hot standby setting (or a request) not yet sent.
    hs_pending: AtomicBool,
}

impl PhysicalFeedback {
    /// A handle with nothing reported and hot standby feedback off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports WAL written (not necessarily durable) up to `lsn`.
    pub fn written(&self, lsn: Lsn) {
        self.shared.written.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// Reports WAL durable up to `lsn` (the slot may release WAL before it).
    pub fn flushed(&self, lsn: Lsn) {
        self.shared.flushed.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// Reports WAL applied (replayed) up to `lsn`.
    pub fn applied(&self, lsn: Lsn) {
        self.shared.applied.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// The highest written position reported.
    pub fn written_lsn(&self) -> Lsn {
        Lsn(self.shared.written.load(Ordering::Acquire))
    }

    /// The highest flushed position reported.
    pub fn flushed_lsn(&self) -> Lsn {
        Lsn(self.shared.flushed.load(Ordering::Acquire))
    }

    /// The highest applied position reported.
    pub fn applied_lsn(&self) -> Lsn {
        Lsn(self.shared.applied.load(Ordering::Acquire))
    }

    /// Turns hot standby feedback on with these values (sent at once, then on every
    /// [hot standby interval](crate::PhysicalConfigBuilder::hot_standby_interval)), or off
    /// with `None`: one last message with invalid xmins releases what the server held.
    pub fn set_hot_standby(&self, xmin: Option<HotStandbyXmin>) {
        if let Some(x) = xmin {
            self.shared.hs_xmin.store(
                u64::from(x.xmin_epoch) << 32 | u64::from(x.xmin.0),
                Ordering::Release,
            );
            self.shared.hs_catalog.store(
                u64::from(x.catalog_xmin_epoch) << 32 | u64::from(x.catalog_xmin.0),
                Ordering::Release,
            );
        }
        self.shared
            .hs_enabled
            .store(xmin.is_some(), Ordering::Release);
        self.shared.hs_pending.store(true, Ordering::Release);
        self.shared.status.wake();
    }

    /// The hot standby feedback in force, `None` when off.
    pub fn hot_standby(&self) -> Option<HotStandbyXmin> {
        if !self.shared.hs_enabled.load(Ordering::Acquire) {
            return None;
        }
        let xmin = self.shared.hs_xmin.load(Ordering::Acquire);
        let catalog = self.shared.hs_catalog.load(Ordering::Acquire);
        Some(HotStandbyXmin {
            xmin: Xid(xmin as u32),
            xmin_epoch: (xmin >> 32) as u32,
            catalog_xmin: Xid(catalog as u32),
            catalog_xmin_epoch: (catalog >> 32) as u32,
        })
    }

    /// Asks for a status update now rather than at the next interval (e.g. right after a
    /// flush the slot should learn about).
    pub fn request_status_update(&self) {
        self.shared.status.request_update();
    }

    /// The flush position of the last status update sent (`0/0` before the first).
    pub fn sent_flush_lsn(&self) -> Lsn {
        self.shared.status.sent_flush()
    }

    /// The write position of the last status update sent.
    pub fn sent_write_lsn(&self) -> Lsn {
        self.shared.status.sent_write()
    }

    /// The apply position of the last status update sent.
    pub fn sent_apply_lsn(&self) -> Lsn {
        self.shared.status.sent_apply()
    }

    /// How many status updates have been sent.
    pub fn status_updates_sent(&self) -> u64 {
        self.shared.status.updates_sent()
    }

    /// How many hot standby feedback messages have been sent.
    pub fn hot_standby_feedback_sent(&self) -> u64 {
        self.shared.hot_standby_sent.load(Ordering::Acquire)
    }

    /// Health: the server's WAL end as of its latest message.
    pub fn server_wal_end(&self) -> Lsn {
        self.shared.status.server_wal_end()
    }

    /// Health: the server's clock in its latest message.
    pub fn last_server_time(&self) -> PgTimestamp {
        self.shared.status.server_time()
    }

    pub(crate) fn status_request_pending(&self) -> bool {
        self.shared.status.request_pending()
    }

    pub(crate) fn take_status_request(&self) -> bool {
        self.shared.status.take_request()
    }

    pub(crate) fn hot_standby_pending(&self) -> bool {
        self.shared.hs_pending.load(Ordering::Acquire)
    }

    pub(crate) fn take_hot_standby_pending(&self) -> bool {
        self.shared.hs_pending.swap(false, Ordering::AcqRel)
    }

    pub(crate) async fn woken(&self) {
        self.shared.status.woken().await;
    }

    pub(crate) fn record_server(&self, wal_end: Lsn, send_time: PgTimestamp) {
        self.shared.status.record_server(wal_end, send_time);
    }

    pub(crate) fn record_sent(&self, write: Lsn, flush: Lsn, apply: Lsn) {
        self.shared.status.record_sent(write, flush, apply);
    }

    pub(crate) fn record_hot_standby_sent(&self) {
        self.shared.hot_standby_sent.fetch_add(1, Ordering::AcqRel);
    }
}
