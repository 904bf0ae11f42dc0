//! The task that moves bytes and time between a [`Transport`] and a [`PhysicalCore`], and
//! follows timeline switches (the server's result after its CopyDone, `TIMELINE_HISTORY`, a
//! new `START_REPLICATION`).

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use pg_walstream_codec::{Lsn, PgTimestamp, WalSegmentSize};
use pg_walstream_slot::{SlotName, timeline_history};
use pg_walstream_transport::{Response, Transport, TransportError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::start_command;
use super::core::PhysicalCore;
use super::events::{PhysicalEvent, TimelineSwitch};
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

async fn transmit<T: Transport>(
    transport: &mut T,
    core: &mut PhysicalCore,
    buf: &mut BytesMut,
    now: std::time::Instant,
) -> Result<()> {
    let mut wrote = false;
    while core.poll_transmit(now, wall_clock(), buf).is_some() {
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

/// After the server's CopyDone: reads its `(next_tli, next_tli_startpos)` result, fetches the
/// next timeline's history and starts streaming it.
async fn follow_timeline<T: Transport>(
    transport: &mut T,
    core: &mut PhysicalCore,
    restart: &Restart,
) -> Result<()> {
    let mut next = None;
    loop {
        match transport.next_response().await? {
            Response::ResultSet(set) if set.columns().len() >= 2 && !set.rows().is_empty() => {
                let field = |name: &str, index: usize| -> Result<String> {
                    let column = set.columns().get(index).cloned().unwrap_or_default();
                    let column = if set.column_index(name).is_some() {
                        name.to_owned()
                    } else {
                        column
                    };
                    Ok(set.get_str(0, &column)?.unwrap_or_default().to_owned())
                };
                let timeline: u32 = field("next_tli", 0)?.parse().map_err(|_| Error::Protocol {
                    lsn: core.received_lsn(),
                    what: "unparsable next timeline after the end of a timeline",
                })?;
                let start: Lsn =
                    field("next_tli_startpos", 1)?
                        .parse()
                        .map_err(|_| Error::Protocol {
                            lsn: core.received_lsn(),
                            what: "unparsable start of the next timeline",
                        })?;
                next = Some((timeline, start));
            }
            Response::Ready => break,
            Response::CopyOut | Response::CopyBoth => {
                return Err(Error::Transport(TransportError::InvalidState(
                    "unexpected COPY after the end of a timeline",
                )));
            }
            _ => {}
        }
    }
    // No next timeline: the server ended streaming for another reason (shutdown, ...).
    let (timeline, switchpoint) = next.ok_or(Error::ServerEnded)?;
    let ended_at = core.received_lsn();
    if timeline <= core.timeline() {
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
    tracing::debug!(%command, previous = core.timeline(), %switchpoint, "following timeline switch");
    transport.copy_both(&command).await?;
    let switch = PhysicalEvent::TimelineSwitch(TimelineSwitch {
        previous_timeline: core.timeline(),
        ended_at,
        timeline,
        switchpoint,
        resume_at,
        history,
    });
    core.follow_timeline(Instant::now().into_std(), switch, timeline, resume_at);
    Ok(())
}

/// Runs the stream until it ends, the application stops it or drops it.
pub(crate) async fn run<T: Transport>(
    mut transport: T,
    mut core: PhysicalCore,
    restart: Restart,
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
            && let Err(error) = transmit(&mut transport, &mut core, &mut buf, now).await
        {
            core.handle_error(error);
        }
        let mut backpressured = false;
        while core.has_pending_events() {
            match tx.try_reserve() {
                Ok(permit) => {
                    if let Some(item) = core.poll_event() {
                        permit.send(item);
                    }
                }
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
            } else if let Err(error) = follow_timeline(&mut transport, &mut core, &restart).await {
                core.handle_error(error);
            }
            continue;
        }
        core.set_reading(now, !backpressured);
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
                    if let Some(item) = core.poll_event() {
                        permit.send(item);
                    }
                } else {
                    core.request_stop();
                    while core.poll_event().is_some() {}
                }
            }
            frame = transport.read_copy_data(), if !backpressured && !core.timeline_ended() => match frame {
                Ok(Some(frame)) => core.handle_copy_data(Instant::now().into_std(), &frame),
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
