//! Logical replication streams with LSN feedback that is always right — and physical ones:
//! [`PhysicalStream`] (raw WAL, timeline following, hot standby feedback; see
//! [`PhysicalCore`]) with the [`wal_writer`] segment writer and [`receive_wal`] joining them.
//!
//! Start a stream with a [`LogicalConfig`] and consume [`Event`]s — Begin/Commit,
//! Insert/Update/Delete with their relation and rows read by column name ([`Row`], a
//! zero-copy view of the received bytes with pgoutput's states: value, NULL, unchanged
//! TOAST), Truncate, messages, schema changes ([`RelationChange`]), streamed and two-phase
//! transactions — through `futures::Stream`, [`LogicalStream::next_event`] or, undecoded,
//! [`LogicalStream::next_frame`]. Report what you have durably processed through [`Feedback`];
//! the stream tells the server. Stop with [`LogicalStream::stop`] or a [`StopHandle`] (from a
//! signal handler, say) so the final status update goes out. The `testing` feature builds
//! events without a server (`testing` module).
//!
//! ```no_run
//! use pg_walstream_stream::{EventKind, LogicalConfig, LogicalStream};
//!
//! # async fn run() -> Result<(), pg_walstream_stream::Error> {
//! let config = LogicalConfig::builder()
//!     .conninfo("host=localhost user=repl dbname=app")
//!     .slot("app_cdc")
//!     .publication("app_pub")
//!     .build()?;
//! let mut stream = LogicalStream::connect(config).await?;
//! let feedback = stream.feedback().clone();
//! while let Some(event) = stream.next_event().await {
//!     let event = event?;
//!     match event.kind() {
//!         EventKind::Insert(change) => {
//!             let table = change.relation().name();
//!             for (column, value) in change.new_row().into_iter().flatten() {
//!                 println!("{table}.{} = {:?}", column.name, value.as_str());
//!             }
//!         }
//!         EventKind::Commit(commit) => {
//!             // ... make the transaction's effects durable downstream, then:
//!             feedback.processed(commit.end_lsn);
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # LSN feedback
//!
//! The stream sends standby status updates on its own task, every
//! [status interval](LogicalConfigBuilder::status_interval), at once when the server asks for
//! a reply, and once more before a graceful stop — whether or not the application is polling.
//! Each carries:
//!
//! - **write** = the highest WAL position received;
//! - **flush** = min(reported, received), where *reported* is the highest position given to
//!   [`Feedback::processed`]: the slot's `confirmed_flush_lsn` follows it, and a restarted
//!   stream resumes there;
//! - **apply** = min(reported, received).
//!
//! A transaction is acknowledged at its Commit's `end_lsn` (never `commit_lsn` or a frame's
//! start); [`Event::ack_lsn`] returns the right position for every event that ends a unit
//! (commit, stream commit, prepare, commit/rollback prepared, non-transactional message —
//! the latter at its `lsn`, which is already the *end* of the message's WAL record, the start
//! of the next one). [`Feedback::ack`] refuses an event another stream delivered.
//!
//! **Idle rule.** When no transaction is open (no Begin without its Commit, no Begin Prepare
//! without its Prepare, no streamed transaction without its Stream Commit, Stream Prepare or
//! top-level Stream Abort) *and* the application has reported every unit received, the flush
//! position may advance to the latest keepalive's `wal_end`. The server sends data in commit
//! order, so nothing before that position is still to come; a slot on a quiet publication thus
//! stops holding WAL while the rest of the server writes. Data that was delivered but not
//! reported is never acknowledged, and after a stop the keepalives are ignored. Flush never
//! goes below the slot's position when the stream started, nor below what an earlier status
//! update reported.
//!
//! **Liveness.** The read deadline is derived from the keepalive cadence (3 × the longest of
//! the recent silences that a keepalive ended, at least 10 s; 60 s until known) or set
//! explicitly ([`ReadTimeout`]); half-way through a silence the stream asks the server for a
//! reply, and at the deadline it fails with [`Error::ReadTimeout`]. While the application
//! lags, reading pauses (at most [`channel_capacity`](LogicalConfigBuilder::channel_capacity)
//! events and [`channel_bytes`](LogicalConfigBuilder::channel_bytes) bytes of messages wait)
//! and the deadline does not run, but status updates still go out — also after the stop LSN
//! while the stream waits for the application — so `wal_sender_timeout` never fires.
//!
//! **Stop LSN.** With [`stop_at`](LogicalConfigBuilder::stop_at) the stream delivers every
//! transaction whose commit record starts before the stop LSN and nothing that commits after
//! it; blocks of a streamed transaction still open at that point are delivered as they came,
//! but its Stream Commit lies beyond the stop. If the connection fails after the last event,
//! [`LogicalStream::stop`] returns that error.
//!
//! **Resuming.** A new stream on the slot starts at the slot's `confirmed_flush_lsn` — the last
//! flush position the server received — so transactions that were delivered but not reported
//! are sent again, whole (never half a transaction). For exactly-once application, record the
//! `end_lsn` of each applied transaction in the destination, atomically with its data, and
//! restart with [`start_lsn`](LogicalConfigBuilder::start_lsn) set to it: the server skips
//! every transaction whose commit record starts before that position, and the stream never
//! reports less than it.
//!
//! **Health.** [`Feedback::server_wal_end`] and [`Feedback::last_server_time`] tell whether the
//! server is still talking (keepalives included), independently of whether events flow;
//! [`Feedback::confirmed_flush_lsn`] is what the slot was last told. Counters and gauges go to
//! the `metrics` facade (free without a recorder), and each stream's task runs in a `walstream`
//! tracing span carrying the slot name.
//!
//! # Layers
//!
//! [`LogicalCore`] is the sans-IO state machine (frames and time in; events, status updates
//! and the next timeout out); [`LogicalStream`] drives it over any
//! [`Transport`](pg_walstream_transport::Transport) in a spawned task. Bad input is never
//! skipped: an undecodable frame, a change for a relation never described, or a protocol
//! violation ends the stream with an [`Error`].
pub mod assembler;
mod batch;
#[cfg(test)]
mod captured;
mod config;
mod core;
mod driver;
mod error;
mod events;
mod feedback;
mod fine_timer;
mod handoff;
mod key;
mod metrics;
mod ordered_ack;
mod physical;
mod reconnect;
mod relation;
mod relation_cache;
mod replay;
mod retry;
mod row;
mod schema_change;
mod sent_status;
mod stop;
mod stream;
mod task;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wal_writer;

pub use batch::EventBatch;
pub use config::{
    ConfigError, CreateSlotOptions, DEFAULT_CHANNEL_BYTES, DEFAULT_MAX_READ_SIZE, LogicalConfig,
    LogicalConfigBuilder, MAX_INTERVAL, OriginFilter, Streaming, max_protocol,
};
pub use core::{CoreOptions, LogicalCore, ReadCoalescing, ReadTimeout};
pub use error::{Error, Result};
pub use events::{Change, Event, EventKind, OwnedTuples, Reconnected};
pub use feedback::{Feedback, ForeignEvent};
pub use key::OldKeyColumns;
pub use ordered_ack::{DEFAULT_ACK_WINDOW, OrderedFeedback, Ticket};
pub use pg_walstream_codec::pgoutput::{Column, ProtocolVersion};
pub use pg_walstream_transport::{ErrorClass, classify_sqlstate};
pub use physical::{
    HotStandbyXmin, PhysicalConfig, PhysicalConfigBuilder, PhysicalCore, PhysicalEvent,
    PhysicalFeedback, PhysicalInfo, PhysicalOptions, PhysicalStart, PhysicalStream, ReceiveEnd,
    ReceiveError, ReceiveProgress, TimelineSwitch, WalData, parse_wal_segment_size, receive_wal,
};
pub use relation::{RelationInfo, TypeInfo};
pub use relation_cache::RelationCache;
pub use retry::RetryPolicy;
pub use row::{Row, RowIter};
pub use schema_change::{RelationChange, SchemaChange};
pub use stop::StopHandle;
pub use stream::{LogicalStream, PreparedStream, RawFrame, StreamInfo};
