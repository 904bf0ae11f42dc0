//! Regression tests for the review findings (issue 12): each failed before its fix.

use super::*;

/// A streamed transaction (v2) opens with one block and stays open.
fn open_stream_block(h: &mut Harness, xid: u32, at: u64) {
    h.message(
        1.0,
        at,
        &OwnedMessage::StreamStart(StreamStart {
            xid: Xid(xid),
            first_segment: true,
        }),
    );
    h.message(1.0, at + 0x10, &relation(Some(Xid(xid))));
    h.message(1.0, at + 0x20, &insert(Some(Xid(xid)), b"s"));
    h.message(1.0, at + 0x30, &OwnedMessage::StreamStop);
}

/// Item 3: after CopyDone nothing may be sent, so no status or ping timer may stay armed —
/// a deadline in the past that nothing acts on makes the driver spin and starves its reads
/// until a spurious read timeout. The walsender may take long to answer CopyDone while it
/// finishes sending a large transaction.
#[test]
fn after_copy_done_only_the_read_deadline_is_armed() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.status_interval = SECOND;
    options.read_timeout = ReadTimeout::Fixed(10 * SECOND);
    let mut h = Harness::new(options);
    h.transaction(0.5, 1, 0x100, 0x108);
    h.core.request_stop();
    assert!(h.transmit(1.0).is_some(), "final status");
    assert!(h.core.wants_copy_done());
    h.core.on_copy_done_sent();
    // 30 s of the rest of a large transaction arriving after our CopyDone.
    for i in 0..300_u32 {
        let t = 1.0 + f64::from(i) * 0.1;
        h.message(t, 0x200 + u64::from(i), &insert(None, b"1"));
        h.core.handle_timeout(h.at(t));
        let at = h
            .core
            .poll_timeout()
            .expect("the read deadline stays armed");
        assert!(
            at > h.at(t),
            "at {t}s the core asks to be woken in the past: the driver would spin"
        );
        assert_eq!(at, h.at(t + 10.0), "only the read deadline");
        assert!(h.transmit(t).is_none(), "nothing is sent after CopyDone");
    }
    assert!(
        h.drain().iter().all(Result::is_ok),
        "no spurious read timeout"
    );
    h.core.handle_server_end();
    assert!(h.core.ended_cleanly());
}

/// Item 4: with a streamed transaction still open, a transaction whose commit lies at or
/// beyond the stop LSN must not be delivered: the stop happens there.
#[test]
fn stop_lsn_holds_while_a_streamed_transaction_is_open() {
    let mut options = CoreOptions::new(ProtocolVersion::V2);
    options.stop_at = Some(Lsn(0x300));
    let mut h = Harness::new(options);
    open_stream_block(&mut h, 900, 0x100);
    h.transaction(1.0, 2, 0x200, 0x208);
    assert!(!h.core.is_stopping(), "0x200 commits before the stop");
    h.transaction(1.0, 3, 0x400, 0x408);
    assert!(
        h.core.is_stopping(),
        "the transaction committing at 0x400 crosses the stop"
    );
    let commits: Vec<_> = h
        .drain()
        .into_iter()
        .filter_map(|k| match k.unwrap() {
            EventKind::Commit(c) => Some(c.commit_lsn.0),
            _ => None,
        })
        .collect();
    assert_eq!(
        commits,
        [0x200],
        "nothing committing after the stop is delivered"
    );
}

/// Item 4: a Stream Commit whose commit record starts at or after the stop LSN is beyond it,
/// and so is a keepalive past the stop while only a streamed transaction is open.
#[test]
fn stop_lsn_at_a_stream_commit_or_keepalive_with_open_streams() {
    let mut options = CoreOptions::new(ProtocolVersion::V2);
    options.stop_at = Some(Lsn(0x300));
    let mut h = Harness::new(options);
    open_stream_block(&mut h, 900, 0x100);
    h.message(
        2.0,
        0x400,
        &OwnedMessage::StreamCommit(StreamCommit {
            xid: Xid(900),
            flags: 0,
            commit_lsn: Lsn(0x400),
            end_lsn: Lsn(0x408),
            commit_time: PgTimestamp(1),
        }),
    );
    assert!(h.core.is_stopping());
    assert!(
        !h.drain()
            .iter()
            .any(|k| matches!(k, Ok(EventKind::StreamCommit(_)))),
        "the stream commit beyond the stop is not delivered"
    );

    let mut h = Harness::new(options);
    open_stream_block(&mut h, 900, 0x100);
    h.keepalive(2.0, 0x2FF, false);
    assert!(!h.core.is_stopping());
    h.keepalive(2.0, 0x300, false);
    assert!(h.core.is_stopping(), "every commit before 0x300 was sent");
}

/// Item 9: once the idle rule moved flush to a keepalive's position, a transaction beginning
/// afterwards must not pull it back to the application's last report.
#[test]
fn flush_never_moves_backwards_after_the_idle_rule() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.transaction(1.0, 1, 0x100, 0x108);
    h.feedback.processed(Lsn(0x108));
    h.keepalive(2.0, 0x500, false);
    assert_eq!(positions(&h.transmit(10.0).unwrap()).1, 0x500, "idle rule");
    h.message(
        11.0,
        0x600,
        &OwnedMessage::Begin(Begin {
            final_lsn: Lsn(0x700),
            commit_time: PgTimestamp(1),
            xid: Xid(2),
        }),
    );
    let u = h.transmit(20.0).unwrap();
    assert_eq!(u.flush, Lsn(0x500), "not back to 0x108");
    assert!(u.apply >= Lsn(0x108));
}

/// Item 14: after the stop LSN the connection stays open until the application stops; a
/// keepalive asking for a reply must still get one at once, or the walsender drops us.
#[test]
fn reply_requested_is_answered_after_the_stop_lsn() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.stop_at = Some(Lsn(0x108));
    let mut h = Harness::new(options);
    h.transaction(1.0, 1, 0x100, 0x108);
    assert_eq!(h.drain().len(), 4);
    assert!(h.core.stop_reached_and_drained());
    assert!(h.transmit(1.5).is_none(), "nothing due");
    h.keepalive(2.0, 0x200, true);
    let reply = h.transmit(2.0).expect("an immediate reply");
    assert_eq!(reply.flush, Lsn(0), "nothing reported, nothing confirmed");
}

/// Item 14: absurd durations must not panic (`Instant + Duration` overflows).
#[test]
fn huge_intervals_do_not_panic() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.status_interval = Duration::MAX;
    options.read_timeout = ReadTimeout::Fixed(Duration::MAX);
    let mut h = Harness::new(options);
    h.transaction(1.0, 1, 0x100, 0x108);
    h.keepalive(2.0, 0x200, false);
    let at = h.core.poll_timeout().expect("armed");
    assert!(at > h.at(1000.0));
    assert!(h.transmit(3.0).is_none());
    h.core.handle_timeout(h.at(4.0));
    assert!(h.drain().iter().all(Result::is_ok));
}

/// Item 14: the automatic read deadline follows the *recent* keepalive cadence: one long
/// silence ages out, and keepalives arriving amid a busy stream (short silences) keep it low.
#[test]
fn auto_read_deadline_shrinks_again_after_a_long_gap() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.keepalive(0.0, 1, false);
    h.keepalive(100.0, 2, false);
    assert_eq!(h.core.read_timeout(), Some(300 * SECOND), "3 x 100 s");
    let mut t = 100.0;
    for i in 0..ReadTimeout::AUTO_WINDOW as u64 {
        t += 1.0;
        h.keepalive(t, 3 + i, false);
    }
    assert_eq!(
        h.core.read_timeout(),
        Some(ReadTimeout::AUTO_MIN),
        "the long silence aged out"
    );
    // A busy period: data every 0.1 s, a keepalive every 200 s. Silences stay short.
    let mut h = Harness::v(ProtocolVersion::V1);
    h.keepalive(0.0, 1, false);
    let mut lsn = 0x1000;
    for step in 1..=6000_u32 {
        let t = f64::from(step) * 0.1;
        if step % 2000 == 0 {
            h.keepalive(t, lsn, false);
        } else {
            h.message(t, lsn, &relation(None));
        }
        lsn += 0x10;
    }
    assert_eq!(h.core.read_timeout(), Some(ReadTimeout::AUTO_MIN));
}

/// The driver's loop with a silent server: woken at every `poll_timeout`, it sends what is
/// due; the fixed read deadline must still fire on time.
#[test]
fn fixed_deadline_fires_while_status_updates_go_out() {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.status_interval = Duration::from_millis(200);
    options.read_timeout = ReadTimeout::Fixed(2 * SECOND);
    let mut h = Harness::new(options);
    h.transaction(0.0, 1, 0x100, 0x108);
    assert_eq!(h.drain().len(), 4);
    let mut woke = 0.0;
    let failed_at = loop {
        let at = h.core.poll_timeout().expect("armed");
        woke = (at - h.t0).as_secs_f64().max(woke);
        h.core.handle_timeout(h.at(woke));
        if let Some(Err(error)) = h.core.poll_event() {
            assert!(matches!(error, Error::ReadTimeout { .. }), "{error:?}");
            break woke;
        }
        let _ = h.transmit(woke);
        assert!(woke < 10.0, "no read timeout by {woke}s");
    };
    assert!((2.0..2.3).contains(&failed_at), "{failed_at}");
}
