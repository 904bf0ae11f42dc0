//! A small WAL writer (feature `std`): lays records out in pages the way PostgreSQL does,
//! with page headers, continuation records, alignment and CRC-32C. For tests, fuzzing,
//! benchmarks and users who want WAL fixtures without a server; it does not produce
//! rmgr-specific payloads beyond what the caller gives.

use alloc::vec::Vec;

use crate::lsn::Lsn;
use crate::wal::page::{WalVersion, XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER};

/// Writes WAL into a byte vector.
///
/// ```
/// use pg_walstream_codec::Lsn;
/// use pg_walstream_codec::wal::{RmgrId, WalDecoder, WalVersion, writer::WalWriter};
///
/// let mut w = WalWriter::new(WalVersion::V16, Lsn::new(0x0100_0000), 1 << 20, 8192);
/// let lsn = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 42, b"hello");
/// w.finish_page();
/// let mut d = WalDecoder::new(Lsn::new(0x0100_0000));
/// d.feed(w.bytes());
/// let r = d.next_record().unwrap().unwrap();
/// assert_eq!((r.lsn(), r.xid(), r.main_data()), (lsn, 42, &b"hello"[..]));
/// ```
#[derive(Debug, Clone)]
pub struct WalWriter {
    version: WalVersion,
    page_size: u64,
    segment_size: u64,
    system_identifier: u64,
    timeline: u32,
    out: Vec<u8>,
    pos: u64,
    prev: u64,
    extra_flags: u16,
}

impl WalWriter {
    /// A writer starting at `start` (a segment boundary) with the given segment and page
    /// sizes, system identifier 7 and timeline 1.
    pub fn new(version: WalVersion, start: Lsn, segment_size: u32, page_size: u32) -> Self {
        Self {
            version,
            page_size: u64::from(page_size),
            segment_size: u64::from(segment_size),
            system_identifier: 7,
            timeline: 1,
            out: Vec::new(),
            pos: start.as_u64(),
            prev: 0,
            extra_flags: 0,
        }
    }

    /// Sets `xl_prev` of the next record.
    pub fn set_prev(&mut self, prev: Lsn) {
        self.prev = prev.as_u64();
    }

    /// Adds `flags` (e.g. `XLP_FIRST_IS_OVERWRITE_CONTRECORD`) to the next page header.
    pub fn set_next_page_flags(&mut self, flags: u16) {
        self.extra_flags = flags;
    }

    /// The bytes written so far (from the start LSN).
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Mutable access to the bytes, to corrupt them in tests.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.out
    }

    /// The LSN where the next record goes.
    pub fn position(&self) -> Lsn {
        Lsn::new(self.pos)
    }

    /// Appends a record whose body (everything after the 24-byte header: block headers,
    /// data, main data) is `body`; returns its LSN.
    pub fn append(&mut self, rmid: crate::wal::RmgrId, info: u8, xid: u32, body: &[u8]) -> Lsn {
        let total = 24 + body.len();
        let mut rec = Vec::with_capacity(total);
        rec.extend_from_slice(&(total as u32).to_le_bytes());
        rec.extend_from_slice(&xid.to_le_bytes());
        rec.extend_from_slice(&self.prev.to_le_bytes());
        rec.extend_from_slice(&[info, rmid.0, 0, 0]);
        rec.extend_from_slice(&[0; 4]);
        rec.extend_from_slice(body);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&rec[24..]), &rec[..20]);
        rec[20..24].copy_from_slice(&crc.to_le_bytes());
        // A record never starts in the last bytes of a page's header area.
        if self.pos.is_multiple_of(self.page_size) {
            self.page_header(0);
        }
        let lsn = self.pos;
        self.put_record(&rec);
        self.prev = lsn;
        Lsn::new(lsn)
    }

    /// Appends a record with only main data (short or long form by length).
    pub fn append_main_data(
        &mut self,
        rmid: crate::wal::RmgrId,
        info: u8,
        xid: u32,
        main: &[u8],
    ) -> Lsn {
        let mut body = Vec::with_capacity(main.len() + 5);
        if let Ok(short) = u8::try_from(main.len()) {
            body.extend_from_slice(&[255, short]);
        } else {
            body.push(254);
            body.extend_from_slice(&(main.len() as u32).to_le_bytes());
        }
        body.extend_from_slice(main);
        self.append(rmid, info, xid, &body)
    }

    /// Appends an `XLOG_SWITCH` record and zero-fills the rest of the segment.
    pub fn switch(&mut self) -> Lsn {
        let lsn = self.append(crate::wal::RmgrId::XLOG, 0x40, 0, &[]);
        let end = self.pos.next_multiple_of(self.segment_size);
        self.zero_to(end);
        lsn
    }

    /// Zero-fills to the end of the current page.
    pub fn finish_page(&mut self) {
        let end = self.pos.next_multiple_of(self.page_size);
        self.zero_to(end);
    }

    fn zero_to(&mut self, end: u64) {
        let n = (end - self.pos) as usize;
        self.out.resize(self.out.len() + n, 0);
        self.pos = end;
    }

    fn put_record(&mut self, rec: &[u8]) {
        let mut rest = rec;
        while !rest.is_empty() {
            if self.pos.is_multiple_of(self.page_size) {
                self.page_header(rest.len() as u32);
            }
            let room = (self.page_size - self.pos % self.page_size) as usize;
            let take = room.min(rest.len());
            self.out.extend_from_slice(&rest[..take]);
            self.pos += take as u64;
            rest = &rest[take..];
        }
        let aligned = self.pos.next_multiple_of(8);
        self.zero_to(aligned);
    }

    fn page_header(&mut self, rem_len: u32) {
        let long = self.pos.is_multiple_of(self.segment_size);
        let mut info = core::mem::take(&mut self.extra_flags);
        if rem_len > 0 {
            info |= XLP_FIRST_IS_CONTRECORD;
        }
        if long {
            info |= XLP_LONG_HEADER;
        }
        let o = &mut self.out;
        o.extend_from_slice(&self.version.magic().to_le_bytes());
        o.extend_from_slice(&info.to_le_bytes());
        o.extend_from_slice(&self.timeline.to_le_bytes());
        o.extend_from_slice(&self.pos.to_le_bytes());
        o.extend_from_slice(&rem_len.to_le_bytes());
        o.extend_from_slice(&[0; 4]);
        if long {
            o.extend_from_slice(&self.system_identifier.to_le_bytes());
            o.extend_from_slice(&(self.segment_size as u32).to_le_bytes());
            o.extend_from_slice(&(self.page_size as u32).to_le_bytes());
            self.pos += 40;
        } else {
            self.pos += 24;
        }
    }
}
