//! Transport tests against real PostgreSQL servers (every version the run provides).
//!
//! Under `cargo xtask test` the servers 14–18 are shared by all test processes; under plain
//! `cargo test` the testkit starts one server of the default version.

mod direct_tls;
mod failures;
mod matrix;
mod negotiation;
mod session;
mod support;
mod timeout;
