//! The sans-IO logical replication state machine.
//!
//! [`LogicalCore`] never touches a socket or reads a clock: the driver feeds it CopyData
//! frames and the current time, and asks it for events, status updates to write and the next
//! instant it needs to be woken at. Tests drive it with encoded frames and a fake clock.

mod ack;
mod timers;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pg_walstream_codec::pgoutput::{
    ChangeKind, LocatedChange, Message, OldTuple, OwnedMessage, PgOutputDecoder, ProtocolVersion,
    TupleData,
};
use pg_walstream_codec::replication::{
    BackendMessage, PrimaryKeepalive, StandbyStatusUpdate, XLogData,
};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp};

use crate::error::{Error, Result};
use crate::events::{Change, ChangeLayout, Event, EventKind};
use crate::feedback::Feedback;
use crate::relation::RelationInfo;
use crate::relation_cache::{RelationCache, check_column_counts};

pub(crate) use timers::parse_setting_duration;
pub use timers::{ReadCoalescing, ReadTimeout};

use ack::AckTracker;
use timers::Timers;

/// Queue lengths up to which [`LogicalCore::take_all_events`] hands over a queue with room
/// for four times as many (a batch buffer's smallest size is 16 events).
const SMALL_QUEUE: usize = 16;

/// Settings of a [`LogicalCore`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CoreOptions {
    /// The pgoutput protocol version the stream was started with.
    pub version: ProtocolVersion,
    /// Send a status update at least this often.
    pub status_interval: Duration,
    /// Read deadline.
    pub read_timeout: ReadTimeout,
    /// Stop after the transaction that reaches this LSN (see [`LogicalCore`]).
    pub stop_at: Option<Lsn>,
    /// Position already confirmed for the slot (its `confirmed_flush_lsn`, or the start LSN):
    /// status updates never report less.
    pub floor: Lsn,
    /// How long a driver waits after a small read before reading again (see
    /// [`LogicalCore::read_pause`]).
    pub coalesce: ReadCoalescing,
}

impl CoreOptions {
    /// Options with a 10 s status interval, an automatic read deadline, no stop LSN, no
    /// floor and the default read coalescing.
    pub fn new(version: ProtocolVersion) -> Self {
        CoreOptions {
            version,
            status_interval: Duration::from_secs(10),
            read_timeout: ReadTimeout::Auto,
            stop_at: None,
            floor: Lsn::INVALID,
            coalesce: ReadCoalescing::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Delivering events.
    Streaming,
    /// The stop LSN was reached: the crossing transaction is delivered, later data is
    /// discarded, status updates keep reporting what the application processes; waiting for
    /// [`LogicalCore::request_stop`] (the application's stop or drop) to send the final one.
    StopReached,
    /// Stop requested or stop LSN reached: data is no longer delivered; a final status update
    /// is due, then CopyDone.
    Stopping,
    /// CopyDone sent; waiting for the server to end the stream.
    CopyDoneSent,
    /// The stream ended cleanly or failed; nothing more happens.
    Finished,
}

/// The logical replication stream as a state machine (see the [crate docs](crate)).
///
/// Inputs: [`handle_copy_data`](Self::handle_copy_data) for each CopyData frame,
/// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) passes,
/// [`handle_server_end`](Self::handle_server_end) when the server ends the COPY stream.
/// Outputs: [`poll_event`](Self::poll_event) (events, then at most one error),
/// [`poll_transmit`](Self::poll_transmit) (status updates to write).
///
/// **Stop LSN.** With [`CoreOptions::stop_at`] = `L`, the stream delivers every transaction
/// whose commit record starts before `L` — the last one delivered is the *crossing*
/// transaction, whose `end_lsn` reaches `L` — and then stops: after a transaction-ending event
/// with acknowledgement position ≥ `L`, at a Begin whose commit LSN is ≥ `L` (not delivered),
/// or at a keepalive with `wal_end` ≥ `L` while no transaction is open. Blocks of streamed
/// transactions are delivered as they come; a streamed transaction is complete at its Stream
/// Commit.
#[derive(Debug)]
pub struct LogicalCore {
    options: CoreOptions,
    decoder: PgOutputDecoder,
    relations: RelationCache,
    feedback: Feedback,
    tracker: AckTracker,
    timers: Timers,
    events: VecDeque<Result<Event>>,
    phase: Phase,
    stop_at: Option<Lsn>,
    reply_pending: bool,
    final_status_pending: bool,
    clean_end: bool,
    /// Flush and apply of the last status update (reports never move backwards).
    sent_flush: Lsn,
    sent_apply: Lsn,
}

impl LogicalCore {
    /// A core for a stream just started at `now`; `feedback` is where the application reports.
    pub fn new(options: CoreOptions, feedback: Feedback, now: Instant) -> Self {
        LogicalCore {
            options,
            decoder: PgOutputDecoder::new(options.version),
            relations: RelationCache::new(),
            feedback,
            tracker: AckTracker::new(options.floor),
            timers: Timers::new(now, options.status_interval, options.read_timeout),
            events: VecDeque::new(),
            phase: Phase::Streaming,
            stop_at: options.stop_at,
            reply_pending: false,
            final_status_pending: false,
            clean_end: false,
            sent_flush: Lsn::INVALID,
            sent_apply: Lsn::INVALID,
        }
    }

    /// The options the core was made with.
    pub fn options(&self) -> CoreOptions {
        self.options
    }

    /// The application's feedback handle.
    pub fn feedback(&self) -> &Feedback {
        &self.feedback
    }

    /// Relations described so far.
    pub fn relations(&self) -> &RelationCache {
        &self.relations
    }

    /// Highest WAL position received.
    pub fn received_lsn(&self) -> Lsn {
        self.tracker.received()
    }

    /// The read deadline in force (`None` when disabled).
    pub fn read_timeout(&self) -> Option<Duration> {
        self.timers.read_timeout()
    }

    /// Whether events are waiting in [`poll_event`](Self::poll_event).
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// How many items are pending.
    pub(crate) fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Whether the driver should send CopyDone now: a stop was requested or the stop LSN was
    /// reached, and the final status update has been taken with
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn wants_copy_done(&self) -> bool {
        self.phase == Phase::Stopping && !self.final_status_pending
    }

    /// Tells the core CopyDone was sent: no more status updates will be produced.
    pub fn on_copy_done_sent(&mut self) {
        if self.phase == Phase::Stopping {
            self.phase = Phase::CopyDoneSent;
        }
    }

    /// Whether nothing more will happen: the stream ended (cleanly or not) and all events and
    /// the error, if any, were taken.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished && self.events.is_empty()
    }

    /// Whether the stop LSN was reached and every event up to it was taken: the application
    /// has the whole bounded replay. The connection stays open (status updates still report
    /// what the application processes) until [`request_stop`](Self::request_stop), so the
    /// final status update acknowledges what was processed after the last event was handed
    /// out.
    pub fn stop_reached_and_drained(&self) -> bool {
        self.phase == Phase::StopReached && self.events.is_empty()
    }

    /// Whether the stream is winding down (stop requested, stop LSN reached, or ended).
    pub fn is_stopping(&self) -> bool {
        self.phase != Phase::Streaming
    }

    /// Asks for a graceful stop: no more frames are decoded (events already decoded stay
    /// available); a final status update is produced, then
    /// [`wants_copy_done`](Self::wants_copy_done) turns true.
    pub fn request_stop(&mut self) {
        if matches!(self.phase, Phase::Streaming | Phase::StopReached) {
            self.phase = Phase::Stopping;
            self.final_status_pending = true;
        }
    }

    /// Reading from the server paused (`false`, e.g. because the application is not keeping
    /// up) or resumed (`true`). While paused the read deadline does not run; status updates
    /// still fall due.
    pub fn set_reading(&mut self, now: Instant, reading: bool) {
        self.timers.set_reading(now, reading);
    }

    /// Feeds one CopyData frame received at `now`. Decoding problems are reported, in order,
    /// through [`poll_event`](Self::poll_event) and end the stream.
    pub fn handle_copy_data(&mut self, now: Instant, frame: Bytes) {
        if self.phase == Phase::Finished {
            return;
        }
        let before = self.timers.on_received(now);
        match BackendMessage::parse_owned(frame) {
            Err(source) => self.fail(Error::Decode {
                after: self.tracker.received(),
                source,
            }),
            Ok(BackendMessage::PrimaryKeepalive(k)) => {
                self.feedback.record_server(k.wal_end, k.send_time);
                self.on_keepalive(now.saturating_duration_since(before), k);
            }
            Ok(BackendMessage::XLogData(x)) => {
                self.feedback.record_server(x.wal_end, x.send_time);
                self.on_xlog_data(x);
            }
        }
    }

    /// After a read at `now` that brought `read_bytes` bytes: until when a driver should wait
    /// before reading again, so that more messages accumulate and the next read carries many
    /// ([`CoreOptions::coalesce`]); `None` to read at once — when coalescing is off, the read
    /// was large, or the stream is winding down. Never later than
    /// [`poll_timeout`](Self::poll_timeout): a status update, liveness ping or read deadline
    /// due earlier ends the wait, so a reply the server asked for is never held back past
    /// the stream's own deadlines (a reply to a keepalive already read goes out before the
    /// wait: [`transmit_due`](Self::transmit_due) is true at once).
    pub fn read_pause(&self, now: Instant, read_bytes: usize) -> Option<Instant> {
        let coalesce = self.options.coalesce;
        if coalesce.budget.is_zero()
            || read_bytes >= coalesce.below
            || self.phase != Phase::Streaming
        {
            return None;
        }
        let until = timers::later(now, coalesce.budget);
        Some(self.poll_timeout().map_or(until, |at| at.min(until)))
    }

    /// Checks the read deadline at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Finished {
            return;
        }
        if let Some(silent_for) = self.timers.expired(now) {
            self.fail(Error::ReadTimeout { silent_for });
        }
    }

    /// The server ended the COPY stream (CopyDone). After our CopyDone this is the clean end;
    /// before it, an error.
    pub fn handle_server_end(&mut self) {
        match self.phase {
            Phase::CopyDoneSent => {
                self.phase = Phase::Finished;
                self.clean_end = true;
            }
            Phase::Finished => {}
            Phase::Streaming | Phase::StopReached | Phase::Stopping => {
                self.fail(Error::ServerEnded);
            }
        }
    }

    /// A failure outside the core (e.g. the connection broke): queued after the pending
    /// events, it ends the stream.
    pub fn handle_error(&mut self, error: Error) {
        if self.phase != Phase::Finished {
            self.fail(error);
        }
    }

    /// Whether the stream ended by the stop handshake (CopyDone both ways), not by an error.
    pub fn ended_cleanly(&self) -> bool {
        self.clean_end
    }

    /// The next event, or the error that ended the stream; `None` when nothing is pending.
    pub fn poll_event(&mut self) -> Option<Result<Event>> {
        self.events.pop_front()
    }

    /// The item [`poll_event`](Self::poll_event) would return next, without taking it.
    pub fn peek_event(&self) -> Option<&Result<Event>> {
        self.events.front()
    }

    /// Moves every pending item into `into` (empty) at once, without moving the events one
    /// by one, if they fit in `events` events and `bytes` bytes (the last one may cross the
    /// byte bound) and none is a transient error while `reconnect` holds; returns whether it
    /// did. `into` becomes the queue: a queue with room for more than four times what it
    /// holds (and for more than [`SMALL_QUEUE`]) stays, since a few events are cheaper to
    /// move one by one than `into` is to grow to the size of the next read.
    pub(crate) fn take_all_events(
        &mut self,
        into: &mut VecDeque<Result<Event>>,
        events: usize,
        bytes: usize,
        reconnect: bool,
    ) -> Option<usize> {
        if self.events.len() > events || !into.is_empty() {
            return None;
        }
        if self.events.capacity() > 4 * self.events.len().max(SMALL_QUEUE) {
            return None;
        }
        // An error is always the last item (the stream ends with it).
        if reconnect && matches!(self.events.back(), Some(Err(error)) if error.is_transient()) {
            return None;
        }
        let mut total = 0;
        for item in &self.events {
            if total >= bytes {
                return None;
            }
            total += crate::handoff::item_bytes(item);
        }
        std::mem::swap(&mut self.events, into);
        Some(total)
    }

    /// Puts `event` before everything pending (a driver's own event, such as a reconnect
    /// notice, that must precede what the new connection delivers).
    pub(crate) fn push_front_event(&mut self, event: Event) {
        self.events.push_front(Ok(event));
    }

    /// When [`handle_timeout`](Self::handle_timeout) and
    /// [`poll_transmit`](Self::poll_transmit) should next be called; `None` once finished.
    /// After CopyDone only the read deadline remains (no status update may follow CopyDone),
    /// so a driver never wakes for a timer nothing acts on.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Finished => None,
            Phase::CopyDoneSent => self.timers.next_timeout(false),
            Phase::Streaming | Phase::StopReached | Phase::Stopping => {
                self.timers.next_timeout(true)
            }
        }
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) would produce a status update at `now`
    /// (lets a driver skip reading the wall clock when nothing is due).
    pub fn transmit_due(&self, now: Instant) -> bool {
        !matches!(self.phase, Phase::CopyDoneSent | Phase::Finished)
            && (self.feedback.status_request_pending()
                || self.reply_pending
                || self.final_status_pending
                || (matches!(self.phase, Phase::Streaming | Phase::StopReached)
                    && self.timers.ping_due(now))
                || self.timers.status_due(now))
    }

    /// Appends a standby status update (`r` CopyData payload) to `buf` if one is due at
    /// `now` — periodic, requested by the server, a liveness ping half-way through the read
    /// deadline, asked for through [`Feedback::request_status_update`], or the final one before
    /// CopyDone — and returns it. `send_time` is the wall
    /// clock at `now`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        send_time: PgTimestamp,
        buf: &mut BytesMut,
    ) -> Option<StandbyStatusUpdate> {
        if matches!(self.phase, Phase::CopyDoneSent | Phase::Finished) {
            return None;
        }
        let ping = matches!(self.phase, Phase::Streaming | Phase::StopReached)
            && self.timers.ping_due(now);
        let requested = self.feedback.take_status_request();
        let due = requested
            || self.reply_pending
            || self.final_status_pending
            || ping
            || self.timers.status_due(now);
        if !due {
            return None;
        }
        let positions = self.tracker.positions(self.feedback.processed_lsn());
        // Never report less than a previous update did: the idle rule may have moved flush
        // past what the application reported, and a transaction beginning afterwards must not
        // pull it back (older servers would move the slot backwards).
        self.sent_flush = self.sent_flush.max(positions.flush);
        self.sent_apply = self.sent_apply.max(positions.apply);
        let update = StandbyStatusUpdate {
            write: positions.write,
            flush: self.sent_flush,
            apply: self.sent_apply,
            send_time,
            reply_requested: ping,
        };
        buf.reserve(StandbyStatusUpdate::LEN);
        update.encode(buf);
        self.feedback
            .record_sent(update.write, update.flush, update.apply);
        self.timers.on_status_sent(now, ping);
        self.reply_pending = false;
        self.final_status_pending = false;
        Some(update)
    }

    fn fail(&mut self, error: Error) {
        self.events.push_back(Err(error));
        self.phase = Phase::Finished;
    }

    fn reach_stop(&mut self) {
        if self.phase == Phase::Streaming {
            self.phase = Phase::StopReached;
        }
    }

    fn on_keepalive(&mut self, silence: Duration, keepalive: PrimaryKeepalive) {
        self.timers.on_keepalive(silence);
        if keepalive.reply_requested && matches!(self.phase, Phase::Streaming | Phase::StopReached)
        {
            // Also after the stop LSN: the connection stays open until the application stops,
            // and a walsender that asked for a reply and gets none disconnects us.
            self.reply_pending = true;
        }
        if self.phase != Phase::Streaming {
            // After a stop, data is discarded: following keepalives must not move the flush
            // position past what was delivered.
            return;
        }
        self.tracker.on_keepalive(keepalive.wal_end);
        // Transactions are sent in commit order, and a keepalive's `wal_end` is what the
        // walsender has decoded: every transaction committing before it was delivered. Streamed
        // transactions still open commit later (or never): they lie beyond the stop.
        if self
            .stop_at
            .is_some_and(|stop| keepalive.wal_end >= stop && !self.tracker.in_transaction())
        {
            self.reach_stop();
        }
    }

    fn on_xlog_data(&mut self, xlog: XLogData) {
        if self.phase != Phase::Streaming {
            return;
        }
        let version = self.decoder.version();
        let in_stream = self.decoder.in_stream();
        match self.decoder.decode_change(&xlog.data) {
            Ok(Some(change)) => return self.on_row_change(xlog, change, version, in_stream),
            Ok(None) => {}
            Err(source) => {
                return self.fail(Error::Decode {
                    after: self.tracker.received(),
                    source,
                });
            }
        }
        let message = match self.decoder.decode(&xlog.data) {
            Ok(m) => m,
            Err(source) => {
                return self.fail(Error::Decode {
                    after: self.tracker.received(),
                    source,
                });
            }
        };
        if let Some(stop) = self.stop_at
            && !self.tracker.in_transaction()
            && unit_starts_at(&message).is_some_and(|start| start >= stop)
        {
            // A transaction (or the end of a streamed or prepared one) whose commit record
            // starts at or after the stop LSN: not delivered. Streamed transactions still
            // open at this point commit later (or never) and lie beyond the stop too.
            return self.reach_stop();
        }
        self.tracker.on_message(&message, xlog.wal_end);
        let kind = match self.event_kind(message, &xlog, version, in_stream) {
            Ok(kind) => kind,
            Err(error) => return self.fail(*error),
        };
        let ack = kind.ack_lsn();
        let stream_id = self.feedback.stream_id();
        self.events
            .push_back(Ok(Event::new(xlog, kind, version, in_stream, stream_id)));
        if let (Some(stop), Some(ack)) = (self.stop_at, ack)
            && ack >= stop
            && !self.tracker.in_transaction()
        {
            self.reach_stop();
        }
    }

    /// An Insert, Update or Delete, validated in place by the codec (no [`Message`] built):
    /// what [`on_xlog_data`](Self::on_xlog_data) does with a decoded change, without the
    /// stop rules (a change neither starts nor ends a unit) or an acknowledgement point.
    fn on_row_change(
        &mut self,
        xlog: XLogData,
        located: LocatedChange,
        version: ProtocolVersion,
        in_stream: bool,
    ) {
        self.tracker.note_received(xlog.wal_end);
        let lsn = xlog.wal_start;
        let oid = located.relation();
        let Some(relation) = self.relations.resolve(oid) else {
            return self.fail(Error::UnknownRelation { oid, lsn });
        };
        let counts = [
            located.old().map(|old| old.tuple().len()),
            located.new_tuple().map(|new| new.len()),
        ];
        if let Err(error) = check_column_counts(&relation, counts, lsn) {
            return self.fail(error);
        }
        let layout = ChangeLayout::located(&located);
        let change = Change::new(
            located.xid(),
            relation,
            xlog.data.clone(),
            version,
            in_stream,
            layout,
        );
        let kind = match located.kind() {
            ChangeKind::Insert => EventKind::Insert(change),
            ChangeKind::Update => EventKind::Update(change),
            ChangeKind::Delete => EventKind::Delete(change),
        };
        let stream_id = self.feedback.stream_id();
        self.events
            .push_back(Ok(Event::new(xlog, kind, version, in_stream, stream_id)));
    }

    fn relation(&self, oid: Oid, lsn: Lsn) -> Result<std::sync::Arc<RelationInfo>> {
        self.relations
            .get(oid)
            .cloned()
            .ok_or(Error::UnknownRelation { oid, lsn })
    }

    /// The event for `message`. The error is boxed: a `Result` whose two sides are both
    /// large and laid out differently is moved byte by byte, and this is the hot path.
    fn event_kind(
        &mut self,
        message: Message<'_>,
        xlog: &XLogData,
        version: ProtocolVersion,
        in_stream: bool,
    ) -> std::result::Result<EventKind, Box<Error>> {
        let lsn = xlog.wal_start;
        // Row changes come here only when `decode_change` could not locate their tuples
        // (beyond 32-bit offsets): such a change decodes its bytes again when read.
        let layout = ChangeLayout::REDECODE;
        // One relation lookup per change: it resolves the relation and checks the tuples'
        // column counts against it.
        let change = |core: &mut Self, xid, oid, tuples| -> std::result::Result<_, Box<Error>> {
            let relation = core
                .relations
                .resolve(oid)
                .ok_or(Error::UnknownRelation { oid, lsn })?;
            let [old, new]: [Option<&TupleData<'_>>; 2] = tuples;
            check_column_counts(
                &relation,
                [old.map(TupleData::len), new.map(TupleData::len)],
                lsn,
            )?;
            Ok(Change::new(
                xid,
                relation,
                xlog.data.clone(),
                version,
                in_stream,
                layout,
            ))
        };
        Ok(match message {
            Message::Begin(b) => EventKind::Begin(b),
            Message::Commit(c) => EventKind::Commit(c),
            Message::Relation(r) => EventKind::Relation(self.relations.update(&r)),
            Message::Type(t) => EventKind::Type(self.relations.update_type(&t)),
            Message::Insert(i) => {
                EventKind::Insert(change(self, i.xid, i.relation, [None, Some(&i.new)])?)
            }
            Message::Update(u) => {
                let old = u.old.as_ref().map(OldTuple::tuple);
                EventKind::Update(change(self, u.xid, u.relation, [old, Some(&u.new)])?)
            }
            Message::Delete(d) => {
                let old = Some(d.old.tuple());
                EventKind::Delete(change(self, d.xid, d.relation, [old, None])?)
            }
            Message::Truncate(t) => {
                let relations = t
                    .relations
                    .iter()
                    .map(|oid| self.relation(oid, lsn))
                    .collect::<Result<Vec<_>>>()?;
                EventKind::Truncate(pg_walstream_codec::pgoutput::Truncate {
                    xid: t.xid,
                    flags: t.flags,
                    relations,
                })
            }
            Message::StreamStart(s) => EventKind::StreamStart(s),
            Message::StreamStop => EventKind::StreamStop,
            Message::StreamCommit(c) => EventKind::StreamCommit(c),
            Message::StreamAbort(a) => EventKind::StreamAbort(a),
            other => match other.into_owned(&xlog.data) {
                OwnedMessage::Origin(o) => EventKind::Origin(o),
                OwnedMessage::Message(m) => EventKind::Message(m),
                OwnedMessage::BeginPrepare(b) => EventKind::BeginPrepare(b),
                OwnedMessage::Prepare(p) => EventKind::Prepare(p),
                OwnedMessage::CommitPrepared(c) => EventKind::CommitPrepared(c),
                OwnedMessage::RollbackPrepared(r) => EventKind::RollbackPrepared(r),
                OwnedMessage::StreamPrepare(p) => EventKind::StreamPrepare(p),
                _ => {
                    return Err(Box::new(Error::Protocol {
                        lsn,
                        what: "message kind not handled by the stream",
                    }));
                }
            },
        })
    }
}

/// Where the WAL record that opens or decides a unit starts, for the messages that carry it:
/// Begin's `final_lsn` (its commit record), Begin Prepare's and Stream Prepare's
/// `prepare_lsn`, Stream Commit's and Commit Prepared's `commit_lsn`.
fn unit_starts_at(message: &Message<'_>) -> Option<Lsn> {
    match message {
        Message::Begin(b) => Some(b.final_lsn),
        Message::BeginPrepare(b) => Some(b.prepare_lsn),
        Message::StreamPrepare(p) => Some(p.prepare_lsn),
        Message::StreamCommit(c) => Some(c.commit_lsn),
        Message::CommitPrepared(c) => Some(c.commit_lsn),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
