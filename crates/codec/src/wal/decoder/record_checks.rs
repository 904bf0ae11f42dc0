//! Checks of a complete record: resource manager, `xl_prev` link, CRC-32C.

use crate::lsn::Lsn;
use crate::wal::decoder::WalDecoder;
use crate::wal::error::WalError;
use crate::wal::page::{le_u32, le_u64};
use crate::wal::rmgr::RmgrId;

impl WalDecoder {
    pub(super) fn check_header(
        &self,
        start: u64,
        at: usize,
        assembled: bool,
    ) -> Result<(), WalError> {
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

    pub(super) fn check_crc(
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
}
