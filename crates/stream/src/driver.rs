//! The task that moves bytes and time between a [`Transport`] and a [`LogicalCore`].
//!
//! It owns the connection, so status updates go out on their timer whether or not the
//! application is polling: events go into a bounded channel, and while the channel is full the
//! task stops reading the socket (backpressure, bounded memory) but keeps its timer running.
//! One `Sleep` is reset per wait; no future is boxed per frame.

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use pg_walstream_codec::PgTimestamp;
use pg_walstream_transport::Transport;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::budget::ByteBudget;
use crate::core::LogicalCore;
use crate::error::{Error, Result};
use crate::events::Event;
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
    /// The channel holds its capacity in events.
    Full,
    /// The channel holds its budget in bytes.
    OverBudget,
    /// The application dropped the stream.
    Closed,
    /// The next item is an error to reconnect for, not to deliver.
    Failed,
}

/// The bytes an event keeps in the channel (its pgoutput message).
fn event_bytes(item: &Result<Event>) -> usize {
    item.as_ref()
        .map_or(0, |event| event.xlog_data().data.len())
}

/// Moves one event from the core into the channel through `permit`.
fn send_one(
    core: &mut LogicalCore,
    permit: mpsc::Permit<'_, Result<Event>>,
    budget: &ByteBudget,
    metrics: &mut StreamMetrics,
) {
    if let Some(item) = core.poll_event() {
        metrics.on_event(&item);
        budget.take(event_bytes(&item));
        permit.send(item);
    }
}

fn deliver(
    core: &mut LogicalCore,
    tx: &mpsc::Sender<Result<Event>>,
    budget: &ByteBudget,
    metrics: &mut StreamMetrics,
    reconnect: bool,
) -> Delivery {
    while core.has_pending_events() {
        if reconnect
            && let Some(Err(error)) = core.peek_event()
            && error.is_transient()
        {
            return Delivery::Failed;
        }
        if budget.is_exhausted() {
            // Nobody will release bytes once the application dropped the stream.
            return if tx.is_closed() {
                Delivery::Closed
            } else {
                Delivery::OverBudget
            };
        }
        match tx.try_reserve() {
            Ok(permit) => send_one(core, permit, budget, metrics),
            Err(TrySendError::Full(())) => return Delivery::Full,
            Err(TrySendError::Closed(())) => return Delivery::Closed,
        }
    }
    Delivery::Drained
}

/// A permit on the channel (only polled while backpressured, so the sender is there).
async fn reserve(
    tx: Option<&mpsc::Sender<Result<Event>>>,
) -> std::result::Result<mpsc::Permit<'_, Result<Event>>, mpsc::error::SendError<()>> {
    match tx {
        Some(sender) => sender.reserve().await,
        None => Err(mpsc::error::SendError(())),
    }
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

/// The application's side of a stream as the driver sees it — the event channel and its byte
/// budget, the stop signal, the metrics — kept across reconnects.
pub(crate) struct Outlet {
    /// Dropped (ending the application's event stream) once the stop LSN is reached and every
    /// event was handed over; the connection stays until the application stops or drops.
    tx: Option<mpsc::Sender<Result<Event>>>,
    budget: ByteBudget,
    stop: oneshot::Receiver<()>,
    stop_seen: bool,
    pub(crate) metrics: StreamMetrics,
    /// An error that ended the stream after `tx` was dropped.
    late_error: Option<Error>,
}

impl Outlet {
    pub(crate) fn new(
        tx: mpsc::Sender<Result<Event>>,
        budget: ByteBudget,
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

    /// Hands `error` to the application, waiting for room in the channel; returns it when the
    /// channel can no longer carry it (the task then returns it).
    pub(crate) async fn deliver_error(&mut self, error: Error) -> Option<Error> {
        let item = Err(error);
        self.metrics.on_event(&item);
        match &self.tx {
            Some(tx) => tx.send(item).await.err().and_then(|e| e.0.err()),
            None => item.err(),
        }
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
    let mut armed = None;
    let feedback = core.feedback().clone();
    let end = loop {
        let now = Instant::now().into_std();
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
            Delivery::Full | Delivery::OverBudget => true,
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
        // Finished cores (waiting only to hand over their error) have no timer. The one
        // timer is re-armed only when the deadline moves.
        let at = core.poll_timeout().unwrap_or(now + IDLE_WAIT);
        if armed != Some(at) {
            sleep.as_mut().reset(at.into());
            armed = Some(at);
        }
        let stop_seen = outlet.stop_seen;
        tokio::select! {
            biased;
            _ = &mut outlet.stop, if !stop_seen => {
                outlet.stop_seen = true;
                core.request_stop();
            }
            () = &mut sleep => core.handle_timeout(Instant::now().into_std()),
            // The status update itself goes out at the top of the loop.
            () = feedback.status_requested() => {}
            permit = reserve(outlet.tx.as_ref()), if delivery == Delivery::Full => {
                if let Ok(permit) = permit {
                    send_one(core, permit, &outlet.budget, &mut outlet.metrics);
                } else {
                    core.request_stop();
                    while core.poll_event().is_some() {}
                }
            }
            // Delivery resumes at the top of the loop.
            () = outlet.budget.released(), if delivery == Delivery::OverBudget => {}
            frame = transport.read_copy_data(), if !backpressured => match frame {
                Ok(Some(frame)) => {
                    outlet.metrics.on_frame(frame.len());
                    core.handle_copy_data(Instant::now().into_std(), &frame);
                }
                Ok(None) => core.handle_server_end(),
                Err(error) => core.handle_error(Error::Transport(error)),
            },
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
