//! Starting a stream and the application-facing handle.

use std::time::{Duration, Instant};

use pg_walstream_codec::Lsn;
use pg_walstream_codec::pgoutput::ProtocolVersion;
use pg_walstream_codec::replication::XLogData;
use pg_walstream_slot::{
    CreateSlot, CreatedSlot, ServerVersion, SnapshotAction, SystemIdentity, identify_system,
    slot_health,
};
use pg_walstream_transport::conninfo::Replication;
use pg_walstream_transport::{Backend, Connection, Transport};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::config::{ConfigError, LogicalConfig};
use crate::core::ReadCoalescing;
use crate::core::{CoreOptions, LogicalCore};
use crate::driver::Outlet;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::feedback::Feedback;
use crate::handoff::{Budget, Handoff, Items};
use crate::metrics::StreamMetrics;
use crate::reconnect::{self, ConnectionRedial, Reconnector};
use crate::replay::ReplayFilter;
use crate::stop::StopHandle;
use crate::task::DriverTask;

mod receive;

/// A connection that ran IDENTIFY_SYSTEM, negotiated the protocol version and found (or
/// created) the slot, but has not started streaming yet: the moment to use an exported
/// snapshot ([`snapshot_name`](Self::snapshot_name)), which stays valid until
/// [`start`](Self::start).
#[derive(Debug)]
pub struct PreparedStream<T> {
    transport: T,
    config: LogicalConfig,
    system: SystemIdentity,
    server: ServerVersion,
    proto: ProtocolVersion,
    created: Option<CreatedSlot>,
    /// The slot's `confirmed_flush_lsn` (or a created slot's consistent point).
    confirmed: Lsn,
    /// Where streaming resumes: `confirmed`, or the configured start if later.
    floor: Lsn,
    backend: Option<Backend>,
    /// Whether `start` may reconnect (the library made the connection).
    reconnect: bool,
    /// The server's `wal_sender_timeout`, which bounds read coalescing.
    sender_timeout: Option<Duration>,
}

/// A running logical replication stream: a [`futures_core::Stream`] of [`Event`]s, also
/// readable with [`next_event`](Self::next_event), as undecoded frames with
/// [`next_frame`](Self::next_frame), or a read's worth at a time with
/// [`next_batch`](Self::next_batch).
///
/// The connection is driven by a background task (spawned on the current tokio runtime), so
/// status updates go out on time even while the application is busy. The task hands events
/// over in batches (one per read from the server: one channel operation and at most one
/// wake-up each); at most
/// [`channel_capacity`](crate::LogicalConfigBuilder::channel_capacity) events and
/// [`channel_bytes`](crate::LogicalConfigBuilder::channel_bytes) bytes of messages wait in
/// the channel — besides the batch being consumed — after which reading from the server
/// pauses.
///
/// # Stopping
///
/// [`stop`](Self::stop), or a [`StopHandle`] from [`stop_handle`](Self::stop_handle) (for
/// another task or a signal handler), stops gracefully: a final status update carrying the
/// latest report through [`Feedback`] goes out, then CopyDone, and the server's end of the
/// stream is awaited; events not taken yet are discarded (they were not reported, so a new
/// stream gets them again).
///
/// **Dropping** the stream without stopping it stops it the same way, in the background: the
/// driver task sends the final status update and CopyDone, waits for the server and ends —
/// provided the tokio runtime keeps running. When the runtime shuts down first (`main`
/// returning right after the drop), the connection closes without that update and the slot
/// keeps the previous one: a restart then replays what was reported since. Await
/// [`stop`](Self::stop) to be sure.
#[derive(Debug)]
pub struct LogicalStream {
    events: mpsc::UnboundedReceiver<Handoff>,
    /// The batch being consumed by [`next_event`](Self::next_event).
    current: Items,
    /// Its events and bytes, released from the budget once it is used up (so the budget
    /// bounds what the application has not taken yet).
    current_cost: (usize, usize),
    stop: StopHandle,
    stopping: bool,
    /// The first error met while winding down after a stop request.
    stop_error: Option<Error>,
    task: DriverTask<Option<Error>>,
    /// Drops replays of transactions reported after a reconnect's dial.
    replay: ReplayFilter,
    feedback: Feedback,
    budget: Budget,
    info: StreamInfo,
}

impl Drop for LogicalStream {
    fn drop(&mut self) {
        // Stop handles may outlive the stream: the driver must not wait for them.
        self.stop.signal_driver();
        self.stop.mark_ended();
    }
}

/// What a stream was started with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamInfo {
    /// IDENTIFY_SYSTEM's answer.
    pub system: SystemIdentity,
    /// The server's version.
    pub server: ServerVersion,
    /// The pgoutput protocol version in use.
    pub proto_version: ProtocolVersion,
    /// The LSN sent in START_REPLICATION.
    pub start_lsn: Lsn,
    /// The slot's `confirmed_flush_lsn` when the stream started — the flush position the
    /// server had last been told, in the same sense as
    /// [`Feedback::confirmed_flush_lsn`] (`0/0` if the slot never had one).
    pub confirmed_flush_lsn: Lsn,
    /// Where streaming resumed: the larger of `confirmed_flush_lsn` and the configured
    /// [`start_lsn`](crate::LogicalConfigBuilder::start_lsn); status updates never report less.
    pub resume_lsn: Lsn,
    /// The slot, if this stream created it.
    pub created_slot: Option<CreatedSlot>,
    /// The transport backend, when the stream made the connection itself.
    pub backend: Option<Backend>,
    /// The read coalescing in force: the configured one or the default for the socket
    /// ([`ReadCoalescing::default_for`]), cut to the server's `wal_sender_timeout`.
    pub read_coalescing: ReadCoalescing,
}

/// An undecoded XLogData frame with its acknowledgement position (see
/// [`Event::ack_lsn`]).
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// The frame: positions, send time and the pgoutput message bytes.
    pub xlog: XLogData,
    /// What to report through [`Feedback`] once the frame is processed, if it ends a unit.
    pub ack_lsn: Option<Lsn>,
}

impl LogicalStream {
    /// Connects with the configured connection string and backend, then
    /// [`prepare`](PreparedStream::prepare)s and [`start`](PreparedStream::start)s.
    ///
    /// # Errors
    /// [`ConfigError::NoConnection`] without a configured connection; connection,
    /// configuration, slot and server errors.
    ///
    /// Call it from within a tokio runtime (the stream runs on a task of it): elsewhere it
    /// returns [`Error::NoRuntime`] rather than panicking.
    ///
    /// ```
    /// use pg_walstream_stream::{Error, LogicalConfig, LogicalStream};
    /// let config = LogicalConfig::builder().conninfo("host=localhost user=repl").slot("s").publication("p").build()?;
    /// // Polled by an executor that is not tokio's:
    /// let outcome = futures::executor::block_on(LogicalStream::connect(config));
    /// assert!(matches!(outcome, Err(Error::NoRuntime)));
    /// # Ok::<(), pg_walstream_stream::ConfigError>(())
    /// ```
    pub async fn connect(config: LogicalConfig) -> Result<LogicalStream> {
        PreparedStream::connect(config).await?.start().await
    }

    /// A handle that stops this stream from another task or a signal handler; see
    /// [`StopHandle`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The next event; `None` once the stream ended (after a stop, a stop LSN, or after the
    /// error that ended it was returned).
    pub fn next_event(&mut self) -> impl Future<Output = Option<Result<Event>>> + Send + '_ {
        // A plain poll function, not an `async fn` around one: the event is moved once less.
        std::future::poll_fn(|cx| self.poll_item(cx))
    }

    /// The next frame as the server sent it, with its acknowledgement position — for
    /// capturing or forwarding pgoutput bytes. It is the same frame [`next_event`](Self::next_event)
    /// would have given, and was decoded once like it: the stream must validate every frame
    /// (a frame that does not decode ends the stream, it is never skipped) and track
    /// transactions and relations to acknowledge correctly, so "raw" means only that nothing
    /// more is built for the application.
    ///
    /// ```no_run
    /// # async fn run(mut stream: pg_walstream_stream::LogicalStream) -> Result<(), pg_walstream_stream::Error> {
    /// while let Some(frame) = stream.next_frame().await {
    ///     let frame = frame?;
    ///     // ... write frame.xlog.data somewhere durable, then:
    ///     if let Some(lsn) = frame.ack_lsn {
    ///         stream.feedback().processed(lsn);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_frame(&mut self) -> Option<Result<RawFrame>> {
        let event = self.next_event().await?;
        Some(event.map(|e| {
            let ack_lsn = e.ack_lsn();
            RawFrame {
                xlog: e.into_xlog_data(),
                ack_lsn,
            }
        }))
    }

    /// The old name of [`next_frame`](Self::next_frame), which says what it does: the frame
    /// is validated (decoded) by the stream before it is returned undecoded.
    #[deprecated(note = "renamed `next_frame`: frames are validated by the stream, not skipped")]
    pub async fn next_raw(&mut self) -> Option<Result<RawFrame>> {
        self.next_frame().await
    }

    /// The handle to report processed positions with (cheap to clone into other tasks).
    pub fn feedback(&self) -> &Feedback {
        &self.feedback
    }

    /// What the stream was started with.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// How many transactions this stream dropped, whole, as replays of transactions the
    /// application had already reported processed (the delivery contract after a
    /// reconnect: see [`EventKind::Reconnected`](crate::EventKind::Reconnected)). Also
    /// counted in the `walstream_replays_dropped_total` metric.
    pub fn replays_dropped(&self) -> u64 {
        self.replay.dropped()
    }

    /// Stops gracefully: no more events are delivered, a final status update carrying the
    /// latest report is sent, then CopyDone, and the server's end of the stream is awaited.
    /// Events not yet taken are discarded (they were not reported as processed). After a
    /// [`StopHandle`] ended the stream this returns at once.
    ///
    /// # Errors
    /// The error that ended the stream, if it failed before or while stopping.
    pub async fn stop(mut self) -> Result<()> {
        self.stop.stop();
        let mut outcome = Ok(());
        while let Some(item) = self.next_event().await {
            if let Err(error) = item {
                outcome = Err(error);
            }
        }
        outcome
    }
}

impl PreparedStream<Connection> {
    /// Connects with the configured connection string (`replication=database` implied) and
    /// backend, then [`prepare`](Self::prepare)s.
    ///
    /// # Errors
    /// [`ConfigError::NoConnection`] without a configured connection; connection errors; as
    /// [`prepare`](Self::prepare).
    ///
    /// A stream started from it reconnects after transient failures according to the
    /// configuration's [`retry`](crate::LogicalConfigBuilder::retry) policy.
    pub async fn connect(config: LogicalConfig) -> Result<Self> {
        let mut prepared = Self::connect_without_reconnect(config).await?;
        prepared.reconnect = true;
        Ok(prepared)
    }

    /// As [`connect`](Self::connect), for one session (the reconnect path itself).
    pub(crate) async fn connect_without_reconnect(config: LogicalConfig) -> Result<Self> {
        require_runtime()?;
        let Some((mut connection_config, backend)) = config.connection.clone() else {
            return Err(ConfigError::NoConnection.into());
        };
        connection_config.replication = Replication::Database;
        let connection = Connection::connect_with(&connection_config, backend).await?;
        let mut prepared = Self::prepare(connection, config).await?;
        prepared.backend = Some(prepared.transport.backend());
        Ok(prepared)
    }

    /// The connection, for a reconnect that starts replication itself.
    pub(crate) fn into_transport(self) -> Connection {
        self.transport
    }

    /// Sends START_REPLICATION and spawns the task that drives the stream; after a transient
    /// failure the task reconnects with the configured
    /// [`retry`](crate::LogicalConfigBuilder::retry) policy and announces it with an
    /// [`EventKind::Reconnected`](crate::EventKind::Reconnected) event.
    ///
    /// # Errors
    /// Server errors (unknown publication, slot in use, ...) and connection errors.
    pub async fn start(self) -> Result<LogicalStream> {
        require_runtime()?;
        let reconnect = self.reconnect;
        let retry = self.config.retry.clone();
        let config = self.config.clone();
        let system = self.system.clone();
        let (transport, core, limits, info) = self.begin().await?;
        let reconnector = reconnect.then(|| {
            let feedback = core.feedback().clone();
            let redial = ConnectionRedial::new(config, system, core.options(), feedback.clone());
            Reconnector::new(Box::new(redial), retry, feedback, info.proto_version)
        });
        Ok(LogicalStream::spawn(
            transport,
            core,
            &limits,
            info,
            reconnector,
        ))
    }
}

impl<T: Transport + 'static> PreparedStream<T> {
    /// On an open replication connection (`replication=database`): checks the configuration
    /// against the server version, runs IDENTIFY_SYSTEM, creates the slot if configured and
    /// missing, or reads the slot's confirmed position.
    ///
    /// # Errors
    /// [`Error::Config`] for options the server cannot do (nothing is sent before this check
    /// but IDENTIFY_SYSTEM); [`Error::SlotNotFound`] when the slot does not exist and may not
    /// be created; slot command and connection errors.
    pub async fn prepare(mut transport: T, config: LogicalConfig) -> Result<Self> {
        let server = ServerVersion::of(&transport)?;
        let proto = config.negotiate(server)?;
        let system = identify_system(&mut transport).await?;
        let sender_timeout = sender_timeout(&mut transport).await?;
        let mut created = None;
        if let Some(options) = config.create_slot {
            let mut create =
                CreateSlot::logical(config.slot().clone()).snapshot(if options.export_snapshot {
                    SnapshotAction::Export
                } else {
                    SnapshotAction::Nothing
                });
            if options.temporary {
                create = create.temporary();
            }
            if config.two_phase() {
                create = create.two_phase();
            }
            if options.failover {
                create = create.failover();
            }
            created = create.execute_if_not_exists(&mut transport).await?;
        }
        let confirmed = match &created {
            Some(slot) => slot.consistent_point.unwrap_or(Lsn::INVALID),
            None => slot_health(&mut transport, config.slot())
                .await?
                .ok_or_else(|| Error::SlotNotFound {
                    slot: config.slot().as_str().to_owned(),
                })?
                .confirmed_flush_lsn
                .unwrap_or(Lsn::INVALID),
        };
        Ok(PreparedStream {
            transport,
            confirmed,
            floor: confirmed.max(config.start_lsn),
            config,
            system,
            server,
            proto,
            created,
            backend: None,
            reconnect: false,
            sender_timeout,
        })
    }

    /// The exported snapshot's name, valid until [`start`](Self::start); `None` unless this
    /// stream created the slot with [`export_snapshot`](crate::CreateSlotOptions::export_snapshot).
    pub fn snapshot_name(&self) -> Option<&str> {
        self.created.as_ref()?.snapshot_name.as_deref()
    }

    /// The slot, if it was created here.
    pub fn created_slot(&self) -> Option<&CreatedSlot> {
        self.created.as_ref()
    }

    /// IDENTIFY_SYSTEM's answer.
    pub fn system(&self) -> &SystemIdentity {
        &self.system
    }

    /// The negotiated pgoutput protocol version.
    pub fn proto_version(&self) -> ProtocolVersion {
        self.proto
    }

    /// The slot's `confirmed_flush_lsn` as the server reported it (a created slot's
    /// consistent point): the flush position the server was last told, in the same sense as
    /// [`Feedback::confirmed_flush_lsn`] (`0/0` if none).
    pub fn confirmed_flush_lsn(&self) -> Lsn {
        self.confirmed
    }

    /// Where streaming will resume: [`confirmed_flush_lsn`](Self::confirmed_flush_lsn), or
    /// the configured [`start_lsn`](crate::LogicalConfigBuilder::start_lsn) if later. It is
    /// also the lowest flush position the stream will ever report.
    pub fn resume_lsn(&self) -> Lsn {
        self.floor
    }

    /// Sends START_REPLICATION and spawns the task that drives the stream. On a transport the
    /// application supplied the first failure ends the stream (there is no way to dial it
    /// again); a connection made by [`PreparedStream::connect`] has its own `start` that
    /// reconnects.
    ///
    /// # Errors
    /// Server errors (unknown publication, slot in use, ...) and connection errors;
    /// [`Error::NoRuntime`] outside a tokio runtime.
    pub async fn start_once(self) -> Result<LogicalStream> {
        require_runtime()?;
        let (transport, core, limits, info) = self.begin().await?;
        Ok(LogicalStream::spawn(transport, core, &limits, info, None))
    }

    /// START_REPLICATION and the core for it.
    async fn begin(mut self) -> Result<(T, LogicalCore, ChannelLimits, StreamInfo)> {
        let start_lsn = self.config.start_lsn;
        let command = self.config.start_replication_command(self.proto, start_lsn);
        tracing::debug!(%command, confirmed_flush = %self.floor, "starting replication");
        self.transport.copy_both(&command).await?;
        let feedback = Feedback::new();
        feedback.start_confirmed_at(self.confirmed);
        let mut options = CoreOptions::new(self.proto);
        options.status_interval = self.config.status_interval;
        options.read_timeout = self.config.read_timeout;
        options.stop_at = self.config.stop_at;
        options.floor = self.floor;
        options.coalesce = self
            .config
            .read_coalescing
            .unwrap_or_else(|| ReadCoalescing::default_for(self.transport.is_unix_socket()))
            .within_sender_timeout(self.sender_timeout);
        let read_coalescing = options.coalesce;
        let core = LogicalCore::new(options, feedback.clone(), Instant::now());
        let info = StreamInfo {
            system: self.system,
            server: self.server,
            proto_version: self.proto,
            start_lsn,
            confirmed_flush_lsn: self.confirmed,
            resume_lsn: self.floor,
            created_slot: self.created,
            backend: self.backend,
            read_coalescing,
        };
        let limits = ChannelLimits {
            events: self.config.channel_capacity,
            bytes: self.config.channel_bytes,
            slot: self.config.slot().as_str().to_owned(),
        };
        Ok((self.transport, core, limits, info))
    }
}

/// The server's `wal_sender_timeout` (`SHOW` works on replication connections since
/// PostgreSQL 10); `None` if the answer is not a duration.
async fn sender_timeout<T: Transport>(transport: &mut T) -> Result<Option<Duration>> {
    let text = pg_walstream_slot::show(transport, "wal_sender_timeout").await?;
    Ok(crate::core::parse_setting_duration(&text))
}

/// [`Error::NoRuntime`] unless called within a tokio runtime (whose task the stream runs on).
fn require_runtime() -> Result<()> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| Error::NoRuntime)
}

/// How much the channel between the driver task and the application holds.
#[derive(Debug, Clone)]
pub(crate) struct ChannelLimits {
    /// Events.
    pub(crate) events: usize,
    /// Bytes of pgoutput messages (see [`Budget`]).
    pub(crate) bytes: usize,
    /// The slot (for metrics and tracing).
    pub(crate) slot: String,
}

impl LogicalStream {
    /// Spawns the driver task for a started stream.
    pub(crate) fn spawn<T: Transport + 'static>(
        transport: T,
        core: LogicalCore,
        limits: &ChannelLimits,
        info: StreamInfo,
        reconnector: Option<Reconnector<T>>,
    ) -> LogicalStream {
        let feedback = core.feedback().clone();
        // Unbounded in batches: the budget bounds it in events and bytes.
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Budget::new(limits.events, limits.bytes);
        let slot = limits.slot.as_str();
        let (stop_tx, stop_rx) = oneshot::channel();
        let metrics = StreamMetrics::new(slot);
        let span = tracing::info_span!("walstream", slot, proto = info.proto_version.as_u32());
        let outlet = Outlet::new(tx, budget.clone(), stop_rx, metrics);
        let task =
            tokio::spawn(reconnect::run(transport, core, outlet, reconnector).instrument(span));
        LogicalStream {
            events: rx,
            current: Items::new(),
            current_cost: (0, 0),
            stop: StopHandle::new(stop_tx),
            stopping: false,
            stop_error: None,
            task: DriverTask::new(task),
            replay: ReplayFilter::new(crate::metrics::replays_dropped(slot)),
            feedback,
            budget,
            info,
        }
    }
}

const _: () = {
    const fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<LogicalStream>();
    assert_send_static::<Event>();
};
