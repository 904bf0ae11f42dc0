//! Transport tests against real PostgreSQL servers (every version the run provides).
//!
//! Under `cargo xtask test` the servers 14–18 are shared by all test processes; under plain
//! `cargo test` the testkit starts one server of the default version.
//!
//! The suite is the backend conformance suite: `cargo xtask test` runs it once with the native
//! backend and once with `PG_WALSTREAM_TEST_BACKEND=libpq`. Tests of behaviour only the
//! native backend has (typed TLS errors, settings the linked libpq 15 lacks) connect with
//! `support::connect_native` and say so.

mod backends;
mod cancel_safety;
mod direct_tls;
mod encoding;
mod failures;
mod hostile;
mod matrix;
mod negotiation;
mod parking;
mod scram_iterations;
mod session;
mod support;
mod timeout;
mod tls_key;
