//! [`EventBatch`]: the events of one read from the server, handed over at once.

use crate::error::Result;
use crate::events::Event;
use crate::handoff::{Budget, Items};

/// The events the stream received in one read from the server, in order — what
/// [`LogicalStream::next_batch`](crate::LogicalStream::next_batch) returns. It iterates
/// (and is consumed) like [`next_event`](crate::LogicalStream::next_event) would have returned
/// the same items one by one: events, and after the last one possibly the error that ended the
/// stream. Dropping it returns its buffer to the stream, so a steady stream of batches
/// allocates nothing.
///
/// A batch is never empty when handed out.
pub struct EventBatch {
    items: Items,
    budget: Option<Budget>,
}

impl EventBatch {
    pub(crate) fn new(items: Items, budget: Option<Budget>) -> Self {
        EventBatch { items, budget }
    }

    /// Items not taken yet.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether every item was taken.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items not taken yet, without taking them.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Result<Event>> + '_ {
        self.items.iter()
    }
}

impl Iterator for EventBatch {
    type Item = Result<Event>;

    #[inline]
    fn next(&mut self) -> Option<Result<Event>> {
        self.items.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.items.len(), Some(self.items.len()))
    }
}

impl ExactSizeIterator for EventBatch {}

impl Drop for EventBatch {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.recycle(std::mem::take(&mut self.items));
        }
    }
}

impl std::fmt::Debug for EventBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBatch")
            .field("len", &self.items.len())
            .finish_non_exhaustive()
    }
}
