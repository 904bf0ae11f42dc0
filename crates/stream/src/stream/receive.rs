//! The application's side of the hand-off: taking batches from the channel, releasing their
//! room, the replay filter, stopping — for [`next_event`](LogicalStream::next_event) and
//! [`next_batch`](LogicalStream::next_batch).

use std::pin::Pin;
use std::task::{Context, Poll};

use super::LogicalStream;
use crate::batch::EventBatch;
use crate::error::Result;
use crate::events::Event;
use crate::feedback::Feedback;
use crate::handoff::Handoff;
use crate::replay::ReplayFilter;

impl LogicalStream {
    /// The events of the next read from the server at once — the same items, in the same
    /// order, that [`next_event`](Self::next_event) would return one by one (the two may be
    /// mixed: a batch starts with what `next_event` has not returned yet); `None` once the
    /// stream ended. A batch is never empty; an error that ends the stream comes last in its
    /// batch.
    ///
    /// ```no_run
    /// # async fn run(mut stream: pg_walstream_stream::LogicalStream) -> Result<(), pg_walstream_stream::Error> {
    /// while let Some(batch) = stream.next_batch().await {
    ///     let mut last_ack = None;
    ///     for event in batch {
    ///         let event = event?;
    ///         // ... apply the event, then:
    ///         last_ack = event.ack_lsn().or(last_ack);
    ///     }
    ///     if let Some(lsn) = last_ack {
    ///         stream.feedback().processed(lsn);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_batch(&mut self) -> Option<EventBatch> {
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    /// Polls for the next batch (see [`next_batch`](Self::next_batch)).
    pub fn poll_next_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<EventBatch>> {
        self.poll_batch(cx)
    }

    /// After a stop request: discards what is left in the channel (keeping the first error),
    /// then waits for the driver task.
    pub(super) fn poll_stopping(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        if let Some(error) = self.current.drain(..).find_map(Result::err) {
            self.stop_error.get_or_insert(error);
        }
        let (events, bytes) = std::mem::take(&mut self.current_cost);
        if events > 0 {
            self.budget.release(events, bytes);
        }
        loop {
            match self.events.poll_recv(cx) {
                Poll::Ready(Some(handoff)) => {
                    self.budget.release(handoff.items.len(), handoff.bytes);
                    let mut items = handoff.items;
                    if let Some(error) = items.drain(..).find_map(Result::err) {
                        self.stop_error.get_or_insert(error);
                    }
                    self.budget.recycle(items);
                }
                Poll::Ready(None) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        let Poll::Ready(outcome) = self.task.poll_end::<Event>(cx, |late| late) else {
            return Poll::Pending;
        };
        let outcome = match outcome {
            Some(Err(error)) => Some(error),
            _ => None,
        };
        Poll::Ready(self.stop_error.take().or(outcome).map(Err))
    }

    /// Whether the application stopped: then what is left is discarded (see
    /// [`poll_stopping`](Self::poll_stopping)).
    fn check_stop(&mut self) -> bool {
        if !self.stopping && self.stop.is_stop_requested() {
            self.stopping = true;
            self.stop.signal_driver();
        }
        self.stopping
    }

    /// The next batch from the channel.
    fn poll_handoff(&mut self, cx: &mut Context<'_>) -> Poll<Option<Handoff>> {
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(handoff)) => Poll::Ready(Some(handoff)),
            Poll::Pending => {
                self.stop.register(cx.waker());
                // A stop request between the first check and the registration.
                if self.stop.is_stop_requested() {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                // Asking past the last event (after a stop LSN) means the application is done
                // with everything it received: stop now, so the final status update carries
                // what it reported.
                self.stop.signal_driver();
                Poll::Ready(None)
            }
        }
    }

    /// Whether the replay filter lets `item` through (errors always pass).
    fn admits(replay: &mut ReplayFilter, feedback: &Feedback, item: &Result<Event>) -> bool {
        match item {
            Ok(event) => replay.admits(event.kind(), || feedback.processed_lsn()),
            Err(_) => true,
        }
    }

    pub(super) fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        if self.task.is_done() {
            return Poll::Ready(None);
        }
        if self.check_stop() {
            return self.poll_stopping(cx);
        }
        loop {
            // Checked in place and then taken straight into the return value: an event is
            // moved once here, not twice.
            while let Some(item) = self.current.front() {
                if Self::admits(&mut self.replay, &self.feedback, item) {
                    return Poll::Ready(self.current.pop_front());
                }
                self.current.pop_front();
            }
            // Used up: its room goes back to the driver before waiting for the next batch.
            let (events, bytes) = std::mem::take(&mut self.current_cost);
            if events > 0 {
                self.budget.release(events, bytes);
            }
            match self.poll_handoff(cx) {
                Poll::Ready(Some(handoff)) => {
                    self.current_cost = (handoff.items.len(), handoff.bytes);
                    let done = std::mem::replace(&mut self.current, handoff.items);
                    self.budget.recycle(done);
                }
                Poll::Pending => return Poll::Pending,
                // The task ends: cleanly, with an error after the last event (past the stop
                // LSN), or (panic, runtime shutdown) without a word.
                Poll::Ready(None) => return self.task.poll_end(cx, |late| late),
            }
        }
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<EventBatch>> {
        let single = |item: Option<Result<Event>>| {
            item.map(|item| EventBatch::new(std::iter::once(item).collect(), None))
        };
        if self.task.is_done() {
            return Poll::Ready(None);
        }
        if self.check_stop() {
            return self.poll_stopping(cx).map(single);
        }
        loop {
            // Handed over: what the application holds is its own (the budget bounds the
            // channel), or it could wait for a batch while holding the room for it.
            let (events, bytes) = std::mem::take(&mut self.current_cost);
            if events > 0 {
                self.budget.release(events, bytes);
            }
            let mut items = if self.current.is_empty() {
                match self.poll_handoff(cx) {
                    Poll::Ready(Some(handoff)) => {
                        self.budget.release(handoff.items.len(), handoff.bytes);
                        handoff.items
                    }
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return self.task.poll_end(cx, |late| late).map(single),
                }
            } else {
                std::mem::take(&mut self.current)
            };
            let (replay, feedback) = (&mut self.replay, &self.feedback);
            items.retain(|item| Self::admits(replay, feedback, item));
            if !items.is_empty() {
                return Poll::Ready(Some(EventBatch::new(items, Some(self.budget.clone()))));
            }
            self.budget.recycle(items);
        }
    }
}

impl futures_core::Stream for LogicalStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}
