//! The `pg-walstream` binary against real servers (every version of the run).

mod errors;
mod recv;
mod support;
