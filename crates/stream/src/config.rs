//! Configuration of a logical replication stream, validated before anything is sent.

use std::fmt::Write as _;
use std::time::Duration;

use pg_walstream_codec::Lsn;
use pg_walstream_codec::pgoutput::ProtocolVersion;
use pg_walstream_slot::{ServerVersion, SlotName};
use pg_walstream_transport::Backend;
use pg_walstream_transport::conninfo::{Config, ConnInfoError};

use crate::core::{ReadCoalescing, ReadTimeout};
use crate::retry::RetryPolicy;

pub(crate) mod checks;
mod error;

pub use checks::MAX_INTERVAL;
pub use error::ConfigError;

/// `streaming` option of pgoutput: how transactions larger than
/// `logical_decoding_work_mem` are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Streaming {
    /// Only at commit (the default).
    #[default]
    Off,
    /// In blocks while still running (protocol 2+, PostgreSQL 14+).
    On,
    /// In blocks, for parallel apply; Stream Abort carries the abort LSN and time (protocol 4,
    /// PostgreSQL 16+).
    Parallel,
}

/// `origin` option of pgoutput (PostgreSQL 16+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFilter {
    /// Only changes without a replication origin.
    None,
    /// All changes regardless of origin.
    Any,
}

/// Create the slot when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateSlotOptions {
    /// A temporary slot, dropped when the connection ends.
    pub temporary: bool,
    /// Export the slot's initial snapshot; its name is available from
    /// [`PreparedStream::snapshot_name`](crate::PreparedStream::snapshot_name) until the stream
    /// is started.
    pub export_snapshot: bool,
    /// A failover slot, synchronized to standbys (`FAILOVER`, PostgreSQL 17+; on an older
    /// server creating it fails with a [`SlotError::Unsupported`](pg_walstream_slot::SlotError)
    /// before anything is sent).
    ///
    /// ```
    /// use pg_walstream_stream::CreateSlotOptions;
    /// let options = CreateSlotOptions { failover: true, ..CreateSlotOptions::default() };
    /// assert!(options.failover && !options.temporary);
    /// ```
    pub failover: bool,
}

/// Everything needed to start a logical replication stream. Build with
/// [`LogicalConfig::builder`].
///
/// ```
/// use std::time::Duration;
/// use pg_walstream_stream::{LogicalConfig, Streaming};
///
/// let config = LogicalConfig::builder()
///     .conninfo("host=db user=repl dbname=app")
///     .slot("orders_cdc")
///     .publication("orders")
///     .streaming(Streaming::On)
///     .status_interval(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(config.slot().as_str(), "orders_cdc");
/// # Ok::<(), pg_walstream_stream::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogicalConfig {
    pub(crate) connection: Option<(Config, Backend)>,
    slot: SlotName,
    publications: Vec<String>,
    proto_version: Option<ProtocolVersion>,
    streaming: Streaming,
    binary: bool,
    messages: bool,
    two_phase: bool,
    origin: Option<OriginFilter>,
    pub(crate) start_lsn: Lsn,
    pub(crate) stop_at: Option<Lsn>,
    pub(crate) status_interval: Duration,
    pub(crate) read_timeout: ReadTimeout,
    pub(crate) create_slot: Option<CreateSlotOptions>,
    pub(crate) channel_capacity: usize,
    pub(crate) channel_bytes: usize,
    /// `None`: the default for the connection's socket ([`ReadCoalescing::default_for`]).
    pub(crate) read_coalescing: Option<ReadCoalescing>,
    pub(crate) retry: RetryPolicy,
}

/// Builder of a [`LogicalConfig`]; see there.
#[derive(Debug)]
#[must_use]
pub struct LogicalConfigBuilder {
    conninfo: Option<Result<Config, ConnInfoError>>,
    backend: Backend,
    slot: Option<String>,
    publications: Vec<String>,
    proto_version: Option<ProtocolVersion>,
    streaming: Streaming,
    binary: bool,
    messages: bool,
    two_phase: bool,
    origin: Option<OriginFilter>,
    start_lsn: Lsn,
    stop_at: Option<Lsn>,
    status_interval: Duration,
    read_timeout: ReadTimeout,
    create_slot: Option<CreateSlotOptions>,
    channel_capacity: usize,
    channel_bytes: usize,
    read_coalescing: Option<ReadCoalescing>,
    recv_buffer_size: Option<usize>,
    max_read_size: Option<usize>,
    retry: RetryPolicy,
}

impl LogicalConfig {
    /// A builder with defaults: protocol version chosen from the server, streaming off, text
    /// format, no messages, no two-phase, all origins, start at the slot's confirmed position,
    /// 10 s status interval, automatic read deadline, at most 1024 buffered events and
    /// [`DEFAULT_CHANNEL_BYTES`] of buffered message bytes.
    pub fn builder() -> LogicalConfigBuilder {
        LogicalConfigBuilder {
            conninfo: None,
            backend: Backend::default(),
            slot: None,
            publications: Vec::new(),
            proto_version: None,
            streaming: Streaming::Off,
            binary: false,
            messages: false,
            two_phase: false,
            origin: None,
            start_lsn: Lsn::INVALID,
            stop_at: None,
            status_interval: Duration::from_secs(10),
            read_timeout: ReadTimeout::Auto,
            create_slot: None,
            channel_capacity: 1024,
            channel_bytes: DEFAULT_CHANNEL_BYTES,
            read_coalescing: None,
            recv_buffer_size: None,
            max_read_size: None,
            retry: RetryPolicy::default(),
        }
    }

    /// The slot.
    pub fn slot(&self) -> &SlotName {
        &self.slot
    }

    /// The publications.
    pub fn publications(&self) -> &[String] {
        &self.publications
    }

    /// The stop LSN, if any.
    pub fn stop_at(&self) -> Option<Lsn> {
        self.stop_at
    }

    /// Checks the version-dependent options against the server and returns the protocol
    /// version to use: the requested one, or the highest the server supports (1 before 14,
    /// 2 on 14, 3 on 15, 4 on 16+).
    ///
    /// # Errors
    /// [`ConfigError::ProtocolTooNew`], [`ConfigError::ProtocolTooOld`] and
    /// [`ConfigError::Unsupported`] for parallel streaming before 16, two-phase before 15,
    /// origin before 16, streaming, binary or messages before 14.
    pub fn negotiate(&self, server: ServerVersion) -> Result<ProtocolVersion, ConfigError> {
        let max = max_protocol(server);
        let proto = match self.proto_version {
            Some(p) if p > max => {
                return Err(ConfigError::ProtocolTooNew {
                    requested: p.as_u32(),
                    needs: 12 + p.as_u32(),
                    server,
                });
            }
            Some(p) => p,
            None => max,
        };
        let need_server = |feature, needs: u32| {
            if server.major >= needs {
                Ok(())
            } else {
                Err(ConfigError::Unsupported {
                    feature,
                    needs,
                    server,
                })
            }
        };
        let need_proto = |feature, needs: ProtocolVersion| {
            if proto >= needs {
                Ok(())
            } else {
                Err(ConfigError::ProtocolTooOld {
                    feature,
                    needs: needs.as_u32(),
                    requested: proto.as_u32(),
                })
            }
        };
        match self.streaming {
            Streaming::Off => {}
            Streaming::On => {
                need_server("streaming", 14)?;
                need_proto("streaming", ProtocolVersion::V2)?;
            }
            Streaming::Parallel => {
                need_server("parallel streaming", 16)?;
                need_proto("parallel streaming", ProtocolVersion::V4)?;
            }
        }
        if self.two_phase {
            need_server("two-phase decoding", 15)?;
            need_proto("two-phase decoding", ProtocolVersion::V3)?;
        }
        if self.origin.is_some() {
            need_server("the origin option", 16)?;
        }
        if self.binary {
            need_server("binary mode", 14)?;
        }
        if self.messages {
            need_server("logical decoding messages", 14)?;
        }
        Ok(proto)
    }

    /// The `START_REPLICATION` command for protocol version `proto`, starting at `start`.
    /// Slot and publication names are quoted, so no name can change the command.
    pub fn start_replication_command(&self, proto: ProtocolVersion, start: Lsn) -> String {
        let mut names = String::new();
        for (i, name) in self.publications.iter().enumerate() {
            if i > 0 {
                names.push(',');
            }
            names.push('"');
            names.push_str(&name.replace('"', "\"\""));
            names.push('"');
        }
        let mut sql = format!(
            "START_REPLICATION SLOT \"{}\" LOGICAL {start} (proto_version '{}', publication_names {}",
            self.slot.as_str(),
            proto.as_u32(),
            quote_option_literal(&names),
        );
        let mut option = |name: &str, value: &str| {
            let _ = write!(sql, ", {name} '{value}'");
        };
        match self.streaming {
            Streaming::Off => {}
            Streaming::On => option("streaming", "on"),
            Streaming::Parallel => option("streaming", "parallel"),
        }
        if self.binary {
            option("binary", "true");
        }
        if self.messages {
            option("messages", "true");
        }
        if self.two_phase {
            option("two_phase", "true");
        }
        match self.origin {
            None => {}
            Some(OriginFilter::None) => option("origin", "none"),
            Some(OriginFilter::Any) => option("origin", "any"),
        }
        sql.push(')');
        sql
    }

    /// Whether two-phase decoding was asked for (slots created by the stream get `TWO_PHASE`).
    pub fn two_phase(&self) -> bool {
        self.two_phase
    }

    /// The reconnect policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Uses exactly `version` from now on (a reconnect keeps the first session's version).
    pub(crate) fn pin_protocol(&mut self, version: ProtocolVersion) {
        self.proto_version = Some(version);
    }
}

/// The default byte budget of the event channel: 1 MiB of pgoutput messages. Rows over
/// 1 KiB reach it before the default 1024-event bound; 1024 rows of 2 KiB would keep 2 MiB
/// waiting, and the read buffers under them. At 1 MiB the consumer's peak RSS stayed below
/// upstream's on such rows with no change in throughput (docs/BENCHMARKS.md).
pub const DEFAULT_CHANNEL_BYTES: usize = 1 << 20;

/// The default most bytes a stream's native connection reads from its socket at a time:
/// 16 KiB, what libpq reads. With reads of up to 64 KiB the walsender spent up to twice the
/// CPU per event in every binary run measured on Linux loopback; with 16 KiB, in a few
/// (docs/BENCHMARKS.md, "Read size and the walsender's CPU").
pub const DEFAULT_MAX_READ_SIZE: usize = 16 * 1024;

/// The highest pgoutput protocol version `server` supports.
pub fn max_protocol(server: ServerVersion) -> ProtocolVersion {
    match server.major {
        ..=13 => ProtocolVersion::V1,
        14 => ProtocolVersion::V2,
        15 => ProtocolVersion::V3,
        _ => ProtocolVersion::V4,
    }
}

/// A string literal for the replication command grammar, which knows only `'...'` with `''`
/// (no `E'...'`); backslashes are literal there.
fn quote_option_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl LogicalConfigBuilder {
    /// Connection string (libpq `key=value` or URI); `replication=database` is implied.
    pub fn conninfo(mut self, conninfo: &str) -> Self {
        self.conninfo = Some(conninfo.parse::<Config>());
        self
    }

    /// An already parsed connection configuration; `replication=database` is implied.
    pub fn connection_config(mut self, config: Config) -> Self {
        self.conninfo = Some(Ok(config));
        self
    }

    /// Which transport backend to connect with.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The replication slot (required).
    pub fn slot(mut self, name: &str) -> Self {
        self.slot = Some(name.to_owned());
        self
    }

    /// Adds a publication (at least one is required).
    pub fn publication(mut self, name: &str) -> Self {
        self.publications.push(name.to_owned());
        self
    }

    /// pgoutput protocol version; default: the highest the server supports.
    pub fn proto_version(mut self, version: ProtocolVersion) -> Self {
        self.proto_version = Some(version);
        self
    }

    /// Streaming of large in-progress transactions.
    pub fn streaming(mut self, streaming: Streaming) -> Self {
        self.streaming = streaming;
        self
    }

    /// Column values in binary format.
    pub fn binary(mut self, yes: bool) -> Self {
        self.binary = yes;
        self
    }

    /// Deliver `pg_logical_emit_message` messages.
    pub fn messages(mut self, yes: bool) -> Self {
        self.messages = yes;
        self
    }

    /// Decode prepared transactions at PREPARE TRANSACTION.
    pub fn two_phase(mut self, yes: bool) -> Self {
        self.two_phase = yes;
        self
    }

    /// Filter changes by replication origin.
    pub fn origin(mut self, origin: OriginFilter) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Start position; `0/0` (default) starts at the slot's confirmed position.
    pub fn start_lsn(mut self, lsn: Lsn) -> Self {
        self.start_lsn = lsn;
        self
    }

    /// Stop after the transaction that reaches `lsn` (see [`LogicalCore`](crate::LogicalCore)).
    pub fn stop_at(mut self, lsn: Lsn) -> Self {
        self.stop_at = Some(lsn);
        self
    }

    /// How often status updates are sent; keep it well below the server's
    /// `wal_sender_timeout` (default 10 s).
    pub fn status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// Read deadline (default: derived from the keepalive cadence).
    pub fn read_timeout(mut self, timeout: ReadTimeout) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Create the slot if it does not exist.
    pub fn create_slot_if_missing(mut self, options: CreateSlotOptions) -> Self {
        self.create_slot = Some(options);
        self
    }

    /// How many decoded events may wait for the application before reading from the server
    /// pauses (backpressure). Default 1024.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity;
        self
    }

    /// How the stream reconnects after a transient failure (connection lost, walsender
    /// terminated, server restarting, read timeout, slot still held by the previous
    /// walsender): default [`RetryPolicy::default`]; [`RetryPolicy::never`] ends the stream at
    /// the first failure instead. Permanent failures (authentication, a missing or
    /// invalidated slot, another server) always end it. Only a stream whose connection the
    /// library made ([`LogicalStream::connect`](crate::LogicalStream::connect)) can reconnect.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How many bytes of pgoutput messages may wait for the application before reading from
    /// the server pauses, whatever the number of events. Default [`DEFAULT_CHANNEL_BYTES`].
    ///
    /// The trade-off: events are zero-copy, so a waiting event keeps alive the read buffer it
    /// was parsed from (the native backend reads into 64 KiB allocations). This budget
    /// counts message bytes, not those buffers: while events of many different reads wait,
    /// the memory held can exceed it by up to one buffer per waiting event. Lower
    /// [`channel_capacity`](Self::channel_capacity) too when that matters, or copy what you
    /// keep ([`Change::to_owned_tuples`](crate::Change::to_owned_tuples) still shares the
    /// buffer).
    pub fn channel_bytes(mut self, bytes: usize) -> Self {
        self.channel_bytes = bytes;
        self
    }

    /// How long the stream may wait after a small read from the server before reading again,
    /// so that the next read carries many messages (fewer wake-ups and syscalls here and in
    /// the walsender): default [`ReadCoalescing::DEFAULT_BUDGET`] (1 ms) over TCP and
    /// [`ReadCoalescing::DEFAULT_UNIX_BUDGET`] (400 µs) over a Unix-domain socket
    /// ([`ReadCoalescing::default_for`] says why); at most
    /// [`ReadCoalescing::MAX_BUDGET`]; zero turns it off (every read follows the previous one
    /// at once). A budget set here applies to either kind of socket. It adds at most `budget`
    /// to a message's delivery latency, and never delays a status update, a liveness ping or
    /// the read deadline past when they are due; a reply the server asked for goes out as
    /// soon as its keepalive is read. Reads of at least [`ReadCoalescing::DEFAULT_BELOW`]
    /// bytes are never followed by a wait.
    pub fn read_coalescing(mut self, budget: Duration) -> Self {
        self.read_coalescing = Some(ReadCoalescing::new(budget));
        self
    }

    /// The connection's socket receive buffer (`SO_RCVBUF`) in bytes, on either backend
    /// (see [`Config::recv_buffer_size`]); default: the operating system's, which Linux
    /// tunes automatically (setting it turns that off). Applies to connections the stream
    /// makes ([`LogicalStream::connect`](crate::LogicalStream::connect)) and its reconnects.
    /// A small buffer can stall a TCP stream: over loopback, 16 KiB made a stream of 2 KB
    /// rows take 212 s instead of 0.5 s (docs/BENCHMARKS.md); it also caps throughput at the
    /// buffer over the round-trip time.
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.recv_buffer_size = Some(bytes);
        self
    }

    /// The most bytes the native backend reads from the socket at a time (see
    /// [`Config::max_read_size`]); default [`DEFAULT_MAX_READ_SIZE`], also for a connection
    /// configuration that does not set one. libpq reads into its own buffer and ignores it.
    pub fn max_read_size(mut self, bytes: usize) -> Self {
        self.max_read_size = Some(bytes);
        self
    }

    /// Validates what can be checked without a server.
    ///
    /// # Errors
    /// [`ConfigError`] for a missing or invalid slot name, no or invalid publication names, a
    /// bad connection string, a zero status interval, read deadline or channel capacity, and
    /// a backend this build does not have ([`ConfigError::BackendUnavailable`]).
    pub fn build(self) -> Result<LogicalConfig, ConfigError> {
        if !self.backend.is_available() {
            return Err(ConfigError::BackendUnavailable {
                backend: self.backend,
            });
        }
        let connection = match self.conninfo {
            None => None,
            Some(Err(error)) => return Err(ConfigError::ConnInfo(error)),
            Some(Ok(mut config)) => {
                if self.recv_buffer_size.is_some() {
                    config.recv_buffer_size = self.recv_buffer_size;
                }
                config.max_read_size = self
                    .max_read_size
                    .or(config.max_read_size)
                    .or(Some(DEFAULT_MAX_READ_SIZE));
                Some((config, self.backend))
            }
        };
        let slot = SlotName::new(self.slot.unwrap_or_default()).map_err(ConfigError::SlotName)?;
        if self.publications.is_empty() {
            return Err(ConfigError::NoPublication);
        }
        for name in &self.publications {
            let reason = if name.is_empty() {
                Some("it is empty")
            } else if name.contains('\0') {
                Some("it contains a NUL byte")
            } else if name.len() > pg_walstream_slot::MAX_NAME_LEN {
                Some("it is longer than 63 bytes")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::PublicationName {
                    name: name.clone(),
                    reason,
                });
            }
        }
        checks::interval("status interval", self.status_interval)?;
        checks::read_timeout(self.read_timeout)?;
        checks::at_least_one("channel capacity", self.channel_capacity)?;
        checks::at_least_one("channel bytes", self.channel_bytes)?;
        checks::at_least_one("receive buffer size", self.recv_buffer_size.unwrap_or(1))?;
        checks::at_least_one("read size", self.max_read_size.unwrap_or(1))?;
        if self
            .read_coalescing
            .is_some_and(|coalescing| coalescing.budget > ReadCoalescing::MAX_BUDGET)
        {
            return Err(ConfigError::InvalidValue {
                what: "read coalescing budget",
                reason: "must be at most 1 second",
            });
        }
        Ok(LogicalConfig {
            connection,
            slot,
            publications: self.publications,
            proto_version: self.proto_version,
            streaming: self.streaming,
            binary: self.binary,
            messages: self.messages,
            two_phase: self.two_phase,
            origin: self.origin,
            start_lsn: self.start_lsn,
            stop_at: self.stop_at,
            status_interval: self.status_interval,
            read_timeout: self.read_timeout,
            create_slot: self.create_slot,
            channel_capacity: self.channel_capacity,
            channel_bytes: self.channel_bytes,
            read_coalescing: self.read_coalescing,
            retry: self.retry,
        })
    }
}

#[cfg(test)]
mod tests;
