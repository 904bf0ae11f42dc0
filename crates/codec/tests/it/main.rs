//! Integration tests of pg-walstream-codec (one test binary, split by concern).

mod alloc_free;
mod corpus;
mod fidelity;
mod framing;
mod layout;
mod malformed;
mod roundtrip;
mod strategies;
mod types;
mod wal;
