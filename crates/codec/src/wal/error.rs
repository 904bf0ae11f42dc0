//! Errors of the physical WAL decoder.

use crate::lsn::Lsn;
use crate::wal::page::WalVersion;

/// What is wrong inside one record's payload (its block headers and data lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordDefect {
    /// A block header or length field runs past the end of the record.
    #[error("record is too short for its headers")]
    Truncated,
    /// The lengths in the block headers do not add up to the record's length.
    #[error(
        "data lengths in the headers ({declared} bytes) do not match the record ({actual} bytes)"
    )]
    LengthMismatch {
        /// Bytes the headers announce.
        declared: u64,
        /// Bytes the record holds after its headers.
        actual: u64,
    },
    /// A block id above 32 that is not one of the special ids (252–255).
    #[error("invalid block_id {0}")]
    InvalidBlockId(u8),
    /// Block ids must be strictly increasing.
    #[error("out-of-order block_id {0}")]
    OutOfOrderBlockId(u8),
    /// `BKPBLOCK_HAS_DATA` is set but the data length is zero.
    #[error("BKPBLOCK_HAS_DATA set, but no data included")]
    HasDataWithoutData,
    /// `BKPBLOCK_HAS_DATA` is not set but a data length is given.
    #[error("BKPBLOCK_HAS_DATA not set, but data length is {0}")]
    DataWithoutHasData(u16),
    /// The image's hole fields contradict its flags.
    #[error(
        "invalid full-page image hole: offset {hole_offset}, length {hole_length}, image length {image_length}"
    )]
    InvalidHole {
        /// `hole_offset`.
        hole_offset: u16,
        /// `hole_length`.
        hole_length: u16,
        /// `bimg_len`.
        image_length: u16,
    },
    /// A compressed image as long as a whole page, or an uncompressed image without a hole
    /// that is not a whole page.
    #[error("invalid full-page image length {0}")]
    InvalidImageLength(u16),
    /// More than one compression method bit is set.
    #[error("full-page image info bits {0:#04x} name more than one compression method")]
    InvalidImageFlags(u8),
    /// `BKPBLOCK_SAME_REL` on the first block reference.
    #[error("BKPBLOCK_SAME_REL set but no previous rel")]
    SameRelWithoutPrevious,
}

/// Why the WAL could not be decoded further.
///
/// Every variant carries the LSN it concerns: the page (for page-header problems) or the
/// record (for record problems). The type is `Copy` and allocation-free.
///
/// End of valid WAL is not a special success value: PostgreSQL finds it by a page whose
/// address is not the expected one (a recycled segment), a record of length zero (a
/// zero-filled tail) or a record whose checksum fails (a torn write). Those errors answer
/// `true` to [`WalError::is_end_of_wal`]; a caller reading up to a known end position never
/// sees them.
///
/// ```
/// use pg_walstream_codec::Lsn;
/// use pg_walstream_codec::wal::WalError;
/// let end = WalError::ZeroLength { lsn: Lsn::new(0x0100_0028) };
/// assert!(end.is_end_of_wal());
/// assert_eq!(end.lsn(), Lsn::new(0x0100_0028));
/// assert_eq!(end.to_string(), "invalid record length at 0/1000028: expected at least 24, got 0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The page's magic number is not one of PostgreSQL 14–18's (0 for a zero-filled page).
    #[error("invalid magic number {magic:04X} in WAL page at {lsn}")]
    InvalidMagic {
        /// The page's LSN.
        lsn: Lsn,
        /// The magic number found.
        magic: u16,
    },
    /// The page was written by another PostgreSQL major version than the pages before it.
    #[error("WAL page at {lsn} is from PostgreSQL {found}, expected PostgreSQL {expected}")]
    VersionMismatch {
        /// The page's LSN.
        lsn: Lsn,
        /// The version of this page.
        found: WalVersion,
        /// The version of the earlier pages (or the one asked for).
        expected: WalVersion,
    },
    /// Unknown bits in the page header's `xlp_info`.
    #[error("invalid info bits {info:04X} in WAL page at {lsn}")]
    InvalidInfoBits {
        /// The page's LSN.
        lsn: Lsn,
        /// The info field.
        info: u16,
    },
    /// The first page of a segment lacks the long header.
    #[error("WAL page at {lsn} starts a segment but has no long header")]
    MissingLongHeader {
        /// The page's LSN.
        lsn: Lsn,
    },
    /// The long header names another database system than the pages before it.
    #[error(
        "WAL page at {lsn} is from another database system: system identifier {found}, expected {expected}"
    )]
    SystemIdMismatch {
        /// The page's LSN.
        lsn: Lsn,
        /// The system identifier on this page.
        found: u64,
        /// The system identifier seen (or configured) before.
        expected: u64,
    },
    /// The long header's segment size is invalid or differs from the known one.
    #[error("WAL page at {lsn} declares segment size {found}, expected {expected}")]
    SegmentSizeMismatch {
        /// The page's LSN.
        lsn: Lsn,
        /// The declared size.
        found: u32,
        /// The known size (0 if none is valid).
        expected: u32,
    },
    /// The long header's block size is invalid or differs from the known one.
    #[error("WAL page at {lsn} declares block size {found}, expected {expected}")]
    PageSizeMismatch {
        /// The page's LSN.
        lsn: Lsn,
        /// The declared size.
        found: u32,
        /// The known size (0 if none is valid).
        expected: u32,
    },
    /// The page's own address is not where it was read from: a recycled segment's stale
    /// page, i.e. the end of valid WAL.
    #[error("unexpected pageaddr {found} in WAL page at {lsn}")]
    UnexpectedPageAddr {
        /// The LSN the page was read at.
        lsn: Lsn,
        /// The address the page header holds.
        found: Lsn,
    },
    /// A page's timeline is lower than an earlier page's.
    #[error("out-of-sequence timeline ID {found} (after {previous}) in WAL page at {lsn}")]
    TimelineOutOfSequence {
        /// The page's LSN.
        lsn: Lsn,
        /// This page's timeline.
        found: u32,
        /// The earlier page's timeline.
        previous: u32,
    },
    /// A record continues onto a page that does not say so.
    #[error("there is no contrecord flag at {lsn} (record at {record})")]
    MissingContrecord {
        /// The page's LSN.
        lsn: Lsn,
        /// The record being continued.
        record: Lsn,
    },
    /// The continuation length on a page disagrees with the record being assembled.
    #[error("invalid contrecord length {found} (expected {expected}) at {lsn}")]
    InvalidContrecordLength {
        /// The page's LSN.
        lsn: Lsn,
        /// `xlp_rem_len`.
        found: u32,
        /// The bytes the record still needs.
        expected: u32,
    },
    /// A page claims to continue a record where a new record must start.
    #[error("contrecord is requested by {lsn}")]
    UnexpectedContrecord {
        /// The page's LSN.
        lsn: Lsn,
    },
    /// A record of length zero: the zero-filled rest of the WAL, i.e. its end.
    #[error("invalid record length at {lsn}: expected at least 24, got 0")]
    ZeroLength {
        /// Where the record would start.
        lsn: Lsn,
    },
    /// A record shorter than its own header.
    #[error("invalid record length at {lsn}: expected at least 24, got {length}")]
    InvalidRecordLength {
        /// The record's LSN.
        lsn: Lsn,
        /// `xl_tot_len`.
        length: u32,
    },
    /// A resource manager id that is neither built in (0–21) nor custom (128–255, 15+).
    #[error("invalid resource manager ID {rmid} at {lsn}")]
    InvalidRmgr {
        /// The record's LSN.
        lsn: Lsn,
        /// `xl_rmid`.
        rmid: u8,
    },
    /// `xl_prev` does not point at the previous record.
    #[error("record with incorrect prev-link {found} at {lsn} (expected {expected})")]
    InvalidPrevLink {
        /// The record's LSN.
        lsn: Lsn,
        /// `xl_prev`.
        found: Lsn,
        /// The previous record's LSN.
        expected: Lsn,
    },
    /// The record's CRC-32C does not match its contents (a flipped bit or a torn write).
    #[error("incorrect resource manager data checksum in record at {lsn}")]
    CrcMismatch {
        /// The record's LSN.
        lsn: Lsn,
        /// The checksum stored in the record.
        stored: u32,
        /// The checksum computed over it.
        computed: u32,
    },
    /// The record's headers are inconsistent.
    #[error("invalid record at {lsn}: {defect}")]
    InvalidRecord {
        /// The record's LSN.
        lsn: Lsn,
        /// What is wrong.
        defect: RecordDefect,
    },
    /// Decoding must start at a page boundary, and (unless the page size is configured)
    /// at a segment boundary, whose long header gives the layout.
    #[error("cannot start decoding at {lsn}: {reason}")]
    InvalidStart {
        /// The requested start.
        lsn: Lsn,
        /// Why not.
        reason: &'static str,
    },
    /// The input ended inside a page header or a record.
    #[error("WAL ends at {lsn} inside {inside}")]
    Truncated {
        /// The LSN of the first missing byte.
        lsn: Lsn,
        /// `"a page header"` or `"a record"`.
        inside: &'static str,
    },
}

impl WalError {
    /// The LSN the error concerns.
    pub fn lsn(&self) -> Lsn {
        match *self {
            Self::InvalidMagic { lsn, .. }
            | Self::VersionMismatch { lsn, .. }
            | Self::InvalidInfoBits { lsn, .. }
            | Self::MissingLongHeader { lsn }
            | Self::SystemIdMismatch { lsn, .. }
            | Self::SegmentSizeMismatch { lsn, .. }
            | Self::PageSizeMismatch { lsn, .. }
            | Self::UnexpectedPageAddr { lsn, .. }
            | Self::TimelineOutOfSequence { lsn, .. }
            | Self::MissingContrecord { lsn, .. }
            | Self::InvalidContrecordLength { lsn, .. }
            | Self::UnexpectedContrecord { lsn }
            | Self::ZeroLength { lsn }
            | Self::InvalidRecordLength { lsn, .. }
            | Self::InvalidRmgr { lsn, .. }
            | Self::InvalidPrevLink { lsn, .. }
            | Self::CrcMismatch { lsn, .. }
            | Self::InvalidRecord { lsn, .. }
            | Self::InvalidStart { lsn, .. }
            | Self::Truncated { lsn, .. } => lsn,
        }
    }

    /// Whether this is how the end of valid WAL looks: a stale page of a recycled segment
    /// (wrong `pageaddr`), a zero-filled page or record, or a record with a bad checksum (a
    /// torn last write — or corruption; PostgreSQL's recovery cannot tell them apart
    /// either, and stops there).
    pub fn is_end_of_wal(&self) -> bool {
        matches!(
            self,
            Self::UnexpectedPageAddr { .. }
                | Self::ZeroLength { .. }
                | Self::CrcMismatch { .. }
                | Self::InvalidMagic { magic: 0, .. }
        )
    }
}
