//! The task that moves bytes and time between a [`Transport`] and a [`PhysicalCore`], and
//! follows timeline switches (the server's result after its CopyDone, `TIMELINE_HISTORY`, a
//! new `START_REPLICATION`).

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use pg_walstream_codec::{Lsn, PgTimestamp, WalSegmentSize};
use pg_walstream_slot::{SlotName, timeline_history};
use pg_walstream_transport::{Response, ResultSet, Transport, TransportError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::start_command;
use super::core::PhysicalCore;
use super::events::{PhysicalEvent, TimelineSwitch};
use super::metrics::PhysicalMetrics;
use crate::error::{Error, Result};

/// How long to sleep when the core has no timer.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

fn wall_clock() -> PgTimestamp {
    PgTimestamp::from_system_time(SystemTime::now()).unwrap_or(PgTimestamp::EPOCH)
}

/// What the driver needs besides the core to restart on a new timeline.
#[derive(Debug)]
pub(crate) struct Restart {
    pub(crate) slot: Option<SlotName>,
    pub(crate) segment_size: WalSegmentSize,
    /// The next timeline, when START_REPLICATION already reported the end of the first one.
    pub(crate) ended_with: Option<(u32, Lsn)>,
    pub(crate) metrics: PhysicalMetrics,
}

/// A permit on the channel (only polled while backpressured, so the sender is there).
async fn reserve(
    tx: &mpsc::Sender<Result<PhysicalEvent>>,
    backpressured: bool,
) -> std::result::Result<mpsc::Permit<'_, Result<PhysicalEvent>>, mpsc::error::SendError<()>> {
    if backpressured {
        tx.reserve().await
    } else {
        std::future::pending().await
    }
}

/// Hands the core's next event to the application.
fn send_one(
    core: &mut PhysicalCore,
    permit: mpsc::Permit<'_, Result<PhysicalEvent>>,
    metrics: &PhysicalMetrics,
) {
    if let Some(item) = core.poll_event() {
        if let Err(error) = &item {
            metrics.on_error(error);
        }
        permit.send(item);
    }
}

async fn transmit<T: Transport>(
    transport: &mut T,
    core: &mut PhysicalCore,
    buf: &mut BytesMut,
    metrics: &PhysicalMetrics,
    now: std::time::Instant,
) -> Result<()> {
    let mut wrote = false;
    while let Some(message) = core.poll_transmit(now, wall_clock(), buf) {
        metrics.on_transmit(&message);
        transport.write_copy_data(buf)?;
        buf.clear();
        wrote = true;
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

/// How the server answered `START_REPLICATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// CopyBoth: WAL follows.
    Streaming,
    /// Nothing to stream: the start position is the switch point of the requested (historic)
    /// timeline, so the server sent the next timeline and its start without entering COPY
    /// mode (walsender.c `StartReplication`).
    TimelineEnded {
        /// The next timeline.
        timeline: u32,
        /// Where it begins.
        switchpoint: Lsn,
    },
}

/// Sends `START_REPLICATION` and reads the server's answer: CopyBoth, or — for a start
/// exactly at the end of a historic timeline — the next timeline's result set.
///
/// # Errors
/// Server errors (a start past the switch point of an old timeline is refused by the server:
/// "requested starting point ... is not in this server's history"), connection errors, an
/// answer that is neither.
pub(crate) async fn start_streaming<T: Transport>(
    transport: &mut T,
    command: &str,
    start: Lsn,
) -> Result<Started> {
    transport.send_query(command).await?;
    match transport.next_response().await? {
        Response::CopyBoth => Ok(Started::Streaming),
        Response::ResultSet(set) => {
            let next = next_timeline(&set, start)?;
            let rest = read_next_timeline(transport, start).await?;
            match next.or(rest) {
                Some((timeline, switchpoint)) => Ok(Started::TimelineEnded {
                    timeline,
                    switchpoint,
                }),
                None => Err(Error::ServerEnded),
            }
        }
        Response::Ready => Err(Error::ServerEnded),
        _ => Err(Error::Transport(TransportError::InvalidState(
            "START_REPLICATION answered with neither CopyBoth nor a result",
        ))),
    }
}

/// The `(next_tli, next_tli_startpos)` row of a result set, if it is one.
fn next_timeline(set: &ResultSet, at: Lsn) -> Result<Option<(u32, Lsn)>> {
    if set.columns().len() < 2 || set.rows().is_empty() {
        return Ok(None);
    }
    let field = |name: &str, index: usize| -> Result<String> {
        let column = if set.column_index(name).is_some() {
            name.to_owned()
        } else {
            set.columns().get(index).cloned().unwrap_or_default()
        };
        Ok(set.get_str(0, &column)?.unwrap_or_default().to_owned())
    };
    let timeline: u32 = field("next_tli", 0)?.parse().map_err(|_| Error::Protocol {
        lsn: at,
        what: "unparsable next timeline after the end of a timeline",
    })?;
    let start: Lsn = field("next_tli_startpos", 1)?
        .parse()
        .map_err(|_| Error::Protocol {
            lsn: at,
            what: "unparsable start of the next timeline",
        })?;
    Ok(Some((timeline, start)))
}

/// After the server's CopyDone (or a START_REPLICATION without COPY): reads the responses up
/// to ReadyForQuery and returns the next timeline and its start, if the server sent them.
async fn read_next_timeline<T: Transport>(
    transport: &mut T,
    at: Lsn,
) -> Result<Option<(u32, Lsn)>> {
    let mut next = None;
    loop {
        match transport.next_response().await? {
            Response::ResultSet(set) => {
                if let Some(found) = next_timeline(&set, at)? {
                    next = Some(found);
                }
            }
            Response::Ready => return Ok(next),
            _ => {
                return Err(Error::Transport(TransportError::InvalidState(
                    "unexpected COPY after the end of a timeline",
                )));
            }
        }
    }
}

/// At the end of a timeline: reads the server's `(next_tli, next_tli_startpos)` result
/// (unless [`Restart::ended_with`] already holds it), fetches the next timeline's history and
/// starts streaming it — repeatedly, should the next timeline also end right at its start.
async fn follow_timeline<T: Transport>(
    transport: &mut T,
    core: &mut PhysicalCore,
    restart: &mut Restart,
) -> Result<()> {
    let mut next = match restart.ended_with.take() {
        Some(next) => Some(next),
        None => read_next_timeline(transport, core.received_lsn()).await?,
    };
    let mut ended_at = core.received_lsn();
    let mut previous = core.timeline();
    loop {
        // No next timeline: the server ended streaming for another reason (shutdown, ...).
        let (timeline, switchpoint) = next.ok_or(Error::ServerEnded)?;
        if timeline <= previous {
            return Err(Error::Protocol {
                lsn: ended_at,
                what: "the server's next timeline is not newer than the current one",
            });
        }
        if switchpoint > ended_at {
            return Err(Error::Protocol {
                lsn: switchpoint,
                what: "the next timeline begins after where the server stopped streaming",
            });
        }
        let history = timeline_history(transport, timeline).await?;
        let resume_at = switchpoint.segment_start(restart.segment_size);
        let command = start_command(restart.slot.as_ref(), resume_at, timeline);
        tracing::debug!(%command, previous, %switchpoint, "following timeline switch");
        let started = start_streaming(transport, &command, resume_at).await?;
        restart.metrics.on_timeline_switch(timeline);
        let switch = PhysicalEvent::TimelineSwitch(TimelineSwitch {
            previous_timeline: previous,
            ended_at,
            timeline,
            switchpoint,
            resume_at,
            history,
        });
        match started {
            Started::Streaming => {
                core.follow_timeline(Instant::now().into_std(), switch, timeline, resume_at);
                return Ok(());
            }
            Started::TimelineEnded {
                timeline: after,
                switchpoint: at,
            } => {
                // The next timeline ends where it begins (it holds no WAL of its own before
                // `resume_at`): report the switch and go on to the one after.
                core.follow_timeline(Instant::now().into_std(), switch, timeline, resume_at);
                core.handle_server_end();
                previous = timeline;
                ended_at = resume_at;
                next = Some((after, at));
            }
        }
    }
}

/// Runs the stream until it ends, the application stops it or drops it.
pub(crate) async fn run<T: Transport>(
    mut transport: T,
    mut core: PhysicalCore,
    mut restart: Restart,
    tx: mpsc::Sender<Result<PhysicalEvent>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buf = BytesMut::with_capacity(64);
    let mut stop_seen = false;
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut armed = None;
    let feedback = core.feedback().clone();
    loop {
        let now = Instant::now().into_std();
        if (core.transmit_due(now) || core.wants_copy_done())
            && let Err(error) =
                transmit(&mut transport, &mut core, &mut buf, &restart.metrics, now).await
        {
            core.handle_error(error);
        }
        let mut backpressured = false;
        while core.has_pending_events() {
            match tx.try_reserve() {
                Ok(permit) => send_one(&mut core, permit, &restart.metrics),
                Err(TrySendError::Full(())) => {
                    backpressured = true;
                    break;
                }
                Err(TrySendError::Closed(())) => {
                    core.request_stop();
                    while core.poll_event().is_some() {}
                }
            }
        }
        if core.is_finished() {
            break;
        }
        if core.timeline_ended() && !backpressured {
            if stop_seen {
                core.request_stop();
            } else if let Err(error) =
                follow_timeline(&mut transport, &mut core, &mut restart).await
            {
                core.handle_error(error);
            }
            continue;
        }
        core.set_reading(now, !backpressured);
        restart
            .metrics
            .on_wait(core.received_lsn(), feedback.server_wal_end());
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
            () = feedback.woken() => {}
            permit = reserve(&tx, backpressured) => {
                if let Ok(permit) = permit {
                    send_one(&mut core, permit, &restart.metrics);
                } else {
                    core.request_stop();
                    while core.poll_event().is_some() {}
                }
            }
            frame = transport.read_copy_data(), if !backpressured && !core.timeline_ended() => match frame {
                Ok(Some(frame)) => {
                    let before = core.received_lsn();
                    core.handle_copy_data(Instant::now().into_std(), &frame);
                    if let Some(bytes) = core.received_lsn().checked_distance(before) {
                        restart.metrics.on_wal(bytes);
                    }
                }
                Ok(None) => core.handle_server_end(),
                Err(error) => core.handle_error(Error::Transport(error)),
            },
        }
    }
    tracing::debug!(clean = core.ended_cleanly(), received = %core.received_lsn(), "physical stream ended");
    if core.ended_cleanly() {
        let _ = transport.close().await;
    }
}
