//! Sans-IO decoding and encoding of PostgreSQL's replication protocol.
//!
//! Bytes in, typed values out: replication CopyData messages (XLogData, primary keepalive,
//! standby status update, hot standby feedback) and the pgoutput logical decoding protocol
//! v1–v4. No sockets, no async runtime, `no_std` + `alloc` capable.
#![cfg_attr(not(feature = "std"), no_std)]
