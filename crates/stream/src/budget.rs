//! The byte budget of the event channel: besides its capacity in events, the channel between
//! the driver task and the application holds at most about `limit` bytes of pgoutput
//! messages, so large rows cannot pile up behind a count-only bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Bytes of message data delivered to the channel and not yet taken by the application.
/// Shared by the driver (which adds) and the stream handle (which releases).
#[derive(Debug, Clone)]
pub(crate) struct ByteBudget {
    shared: Arc<Shared>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Shared {
    in_channel: AtomicUsize,
    released: Notify,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Self {
        ByteBudget {
            shared: Arc::default(),
            limit: limit.max(1),
        }
    }

    /// Whether the channel holds `limit` bytes or more: deliver nothing until some are taken.
    /// (Below the limit one more event is always admitted, however large, so the channel can
    /// exceed the limit by at most one event.)
    pub(crate) fn is_exhausted(&self) -> bool {
        self.shared.in_channel.load(Ordering::Acquire) >= self.limit
    }

    /// An event of `len` bytes entered the channel.
    pub(crate) fn take(&self, len: usize) {
        self.shared.in_channel.fetch_add(len, Ordering::AcqRel);
    }

    /// The application took an event of `len` bytes; wakes the driver when that brings the
    /// channel below the limit.
    pub(crate) fn release(&self, len: usize) {
        let before = self.shared.in_channel.fetch_sub(len, Ordering::AcqRel);
        if before >= self.limit && before - len < self.limit {
            // A permit is stored if the driver is not waiting yet: no lost wake-up.
            self.shared.released.notify_one();
        }
    }

    /// Resolves after a [`release`](Self::release) brought the channel below the limit.
    pub(crate) async fn released(&self) {
        self.shared.released.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::ByteBudget;

    #[tokio::test]
    async fn exhausted_at_the_limit_and_woken_below_it() {
        let budget = ByteBudget::new(100);
        assert!(!budget.is_exhausted());
        budget.take(60);
        assert!(!budget.is_exhausted());
        budget.take(60);
        assert!(budget.is_exhausted());
        budget.release(10);
        assert!(budget.is_exhausted(), "110 bytes are still in the channel");
        budget.release(60);
        assert!(!budget.is_exhausted());
        // The crossing stored a wake-up for a driver that was not waiting yet.
        tokio::time::timeout(std::time::Duration::from_secs(5), budget.released())
            .await
            .expect("the release below the limit wakes the driver");
    }
}
