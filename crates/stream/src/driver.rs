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
) -> Delivery {
    while core.has_pending_events() {
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

/// Runs the stream until it ends, the application stops it or drops it. Returns the error
/// that ended the stream after the application's event stream had already ended (at the stop
/// LSN), which the channel can no longer carry.
pub(crate) async fn run<T: Transport>(
    mut transport: T,
    mut core: LogicalCore,
    tx: mpsc::Sender<Result<Event>>,
    budget: ByteBudget,
    mut stop: oneshot::Receiver<()>,
    mut metrics: StreamMetrics,
) -> Option<Error> {
    tracing::debug!("replication stream running");
    let mut buf = BytesMut::with_capacity(64);
    let mut stop_seen = false;
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut armed = None;
    let feedback = core.feedback().clone();
    // Dropped (ending the application's event stream) once the stop LSN is reached and every
    // event was handed over; the connection stays until the application stops or drops.
    let mut tx = Some(tx);
    let mut late_error = None;
    loop {
        let now = Instant::now().into_std();
        if core.transmit_due(now) || core.wants_copy_done() {
            let sent = transmit(&mut transport, &mut core, &mut buf, &mut metrics, now).await;
            if let Err(error) = sent {
                core.handle_error(error);
            }
        }
        let delivery = if let Some(sender) = &tx {
            deliver(&mut core, sender, &budget, &mut metrics)
        } else {
            // Past the stop LSN only the error that ends the stream can follow; the task
            // returns it (the application gets it from `stop` or its next poll).
            while let Some(item) = core.poll_event() {
                if let Err(error) = item {
                    late_error.get_or_insert(error);
                }
            }
            Delivery::Drained
        };
        let backpressured = match delivery {
            Delivery::Drained => false,
            Delivery::Full | Delivery::OverBudget => true,
            Delivery::Closed => {
                // Nobody listens: wind down gracefully, discarding what is pending.
                core.request_stop();
                while core.poll_event().is_some() {}
                false
            }
        };
        if core.is_finished() {
            break;
        }
        if core.stop_reached_and_drained() && tx.take().is_some() {
            tracing::debug!("stop LSN reached; waiting for the application to stop the stream");
        }
        core.set_reading(now, !backpressured);
        metrics.on_wait(backpressured, core.received_lsn());
        // Finished cores (waiting only to hand over their error) have no timer. The one
        // timer is re-armed only when the deadline moves.
        let at = core.poll_timeout().unwrap_or(now + IDLE_WAIT);
        if armed != Some(at) {
            sleep.as_mut().reset(at.into());
            armed = Some(at);
        }
        tokio::select! {
            biased;
            _ = &mut stop, if !stop_seen => {
                stop_seen = true;
                core.request_stop();
            }
            () = &mut sleep => core.handle_timeout(Instant::now().into_std()),
            // The status update itself goes out at the top of the loop.
            () = feedback.status_requested() => {}
            permit = reserve(tx.as_ref()), if delivery == Delivery::Full => {
                if let Ok(permit) = permit {
                    send_one(&mut core, permit, &budget, &mut metrics);
                } else {
                    core.request_stop();
                    while core.poll_event().is_some() {}
                }
            }
            // Delivery resumes at the top of the loop.
            () = budget.released(), if delivery == Delivery::OverBudget => {}
            frame = transport.read_copy_data(), if !backpressured => match frame {
                Ok(Some(frame)) => {
                    metrics.on_frame(frame.len());
                    core.handle_copy_data(Instant::now().into_std(), &frame);
                }
                Ok(None) => core.handle_server_end(),
                Err(error) => core.handle_error(Error::Transport(error)),
            },
        }
    }
    tracing::debug!(
        clean = core.ended_cleanly(),
        received = %core.received_lsn(),
        confirmed_flush = %core.feedback().confirmed_flush_lsn(),
        "replication stream ended"
    );
    if core.ended_cleanly() {
        // The server follows its CopyDone with the command's end; say goodbye politely.
        let _ = transport.close().await;
    }
    late_error
}

#[cfg(test)]
mod tests;
