//! Logical and physical replication streams.
//!
//! This crate will own the replication streams built on the codec, transport and slot crates:
//! decoded logical events as a `futures::Stream` and by polling, raw WAL streaming, status
//! updates with LSN feedback, keepalives, retry and resume. It exports nothing yet.
