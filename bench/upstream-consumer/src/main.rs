//! Benchmark consumer on upstream pg_walstream 0.9.0 (crates registry), used only by
//! `cargo xtask bench` for side-by-side figures.
//!
//! Follows upstream's documented Stream API: `LogicalReplicationStream::new` + `start`,
//! `into_stream`, `next_event` and `update_applied_lsn(event.lsn)` after every event, with
//! the default rustls backend. Bounded replay (`with_stop_at_lsn`) ends at the stop LSN (or,
//! in live mode, `--until-dml` ends after that many DML events). Every column of every row is
//! read. Prints one JSON line of counts.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use upstream::{
    CancellationToken, ColumnValue, EventType, LogicalReplicationStream, ReplicationError,
    ReplicationStreamConfig, RowData,
};

struct Args {
    conninfo: String,
    slot: String,
    publication: String,
    stop_at: Option<u64>,
    proto: u32,
    binary: bool,
    latency: bool,
    until_dml: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut conninfo, mut slot, mut publication, mut stop_at) = (None, None, None, None);
    let (mut proto, mut binary, mut latency, mut until_dml) = (4u32, false, false, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--conninfo" => conninfo = Some(value()?),
            "--slot" => slot = Some(value()?),
            "--publication" => publication = Some(value()?),
            "--stop-at" => {
                let text = value()?;
                stop_at = Some(upstream::parse_lsn(&text).map_err(|e| format!("--stop-at: {e}"))?);
            }
            "--proto" => proto = value()?.parse().map_err(|e| format!("--proto: {e}"))?,
            "--binary" => binary = true,
            "--latency" => latency = true,
            "--until-dml" => {
                until_dml = Some(value()?.parse().map_err(|e| format!("--until-dml: {e}"))?);
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
        latency,
        until_dml,
    })
}

#[derive(Default)]
struct Counts {
    events: u64,
    dml: u64,
    txns: u64,
    columns: u64,
    value_bytes: u64,
    checksum: u64,
    latencies_us: Vec<i64>,
}

impl Counts {
    fn row(&mut self, row: &RowData) {
        for (_name, value) in row.iter() {
            self.columns += 1;
            match value {
                ColumnValue::Text(v) | ColumnValue::Binary(v) => {
                    self.value_bytes += v.len() as u64;
                    self.checksum = self
                        .checksum
                        .wrapping_mul(31)
                        .wrapping_add(u64::from(v.first().copied().unwrap_or(0)))
                        .wrapping_add(u64::from(v.last().copied().unwrap_or(0)));
                }
                ColumnValue::Null => {}
            }
        }
    }
}

fn now_unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as i64
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn run(args: Args) -> Result<Counts, String> {
    let config = ReplicationStreamConfig::builder(args.slot.clone(), args.publication.clone())
        .with_protocol_version(args.proto)
        .with_binary(args.binary)
        .with_feedback_interval(Duration::from_secs(10));
    let config = match args.stop_at {
        Some(lsn) => config.with_stop_at_lsn(lsn),
        None => config,
    };
    let mut stream = LogicalReplicationStream::new(&args.conninfo, config)
        .await
        .map_err(|e| e.to_string())?;
    stream.start(None).await.map_err(|e| e.to_string())?;
    let cancel = CancellationToken::new();
    let mut events = stream.into_stream(cancel);
    let mut counts = Counts::default();
    loop {
        match events.next_event().await {
            Ok(event) => {
                counts.events += 1;
                match &event.event_type {
                    EventType::Insert { data, .. } => {
                        counts.dml += 1;
                        counts.row(data);
                    }
                    EventType::Update {
                        old_data, new_data, ..
                    } => {
                        counts.dml += 1;
                        counts.row(new_data);
                        if let Some(old) = old_data {
                            counts.row(old);
                        }
                    }
                    EventType::Delete { old_data, .. } => {
                        counts.dml += 1;
                        counts.row(old_data);
                    }
                    EventType::Commit {
                        commit_timestamp, ..
                    } => {
                        counts.txns += 1;
                        if args.latency {
                            counts
                                .latencies_us
                                .push(now_unix_micros() - commit_timestamp.timestamp_micros());
                        }
                    }
                    _ => {}
                }
                events.update_applied_lsn(event.lsn.value());
                let done = matches!(event.event_type, EventType::Commit { .. })
                    && args.until_dml.is_some_and(|n| counts.dml >= n);
                if done {
                    break;
                }
            }
            Err(ReplicationError::StreamStopped(_)) => break,
            Err(error) => return Err(error.to_string()),
        }
    }
    events.shutdown().await.map_err(|e| e.to_string())?;
    Ok(counts)
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
            eprintln!("bench-upstream-consumer: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench-upstream-consumer: runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(mut c) => {
            c.latencies_us.sort_unstable();
            println!(
                "{{\"events\":{},\"dml\":{},\"txns\":{},\"columns\":{},\"value_bytes\":{},\
                 \"checksum\":{},\"latency_p50_us\":{},\"latency_p99_us\":{},\
                 \"latency_samples\":{},\"status\":{}}}",
                c.events,
                c.dml,
                c.txns,
                c.columns,
                c.value_bytes,
                c.checksum,
                percentile(&c.latencies_us, 0.50),
                percentile(&c.latencies_us, 0.99),
                c.latencies_us.len(),
                memory_status()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("bench-upstream-consumer: {message}");
            ExitCode::FAILURE
        }
    }
}
