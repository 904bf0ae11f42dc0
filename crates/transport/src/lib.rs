//! PostgreSQL sessions for replication.
//!
//! This crate owns the frontend/backend session: connection strings in libpq's syntax, TLS,
//! authentication (driving the sans-IO exchanges of `pg-walstream-auth`), simple queries,
//! CopyBoth/CopyOut, and the [`Transport`] abstraction with a pure-Rust backend and a libpq one.
//!
//! Layers, bottom up:
//! - [`message`]: sans-IO encoders and a zero-copy parser for protocol 3.0 messages;
//! - `native`: sockets, TLS with libpq's `sslmode` semantics, authentication, and a
//!   [`NativeConnection`] that reads many frames per syscall and batches writes;
//! - [`Transport`] / [`Connection`]: the contract higher crates use, with the backend chosen
//!   at run time by a plain `enum` (no boxed futures on the hot path).
//!
//! ```no_run
//! use pg_walstream_transport::conninfo::Config;
//! use pg_walstream_transport::{Connection, SqlState, Transport, TransportError};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config: Config = "host=db.example user=repl dbname=app replication=database \
//!                       sslmode=verify-full channel_binding=require".parse()?;
//! let mut conn = Connection::connect(&config).await?;
//! let system = conn.simple_query("IDENTIFY_SYSTEM").await?;
//! println!("timeline {:?}", system[0].get_str(0, "timeline")?);
//!
//! match conn.simple_query("CREATE_REPLICATION_SLOT s LOGICAL pgoutput").await {
//!     Err(e) if e.code() == Some(SqlState::DUPLICATE_OBJECT) => {} // already there
//!     other => { other?; }
//! }
//! conn.copy_both("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1', publication_names 'p')")
//!     .await?;
//! while let Some(frame) = conn.read_copy_data().await? {
//!     // `frame` is a `Bytes` view into the read buffer: XLogData ('w') or keepalive ('k').
//!     if frame.first() == Some(&b'k') {
//!         let status_update = [b'r'; 34]; // build a real StandbyStatusUpdate here
//!         conn.write_copy_data(&status_update)?;
//!         conn.flush().await?;
//!     }
//! }
//! conn.close().await?;
//! # Ok(())
//! # }
//! ```

mod cancel;
pub mod conninfo;
mod error;
#[cfg(feature = "libpq")]
mod libpq;
pub mod message;
mod native;
mod result;
mod transport;

pub use cancel::CancelToken;
pub use error::{ErrorClass, Result, TransportError, classify_sqlstate};
#[cfg(feature = "libpq")]
pub use libpq::LibpqConnection;
pub use message::{DbError, Severity, SqlState};
pub use native::{Keepalive, NativeConnection};
pub use result::{Response, ResultSet, Row};
pub use transport::{Backend, Connection, MAX_KEPT_NOTICES, Transport};
