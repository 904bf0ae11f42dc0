//! `cargo xtask bench --scenarios waldump`: `pg-walstream waldump --stats` against
//! `pg_waldump --stats` on the same WAL files, in one run, with a warm page cache.
//!
//! The WAL (`--waldump-mb`, default 512 MiB of it) is written once by a throwaway server of a
//! version that has a pg_waldump here (15: Debian's; 18: the PyPI wheel's — `--pg-version` if
//! it has one, else 18), kept by a physical slot, and copied to target/bench/waldump-wal;
//! later runs reuse that copy when its range file is there. Both tools read exactly the
//! range `-s START -e END`, check every record's CRC, and print the same statistics (checked
//! once before measuring). Runs alternate between the tools after one unmeasured pass each
//! (so the files are in the page cache) — ours with its default threads (the cores),
//! pg_waldump, ours with `--jobs 1`; the figures are medians with min–max of
//! `--runs` runs: MB/s = WAL bytes in the range / wall time, CPU = user + system seconds of the
//! child (`cutime`/`cstime` of /proc/self/stat around its wait). After each round an untimed
//! traced run of ours gives its critical path on idle cores (main thread + busiest worker on
//! a CPU): an estimate that waiting for shared cores does not inflate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use pg_walstream_testkit::{TestServer, client_tool, workspace_root};
use serde_json::json;

use super::report::Spread;
use super::tools;
use crate::process::{cargo, run as run_command};

/// The WAL produced by the workload, on disk.
struct WalRange {
    dir: PathBuf,
    start: String,
    end: String,
    bytes: u64,
}

fn parse_lsn(s: &str) -> Result<u64, String> {
    let (hi, lo) = s.split_once('/').ok_or_else(|| format!("bad LSN {s:?}"))?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| format!("bad LSN {s:?}"))?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| format!("bad LSN {s:?}"))?;
    Ok((hi << 32) | lo)
}

/// A pg_waldump of major version `version`: Debian's (15) or the PyPI wheel's (18).
fn pg_waldump(version: u32) -> Result<Option<PathBuf>, String> {
    if let Some(tool) = client_tool("pg_waldump", version)
        && tools::tool_major(&tool) == Some(version)
    {
        return Ok(Some(tool));
    }
    if version == 18 {
        let recvlogical = tools::recvlogical(18, None)?;
        let tool = recvlogical.with_file_name("pg_waldump");
        return Ok(tools::tool_major(&tool)
            .is_some_and(|m| m == 18)
            .then_some(tool));
    }
    Ok(None)
}

/// Runs the waldump scenario.
pub(crate) fn run(pg_version: u32, runs: usize, megabytes: u64) -> Result<(), String> {
    let (version, theirs) = if let Some(tool) = pg_waldump(pg_version)? {
        (pg_version, tool)
    } else {
        eprintln!(
            "xtask: bench waldump: no pg_waldump {pg_version} here (a pg_waldump reads only \
             its own version's WAL); using PostgreSQL 18"
        );
        (18, pg_waldump(18)?.ok_or("no pg_waldump 18 (PyPI wheel)")?)
    };
    let mut build = cargo();
    build.args(["build", "--release", "-p", "pg-walstream-cli"]);
    run_command(build)?;
    let ours = workspace_root().join("target/release/pg-walstream");
    let wal = generate_once(version, megabytes)?;
    let dir = wal.dir.display().to_string();
    let range = ["-p", &dir, "-s", &wal.start, "-e", &wal.end, "--stats"];

    // Same statistics, and the unmeasured warm-up of the page cache.
    let our_text = output(Command::new(&ours).arg("waldump").args(range))?;
    let their_text = output(Command::new(&theirs).args(range))?;
    let normalize = |t: &str| {
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    if normalize(&our_text) != normalize(&their_text) {
        return Err(format!(
            "waldump --stats differs from pg_waldump's:\n{our_text}\n---\n{their_text}"
        ));
    }
    let ticks = super::consumer::clock_ticks();
    // Ours with its default threads (the cores), pg_waldump, and ours on one thread.
    let mut samples: [Vec<(f64, f64)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut critical: Vec<f64> = Vec::new();
    for _ in 0..runs {
        let mut mine = Command::new(&ours);
        mine.arg("waldump").args(range);
        samples[0].push(measure(mine, ticks)?);
        let mut other = Command::new(&theirs);
        other.args(range);
        samples[1].push(measure(other, ticks)?);
        let mut single = Command::new(&ours);
        single.args(["waldump", "--jobs", "1"]).args(range);
        samples[2].push(measure(single, ticks)?);
        // Not timed: the threads' on-CPU times, for the estimate on idle cores.
        let mut traced = Command::new(&ours);
        traced.arg("waldump").args(range);
        critical.extend(critical_path(traced)?);
    }
    let mb = wal.bytes as f64 / 1e6;
    let rates: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| s.iter().map(|(wall, _)| mb / wall).collect())
        .collect();
    let cpus: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| s.iter().map(|(_, cpu)| *cpu).collect())
        .collect();
    let per_cpu: Vec<Vec<f64>> = cpus
        .iter()
        .map(|c| c.iter().map(|cpu| mb / cpu).collect())
        .collect();
    let spread = |v: &[f64]| Spread::of(v).ok_or("no runs");
    let (our_rate, their_rate) = (spread(&rates[0])?, spread(&rates[1])?);
    let ratio = our_rate.median / their_rate.median;
    let cpu_ratio = spread(&per_cpu[0])?.median / spread(&per_cpu[1])?.median;
    let single_ratio = spread(&rates[2])?.median / their_rate.median;
    let their_cpu = spread(&cpus[1])?.median;
    let critical = Spread::of(&critical);
    let machine = tools::machine();
    let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut table = format!(
        "Machine: {machine}; {}; PostgreSQL {version} WAL, {mb:.0} MB ({} to {}); --runs {runs}; \
         1-min load average {:.2}.\n\n\
         | tool | MB/s (wall) | CPU s (user+sys) | MB per CPU-second |\n|---|---|---|---|\n",
        tools::rustc(),
        wal.start,
        wal.end,
        tools::load()
    );
    let names = [
        format!("pg-walstream waldump --stats ({jobs} threads)"),
        format!("pg_waldump {version} --stats"),
        "pg-walstream waldump --stats --jobs 1".to_owned(),
    ];
    for (i, name) in names.iter().enumerate() {
        let (rate, cpu, eff) = (spread(&rates[i])?, spread(&cpus[i])?, spread(&per_cpu[i])?);
        let _ = writeln!(
            table,
            "| {name} | {:.0} ({:.0}–{:.0}) | {:.3} ({:.3}–{:.3}) | {:.0} ({:.0}–{:.0}) |",
            rate.median,
            rate.min,
            rate.max,
            cpu.median,
            cpu.min,
            cpu.max,
            eff.median,
            eff.min,
            eff.max
        );
    }
    let _ = writeln!(
        table,
        "\nRatio ours / pg_waldump: {ratio:.2}× in MB/s (wall), {cpu_ratio:.2}× in MB per \
         CPU-second; on one thread {single_ratio:.2}× in MB/s."
    );
    if let Some(c) = &critical {
        let _ = writeln!(
            table,
            "\nCritical path of ours on idle cores (main thread + busiest worker on a CPU, \
             `PG_WALSTREAM_WALDUMP_TRACE`, untimed runs): {:.0} ms ({:.0}–{:.0}); pg_waldump's \
             CPU {:.0} ms: {:.2}× (an estimate where the cores are shared).",
            c.median * 1e3,
            c.min * 1e3,
            c.max * 1e3,
            their_cpu * 1e3,
            their_cpu / c.median
        );
    }
    let report = json!({
        "scenario": "waldump",
        "machine": machine,
        "postgresql": version,
        "wal_bytes": wal.bytes,
        "start": wal.start,
        "end": wal.end,
        "runs": runs,
        "ours": {"mb_per_s": rates[0], "cpu_s": cpus[0]},
        "pg_waldump": {"mb_per_s": rates[1], "cpu_s": cpus[1]},
        "ours_one_thread": {"mb_per_s": rates[2], "cpu_s": cpus[2]},
        "threads": jobs,
        "ratio": ratio,
        "one_thread_ratio": single_ratio,
        "critical_path_s": critical.as_ref().map(|c| c.median),
        "cpu_ratio": cpu_ratio,
    });
    let out = workspace_root().join("target/bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let pretty = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    for (name, text) in [
        ("waldump-latest.md", &table),
        ("waldump-latest.json", &pretty),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("{table}");
    eprintln!(
        "xtask: bench: wrote {}/waldump-latest.{{md,json}}",
        out.display()
    );
    Ok(())
}

fn output(command: &mut Command) -> Result<String, String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// CPU seconds (user + system) of this process's waited-for children.
fn children_cpu(ticks: f64) -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
    let rest = stat.rsplit_once(')').ok_or("bad /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<f64, String> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| "bad /proc/self/stat".to_owned())
    };
    Ok((field(16)? + field(17)?) / ticks)
}

/// Wall seconds and CPU seconds of one run of `command` (output discarded).
fn measure(mut command: Command, ticks: f64) -> Result<(f64, f64), String> {
    let cpu_before = children_cpu(ticks)?;
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("{command:?}: {status}"));
    }
    Ok((wall, children_cpu(ticks)? - cpu_before))
}

/// Seconds on a CPU of the main thread plus the busiest worker of one traced run of ours
/// (`None` if it decoded on one thread).
fn critical_path(mut command: Command) -> Result<Option<f64>, String> {
    let out = command
        .env("PG_WALSTREAM_WALDUMP_TRACE", "1")
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    let Some(line) = text
        .lines()
        .find_map(|l| l.strip_prefix("waldump: on-CPU ms: main thread "))
    else {
        return Ok(None);
    };
    if line.contains("NaN") {
        return Ok(None);
    }
    let numbers: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|n| n.parse().ok())
        .collect();
    let Some((main, workers)) = numbers.split_first() else {
        return Ok(None);
    };
    let busiest = workers.iter().copied().fold(0.0, f64::max);
    Ok(Some((main + busiest) / 1e3))
}

/// The WAL of the scenario: from target/bench/waldump-wal if a previous run left it for
/// this version and size, else written now by a throwaway server.
fn generate_once(version: u32, megabytes: u64) -> Result<WalRange, String> {
    let dir = workspace_root().join("target/bench/waldump-wal");
    let marker = dir.join("RANGE");
    let wanted = megabytes * 1024 * 1024;
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let words: Vec<&str> = text.split_whitespace().collect();
        if let [v, start, end] = words.as_slice()
            && v.parse() == Ok(version)
        {
            let bytes = parse_lsn(end)? - parse_lsn(start)?;
            if bytes >= wanted {
                eprintln!("xtask: bench waldump: reusing {}", dir.display());
                return Ok(WalRange {
                    dir: dir.clone(),
                    start: (*start).to_owned(),
                    end: (*end).to_owned(),
                    bytes,
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::pg::install(&[version])?;
    let server = TestServer::builder(version)
        .setting("max_wal_size", "'16GB'")
        .setting("checkpoint_timeout", "'1h'")
        .setting("autovacuum", "off")
        .start()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (start, end) = runtime.block_on(write_workload(&server, wanted))?;
    copy_segments(&server.data_dir().join("pg_wal"), &dir, &start, &end)?;
    server.stop_server().map_err(|e| e.to_string())?;
    std::fs::write(&marker, format!("{version} {start} {end}\n"))
        .map_err(|e| format!("{}: {e}", marker.display()))?;
    let bytes = parse_lsn(&end)? - parse_lsn(&start)?;
    Ok(WalRange {
        dir,
        start,
        end,
        bytes,
    })
}

/// A pgbench-like mix (inserts, updates with full-page images after checkpoints, deletes)
/// until `bytes` of WAL are written; returns the range.
async fn write_workload(server: &TestServer, bytes: u64) -> Result<(String, String), String> {
    let c = server.admin("postgres").await;
    let sql = |e: tokio_postgres::Error| super::pg_error(&e);
    let lsn = async |c: &tokio_postgres::Client, q: &str| -> Result<String, String> {
        Ok(c.query_one(q, &[]).await.map_err(sql)?.get::<_, String>(0))
    };
    c.batch_execute(
        "SELECT pg_create_physical_replication_slot('bench_waldump', true);
         CREATE TABLE accounts (aid int PRIMARY KEY, abalance int, filler char(84));
         CREATE TABLE history (aid int, delta int, mtime timestamptz, filler char(22));
         INSERT INTO accounts SELECT g, 0, '' FROM generate_series(1, 200000) g;
         CHECKPOINT;",
    )
    .await
    .map_err(sql)?;
    let start = lsn(&c, "SELECT pg_current_wal_insert_lsn()::text").await?;
    let start_n = parse_lsn(&start)?;
    let mut round = 0u64;
    loop {
        let now = parse_lsn(&lsn(&c, "SELECT pg_current_wal_insert_lsn()::text").await?)?;
        eprintln!(
            "xtask: bench waldump: {} of {} MB of WAL written",
            (now - start_n) >> 20,
            bytes >> 20
        );
        if now - start_n >= bytes {
            break;
        }
        round += 1;
        c.batch_execute(&format!(
            "UPDATE accounts SET abalance = abalance + 1 WHERE aid % 7 = {m};
             INSERT INTO history SELECT g, {round}, now(), '' FROM generate_series(1, 100000) g;
             DELETE FROM history WHERE delta = {old};
             CHECKPOINT;",
            m = round % 7,
            old = round.saturating_sub(2),
        ))
        .await
        .map_err(sql)?;
    }
    // The end is a record boundary in a segment that the switch completes (after a switch
    // the insert position is in a segment that may not exist yet).
    let end = lsn(&c, "SELECT pg_current_wal_insert_lsn()::text").await?;
    c.batch_execute("SELECT pg_switch_wal()")
        .await
        .map_err(sql)?;
    Ok((start, end))
}

/// Copies the segments holding `start..end` from `from` into `to`.
fn copy_segments(from: &Path, to: &Path, start: &str, end: &str) -> Result<(), String> {
    let (first, last) = (parse_lsn(start)? >> 24, parse_lsn(end)? >> 24);
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        // 16 MiB segments (the server's default): log * 256 + seg.
        let log = u64::from_str_radix(&name[8..16], 16).map_err(|e| e.to_string())?;
        let seg = u64::from_str_radix(&name[16..24], 16).map_err(|e| e.to_string())?;
        let number = log * 256 + seg;
        if (first..=last).contains(&number) {
            std::fs::copy(entry.path(), to.join(&name)).map_err(|e| format!("copy {name}: {e}"))?;
        }
    }
    Ok(())
}
