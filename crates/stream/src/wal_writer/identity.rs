//! Which cluster the segments in a directory belong to: the system identifier (`xlp_sysid`)
//! in the long page header that starts every segment file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use pg_walstream_codec::WalSegmentSize;
use pg_walstream_codec::wal::PageHeader;

use super::{Compression, WalWriterError, segment_files};

/// Bytes of a segment's long page header (`XLogLongPageHeaderData`).
const LONG_HEADER_LEN: usize = pg_walstream_codec::wal::LONG_HEADER_LEN as usize;

/// Checks that every WAL segment file in `dir` (complete or `.partial`, compressed or not)
/// was written by the cluster with system identifier `system_id` — what `IDENTIFY_SYSTEM`
/// reports as `systemid`. Returns how many files were checked.
///
/// A `.partial` segment too short (or, compressed, too truncated) to hold its first page
/// header is skipped: it is rewritten from its start when streaming resumes.
///
/// ```
/// use pg_walstream_codec::WalSegmentSize;
/// use pg_walstream_stream::wal_writer::check_system_identifier;
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut page = vec![0u8; 8192];
/// page[2] = 0x02; // XLP_LONG_HEADER
/// page[24..32].copy_from_slice(&7_u64.to_le_bytes()); // xlp_sysid
/// std::fs::write(dir.path().join("000000010000000000000001"), &page).unwrap();
/// let seg = WalSegmentSize::DEFAULT;
/// assert_eq!(check_system_identifier(dir.path(), seg, 7).unwrap(), 1);
/// assert!(check_system_identifier(dir.path(), seg, 8).is_err());
/// ```
///
/// # Errors
/// [`WalWriterError::OtherSystem`] for a segment of another cluster;
/// [`WalWriterError::NotASegment`] for a complete segment that does not start with a long
/// page header; [`WalWriterError::Io`] when the directory or a file cannot be read.
pub fn check_system_identifier(
    dir: &Path,
    segment_size: WalSegmentSize,
    system_id: u64,
) -> Result<usize, WalWriterError> {
    let mut checked = 0;
    let mut files = segment_files(dir, segment_size)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, file) in files {
        let partial = file.partial;
        let header = match read_head(&path, file.compression) {
            Ok(head) => head.and_then(|head| PageHeader::parse(&head)?.long),
            Err(_) if partial => continue,
            Err(source) => {
                return Err(WalWriterError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        let Some(long) = header else {
            if partial {
                continue;
            }
            return Err(WalWriterError::NotASegment { path });
        };
        if long.system_identifier != system_id {
            return Err(WalWriterError::OtherSystem {
                path,
                found: long.system_identifier,
                expected: system_id,
            });
        }
        checked += 1;
    }
    Ok(checked)
}

/// The first [`LONG_HEADER_LEN`] bytes of the segment's content (decompressed); `None` when
/// the file holds fewer.
fn read_head(path: &Path, compression: Compression) -> std::io::Result<Option<Vec<u8>>> {
    let file = File::open(path)?;
    let mut reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip { .. } => Box::new(flate2::read::GzDecoder::new(file)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(file)),
        Compression::Zstd { .. } => Box::new(zstd::stream::read::Decoder::new(file)?),
    };
    let mut head = Vec::with_capacity(LONG_HEADER_LEN);
    reader
        .by_ref()
        .take(LONG_HEADER_LEN as u64)
        .read_to_end(&mut head)?;
    Ok((head.len() == LONG_HEADER_LEN).then_some(head))
}
