//! The acknowledgement record of `recv -o FILE`: `FILE.ack`, a small text file naming how
//! many bytes of FILE were durable when the server was last told to forget what they hold.
//!
//! ```text
//! pg-walstream-ack 1
//! slot SLOT
//! offset BYTES
//! lsn X/Y            (or "lsn none": nothing acknowledged yet)
//! ```
//!
//! `recv` replaces it (write a temporary file, sync, rename, sync the directory) after each
//! sync of FILE that made an acknowledgement durable, and *before* the acknowledgement goes to
//! the server; so whatever kills the process, the record never names more than is on disk, and
//! the server never forgets more than the record names. On open, FILE is cut back to
//! `offset` (dropping a torn buffer or a half transaction) and streaming starts after `lsn`
//! (when the record is for the same slot), so nothing in FILE is written twice.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use pg_walstream_codec::Lsn;

/// The first line of a record.
const MAGIC: &str = "pg-walstream-ack 1";

/// The contents of `FILE.ack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AckRecord {
    /// The slot whose stream was written.
    pub(crate) slot: String,
    /// Bytes of the output that are durable and acknowledged.
    pub(crate) offset: u64,
    /// The last position acknowledged for those bytes (`None`: nothing yet).
    pub(crate) lsn: Option<Lsn>,
}

/// `FILE.ack` for `FILE`.
pub(crate) fn record_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".ack");
    PathBuf::from(name)
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is not a pg-walstream acknowledgement record ({what})",
            path.display()
        ),
    )
}

/// Reads the record at `path`; `None` if there is none.
///
/// # Errors
/// Read failures, or `InvalidData` for a file that is not a record.
pub(crate) fn read(path: &Path) -> io::Result<Option<AckRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(invalid(
            path,
            "its first line is not \"pg-walstream-ack 1\"",
        ));
    }
    let mut field = |key: &str| {
        lines
            .next()
            .and_then(|line| line.strip_prefix(key))
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| invalid(path, &format!("no {key} line")))
    };
    let slot = field("slot")?.to_owned();
    let offset = field("offset")?
        .parse()
        .map_err(|_| invalid(path, "bad offset"))?;
    let lsn = match field("lsn")? {
        "none" => None,
        text => Some(text.parse().map_err(|_| invalid(path, "bad lsn"))?),
    };
    Ok(Some(AckRecord { slot, offset, lsn }))
}

/// Replaces the record at `path` durably: a temporary file beside it is written and synced,
/// renamed over it, and the directory synced.
///
/// # Errors
/// Write, sync or rename failures.
pub(crate) fn write(path: &Path, record: &AckRecord) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let lsn = record
        .lsn
        .map_or_else(|| "none".to_owned(), |l| l.to_string());
    let mut file = File::create(&temporary)?;
    write!(
        file,
        "{MAGIC}\nslot {}\noffset {}\nlsn {lsn}\n",
        record.slot, record.offset
    )?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(&dir.path().join("out.jsonl"));
        assert!(path.ends_with("out.jsonl.ack"));
        assert_eq!(read(&path).unwrap(), None);
        for lsn in [None, Some(Lsn(0x1_0000_0010))] {
            let record = AckRecord {
                slot: "s_1".to_owned(),
                offset: 12345,
                lsn,
            };
            write(&path, &record).unwrap();
            assert_eq!(read(&path).unwrap(), Some(record));
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "pg-walstream-ack 1\nslot s_1\noffset 12345\nlsn 1/10\n"
        );
        for garbage in [
            "",
            "something else\n",
            "pg-walstream-ack 1\nslot s\n",
            "pg-walstream-ack 1\nslot s\noffset -1\nlsn none\n",
            "pg-walstream-ack 1\nslot s\noffset 1\nlsn 12\n",
        ] {
            std::fs::write(&path, garbage).unwrap();
            let error = read(&path).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{garbage:?}");
        }
    }
}
