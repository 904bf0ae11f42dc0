//! [`OrderedFeedback`]: acknowledgement in delivery order for consumers that process
//! transactions concurrently.
//!
//! [`Feedback::processed`] keeps the highest position reported, so a worker that finishes
//! transaction 2 before another worker finishes transaction 1 would move the slot past 1 —
//! lost if the process then crashes. Here each delivered unit takes a [`Ticket`] in delivery
//! order; workers complete tickets in any order; the position reported to the [`Feedback`]
//! advances only to the end of the longest fully completed prefix of tickets.
//!
//! Cost: issuing a ticket is one compare-and-swap (no lock); completing one is an atomic store
//! plus a mutex held while the completed prefix is scanned — one lock per unit, never per
//! event. Tickets live in a fixed ring; when as many tickets as its capacity are outstanding
//! past the oldest incomplete one, issuing waits ([`OrderedFeedback::ticket`]) or fails
//! ([`OrderedFeedback::try_ticket`]) — the backpressure that bounds memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use pg_walstream_codec::Lsn;
use tokio::sync::Notify;

use crate::events::Event;
use crate::feedback::Feedback;

/// How many tickets may be outstanding by default.
pub const DEFAULT_ACK_WINDOW: usize = 4096;

/// A cloneable handle that hands out [`Ticket`]s in delivery order and reports to a
/// [`Feedback`] the end of the longest completed prefix.
///
/// ```
/// use pg_walstream_codec::Lsn;
/// use pg_walstream_stream::{Feedback, OrderedFeedback};
///
/// let feedback = Feedback::new();
/// let ordered = OrderedFeedback::new(feedback.clone());
/// let first = ordered.try_ticket(Lsn(0x100)).unwrap();
/// let second = ordered.try_ticket(Lsn(0x200)).unwrap();
/// second.complete(); // finished first, but transaction 1 is still being processed
/// assert_eq!(feedback.processed_lsn(), Lsn(0));
/// first.complete();
/// assert_eq!(feedback.processed_lsn(), Lsn(0x200));
/// assert_eq!(ordered.position(), Lsn(0x200));
/// ```
#[derive(Debug, Clone)]
pub struct OrderedFeedback {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    feedback: Feedback,
    /// One slot per outstanding ticket, indexed by sequence number modulo the capacity.
    slots: Box<[Slot]>,
    mask: u64,
    /// The next sequence number to issue.
    issued: AtomicU64,
    /// The first sequence number not yet part of the completed prefix.
    head: AtomicU64,
    /// The end LSN of the completed prefix (what was reported).
    position: AtomicU64,
    /// Serialises prefix scans (taken once per completion).
    scan: Mutex<()>,
    /// Wakes issuers waiting for room.
    room: Notify,
}

#[derive(Debug, Default)]
struct Slot {
    /// `sequence + 1` once the ticket with that sequence number completed.
    done: AtomicU64,
    /// The ticket's end LSN, written before `done`.
    lsn: AtomicU64,
}

/// One delivered unit's place in the acknowledgement order. Complete it with
/// [`complete`](Self::complete) once the unit is durably processed.
///
/// A ticket dropped without completing is never completed: the reported position stops
/// before it for good (after a restart, that unit is delivered again). That is the safe
/// outcome for a worker that failed.
#[derive(Debug)]
#[must_use = "a ticket that is never completed holds back every later acknowledgement"]
pub struct Ticket {
    shared: Arc<Shared>,
    sequence: u64,
    end_lsn: Lsn,
}

impl OrderedFeedback {
    /// A tracker reporting to `feedback`, with room for [`DEFAULT_ACK_WINDOW`] outstanding
    /// tickets.
    pub fn new(feedback: Feedback) -> Self {
        Self::with_capacity(feedback, DEFAULT_ACK_WINDOW)
    }

    /// A tracker with room for `capacity` outstanding tickets (rounded up to a power of two,
    /// at least 1). Each slot costs 16 bytes.
    pub fn with_capacity(feedback: Feedback, capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        let slots = (0..capacity).map(|_| Slot::default()).collect();
        OrderedFeedback {
            shared: Arc::new(Shared {
                feedback,
                slots,
                mask: capacity as u64 - 1,
                issued: AtomicU64::new(0),
                head: AtomicU64::new(0),
                position: AtomicU64::new(0),
                scan: Mutex::new(()),
                room: Notify::new(),
            }),
        }
    }

    /// The [`Feedback`] the completed prefix is reported to.
    pub fn feedback(&self) -> &Feedback {
        &self.shared.feedback
    }

    /// How many tickets may be outstanding at once.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// A ticket for the next unit in delivery order, which ends at `end_lsn` (the position
    /// [`Event::ack_lsn`] gives), or `None` when the window is full.
    pub fn try_ticket(&self, end_lsn: Lsn) -> Option<Ticket> {
        let shared = &self.shared;
        let capacity = shared.mask + 1;
        let mut issued = shared.issued.load(Ordering::Acquire);
        loop {
            if issued - shared.head.load(Ordering::Acquire) >= capacity {
                return None;
            }
            match shared.issued.compare_exchange_weak(
                issued,
                issued + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Ticket {
                        shared: Arc::clone(shared),
                        sequence: issued,
                        end_lsn,
                    });
                }
                Err(current) => issued = current,
            }
        }
    }

    /// A ticket for the next unit in delivery order; waits while the window is full (that is,
    /// while [`capacity`](Self::capacity) tickets after the oldest incomplete one are
    /// outstanding). Ready at once otherwise.
    pub async fn ticket(&self, end_lsn: Lsn) -> Ticket {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(ticket) = self.try_ticket(end_lsn) {
                return ticket;
            }
            room.await;
        }
    }

    /// A ticket for `event` if it ends a unit ([`Event::ack_lsn`] is `Some`), waiting for room
    /// like [`ticket`](Self::ticket).
    pub async fn ticket_for(&self, event: &Event) -> Option<Ticket> {
        match event.ack_lsn() {
            Some(lsn) => Some(self.ticket(lsn).await),
            None => None,
        }
    }

    /// The end LSN of the longest completed prefix (`0/0` before the first).
    pub fn position(&self) -> Lsn {
        Lsn(self.shared.position.load(Ordering::Acquire))
    }

    /// How many tickets were issued and are not yet part of the completed prefix.
    pub fn outstanding(&self) -> u64 {
        self.shared.issued.load(Ordering::Acquire) - self.shared.head.load(Ordering::Acquire)
    }
}

impl Ticket {
    /// The ticket's place in delivery order (0 for the first).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The unit's end LSN.
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// Marks the unit as durably processed. When it completes the prefix, the prefix's end is
    /// reported to the [`Feedback`]; returns the position reported by this call, if any.
    pub fn complete(self) -> Option<Lsn> {
        let shared = &self.shared;
        let slot = &shared.slots[(self.sequence & shared.mask) as usize];
        slot.lsn.store(self.end_lsn.0, Ordering::Relaxed);
        slot.done.store(self.sequence + 1, Ordering::Release);
        shared.advance()
    }
}

impl Shared {
    /// Moves the head over every completed ticket; reports the new prefix end.
    fn advance(&self) -> Option<Lsn> {
        let _scan = self.scan.lock().unwrap_or_else(PoisonError::into_inner);
        let start = self.head.load(Ordering::Acquire);
        let issued = self.issued.load(Ordering::Acquire);
        let mut head = start;
        let mut end = self.position.load(Ordering::Acquire);
        while head < issued {
            let slot = &self.slots[(head & self.mask) as usize];
            if slot.done.load(Ordering::Acquire) != head + 1 {
                break;
            }
            end = end.max(slot.lsn.load(Ordering::Relaxed));
            head += 1;
        }
        if head == start {
            return None;
        }
        self.position.store(end, Ordering::Release);
        self.head.store(head, Ordering::Release);
        self.feedback.processed(Lsn(end));
        self.room.notify_waiters();
        Some(Lsn(end))
    }
}

#[cfg(test)]
mod tests;
