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

mod cancel;
pub mod conninfo;
mod error;
pub mod message;
mod native;
mod result;
mod transport;

pub use cancel::CancelToken;
pub use error::{Result, TransportError};
pub use message::{DbError, Severity, SqlState};
pub use native::{Keepalive, NativeConnection};
pub use result::{Response, ResultSet, Row};
pub use transport::{Backend, Connection, Transport};
