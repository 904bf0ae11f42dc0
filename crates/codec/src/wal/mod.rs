//! Offline decoding of PostgreSQL's physical write-ahead log (versions 14–18).
//!
//! [`WalDecoder`] takes WAL bytes — segment files, or the payloads of the physical
//! replication stream — in chunks of any size and yields [`Record`]s: header fields, block
//! references with their relation, fork, block number, data and full-page image, main data,
//! replication origin and top-level xid, all borrowed from the decoder's buffers. Each
//! record's CRC-32C is checked (with the `std` feature), pages are validated as
//! PostgreSQL's `xlogreader.c` does, and the end of valid WAL comes back as a typed
//! [`WalError`] with its LSN.
//!
//! [`RmgrId`] names resource managers and record types per version as pg_waldump does;
//! [`describe`] gives a short text for common records; [`image`] restores full-page images.
//! No I/O here: reading segment files is the caller's job (the `pg-walstream waldump`
//! command does it).

mod decoder;
mod desc_exact;
mod desc_heap2;
mod desc_xact;
pub mod describe;
mod error;
pub mod image;
mod page;
pub mod pglz;
mod record;
mod rmgr;
#[rustfmt::skip]
mod rmgr_table;
#[cfg(all(test, feature = "std"))]
mod desc_tests;
#[cfg(all(test, feature = "std"))]
mod tests;
#[cfg(feature = "std")]
pub mod writer;

pub use decoder::{Crc32cFn, WalDecoder};
pub use error::{RecordDefect, WalError};
pub use page::{
    LONG_HEADER_LEN, LongHeader, PageHeader, SHORT_HEADER_LEN, WalVersion, XLP_ALL_FLAGS,
    XLP_BKP_REMOVABLE, XLP_FIRST_IS_CONTRECORD, XLP_FIRST_IS_OVERWRITE_CONTRECORD, XLP_LONG_HEADER,
};
pub use record::{
    BlockImage, BlockRef, ImageCompression, MAX_BLOCK_ID, RECORD_HEADER_LEN, Record, RelFileLocator,
};
pub use rmgr::{BUILTIN_RMGR_NAMES, RmgrId};
