//! `cargo xtask bench --scenarios basebackup`: our `pg-walstream basebackup` against
//! PostgreSQL's `pg_basebackup`, one run, the same database.
//!
//! The server gets a database of `--backup-mb` MiB (a table of ~170-byte rows whose payload is
//! four independent md5 strings: hex text, about 2:1 compressible), then a `CHECKPOINT`. Each
//! variant is a format and a server compression method:
//!
//! - `tar`: the archives written to a directory on tmpfs (`/dev/shm`) — the null-sink
//!   equivalent: the cost of the client, not of the disk;
//! - `plain`: extracted into a data directory on the disk under `target/bench`;
//! - each with no compression and, where this server build has them (probed with a small
//!   backup before the data is written), server-side `lz4` and `zstd` (`plain` then
//!   decompresses on the client).
//!
//! Both clients run with the same flags (`-X fetch -c fast`, a CRC32C manifest and fsync, their
//! defaults; a `sync` before every run) as separate processes under `bench-measure` (getrusage of exactly that child), in
//! rotating order after an unmeasured warm-up of each variant. Every run's output is checked
//! (the archive or `PG_VERSION`, and a `backup_manifest`); in the first run our plain result is
//! also verified against its manifest with `pg-walstream verifybackup`. Figures: wall time,
//! MB/s (database size ÷ wall), CPU (user + system) of the client, its peak RSS, and the
//! walsender's CPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pg_walstream_testkit::{AuthUser, TestServer, workspace_root};
use serde_json::{Value as Json, json};

use super::receivewal::{Run, query_text, spread, watch};
use super::{BenchArgs, consumer, pg_error, tools};

/// The scenario's name for `--scenarios`.
pub(crate) const NAME: &str = "basebackup";

/// Whether `--scenarios` asks for this scenario.
pub(crate) fn selected(scenarios: &[String]) -> bool {
    scenarios.iter().any(|s| s.eq_ignore_ascii_case(NAME))
}

/// The two clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours,
    PgBaseBackup,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Ours => "ours (native)",
            Client::PgBaseBackup => "pg_basebackup",
        }
    }
}

/// One format × server compression combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Variant {
    tar: bool,
    /// `None`, or the server compression method (`lz4`, `zstd`).
    compression: Option<&'static str>,
}

impl Variant {
    fn label(self) -> String {
        format!(
            "{} {}",
            if self.tar {
                "tar (tmpfs)"
            } else {
                "plain (disk)"
            },
            self.compression
                .map_or("uncompressed".to_owned(), |c| format!("server {c}"))
        )
    }
}

struct Setup {
    ours: PathBuf,
    pg_basebackup: PathBuf,
    measure: PathBuf,
    conninfo: String,
    /// Where tar runs write (tmpfs) and where plain runs write (disk).
    tar_scratch: PathBuf,
    plain_scratch: PathBuf,
    ticks: f64,
    timeout: Duration,
}

/// SQL that finds the walsender serving the backup (the only one on the bench server).
const WALSENDER_SQL: &str =
    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender' LIMIT 1";

/// Runs the scenario and writes `target/bench/basebackup-{latest,<stamp>}.{md,json}`.
///
/// # Errors
/// A build, the server, a client run or a check failed.
pub(crate) fn run(args: &BenchArgs) -> Result<(), String> {
    if args.runs == 0 || args.backup_mb == 0 {
        return Err("--runs and --backup-mb must be at least 1".into());
    }
    let root = workspace_root();
    tools::build_cli_and_measure()?;
    // pg_basebackup sits next to the pg_recvlogical the logical bench finds or installs.
    let pg_basebackup = tools::recvlogical(args.pg_version, args.recvlogical.as_deref())?
        .with_file_name("pg_basebackup");
    if !pg_basebackup.is_file() {
        return Err(format!("no {}", pg_basebackup.display()));
    }
    crate::pg::install(&[args.pg_version])?;
    let load_before = tools::wait_quiet(args.wait_quiet);
    let server = TestServer::builder(args.pg_version)
        .setting("autovacuum", "off")
        .setting("max_wal_size", "'16GB'")
        .setting("checkpoint_timeout", "'1h'")
        .start()
        .map_err(|e| e.to_string())?;
    let setup = Setup {
        ours: root.join("target/release/pg-walstream"),
        measure: root.join("target/bench-build/release/bench-measure"),
        conninfo: format!(
            "{} sslmode=disable",
            server.conninfo(AuthUser::Trust, "postgres")
        ),
        tar_scratch: PathBuf::from(format!(
            "/dev/shm/pg-walstream-bench-{}",
            std::process::id()
        )),
        plain_scratch: root.join("target/bench/basebackup-runs"),
        pg_basebackup,
        ticks: consumer::clock_ticks(),
        timeout: Duration::from_secs(args.timeout),
    };
    for dir in [&setup.tar_scratch, &setup.plain_scratch] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        let admin = server.admin("postgres").await;
        let variants = supported_variants(&setup, args.pg_version)?;
        let size_mb = generate(&admin, args.backup_mb).await?;
        let mut results = Vec::new();
        for variant in variants {
            results.push((
                variant,
                measure_variant(&setup, &admin, variant, args.runs).await?,
            ));
        }
        Ok::<_, String>((results, size_mb))
    });
    for dir in [&setup.tar_scratch, &setup.plain_scratch] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (results, size_mb) = outcome?;
    let load_after = tools::load();
    let markdown = format!(
        "Machine: {}; {}; PostgreSQL {}; pg_basebackup {}; database {size_mb:.0} MB; --runs {}; \
         1-min load average {load_before:.2} before, {load_after:.2} after; {:.0} s.\n\n{}",
        tools::machine(),
        tools::rustc(),
        args.pg_version,
        tools::tool_major(&setup.pg_basebackup).map_or_else(|| "?".into(), |m| m.to_string()),
        args.runs,
        started.elapsed().as_secs_f64(),
        table(&results, size_mb),
    );
    let json = json!({
        "command": std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        "scenario": NAME,
        "machine": tools::machine(),
        "postgresql": args.pg_version,
        "database_mb": size_mb,
        "variants": results.iter().map(|(variant, clients)| json!({
            "variant": variant.label(),
            "clients": clients.iter().map(|(client, runs)| json!({
                "client": client.name(),
                "runs": runs.iter().map(|r| json!({
                    "wall_s": r.wall_s, "cpu_s": r.cpu_s, "user_s": r.user_s,
                    "maxrss_kb": r.maxrss_kb, "walsender_cpu_s": r.walsender_cpu_s,
                })).collect::<Vec<Json>>(),
            })).collect::<Vec<Json>>(),
        })).collect::<Vec<Json>>(),
        "load_average_before": load_before,
        "load_average_after": load_after,
    });
    tools::write_report(NAME, &markdown, &json)
}

/// The variants this server can run: server compression needs 15+ and a server built with
/// the method; a small `pg_basebackup` of the still-empty server tells.
fn supported_variants(setup: &Setup, pg_version: u32) -> Result<Vec<Variant>, String> {
    let mut variants = Vec::new();
    for compression in [None, Some("lz4"), Some("zstd")] {
        if let Some(method) = compression {
            if pg_version < 15 {
                continue;
            }
            let probe = setup.tar_scratch.join(format!("probe-{method}"));
            let output = Command::new(&setup.pg_basebackup)
                .args([
                    "-d",
                    &setup.conninfo,
                    "-F",
                    "t",
                    "-X",
                    "none",
                    "-c",
                    "fast",
                    "-D",
                ])
                .arg(&probe)
                .arg(format!("--compress=server-{method}"))
                .output()
                .map_err(|e| format!("{}: {e}", setup.pg_basebackup.display()))?;
            let _ = std::fs::remove_dir_all(&probe);
            if !output.status.success() {
                eprintln!(
                    "xtask: bench: {NAME}: server {method} skipped: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                continue;
            }
        }
        for tar in [true, false] {
            variants.push(Variant { tar, compression });
        }
    }
    Ok(variants)
}

/// Fills table `bb_load` until the database is at least `mb` MiB; returns its size in MB.
async fn generate(admin: &tokio_postgres::Client, mb: u64) -> Result<f64, String> {
    admin
        .batch_execute(
            "SET synchronous_commit = off; \
             CREATE TABLE bb_load (id bigint, payload text)",
        )
        .await
        .map_err(|e| format!("load table: {}", pg_error(&e)))?;
    let began = Instant::now();
    let size_sql = "SELECT pg_database_size(current_database())::text";
    loop {
        let size: u64 = query_text(admin, size_sql)
            .await?
            .parse()
            .map_err(|e| format!("database size: {e}"))?;
        if size >= mb << 20 {
            break;
        }
        admin
            .batch_execute(
                "INSERT INTO bb_load SELECT g, md5(random()::text) || md5(random()::text) \
                 || md5(random()::text) || md5(random()::text) \
                 FROM generate_series(1, 500000) g",
            )
            .await
            .map_err(|e| format!("load: {}", pg_error(&e)))?;
    }
    for sql in ["VACUUM (FREEZE) bb_load", "CHECKPOINT"] {
        admin
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {}", pg_error(&e)))?;
    }
    let size: f64 = query_text(admin, size_sql)
        .await?
        .parse()
        .map_err(|e| format!("database size: {e}"))?;
    // The cluster holds postgres, template0/1 too; they are small next to the load.
    let size_mb = size / f64::from(1 << 20);
    eprintln!(
        "xtask: bench: {NAME}: database of {size_mb:.0} MB written in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(size_mb)
}

type Results = Vec<(Variant, Vec<(Client, Vec<Run>)>)>;

async fn measure_variant(
    setup: &Setup,
    admin: &tokio_postgres::Client,
    variant: Variant,
    runs: usize,
) -> Result<Vec<(Client, Vec<Run>)>, String> {
    let clients = [Client::Ours, Client::PgBaseBackup];
    for client in clients {
        let warm = measure(setup, admin, client, variant, "warm-up", false).await?;
        eprintln!(
            "xtask: bench: {NAME} {}: warm-up {} {:.2} s",
            variant.label(),
            client.name(),
            warm.wall_s
        );
    }
    let mut results: Vec<(Client, Vec<Run>)> = clients.iter().map(|&c| (c, Vec::new())).collect();
    for run in 0..runs {
        for i in 0..clients.len() {
            // Rotate the order so neither always runs first.
            let client = clients[(i + run) % clients.len()];
            let label = format!("run {}", run + 1);
            let sample = measure(setup, admin, client, variant, &label, run == 0).await?;
            eprintln!(
                "xtask: bench: {NAME} {} {label}: {:<14} {:>6.2} s wall, {:>6.2} s CPU ({:.2} user), {:>5.1} MB, walsender {:.2} s",
                variant.label(),
                client.name(),
                sample.wall_s,
                sample.cpu_s,
                sample.user_s,
                sample.maxrss_kb / 1024.0,
                sample.walsender_cpu_s
            );
            if let Some((_, list)) = results.iter_mut().find(|(c, _)| *c == client) {
                list.push(sample);
            }
        }
    }
    Ok(results)
}

/// One backup by `client` into a fresh directory, checked, then removed.
async fn measure(
    setup: &Setup,
    admin: &tokio_postgres::Client,
    client: Client,
    variant: Variant,
    label: &str,
    verify: bool,
) -> Result<Run, String> {
    let base = if variant.tar {
        &setup.tar_scratch
    } else {
        &setup.plain_scratch
    };
    let dir = base.join(format!(
        "{}-{}",
        client.name().replace([' ', '(', ')'], ""),
        label.replace(' ', "")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    // Nothing of an earlier run (its removal, the load's writes) is left to write back while
    // this one is measured: each client pays for its own writes and fsyncs only.
    let _ = Command::new("sync").status();
    let format = if variant.tar { "t" } else { "p" };
    let mut command = Command::new(&setup.measure);
    match client {
        Client::Ours => command.arg(&setup.ours).arg("basebackup"),
        Client::PgBaseBackup => command.arg(&setup.pg_basebackup),
    };
    command
        .args([
            "-d",
            &setup.conninfo,
            "-F",
            format,
            "-X",
            "fetch",
            "-c",
            "fast",
            "-D",
        ])
        .arg(&dir);
    if let Some(method) = variant.compression {
        command.arg(format!("--compress=server-{method}"));
    }
    let sample = watch(command, admin, WALSENDER_SQL, setup.ticks, setup.timeout).await;
    let checked = sample.and_then(|sample| {
        check_output(&dir, variant)?;
        if verify && client == Client::Ours && !variant.tar {
            verify_with_ours(&setup.ours, &dir)?;
        }
        Ok(sample)
    });
    let _ = std::fs::remove_dir_all(&dir);
    checked.map_err(|e| format!("{} {} {label}: {e}", client.name(), variant.label()))
}

/// The backup looks complete: `backup_manifest`, and `base.tar[.lz4|.zst]` or `PG_VERSION`.
fn check_output(dir: &Path, variant: Variant) -> Result<(), String> {
    let main = if variant.tar {
        match variant.compression {
            None => "base.tar",
            Some("lz4") => "base.tar.lz4",
            Some(_) => "base.tar.zst",
        }
    } else {
        "PG_VERSION"
    };
    for name in [main, "backup_manifest"] {
        if !dir.join(name).is_file() {
            return Err(format!("{} has no {name}", dir.display()));
        }
    }
    Ok(())
}

/// `pg-walstream verifybackup DIR` passes.
fn verify_with_ours(ours: &Path, dir: &Path) -> Result<(), String> {
    let output = Command::new(ours)
        .arg("verifybackup")
        .arg(dir)
        .output()
        .map_err(|e| format!("verifybackup: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "verifybackup failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The markdown table: per variant and client, then the ratios ours ÷ pg_basebackup.
fn table(results: &Results, size_mb: f64) -> String {
    let mut out = String::from(
        "| Variant | Client | Wall s | MB/s | CPU s | Peak RSS MB | Walsender CPU s |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for (variant, clients) in results {
        for (client, runs) in clients {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                variant.label(),
                client.name(),
                spread(runs.iter().map(|r| r.wall_s), 2),
                spread(runs.iter().map(|r| size_mb / r.wall_s), 0),
                spread(runs.iter().map(|r| r.cpu_s), 2),
                spread(runs.iter().map(|r| r.maxrss_kb / 1024.0), 1),
                spread(runs.iter().map(|r| r.walsender_cpu_s), 2),
            );
        }
    }
    out.push_str(
        "\nRatios, run by run (median (min–max)): throughput ours ÷ pg_basebackup (> 1 favours \
         ours), CPU ours ÷ pg_basebackup (< 1 favours ours):\n\n\
         | Variant | Throughput | CPU |\n|---|---:|---:|\n",
    );
    for (variant, clients) in results {
        let ours = clients.iter().find(|(c, _)| *c == Client::Ours);
        let theirs = clients.iter().find(|(c, _)| *c == Client::PgBaseBackup);
        if let (Some((_, ours)), Some((_, theirs))) = (ours, theirs) {
            let pairs = || ours.iter().zip(theirs.iter());
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                variant.label(),
                spread(pairs().map(|(o, t)| t.wall_s / o.wall_s), 2),
                spread(pairs().map(|(o, t)| o.cpu_s / t.cpu_s), 2),
            );
        }
    }
    out
}
