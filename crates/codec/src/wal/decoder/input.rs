//! Feeding bytes: the decoder's input buffer, skipping discarded ranges, the end of input.

use crate::lsn::Lsn;
use crate::wal::decoder::{State, WalDecoder};
use crate::wal::error::WalError;

impl WalDecoder {
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

    pub(super) fn buffered(&self, lsn: u64, len: u64) -> Option<usize> {
        let at = lsn.checked_sub(self.buf_lsn)?;
        (at + len <= self.filled as u64).then_some(at as usize)
    }
}
