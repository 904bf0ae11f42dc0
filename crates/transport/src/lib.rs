//! PostgreSQL sessions for replication.
//!
//! This crate owns the frontend/backend session: connection strings in libpq's syntax, TLS,
//! authentication (driving the sans-IO exchanges of `pg-walstream-auth`), simple queries,
//! CopyBoth/CopyOut, and the `Transport` abstraction with a pure-Rust backend and a libpq one.

pub mod message;

pub use message::{DbError, Severity, SqlState};
