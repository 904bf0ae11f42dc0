//! The decoding loop of `waldump`, shared by the sequential dump and the parallel
//! `--stats` workers: feed segments, apply `--end`, stop at a chunk boundary, and turn the
//! end of WAL, a damaged record or a missing segment into pg_waldump's one-line error.

use std::path::Path;

use pg_walstream_codec::Lsn;
use pg_walstream_codec::wal::{Record, WalDecoder};

use crate::error::CliError;
use crate::waldump_segments::SegmentReader;

/// Why a scan ended.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The dump is over: `Ok` at `--end` (or when the consumer asked to stop), else the
    /// error to report.
    Done(Result<(), CliError>),
    /// A record starting at or after the boundary was found (and checked, CRC included);
    /// it was not passed to the consumer. `next` is its LSN.
    Boundary {
        /// The LSN of that record.
        next: Lsn,
    },
}

/// What one scan saw, besides its stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    /// The LSN of the last record passed on (`start` until there is one).
    pub(crate) last_lsn: Lsn,
    /// The LSN and `xl_prev` of the first record passed on.
    pub(crate) first: Option<(Lsn, Lsn)>,
}

/// Where a scan reads and where it stops.
pub(crate) struct Bounds<'a> {
    /// The directory, for the missing-segment message.
    pub(crate) dir: &'a Path,
    /// `--end`: records that do not end by it are not shown.
    pub(crate) end: Option<Lsn>,
    /// Stop (with [`Stop::Boundary`]) at the first record starting at or after this LSN.
    pub(crate) boundary: Option<Lsn>,
}

/// Decodes records from `reader` through `decoder`, passing each one that lies before
/// `bounds.end` (and before `bounds.boundary`) to `each` in LSN order. `each` returns
/// `Ok(false)` to end the dump there (`--limit`); its error ends the scan at once, as `Err`.
///
/// # Errors
/// Only `each`'s errors; everything else is in the returned [`Stop`].
pub(crate) fn scan(
    decoder: &mut WalDecoder,
    reader: &mut SegmentReader,
    bounds: &Bounds<'_>,
    seen: &mut Seen,
    mut each: impl FnMut(&Record<'_>) -> Result<bool, CliError>,
) -> Result<Stop, CliError> {
    let end = bounds.end;
    loop {
        loop {
            let record = match decoder.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(e) => {
                    if end.is_some_and(|end| e.lsn() >= end) {
                        return Ok(Stop::Done(Ok(())));
                    }
                    return Ok(Stop::Done(Err(record_error(&e))));
                }
            };
            // pg_waldump shows a record only if all its bytes lie before --end.
            if let Some(end) = end {
                let raw_end = record.lsn().as_u64() + u64::from(record.total_len());
                if record.lsn() >= end || raw_end > end.as_u64() {
                    return Ok(Stop::Done(Ok(())));
                }
            }
            if bounds.boundary.is_some_and(|b| record.lsn() >= b) {
                return Ok(Stop::Boundary { next: record.lsn() });
            }
            seen.last_lsn = record.lsn();
            seen.first.get_or_insert((record.lsn(), record.prev()));
            if !each(&record)? {
                return Ok(Stop::Done(Ok(())));
            }
        }
        match reader.feed(decoder) {
            Ok(true) => {}
            Ok(false) => {
                if let Err(e) = decoder.finish() {
                    return Ok(Stop::Done(Err(record_error(&e))));
                }
                let next = decoder.next_record_lsn();
                if end.is_some_and(|end| next >= end) {
                    return Ok(Stop::Done(Ok(())));
                }
                return Ok(Stop::Done(Err(CliError::message(format!(
                    "could not find file \"{}\" in {} (WAL continues at {next}, last record at {})",
                    reader.name_of(reader.current()),
                    bounds.dir.display(),
                    seen.last_lsn
                )))));
            }
            Err(e) => return Ok(Stop::Done(Err(e))),
        }
    }
}

fn record_error(e: &pg_walstream_codec::wal::WalError) -> CliError {
    CliError::message(format!("error in WAL record at {}: {e}", e.lsn()))
}
