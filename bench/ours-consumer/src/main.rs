//! Benchmark consumer on pg-walstream's public Stream API.
//!
//! Consumes a logical slot to a stop LSN, reads every column of every row through the
//! borrowed tuple view, acknowledges each transaction at its Commit through the Feedback
//! handle, and prints one JSON line of counts (and, with `--latency`, commit-to-receive
//! latency percentiles). Without `--stop-at` it ends after the transaction that brings the
//! DML count to `--until-dml` (live mode). Run by `cargo xtask bench`; see docs/BENCHMARKS.md.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pg_walstream::codec::pgoutput::{Column, ProtocolVersion};
use pg_walstream::codec::{Lsn, PgTimestamp};
use pg_walstream::stream::{Change, EventKind, LogicalConfig, LogicalStream};
use pg_walstream_transport::Backend;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800 * 1_000_000;

struct Args {
    conninfo: String,
    slot: String,
    publication: String,
    stop_at: Option<Lsn>,
    proto: Option<u8>,
    binary: bool,
    backend: Backend,
    latency: bool,
    until_dml: Option<u64>,
    read_budget: Option<Duration>,
    recv_buffer: Option<usize>,
    max_read: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut conninfo, mut slot, mut publication, mut stop_at) = (None, None, None, None);
    let (mut proto, mut binary, mut backend, mut latency) = (None, false, Backend::Native, false);
    let (mut until_dml, mut read_budget) = (None, None);
    let (mut recv_buffer, mut max_read) = (None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--conninfo" => conninfo = Some(value()?),
            "--slot" => slot = Some(value()?),
            "--publication" => publication = Some(value()?),
            "--stop-at" => {
                stop_at = Some(
                    value()?
                        .parse::<Lsn>()
                        .map_err(|e| format!("--stop-at: {e}"))?,
                );
            }
            "--proto" => {
                proto = Some(
                    value()?
                        .parse::<u8>()
                        .map_err(|e| format!("--proto: {e}"))?,
                )
            }
            "--binary" => binary = true,
            "--latency" => latency = true,
            "--until-dml" => {
                until_dml = Some(value()?.parse().map_err(|e| format!("--until-dml: {e}"))?);
            }
            "--read-budget-us" => {
                let us = value()?
                    .parse()
                    .map_err(|e| format!("--read-budget-us: {e}"))?;
                read_budget = Some(Duration::from_micros(us));
            }
            "--recv-buffer-kib" => {
                let kib: usize = value()?
                    .parse()
                    .map_err(|e| format!("--recv-buffer-kib: {e}"))?;
                recv_buffer = Some(kib * 1024);
            }
            "--max-read-kib" => {
                let kib: usize = value()?
                    .parse()
                    .map_err(|e| format!("--max-read-kib: {e}"))?;
                max_read = Some(kib * 1024);
            }
            "--backend" => {
                backend = value()?.parse().map_err(|e| format!("--backend: {e:?}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        conninfo: conninfo.ok_or("--conninfo is required")?,
        slot: slot.ok_or("--slot is required")?,
        publication: publication.ok_or("--publication is required")?,
        stop_at,
        proto,
        binary,
        backend,
        latency,
        until_dml,
        read_budget,
        recv_buffer,
        max_read,
    })
}

/// What the consumer saw; printed as JSON.
#[derive(Default)]
struct Counts {
    events: u64,
    dml: u64,
    txns: u64,
    columns: u64,
    value_bytes: u64,
    checksum: u64,
    last_end_lsn: Lsn,
    latencies_us: Vec<i64>,
}

impl Counts {
    /// Reads every column of every tuple of `change`: the new row of an Insert, the new row
    /// and the old key/row (if sent) of an Update, the old key/row of a Delete. (Each accessor
    /// rebuilds its tuple from the offsets kept when the message was validated; only the ones
    /// the kind can carry are called.)
    fn change(&mut self, change: &Change, new: bool, old: bool) {
        self.dml += 1;
        let new = if new { change.new_tuple() } else { None };
        let old = if old {
            change.old_tuple().map(|old| *old.tuple())
        } else {
            None
        };
        for tuple in new.into_iter().chain(old) {
            for column in tuple.columns() {
                self.columns += 1;
                match column {
                    Column::Text(v) | Column::Binary(v) => {
                        self.value_bytes += v.len() as u64;
                        // Touch the value's bytes so the read cannot be optimised away.
                        self.checksum = self
                            .checksum
                            .wrapping_mul(31)
                            .wrapping_add(u64::from(v.first().copied().unwrap_or(0)))
                            .wrapping_add(u64::from(v.last().copied().unwrap_or(0)));
                    }
                    Column::Null | Column::UnchangedToast => {}
                }
            }
        }
    }
}

fn now_pg_micros() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    since.as_micros() as i64 - PG_EPOCH_UNIX_MICROS
}

async fn run(args: Args) -> Result<Counts, String> {
    let mut builder = LogicalConfig::builder()
        .conninfo(&args.conninfo)
        .backend(args.backend)
        .slot(&args.slot)
        .publication(&args.publication)
        .binary(args.binary);
    if let Some(lsn) = args.stop_at {
        builder = builder.stop_at(lsn);
    }
    if let Some(budget) = args.read_budget {
        builder = builder.read_coalescing(budget);
    }
    if let Some(bytes) = args.recv_buffer {
        builder = builder.recv_buffer_size(bytes);
    }
    if let Some(bytes) = args.max_read {
        builder = builder.max_read_size(bytes);
    }
    if let Some(proto) = args.proto {
        let version =
            ProtocolVersion::try_from(u32::from(proto)).map_err(|e| format!("--proto: {e:?}"))?;
        builder = builder.proto_version(version);
    }
    let config = builder.build().map_err(|e| e.to_string())?;
    let mut stream = LogicalStream::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    let feedback = stream.feedback().clone();
    let mut counts = Counts::default();
    while let Some(event) = stream.next_event().await {
        let event = event.map_err(|e| e.to_string())?;
        counts.events += 1;
        match event.kind() {
            EventKind::Insert(change) => counts.change(change, true, false),
            EventKind::Update(change) => counts.change(change, true, true),
            EventKind::Delete(change) => counts.change(change, false, true),
            EventKind::Commit(commit) => {
                counts.txns += 1;
                if args.latency {
                    let PgTimestamp(at) = commit.commit_time;
                    counts.latencies_us.push(now_pg_micros() - at);
                }
                feedback.processed(commit.end_lsn);
                counts.last_end_lsn = commit.end_lsn;
                if args.until_dml.is_some_and(|n| counts.dml >= n) {
                    break;
                }
            }
            _ => {}
        }
    }
    Ok(counts)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// VmHWM, RssAnon and RssFile of this process (KiB) as a JSON object, for profiling.
fn memory_status() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let fields: Vec<String> = status
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            let wanted = ["VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads"];
            wanted.contains(&key).then(|| {
                let number = value.trim().trim_end_matches(" kB");
                format!("\"{key}\":{number}")
            })
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("bench-ours-consumer: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench-ours-consumer: runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(mut counts) => {
            counts.latencies_us.sort_unstable();
            println!(
                "{{\"events\":{},\"dml\":{},\"txns\":{},\"columns\":{},\"value_bytes\":{},\
                 \"checksum\":{},\"last_end_lsn\":\"{}\",\"latency_p50_us\":{},\"latency_p99_us\":{},\"latency_samples\":{},\"status\":{}}}",
                counts.events,
                counts.dml,
                counts.txns,
                counts.columns,
                counts.value_bytes,
                counts.checksum,
                counts.last_end_lsn,
                percentile(&counts.latencies_us, 0.50),
                percentile(&counts.latencies_us, 0.99),
                counts.latencies_us.len(),
                memory_status()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("bench-ours-consumer: {message}");
            ExitCode::FAILURE
        }
    }
}
