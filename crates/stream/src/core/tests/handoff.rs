//! Taking the whole queue as one batch (`take_all_events`): only when it fits the room and
//! holds no error a reconnect must see first.

use std::collections::VecDeque;

use super::*;

fn queued(h: &mut Harness) -> usize {
    h.transaction(1.0, 7, 0x1000, 0x1010);
    4
}

#[test]
fn the_whole_queue_moves_when_it_fits() {
    let mut h = Harness::v(ProtocolVersion::V1);
    let n = queued(&mut h);
    let mut into = VecDeque::new();
    assert_eq!(
        h.core.take_all_events(&mut into, n - 1, usize::MAX, false),
        None
    );
    assert!(
        into.is_empty() && h.core.has_pending_events(),
        "nothing moved"
    );
    assert_eq!(
        h.core.take_all_events(&mut into, n, 1, false),
        None,
        "bytes"
    );
    let bytes = h.core.take_all_events(&mut into, n, usize::MAX, false);
    let expected: usize = into.iter().map(crate::handoff::item_bytes).sum();
    assert_eq!(bytes, Some(expected));
    assert_eq!(into.len(), n);
    assert!(!h.core.has_pending_events());
}

#[test]
fn a_transient_error_last_stays_for_the_reconnect() {
    let mut h = Harness::v(ProtocolVersion::V1);
    let n = queued(&mut h);
    h.core.handle_error(Error::ServerEnded);
    let mut into = VecDeque::new();
    assert_eq!(
        h.core.take_all_events(&mut into, n + 1, usize::MAX, true),
        None
    );
    // Without reconnecting the error is delivered after the events.
    assert!(
        h.core
            .take_all_events(&mut into, n + 1, usize::MAX, false)
            .is_some()
    );
    assert!(matches!(into.back(), Some(Err(Error::ServerEnded))));
}

#[test]
fn a_roomy_queue_stays_with_the_core_when_only_a_few_events_wait() {
    let mut h = Harness::v(ProtocolVersion::V1);
    h.core.events.reserve(1024);
    let capacity = h.core.events.capacity();
    let n = queued(&mut h);
    assert!(n < super::super::SMALL_QUEUE, "{n} events queued");
    let mut into = VecDeque::new();
    assert_eq!(
        h.core.take_all_events(&mut into, n, usize::MAX, false),
        None,
        "a few events in a roomy queue move one by one"
    );
    assert!(into.is_empty() && h.core.pending_events() == n);
    assert_eq!(h.core.events.capacity(), capacity);
}
