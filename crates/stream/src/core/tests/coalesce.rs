//! Read coalescing: when a driver may wait after a read, and that the wait never passes the
//! core's own deadlines.

use super::*;
use crate::core::ReadCoalescing;

fn with_budget(budget: Duration) -> Harness {
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.coalesce = ReadCoalescing::new(budget);
    Harness::new(options)
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_small_read_waits_for_the_budget_and_a_large_one_does_not() {
    let h = with_budget(MS);
    let now = h.at(1.0);
    assert_eq!(h.core.read_pause(now, 100), Some(now + MS));
    assert_eq!(
        h.core.read_pause(now, ReadCoalescing::DEFAULT_BELOW - 1),
        Some(now + MS)
    );
    assert_eq!(h.core.read_pause(now, ReadCoalescing::DEFAULT_BELOW), None);
    assert_eq!(h.core.read_pause(now, 1 << 20), None);
}

#[test]
fn budget_zero_never_waits() {
    let h = with_budget(Duration::ZERO);
    for bytes in [0, 1, 100, ReadCoalescing::DEFAULT_BELOW, 1 << 20] {
        assert_eq!(h.core.read_pause(h.at(1.0), bytes), None, "{bytes} bytes");
    }
    assert_eq!(ReadCoalescing::off(), ReadCoalescing::new(Duration::ZERO));
}

#[test]
fn the_wait_ends_at_the_next_status_update() {
    // Status interval 10 s from t0: at 9.7 s a 1 s budget is cut to the 10 s deadline.
    let h = with_budget(SECOND);
    let now = h.at(9.7);
    assert_eq!(h.core.read_pause(now, 10), Some(h.at(10.0)));
    assert_eq!(h.core.poll_timeout(), Some(h.at(10.0)));
}

#[test]
fn the_wait_ends_at_the_liveness_ping() {
    // A fixed 1 s read deadline: the ping asking the server for a reply is due half-way,
    // 0.5 s after the last frame; a 1 s budget must not hold it back.
    let mut options = CoreOptions::new(ProtocolVersion::V1);
    options.coalesce = ReadCoalescing::new(SECOND);
    options.read_timeout = ReadTimeout::Fixed(SECOND);
    let mut h = Harness::new(options);
    h.keepalive(2.0, 0x100, false);
    let pause = h
        .core
        .read_pause(h.at(2.1), 10)
        .expect("a small read waits");
    assert_eq!(pause, h.at(2.5));
    assert!(pause <= h.core.poll_timeout().unwrap());
    assert!(
        h.core.transmit_due(pause),
        "the ping is due when the wait ends"
    );
}

#[test]
fn a_requested_reply_is_due_before_any_wait() {
    let mut h = with_budget(SECOND);
    h.keepalive(3.0, 0x100, true);
    // The driver transmits at the top of its loop, before it waits: the reply is due now.
    assert!(h.core.transmit_due(h.at(3.0)));
    let update = h.transmit(3.0).expect("the reply");
    assert_eq!(update.write, Lsn(0x100));
    // Only then may it wait, still bounded by its next status update.
    let pause = h.core.read_pause(h.at(3.0), 30).unwrap();
    assert!(pause <= h.at(4.0) && pause <= h.core.poll_timeout().unwrap());
}

#[test]
fn no_wait_once_stopping() {
    let mut h = with_budget(MS);
    h.core.request_stop();
    assert_eq!(h.core.read_pause(h.at(1.0), 10), None);
}
