//! Log sequence numbers and WAL segment arithmetic.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::str::FromStr;

/// A PostgreSQL log sequence number: a byte position in the write-ahead log.
///
/// Formats and parses as PostgreSQL does (`pg_lsn`): two upper-case hexadecimal halves
/// separated by `/`, each 1–8 digits.
///
/// ```
/// use pg_walstream_codec::Lsn;
///
/// let lsn: Lsn = "16/B374D848".parse().unwrap();
/// assert_eq!(lsn.as_u64(), 0x16_B374_D848);
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// assert_eq!((lsn + 8).to_string(), "16/B374D850");
/// assert_eq!(Lsn::new(0x20) - Lsn::new(0x8), 0x18);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[must_use]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`, PostgreSQL's `InvalidXLogRecPtr`.
    pub const INVALID: Lsn = Lsn(0);
    /// The largest LSN, `FFFFFFFF/FFFFFFFF`.
    pub const MAX: Lsn = Lsn(u64::MAX);

    /// An LSN from its 64-bit value.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The 64-bit value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether this is `0/0` (PostgreSQL's invalid LSN).
    pub const fn is_invalid(self) -> bool {
        self.0 == 0
    }

    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<Self> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self - bytes`, or `None` on underflow.
    pub const fn checked_sub(self, bytes: u64) -> Option<Self> {
        match self.0.checked_sub(bytes) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The distance in bytes from `earlier` to `self`, or `None` if `earlier` is later.
    pub const fn checked_distance(self, earlier: Lsn) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }

    /// `self + bytes`, saturating at [`Lsn::MAX`].
    pub const fn saturating_add(self, bytes: u64) -> Self {
        Self(self.0.saturating_add(bytes))
    }

    /// `self - bytes`, saturating at `0/0`.
    pub const fn saturating_sub(self, bytes: u64) -> Self {
        Self(self.0.saturating_sub(bytes))
    }

    /// Number of the WAL segment that contains this LSN.
    ///
    /// ```
    /// use pg_walstream_codec::{Lsn, WalSegmentSize};
    /// let seg = WalSegmentSize::DEFAULT; // 16 MiB
    /// assert_eq!(Lsn::new(0x0300_0010).segment_number(seg), 3);
    /// ```
    pub const fn segment_number(self, segment_size: WalSegmentSize) -> u64 {
        self.0 >> segment_size.0.trailing_zeros()
    }

    /// Byte offset of this LSN within its WAL segment.
    pub const fn segment_offset(self, segment_size: WalSegmentSize) -> u64 {
        self.0 & (segment_size.0 as u64 - 1)
    }

    /// The first LSN of the segment that contains this LSN.
    pub const fn segment_start(self, segment_size: WalSegmentSize) -> Self {
        Self(self.0 & !(segment_size.0 as u64 - 1))
    }

    /// Whether this LSN is the first byte of a segment.
    pub const fn is_segment_start(self, segment_size: WalSegmentSize) -> bool {
        self.segment_offset(segment_size) == 0
    }

    /// Byte offset of this LSN within its WAL page of `page_size` bytes (a power of two,
    /// 8192 by default); `None` if `page_size` is not a power of two.
    pub const fn page_offset(self, page_size: u32) -> Option<u64> {
        if page_size.is_power_of_two() {
            Some(self.0 & (page_size as u64 - 1))
        } else {
            None
        }
    }

    /// The name of the WAL segment file holding this LSN on timeline `timeline`, as
    /// PostgreSQL writes it (`%08X%08X%08X`: timeline, log, segment).
    ///
    /// ```
    /// use pg_walstream_codec::{Lsn, WalSegmentSize};
    /// let name = Lsn::new(0x1_0300_0028).segment_file_name(1, WalSegmentSize::DEFAULT);
    /// assert_eq!(name.to_string(), "000000010000000100000003");
    /// ```
    pub const fn segment_file_name(
        self,
        timeline: u32,
        segment_size: WalSegmentSize,
    ) -> SegmentFileName {
        let segno = self.segment_number(segment_size);
        let per_log = segment_size.segments_per_log_id();
        SegmentFileName {
            timeline,
            log: (segno / per_log) as u32,
            segment: (segno % per_log) as u32,
        }
    }
}

impl Add<u64> for Lsn {
    type Output = Lsn;

    /// Adds a byte count.
    ///
    /// # Panics
    /// On overflow in debug builds, like integer addition; use [`Lsn::checked_add`] when
    /// the operand comes from untrusted input.
    fn add(self, rhs: u64) -> Lsn {
        Lsn(self.0 + rhs)
    }
}

impl AddAssign<u64> for Lsn {
    fn add_assign(&mut self, rhs: u64) {
        self.0 += rhs;
    }
}

impl Sub<Lsn> for Lsn {
    type Output = u64;

    /// The distance in bytes; panics on underflow in debug builds (use
    /// [`Lsn::checked_distance`] for untrusted values).
    fn sub(self, rhs: Lsn) -> u64 {
        self.0 - rhs.0
    }
}

impl From<u64> for Lsn {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> Self {
        lsn.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 as u32)
    }
}

/// The text is not an LSN in PostgreSQL's `X/Y` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN: expected two 1-8 digit hexadecimal numbers separated by '/'")]
pub struct ParseLsnError;

impl FromStr for Lsn {
    type Err = ParseLsnError;

    /// Parses `X/Y` with 1–8 hexadecimal digits on each side, as PostgreSQL's `pg_lsn`
    /// input function does.
    ///
    /// # Errors
    /// [`ParseLsnError`] for anything else (missing `/`, empty or over-long halves,
    /// non-hex characters, signs or whitespace).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn half(h: &str) -> Result<u64, ParseLsnError> {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseLsnError);
            }
            u64::from_str_radix(h, 16).map_err(|_| ParseLsnError)
        }
        let (hi, lo) = s.split_once('/').ok_or(ParseLsnError)?;
        Ok(Lsn((half(hi)? << 32) | half(lo)?))
    }
}

/// A WAL segment size: a power of two from 1 MiB to 1 GiB, as `initdb --wal-segsize` allows.
///
/// ```
/// use pg_walstream_codec::WalSegmentSize;
/// assert_eq!(WalSegmentSize::new(16 * 1024 * 1024), Some(WalSegmentSize::DEFAULT));
/// assert_eq!(WalSegmentSize::new(3 * 1024 * 1024), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalSegmentSize(u32);

impl WalSegmentSize {
    /// 16 MiB, PostgreSQL's default.
    pub const DEFAULT: WalSegmentSize = WalSegmentSize(16 * 1024 * 1024);

    /// A segment size in bytes, or `None` unless it is a power of two in 1 MiB..=1 GiB.
    pub const fn new(bytes: u32) -> Option<Self> {
        if bytes.is_power_of_two() && bytes >= 1 << 20 && bytes <= 1 << 30 {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u32 {
        self.0
    }

    /// How many segments share one "log id" (the middle part of a segment file name).
    pub const fn segments_per_log_id(self) -> u64 {
        0x1_0000_0000 / self.0 as u64
    }

    /// The first LSN of segment number `segment`, or `None` if it is beyond the LSN range.
    pub const fn segment_start_lsn(self, segment: u64) -> Option<Lsn> {
        match segment.checked_mul(self.0 as u64) {
            Some(v) => Some(Lsn(v)),
            None => None,
        }
    }
}

impl Default for WalSegmentSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A WAL segment file name (`%08X%08X%08X`), formatted without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentFileName {
    /// Timeline ID.
    pub timeline: u32,
    /// The high part of the segment number (segments per log id).
    pub log: u32,
    /// The low part of the segment number.
    pub segment: u32,
}

impl fmt::Display for SegmentFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:08X}{:08X}{:08X}",
            self.timeline, self.log, self.segment
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parse_accepts_postgres_forms_and_rejects_others() {
        assert_eq!("0/0".parse::<Lsn>(), Ok(Lsn(0)));
        assert_eq!("ffffffff/FFFFFFFF".parse::<Lsn>(), Ok(Lsn::MAX));
        assert_eq!("1/a".parse::<Lsn>(), Ok(Lsn(0x1_0000_000A)));
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "1/2/3",
            "123456789/0",
            "0/123456789",
            " 0/0",
            "+1/0",
            "g/0",
        ] {
            assert_eq!(bad.parse::<Lsn>(), Err(ParseLsnError), "{bad:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for v in [
            0,
            1,
            0xFFFF_FFFF,
            0x1_0000_0000,
            0xDEAD_BEEF_0000_0001,
            u64::MAX,
        ] {
            let s = Lsn(v).to_string();
            assert_eq!(s.parse::<Lsn>(), Ok(Lsn(v)), "{s}");
        }
        assert_eq!(Lsn(0x1_0000_000A).to_string(), "1/A");
    }

    #[test]
    fn segments() {
        let seg = WalSegmentSize::new(1 << 24).unwrap();
        let lsn = Lsn(0x2_0500_0123);
        assert_eq!(lsn.segment_number(seg), 0x205);
        assert_eq!(lsn.segment_offset(seg), 0x123);
        assert_eq!(lsn.segment_start(seg), Lsn(0x2_0500_0000));
        assert!(!lsn.is_segment_start(seg));
        assert_eq!(seg.segment_start_lsn(0x205), Some(Lsn(0x2_0500_0000)));
        assert_eq!(
            lsn.segment_file_name(3, seg).to_string(),
            "000000030000000200000005"
        );
        let big = WalSegmentSize::new(1 << 30).unwrap();
        assert_eq!(
            lsn.segment_file_name(1, big).to_string(),
            "000000010000000200000000"
        );
        assert_eq!(lsn.page_offset(8192), Some(0x123));
        assert_eq!(lsn.page_offset(1000), None);
        assert_eq!(WalSegmentSize::new(0), None);
        assert_eq!(WalSegmentSize::new(1 << 31), None);
    }

    #[test]
    fn arithmetic() {
        assert_eq!(Lsn::MAX.checked_add(1), None);
        assert_eq!(Lsn(5).checked_sub(6), None);
        assert_eq!(Lsn(5).checked_distance(Lsn(2)), Some(3));
        assert_eq!(Lsn::MAX.saturating_add(9), Lsn::MAX);
        let mut l = Lsn(1);
        l += 2;
        assert_eq!(l, Lsn(3));
    }
}
