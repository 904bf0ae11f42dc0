//! The record state machine: records within a page, records spanning pages and
//! segments, skipping a record begun before the input, `XLOG_SWITCH`.

use crate::lsn::Lsn;
use crate::wal::decoder::{Found, State, WalDecoder};
use crate::wal::error::WalError;
use crate::wal::page::le_u32;
use crate::wal::record::RECORD_HEADER_LEN;
use crate::wal::rmgr::RmgrId;

const XLOG_SWITCH: u8 = 0x40;
/// Longer records are rejected before buffering them (PostgreSQL's limit is 1020 MiB).
const MAX_RECORD_LEN: u32 = 1 << 30;

impl WalDecoder {
    /// Runs the state machine until a record is complete or input runs out.
    pub(super) fn advance(&mut self) -> Result<Option<Found>, WalError> {
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
    pub(super) fn finish_record(
        &mut self,
        start: u64,
        next: u64,
        at: usize,
        assembled: bool,
    ) -> u64 {
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
}

const fn align8(v: u64) -> u64 {
    (v + 7) & !7
}

const fn align8_u32(v: u32) -> u32 {
    (v + 7) & !7
}
