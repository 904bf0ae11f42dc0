//! Spill files: a transaction's changes past the memory limit, written as owned bytes to an
//! anonymous temporary file and read back, in order, on delivery.
//!
//! Record layout (little endian): `u8 kind` (`I`, `U`, `D` for a change, `S` for an event
//! kept in memory, by index), then for a change `u8 has_xid, u32 xid, u32 relation index,
//! u64 wal_start, u64 wal_end, i64 send_time, u32 len, len bytes`; for `S` a `u32 index`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;
use pg_walstream_codec::{Lsn, PgTimestamp, Xid};

/// What kind of change a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Insert,
    Update,
    Delete,
}

/// One record read back.
#[derive(Debug)]
pub(crate) enum Record {
    Change {
        kind: ChangeKind,
        xid: Option<Xid>,
        relation: u32,
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: PgTimestamp,
        data: Bytes,
    },
    Side(u32),
}

/// The writing side of a spill file.
#[derive(Debug)]
pub(crate) struct SpillWriter {
    file: BufWriter<File>,
    bytes: u64,
}

impl SpillWriter {
    pub(crate) fn create(dir: Option<&Path>) -> io::Result<Self> {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        Ok(SpillWriter {
            file: BufWriter::with_capacity(64 * 1024, file),
            bytes: 0,
        })
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.bytes
    }

    #[allow(clippy::too_many_arguments, reason = "one record's fields")]
    pub(crate) fn change(
        &mut self,
        kind: ChangeKind,
        xid: Option<Xid>,
        relation: u32,
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: PgTimestamp,
        data: &[u8],
    ) -> io::Result<()> {
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "change over 4 GiB"))?;
        let tag = match kind {
            ChangeKind::Insert => b'I',
            ChangeKind::Update => b'U',
            ChangeKind::Delete => b'D',
        };
        let mut header = [0u8; 38];
        header[0] = tag;
        header[1] = u8::from(xid.is_some());
        header[2..6].copy_from_slice(&xid.map_or(0, |x| x.0).to_le_bytes());
        header[6..10].copy_from_slice(&relation.to_le_bytes());
        header[10..18].copy_from_slice(&wal_start.0.to_le_bytes());
        header[18..26].copy_from_slice(&wal_end.0.to_le_bytes());
        header[26..34].copy_from_slice(&send_time.0.to_le_bytes());
        header[34..38].copy_from_slice(&len.to_le_bytes());
        self.file.write_all(&header)?;
        self.file.write_all(data)?;
        self.bytes += header.len() as u64 + data.len() as u64;
        Ok(())
    }

    pub(crate) fn side(&mut self, index: u32) -> io::Result<()> {
        let mut record = [0u8; 5];
        record[0] = b'S';
        record[1..].copy_from_slice(&index.to_le_bytes());
        self.file.write_all(&record)?;
        self.bytes += record.len() as u64;
        Ok(())
    }

    /// Finishes writing; the reader starts at the first record.
    pub(crate) fn into_reader(self) -> io::Result<SpillReader> {
        let mut file = self
            .file
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SpillReader {
            file: BufReader::with_capacity(64 * 1024, file),
        })
    }
}

/// The reading side of a spill file.
#[derive(Debug)]
pub(crate) struct SpillReader {
    file: BufReader<File>,
}

impl SpillReader {
    /// The next record, `None` at the end of the file.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        let mut tag = [0u8; 1];
        if self.file.read(&mut tag)? == 0 {
            return Ok(None);
        }
        let kind = match tag[0] {
            b'S' => {
                let mut index = [0u8; 4];
                self.file.read_exact(&mut index)?;
                return Ok(Some(Record::Side(u32::from_le_bytes(index))));
            }
            b'I' => ChangeKind::Insert,
            b'U' => ChangeKind::Update,
            b'D' => ChangeKind::Delete,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "corrupt spill record",
                ));
            }
        };
        let mut header = [0u8; 37];
        self.file.read_exact(&mut header)?;
        let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8"));
        let xid = (header[0] == 1).then(|| Xid(u32_at(1)));
        let len = u32_at(33) as usize;
        let mut data = vec![0u8; len];
        self.file.read_exact(&mut data)?;
        Ok(Some(Record::Change {
            kind,
            xid,
            relation: u32_at(5),
            wal_start: Lsn(u64_at(9)),
            wal_end: Lsn(u64_at(17)),
            send_time: PgTimestamp(u64_at(25) as i64),
            data: Bytes::from(data),
        }))
    }
}
