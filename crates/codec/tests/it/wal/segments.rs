//! Reads the segment files covering an LSN range from a data directory's pg_wal.

use std::path::Path;

use pg_walstream_codec::{Lsn, WalSegmentSize};

/// The bytes of the segments from the one holding `first` to the one holding `end`.
pub(crate) fn read_range(
    pg_wal: &Path,
    timeline: u32,
    first: Lsn,
    end: Lsn,
    segment_size: u32,
) -> Vec<u8> {
    let size = WalSegmentSize::new(segment_size).expect("valid segment size");
    let mut out = Vec::new();
    let mut lsn = first;
    while lsn <= end {
        let name = lsn.segment_file_name(timeline, size).to_string();
        let path = pg_wal.join(&name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(bytes.len() as u64, u64::from(segment_size), "{name}");
        out.extend_from_slice(&bytes);
        lsn += u64::from(segment_size);
    }
    out
}
