//! The task that moves bytes and time between a [`Transport`] and a [`LogicalCore`].
//!
//! It owns the connection, so status updates go out on their timer whether or not the
//! application is polling. It works in batches: one read from the server — the frame the
//! transport waited for and every complete frame already buffered behind it, as many as the
//! channel has room for — is fed to the core with one clock reading, and the events it yields
//! go to the application as one [`Handoff`] (one channel operation, at most one wake-up).
//! While the channel holds its budget in events or bytes the task stops reading the socket
//! (backpressure, bounded memory) but keeps its timer running.
//!
//! After a small read the task waits up to the core's coalescing budget before reading again
//! ([`LogicalCore::read_pause`]), so the next read carries many messages instead of a few;
//! the wait never passes the core's next timer (status update, liveness ping, read deadline).
//! During the wait the socket is off the runtime's reactor ([`Transport::park_reads`]):
//! edge-triggered readiness would otherwise wake the runtime's thread at every packet the
//! walsender sends, although nothing reads until the wait ends.
//! One `Sleep` serves every timer and is re-armed only when the deadline moves earlier or the
//! sleep has fired; no future is boxed per frame.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use pg_walstream_codec::PgTimestamp;
use pg_walstream_transport::Transport;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::core::LogicalCore;
use crate::error::{Error, Result};
use crate::fine_timer::ShortWait;
use crate::handoff::{Budget, Handoff, Items, item_bytes};
use crate::metrics::StreamMetrics;

/// How long to sleep when the core has no timer.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// The wall clock as a PostgreSQL timestamp (0 if the clock is before 1970 or absurd).
fn wall_clock() -> PgTimestamp {
    PgTimestamp::from_system_time(SystemTime::now()).unwrap_or(PgTimestamp::EPOCH)
}

/// What the driver should do after moving events to the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Everything pending was sent.
    Drained,
    /// The channel holds its budget in events or bytes.
    OverBudget,
    /// The application dropped the stream.
    Closed,
    /// The next item is an error to reconnect for, not to deliver.
    Failed,
}

/// Whether the core's next item is a transient error to reconnect for.
fn failing(core: &LogicalCore, reconnect: bool) -> bool {
    reconnect && matches!(core.peek_event(), Some(Err(error)) if error.is_transient())
}

/// Moves what the core has pending into the channel as one batch, as far as the budget
/// allows.
fn deliver(
    core: &mut LogicalCore,
    tx: &mpsc::UnboundedSender<Handoff>,
    budget: &Budget,
    metrics: &mut StreamMetrics,
    reconnect: bool,
) -> Delivery {
    if !core.has_pending_events() {
        return Delivery::Drained;
    }
    if failing(core, reconnect) {
        return Delivery::Failed;
    }
    let Some((mut events_left, mut bytes_left)) = budget.room() else {
        // Nobody will release room once the application dropped the stream.
        return if tx.is_closed() {
            Delivery::Closed
        } else {
            Delivery::OverBudget
        };
    };
    // The buffer becomes the core's queue when the whole queue moves: sized for what it holds
    // now, about what the next read brings.
    let mut items: Items = budget.spare(core.pending_events().min(events_left));
    let mut bytes = 0;
    let mut errors = 0;
    let mut outcome = Delivery::Drained;
    // Usually everything pending fits: the core's queue becomes the batch, no event moves.
    if let Some(total) = core.take_all_events(&mut items, events_left, bytes_left, reconnect) {
        bytes = total;
        if let Some(Err(error)) = items.back() {
            metrics.on_error(error);
            errors = 1;
        }
    }
    while core.has_pending_events() {
        if events_left == 0 || bytes_left == 0 {
            outcome = Delivery::OverBudget;
            break;
        }
        if failing(core, reconnect) {
            outcome = Delivery::Failed;
            break;
        }
        let Some(item) = core.poll_event() else { break };
        if let Err(error) = &item {
            metrics.on_error(error);
            errors += 1;
        }
        let len = item_bytes(&item);
        bytes += len;
        bytes_left = bytes_left.saturating_sub(len);
        events_left -= 1;
        items.push_back(item);
    }
    metrics.on_events(items.len() - errors);
    budget.take(items.len(), bytes);
    if tx.send(Handoff { items, bytes }).is_err() {
        return Delivery::Closed;
    }
    outcome
}

/// Feeds `first` and the frames buffered behind it to the core, all received at `now`; reads
/// no more frames than the channel has room for (so the core holds about one batch beyond
/// the budget). Returns the bytes read if the batch took every complete frame the
/// transport had buffered — only then does its size say how much the server had sent — and
/// `None` if it stopped early (the channel's room, a stop, an error).
fn read_batch<T: Transport>(
    transport: &mut T,
    core: &mut LogicalCore,
    budget: &Budget,
    metrics: &mut StreamMetrics,
    now: std::time::Instant,
    first: Bytes,
) -> Option<usize> {
    let (max_frames, max_bytes) = budget.room().unwrap_or((1, 1));
    let mut frames = 1;
    let mut bytes = first.len();
    let mut drained = false;
    core.handle_copy_data(now, first);
    while frames < max_frames && bytes < max_bytes && !core.is_stopping() {
        match transport.try_read_copy_data() {
            Ok(Some(frame)) => {
                frames += 1;
                bytes += frame.len();
                core.handle_copy_data(now, frame);
            }
            Ok(None) => {
                drained = true;
                break;
            }
            Err(error) => {
                core.handle_error(Error::Transport(error));
                break;
            }
        }
    }
    metrics.on_frames(frames, bytes);
    drained.then_some(bytes)
}

/// Writes due status updates and, when the core asks for it, CopyDone.
async fn transmit<T: Transport>(
    transport: &mut T,
    core: &mut LogicalCore,
    buf: &mut BytesMut,
    metrics: &mut StreamMetrics,
    now: std::time::Instant,
) -> Result<()> {
    let mut wrote = false;
    while let Some(update) = core.poll_transmit(now, wall_clock(), buf) {
        transport.write_copy_data(buf)?;
        buf.clear();
        wrote = true;
        metrics.on_status(&update);
    }
    if wrote {
        transport.flush().await?;
    }
    if core.wants_copy_done() {
        transport.send_copy_done().await?;
        core.on_copy_done_sent();
    }
    Ok(())
}

/// The application's side of a stream as the driver sees it — the event channel and its
/// budget, the stop signal, the metrics — kept across reconnects.
pub(crate) struct Outlet {
    /// Dropped (ending the application's event stream) once the stop LSN is reached and every
    /// event was handed over; the connection stays until the application stops or drops.
    tx: Option<mpsc::UnboundedSender<Handoff>>,
    budget: Budget,
    stop: oneshot::Receiver<()>,
    stop_seen: bool,
    pub(crate) metrics: StreamMetrics,
    /// An error that ended the stream after `tx` was dropped.
    late_error: Option<Error>,
}

impl Outlet {
    pub(crate) fn new(
        tx: mpsc::UnboundedSender<Handoff>,
        budget: Budget,
        stop: oneshot::Receiver<()>,
        metrics: StreamMetrics,
    ) -> Self {
        Outlet {
            tx: Some(tx),
            budget,
            stop,
            stop_seen: false,
            metrics,
            late_error: None,
        }
    }

    /// Whether the application still wants events: it has not stopped, dropped, or reached
    /// the stop LSN. Only then is a failure worth reconnecting for.
    pub(crate) fn wants_more(&self) -> bool {
        !self.stop_seen && self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Resolves when the application stops or drops the stream (at once if it already did).
    pub(crate) async fn stopped(&mut self) {
        if !self.stop_seen {
            let _ = (&mut self.stop).await;
            self.stop_seen = true;
        }
    }

    /// Hands `error` to the application (past the budget: it is the last item); returns it
    /// when the channel can no longer carry it (the task then returns it).
    pub(crate) fn deliver_error(&mut self, error: Error) -> Option<Error> {
        self.metrics.on_error(&error);
        let mut items = self.budget.spare(1);
        items.push_back(Err(error));
        let handoff = Handoff { items, bytes: 0 };
        let Some(tx) = &self.tx else {
            return handoff.items.into_iter().next().and_then(Result::err);
        };
        self.budget.take(1, 0);
        tx.send(handoff)
            .err()
            .and_then(|e| e.0.items.into_iter().next())
            .and_then(Result::err)
    }

    /// The error to return from the task, if one could not be delivered.
    pub(crate) fn take_late_error(&mut self) -> Option<Error> {
        self.late_error.take()
    }
}

/// How one session (one connection) ended.
pub(crate) enum SessionEnd {
    /// The stream is over: cleanly, because the application stopped or dropped it, or with an
    /// error already handed over (or kept in [`Outlet::take_late_error`]).
    Over,
    /// The core failed with an error that `retry` accepted; every event before it was
    /// delivered and the error was not.
    Failed(Error),
}

/// Runs one session until it ends, the application stops it or drops it. With `reconnect`,
/// a transient error (while the application still wants events) ends the session with
/// [`SessionEnd::Failed`] instead of being delivered.
pub(crate) async fn drive<T: Transport>(
    transport: &mut T,
    core: &mut LogicalCore,
    outlet: &mut Outlet,
    reconnect: bool,
) -> SessionEnd {
    tracing::debug!("replication stream running");
    let mut buf = BytesMut::with_capacity(64);
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    // When the sleep fires; `None` once it has fired.
    let mut armed: Option<std::time::Instant> = None;
    // Until when reading waits for data to accumulate (read coalescing).
    let mut pause: Option<std::time::Instant> = None;
    // A pause shorter than the runtime's timer tick waits on its own timer.
    let mut short_wait = ShortWait::default();
    // Whether the last batch left complete frames in the transport's buffer.
    let mut carried_over = false;
    let feedback = core.feedback().clone();
    let mut now = Instant::now().into_std();
    let end = loop {
        if core.transmit_due(now) || core.wants_copy_done() {
            let sent = transmit(transport, core, &mut buf, &mut outlet.metrics, now).await;
            if let Err(error) = sent {
                core.handle_error(error);
            }
        }
        let reconnect_now = reconnect && outlet.wants_more();
        let delivery = if let Some(sender) = &outlet.tx {
            deliver(
                core,
                sender,
                &outlet.budget,
                &mut outlet.metrics,
                reconnect_now,
            )
        } else {
            // Past the stop LSN only the error that ends the stream can follow; the task
            // returns it (the application gets it from `stop` or its next poll).
            while let Some(item) = core.poll_event() {
                if let Err(error) = item {
                    outlet.late_error.get_or_insert(error);
                }
            }
            Delivery::Drained
        };
        let backpressured = match delivery {
            Delivery::Drained => false,
            Delivery::OverBudget => true,
            Delivery::Failed => match core.poll_event() {
                Some(Err(error)) => break SessionEnd::Failed(error),
                _ => unreachable!("deliver saw an error first in the queue"),
            },
            Delivery::Closed => {
                // Nobody listens: wind down gracefully, discarding what is pending.
                core.request_stop();
                while core.poll_event().is_some() {}
                false
            }
        };
        if core.is_finished() {
            break SessionEnd::Over;
        }
        if core.stop_reached_and_drained() && outlet.tx.take().is_some() {
            tracing::debug!("stop LSN reached; waiting for the application to stop the stream");
        }
        core.set_reading(now, !backpressured);
        outlet.metrics.on_wait(backpressured, core.received_lsn());
        // Finished cores (waiting only to hand over their error) have no timer.
        let mut at = core.poll_timeout().unwrap_or(now + IDLE_WAIT);
        if let Some(until) = pause
            && !short_wait.armed
        {
            at = at.min(until);
        }
        // A later deadline keeps the armed sleep: it fires early, finds nothing due and is
        // re-armed then — cheaper than moving the timer after every read.
        if armed.is_none_or(|fires| at < fires) {
            sleep.as_mut().reset(at.into());
            armed = Some(at);
        }
        let reading = !backpressured && pause.is_none();
        let stop_seen = outlet.stop_seen;
        tokio::select! {
            biased;
            _ = &mut outlet.stop, if !stop_seen => {
                outlet.stop_seen = true;
                core.request_stop();
                now = Instant::now().into_std();
            }
            () = &mut sleep => {
                armed = None;
                now = Instant::now().into_std();
                if pause.is_some_and(|until| now >= until) {
                    pause = None;
                    short_wait.armed = false;
                }
                core.handle_timeout(now);
            }
            () = short_wait.over(), if short_wait.armed => {
                now = Instant::now().into_std();
                pause = None;
            }
            // The status update itself goes out at the top of the loop.
            () = feedback.status_requested() => now = Instant::now().into_std(),
            // Delivery resumes at the top of the loop.
            () = outlet.budget.released(), if delivery == Delivery::OverBudget => {
                now = Instant::now().into_std();
            }
            frame = transport.read_copy_data(), if reading => {
                now = Instant::now().into_std();
                match frame {
                    Ok(Some(frame)) => {
                        let m = &mut outlet.metrics;
                        let read = read_batch(transport, core, &outlet.budget, m, now, frame);
                        // A batch's size says how much the server had sent only if it began
                        // with a socket read: not after a batch the channel's room cut short
                        // (this one began with the frames left behind) and not when it was
                        // cut short itself (the frames behind it are already here).
                        pause = read
                            .filter(|_| !carried_over)
                            .and_then(|bytes| core.read_pause(now, bytes));
                        carried_over = read.is_none();
                        if let Some(until) = pause {
                            short_wait.arm(until.saturating_duration_since(now));
                            if let Err(error) = transport.park_reads() {
                                core.handle_error(Error::Transport(error));
                            }
                        }
                    }
                    Ok(None) => core.handle_server_end(),
                    Err(error) => core.handle_error(Error::Transport(error)),
                }
            }
        }
    };
    tracing::debug!(
        clean = core.ended_cleanly(),
        received = %core.received_lsn(),
        confirmed_flush = %core.feedback().confirmed_flush_lsn(),
        "replication session ended"
    );
    end
}

#[cfg(test)]
mod tests;
