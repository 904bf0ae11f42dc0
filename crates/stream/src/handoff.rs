//! The hand-off between the driver task and the application: events travel in batches — one
//! channel operation and at most one wake-up per read from the server, not per event — and
//! the channel is bounded in events and in bytes of pgoutput messages by [`Budget`], so large
//! rows cannot pile up behind a count-only bound. Batch buffers are recycled through a small
//! pool, so a steady stream allocates none.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::Result;
use crate::events::Event;

/// The items of one batch, in order.
pub(crate) type Items = VecDeque<Result<Event>>;

/// How many empty batch buffers the pool keeps.
const SPARE_BUFFERS: usize = 4;
/// The least capacity of a fresh batch buffer. Small, because a lagging application can have
/// a batch per read waiting — a hundred and more of a few events each with large rows — and
/// each keeps its whole capacity (about 200 bytes an event). A fresh buffer has room for
/// twice the batch it replaces, and buffers come back through the pool, so a steady stream
/// allocates none.
const INITIAL_BATCH: usize = 16;

/// One batch in the channel: the events of one read and the bytes of their messages.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub(crate) items: Items,
    pub(crate) bytes: usize,
}

/// The bytes an item keeps in the channel (its pgoutput message; an error keeps none).
pub(crate) fn item_bytes(item: &Result<Event>) -> usize {
    item.as_ref()
        .map_or(0, |event| event.xlog_data().data.len())
}

/// Events and message bytes delivered to the channel and not yet taken by the application,
/// with their limits, and the pool of batch buffers. Shared by the driver (which adds) and the
/// stream handle (which releases a batch when it takes it from the channel).
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    shared: Arc<Shared>,
    max_events: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Shared {
    events: AtomicUsize,
    bytes: AtomicUsize,
    released: Notify,
    spare: Mutex<Vec<Items>>,
}

impl Budget {
    /// A budget of `max_events` events and `max_bytes` bytes (each at least 1).
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Budget {
            shared: Arc::default(),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// What may still enter the channel: `(events, bytes)`, `None` when either limit is
    /// reached. Below the byte limit one more event is always admitted, however large, so the
    /// channel exceeds it by at most one event.
    pub(crate) fn room(&self) -> Option<(usize, usize)> {
        let events = self.shared.events.load(Ordering::Acquire);
        let bytes = self.shared.bytes.load(Ordering::Acquire);
        (events < self.max_events && bytes < self.max_bytes)
            .then(|| (self.max_events - events, self.max_bytes - bytes))
    }

    /// A batch of `events` events and `bytes` bytes entered the channel.
    pub(crate) fn take(&self, events: usize, bytes: usize) {
        self.shared.events.fetch_add(events, Ordering::AcqRel);
        self.shared.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// The application took a batch of `events` events and `bytes` bytes; wakes the driver
    /// when that brings the channel below both limits from at or above one of them.
    pub(crate) fn release(&self, events: usize, bytes: usize) {
        let events_before = self.shared.events.fetch_sub(events, Ordering::AcqRel);
        let bytes_before = self.shared.bytes.fetch_sub(bytes, Ordering::AcqRel);
        let full_before = events_before >= self.max_events || bytes_before >= self.max_bytes;
        let full_after =
            events_before - events >= self.max_events || bytes_before - bytes >= self.max_bytes;
        if full_before && !full_after {
            // A permit is stored if the driver is not waiting yet: no lost wake-up.
            self.shared.released.notify_one();
        }
    }

    /// Resolves after a [`release`](Self::release) made room.
    pub(crate) async fn released(&self) {
        self.shared.released.notified().await;
    }

    /// An empty batch buffer for about `expected` items: a recycled one with room for them if
    /// the pool has one, else a fresh one with room for twice that many (at least
    /// [`INITIAL_BATCH`]), so it seldom grows while it fills. A pooled buffer too small stays
    /// in the pool for a smaller batch: handed out, it would grow while the core fills it,
    /// copying every event it held by then (under callgrind, with the driver running ahead,
    /// that was 15 instructions per event).
    pub(crate) fn spare(&self, expected: usize) -> Items {
        let pooled = self.shared.spare.lock().ok().and_then(|mut pool| {
            let roomy = pool.iter().position(|items| items.capacity() >= expected)?;
            Some(pool.swap_remove(roomy))
        });
        pooled.unwrap_or_else(|| {
            VecDeque::with_capacity(expected.saturating_mul(2).max(INITIAL_BATCH))
        })
    }

    /// Returns a batch buffer to the pool, emptied. When the pool is full it keeps the larger
    /// buffers: a small one is what [`spare`](Self::spare) passes over for a large batch.
    pub(crate) fn recycle(&self, mut items: Items) {
        if items.capacity() == 0 {
            return;
        }
        items.clear();
        let Ok(mut pool) = self.shared.spare.lock() else {
            return;
        };
        if pool.len() < SPARE_BUFFERS {
            pool.push(items);
        } else if let Some(smallest) = pool
            .iter_mut()
            .min_by_key(|pooled| pooled.capacity())
            .filter(|pooled| pooled.capacity() < items.capacity())
        {
            *smallest = items;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[tokio::test]
    async fn bounded_in_bytes_and_woken_below_the_limit() {
        let budget = Budget::new(1000, 100);
        assert_eq!(budget.room(), Some((1000, 100)));
        budget.take(1, 60);
        assert_eq!(budget.room(), Some((999, 40)));
        budget.take(1, 60);
        assert_eq!(budget.room(), None, "120 bytes reach the limit");
        budget.release(1, 10);
        assert_eq!(budget.room(), None, "110 bytes are still in the channel");
        budget.release(1, 60);
        assert_eq!(budget.room(), Some((1000, 50)));
        // The crossing stored a wake-up for a driver that was not waiting yet.
        tokio::time::timeout(std::time::Duration::from_secs(5), budget.released())
            .await
            .expect("the release below the limit wakes the driver");
    }

    #[tokio::test]
    async fn bounded_in_events() {
        let budget = Budget::new(3, 1 << 20);
        budget.take(3, 30);
        assert_eq!(budget.room(), None);
        budget.release(2, 20);
        assert_eq!(budget.room(), Some((2, (1 << 20) - 10)));
        tokio::time::timeout(std::time::Duration::from_secs(5), budget.released())
            .await
            .expect("room in events wakes the driver");
    }

    #[test]
    fn a_fresh_batch_buffer_is_small() {
        // 1024 events of 2 KiB rows arrive about 7 to a 16 KiB read: 146 batches wait when
        // the application lags. With 256 slots each they held 7.5 MB of empty capacity.
        let budget = Budget::new(10, 10);
        let bytes = budget.spare(0).capacity() * size_of::<crate::Result<crate::Event>>();
        assert!(bytes <= 4096, "a fresh batch buffer takes {bytes} bytes");
    }

    #[test]
    fn buffers_are_recycled() {
        let budget = Budget::new(10, 10);
        let mut items = budget.spare(0);
        items.push_back(Err(crate::Error::ServerEnded));
        let capacity = items.capacity();
        budget.recycle(items);
        let again = budget.spare(0);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity, "the pooled buffer comes back");
    }

    #[test]
    fn a_pooled_buffer_too_small_for_the_batch_stays_in_the_pool() {
        let budget = Budget::new(1000, 1 << 20);
        let small = budget.spare(0);
        let small_capacity = small.capacity();
        budget.recycle(small);
        let expected = small_capacity * 4;
        let large = budget.spare(expected);
        assert!(
            large.capacity() >= expected,
            "{} slots for {expected} events",
            large.capacity()
        );
        let again = budget.spare(0);
        assert_eq!(again.capacity(), small_capacity, "still pooled");
        let large_capacity = large.capacity();
        budget.recycle(large);
        assert_eq!(budget.spare(expected).capacity(), large_capacity, "reused");
    }

    #[test]
    fn a_full_pool_keeps_its_larger_buffers() {
        let budget = Budget::new(1000, 1 << 20);
        let small = budget.spare(0).capacity();
        for _ in 0..super::SPARE_BUFFERS {
            budget.recycle(budget_buffer(small));
        }
        budget.recycle(budget_buffer(small * 8));
        let capacities: Vec<usize> = (0..super::SPARE_BUFFERS)
            .map(|_| budget.spare(0).capacity())
            .collect();
        assert!(capacities.iter().any(|&c| c >= small * 8), "{capacities:?}");
    }

    fn budget_buffer(capacity: usize) -> super::Items {
        super::Items::with_capacity(capacity)
    }
}
