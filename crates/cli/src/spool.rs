//! A streamed transaction's events, waiting in a temporary file until its Stream Commit.
//!
//! Streamed transactions are by definition the large ones (they exceeded the server's
//! `logical_decoding_work_mem`), so `jsonl-tx` keeps their serialized events on disk, in an
//! unnamed temporary file (in `$TMPDIR`, removed by the system however the process ends), and
//! copies them out at commit: memory stays at a buffer's worth per open transaction.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// Buffer size for writing and reading a spool.
const BUFFER: usize = 64 * 1024;

/// The held events of one streamed transaction.
#[derive(Debug)]
pub(crate) struct Spool {
    file: BufWriter<File>,
    /// Subtransactions rolled back (Stream Abort with a subxid): their events are skipped.
    aborted: HashSet<u64>,
}

/// Record layout: a flag byte (1: an xid follows), the xid (u64), the JSON's length (u64),
/// the JSON. Native byte order: the file never outlives the process.
impl Spool {
    /// An empty spool in a new temporary file.
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Spool {
            file: BufWriter::with_capacity(BUFFER, tempfile::tempfile()?),
            aborted: HashSet::new(),
        })
    }

    /// Holds one event: its (sub)transaction xid and its JSON.
    ///
    /// # Errors
    /// Write failures.
    pub(crate) fn push(&mut self, xid: Option<u64>, json: &[u8]) -> io::Result<()> {
        self.file.write_all(&[u8::from(xid.is_some())])?;
        self.file.write_all(&xid.unwrap_or(0).to_ne_bytes())?;
        self.file.write_all(&(json.len() as u64).to_ne_bytes())?;
        self.file.write_all(json)
    }

    /// Drops the events of subtransaction `subxid` (rolled back).
    pub(crate) fn abort_subtransaction(&mut self, subxid: u64) {
        self.aborted.insert(subxid);
    }

    /// Writes the events still held, separated by commas, to `out`; returns how many.
    ///
    /// # Errors
    /// Read or write failures.
    pub(crate) fn replay(self, out: &mut impl Write) -> io::Result<u64> {
        let mut file = self
            .file
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        let mut input = BufReader::with_capacity(BUFFER, file);
        let mut written = 0u64;
        let mut head = [0u8; 17];
        loop {
            match input.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(written),
                Err(e) => return Err(e),
            }
            let word = |at: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&head[at..at + 8]);
                u64::from_ne_bytes(bytes)
            };
            let xid = (head[0] == 1).then(|| word(1));
            let mut json = (&mut input).take(word(9));
            if xid.is_some_and(|x| self.aborted.contains(&x)) {
                io::copy(&mut json, &mut io::sink())?;
                continue;
            }
            if written > 0 {
                out.write_all(b",")?;
            }
            io::copy(&mut json, out)?;
            written += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keeps_order_and_skips_rolled_back_subtransactions() {
        let mut spool = Spool::new().unwrap();
        spool.push(Some(9), br#"{"a":1}"#).unwrap();
        spool.push(Some(10), br#"{"b":2}"#).unwrap();
        spool.push(None, b"{}").unwrap();
        spool.push(Some(9), br#"{"c":3}"#).unwrap();
        spool.abort_subtransaction(10);
        let mut out = Vec::new();
        assert_eq!(spool.replay(&mut out).unwrap(), 3);
        assert_eq!(out, br#"{"a":1},{},{"c":3}"#);
        let mut out = Vec::new();
        assert_eq!(Spool::new().unwrap().replay(&mut out).unwrap(), 0);
        assert!(out.is_empty());
    }
}
