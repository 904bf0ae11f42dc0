//! The sans-IO physical replication state machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pg_walstream_codec::replication::{
    BackendMessage, FrontendMessage, HotStandbyFeedback, PrimaryKeepalive, StandbyStatusUpdate,
    XLogData,
};
use pg_walstream_codec::{Lsn, PgTimestamp, Xid};

use super::events::{PhysicalEvent, WalData};
use super::feedback::PhysicalFeedback;
use crate::ReadTimeout;
use crate::error::{Error, Result};

/// Settings of a [`PhysicalCore`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PhysicalOptions {
    /// Send a status update at least this often.
    pub status_interval: Duration,
    /// Read deadline (see [`ReadTimeout`]).
    pub read_timeout: ReadTimeout,
    /// While hot standby feedback is on, send it at least this often.
    pub hot_standby_interval: Duration,
}

impl Default for PhysicalOptions {
    fn default() -> Self {
        PhysicalOptions {
            status_interval: Duration::from_secs(10),
            read_timeout: ReadTimeout::Auto,
            hot_standby_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving WAL of `timeline`.
    Streaming,
    /// The server ended the timeline (CopyDone); the driver asks for the next one.
    TimelineEnded,
    /// We sent CopyDone after a stop; waiting for the server's.
    CopyDoneSent,
    Finished,
}

/// The physical stream's state machine: never touches a socket or a clock.
///
/// Feed it CopyData frames ([`handle_copy_data`](Self::handle_copy_data)) and the time
/// ([`handle_timeout`](Self::handle_timeout)); take WAL with
/// [`poll_event`](Self::poll_event), the messages to send with
/// [`poll_transmit`](Self::poll_transmit) and the next wake-up with
/// [`poll_timeout`](Self::poll_timeout). WAL must arrive contiguously: each XLogData starts
/// where the previous one ended, otherwise the stream fails with [`Error::Protocol`].
///
/// Status updates (`r`) go out every status interval, at once when the server asks
/// (`reply_requested`), when asked through [`PhysicalFeedback::request_status_update`], and
/// as a liveness ping (asking for a reply) half-way through the read deadline. They report
/// the application's written / flushed / applied positions, each capped at the highest
/// position received. Hot standby feedback (`h`) goes out when set or changed and then every
/// hot standby interval while on; turning it off sends one message with invalid xmins.
#[derive(Debug)]
pub struct PhysicalCore {
    options: PhysicalOptions,
    feedback: PhysicalFeedback,
    phase: Phase,
    timeline: u32,
    /// The next byte expected on this timeline.
    received: Lsn,
    /// The highest position ever received (across timelines): status updates never pass it.
    received_high: Lsn,
    events: VecDeque<Result<PhysicalEvent>>,
    reply_pending: bool,
    stop_pending: bool,
    clean_end: bool,
    next_status: Instant,
    next_hot_standby: Instant,
    /// Whether the last hot standby message sent held xmins (so turning off must be sent).
    hot_standby_on: bool,
    last_received: Instant,
    last_keepalive: Option<Instant>,
    longest_keepalive_gap: Option<Duration>,
    reading: bool,
    ping_sent: bool,
}

impl PhysicalCore {
    /// A core for a stream just started at `start` on `timeline`.
    pub fn new(
        options: PhysicalOptions,
        feedback: PhysicalFeedback,
        timeline: u32,
        start: Lsn,
        now: Instant,
    ) -> Self {
        PhysicalCore {
            options,
            feedback,
            phase: Phase::Streaming,
            timeline,
            received: start,
            received_high: start,
            events: VecDeque::new(),
            reply_pending: false,
            stop_pending: false,
            clean_end: false,
            next_status: now + options.status_interval,
            next_hot_standby: now,
            hot_standby_on: false,
            last_received: now,
            last_keepalive: None,
            longest_keepalive_gap: None,
            reading: true,
            ping_sent: false,
        }
    }

    /// The feedback handle shared with the application.
    pub fn feedback(&self) -> &PhysicalFeedback {
        &self.feedback
    }

    /// The timeline being streamed.
    pub fn timeline(&self) -> u32 {
        self.timeline
    }

    /// The position after the last byte received on the current timeline.
    pub fn received_lsn(&self) -> Lsn {
        self.received
    }

    /// Feeds one CopyData frame received at `now`.
    pub fn handle_copy_data(&mut self, now: Instant, frame: &Bytes) {
        if self.phase != Phase::Streaming && self.phase != Phase::CopyDoneSent {
            return;
        }
        self.last_received = self.last_received.max(now);
        self.ping_sent = false;
        match BackendMessage::parse(frame) {
            Err(source) => self.fail(Error::Decode {
                after: self.received,
                source,
            }),
            Ok(BackendMessage::PrimaryKeepalive(k)) => self.on_keepalive(now, k),
            Ok(BackendMessage::XLogData(x)) => self.on_xlog_data(x),
        }
    }

    /// Checks the read deadline at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Finished {
            return;
        }
        if let Some(deadline) = self.deadline()
            && now >= deadline
        {
            let silent_for = now.saturating_duration_since(self.last_received);
            self.fail(Error::ReadTimeout { silent_for });
        }
    }

    /// The server ended the COPY stream: after our CopyDone the clean end, otherwise the end
    /// of the timeline (the driver then reads the server's next timeline).
    pub fn handle_server_end(&mut self) {
        match self.phase {
            Phase::CopyDoneSent => {
                self.phase = Phase::Finished;
                self.clean_end = true;
            }
            Phase::Streaming => self.phase = Phase::TimelineEnded,
            Phase::TimelineEnded | Phase::Finished => {}
        }
    }

    /// Whether the server ended the current timeline and the driver should follow it.
    pub fn timeline_ended(&self) -> bool {
        self.phase == Phase::TimelineEnded
    }

    /// Continues on `timeline` from `start` after a timeline switch: `switch` is queued for
    /// the application first.
    pub fn follow_timeline(
        &mut self,
        now: Instant,
        switch: PhysicalEvent,
        timeline: u32,
        start: Lsn,
    ) {
        if self.phase != Phase::TimelineEnded {
            return;
        }
        self.events.push_back(Ok(switch));
        self.timeline = timeline;
        self.received = start;
        self.phase = Phase::Streaming;
        self.last_received = self.last_received.max(now);
        self.ping_sent = false;
    }

    /// A failure outside the core (connection, commands): queued after pending events, it ends
    /// the stream.
    pub fn handle_error(&mut self, error: Error) {
        if self.phase != Phase::Finished {
            self.fail(error);
        }
    }

    /// Asks for a graceful stop: a last status update, then CopyDone (see
    /// [`wants_copy_done`](Self::wants_copy_done)). WAL arriving meanwhile is discarded.
    pub fn request_stop(&mut self) {
        match self.phase {
            Phase::Streaming => {
                self.stop_pending = true;
                self.reply_pending = true;
            }
            Phase::TimelineEnded => {
                self.phase = Phase::Finished;
                self.clean_end = true;
            }
            Phase::CopyDoneSent | Phase::Finished => {}
        }
    }

    /// Whether the driver should send CopyDone now (after the last status update).
    pub fn wants_copy_done(&self) -> bool {
        self.stop_pending && !self.reply_pending && self.phase == Phase::Streaming
    }

    /// The driver sent CopyDone.
    pub fn on_copy_done_sent(&mut self) {
        self.stop_pending = false;
        if self.phase == Phase::Streaming {
            self.phase = Phase::CopyDoneSent;
        }
    }

    /// Whether the stream is over (cleanly or by an error); pending events may remain.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished && self.events.is_empty()
    }

    /// Whether it ended by the stop handshake rather than an error.
    pub fn ended_cleanly(&self) -> bool {
        self.clean_end
    }

    /// Whether events wait for [`poll_event`](Self::poll_event).
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, or the error that ended the stream.
    pub fn poll_event(&mut self) -> Option<Result<PhysicalEvent>> {
        self.events.pop_front()
    }

    /// Tells the core whether the driver is reading (false while the application lags): the
    /// read deadline does not run while paused.
    pub fn set_reading(&mut self, now: Instant, reading: bool) {
        if reading && !self.reading {
            self.last_received = self.last_received.max(now);
            self.ping_sent = false;
            self.last_keepalive = None;
        }
        self.reading = reading;
    }

    /// When the core next needs [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_transmit`](Self::poll_transmit); `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Finished {
            return None;
        }
        let mut at = self.next_status;
        if self.hot_standby_on || self.feedback.hot_standby().is_some() {
            at = at.min(self.next_hot_standby);
        }
        for t in [self.ping_at(), self.deadline()].into_iter().flatten() {
            at = at.min(t);
        }
        Some(at)
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something to send at `now`.
    pub fn transmit_due(&self, now: Instant) -> bool {
        self.phase == Phase::Streaming
            && (self.reply_pending
                || self.feedback.status_request_pending()
                || self.feedback.hot_standby_pending()
                || now >= self.next_status
                || self.ping_at().is_some_and(|at| now >= at)
                || (self.feedback.hot_standby().is_some() && now >= self.next_hot_standby))
    }

    /// Appends the next due message (`r` status update or `h` hot standby feedback) to `buf`
    /// and returns it; call until `None`. `send_time` is the wall clock at `now`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        send_time: PgTimestamp,
        buf: &mut BytesMut,
    ) -> Option<FrontendMessage> {
        if self.phase != Phase::Streaming {
            return None;
        }
        if let Some(message) = self.poll_hot_standby(now, send_time) {
            buf.reserve(HotStandbyFeedback::LEN);
            message.encode(buf);
            self.feedback.record_hot_standby_sent();
            return Some(FrontendMessage::HotStandbyFeedback(message));
        }
        let ping = self.ping_at().is_some_and(|at| now >= at);
        let requested = self.feedback.take_status_request();
        if !(requested || ping || self.reply_pending || now >= self.next_status) {
            return None;
        }
        let cap = self.received_high.max(self.received);
        let flush = self.feedback.flushed_lsn().min(cap);
        let update = StandbyStatusUpdate {
            write: self.feedback.written_lsn().max(flush).min(cap),
            flush,
            apply: self.feedback.applied_lsn().min(cap),
            send_time,
            reply_requested: ping,
        };
        buf.reserve(StandbyStatusUpdate::LEN);
        update.encode(buf);
        self.feedback
            .record_sent(update.write, update.flush, update.apply);
        self.next_status = now + self.options.status_interval;
        self.reply_pending = false;
        if ping {
            self.ping_sent = true;
        }
        Some(FrontendMessage::StandbyStatusUpdate(update))
    }

    fn poll_hot_standby(
        &mut self,
        now: Instant,
        send_time: PgTimestamp,
    ) -> Option<HotStandbyFeedback> {
        let changed = self.feedback.take_hot_standby_pending();
        let current = self.feedback.hot_standby();
        let due = match current {
            Some(_) => changed || now >= self.next_hot_standby,
            // Off: one message with invalid xmins releases what the server held.
            None => changed && self.hot_standby_on,
        };
        if !due {
            return None;
        }
        let x = current.unwrap_or_default();
        self.hot_standby_on = current.is_some();
        self.next_hot_standby = now + self.options.hot_standby_interval;
        Some(HotStandbyFeedback {
            send_time,
            xmin: if current.is_some() {
                x.xmin
            } else {
                Xid::INVALID
            },
            xmin_epoch: x.xmin_epoch,
            catalog_xmin: x.catalog_xmin,
            catalog_xmin_epoch: x.catalog_xmin_epoch,
        })
    }

    fn read_timeout(&self) -> Option<Duration> {
        self.options
            .read_timeout
            .resolve(self.longest_keepalive_gap)
    }

    fn ping_at(&self) -> Option<Instant> {
        let timeout = self.read_timeout()?;
        (self.reading && !self.ping_sent && self.phase == Phase::Streaming)
            .then(|| self.last_received + timeout / 2)
    }

    fn deadline(&self) -> Option<Instant> {
        let timeout = self.read_timeout()?;
        (self.reading && self.phase != Phase::TimelineEnded).then(|| self.last_received + timeout)
    }

    fn fail(&mut self, error: Error) {
        self.events.push_back(Err(error));
        self.phase = Phase::Finished;
    }

    fn on_keepalive(&mut self, now: Instant, keepalive: PrimaryKeepalive) {
        self.feedback
            .record_server(keepalive.wal_end, keepalive.send_time);
        if let Some(previous) = self.last_keepalive {
            let gap = now.saturating_duration_since(previous);
            self.longest_keepalive_gap =
                Some(self.longest_keepalive_gap.map_or(gap, |g| g.max(gap)));
        }
        self.last_keepalive = Some(now);
        if keepalive.reply_requested && self.phase == Phase::Streaming {
            self.reply_pending = true;
        }
    }

    fn on_xlog_data(&mut self, xlog: XLogData) {
        if self.phase != Phase::Streaming || self.stop_pending {
            // After a stop, WAL still in flight is discarded.
            return;
        }
        self.feedback.record_server(xlog.wal_end, xlog.send_time);
        if xlog.wal_start != self.received {
            return self.fail(Error::Protocol {
                lsn: xlog.wal_start,
                what: if xlog.wal_start > self.received {
                    "XLogData leaves a gap after the previous one"
                } else {
                    "XLogData repeats WAL already received"
                },
            });
        }
        let Some(end) = self.received.checked_add(xlog.data.len() as u64) else {
            return self.fail(Error::Protocol {
                lsn: xlog.wal_start,
                what: "XLogData ends beyond the largest LSN",
            });
        };
        self.received = end;
        self.received_high = self.received_high.max(end);
        self.events.push_back(Ok(PhysicalEvent::Wal(WalData {
            timeline: self.timeline,
            end,
            xlog,
        })));
    }
}
