//! Configuration of a physical replication stream.

use std::time::Duration;

use pg_walstream_codec::{Lsn, WalSegmentSize};
use pg_walstream_slot::SlotName;
use pg_walstream_transport::Backend;
use pg_walstream_transport::conninfo::{Config, ConnInfoError};

use crate::ReadTimeout;
use crate::config::{ConfigError, checks};

/// Where a physical stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhysicalStart {
    /// As `pg_receivewal` without files: the slot's `restart_lsn` (`READ_REPLICATION_SLOT`,
    /// PostgreSQL 15+) when there is one, else the server's current WAL position; rounded
    /// down to a segment start, on the matching timeline.
    #[default]
    Auto,
    /// At `lsn` on `timeline` (the server's current timeline when `None`). Without a slot,
    /// `lsn` must be at a segment boundary.
    At {
        /// The start position.
        lsn: Lsn,
        /// The timeline to stream.
        timeline: Option<u32>,
    },
}

/// Everything needed to start a physical replication stream; build with
/// [`PhysicalConfig::builder`].
///
/// ```
/// use pg_walstream_stream::{PhysicalConfig, PhysicalStart};
/// use pg_walstream_codec::Lsn;
///
/// let config = PhysicalConfig::builder()
///     .conninfo("host=db user=repl")
///     .slot("archiver")
///     .start(PhysicalStart::At { lsn: Lsn(0x300_0000), timeline: Some(1) })
///     .build()?;
/// assert_eq!(config.slot().unwrap().as_str(), "archiver");
/// # Ok::<(), pg_walstream_stream::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PhysicalConfig {
    pub(crate) connection: Option<(Config, Backend)>,
    slot: Option<SlotName>,
    pub(crate) start: PhysicalStart,
    pub(crate) status_interval: Duration,
    pub(crate) read_timeout: ReadTimeout,
    pub(crate) hot_standby_interval: Duration,
    pub(crate) channel_capacity: usize,
    pub(crate) reconnect: bool,
}

/// Builder of a [`PhysicalConfig`].
#[derive(Debug)]
#[must_use]
pub struct PhysicalConfigBuilder {
    conninfo: Option<Result<Config, ConnInfoError>>,
    backend: Backend,
    slot: Option<String>,
    start: PhysicalStart,
    status_interval: Duration,
    read_timeout: ReadTimeout,
    hot_standby_interval: Duration,
    channel_capacity: usize,
    reconnect: bool,
}

impl PhysicalConfig {
    /// A builder with defaults: no slot, [`PhysicalStart::Auto`], 10 s status and hot standby
    /// intervals, automatic read deadline, 256 buffered events.
    pub fn builder() -> PhysicalConfigBuilder {
        PhysicalConfigBuilder {
            conninfo: None,
            backend: Backend::default(),
            slot: None,
            start: PhysicalStart::Auto,
            status_interval: Duration::from_secs(10),
            read_timeout: ReadTimeout::Auto,
            hot_standby_interval: Duration::from_secs(10),
            channel_capacity: 256,
            reconnect: false,
        }
    }

    /// The slot, if any.
    pub fn slot(&self) -> Option<&SlotName> {
        self.slot.as_ref()
    }

    /// The configured start.
    pub fn start(&self) -> PhysicalStart {
        self.start
    }

    /// `START_REPLICATION [SLOT s] PHYSICAL lsn TIMELINE tli`.
    pub(crate) fn start_command(&self, lsn: Lsn, timeline: u32) -> String {
        start_command(self.slot.as_ref(), lsn, timeline)
    }
}

/// `START_REPLICATION [SLOT s] PHYSICAL lsn TIMELINE tli`.
pub(crate) fn start_command(slot: Option<&SlotName>, lsn: Lsn, timeline: u32) -> String {
    match slot {
        // A SlotName cannot hold a double quote, so quoting cannot fail.
        Some(slot) => format!(
            "START_REPLICATION SLOT {} PHYSICAL {lsn} TIMELINE {timeline}",
            pg_walstream_slot::quote_replication_identifier("slot", slot.as_str())
                .unwrap_or_else(|_| slot.as_str().to_owned())
        ),
        None => format!("START_REPLICATION PHYSICAL {lsn} TIMELINE {timeline}"),
    }
}

impl PhysicalConfigBuilder {
    /// Connection string (libpq `key=value` or URI); `replication=true` is implied.
    pub fn conninfo(mut self, conninfo: &str) -> Self {
        self.conninfo = Some(conninfo.parse::<Config>());
        self
    }

    /// An already parsed connection configuration; `replication=true` is implied.
    pub fn connection_config(mut self, config: Config) -> Self {
        self.conninfo = Some(Ok(config));
        self
    }

    /// Which transport backend to connect with.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Stream from this physical slot (the server then keeps the WAL not yet flushed).
    pub fn slot(mut self, name: &str) -> Self {
        self.slot = Some(name.to_owned());
        self
    }

    /// Where to start.
    pub fn start(mut self, start: PhysicalStart) -> Self {
        self.start = start;
        self
    }

    /// How often status updates go out at least.
    pub fn status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// The read deadline.
    pub fn read_timeout(mut self, timeout: ReadTimeout) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How often hot standby feedback is repeated while on.
    pub fn hot_standby_interval(mut self, interval: Duration) -> Self {
        self.hot_standby_interval = interval;
        self
    }

    /// How many events may wait for the application before reading pauses.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity;
        self
    }

    /// Marks the stream as the replacement of one that failed (a receiver's reconnect loop,
    /// like `receivewal`'s): counted in `walstream_physical_reconnects_total` once started.
    pub fn reconnect(mut self, yes: bool) -> Self {
        self.reconnect = yes;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad connection string or slot name, zero intervals or intervals
    /// above [`MAX_INTERVAL`](crate::MAX_INTERVAL), a zero or too long fixed read deadline, a
    /// zero channel capacity.
    pub fn build(self) -> Result<PhysicalConfig, ConfigError> {
        let connection = match self.conninfo {
            None => None,
            Some(Err(error)) => return Err(ConfigError::ConnInfo(error)),
            Some(Ok(config)) => Some((config, self.backend)),
        };
        let slot = self
            .slot
            .map(SlotName::new)
            .transpose()
            .map_err(ConfigError::SlotName)?;
        checks::interval("status interval", self.status_interval)?;
        checks::interval("hot standby interval", self.hot_standby_interval)?;
        checks::read_timeout(self.read_timeout)?;
        checks::at_least_one("channel capacity", self.channel_capacity)?;
        Ok(PhysicalConfig {
            connection,
            slot,
            start: self.start,
            status_interval: self.status_interval,
            read_timeout: self.read_timeout,
            hot_standby_interval: self.hot_standby_interval,
            channel_capacity: self.channel_capacity,
            reconnect: self.reconnect,
        })
    }
}

/// Parses `SHOW wal_segment_size` (`16MB`, `1GB`, `1048576`).
///
/// ```
/// use pg_walstream_stream::parse_wal_segment_size;
/// assert_eq!(parse_wal_segment_size("16MB").unwrap().bytes(), 16 << 20);
/// assert_eq!(parse_wal_segment_size("1GB").unwrap().bytes(), 1 << 30);
/// assert!(parse_wal_segment_size("3MB").is_none());
/// ```
pub fn parse_wal_segment_size(text: &str) -> Option<WalSegmentSize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let multiplier: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    WalSegmentSize::new(u32::try_from(number.checked_mul(multiplier)?).ok()?)
}
