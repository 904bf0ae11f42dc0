//! `waldump --stats` on several threads, with exactly the sequential dump's output.
//!
//! The segment range is cut into chunks of whole segments. Each worker decodes one chunk
//! at a time with its own reader and decoder: from the chunk's first segment start (the
//! record continuing into it is skipped by its first page's `xlp_rem_len`) until it has
//! checked the first record that starts in the next chunk — so the record crossing the
//! boundary is decoded, CRC and all, by the chunk where it starts, and so is the next
//! chunk's first page header (system id, version, timeline order, continuation length).
//!
//! The chunks' statistics are merged in order. Chunk k+1 is taken only if its first record
//! is the one chunk k stopped at (the same LSN) and links back (`xl_prev`) to chunk k's
//! last record; from that record on, the two decoders are in the same state. The first
//! chunk that ends — at `--end`, at the end of WAL, at a damaged record or a missing
//! segment — ends the dump with its outcome, as the sequential dump would end there;
//! later chunks are cancelled and discarded. Where a chunk cannot be matched (it failed
//! before its first record, or has none), the caller runs the sequential dump instead.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use pg_walstream_codec::Lsn;
use pg_walstream_codec::wal::{Record, WalDecoder};

use crate::error::CliError;
use crate::waldump_output::Stats;
use crate::waldump_scan::{Bounds, Seen, Stop, scan};
use crate::waldump_segments::{SegmentReader, Segments};

/// Set (to anything) in the environment, the parallel path says on standard error how many
/// chunks it merged, or which one did not join (for tests: the output is the same), and
/// each thread's time on a CPU (for benchmarks on shared machines).
pub(crate) const TRACE: &str = "PG_WALSTREAM_WALDUMP_TRACE";

/// Chunks per worker (at most, one segment each): small chunks keep the workers busy to the
/// end, while each chunk boundary costs only one extra read of the next segment's start.
const CHUNKS_PER_JOB: u64 = 16;

/// What to dump: the caller's range and record filter.
pub(crate) struct Plan<'a> {
    /// The record filter (`-r`, `-x`, `-R`, `-B`).
    pub(crate) matches: &'a (dyn Fn(&Record<'_>) -> bool + Sync),
    /// The directory and `--end` (its `boundary` is not used).
    pub(crate) bounds: &'a Bounds<'a>,
    /// Where the segments are.
    pub(crate) segments: &'a Segments,
    /// `--start`.
    pub(crate) start: Lsn,
    /// `--stats=record`.
    pub(crate) per_record: bool,
}

/// One chunk's result.
struct Outcome {
    stats: Stats,
    seen: Seen,
    stop: Stop,
}

/// Prints the statistics of the range decoded by up to `jobs` threads and returns the
/// dump's outcome, or `None` (having printed nothing) where the sequential dump must run:
/// fewer than two segments or jobs, or chunks that cannot be proven to join.
pub(crate) fn stats(plan: &Plan<'_>, jobs: usize) -> Option<Result<(), CliError>> {
    let chunks = chunk_starts(plan, jobs)?;
    let next = AtomicUsize::new(0);
    // The lowest chunk that ended the dump: later ones are of no use.
    let ended = AtomicUsize::new(usize::MAX);
    let mut outcomes: Vec<Option<Outcome>> = (0..chunks.len()).map(|_| None).collect();
    let trace = std::env::var_os(TRACE).is_some();
    let mut worker_cpu = Vec::new();
    thread::scope(|s| {
        // Workers take chunks in order until none is left: any number of them that could
        // be started decodes all the chunks.
        let workers: Vec<_> = (0..jobs.min(chunks.len()))
            .filter_map(|_| {
                thread::Builder::new()
                    .name("waldump".into())
                    .spawn_scoped(s, || {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= chunks.len() || i > ended.load(Ordering::Relaxed) {
                                return (done, trace.then(on_cpu_ms).flatten());
                            }
                            let outcome = decode_chunk(plan, &chunks, i, &ended);
                            if matches!(outcome.stop, Stop::Done(_)) {
                                ended.fetch_min(i, Ordering::Relaxed);
                            }
                            done.push((i, outcome));
                        }
                    })
                    .ok()
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok((done, cpu)) => {
                    worker_cpu.extend(cpu);
                    for (i, outcome) in done {
                        outcomes[i] = Some(outcome);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let n = chunks.len();
    let (merged, outcome) = merge(plan.per_record, outcomes);
    if trace {
        match outcome {
            Some(_) => eprintln!("waldump: {jobs} jobs, {n} chunks, {merged} merged"),
            None => eprintln!("waldump: {jobs} jobs, {n} chunks, chunk {merged} does not join"),
        }
        // The critical path on idle cores: the main thread's time plus the busiest worker's.
        eprintln!(
            "waldump: on-CPU ms: main thread {:.1}, workers {worker_cpu:.1?}",
            on_cpu_ms().unwrap_or(f64::NAN)
        );
    }
    outcome
}

/// The calling thread's time on a CPU so far (`/proc/thread-self/schedstat`), in ms.
fn on_cpu_ms() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}

/// The first segment number of each chunk (the first one starts at `--start`'s), or
/// `None` if the range is too short to split.
fn chunk_starts(plan: &Plan<'_>, jobs: usize) -> Option<Vec<u64>> {
    let size = plan.segments.size();
    let first = plan.start.segment_number(size);
    let present = plan.segments.last_present()?;
    let last = match plan.bounds.end {
        Some(end) if end <= plan.start => return None,
        Some(end) => Lsn::new(end.as_u64() - 1).segment_number(size).min(present),
        None => present,
    };
    let segments = last.checked_sub(first)? + 1;
    if jobs < 2 || segments < 2 {
        return None;
    }
    let n = segments.min(jobs as u64 * CHUNKS_PER_JOB);
    Some((0..n).map(|i| first + segments * i / n).collect())
}

/// Decodes chunk `i` up to the first record of chunk `i + 1` (the last chunk: to the end).
fn decode_chunk(plan: &Plan<'_>, chunks: &[u64], i: usize, ended: &AtomicUsize) -> Outcome {
    let size = plan.segments.size();
    let first = chunks[i];
    let chunk_lsn = size.segment_start_lsn(first).unwrap_or(Lsn::MAX);
    let mut decoder = WalDecoder::new(chunk_lsn).with_segment_size(size);
    if i == 0 {
        decoder = decoder.skip_until(plan.start);
    }
    let mut reader = SegmentReader::new(plan.segments.clone(), first, false);
    let bounds = Bounds {
        dir: plan.bounds.dir,
        end: plan.bounds.end,
        boundary: chunks
            .get(i + 1)
            .map(|&n| size.segment_start_lsn(n).unwrap_or(Lsn::MAX)),
    };
    let mut seen = Seen {
        last_lsn: if i == 0 { plan.start } else { Lsn::INVALID },
        first: None,
    };
    let mut stats = Stats::new(plan.per_record);
    let stop = scan(&mut decoder, &mut reader, &bounds, &mut seen, |record| {
        if (plan.matches)(record) {
            stats.add(record);
        }
        // An earlier chunk ended the dump: this one's result will be discarded.
        Ok(ended.load(Ordering::Relaxed) > i)
    })
    .unwrap_or_else(|e| Stop::Done(Err(e)));
    Outcome { stats, seen, stop }
}

/// Joins the chunks' statistics in order up to the first that ended the dump, prints
/// them and returns that chunk's outcome, or `None` if a chunk does not join its
/// predecessor; with the number of chunks merged (or the index of the one that does not
/// join).
fn merge(
    per_record: bool,
    outcomes: Vec<Option<Outcome>>,
) -> (usize, Option<Result<(), CliError>>) {
    let mut merged = Stats::new(per_record);
    // (LSN of the record the previous chunk stopped at, its last record).
    let mut join: Option<(Lsn, Lsn)> = None;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let Some(outcome) = outcome else {
            return (i, None);
        };
        if join.is_some() && outcome.seen.first != join {
            return (i, None);
        }
        merged.merge(&outcome.stats);
        match outcome.stop {
            Stop::Done(result) => return (i + 1, Some(print(&merged).and(result))),
            // A chunk that passed on no record cannot be joined.
            Stop::Boundary { .. } if outcome.seen.first.is_none() => return (i, None),
            Stop::Boundary { next } => join = Some((next, outcome.seen.last_lsn)),
        }
    }
    (0, None)
}

fn print(stats: &Stats) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(stats.render().as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::writing(&e))
}
