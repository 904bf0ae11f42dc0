//! `cargo xtask bench --scenarios receivewal`: our `pg-walstream receivewal` against
//! PostgreSQL's `pg_receivewal`, one run, the same pre-generated WAL from a physical slot.
//!
//! A template physical slot reserves WAL before `--wal-mb` MB of WAL are written (inserts of
//! ~1 KB rows); each measured run streams a fresh copy of it
//! (`pg_copy_physical_replication_slot`) from the slot's `restart_lsn` to the same end
//! position (`-E`) into a fresh directory on the same disk, both with their default fsync
//! policy (each completed segment). A warm-up run of ours loads the WAL into the page cache.
//! Every run's completed segments are checked: the expected number, and in the first run of
//! each receiver byte for byte equal to the server's `pg_wal`. Figures: wall time and CPU
//! (user + system) of the receiver process from `bench-measure`, peak RSS, the walsender's CPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pg_walstream_testkit::{AuthUser, TestServer, unique_name, workspace_root};
use serde_json::{Value as Json, json};

use super::report::Spread;
use super::{BenchArgs, consumer, pg_error, tools};

/// The scenario's name for `--scenarios`.
pub(crate) const NAME: &str = "receivewal";

/// Segment size of the bench server (the default).
const SEGMENT: u64 = 16 << 20;

/// Whether `--scenarios` asks for this scenario (`receivewal`, or `physical` as issue 13
/// calls it).
pub(crate) fn selected(scenarios: &[String]) -> bool {
    scenarios
        .iter()
        .any(|s| s.eq_ignore_ascii_case(NAME) || s.eq_ignore_ascii_case("physical"))
}

/// The two receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiver {
    Ours,
    PgReceivewal,
}

impl Receiver {
    fn name(self) -> &'static str {
        match self {
            Receiver::Ours => "ours (native)",
            Receiver::PgReceivewal => "pg_receivewal",
        }
    }
}

/// One measured run of a client process (also used by the basebackup scenario).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) wall_s: f64,
    pub(crate) cpu_s: f64,
    pub(crate) user_s: f64,
    pub(crate) maxrss_kb: f64,
    pub(crate) walsender_cpu_s: f64,
}

struct Setup {
    ours: PathBuf,
    pg_receivewal: PathBuf,
    measure: PathBuf,
    conninfo: String,
    /// Where runs write.
    scratch: PathBuf,
    server_wal: PathBuf,
    template: String,
    start: u64,
    end: String,
    end_lsn: u64,
    ticks: f64,
    timeout: Duration,
}

/// Runs the scenario and writes `target/bench/receivewal-{latest,<stamp>}.{md,json}`.
///
/// # Errors
/// A build, the server, a receiver run or a check failed.
pub(crate) fn run(args: &BenchArgs) -> Result<(), String> {
    if args.pg_version < 15 {
        return Err(
            "the receivewal scenario needs PostgreSQL 15+ (READ_REPLICATION_SLOT: both \
             receivers start at the slot's restart_lsn)"
                .into(),
        );
    }
    if args.runs == 0 || args.wal_mb == 0 {
        return Err("--runs and --wal-mb must be at least 1".into());
    }
    let root = workspace_root();
    tools::build_cli_and_measure()?;
    // pg_receivewal sits next to the pg_recvlogical the logical bench finds or installs.
    let pg_receivewal = tools::recvlogical(args.pg_version, args.recvlogical.as_deref())?
        .with_file_name("pg_receivewal");
    if !pg_receivewal.is_file() {
        return Err(format!("no {}", pg_receivewal.display()));
    }
    crate::pg::install(&[args.pg_version])?;
    let load_before = tools::wait_quiet(args.wait_quiet);
    let server = TestServer::builder(args.pg_version)
        .setting("autovacuum", "off")
        .setting("max_wal_size", "'16GB'")
        .setting("checkpoint_timeout", "'1h'")
        .start()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let started = Instant::now();
    let scratch = root.join("target/bench/receivewal-runs");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let outcome = runtime.block_on(async {
        let admin = server.admin("postgres").await;
        let (template, start) = generate(&admin, args.wal_mb).await?;
        let end: String = query_text(&admin, "SELECT pg_current_wal_flush_lsn()::text").await?;
        let setup = Setup {
            ours: root.join("target/release/pg-walstream"),
            pg_receivewal,
            measure: root.join("target/bench-build/release/bench-measure"),
            conninfo: format!(
                "{} sslmode=disable",
                server.conninfo(AuthUser::Trust, "postgres")
            ),
            scratch: scratch.clone(),
            server_wal: server.data_dir().join("pg_wal"),
            template,
            start,
            end_lsn: parse_lsn(&end)?,
            end,
            ticks: consumer::clock_ticks(),
            timeout: Duration::from_secs(args.timeout),
        };
        measure_all(&setup, &admin, args.runs).await
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let (results, volume_mb) = outcome?;
    let load_after = tools::load();
    let markdown = format!(
        "Machine: {}; {}; PostgreSQL {}; {} {}; {volume_mb:.0} MB of WAL; --runs {}; \
         1-min load average {load_before:.2} before, {load_after:.2} after; {:.0} s.\n\n{}",
        tools::machine(),
        tools::rustc(),
        args.pg_version,
        Receiver::PgReceivewal.name(),
        tools::tool_major(&setup_tool_path(args)?).map_or_else(|| "?".into(), |m| m.to_string()),
        args.runs,
        started.elapsed().as_secs_f64(),
        table(&results, volume_mb),
    );
    let json = json!({
        "command": std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        "scenario": NAME,
        "machine": tools::machine(),
        "postgresql": args.pg_version,
        "wal_mb": volume_mb,
        "runs": results.iter().map(|(r, runs)| json!({
            "receiver": r.name(),
            "runs": runs.iter().map(|x| json!({
                "wall_s": x.wall_s, "cpu_s": x.cpu_s, "user_s": x.user_s,
                "maxrss_kb": x.maxrss_kb,
                "walsender_cpu_s": x.walsender_cpu_s,
            })).collect::<Vec<Json>>(),
        })).collect::<Vec<Json>>(),
        "load_average_before": load_before,
        "load_average_after": load_after,
    });
    tools::write_report(NAME, &markdown, &json)
}

fn setup_tool_path(args: &BenchArgs) -> Result<PathBuf, String> {
    Ok(
        tools::recvlogical(args.pg_version, args.recvlogical.as_deref())?
            .with_file_name("pg_receivewal"),
    )
}

pub(crate) async fn query_text(
    admin: &tokio_postgres::Client,
    sql: &str,
) -> Result<String, String> {
    admin
        .query_one(sql, &[])
        .await
        .and_then(|row| row.try_get::<_, String>(0))
        .map_err(|e| format!("{sql}: {}", pg_error(&e)))
}

fn parse_lsn(text: &str) -> Result<u64, String> {
    let (high, low) = text.split_once('/').ok_or(format!("bad LSN {text}"))?;
    let high = u64::from_str_radix(high, 16).map_err(|e| format!("{text}: {e}"))?;
    let low = u64::from_str_radix(low, 16).map_err(|e| format!("{text}: {e}"))?;
    Ok(high << 32 | low)
}

/// Creates the template slot (reserving WAL), then writes `wal_mb` MB of WAL; returns the
/// slot and its `restart_lsn`.
async fn generate(admin: &tokio_postgres::Client, wal_mb: u64) -> Result<(String, u64), String> {
    let template = unique_name("rw_template");
    let row = admin
        .query_one(
            "SELECT lsn::text FROM pg_create_physical_replication_slot($1, true)",
            &[&template],
        )
        .await
        .map_err(|e| format!("template slot: {}", pg_error(&e)))?;
    let start = parse_lsn(row.get::<_, &str>(0))?;
    admin
        .batch_execute(
            "SET synchronous_commit = off; \
             CREATE TABLE rw_load (id bigint, payload text)",
        )
        .await
        .map_err(|e| format!("load table: {}", pg_error(&e)))?;
    let target = start + wal_mb * (1 << 20);
    let began = Instant::now();
    loop {
        let now = parse_lsn(&query_text(admin, "SELECT pg_current_wal_insert_lsn()::text").await?)?;
        if now >= target {
            break;
        }
        // ~1 KB rows (below the TOAST threshold, so not compressed): ~100 MB of WAL.
        admin
            .batch_execute(
                "INSERT INTO rw_load SELECT g, repeat(md5(random()::text), 30) \
                 FROM generate_series(1, 100000) g",
            )
            .await
            .map_err(|e| format!("load: {}", pg_error(&e)))?;
    }
    admin
        .batch_execute("CHECKPOINT")
        .await
        .map_err(|e| format!("CHECKPOINT: {}", pg_error(&e)))?;
    eprintln!(
        "xtask: bench: {NAME}: {wal_mb} MB of WAL written in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok((template, start))
}

type Results = Vec<(Receiver, Vec<Run>)>;

async fn measure_all(
    setup: &Setup,
    admin: &tokio_postgres::Client,
    runs: usize,
) -> Result<(Results, f64), String> {
    let first = setup.start - setup.start % SEGMENT;
    let complete = (setup.end_lsn - setup.end_lsn % SEGMENT - first) / SEGMENT;
    let volume_mb = (setup.end_lsn - first) as f64 / f64::from(1 << 20);
    eprintln!(
        "xtask: bench: {NAME}: {volume_mb:.0} MB from {:X}/{:X} to {}, {complete} complete segments",
        first >> 32,
        first & 0xFFFF_FFFF,
        setup.end
    );
    let warm = measure(setup, admin, Receiver::Ours, "warm-up", complete, false).await?;
    eprintln!("xtask: bench: {NAME}: warm-up {:.2} s", warm.wall_s);
    let receivers = [Receiver::Ours, Receiver::PgReceivewal];
    let mut results: Results = receivers.iter().map(|&r| (r, Vec::new())).collect();
    for run in 0..runs {
        for i in 0..receivers.len() {
            // Rotate the order so neither always runs first.
            let receiver = receivers[(i + run) % receivers.len()];
            let label = format!("run {}", run + 1);
            let sample = measure(setup, admin, receiver, &label, complete, run == 0).await?;
            eprintln!(
                "xtask: bench: {NAME} {label}: {:<15} {:>6.2} s wall, {:>6.2} s CPU ({:.2} user), {:>5.1} MB, walsender {:.2} s",
                receiver.name(),
                sample.wall_s,
                sample.cpu_s,
                sample.user_s,
                sample.maxrss_kb / 1024.0,
                sample.walsender_cpu_s
            );
            if let Some((_, list)) = results.iter_mut().find(|(r, _)| *r == receiver) {
                list.push(sample);
            }
        }
    }
    Ok((results, volume_mb))
}

/// One run of `receiver` on a fresh copy of the template slot into a fresh directory.
async fn measure(
    setup: &Setup,
    admin: &tokio_postgres::Client,
    receiver: Receiver,
    label: &str,
    complete: u64,
    compare: bool,
) -> Result<Run, String> {
    let slot = unique_name("rw");
    admin
        .execute(
            "SELECT pg_copy_physical_replication_slot($1, $2)",
            &[&setup.template, &slot],
        )
        .await
        .map_err(|e| format!("copy slot: {}", pg_error(&e)))?;
    let dir = setup.scratch.join(&slot);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir_text = dir.to_string_lossy().into_owned();
    let mut command = Command::new(&setup.measure);
    match receiver {
        Receiver::Ours => {
            command.arg(&setup.ours).args([
                "receivewal",
                "-d",
                &setup.conninfo,
                "-S",
                &slot,
                "-E",
                &setup.end,
                "-D",
                &dir_text,
                "-n",
            ]);
        }
        Receiver::PgReceivewal => {
            command.arg(&setup.pg_receivewal).args([
                "-d",
                &setup.conninfo,
                "-S",
                &slot,
                "-E",
                &setup.end,
                "-D",
                &dir_text,
                "-n",
                "-w",
            ]);
        }
    }
    let walsender =
        format!("SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}'");
    let sample = watch(command, admin, &walsender, setup.ticks, setup.timeout).await;
    let checked = sample.and_then(|sample| {
        check_files(&dir, &setup.server_wal, complete, compare)
            .map_err(|e| format!("{} {label}: {e}", receiver.name()))?;
        Ok(sample)
    });
    let _ = std::fs::remove_dir_all(&dir);
    drop_slot(admin, &slot).await;
    checked.map_err(|e| format!("{} {label}: {e}", receiver.name()))
}

/// Runs `command` (bench-measure + a client), sampling the CPU of the walsender that
/// `walsender_sql` (one row, an int4 pid or NULL) finds every 10 ms.
pub(crate) async fn watch(
    mut command: Command,
    admin: &tokio_postgres::Client,
    walsender_sql: &str,
    ticks: f64,
    timeout: Duration,
) -> Result<Run, String> {
    use std::os::unix::process::CommandExt as _;
    command
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0);
    let mut child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut walsender: Option<(u32, f64)> = None;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if walsender.is_none()
            && let Ok(Some(row)) = admin.query_opt(walsender_sql, &[]).await
            && let Ok(Some(pid)) = row.try_get::<_, Option<i32>>(0)
        {
            walsender = Some((pid.unsigned_abs(), 0.0));
        }
        if let Some((pid, last)) = walsender
            && let Some(cpu) = consumer::proc_cpu_seconds(pid, ticks)
        {
            walsender = Some((pid, cpu.max(last)));
        }
        if Instant::now() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            return Err(format!("timed out after {} s", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let json: Json = serde_json::from_str(text.trim())
        .map_err(|e| format!("bench-measure printed {text:?}: {e}"))?;
    let number = |key: &str| json.get(key).and_then(Json::as_f64).unwrap_or(0.0);
    if !output.status.success() {
        return Err(format!(
            "failed (exit code {}); its error is printed above",
            number("exit_code")
        ));
    }
    Ok(Run {
        wall_s: number("wall_s"),
        cpu_s: number("user_s") + number("sys_s"),
        user_s: number("user_s"),
        maxrss_kb: number("maxrss_kb"),
        walsender_cpu_s: walsender.map_or(f64::NAN, |(_, cpu)| cpu),
    })
}

/// The expected number of complete segments, each equal to the server's when `compare`.
fn check_files(dir: &Path, server_wal: &Path, complete: u64, compare: bool) -> Result<(), String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    names.sort();
    if names.len() as u64 != complete {
        return Err(format!(
            "{} complete segments, expected {complete}",
            names.len()
        ));
    }
    for name in &names {
        let mine = std::fs::metadata(dir.join(name)).map_err(|e| e.to_string())?;
        if mine.len() != SEGMENT {
            return Err(format!("{name}: {} bytes", mine.len()));
        }
        if compare {
            let ours = std::fs::read(dir.join(name)).map_err(|e| e.to_string())?;
            let theirs = std::fs::read(server_wal.join(name)).map_err(|e| e.to_string())?;
            if ours != theirs {
                return Err(format!("{name} differs from the server's"));
            }
        }
    }
    Ok(())
}

/// Drops `slot` once its walsender has released it.
async fn drop_slot(admin: &tokio_postgres::Client, slot: &str) {
    for _ in 0..600 {
        let done = admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND NOT active",
                &[&slot],
            )
            .await;
        if matches!(done, Ok(1)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("xtask: bench: slot {slot} is still active; left in place");
}

/// `median (min–max)` of `values` with `decimals` decimals, or `–` without values.
pub(crate) fn spread(values: impl Iterator<Item = f64>, decimals: usize) -> String {
    let values: Vec<f64> = values.collect();
    Spread::of(&values).map_or_else(
        || "–".into(),
        |s| {
            format!(
                "{:.d$} ({:.d$}–{:.d$})",
                s.median,
                s.min,
                s.max,
                d = decimals
            )
        },
    )
}

/// The markdown table: per receiver, then the ratios ours ÷ pg_receivewal run by run.
fn table(results: &Results, volume_mb: f64) -> String {
    let mut out = String::from(
        "| Receiver | WAL MB | Wall s | MB/s | CPU s | CPU s / GB | Peak RSS MB | Walsender CPU s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (receiver, runs) in results {
        let _ = writeln!(
            out,
            "| {} | {volume_mb:.0} | {} | {} | {} | {} | {} | {} |",
            receiver.name(),
            spread(runs.iter().map(|r| r.wall_s), 2),
            spread(runs.iter().map(|r| volume_mb / r.wall_s), 0),
            spread(runs.iter().map(|r| r.cpu_s), 2),
            spread(runs.iter().map(|r| r.cpu_s * 1024.0 / volume_mb), 2),
            spread(runs.iter().map(|r| r.maxrss_kb / 1024.0), 1),
            spread(runs.iter().map(|r| r.walsender_cpu_s), 2),
        );
    }
    let ours = results.iter().find(|(r, _)| *r == Receiver::Ours);
    let theirs = results.iter().find(|(r, _)| *r == Receiver::PgReceivewal);
    if let (Some((_, ours)), Some((_, theirs))) = (ours, theirs) {
        let pairs = || ours.iter().zip(theirs.iter());
        let _ = writeln!(
            out,
            "\nRatios, run by run (median (min–max)): throughput ours ÷ pg_receivewal {} \
             (> 1 favours ours); CPU ours ÷ pg_receivewal {} (< 1 favours ours).",
            spread(pairs().map(|(o, t)| t.wall_s / o.wall_s), 2),
            spread(pairs().map(|(o, t)| o.cpu_s / t.cpu_s), 2),
        );
    }
    out
}
