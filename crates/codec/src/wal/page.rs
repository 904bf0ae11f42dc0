//! WAL page headers (`XLogPageHeaderData` / `XLogLongPageHeaderData`) and the PostgreSQL
//! major versions they identify.

use core::fmt;

/// `XLP_FIRST_IS_CONTRECORD`: the page starts with the rest of a record from earlier pages.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `XLP_LONG_HEADER`: the page has the long header (first page of a segment).
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// `XLP_BKP_REMOVABLE`: full-page images on this page may be removed by archivers.
pub const XLP_BKP_REMOVABLE: u16 = 0x0004;
/// `XLP_FIRST_IS_OVERWRITE_CONTRECORD`: the record that should continue here was aborted
/// and overwritten (an `XLOG_OVERWRITE_CONTRECORD` record follows).
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
/// All page-header flags PostgreSQL defines.
pub const XLP_ALL_FLAGS: u16 = 0x000F;

/// Size of the short page header, `MAXALIGN(sizeof(XLogPageHeaderData))`.
pub const SHORT_HEADER_LEN: u32 = 24;
/// Size of the long page header, `MAXALIGN(sizeof(XLogLongPageHeaderData))`.
pub const LONG_HEADER_LEN: u32 = 40;

/// A PostgreSQL major version whose WAL format the decoder knows, identified by the page
/// magic number (`XLOG_PAGE_MAGIC`).
///
/// ```
/// use pg_walstream_codec::wal::WalVersion;
/// assert_eq!(WalVersion::from_magic(0xD110), Some(WalVersion::V15));
/// assert_eq!(WalVersion::V18.magic(), 0xD118);
/// assert_eq!(WalVersion::V14.to_string(), "14");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WalVersion {
    /// PostgreSQL 14 (`0xD10D`).
    V14,
    /// PostgreSQL 15 (`0xD110`).
    V15,
    /// PostgreSQL 16 (`0xD113`).
    V16,
    /// PostgreSQL 17 (`0xD116`).
    V17,
    /// PostgreSQL 18 (`0xD118`).
    V18,
}

impl WalVersion {
    /// Every supported version, oldest first.
    pub const ALL: [WalVersion; 5] = [Self::V14, Self::V15, Self::V16, Self::V17, Self::V18];

    /// The version whose pages carry `magic`.
    pub const fn from_magic(magic: u16) -> Option<Self> {
        match magic {
            0xD10D => Some(Self::V14),
            0xD110 => Some(Self::V15),
            0xD113 => Some(Self::V16),
            0xD116 => Some(Self::V17),
            0xD118 => Some(Self::V18),
            _ => None,
        }
    }

    /// The version for a major version number (14–18).
    pub const fn from_major(major: u32) -> Option<Self> {
        match major {
            14 => Some(Self::V14),
            15 => Some(Self::V15),
            16 => Some(Self::V16),
            17 => Some(Self::V17),
            18 => Some(Self::V18),
            _ => None,
        }
    }

    /// `XLOG_PAGE_MAGIC` of this version.
    pub const fn magic(self) -> u16 {
        match self {
            Self::V14 => 0xD10D,
            Self::V15 => 0xD110,
            Self::V16 => 0xD113,
            Self::V17 => 0xD116,
            Self::V18 => 0xD118,
        }
    }

    /// The major version number.
    pub const fn major(self) -> u32 {
        match self {
            Self::V14 => 14,
            Self::V15 => 15,
            Self::V16 => 16,
            Self::V17 => 17,
            Self::V18 => 18,
        }
    }
}

impl fmt::Display for WalVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.major())
    }
}

/// A decoded page header, short or long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// `xlp_magic`.
    pub magic: u16,
    /// `xlp_info` flags (`XLP_*`).
    pub info: u16,
    /// `xlp_tli`: the timeline the page was written on.
    pub timeline: u32,
    /// `xlp_pageaddr`: the page's own LSN.
    pub page_addr: u64,
    /// `xlp_rem_len`: bytes of a continued record at the start of the page.
    pub rem_len: u32,
    /// The long header's fields, on the first page of a segment.
    pub long: Option<LongHeader>,
}

/// The extra fields of a segment's first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeader {
    /// `xlp_sysid`: the database system identifier.
    pub system_identifier: u64,
    /// `xlp_seg_size`: the WAL segment size.
    pub segment_size: u32,
    /// `xlp_xlog_blcksz`: the WAL page size.
    pub page_size: u32,
}

impl PageHeader {
    /// Parses a page header from the start of `page`; `None` if `page` is shorter than the
    /// header (24 bytes, or 40 with `XLP_LONG_HEADER`).
    pub fn parse(page: &[u8]) -> Option<Self> {
        let short = page.get(..SHORT_HEADER_LEN as usize)?;
        let info = le_u16(short, 2);
        let long = if info & XLP_LONG_HEADER != 0 {
            let long = page.get(..LONG_HEADER_LEN as usize)?;
            Some(LongHeader {
                system_identifier: le_u64(long, 24),
                segment_size: le_u32(long, 32),
                page_size: le_u32(long, 36),
            })
        } else {
            None
        };
        Some(Self {
            magic: le_u16(short, 0),
            info,
            timeline: le_u32(short, 4),
            page_addr: le_u64(short, 8),
            rem_len: le_u32(short, 16),
            long,
        })
    }

    /// Appends the header as it lies at the start of a page: 24 bytes (the short header,
    /// padded), or 40 with the long fields. [`parse`](Self::parse) reads it back when
    /// `info` has [`XLP_LONG_HEADER`] exactly when `long` is set.
    ///
    /// ```
    /// use pg_walstream_codec::wal::{LongHeader, PageHeader, XLP_LONG_HEADER};
    /// let header = PageHeader {
    ///     magic: 0xD118,
    ///     info: XLP_LONG_HEADER,
    ///     timeline: 1,
    ///     page_addr: 0x0100_0000,
    ///     rem_len: 0,
    ///     long: Some(LongHeader { system_identifier: 7, segment_size: 16 << 20, page_size: 8192 }),
    /// };
    /// let mut page = Vec::new();
    /// header.encode(&mut page);
    /// assert_eq!(page.len(), 40);
    /// assert_eq!(PageHeader::parse(&page), Some(header));
    /// ```
    pub fn encode(&self, buf: &mut impl bytes::BufMut) {
        buf.put_u16_le(self.magic);
        buf.put_u16_le(self.info);
        buf.put_u32_le(self.timeline);
        buf.put_u64_le(self.page_addr);
        buf.put_u32_le(self.rem_len);
        buf.put_u32_le(0);
        if let Some(long) = self.long {
            buf.put_u64_le(long.system_identifier);
            buf.put_u32_le(long.segment_size);
            buf.put_u32_le(long.page_size);
        }
    }

    /// The header's size: 40 for a long header, 24 otherwise.
    pub fn header_len(&self) -> u32 {
        if self.long.is_some() {
            LONG_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        }
    }

    /// Whether the page starts with the continuation of a record.
    pub fn is_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_CONTRECORD != 0
    }

    /// Whether the page says an earlier, unfinished record was overwritten.
    pub fn is_overwrite_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD != 0
    }
}

#[inline]
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
