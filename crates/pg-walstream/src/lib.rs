//! pg-walstream: PostgreSQL's replication protocol for Rust.
//!
//! This facade re-exports the workspace's crates under one name. It holds no code of its own.
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`codec`] | `pg-walstream-codec` | sans-IO parsers and encoders of replication messages |
//! | [`stream`] | `pg-walstream-stream` | logical replication streams with correct LSN feedback (feature `stream`) |

pub use pg_walstream_codec as codec;
#[cfg(feature = "stream")]
pub use pg_walstream_stream as stream;
