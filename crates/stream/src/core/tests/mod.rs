//! The feedback, keepalive and timer rules, driven with encoded frames and a fake clock.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pg_walstream_codec::pgoutput::{
    Begin, BeginPrepare, Commit, Insert, LogicalMessage, OwnedColumn, OwnedMessage, OwnedTupleData,
    Prepare, ProtocolVersion, Relation, RelationColumn, ReplicaIdentity, StreamAbort, StreamCommit,
    StreamStart,
};

mod changes;
mod coalesce;
mod handoff;
mod review;
use pg_walstream_codec::replication::{PrimaryKeepalive, StandbyStatusUpdate, XLogData};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};

use super::{CoreOptions, LogicalCore, ReadTimeout};
use crate::error::Error;
use crate::events::EventKind;
use crate::feedback::Feedback;

const SECOND: Duration = Duration::from_secs(1);
const REL: Oid = Oid(16384);

/// A core with a 10 s status interval and a fake clock starting at `t0`.
struct Harness {
    core: LogicalCore,
    feedback: Feedback,
    t0: Instant,
    buf: BytesMut,
}

impl Harness {
    fn new(options: CoreOptions) -> Self {
        let feedback = Feedback::new();
        let t0 = Instant::now();
        Harness {
            core: LogicalCore::new(options, feedback.clone(), t0),
            feedback,
            t0,
            buf: BytesMut::new(),
        }
    }

    fn v(version: ProtocolVersion) -> Self {
        Self::new(CoreOptions::new(version))
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn message(&mut self, secs: f64, lsn: u64, message: &OwnedMessage) {
        let mut data = Vec::new();
        message.encode(&mut data).unwrap();
        self.raw_xlog(secs, lsn, data.into());
    }

    fn raw_xlog(&mut self, secs: f64, lsn: u64, data: Bytes) {
        let mut frame = Vec::new();
        XLogData {
            wal_start: Lsn(lsn),
            wal_end: Lsn(lsn),
            send_time: PgTimestamp(0),
            data,
        }
        .encode(&mut frame);
        let now = self.at(secs);
        self.core.handle_copy_data(now, frame.into());
    }

    fn keepalive(&mut self, secs: f64, wal_end: u64, reply_requested: bool) {
        let mut frame = Vec::new();
        PrimaryKeepalive {
            wal_end: Lsn(wal_end),
            send_time: PgTimestamp(0),
            reply_requested,
        }
        .encode(&mut frame);
        let now = self.at(secs);
        self.core.handle_copy_data(now, frame.into());
    }

    /// A whole transaction: Begin, Relation, Insert, Commit ending at `end`.
    fn transaction(&mut self, secs: f64, xid: u32, commit: u64, end: u64) {
        self.message(
            secs,
            commit - 0x30,
            &OwnedMessage::Begin(Begin {
                final_lsn: Lsn(commit),
                commit_time: PgTimestamp(1),
                xid: Xid(xid),
            }),
        );
        self.message(secs, commit - 0x20, &relation(None));
        self.message(secs, commit - 0x10, &insert(None, b"42"));
        self.message(
            secs,
            commit,
            &OwnedMessage::Commit(Commit {
                flags: 0,
                commit_lsn: Lsn(commit),
                end_lsn: Lsn(end),
                commit_time: PgTimestamp(1),
            }),
        );
    }

    fn transmit(&mut self, secs: f64) -> Option<StandbyStatusUpdate> {
        let now = self.at(secs);
        self.buf.clear();
        let update = self
            .core
            .poll_transmit(now, PgTimestamp(7), &mut self.buf)?;
        // The bytes written are exactly the encoded update.
        let mut expected = Vec::new();
        update.encode(&mut expected);
        assert_eq!(&self.buf[..], &expected[..]);
        Some(update)
    }

    fn drain(&mut self) -> Vec<Result<EventKind, Error>> {
        std::iter::from_fn(|| self.core.poll_event())
            .map(|r| r.map(crate::events::Event::into_kind))
            .collect()
    }
}

fn relation(xid: Option<Xid>) -> OwnedMessage {
    OwnedMessage::Relation(Relation {
        xid,
        oid: REL,
        namespace: "public".into(),
        name: "t".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![RelationColumn {
            flags: 1,
            name: "id".into(),
            type_oid: Oid(23),
            type_modifier: -1,
        }],
    })
}

fn insert(xid: Option<Xid>, value: &'static [u8]) -> OwnedMessage {
    OwnedMessage::Insert(Insert {
        xid,
        relation: REL,
        new: OwnedTupleData {
            columns: vec![OwnedColumn::Text(Bytes::from_static(value))],
        },
    })
}

fn positions(u: &StandbyStatusUpdate) -> (u64, u64, u64) {
    (u.write.0, u.flush.0, u.apply.0)
}

#[test]
fn status_reports_received_and_only_what_was_processed() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.transaction(1.0, 700, 0x100, 0x108);
    assert_eq!(h.drain().len(), 4);
    // Delivered but not reported: flush and apply stay at 0/0.
    let u = h.transmit(10.0).expect("periodic status at the interval");
    assert_eq!(positions(&u), (0x100, 0, 0));
    assert!(!u.reply_requested);
    assert_eq!(u.send_time, PgTimestamp(7));
    // Reported at the Commit's end_lsn, which lies beyond the last frame received:
    // flush is capped at what was received.
    h.feedback.processed(Lsn(0x108));
    let u = h.transmit(20.0).unwrap();
    assert_eq!(positions(&u), (0x100, 0x100, 0x100));
    assert_eq!(h.feedback.confirmed_flush_lsn(), Lsn(0x100));
    assert_eq!(h.feedback.status_updates_sent(), 2);
}

#[test]
fn keepalive_never_acks_unprocessed_data() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.transaction(1.0, 700, 0x100, 0x108);
    h.keepalive(2.0, 0x5000, false);
    let u = h.transmit(10.0).unwrap();
    assert_eq!(positions(&u), (0x5000, 0, 0), "nothing reported: no flush");
    // Reporting less than the delivered commit: still not idle.
    h.feedback.processed(Lsn(0x100));
    let u = h.transmit(20.0).unwrap();
    assert_eq!(positions(&u), (0x5000, 0x100, 0x100));
    // All reported: the flush position follows the keepalive (apply stays at the report).
    h.feedback.processed(Lsn(0x108));
    let u = h.transmit(30.0).unwrap();
    assert_eq!(positions(&u), (0x5000, 0x5000, 0x108));
    assert_eq!(h.feedback.server_wal_end(), Lsn(0x5000));
}

#[test]
fn keepalive_does_not_advance_inside_an_open_transaction() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.transaction(1.0, 700, 0x100, 0x108);
    h.feedback.processed(Lsn(0x108));
    // A second transaction has begun but not committed.
    h.message(
        2.0,
        0x200,
        &OwnedMessage::Begin(Begin {
            final_lsn: Lsn(0x300),
            commit_time: PgTimestamp(1),
            xid: Xid(701),
        }),
    );
    h.keepalive(3.0, 0x250, false);
    let u = h.transmit(10.0).unwrap();
    assert_eq!(positions(&u).1, 0x108);
}

#[test]
fn open_streamed_transaction_blocks_idle_advance_until_it_ends() {
    let mut h = Harness::v(ProtocolVersion::V2);
    h.message(
        1.0,
        0x100,
        &OwnedMessage::StreamStart(StreamStart {
            xid: Xid(900),
            first_segment: true,
        }),
    );
    h.message(1.0, 0x110, &relation(Some(Xid(900))));
    h.message(1.0, 0x120, &insert(Some(Xid(901)), b"a"));
    h.message(1.0, 0x130, &OwnedMessage::StreamStop);
    h.keepalive(2.0, 0x400, false);
    h.feedback.processed(Lsn(0x130));
    assert_eq!(positions(&h.transmit(10.0).unwrap()).1, 0x130);
    // Subtransaction abort keeps the transaction open; the top-level abort closes it.
    h.message(
        11.0,
        0x410,
        &OwnedMessage::StreamAbort(StreamAbort {
            xid: Xid(900),
            subxid: Xid(901),
            abort: None,
        }),
    );
    h.keepalive(11.0, 0x500, false);
    assert_eq!(positions(&h.transmit(20.0).unwrap()).1, 0x130);
    h.message(
        21.0,
        0x510,
        &OwnedMessage::StreamCommit(StreamCommit {
            xid: Xid(900),
            flags: 0,
            commit_lsn: Lsn(0x510),
            end_lsn: Lsn(0x518),
            commit_time: PgTimestamp(1),
        }),
    );
    h.keepalive(22.0, 0x600, false);
    assert_eq!(
        positions(&h.transmit(30.0).unwrap()).1,
        0x130,
        "commit not reported yet"
    );
    h.feedback.processed(Lsn(0x518));
    assert_eq!(positions(&h.transmit(40.0).unwrap()).1, 0x600);
    let kinds = h.drain();
    let xids: Vec<_> = kinds
        .iter()
        .map(|k| k.as_ref().unwrap().xid().map(|x| x.0))
        .collect();
    assert_eq!(
        xids,
        [Some(900), Some(900), Some(901), None, Some(901), Some(900)]
    );
}

#[test]
fn non_transactional_message_needs_its_own_report() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.message(
        1.0,
        0x100,
        &OwnedMessage::Message(LogicalMessage {
            xid: None,
            flags: 0,
            lsn: Lsn(0x100),
            prefix: "p".into(),
            content: Bytes::from_static(b"hello"),
        }),
    );
    h.keepalive(2.0, 0x300, false);
    assert_eq!(positions(&h.transmit(10.0).unwrap()).1, 0);
    let events = h.drain();
    let Ok(EventKind::Message(m)) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(&m.content[..], b"hello");
    // The message's `lsn` is the end of its record: reporting exactly it is enough.
    assert_eq!(events[0].as_ref().unwrap().ack_lsn(), Some(Lsn(0x100)));
    h.feedback.processed(Lsn(0x100));
    assert_eq!(positions(&h.transmit(20.0).unwrap()).1, 0x300);
}

#[test]
fn floor_is_never_undercut() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.floor = Lsn(0x1000);
    let mut h = Harness::new(options);
    let u = h.transmit(10.0).unwrap();
    assert_eq!(positions(&u), (0x1000, 0x1000, 0x1000));
    h.transaction(11.0, 1, 0x1100, 0x1108);
    h.feedback.processed(Lsn(0x1100));
    assert_eq!(
        positions(&h.transmit(20.0).unwrap()),
        (0x1100, 0x1100, 0x1100)
    );
}

#[test]
fn status_timer_and_reply_requested() {
    let mut h = Harness::v(ProtocolVersion::V1);
    assert_eq!(h.core.poll_timeout(), Some(h.at(10.0)));
    assert!(h.transmit(9.9).is_none(), "not due before the interval");
    assert!(h.transmit(10.0).is_some());
    assert!(h.transmit(10.5).is_none(), "once per interval");
    assert_eq!(h.core.poll_timeout(), Some(h.at(20.0)));
    // The server asks for a reply: one goes out at once, and only one.
    h.keepalive(12.0, 0x10, true);
    let u = h.transmit(12.0).expect("immediate reply");
    assert_eq!(u.write, Lsn(0x10));
    assert!(h.transmit(12.0).is_none());
    assert_eq!(h.core.poll_timeout(), Some(h.at(22.0)), "timer restarts");
}

#[test]
fn application_can_ask_for_an_update_now() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.transaction(1.0, 1, 0x100, 0x108);
    h.feedback.processed(Lsn(0x108));
    assert!(h.transmit(2.0).is_none(), "not due yet");
    h.feedback.request_status_update();
    let u = h.transmit(2.0).expect("requested");
    assert_eq!(u.flush, Lsn(0x100));
    assert!(h.transmit(2.0).is_none(), "one update per request");
    assert_eq!(h.core.poll_timeout(), Some(h.at(12.0)), "timer restarts");
}

#[test]
fn fixed_read_deadline_pings_then_fails() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.read_timeout = ReadTimeout::Fixed(8 * SECOND);
    options.status_interval = 100 * SECOND;
    let mut h = Harness::new(options);
    assert_eq!(
        h.core.poll_timeout(),
        Some(h.at(4.0)),
        "ping at half the deadline"
    );
    h.keepalive(3.0, 0x10, false);
    assert!(h.transmit(6.0).is_none(), "data reset the deadline");
    let ping = h.transmit(7.0).expect("ping");
    assert!(ping.reply_requested);
    assert!(h.transmit(8.0).is_none(), "one ping per silence");
    h.core.handle_timeout(h.at(10.9));
    assert!(h.core.poll_event().is_none());
    h.core.handle_timeout(h.at(11.0));
    match h.core.poll_event() {
        Some(Err(Error::ReadTimeout { silent_for })) => assert_eq!(silent_for, 8 * SECOND),
        other => panic!("{other:?}"),
    }
    assert!(h.core.is_finished());
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn auto_read_deadline_follows_keepalive_cadence() {
    let mut h = Harness::v(ProtocolVersion::V1);
    assert_eq!(h.core.read_timeout(), Some(ReadTimeout::AUTO_INITIAL));
    h.keepalive(0.0, 1, false);
    h.keepalive(20.0, 2, false);
    assert_eq!(h.core.read_timeout(), Some(60 * SECOND));
    h.keepalive(21.0, 3, false);
    assert_eq!(
        h.core.read_timeout(),
        Some(60 * SECOND),
        "longest gap counts"
    );
    h.core.handle_timeout(h.at(80.0));
    assert!(h.core.poll_event().is_none());
    h.core.handle_timeout(h.at(81.0));
    assert!(matches!(
        h.core.poll_event(),
        Some(Err(Error::ReadTimeout { .. }))
    ));
}

#[test]
fn paused_reading_keeps_status_updates_but_no_deadline() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.read_timeout = ReadTimeout::Fixed(4 * SECOND);
    options.status_interval = SECOND;
    let mut h = Harness::new(options);
    h.core.set_reading(h.at(0.5), false);
    for s in 1..=30 {
        let secs = f64::from(s);
        h.core.handle_timeout(h.at(secs));
        let u = h.transmit(secs).expect("status every second while paused");
        assert!(!u.reply_requested, "no ping while not reading");
    }
    assert!(h.core.poll_event().is_none(), "no timeout while paused");
    h.core.set_reading(h.at(30.0), true);
    h.core.handle_timeout(h.at(33.9));
    assert!(h.core.poll_event().is_none());
    h.core.handle_timeout(h.at(34.0));
    assert!(h.core.poll_event().is_some());
}

#[test]
fn undecodable_frame_ends_the_stream_after_earlier_events() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.transaction(1.0, 1, 0x100, 0x108);
    h.raw_xlog(1.0, 0x200, Bytes::from_static(b"I\0\0"));
    h.transaction(1.0, 2, 0x300, 0x308);
    let events = h.drain();
    assert_eq!(events.len(), 5);
    assert!(events[..4].iter().all(Result::is_ok));
    match &events[4] {
        Err(Error::Decode { after, .. }) => assert_eq!(*after, Lsn(0x100)),
        other => panic!("{other:?}"),
    }
    assert!(h.core.is_finished());
    // A truncated CopyData frame (not even an XLogData header) is an error too.
    let mut h = Harness::v(ProtocolVersion::V1);
    h.core.handle_copy_data(h.t0, Bytes::from_static(b"w\0\0"));
    assert!(matches!(
        h.core.poll_event(),
        Some(Err(Error::Decode { .. }))
    ));
}

#[test]
fn data_for_unknown_relation_is_an_error() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.message(
        1.0,
        0x10,
        &OwnedMessage::Begin(Begin {
            final_lsn: Lsn(0x100),
            commit_time: PgTimestamp(1),
            xid: Xid(5),
        }),
    );
    h.message(1.0, 0x20, &insert(None, b"1"));
    let events = h.drain();
    assert!(matches!(
        events.as_slice(),
        [
            Ok(EventKind::Begin(_)),
            Err(Error::UnknownRelation {
                oid: REL,
                lsn: Lsn(0x20)
            })
        ]
    ));
}

#[test]
fn commit_without_begin_is_a_decode_error() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.message(
        1.0,
        0x10,
        &OwnedMessage::Commit(Commit {
            flags: 0,
            commit_lsn: Lsn(0x10),
            end_lsn: Lsn(0x18),
            commit_time: PgTimestamp(1),
        }),
    );
    // The codec's decoder checks transaction framing.
    assert!(matches!(
        h.core.poll_event(),
        Some(Err(Error::Decode {
            source: pg_walstream_codec::DecodeError::UnexpectedStreamState { .. },
            ..
        }))
    ));
}

/// The ack tracker does not check framing itself: the decoder rejects every violation first
/// (a Begin inside an open transaction, a Prepare without Begin Prepare, a Commit closing a
/// Begin Prepare), so each ends the stream as a decode error.
#[test]
fn framing_violations_are_decode_errors_from_the_decoder() {
    let begin = OwnedMessage::Begin(Begin {
        final_lsn: Lsn(0x100),
        commit_time: PgTimestamp(1),
        xid: Xid(7),
    });
    let prepare = OwnedMessage::Prepare(Prepare {
        flags: 0,
        prepare_lsn: Lsn(0x100),
        end_lsn: Lsn(0x108),
        prepare_time: PgTimestamp(1),
        xid: Xid(7),
        gid: "g".to_owned(),
    });
    let begin_prepare = OwnedMessage::BeginPrepare(BeginPrepare {
        prepare_lsn: Lsn(0x100),
        end_lsn: Lsn(0x108),
        prepare_time: PgTimestamp(1),
        xid: Xid(7),
        gid: "g".to_owned(),
    });
    let commit = OwnedMessage::Commit(Commit {
        flags: 0,
        commit_lsn: Lsn(0x100),
        end_lsn: Lsn(0x108),
        commit_time: PgTimestamp(1),
    });
    for (what, first, second) in [
        ("Begin inside a transaction", Some(&begin), &begin),
        ("Prepare without Begin Prepare", None, &prepare),
        (
            "Commit closing a Begin Prepare",
            Some(&begin_prepare),
            &commit,
        ),
    ] {
        let mut h = Harness::v(ProtocolVersion::V3);
        if let Some(first) = first {
            h.message(1.0, 0x10, first);
            assert!(
                matches!(h.core.poll_event(), Some(Ok(_))),
                "{what}: the first message is fine"
            );
        }
        h.message(1.0, 0x20, second);
        assert!(
            matches!(
                h.core.poll_event(),
                Some(Err(Error::Decode {
                    source: pg_walstream_codec::DecodeError::UnexpectedStreamState { .. },
                    ..
                }))
            ),
            "{what}"
        );
    }
}

#[test]
fn insert_tuple_is_zero_copy_and_relation_shared() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.transaction(1.0, 1, 0x100, 0x108);
    let events: Vec<_> = std::iter::from_fn(|| h.core.poll_event())
        .map(Result::unwrap)
        .collect();
    let EventKind::Insert(change) = events[2].kind() else {
        panic!()
    };
    let EventKind::Relation(relation) = events[1].kind() else {
        panic!()
    };
    assert!(std::sync::Arc::ptr_eq(
        relation.relation(),
        change.relation()
    ));
    assert_eq!(change.relation().name(), "t");
    let tuple = change.new_tuple().unwrap();
    let value = tuple.columns().next().unwrap().value().unwrap();
    assert_eq!(value, b"42");
    let frame = &events[2].xlog_data().data;
    let range = frame.as_ptr_range();
    assert!(
        range.contains(&value.as_ptr()),
        "value points into the frame"
    );
    let owned = change.to_owned_tuples();
    assert_eq!(
        owned.new.unwrap().columns,
        [OwnedColumn::Text(Bytes::from_static(b"42"))]
    );
    assert!(owned.old.is_none());
    assert_eq!(events[3].ack_lsn(), Some(Lsn(0x108)));
    assert_eq!(events[2].ack_lsn(), None);
}

#[test]
fn stop_at_delivers_the_crossing_transaction_then_stops() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.stop_at = Some(Lsn(0x204));
    let mut h = Harness::new(options);
    h.transaction(1.0, 1, 0x100, 0x108);
    h.transaction(1.0, 2, 0x200, 0x208);
    assert!(h.core.is_stopping());
    h.transaction(1.0, 3, 0x300, 0x308);
    h.keepalive(1.0, 0x9000, false);
    let commits: Vec<_> = h
        .drain()
        .into_iter()
        .filter_map(|k| match k.unwrap() {
            EventKind::Commit(c) => Some(c.end_lsn.0),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [0x108, 0x208]);
    // The stop waits for the application: no final status and no CopyDone until it stops
    // (or drops) the stream, so what it processes after the last event is acknowledged.
    assert!(h.core.stop_reached_and_drained());
    assert!(!h.core.wants_copy_done());
    assert!(
        h.transmit(1.0).is_none(),
        "nothing due before the application stops"
    );
    h.feedback.processed(Lsn(0x208));
    h.core.request_stop();
    // Final status first (even though not due), then CopyDone, then the server's end.
    assert!(!h.core.wants_copy_done());
    let u = h.transmit(1.0).expect("final status");
    assert_eq!(
        u.flush,
        Lsn(0x200),
        "capped at received, keepalive after stop ignored"
    );
    assert!(h.core.wants_copy_done());
    h.core.on_copy_done_sent();
    assert!(h.transmit(100.0).is_none());
    h.core.handle_server_end();
    assert!(h.core.is_finished());
}

#[test]
fn stop_at_before_a_begin_or_on_idle_keepalive() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.stop_at = Some(Lsn(0x180));
    let mut h = Harness::new(options);
    h.transaction(1.0, 1, 0x100, 0x108);
    h.transaction(1.0, 2, 0x200, 0x208);
    assert_eq!(
        h.drain().len(),
        4,
        "the transaction committing after the stop LSN is not delivered"
    );
    assert!(h.core.is_stopping());

    let mut h = Harness::new(options);
    h.transaction(1.0, 1, 0x100, 0x108);
    h.keepalive(2.0, 0x17F, false);
    assert!(!h.core.is_stopping());
    h.keepalive(2.0, 0x180, false);
    assert!(h.core.is_stopping());
}

#[test]
fn server_end_before_stop_is_an_error() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.core.handle_server_end();
    assert!(matches!(h.core.poll_event(), Some(Err(Error::ServerEnded))));
    // A requested stop sends a final status even when nothing changed.
    let mut h = Harness::v(ProtocolVersion::V1);
    h.core.request_stop();
    assert!(h.transmit(0.0).is_some());
    assert!(h.core.wants_copy_done());
}

#[test]
fn after_the_stop_lsn_timers_keep_moving_while_waiting_for_the_application() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.stop_at = Some(Lsn(0x108));
    let mut h = Harness::new(options);
    h.transaction(1.0, 1, 0x100, 0x108);
    assert_eq!(h.drain().len(), 4);
    assert!(h.core.stop_reached_and_drained());
    // The server goes quiet: every deadline the core asks to be woken at must lead to
    // something (a ping or a status update), never a deadline stuck in the past.
    let mut now = 1.0;
    for _ in 0..20 {
        let at = h.core.poll_timeout().expect("a timer is armed");
        let wake = (at - h.t0).as_secs_f64().max(now);
        h.core.handle_timeout(h.at(wake));
        let _ = h.transmit(wake);
        // A read timeout (the server stayed silent past the deadline) ends the stream.
        let Some(next) = h.core.poll_timeout() else {
            break;
        };
        assert!(
            next > h.at(wake),
            "the next timeout at {wake}s must lie in the future"
        );
        now = wake;
    }
    assert!(
        !h.core.wants_copy_done(),
        "the final status waits for the application's stop"
    );
}
