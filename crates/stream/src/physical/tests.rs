//! The physical core with encoded frames and a fake clock.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pg_walstream_codec::replication::{FrontendMessage, PrimaryKeepalive, XLogData};
use pg_walstream_codec::{Lsn, PgTimestamp, Xid};
use pg_walstream_slot::TimelineHistory;

use super::*;
use crate::Error;

fn xlog(start: u64, data: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    XLogData {
        wal_start: Lsn(start),
        wal_end: Lsn(start + data.len() as u64),
        send_time: PgTimestamp(1),
        data: Bytes::copy_from_slice(data),
    }
    .encode(&mut buf);
    buf.freeze()
}

fn keepalive(wal_end: u64, reply: bool) -> Bytes {
    let mut buf = BytesMut::new();
    PrimaryKeepalive {
        wal_end: Lsn(wal_end),
        send_time: PgTimestamp(2),
        reply_requested: reply,
    }
    .encode(&mut buf);
    buf.freeze()
}

fn core(now: Instant) -> PhysicalCore {
    let options = PhysicalOptions {
        status_interval: Duration::from_secs(10),
        hot_standby_interval: Duration::from_secs(5),
        ..PhysicalOptions::default()
    };
    PhysicalCore::new(options, PhysicalFeedback::new(), 1, Lsn(0x100_0000), now)
}

fn transmit_all(core: &mut PhysicalCore, now: Instant) -> Vec<FrontendMessage> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    while let Some(m) = core.poll_transmit(now, PgTimestamp(3), &mut buf) {
        out.push(m);
    }
    out
}

fn status(messages: &[FrontendMessage]) -> Option<(Lsn, Lsn, Lsn, bool)> {
    messages.iter().find_map(|m| match m {
        FrontendMessage::StandbyStatusUpdate(u) => {
            Some((u.write, u.flush, u.apply, u.reply_requested))
        }
        FrontendMessage::HotStandbyFeedback(_) => None,
    })
}

#[test]
fn delivers_contiguous_wal_and_rejects_gaps_and_repeats() {
    let t0 = Instant::now();
    for (second_start, what) in [(0x100_0005, "gap"), (0x100_0003, "repeats")] {
        let mut c = core(t0);
        c.handle_copy_data(t0, &xlog(0x100_0000, b"abcd"));
        let Some(Ok(PhysicalEvent::Wal(wal))) = c.poll_event() else {
            panic!("WAL expected")
        };
        assert_eq!(
            (wal.timeline, wal.start(), wal.end),
            (1, Lsn(0x100_0000), Lsn(0x100_0004))
        );
        assert_eq!(&wal.data()[..], b"abcd");
        c.handle_copy_data(t0, &xlog(second_start, b"e"));
        match c.poll_event() {
            Some(Err(Error::Protocol { what: message, .. })) => {
                assert!(message.contains(what), "{message}");
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert!(c.is_finished());
    }
    let mut c = core(t0);
    c.handle_copy_data(t0, &Bytes::from_static(b"z"));
    assert!(matches!(c.poll_event(), Some(Err(Error::Decode { .. }))));
}

#[test]
fn status_updates_report_each_position_capped_at_what_was_received() {
    let t0 = Instant::now();
    let mut c = core(t0);
    assert!(
        transmit_all(&mut c, t0).is_empty(),
        "nothing due at the start"
    );
    c.handle_copy_data(t0, &xlog(0x100_0000, &[0; 100]));
    let feedback = c.feedback().clone();
    feedback.written(Lsn(0x100_0050));
    feedback.flushed(Lsn(0x100_0040));
    feedback.applied(Lsn(0x200_0000)); // beyond what was received: capped
    // The server asks for a reply: answered at once, with no timer due.
    c.handle_copy_data(t0, &keepalive(0x100_0064, true));
    assert!(c.transmit_due(t0));
    let sent = status(&transmit_all(&mut c, t0)).unwrap();
    assert_eq!(
        sent,
        (Lsn(0x100_0050), Lsn(0x100_0040), Lsn(0x100_0064), false)
    );
    assert_eq!(feedback.sent_flush_lsn(), Lsn(0x100_0040));
    assert!(transmit_all(&mut c, t0 + Duration::from_secs(9)).is_empty());
    // The periodic update.
    let later = t0 + Duration::from_secs(10);
    assert!(c.poll_timeout().unwrap() <= later);
    assert!(status(&transmit_all(&mut c, later)).is_some());
    // On request.
    feedback.request_status_update();
    assert!(status(&transmit_all(&mut c, later)).is_some());
}

#[test]
fn silence_pings_then_times_out() {
    let t0 = Instant::now();
    let mut c = core(t0);
    let ping_at = t0 + crate::ReadTimeout::AUTO_INITIAL / 2;
    let sent = status(&transmit_all(&mut c, ping_at)).unwrap();
    assert!(sent.3, "the ping asks for a reply");
    c.handle_timeout(t0 + crate::ReadTimeout::AUTO_INITIAL);
    assert!(matches!(
        c.poll_event(),
        Some(Err(Error::ReadTimeout { .. }))
    ));
}

#[test]
fn hot_standby_feedback_on_a_timer_and_released_once_when_off() {
    let t0 = Instant::now();
    let mut c = core(t0);
    let feedback = c.feedback().clone();
    feedback.set_hot_standby(Some(HotStandbyXmin {
        xmin: Xid(900),
        xmin_epoch: 1,
        catalog_xmin: Xid(800),
        catalog_xmin_epoch: 1,
    }));
    let sent = transmit_all(&mut c, t0);
    let h: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            FrontendMessage::HotStandbyFeedback(h) => Some(*h),
            FrontendMessage::StandbyStatusUpdate(_) => None,
        })
        .collect();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].xmin, h[0].xmin_epoch, h[0].catalog_xmin),
        (Xid(900), 1, Xid(800))
    );
    assert!(transmit_all(&mut c, t0 + Duration::from_secs(4)).is_empty());
    let repeat = transmit_all(&mut c, t0 + Duration::from_secs(5));
    assert!(
        matches!(repeat[..], [FrontendMessage::HotStandbyFeedback(_)]),
        "{repeat:?}"
    );
    feedback.set_hot_standby(None);
    let off = transmit_all(&mut c, t0 + Duration::from_secs(6));
    match off[..] {
        [FrontendMessage::HotStandbyFeedback(h)] => {
            assert_eq!((h.xmin, h.catalog_xmin), (Xid::INVALID, Xid::INVALID));
        }
        _ => panic!("one release message expected, got {off:?}"),
    }
    assert!(
        transmit_all(&mut c, t0 + Duration::from_secs(9)).is_empty(),
        "nothing while off"
    );
    assert_eq!(feedback.hot_standby_feedback_sent(), 3);
}

#[test]
fn stop_handshake_and_timeline_end() {
    let t0 = Instant::now();
    let mut c = core(t0);
    c.handle_copy_data(t0, &xlog(0x100_0000, b"ab"));
    c.request_stop();
    assert!(!c.wants_copy_done(), "the final status update goes first");
    assert!(status(&transmit_all(&mut c, t0)).is_some());
    assert!(c.wants_copy_done());
    c.on_copy_done_sent();
    c.handle_copy_data(t0, &xlog(0x100_0002, b"cd")); // in flight: discarded
    c.handle_server_end();
    assert!(c.ended_cleanly());
    assert!(matches!(c.poll_event(), Some(Ok(PhysicalEvent::Wal(_)))));
    assert!(c.poll_event().is_none());
    assert!(c.is_finished());

    let mut c = core(t0);
    c.handle_copy_data(t0, &xlog(0x100_0000, b"ab"));
    c.handle_server_end();
    assert!(c.timeline_ended());
    let history = TimelineHistory {
        file_name: "00000002.history".into(),
        content: "1\t0/1000002\tno recovery target specified\n".into(),
        entries: Vec::new(),
    };
    let switch = PhysicalEvent::TimelineSwitch(TimelineSwitch {
        previous_timeline: 1,
        ended_at: Lsn(0x100_0002),
        timeline: 2,
        switchpoint: Lsn(0x100_0002),
        resume_at: Lsn(0x100_0000),
        history,
    });
    c.follow_timeline(t0, switch, 2, Lsn(0x100_0000));
    assert!(matches!(c.poll_event(), Some(Ok(PhysicalEvent::Wal(_)))));
    assert!(matches!(
        c.poll_event(),
        Some(Ok(PhysicalEvent::TimelineSwitch(_)))
    ));
    c.handle_copy_data(t0, &xlog(0x100_0000, b"abcd"));
    let Some(Ok(PhysicalEvent::Wal(wal))) = c.poll_event() else {
        panic!()
    };
    assert_eq!((wal.timeline, wal.end), (2, Lsn(0x100_0004)));
}

#[test]
fn config_checks() {
    assert!(
        PhysicalConfig::builder()
            .status_interval(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(PhysicalConfig::builder().slot("bad\"name").build().is_err());
    assert!(
        PhysicalConfig::builder()
            .channel_capacity(0)
            .build()
            .is_err()
    );
    let config = PhysicalConfig::builder().slot("s").build().unwrap();
    assert_eq!(
        config.start_command(Lsn(0x300_0000), 2),
        "START_REPLICATION SLOT \"s\" PHYSICAL 0/3000000 TIMELINE 2"
    );
    assert_eq!(
        config::start_command(None, Lsn(0x300_0000), 1),
        "START_REPLICATION PHYSICAL 0/3000000 TIMELINE 1"
    );
    assert_eq!(parse_wal_segment_size("1MB").unwrap().bytes(), 1 << 20);
    assert!(parse_wal_segment_size("16 furlongs").is_none());
}
