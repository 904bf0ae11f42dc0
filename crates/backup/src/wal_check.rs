//! The WAL check of a backup, like `pg_verifybackup`'s (which runs `pg_waldump` over each of
//! the manifest's WAL ranges): every segment a range needs is in `pg_wal/`, and the records
//! from the range's start to its end parse (page headers, record headers, CRC-32C), here with
//! the codec's [`WalDecoder`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use pg_walstream_codec::wal::WalDecoder;
use pg_walstream_codec::{Lsn, WalSegmentSize};

use crate::error::{BackupError, Result};
use crate::manifest::WalRange;

/// Why the WAL of a backup does not cover a range of its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalProblem {
    /// A segment file the range needs is not in `pg_wal/`.
    MissingSegment {
        /// The range's timeline.
        timeline: u32,
        /// The file name (`000000010000000000000003`).
        file: String,
    },
    /// The WAL stops parsing before the range's end.
    Unreadable {
        /// The range's timeline.
        timeline: u32,
        /// Where decoding failed.
        lsn: Lsn,
        /// The decoder's reason.
        reason: String,
    },
    /// The manifest's range is not two LSNs in order.
    BadRange {
        /// The range as the manifest has it.
        range: WalRange,
    },
}

/// The segment size of the files in `pg_wal` (all segment files have it), `None` when there
/// is no segment file or its size is not a valid segment size.
fn segment_size(pg_wal: &Path) -> Result<Option<WalSegmentSize>> {
    let entries = std::fs::read_dir(pg_wal).map_err(BackupError::io("reading", pg_wal))?;
    for entry in entries {
        let entry = entry.map_err(BackupError::io("reading", pg_wal))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let size = entry
                .metadata()
                .map_err(BackupError::io("reading", entry.path()))?
                .len();
            return Ok(u32::try_from(size).ok().and_then(WalSegmentSize::new));
        }
    }
    Ok(None)
}

/// Checks each of `ranges` against the segment files in `pg_wal`; an empty list means the WAL
/// the backup needs is all there and parses.
///
/// # Errors
/// [`BackupError::Io`] when `pg_wal` or a segment file cannot be read.
pub fn verify_wal(pg_wal: &Path, ranges: &[WalRange]) -> Result<Vec<WalProblem>> {
    let mut problems = Vec::new();
    let size = segment_size(pg_wal)?;
    for range in ranges {
        let parsed = range
            .start_lsn
            .parse::<Lsn>()
            .ok()
            .zip(range.end_lsn.parse::<Lsn>().ok())
            .filter(|(start, end)| start <= end);
        let Some((start, end)) = parsed else {
            problems.push(WalProblem::BadRange {
                range: range.clone(),
            });
            continue;
        };
        let Some(size) = size else {
            problems.push(WalProblem::MissingSegment {
                timeline: range.timeline,
                file: start
                    .segment_file_name(range.timeline, WalSegmentSize::DEFAULT)
                    .to_string(),
            });
            continue;
        };
        if let Some(problem) = check_range(pg_wal, range.timeline, start, end, size)? {
            problems.push(problem);
        }
    }
    Ok(problems)
}

/// Decodes from `start` until the next record starts at or after `end`, feeding the segment
/// files of `timeline` in order (each must be a whole segment).
fn check_range(
    pg_wal: &Path,
    timeline: u32,
    start: Lsn,
    end: Lsn,
    size: WalSegmentSize,
) -> Result<Option<WalProblem>> {
    let mut segment = start.segment_start(size);
    let mut decoder = WalDecoder::new(segment)
        .with_segment_size(size)
        .skip_until(start);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut file: Option<(File, PathBuf)> = None;
    loop {
        loop {
            if decoder.next_record_lsn() >= end {
                return Ok(None);
            }
            match decoder.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    return Ok(Some(WalProblem::Unreadable {
                        timeline,
                        lsn: decoder.next_record_lsn(),
                        reason: error.to_string(),
                    }));
                }
            }
        }
        if file.is_none() {
            match open_segment(pg_wal, timeline, segment, size)? {
                Ok(opened) => file = Some(opened),
                Err(problem) => return Ok(Some(problem)),
            }
        }
        let Some((reader, path)) = &mut file else {
            continue;
        };
        let read = reader
            .read(&mut chunk)
            .map_err(BackupError::io("reading", path.as_path()))?;
        if read == 0 {
            file = None;
            segment = Lsn::new(segment.as_u64() + u64::from(size.bytes()));
        } else {
            decoder.feed(&chunk[..read]);
        }
    }
}

/// The segment file of `timeline` starting at `segment`, checked to be a whole segment; the
/// inner `Err` when it is missing or short.
fn open_segment(
    pg_wal: &Path,
    timeline: u32,
    segment: Lsn,
    size: WalSegmentSize,
) -> Result<std::result::Result<(File, PathBuf), WalProblem>> {
    let name = segment.segment_file_name(timeline, size).to_string();
    let path = pg_wal.join(&name);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(WalProblem::MissingSegment {
                timeline,
                file: name,
            }));
        }
        Err(e) => return Err(BackupError::io("reading", &path)(e)),
    };
    let length = file
        .metadata()
        .map_err(BackupError::io("reading", &path))?
        .len();
    if length != u64::from(size.bytes()) {
        return Ok(Err(WalProblem::Unreadable {
            timeline,
            lsn: segment,
            reason: format!("{name} has {length} bytes, not a whole segment"),
        }));
    }
    Ok(Ok((file, path)))
}
