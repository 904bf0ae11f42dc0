//! The [`Feedback`] handle: where the application reports what it has durably processed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Source of [`Feedback`] identities (one per stream), so an event is acknowledged only
/// through the stream that delivered it.
static NEXT_STREAM_ID: AtomicU64 = AtomicU64::new(1);

use pg_walstream_codec::{Lsn, PgTimestamp};

use crate::events::Event;
use crate::sent_status::SentStatus;

/// A cheap, cloneable handle through which the application reports the WAL position up to
/// which it has *durably* processed the stream, and reads what the stream last confirmed to
/// the server.
///
/// Report a transaction as processed with its acknowledgement position — the Commit's
/// `end_lsn`, which [`Event::ack_lsn`] returns — once its effects are durable downstream.
/// Reports only ever move forward (a smaller LSN than one already reported is ignored), so
/// several tasks may report concurrently. Clone it into worker tasks: all clones share the
/// same atomics.
///
/// The stream never confirms more than was reported, except for the idle rule described in
/// the [crate documentation](crate#lsn-feedback): once everything received has been reported,
/// the flush position may follow the server's keepalives.
///
/// ```
/// use pg_walstream_codec::{Lsn, PgTimestamp};
/// use pg_walstream_stream::Feedback;
///
/// let feedback = Feedback::new();
/// let worker = feedback.clone();
/// worker.processed(Lsn(0x200));
/// worker.processed(Lsn(0x100)); // ignored: reports never go backwards
/// assert_eq!(feedback.processed_lsn(), Lsn(0x200));
/// ```
#[derive(Debug, Clone)]
pub struct Feedback {
    shared: Arc<Shared>,
}

/// [`Feedback::ack`] was given an event that another stream delivered: acknowledging it here
/// would confirm a position of an unrelated slot. Nothing was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event acknowledged through the feedback handle of a stream that did not deliver it")]
#[non_exhaustive]
pub struct ForeignEvent;

impl Default for Feedback {
    fn default() -> Self {
        Feedback {
            shared: Arc::new(Shared {
                stream_id: NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed),
                processed: AtomicU64::new(0),
                status: SentStatus::default(),
                reconnects: AtomicU64::new(0),
                reconnect_attempts: AtomicU64::new(0),
            }),
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// Which stream this is (see [`Feedback::ack`]).
    stream_id: u64,
    processed: AtomicU64,
    status: SentStatus,
    reconnects: AtomicU64,
    reconnect_attempts: AtomicU64,
}

impl Feedback {
    /// A handle with nothing reported.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports that every change up to `lsn` is durably processed.
    pub fn processed(&self, lsn: Lsn) {
        self.shared.processed.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// Asks for a status update now rather than at the next interval, e.g. right after
    /// reporting a position the slot should learn about promptly.
    pub fn request_status_update(&self) {
        self.shared.status.request_update();
    }

    /// Whether a [`request_status_update`](Self::request_status_update) is pending.
    pub(crate) fn status_request_pending(&self) -> bool {
        self.shared.status.request_pending()
    }

    /// Takes a pending [`request_status_update`](Self::request_status_update).
    pub(crate) fn take_status_request(&self) -> bool {
        self.shared.status.take_request()
    }

    /// Resolves after [`request_status_update`](Self::request_status_update) was called.
    pub(crate) async fn status_requested(&self) {
        self.shared.status.woken().await;
    }

    /// Reports `event` as processed if it ends a unit the server can be told about (a
    /// transaction's commit, a prepare, a non-transactional message); other events are
    /// ignored. Returns the position reported, if any.
    ///
    /// # Errors
    /// [`ForeignEvent`] when `event` was delivered by another stream (nothing is reported).
    pub fn ack(&self, event: &Event) -> Result<Option<Lsn>, ForeignEvent> {
        if event.stream_id() != self.shared.stream_id {
            return Err(ForeignEvent);
        }
        let Some(lsn) = event.ack_lsn() else {
            return Ok(None);
        };
        self.processed(lsn);
        Ok(Some(lsn))
    }

    /// The identity events of this stream carry.
    pub(crate) fn stream_id(&self) -> u64 {
        self.shared.stream_id
    }

    /// The highest position reported so far (`0/0` if none).
    pub fn processed_lsn(&self) -> Lsn {
        Lsn(self.shared.processed.load(Ordering::Acquire))
    }

    /// "Confirmed flush": the flush position the server was last told for the slot — that of
    /// the last status update sent, and before the first one the slot's `confirmed_flush_lsn`
    /// when the stream started (as [`StreamInfo::confirmed_flush_lsn`] and
    /// [`PreparedStream::confirmed_flush_lsn`] give it; `0/0` for a handle no stream uses).
    /// The slot may advance to it; a new stream resumes there.
    ///
    /// [`StreamInfo::confirmed_flush_lsn`]: crate::StreamInfo::confirmed_flush_lsn
    /// [`PreparedStream::confirmed_flush_lsn`]: crate::PreparedStream::confirmed_flush_lsn
    pub fn confirmed_flush_lsn(&self) -> Lsn {
        self.shared.status.sent_flush()
    }

    /// The write (received) position of the last status update sent.
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

    /// Health: the server's WAL end as of its latest message (XLogData or keepalive), `0/0`
    /// before the first. Together with [`last_server_time`](Self::last_server_time) it tells
    /// whether the server is still talking, independently of whether events flow.
    pub fn server_wal_end(&self) -> Lsn {
        self.shared.status.server_wal_end()
    }

    /// Health: the server's clock in its latest message (`PgTimestamp::EPOCH` before the
    /// first). Compare with the wall clock to see how stale the connection is.
    pub fn last_server_time(&self) -> PgTimestamp {
        self.shared.status.server_time()
    }

    /// Health: how many times the stream reconnected after a failure.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Health: how many reconnect attempts were made (successful or not).
    pub fn reconnect_attempts(&self) -> u64 {
        self.shared.reconnect_attempts.load(Ordering::Relaxed)
    }

    pub(crate) fn record_reconnect_attempt(&self) {
        self.shared
            .reconnect_attempts
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_reconnect(&self) {
        self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Records what the server said in its latest message.
    pub(crate) fn record_server(&self, wal_end: Lsn, send_time: PgTimestamp) {
        self.shared.status.record_server(wal_end, send_time);
    }

    /// The slot's confirmed flush position when the stream started (before any update).
    pub(crate) fn start_confirmed_at(&self, lsn: Lsn) {
        self.shared.status.start_flush_at(lsn);
    }

    /// Records a status update that is about to be written.
    pub(crate) fn record_sent(&self, write: Lsn, flush: Lsn, apply: Lsn) {
        self.shared.status.record_sent(write, flush, apply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    const _: () = assert_send_sync::<Feedback>();

    #[test]
    fn reports_are_monotonic_across_clones() {
        let a = Feedback::new();
        let b = a.clone();
        assert_eq!(a.processed_lsn(), Lsn(0));
        b.processed(Lsn(10));
        a.processed(Lsn(5));
        assert_eq!(b.processed_lsn(), Lsn(10));
        let threads: Vec<_> = (1..=4u64)
            .map(|i| {
                let f = a.clone();
                std::thread::spawn(move || {
                    for j in 0..1000 {
                        f.processed(Lsn(i * 1000 + j));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(a.processed_lsn(), Lsn(4999));
        a.record_sent(Lsn(3), Lsn(2), Lsn(1));
        assert_eq!(
            (
                b.sent_write_lsn(),
                b.confirmed_flush_lsn(),
                b.sent_apply_lsn()
            ),
            (Lsn(3), Lsn(2), Lsn(1))
        );
        assert_eq!(b.status_updates_sent(), 1);
        assert_eq!(b.server_wal_end(), Lsn(0));
        a.record_server(Lsn(9), PgTimestamp(5));
        a.record_server(Lsn(8), PgTimestamp(6));
        assert_eq!(
            (b.server_wal_end(), b.last_server_time()),
            (Lsn(9), PgTimestamp(6))
        );
    }
}
