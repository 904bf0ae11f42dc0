//! `pg-walstream waldump`: decode WAL segment files offline, like pg_waldump — with CRC
//! checks on every record, `--stats[=record]` in pg_waldump's layout, and `--json`.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use pg_walstream_codec::wal::{BUILTIN_RMGR_NAMES, Record, RmgrId, WalDecoder, image};
use pg_walstream_codec::{Lsn, WalSegmentSize};

use crate::error::CliError;
use crate::waldump_output::{Stats, json_line, text_line};
use crate::waldump_parallel::{self, Plan};
use crate::waldump_scan::{Bounds, Seen, Stop, scan};
use crate::waldump_segments::{
    SegmentName, SegmentReader, Segments, find_directory, first_segment, segment_size_of,
};
use crate::waldump_timelines::Timelines;

/// `--stats` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatsMode {
    /// Per resource manager.
    Rmgr,
    /// Per record type.
    Record,
}

/// Arguments of `waldump`.
#[derive(Debug, Args)]
#[command(
    after_help = "Reads WAL segment files (NAME or NAME.partial) of one timeline from \
    --path (and of its ancestors, given its history file), checking every page header and record CRC. Without --end, decoding stops at the \
    end of valid WAL, which is reported as an error with its LSN (as pg_waldump does); a \
    corrupt record or a missing segment is an error too. Exit codes: 0 success, 1 error, \
    2 invalid arguments."
)]
pub(crate) struct WaldumpArgs {
    /// First segment file to read (sets the start, and the timeline).
    #[arg(value_name = "STARTSEG")]
    start_segment: Option<String>,
    /// Last segment file to read (sets the end).
    #[arg(value_name = "ENDSEG")]
    end_segment: Option<String>,
    /// Directory with the segment files, or a data directory with pg_wal.
    #[arg(short = 'p', long = "path", value_name = "PATH")]
    path: Option<PathBuf>,
    /// Start at this LSN (the first record at or after it).
    #[arg(short = 's', long = "start", value_name = "RECPTR")]
    start: Option<Lsn>,
    /// Stop before the first record that does not end by this LSN.
    #[arg(short = 'e', long = "end", value_name = "RECPTR")]
    end: Option<Lsn>,
    /// Timeline to read (default 1, or STARTSEG's). With its history file (TLI.history) in
    /// the directory, segments before its start are read from its ancestors, following each
    /// timeline switch (pg_waldump reads this timeline's files only).
    #[arg(short = 't', long = "timeline", value_name = "TLI")]
    timeline: Option<u32>,
    /// Show at most this many records (after filtering).
    #[arg(short = 'n', long = "limit", value_name = "N")]
    limit: Option<u64>,
    /// Only records of this resource manager (repeatable); `list` lists them.
    #[arg(short = 'r', long = "rmgr", value_name = "RMGR")]
    rmgr: Vec<String>,
    /// Only records of this transaction id.
    #[arg(short = 'x', long = "xid", value_name = "XID")]
    xid: Option<u32>,
    /// Only records touching this relation, given as TABLESPACE/DATABASE/RELFILENODE.
    #[arg(short = 'R', long = "relation", value_name = "T/D/R")]
    relation: Option<String>,
    /// Only records touching this block (with --relation).
    #[arg(short = 'B', long = "block", value_name = "N", requires = "relation")]
    block: Option<u32>,
    /// Show block references one per line, with full-page image details.
    #[arg(short = 'b', long = "bkp-details")]
    bkp_details: bool,
    /// Show statistics instead of records (`--stats=record`: per record type).
    #[arg(short = 'z', long = "stats", value_name = "record", num_args = 0..=1,
          require_equals = true, default_missing_value = "rmgr")]
    stats: Option<StatsMode>,
    /// Keep waiting for more WAL at the end instead of stopping.
    #[arg(short = 'f', long = "follow")]
    follow: bool,
    /// Print nothing but errors.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Save every full-page image, restored to a whole page, into DIR as
    /// TLI-LSN.SPC.DB.REL.BLK_FORK (pg_waldump's names).
    #[arg(long = "save-fullpage", value_name = "DIR")]
    save_fullpage: Option<PathBuf>,
    /// One JSON object per record instead of text.
    #[arg(long = "json", conflicts_with = "stats")]
    json: bool,
    /// Worker threads for --stats (default: the available cores). The segment range is
    /// split into chunks decoded side by side and merged in order; the output is the same
    /// as with one thread. With --follow, --limit, --quiet or --save-fullpage one thread
    /// decodes.
    #[arg(short = 'j', long = "jobs", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

/// `Some(per_record)` if `--stats` may be computed in parallel: nothing but the
/// statistics is output and the range is fixed.
fn parallel_stats(args: &WaldumpArgs) -> Option<bool> {
    let mode = args.stats?;
    let alone = !args.follow && !args.quiet && args.limit.is_none() && args.save_fullpage.is_none();
    alone.then_some(mode == StatsMode::Record)
}

/// `--jobs`, else the available cores.
fn jobs(args: &WaldumpArgs) -> usize {
    args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        usize::from,
    )
}

/// Record filters.
struct Filter {
    rmgrs: Vec<RmgrId>,
    xid: Option<u32>,
    relation: Option<(u32, u32, u32)>,
    block: Option<u32>,
}

impl Filter {
    fn matches(&self, r: &Record<'_>) -> bool {
        if !self.rmgrs.is_empty() && !self.rmgrs.contains(&r.rmgr()) {
            return false;
        }
        if self.xid.is_some_and(|x| x != r.xid()) {
            return false;
        }
        if let Some((spc, db, rel)) = self.relation {
            return r.blocks().any(|b| {
                let l = b.locator();
                (l.spc_oid, l.db_oid, l.rel_number) == (spc, db, rel)
                    && self.block.is_none_or(|n| n == b.block_number())
            });
        }
        true
    }
}

fn parse_relation(text: &str) -> Result<(u32, u32, u32), CliError> {
    let parts: Vec<&str> = text.split('/').collect();
    let bad = || CliError::usage(format!("could not parse valid relation from \"{text}\""));
    let [a, b, c] = parts.as_slice() else {
        return Err(bad());
    };
    Ok((
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
        c.parse().map_err(|_| bad())?,
    ))
}

/// Runs `waldump`.
pub(crate) fn run(args: &WaldumpArgs) -> Result<(), CliError> {
    if args.rmgr.iter().any(|r| r.eq_ignore_ascii_case("list")) {
        let mut out = io::stdout().lock();
        for name in BUILTIN_RMGR_NAMES {
            writeln!(out, "{name}").map_err(|e| CliError::writing(&e))?;
        }
        return Ok(());
    }
    let rmgrs = args
        .rmgr
        .iter()
        .map(|name| {
            RmgrId::from_name(name).ok_or_else(|| {
                CliError::usage(format!("resource manager \"{name}\" does not exist"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let filter = Filter {
        rmgrs,
        xid: args.xid,
        relation: args.relation.as_deref().map(parse_relation).transpose()?,
        block: args.block,
    };
    let start_name = args
        .start_segment
        .as_deref()
        .map(|s| {
            let file = std::path::Path::new(s)
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or(s);
            SegmentName::parse(file)
                .ok_or_else(|| CliError::usage(format!("could not parse WAL file name \"{s}\"")))
        })
        .transpose()?;
    let end_name = args
        .end_segment
        .as_deref()
        .map(|s| {
            let file = std::path::Path::new(s)
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or(s);
            SegmentName::parse(file)
                .ok_or_else(|| CliError::usage(format!("could not parse WAL file name \"{s}\"")))
        })
        .transpose()?;
    let dir_hint = args.path.clone().or_else(|| {
        args.start_segment
            .as_deref()
            .and_then(|s| std::path::Path::new(s).parent())
            .filter(|p| !p.as_os_str().is_empty())
            .map(std::path::Path::to_path_buf)
    });
    let dir = find_directory(dir_hint.as_deref())?;
    let timeline = args
        .timeline
        .or(start_name.map(|n| n.timeline))
        .unwrap_or(1);

    // The segment size comes from a segment's long header, never assumed.
    let probe = match start_name {
        Some(n) => n,
        None => first_segment(&dir, timeline)?.ok_or_else(|| {
            CliError::message(format!(
                "no WAL segment files of timeline {timeline} in {}",
                dir.display()
            ))
        })?,
    };
    let probe_name = format!("{:08X}{:08X}{:08X}", probe.timeline, probe.log, probe.seg);
    let probe_path = [
        dir.join(&probe_name),
        dir.join(format!("{probe_name}.partial")),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| {
        CliError::message(format!(
            "could not find file \"{probe_name}\" in {}",
            dir.display()
        ))
    })?;
    let size = segment_size_of(&probe_path)?;
    let start = match (args.start, start_name) {
        (Some(lsn), Some(n)) if lsn.segment_number(size) != n.number(size) => {
            return Err(CliError::usage(format!(
                "start WAL location {lsn} is not inside file \"{probe_name}\""
            )));
        }
        (Some(lsn), _) => lsn,
        (None, _) => size
            .segment_start_lsn(probe.number(size))
            .unwrap_or(Lsn::INVALID),
    };
    let end = args.end.or_else(|| {
        let last = end_name.or(start_name)?;
        size.segment_start_lsn(last.number(size) + 1)
    });
    dump(args, &filter, &dir, timeline, size, start, end)
}

fn dump(
    args: &WaldumpArgs,
    filter: &Filter,
    dir: &std::path::Path,
    timeline: u32,
    size: WalSegmentSize,
    start: Lsn,
    end: Option<Lsn>,
) -> Result<(), CliError> {
    let first_segment = start.segment_number(size);
    let timelines = Timelines::load(dir, timeline)?;
    let segments = Segments::new(dir.to_path_buf(), timelines, size);
    if segments.path_of(first_segment).is_none() && !args.follow {
        return Err(CliError::message(format!(
            "could not find file \"{}\" in {} for start WAL location {start}",
            segments.name_of(first_segment),
            dir.display()
        )));
    }
    let bounds = Bounds {
        dir,
        end,
        boundary: None,
    };
    if let Some(per_record) = parallel_stats(args) {
        let plan = Plan {
            matches: &|r: &Record<'_>| filter.matches(r),
            bounds: &bounds,
            segments: &segments,
            start,
            per_record,
        };
        if let Some(outcome) = waldump_parallel::stats(&plan, jobs(args)) {
            return outcome;
        }
    }
    let mut reader = SegmentReader::new(segments.clone(), first_segment, args.follow);
    let mut decoder = WalDecoder::new(start.segment_start(size))
        .with_segment_size(size)
        .skip_until(start);
    let mut stats = args.stats.map(|m| Stats::new(m == StatsMode::Record));
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut shown: u64 = 0;
    let mut page = Vec::new();
    let mut seen = Seen {
        last_lsn: start,
        first: None,
    };
    let stop = scan(&mut decoder, &mut reader, &bounds, &mut seen, |record| {
        if !filter.matches(record) {
            return Ok(true);
        }
        if let Some(dir) = &args.save_fullpage {
            // Named after the timeline of the file read, as pg_waldump does.
            let file_timeline = segments.timeline_of(record.lsn().segment_number(size));
            save_fullpages(record, dir, file_timeline, &mut page)?;
        }
        if !args.quiet {
            if let Some(stats) = stats.as_mut() {
                stats.add(record);
            } else {
                let line = if args.json {
                    json_line(record)
                } else {
                    text_line(record, args.bkp_details)
                };
                writeln!(out, "{line}").map_err(|e| CliError::writing(&e))?;
            }
        }
        shown += 1;
        Ok(args.limit.is_none_or(|n| shown < n))
    })?;
    let outcome = match stop {
        Stop::Done(outcome) => outcome,
        // No boundary was given.
        Stop::Boundary { .. } => Ok(()),
    };
    if let Some(stats) = &stats {
        out.write_all(stats.render().as_bytes())
            .map_err(|e| CliError::writing(&e))?;
    }
    out.flush().map_err(|e| CliError::writing(&e))?;
    outcome
}

fn save_fullpages(
    record: &Record<'_>,
    dir: &std::path::Path,
    timeline: u32,
    page: &mut Vec<u8>,
) -> Result<(), CliError> {
    for block in record.blocks() {
        let Some(img) = block.image() else { continue };
        page.resize(img.page_size() as usize, 0);
        image::restore(&img, page).map_err(|e| {
            CliError::failed(
                format!(
                    "restoring the full-page image of block {} at {}",
                    block.id(),
                    record.lsn()
                ),
                &e,
            )
        })?;
        let l = block.locator();
        let lsn = record.lsn().as_u64();
        let name = format!(
            "{timeline:08X}-{:08X}-{:08X}.{}.{}.{}.{}_{}",
            lsn >> 32,
            lsn as u32,
            l.spc_oid,
            l.db_oid,
            l.rel_number,
            block.block_number(),
            block.fork_name()
        );
        let path = dir.join(name);
        std::fs::write(&path, &page[..])
            .map_err(|e| CliError::failed(format!("writing {}", path.display()), &e))?;
    }
    Ok(())
}
