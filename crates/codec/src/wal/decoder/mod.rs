//! The push-based WAL decoder: bytes in (any chunking), records out.
//!
//! One concern per file: this one holds the decoder's state and public API;
//! [`input`] buffers the fed bytes, [`assemble`] walks records (and pages they span),
//! [`record_checks`] checks record headers and CRCs, [`page_checks`] page headers and
//! continuation flags.

mod assemble;
mod input;
mod page_checks;
mod record_checks;

use alloc::vec::Vec;

use crate::lsn::{Lsn, WalSegmentSize};
use crate::wal::error::WalError;
use crate::wal::page::WalVersion;
use crate::wal::record::{Anatomy, BlockInfo, Record, decode_anatomy};

/// A CRC-32C continuation function: `crc(previous, bytes)` extends the checksum `previous`
/// (0 to start) over `bytes`, as `crc32c::crc32c_append` does.
pub type Crc32cFn = fn(u32, &[u8]) -> u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first page: a continuation at its start belongs to an unseen record.
    Start,
    /// Skipping the rest of a record whose start precedes the input.
    Skip { remaining: u32 },
    /// At the start of a record (or at the end of a page).
    Record,
    /// Assembling a record that spans pages into `assembly`.
    Assemble {
        start: u64,
        total: u32,
        checked: bool,
    },
}

/// Where the record just found lies.
enum Found {
    Buffer {
        at: usize,
        len: usize,
        start: u64,
        end: u64,
    },
    Assembly {
        start: u64,
        end: u64,
    },
}

/// Decodes physical WAL fed as bytes, in order, in chunks of any size.
///
/// Sans-IO: [`feed`](Self::feed) the bytes of segment files or of the physical
/// replication stream's XLogData payloads, then call [`next_record`](Self::next_record)
/// until it returns `Ok(None)` (needs more bytes). Records borrow the decoder's buffers and
/// are valid until the next call. Steady-state decoding does not allocate: records within
/// one page are returned in place, records spanning pages are assembled in a reused buffer.
///
/// Checked, as PostgreSQL's `xlogreader.c` checks: each page header (magic number of one
/// version, flags, `xlp_pageaddr`, timeline order; the long header's system identifier,
/// segment size and page size — read, never assumed), continuation records (`rem_len`),
/// each record header (length, resource manager, `xl_prev` link), each record's CRC-32C and
/// block headers. `XLOG_SWITCH` skips the rest of its segment; a page flagged
/// `XLP_FIRST_IS_OVERWRITE_CONTRECORD` discards the unfinished record before it (see
/// [`aborted_record`](Self::aborted_record)). The first error ends decoding: it is returned
/// again by every later call.
///
/// ```
/// use pg_walstream_codec::Lsn;
/// use pg_walstream_codec::wal::{WalDecoder, WalError};
///
/// // A zero-filled segment start is not WAL: the decoder says why, with the LSN.
/// let mut decoder = WalDecoder::new(Lsn::new(0x0100_0000));
/// decoder.feed(&[0u8; 8192]);
/// let err = decoder.next_record().unwrap_err();
/// assert_eq!(err, WalError::InvalidMagic { lsn: Lsn::new(0x0100_0000), magic: 0 });
/// assert!(err.is_end_of_wal());
/// ```
#[derive(Debug)]
pub struct WalDecoder {
    buf: Vec<u8>,
    filled: usize,
    /// LSN of `buf[0]`.
    buf_lsn: u64,
    /// Bytes still to drop from the input before `buf_lsn` (after an `XLOG_SWITCH`).
    discard: u64,
    /// LSN of the next byte to process.
    pos: u64,
    page_size: Option<u32>,
    segment_size: Option<u32>,
    version: Option<WalVersion>,
    system_identifier: Option<u64>,
    /// Start LSN of the page whose header was validated last.
    current_page: Option<u64>,
    current_version: WalVersion,
    timeline: u32,
    state: State,
    skip_before: u64,
    prev: Option<u64>,
    assembly: Vec<u8>,
    blocks: Vec<BlockInfo>,
    crc: Option<Crc32cFn>,
    failed: Option<WalError>,
    aborted: Option<Lsn>,
    records: u64,
}

impl WalDecoder {
    /// A decoder whose first fed byte is at LSN `first_byte`.
    ///
    /// `first_byte` must be a segment start unless the page size is configured with
    /// [`with_page_size`](Self::with_page_size) (then a page start suffices). The record
    /// continuing from before `first_byte`, if any, is skipped. With the `std` feature the
    /// `crc32c` and `crc-fast` crates (hardware-accelerated) check every record's CRC; without it, give a
    /// CRC-32C function with [`with_crc`](Self::with_crc), or records go unchecked.
    pub fn new(first_byte: Lsn) -> Self {
        Self {
            buf: Vec::new(),
            filled: 0,
            buf_lsn: first_byte.as_u64(),
            discard: 0,
            pos: first_byte.as_u64(),
            page_size: None,
            segment_size: None,
            version: None,
            system_identifier: None,
            current_page: None,
            current_version: WalVersion::V14,
            timeline: 0,
            state: State::Start,
            skip_before: first_byte.as_u64(),
            prev: None,
            assembly: Vec::new(),
            blocks: Vec::new(),
            crc: default_crc(),
            failed: None,
            aborted: None,
            records: 0,
        }
    }

    /// Uses `crc` to check record checksums (`None`: do not check).
    #[must_use]
    pub fn with_crc(mut self, crc: Option<Crc32cFn>) -> Self {
        self.crc = crc;
        self
    }

    /// Declares the WAL page size (needed when the first byte is not a segment start;
    /// otherwise checked against the long header).
    #[must_use]
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// Declares the WAL segment size (checked against every long header).
    #[must_use]
    pub fn with_segment_size(mut self, size: WalSegmentSize) -> Self {
        self.segment_size = Some(size.bytes());
        self
    }

    /// Requires pages of this version.
    #[must_use]
    pub fn with_version(mut self, version: WalVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// Requires this system identifier in long headers.
    #[must_use]
    pub fn with_system_identifier(mut self, system_identifier: u64) -> Self {
        self.system_identifier = Some(system_identifier);
        self
    }

    /// Returns no record that starts before `lsn` (they are still read and checked).
    #[must_use]
    pub fn skip_until(mut self, lsn: Lsn) -> Self {
        self.skip_before = lsn.as_u64();
        self
    }

    /// The version of the pages read so far.
    pub fn version(&self) -> Option<WalVersion> {
        self.version
    }

    /// The page size, once known.
    pub fn page_size(&self) -> Option<u32> {
        self.page_size
    }

    /// The segment size, once known.
    pub fn segment_size(&self) -> Option<u32> {
        self.segment_size
    }

    /// The system identifier of the long headers read so far.
    pub fn system_identifier(&self) -> Option<u64> {
        self.system_identifier
    }

    /// The timeline of the last page read.
    pub fn timeline(&self) -> u32 {
        self.timeline
    }

    /// The LSN just past the last byte fed.
    pub fn fed_end(&self) -> Lsn {
        Lsn::new(self.buf_lsn + self.filled as u64 - self.discard)
    }

    /// The LSN where the next record starts or would start, once the current one is done.
    pub fn next_record_lsn(&self) -> Lsn {
        Lsn::new(self.pos)
    }

    /// Whether CRCs are checked.
    pub fn checks_crc(&self) -> bool {
        self.crc.is_some()
    }

    /// The start of the last record that was discarded because a later page said it was
    /// overwritten (`XLP_FIRST_IS_OVERWRITE_CONTRECORD`).
    pub fn aborted_record(&self) -> Option<Lsn> {
        self.aborted
    }

    /// How many records have been decoded (including skipped ones).
    pub fn records_decoded(&self) -> u64 {
        self.records
    }

    /// The next record, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// The first problem found, with its LSN (see [`WalError`]); it is sticky.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, WalError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let found = match self.advance() {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = Some(e);
                return Err(e);
            }
        };
        let (bytes, start, end) = match found {
            Found::Buffer {
                at,
                len,
                start,
                end,
            } => (&self.buf[at..at + len], start, end),
            Found::Assembly { start, end } => (&self.assembly[..], start, end),
        };
        let version = self.current_version;
        let page_size = self.page_size.unwrap_or(0);
        let anatomy: Anatomy =
            match decode_anatomy(bytes, version, page_size, &mut self.blocks, Lsn::new(start)) {
                Ok(a) => a,
                Err(e) => {
                    self.failed = Some(e);
                    return Err(e);
                }
            };
        Ok(Some(Record {
            lsn: Lsn::new(start),
            end: Lsn::new(end),
            bytes,
            version,
            page_size,
            blocks: &self.blocks,
            anatomy,
        }))
    }
}

#[cfg(feature = "std")]
#[allow(clippy::unnecessary_wraps)] // the no_std twin returns `None`
fn default_crc() -> Option<Crc32cFn> {
    Some(crc32c_std)
}

/// Inputs from this length on go to `crc-fast` (measured here: below it the `crc32c`
/// crate's SSE4.2 loop is as fast or faster, above it folding wins by 2-7x).
#[cfg(feature = "std")]
const FOLDING_FROM: usize = 1024;

/// CRC-32C continuation with the faster of two hardware-accelerated crates per length.
#[cfg(feature = "std")]
fn crc32c_std(previous: u32, bytes: &[u8]) -> u32 {
    if bytes.len() < FOLDING_FROM {
        return crc32c::crc32c_append(previous, bytes);
    }
    // The digest's state is the un-inverted register: the inverse of a finished CRC.
    let mut digest = crc_fast::Digest::new_with_init_state(
        crc_fast::CrcAlgorithm::Crc32Iscsi,
        u64::from(!previous),
    );
    digest.update(bytes);
    digest.finalize() as u32
}

#[cfg(all(test, feature = "std"))]
mod crc_tests {
    #[test]
    fn both_crates_agree_at_every_length() {
        let bytes: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        for len in [0, 1, 7, 100, 1023, 1024, 1025, 4096, 5000] {
            let data = &bytes[..len];
            assert_eq!(super::crc32c_std(0, data), crc32c::crc32c(data), "{len}");
            // Continuing from a previous CRC, as records are checked (body, then header).
            let previous = crc32c::crc32c(b"header");
            assert_eq!(
                super::crc32c_std(previous, data),
                crc32c::crc32c_append(previous, data),
                "{len}"
            );
        }
    }
}

#[cfg(not(feature = "std"))]
fn default_crc() -> Option<Crc32cFn> {
    None
}
