//! Page headers: magic (version), flags, `xlp_pageaddr`, timeline order, the long
//! header's system identifier and sizes, and what continuation flags mean for the record
//! being assembled.

use crate::lsn::{Lsn, WalSegmentSize};
use crate::wal::decoder::{State, WalDecoder};
use crate::wal::error::WalError;
use crate::wal::page::{PageHeader, SHORT_HEADER_LEN, WalVersion};

impl WalDecoder {
    /// Validates the header of the page `pos` is on, if not done yet. `Ok(false)`: need
    /// more bytes.
    pub(super) fn page_header(&mut self) -> Result<bool, WalError> {
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
