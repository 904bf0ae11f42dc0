//! The push-based WAL decoder: bytes in (any chunking), records out.

use alloc::vec::Vec;

use crate::lsn::{Lsn, WalSegmentSize};
use crate::wal::error::WalError;
use crate::wal::page::{PageHeader, SHORT_HEADER_LEN, WalVersion, le_u32, le_u64};
use crate::wal::record::{Anatomy, BlockInfo, RECORD_HEADER_LEN, Record, decode_anatomy};
use crate::wal::rmgr::RmgrId;

/// A CRC-32C continuation function: `crc(previous, bytes)` extends the checksum `previous`
/// (0 to start) over `bytes`, as `crc32c::crc32c_append` does.
pub type Crc32cFn = fn(u32, &[u8]) -> u32;

const XLOG_SWITCH: u8 = 0x40;
/// Longer records are rejected before buffering them (PostgreSQL's limit is 1020 MiB).
const MAX_RECORD_LEN: u32 = 1 << 30;

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
    /// `crc32c` crate (hardware-accelerated) checks every record's CRC; without it, give a
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

    /// Appends `data`, the bytes following those fed before.
    pub fn feed(&mut self, data: &[u8]) {
        self.compact();
        let mut data = data;
        if self.discard > 0 {
            let n = (self.discard.min(data.len() as u64)) as usize;
            self.discard -= n as u64;
            data = &data[n..];
        }
        if data.is_empty() {
            return;
        }
        let need = self.filled + data.len();
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        self.buf[self.filled..need].copy_from_slice(data);
        self.filled = need;
    }

    /// Lets `read` fill up to `max` bytes straight into the decoder's buffer (no copy),
    /// returning how many it wrote; its result is passed through.
    ///
    /// # Errors
    /// Whatever `read` returns.
    pub fn feed_with<E>(
        &mut self,
        max: usize,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        self.compact();
        let need = self.filled + max;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        let n = read(&mut self.buf[self.filled..need])?.min(max);
        if self.discard > 0 {
            let drop = (self.discard.min(n as u64)) as usize;
            self.discard -= drop as u64;
            self.buf
                .copy_within(self.filled + drop..self.filled + n, self.filled);
            self.filled += n - drop;
        } else {
            self.filled += n;
        }
        Ok(n)
    }

    /// Says that no more bytes will come.
    ///
    /// # Errors
    /// [`WalError::Truncated`] if the input ended inside a page header or a record (the
    /// first error met before, if any).
    pub fn finish(&self) -> Result<(), WalError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let end = self.fed_end().as_u64();
        match self.state {
            State::Assemble { .. } | State::Skip { .. } => Err(WalError::Truncated {
                lsn: Lsn::new(end.max(self.pos)),
                inside: "a record",
            }),
            _ if end > self.pos => Err(WalError::Truncated {
                lsn: Lsn::new(end),
                inside: "a record",
            }),
            _ => Ok(()),
        }
    }

    fn compact(&mut self) {
        let consumed = self.pos.saturating_sub(self.buf_lsn);
        if consumed == 0 {
            return;
        }
        if consumed >= self.filled as u64 {
            // Everything buffered is consumed; bytes beyond it are skipped as they come.
            self.discard += consumed - self.filled as u64;
            self.buf_lsn = self.pos;
            self.filled = 0;
        } else {
            let c = consumed as usize;
            self.buf.copy_within(c..self.filled, 0);
            self.filled -= c;
            self.buf_lsn = self.pos;
        }
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

    fn buffered(&self, lsn: u64, len: u64) -> Option<usize> {
        let at = lsn.checked_sub(self.buf_lsn)?;
        (at + len <= self.filled as u64).then_some(at as usize)
    }

    /// Runs the state machine until a record is complete or input runs out.
    fn advance(&mut self) -> Result<Option<Found>, WalError> {
        loop {
            if !self.page_header()? {
                return Ok(None);
            }
            let page_size = u64::from(self.page_size.unwrap_or(0));
            let page_end = (self.pos | (page_size - 1)) + 1;
            match self.state {
                // `page_header` always leaves the start state.
                State::Start => return Ok(None),
                State::Skip { remaining } => {
                    let avail = (self.buf_lsn + self.filled as u64).saturating_sub(self.pos);
                    let take = u64::from(remaining).min(page_end - self.pos).min(avail);
                    if take == 0 {
                        return Ok(None);
                    }
                    self.pos += take;
                    let remaining = remaining - take as u32;
                    self.state = if remaining == 0 {
                        self.pos = align8(self.pos);
                        State::Record
                    } else {
                        State::Skip { remaining }
                    };
                }
                State::Record => {
                    let Some(at) = self.buffered(self.pos, 4) else {
                        return Ok(None);
                    };
                    let total = le_u32(&self.buf, at);
                    let start = self.pos;
                    if total == 0 {
                        return Err(WalError::ZeroLength {
                            lsn: Lsn::new(start),
                        });
                    }
                    if !(RECORD_HEADER_LEN..=MAX_RECORD_LEN).contains(&total) {
                        return Err(WalError::InvalidRecordLength {
                            lsn: Lsn::new(start),
                            length: total,
                        });
                    }
                    let on_page = page_end - start;
                    if u64::from(total) <= on_page {
                        let Some(at) = self.buffered(start, u64::from(total)) else {
                            return Ok(None);
                        };
                        let len = total as usize;
                        self.check_header(start, at, false)?;
                        self.check_crc(start, at, len, false)?;
                        let end = self.finish_record(
                            start,
                            start + u64::from(align8_u32(total)),
                            at,
                            false,
                        );
                        if start < self.skip_before {
                            continue;
                        }
                        return Ok(Some(Found::Buffer {
                            at,
                            len,
                            start,
                            end,
                        }));
                    }
                    // The record continues on the next page(s).
                    let Some(at) = self.buffered(start, on_page) else {
                        return Ok(None);
                    };
                    let checked = on_page >= u64::from(RECORD_HEADER_LEN);
                    if checked {
                        self.check_header(start, at, false)?;
                    }
                    self.assembly.clear();
                    self.assembly
                        .extend_from_slice(&self.buf[at..at + on_page as usize]);
                    self.pos = page_end;
                    self.state = State::Assemble {
                        start,
                        total,
                        checked,
                    };
                }
                State::Assemble {
                    start,
                    total,
                    checked,
                } => {
                    let got = self.assembly.len() as u64;
                    let need = u64::from(total) - got;
                    let take = need.min(page_end - self.pos);
                    let Some(at) = self.buffered(self.pos, take) else {
                        return Ok(None);
                    };
                    self.assembly
                        .extend_from_slice(&self.buf[at..at + take as usize]);
                    let piece_start = self.pos;
                    self.pos += take;
                    let mut checked = checked;
                    if !checked && self.assembly.len() >= RECORD_HEADER_LEN as usize {
                        self.check_header(start, 0, true)?;
                        checked = true;
                    }
                    if take < need {
                        self.state = State::Assemble {
                            start,
                            total,
                            checked,
                        };
                        continue;
                    }
                    let len = self.assembly.len();
                    self.check_crc(start, 0, len, true)?;
                    let end = self.finish_record(start, align8(piece_start + take), 0, true);
                    if start < self.skip_before {
                        continue;
                    }
                    return Ok(Some(Found::Assembly { start, end }));
                }
            }
        }
    }

    /// Bookkeeping after a complete, checked record: the next position (after the segment's
    /// end for `XLOG_SWITCH`), the prev link. Returns the record's end LSN.
    fn finish_record(&mut self, start: u64, next: u64, at: usize, assembled: bool) -> u64 {
        let header = if assembled {
            &self.assembly[..24]
        } else {
            &self.buf[at..at + 24]
        };
        let (info, rmid) = (header[16], header[17]);
        let mut end = next;
        if rmid == RmgrId::XLOG.0
            && info & 0xF0 == XLOG_SWITCH
            && let Some(seg) = self.segment_size
        {
            let seg = u64::from(seg);
            end = (end + seg - 1) & !(seg - 1);
        }
        self.pos = end;
        self.state = State::Record;
        self.prev = Some(start);
        self.records += 1;
        end
    }

    fn check_header(&self, start: u64, at: usize, assembled: bool) -> Result<(), WalError> {
        let header = if assembled {
            &self.assembly[..24]
        } else {
            &self.buf[at..at + 24]
        };
        let lsn = Lsn::new(start);
        let rmid = header[17];
        if !RmgrId(rmid).is_valid(self.current_version) {
            return Err(WalError::InvalidRmgr { lsn, rmid });
        }
        let prev = le_u64(header, 8);
        match self.prev {
            Some(expected) if prev != expected => Err(WalError::InvalidPrevLink {
                lsn,
                found: Lsn::new(prev),
                expected: Lsn::new(expected),
            }),
            None if prev >= start => Err(WalError::InvalidPrevLink {
                lsn,
                found: Lsn::new(prev),
                expected: Lsn::new(start),
            }),
            _ => Ok(()),
        }
    }

    fn check_crc(
        &self,
        start: u64,
        at: usize,
        len: usize,
        assembled: bool,
    ) -> Result<(), WalError> {
        let Some(crc) = self.crc else {
            return Ok(());
        };
        let bytes = if assembled {
            &self.assembly[..len]
        } else {
            &self.buf[at..at + len]
        };
        let computed = crc(crc(0, &bytes[24..]), &bytes[..20]);
        let stored = le_u32(bytes, 20);
        if computed == stored {
            Ok(())
        } else {
            Err(WalError::CrcMismatch {
                lsn: Lsn::new(start),
                stored,
                computed,
            })
        }
    }

    /// Validates the header of the page `pos` is on, if not done yet. `Ok(false)`: need
    /// more bytes.
    fn page_header(&mut self) -> Result<bool, WalError> {
        if let (Some(ps), Some(page)) = (self.page_size, self.current_page)
            && self.pos >= page
            && self.pos < page + u64::from(ps)
            && self.state != State::Start
        {
            return Ok(true);
        }
        let lsn = Lsn::new(self.pos);
        if let Some(ps) = self.page_size
            && !self.pos.is_multiple_of(u64::from(ps))
        {
            return Err(WalError::InvalidStart {
                lsn,
                reason: "not at a page boundary",
            });
        }
        let Some(at) = self.buffered(self.pos, u64::from(SHORT_HEADER_LEN)) else {
            return Ok(false);
        };
        let Some(header) = PageHeader::parse(&self.buf[at..self.filled]) else {
            return Ok(false);
        };
        self.check_page(lsn, &header)?;
        self.current_page = Some(self.pos);
        self.pos += u64::from(header.header_len());
        self.continuation(lsn, &header)?;
        Ok(true)
    }

    fn check_page(&mut self, lsn: Lsn, h: &PageHeader) -> Result<(), WalError> {
        let Some(found) = WalVersion::from_magic(h.magic) else {
            return Err(WalError::InvalidMagic {
                lsn,
                magic: h.magic,
            });
        };
        match self.version {
            Some(expected) if expected != found => {
                return Err(WalError::VersionMismatch {
                    lsn,
                    found,
                    expected,
                });
            }
            _ => self.version = Some(found),
        }
        self.current_version = found;
        if h.info & !crate::wal::page::XLP_ALL_FLAGS != 0 {
            return Err(WalError::InvalidInfoBits { lsn, info: h.info });
        }
        if let Some(long) = h.long {
            if let Some(expected) = self.system_identifier
                && expected != long.system_identifier
            {
                return Err(WalError::SystemIdMismatch {
                    lsn,
                    found: long.system_identifier,
                    expected,
                });
            }
            self.system_identifier = Some(long.system_identifier);
            let seg_ok = WalSegmentSize::new(long.segment_size).is_some();
            if !seg_ok || self.segment_size.is_some_and(|s| s != long.segment_size) {
                return Err(WalError::SegmentSizeMismatch {
                    lsn,
                    found: long.segment_size,
                    expected: self.segment_size.unwrap_or(0),
                });
            }
            let ps_ok =
                long.page_size.is_power_of_two() && (1024..=65536).contains(&long.page_size);
            if !ps_ok || self.page_size.is_some_and(|p| p != long.page_size) {
                return Err(WalError::PageSizeMismatch {
                    lsn,
                    found: long.page_size,
                    expected: self.page_size.unwrap_or(0),
                });
            }
            self.segment_size = Some(long.segment_size);
            self.page_size = Some(long.page_size);
            if !lsn.as_u64().is_multiple_of(u64::from(long.segment_size)) {
                return Err(WalError::InvalidInfoBits { lsn, info: h.info });
            }
        } else {
            let Some(ps) = self.page_size else {
                return Err(WalError::InvalidStart {
                    lsn,
                    reason: "the page size is unknown (start at a segment boundary or configure it)",
                });
            };
            if !lsn.as_u64().is_multiple_of(u64::from(ps)) {
                return Err(WalError::InvalidStart {
                    lsn,
                    reason: "not at a page boundary",
                });
            }
            if self
                .segment_size
                .is_some_and(|s| lsn.as_u64().is_multiple_of(u64::from(s)))
            {
                return Err(WalError::MissingLongHeader { lsn });
            }
        }
        if h.page_addr != lsn.as_u64() {
            return Err(WalError::UnexpectedPageAddr {
                lsn,
                found: Lsn::new(h.page_addr),
            });
        }
        if self.current_page.is_some_and(|p| lsn.as_u64() > p) && h.timeline < self.timeline {
            return Err(WalError::TimelineOutOfSequence {
                lsn,
                found: h.timeline,
                previous: self.timeline,
            });
        }
        self.timeline = h.timeline;
        Ok(())
    }

    /// What the page's continuation flags mean for the current state.
    fn continuation(&mut self, lsn: Lsn, h: &PageHeader) -> Result<(), WalError> {
        match self.state {
            State::Start => {
                self.state = if h.is_contrecord() && h.rem_len > 0 {
                    State::Skip {
                        remaining: h.rem_len,
                    }
                } else {
                    State::Record
                };
            }
            State::Skip { remaining } => {
                if h.is_overwrite_contrecord() {
                    self.state = State::Record;
                } else if !h.is_contrecord() {
                    return Err(WalError::MissingContrecord {
                        lsn,
                        record: Lsn::INVALID,
                    });
                } else if h.rem_len != remaining {
                    return Err(WalError::InvalidContrecordLength {
                        lsn,
                        found: h.rem_len,
                        expected: remaining,
                    });
                }
            }
            State::Record => {
                if h.is_contrecord() && !h.is_overwrite_contrecord() {
                    return Err(WalError::UnexpectedContrecord { lsn });
                }
            }
            State::Assemble { start, total, .. } => {
                let expected = total - self.assembly.len() as u32;
                if h.is_overwrite_contrecord() {
                    self.aborted = Some(Lsn::new(start));
                    self.assembly.clear();
                    self.state = State::Record;
                } else if !h.is_contrecord() {
                    return Err(WalError::MissingContrecord {
                        lsn,
                        record: Lsn::new(start),
                    });
                } else if h.rem_len == 0 || h.rem_len != expected {
                    return Err(WalError::InvalidContrecordLength {
                        lsn,
                        found: h.rem_len,
                        expected,
                    });
                }
            }
        }
        Ok(())
    }
}

const fn align8(v: u64) -> u64 {
    (v + 7) & !7
}

const fn align8_u32(v: u32) -> u32 {
    (v + 7) & !7
}

#[cfg(feature = "std")]
#[allow(clippy::unnecessary_wraps)] // the no_std twin returns `None`
fn default_crc() -> Option<Crc32cFn> {
    Some(crc32c::crc32c_append)
}

#[cfg(not(feature = "std"))]
fn default_crc() -> Option<Crc32cFn> {
    None
}
