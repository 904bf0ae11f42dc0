//! Starting a physical stream and the application-facing handle.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use pg_walstream_codec::{Lsn, WalSegmentSize};
use pg_walstream_slot::{
    ServerVersion, SlotError, SlotType, SystemIdentity, identify_system, read_replication_slot,
    show,
};
use pg_walstream_transport::conninfo::Replication;
use pg_walstream_transport::{Backend, Connection, Transport};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::config::{PhysicalConfig, PhysicalStart, parse_wal_segment_size};
use super::core::{PhysicalCore, PhysicalOptions};
use super::driver::{self, Restart, Started};
use super::events::PhysicalEvent;
use super::feedback::PhysicalFeedback;
use super::metrics::PhysicalMetrics;
use crate::config::ConfigError;
use crate::error::{Error, Result};
use crate::task::DriverTask;

/// What a physical stream was started with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PhysicalInfo {
    /// IDENTIFY_SYSTEM's answer.
    pub system: SystemIdentity,
    /// The server's version.
    pub server: ServerVersion,
    /// The server's `wal_segment_size`.
    pub segment_size: WalSegmentSize,
    /// The position sent in START_REPLICATION.
    pub start_lsn: Lsn,
    /// The timeline sent in START_REPLICATION.
    pub timeline: u32,
    /// The transport backend, when the stream made the connection itself.
    pub backend: Option<Backend>,
}

/// A running physical replication stream of [`PhysicalEvent`]s: raw WAL, and timeline
/// switches that the stream follows by itself.
///
/// A background task (on the current tokio runtime) owns the connection: status updates and
/// hot standby feedback go out on time whatever the application does; at most
/// [`channel_capacity`](crate::PhysicalConfigBuilder::channel_capacity) events wait, after
/// which reading pauses. Report positions through [`feedback`](Self::feedback).
///
/// A start exactly at the switch point of a timeline the server has left (its end) is not an
/// error: the server then answers `START_REPLICATION` with the next timeline instead of WAL,
/// and the stream delivers a [`TimelineSwitch`](crate::TimelineSwitch) at once and goes on
/// to the next timeline from the segment start of the switch point. A start *past* the switch
/// point of an old timeline is refused by the server ("requested starting point ... is not in
/// this server's history").
///
/// # Metrics
///
/// Through the `metrics` facade (free without a recorder), each labelled `slot` (`""` without
/// one):
///
/// | name | kind | meaning |
/// |---|---|---|
/// | `walstream_physical_bytes_total` | counter | WAL bytes received |
/// | `walstream_physical_segments_total` | counter | segment files completed by [`receive_wal`](crate::receive_wal) |
/// | `walstream_physical_status_updates_total` | counter | standby status updates sent |
/// | `walstream_physical_hot_standby_feedback_total` | counter | hot standby feedback messages sent |
/// | `walstream_physical_timeline_switches_total` | counter | timeline switches followed |
/// | `walstream_physical_reconnects_total` | counter | streams started with [`reconnect`](crate::PhysicalConfigBuilder::reconnect) |
/// | `walstream_physical_errors_total` | counter | errors that ended a stream |
/// | `walstream_physical_received_lsn` | gauge | highest WAL position received |
/// | `walstream_physical_flushed_lsn` | gauge | flush position last sent |
/// | `walstream_physical_lag_bytes` | gauge | write − flush of the last status update |
/// | `walstream_physical_server_lag_bytes` | gauge | the server's latest WAL end − received |
/// | `walstream_physical_timeline` | gauge | the timeline being streamed |
#[derive(Debug)]
pub struct PhysicalStream {
    events: mpsc::Receiver<Result<PhysicalEvent>>,
    stop: Option<oneshot::Sender<()>>,
    task: DriverTask<()>,
    feedback: PhysicalFeedback,
    pub(crate) metrics: PhysicalMetrics,
    info: PhysicalInfo,
}

impl PhysicalStream {
    /// Connects (`replication=true` implied) and starts streaming.
    ///
    /// # Errors
    /// [`ConfigError::NoConnection`] without a configured connection; as
    /// [`start`](Self::start).
    pub async fn connect(config: PhysicalConfig) -> Result<PhysicalStream> {
        let Some((mut connection_config, backend)) = config.connection.clone() else {
            return Err(ConfigError::NoConnection.into());
        };
        connection_config.replication = Replication::Physical;
        let connection = Connection::connect_with(&connection_config, backend).await?;
        let mut stream = Self::start(connection, config).await?;
        stream.info.backend = Some(backend);
        Ok(stream)
    }

    /// On an open `replication=true` connection: IDENTIFY_SYSTEM, `SHOW wal_segment_size`,
    /// the start position (see [`PhysicalStart`]), START_REPLICATION, and the driver task.
    ///
    /// # Errors
    /// [`Error::Config`] for a start that is not at a segment boundary without a slot (nothing
    /// is started); [`Error::SlotNotFound`] for a missing slot, [`Error::Slot`] with
    /// [`SlotError::BadResult`] for a logical one (15+; on 14 the server refuses it at
    /// START_REPLICATION); server errors (a start past the end of an old timeline) and
    /// connection errors.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start<T: Transport + 'static>(
        mut transport: T,
        config: PhysicalConfig,
    ) -> Result<PhysicalStream> {
        let server = ServerVersion::of(&transport)?;
        let system = identify_system(&mut transport).await?;
        let size_text = show(&mut transport, "wal_segment_size").await?;
        let segment_size = parse_wal_segment_size(&size_text).ok_or_else(|| {
            Error::Slot(SlotError::BadResult {
                command: "SHOW",
                reason: format!("unusable wal_segment_size {size_text:?}"),
            })
        })?;
        let (lsn, timeline) = match config.start {
            PhysicalStart::At { lsn, timeline } => {
                if config.slot().is_none() && !lsn.is_segment_start(segment_size) {
                    return Err(ConfigError::InvalidValue {
                        what: "start LSN",
                        reason: "without a slot, streaming must start at a WAL segment boundary",
                    }
                    .into());
                }
                (lsn, timeline.unwrap_or(system.timeline))
            }
            PhysicalStart::Auto => {
                let mut start = (system.xlogpos, system.timeline);
                if let Some(slot) = config.slot()
                    && server.major >= 15
                {
                    let position = read_replication_slot(&mut transport, slot)
                        .await?
                        .ok_or_else(|| Error::SlotNotFound {
                            slot: slot.as_str().to_owned(),
                        })?;
                    if position.slot_type != SlotType::Physical {
                        return Err(Error::Slot(SlotError::BadResult {
                            command: "READ_REPLICATION_SLOT",
                            reason: format!("slot {slot} is not a physical slot"),
                        }));
                    }
                    if let Some(restart) = position.restart_lsn {
                        start = (restart, position.restart_tli.unwrap_or(system.timeline));
                    }
                }
                (start.0.segment_start(segment_size), start.1)
            }
        };
        let command = config.start_command(lsn, timeline);
        tracing::debug!(%command, "starting physical replication");
        let started = driver::start_streaming(&mut transport, &command, lsn).await?;
        let feedback = PhysicalFeedback::new();
        let options = PhysicalOptions {
            status_interval: config.status_interval,
            read_timeout: config.read_timeout,
            hot_standby_interval: config.hot_standby_interval,
        };
        let mut core = PhysicalCore::new(options, feedback.clone(), timeline, lsn, Instant::now());
        let ended_with = match started {
            Started::Streaming => None,
            Started::TimelineEnded {
                timeline: next,
                switchpoint,
            } => {
                // Started exactly at the end of a historic timeline: the driver goes straight
                // on to the next one (history, START_REPLICATION there).
                tracing::debug!(next, %switchpoint, "start position is the end of its timeline");
                core.handle_server_end();
                Some((next, switchpoint))
            }
        };
        let slot_label = config.slot().map_or("", |s| s.as_str()).to_owned();
        let metrics = PhysicalMetrics::new(&slot_label);
        metrics.on_start(timeline, config.reconnect);
        let restart = Restart {
            slot: config.slot().cloned(),
            segment_size,
            ended_with,
            metrics: metrics.clone(),
        };
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let span = tracing::info_span!("walstream_physical", slot = slot_label);
        let task =
            tokio::spawn(driver::run(transport, core, restart, tx, stop_rx).instrument(span));
        Ok(PhysicalStream {
            events: rx,
            stop: Some(stop_tx),
            task: DriverTask::new(task),
            feedback,
            metrics,
            info: PhysicalInfo {
                system,
                server,
                segment_size,
                start_lsn: lsn,
                timeline,
                backend: None,
            },
        })
    }

    /// The next event; `None` once the stream ended (after a stop, or after the error that
    /// ended it was returned).
    pub async fn next_event(&mut self) -> Option<Result<PhysicalEvent>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    /// The next event if one is ready now, without waiting (to batch work, e.g. one fsync for
    /// everything received so far); `None` when nothing is ready or the stream has ended
    /// (which [`next_event`](Self::next_event) then reports).
    pub fn try_next_event(&mut self) -> Option<Result<PhysicalEvent>> {
        if self.task.is_done() {
            return None;
        }
        self.events.try_recv().ok()
    }

    /// The handle to report written / flushed / applied positions and hot standby feedback.
    pub fn feedback(&self) -> &PhysicalFeedback {
        &self.feedback
    }

    /// What the stream was started with.
    pub fn info(&self) -> &PhysicalInfo {
        &self.info
    }

    /// Stops gracefully: a final status update with the latest reports, CopyDone, and the
    /// server's end of the stream. Events not yet taken are discarded.
    ///
    /// # Errors
    /// The error that ended the stream, if it failed before or while stopping.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut outcome = Ok(());
        while let Some(item) = self.next_event().await {
            if let Err(error) = item {
                outcome = Err(error);
            }
        }
        outcome
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<PhysicalEvent>>> {
        if self.task.is_done() {
            return Poll::Ready(None);
        }
        match self.events.poll_recv(cx) {
            Poll::Ready(None) => self.task.poll_end(cx, |()| None),
            other => other,
        }
    }
}

impl futures_core::Stream for PhysicalStream {
    type Item = Result<PhysicalEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}

const _: () = {
    const fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<PhysicalStream>();
    assert_send_static::<PhysicalEvent>();
};
