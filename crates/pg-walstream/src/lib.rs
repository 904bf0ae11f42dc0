//! pg-walstream: PostgreSQL's replication protocol for Rust.
//!
//! This facade re-exports the workspace's crates under one name. It holds no code of its own.
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`codec`] | `pg-walstream-codec` | sans-IO parsers and encoders of replication messages |
//! | [`auth`] | `pg-walstream-auth` | cleartext, MD5, SCRAM-SHA-256(-PLUS) exchanges (feature `stream`) |
//! | [`transport`] | `pg-walstream-transport` | connection strings, TLS, sessions; native and libpq backends (feature `stream`; libpq with feature `libpq`) |
//! | [`slot`] | `pg-walstream-slot` | replication commands, slots, publications (feature `stream`) |
//! | [`stream`] | `pg-walstream-stream` | logical replication streams with correct LSN feedback (feature `stream`) |
//! | [`backup`] | `pg-walstream-backup` | BASE_BACKUP: archive stream, tar and plain sinks, manifest verification (feature `stream`) |
//!
//! The [`prelude`] brings the names most programs need.
//!
//! ```no_run
//! use pg_walstream::prelude::*;
//!
//! # async fn run() -> Result<(), Error> {
//! let config = LogicalConfig::builder()
//!     .conninfo("host=localhost user=repl dbname=app")
//!     .slot("app_slot")
//!     .publication("app_pub")
//!     .build()?;
//! let mut stream = LogicalStream::connect(config).await?;
//! while let Some(event) = stream.next_event().await {
//!     let event = event?;
//!     if let EventKind::Insert(change) = event.kind() {
//!         let id = change.new_row().and_then(|row| row.get("id")?.as_str());
//!         println!("{} id={id:?}", change.relation().name());
//!     }
//!     stream.feedback().ack(&event)?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The `testing` feature adds `stream::testing`: events built
//! from owned values, for unit-testing a consumer without a server.

#[cfg(feature = "stream")]
pub use pg_walstream_auth as auth;
#[cfg(feature = "stream")]
pub use pg_walstream_backup as backup;
pub use pg_walstream_codec as codec;
#[cfg(feature = "stream")]
pub use pg_walstream_slot as slot;
#[cfg(feature = "stream")]
pub use pg_walstream_stream as stream;
#[cfg(feature = "stream")]
pub use pg_walstream_transport as transport;

/// The names most programs need: `use pg_walstream::prelude::*;`.
///
/// ```
/// use pg_walstream::prelude::*;
/// let options = CreateSlotOptions { temporary: true, ..CreateSlotOptions::default() };
/// let config = LogicalConfig::builder()
///     .conninfo("host=localhost user=repl")
///     .slot("s")
///     .publication("p")
///     .streaming(Streaming::On)
///     .proto_version(ProtocolVersion::V2)
///     .create_slot_if_missing(options)
///     .build();
/// config.unwrap();
/// # fn _names(_: Option<(Change, Column<'_>, Row<'_>, Error, StopHandle, RelationChange)>) {}
/// ```
pub mod prelude {
    pub use pg_walstream_codec::Lsn;
    #[cfg(feature = "stream")]
    pub use pg_walstream_slot::{CreateSlot, SlotName};
    #[cfg(feature = "stream")]
    pub use pg_walstream_stream::{
        Change, Column, CreateSlotOptions, Error, Event, EventKind, Feedback, LogicalConfig,
        LogicalStream, ProtocolVersion, RelationChange, RelationInfo, Row, SchemaChange,
        StopHandle, Streaming,
    };
    #[cfg(feature = "stream")]
    pub use pg_walstream_transport::{Backend, Connection, Transport};
}
