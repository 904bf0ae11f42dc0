//! Sans-IO decoding and encoding of PostgreSQL's replication protocol.
//!
//! Bytes in, typed values out: replication CopyData messages (XLogData, primary keepalive,
//! standby status update, hot standby feedback) in [`replication`], the messages of a
//! `BASE_BACKUP` CopyOut stream in [`backup`], the pgoutput logical
//! decoding protocol v1–v4 in [`pgoutput`], and PostgreSQL 14–18's built-in type catalogue in
//! [`types`]. No sockets, no async runtime, `no_std` + `alloc` capable (the default `std`
//! feature adds `SystemTime` conversions).
//!
//! With the `arbitrary` feature the owned message types (pgoutput, replication CopyData, WAL
//! page headers) implement `arbitrary::Arbitrary`, generating values that encode and decode
//! back to themselves: property-based fuzzing of the codec and of your own consumers (see
//! `examples/arbitrary-fuzzing`).
//!
//! Decoding never panics and never allocates in proportion to counts read from the wire:
//! malformed input yields a [`DecodeError`] naming the message tag, the byte offset and what
//! was expected.
//!
//! ```
//! use bytes::Bytes;
//! use pg_walstream_codec::pgoutput::{Column, Message, PgOutputDecoder, ProtocolVersion};
//! use pg_walstream_codec::replication::BackendMessage;
//!
//! // An XLogData frame carrying a pgoutput Insert of (42, NULL) into relation 16384.
//! let frame = Bytes::from_static(
//!     b"w\0\0\0\0\x01\0\0\0\0\0\0\0\x01\0\0\x10\0\0\0\0\0\0\0\0\
//!       I\0\0\x40\0N\0\x02t\0\0\0\x0242n",
//! );
//! let BackendMessage::XLogData(xlog) = BackendMessage::parse(&frame)? else { panic!() };
//! let mut decoder = PgOutputDecoder::new(ProtocolVersion::V1);
//! let Message::Insert(insert) = decoder.decode(&xlog.data)? else { panic!() };
//! let columns: Vec<_> = insert.new.columns().collect();
//! assert_eq!(columns, [Column::Text(b"42"), Column::Null]);
//! # Ok::<(), pg_walstream_codec::DecodeError>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[cfg(feature = "arbitrary")]
mod arbitrary_impls;
pub mod backup;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod ids;
mod lsn;
pub mod pgoutput;
mod reader;
pub mod replication;
mod share;
mod time;
pub mod types;
pub mod wal;

pub use error::{DecodeError, Tag};
pub use ids::{Oid, Xid};
pub use lsn::{Lsn, ParseLsnError, SegmentFileName, WalSegmentSize};
pub use time::{POSTGRES_EPOCH_UNIX_SECONDS, PgTimestamp};
