//! `cargo xtask bench`: our logical consumer against pg_recvlogical and upstream pg_walstream
//! 0.9.0, side by side on one server with the same data.
//!
//! Each scenario gets its own database. A template slot is created *before* the workload is
//! written; every measured run consumes a fresh copy of it
//! (`pg_copy_logical_replication_slot`), so all consumers see identical contents and the
//! writer is not measured. A warm-up pass with our consumer finds the last commit's end LSN,
//! which every consumer then stops at. Consumers run as separate processes under
//! `bench-measure` (getrusage of exactly that child); the walsender's CPU comes from /proc.
//! `--live` instead runs the consumers concurrently with writers and reports commit→receive
//! latency. See docs/BENCHMARKS.md.

// Figures are reported as f64; counts far below 2^52 convert exactly.
#![allow(clippy::cast_precision_loss)]

mod basebackup;
mod consumer;
mod receivewal;
mod report;
mod scenario;
mod tools;
mod waldump;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use pg_walstream_testkit::{AuthUser, TestServer, unique_name, workspace_root};
use serde_json::json;

use consumer::{Consumer, RunSpec, Running, Sample, Tools};
use report::Cell;
use scenario::{Scenario, Shape};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// DML events of the Baseline scenario; the others scale from it (Wide-20col ÷5,
    /// Payload-2KB ÷10, live ÷10).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Measured runs per scenario, format and consumer (figures are medians with min–max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// PostgreSQL major version of the server.
    #[arg(long, default_value_t = 17)]
    pg_version: u32,
    /// Comma-separated scenarios (default: all).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Comma-separated consumers: ours-native, ours-libpq, pg_recvlogical, upstream.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ours-native,ours-libpq,pg_recvlogical,upstream"
    )]
    consumers: Vec<String>,
    /// Comma-separated column formats: text, binary.
    #[arg(long, value_delimiter = ',', default_value = "text,binary")]
    formats: Vec<String>,
    /// `--scenarios receivewal`: MB of WAL to pre-generate and receive (see receivewal.rs).
    #[arg(long, default_value_t = 1024)]
    wal_mb: u64,
    /// Measure with concurrent writers (commit→receive latency) instead of pre-generated data.
    #[arg(long)]
    live: bool,
    /// pg_recvlogical to use (default: found or installed for the server version).
    #[arg(long)]
    recvlogical: Option<PathBuf>,
    /// Live mode: pause of each writer after each 100-row commit, in ms (keeps the write rate
    /// below what the walsenders can decode, so latency is delivery, not backlog).
    #[arg(long, default_value_t = 20)]
    live_pause_ms: u64,
    /// Run the consumers under a profiler: `perf` (perf record -g), `strace` (strace -c) or
    /// `callgrind` (valgrind: user-space instruction counts that do not depend on the load) or
    /// `heaptrack` (every allocation, with the peak's call stacks); output in target/bench/profile/. Figures of profiled runs include the profiler.
    #[arg(long)]
    profile: Option<String>,
    /// Before starting, wait up to this many seconds for the 1-minute load average to drop
    /// below 1 (the figures are noisy on a busy machine).
    #[arg(long, default_value_t = 0)]
    wait_quiet: u64,
    /// A consumer still running after this many seconds is killed and its run fails.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// `--scenarios waldump` (runs alone): MiB of WAL to decode (written once, then reused).
    #[arg(long, default_value_t = 512)]
    waldump_mb: u64,
    /// `--scenarios basebackup` (runs alone): MiB of database to back up.
    #[arg(long, default_value_t = 2048)]
    backup_mb: u64,
    /// Our consumers' read-coalescing budget in µs (`LogicalConfigBuilder::read_coalescing`;
    /// 0 turns coalescing off); default: the library's (1 ms).
    #[arg(long)]
    read_budget_us: Option<u64>,
    /// Our consumers' socket receive buffer in KiB (`LogicalConfigBuilder::recv_buffer_size`,
    /// `SO_RCVBUF`; a fixed size turns Linux's receive-buffer autotuning off); default: the
    /// operating system's.
    #[arg(long)]
    recv_buffer_kib: Option<u64>,
    /// The most KiB our native consumer reads from its socket at a time
    /// (`LogicalConfigBuilder::max_read_size`); default: the library's (16 KiB).
    #[arg(long)]
    max_read_kib: Option<u64>,
}

/// Runs the benchmark and writes `target/bench/{latest,<stamp>}.{md,json}`.
pub(crate) fn run(args: &BenchArgs) -> Result<(), String> {
    if args.scenarios.iter().any(|s| s == "waldump") {
        return waldump::run(args.pg_version, args.runs, args.waldump_mb);
    }
    if receivewal::selected(&args.scenarios) {
        return receivewal::run(args);
    }
    if basebackup::selected(&args.scenarios) {
        return basebackup::run(args);
    }
    let scenarios = scenario::select(&args.scenarios)?;
    let mut consumers = args
        .consumers
        .iter()
        .map(|c| Consumer::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    for format in &args.formats {
        if format != "text" && format != "binary" {
            return Err(format!("unknown format {format:?}: text or binary"));
        }
    }
    if let Some(profiler) = args.profile.as_deref()
        && profiler != "perf"
        && profiler != "strace"
        && profiler != "callgrind"
        && profiler != "heaptrack"
    {
        return Err(format!(
            "unknown profiler {profiler:?}: perf, strace, callgrind or heaptrack"
        ));
    }
    if args.runs == 0 || args.rows == 0 {
        return Err("--runs and --rows must be at least 1".into());
    }
    let mut tools = tools::build()?;
    crate::pg::install(&[args.pg_version])?;
    if consumers.contains(&Consumer::PgRecvlogical) {
        if args.live {
            eprintln!("xtask: bench --live: pg_recvlogical has no commit times to report; skipped");
            consumers.retain(|c| *c != Consumer::PgRecvlogical);
        } else {
            tools.recvlogical = Some(tools::recvlogical(
                args.pg_version,
                args.recvlogical.as_deref(),
            )?);
        }
    }
    let quiet_deadline = Instant::now() + Duration::from_secs(args.wait_quiet);
    while tools::load() >= 1.0 && Instant::now() < quiet_deadline {
        eprintln!(
            "xtask: bench: waiting for a quiet machine (load average {:.2})",
            tools::load()
        );
        std::thread::sleep(Duration::from_secs(10));
    }
    let load_before = tools::load();
    eprintln!(
        "xtask: bench: load average {load_before:.2} before starting{}",
        if load_before >= 1.0 {
            " (the machine is busy: figures will be noisy)"
        } else {
            ""
        }
    );
    let server = TestServer::builder(args.pg_version)
        .setting("max_replication_slots", "64")
        .setting("max_wal_senders", "64")
        .setting("logical_decoding_work_mem", "'64MB'")
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
    let ctx = Context {
        server: &server,
        tools: &tools,
        args,
        consumers: &consumers,
        ticks: consumer::clock_ticks(),
    };
    let cells = runtime.block_on(async {
        if args.live {
            ctx.live().await
        } else {
            let mut cells = Vec::new();
            for scenario in &scenarios {
                cells.extend(ctx.scenario(scenario).await?);
            }
            Ok(cells)
        }
    })?;
    let load_after = tools::load();
    let table = if args.live {
        report::live_markdown(&cells)
    } else {
        report::markdown(&cells)
    };
    let meta = json!({
        "command": std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        "mode": if args.live { "live" } else { "pre-generated" },
        "machine": tools::machine(),
        "rustc": tools::rustc(),
        "postgresql": server_version(&server),
        "pg_recvlogical": tools.recvlogical.as_ref().map(|p| p.display().to_string()),
        "rows": args.rows,
        "runs": args.runs,
        "read_budget_us": args.read_budget_us,
        "recv_buffer_kib": args.recv_buffer_kib,
        "max_read_kib": args.max_read_kib,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let header = format!(
        "Machine: {}; {}; PostgreSQL {}; pg_recvlogical {}; --rows {} --runs {}{}{}{}; \
         1-min load average {load_before:.2} before, {load_after:.2} after; {:.0} s.\n\n",
        meta["machine"].as_str().unwrap_or(""),
        meta["rustc"].as_str().unwrap_or(""),
        meta["postgresql"].as_str().unwrap_or(""),
        tools
            .recvlogical
            .as_ref()
            .and_then(|p| tools::tool_major(p))
            .map_or_else(|| "–".to_owned(), |m| m.to_string()),
        args.rows,
        args.runs,
        args.read_budget_us
            .map_or_else(String::new, |us| format!(" --read-budget-us {us}")),
        args.recv_buffer_kib
            .map_or_else(String::new, |kib| format!(" --recv-buffer-kib {kib}")),
        args.max_read_kib
            .map_or_else(String::new, |kib| format!(" --max-read-kib {kib}")),
        started.elapsed().as_secs_f64(),
    );
    let json = report::to_json(&cells, meta);
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let kind = if args.live { "live" } else { "bench" };
    let markdown = format!("{header}{table}");
    let pretty = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    for name in [format!("{kind}-{stamp}"), format!("{kind}-latest")] {
        for (ext, text) in [("md", &markdown), ("json", &pretty)] {
            let path = dir.join(format!("{name}.{ext}"));
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    println!("{markdown}");
    eprintln!(
        "xtask: bench: wrote {}/{kind}-latest.{{md,json}}",
        dir.display()
    );
    let failed = cells.iter().any(|c| !c.errors.is_empty());
    if failed {
        return Err("some runs failed (see the table)".into());
    }
    Ok(())
}

/// A tokio-postgres error with the server's message.
fn pg_error(error: &tokio_postgres::Error) -> String {
    error.as_db_error().map_or_else(
        || error.to_string(),
        |db| format!("{}: {}", db.code().code(), db.message()),
    )
}

fn server_version(server: &TestServer) -> String {
    let output = std::process::Command::new(server.bindir().join("postgres"))
        .arg("--version")
        .output();
    output.map_or_else(
        |_| server.version().to_string(),
        |o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("postgres (PostgreSQL) ")
                .to_owned()
        },
    )
}

/// What every measurement needs.
struct Context<'a> {
    server: &'a TestServer,
    tools: &'a Tools,
    args: &'a BenchArgs,
    consumers: &'a [Consumer],
    ticks: f64,
}

/// A scenario's database with its table and publication.
struct Db {
    name: String,
    admin: tokio_postgres::Client,
}

impl Context<'_> {
    /// The consumers' connection string: TCP to 127.0.0.1, or with `unix` the server's
    /// unix-domain socket (a later `host` overrides the earlier one).
    fn conninfo(&self, db: &str, unix: bool) -> String {
        let tcp = self.server.conninfo(AuthUser::Trust, db);
        if unix {
            format!(
                "{tcp} host={} sslmode=disable",
                self.server.socket_dir().display()
            )
        } else {
            format!("{tcp} sslmode=disable")
        }
    }

    /// The profiler command for one run (empty without `--profile`).
    fn profiler(
        &self,
        scenario: &str,
        format: &str,
        consumer: Consumer,
        run: usize,
    ) -> Vec<String> {
        let Some(profiler) = self.args.profile.as_deref() else {
            return Vec::new();
        };
        let dir = workspace_root().join("target/bench/profile");
        let _ = std::fs::create_dir_all(&dir);
        let stem = format!("{scenario}-{format}-{}-run{}", consumer.name(), run + 1);
        let path = |ext: &str| dir.join(format!("{stem}.{ext}")).display().to_string();
        let words: Vec<String> = match profiler {
            "perf" => vec![
                "perf".into(),
                "record".into(),
                "-q".into(),
                "-g".into(),
                "-o".into(),
                path("perf.data"),
                "--".into(),
            ],
            "callgrind" => vec![
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--quiet".into(),
                format!("--callgrind-out-file={}", path("callgrind.out")),
            ],
            "heaptrack" => vec!["heaptrack".into(), "-o".into(), path("heaptrack")],
            _ => vec![
                "strace".into(),
                "-f".into(),
                "-c".into(),
                "-o".into(),
                path("strace.txt"),
            ],
        };
        words
    }

    fn proto(&self) -> u32 {
        match self.args.pg_version {
            0..=13 => 1,
            14 => 2,
            15 => 3,
            _ => 4,
        }
    }

    async fn database(&self, scenario: &Scenario) -> Result<Db, String> {
        let name = self.server.create_database("bench").await;
        let admin = self.server.admin(&name).await;
        admin
            .batch_execute(&scenario.ddl())
            .await
            .map_err(|e| format!("{}: DDL: {}", scenario.name, pg_error(&e)))?;
        Ok(Db { name, admin })
    }

    async fn drop_database(&self, db: Db) {
        drop(db.admin);
        let admin = self.server.admin("postgres").await;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name))
            .await;
    }

    /// Writes the scenario's rows with its writers in parallel; returns the time taken.
    async fn write(&self, db: &Db, scenario: &Scenario, pause_ms: u64) -> Result<f64, String> {
        let started = Instant::now();
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..scenario.writers {
            let client = self.server.admin(&db.name).await;
            let sql = scenario.writer_sql(self.args.rows, w, pause_ms);
            writers.spawn(async move {
                for statement in &sql {
                    client.batch_execute(statement).await?;
                }
                Ok::<(), tokio_postgres::Error>(())
            });
        }
        while let Some(result) = writers.join_next().await {
            result
                .map_err(|e| format!("writer task: {e}"))?
                .map_err(|e| format!("{}: writer: {}", scenario.name, pg_error(&e)))?;
        }
        Ok(started.elapsed().as_secs_f64())
    }

    async fn lsn(admin: &tokio_postgres::Client, sql: &str) -> Result<String, String> {
        admin
            .query_one(sql, &[])
            .await
            .and_then(|row| row.try_get::<_, String>(0))
            .map_err(|e| format!("{sql}: {}", pg_error(&e)))
    }

    async fn copy_slot(admin: &tokio_postgres::Client, template: &str) -> Result<String, String> {
        let slot = unique_name("bench");
        admin
            .execute(
                "SELECT pg_copy_logical_replication_slot($1, $2)",
                &[&template, &slot],
            )
            .await
            .map_err(|e| format!("copy slot: {}", pg_error(&e)))?;
        Ok(slot)
    }

    /// Drops `slot`, waiting for its walsender to go away.
    async fn drop_slot(admin: &tokio_postgres::Client, slot: &str) {
        for _ in 0..200 {
            let done = admin
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE slot_name = $1 AND NOT active",
                    &[&slot],
                )
                .await;
            let gone = admin
                .query_opt(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await;
            if done.is_ok() && matches!(gone, Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("xtask: bench: slot {slot} is still active; left in place");
    }

    /// One consumer run, killed after `--timeout`.
    async fn measure(
        &self,
        consumer: Consumer,
        spec: &RunSpec<'_>,
        admin: &tokio_postgres::Client,
    ) -> Result<Sample, String> {
        let mut running = Running::start(self.tools, consumer, spec)?;
        let deadline = Instant::now() + Duration::from_secs(self.args.timeout);
        while !running.finished()? {
            running.sample(admin, self.ticks).await;
            if Instant::now() > deadline {
                running.kill();
                return Err(format!(
                    "{} timed out after {} s",
                    consumer.name(),
                    self.args.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running.finish()
    }

    /// Checks what a consumer says it received.
    fn check(consumer: Consumer, sample: &Sample, events: u64) -> Result<(), String> {
        if consumer == Consumer::PgRecvlogical {
            return Ok(());
        }
        let dml = sample.reported("dml").unwrap_or(-1.0);
        if dml as u64 == events && dml >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "{} received {dml} DML events, expected {events}",
                consumer.name()
            ))
        }
    }

    async fn scenario(&self, scenario: &Scenario) -> Result<Vec<Cell>, String> {
        let events = scenario.events(self.args.rows);
        eprintln!("xtask: bench: {}: {events} DML events", scenario.name);
        let db = self.database(scenario).await?;
        let template = unique_name("template");
        db.admin
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&template],
            )
            .await
            .map_err(|e| format!("template slot: {}", pg_error(&e)))?;
        let wrote = self.write(&db, scenario, 0).await?;
        // Read right after the last commit (normally its end exactly), then checkpoint so no
        // checkpoint runs during the measurements.
        let insert_lsn = Self::lsn(&db.admin, "SELECT pg_current_wal_insert_lsn()::text").await?;
        db.admin
            .batch_execute("CHECKPOINT")
            .await
            .map_err(|e| format!("CHECKPOINT: {}", pg_error(&e)))?;
        eprintln!(
            "xtask: bench: {}: written in {wrote:.1} s, up to {insert_lsn}",
            scenario.name
        );
        let conninfo = self.conninfo(&db.name, scenario.unix);
        // Warm-up (WAL into the page cache) that also finds the last commit's end LSN.
        let slot = Self::copy_slot(&db.admin, &template).await?;
        let spec = RunSpec {
            conninfo: &conninfo,
            slot: &slot,
            proto: self.proto(),
            binary: false,
            stop_at: Some(&insert_lsn),
            until_dml: None,
            read_budget_us: self.args.read_budget_us,
            recv_buffer_kib: self.args.recv_buffer_kib,
            max_read_kib: self.args.max_read_kib,
            wrap: Vec::new(),
        };
        let warm = self.measure(Consumer::OursNative, &spec, &db.admin).await?;
        Self::drop_slot(&db.admin, &slot).await;
        Self::check(Consumer::OursNative, &warm, events)?;
        let end = warm
            .reported_str("last_end_lsn")
            .ok_or("the warm-up run reported no commit")?;
        eprintln!(
            "xtask: bench: {}: warm-up {:.2} s; last commit ends at {end}",
            scenario.name, warm.wall_s
        );
        let consumers: Vec<Consumer> = self
            .consumers
            .iter()
            .copied()
            .filter(|c| !scenario.unix || c.supports_unix())
            .collect();
        if consumers.len() < self.consumers.len() {
            eprintln!(
                "xtask: bench: {}: upstream is skipped (its rustls backend connects over TCP only)",
                scenario.name
            );
        }
        let mut cells: Vec<Cell> = Vec::new();
        for format in &self.args.formats {
            for &consumer in &consumers {
                cells.push(Cell {
                    scenario: scenario.name.to_owned(),
                    format: format.clone(),
                    consumer,
                    events,
                    samples: Vec::new(),
                    errors: Vec::new(),
                });
            }
        }
        for run in 0..self.args.runs {
            for format in &self.args.formats {
                // Rotate the order so no consumer always runs first or last.
                let n = consumers.len();
                for i in 0..n {
                    let consumer = consumers[(i + run) % n];
                    let slot = Self::copy_slot(&db.admin, &template).await?;
                    let spec = RunSpec {
                        conninfo: &conninfo,
                        slot: &slot,
                        proto: self.proto(),
                        binary: format == "binary",
                        stop_at: Some(&end),
                        until_dml: None,
                        read_budget_us: self.args.read_budget_us,
                        recv_buffer_kib: self.args.recv_buffer_kib,
                        max_read_kib: self.args.max_read_kib,
                        wrap: self.profiler(scenario.name, format, consumer, run),
                    };
                    let load = tools::load();
                    let result = self
                        .measure(consumer, &spec, &db.admin)
                        .await
                        .map(|mut s| {
                            s.load_1m = load;
                            s
                        })
                        .and_then(|s| Self::check(consumer, &s, events).map(|()| s));
                    Self::drop_slot(&db.admin, &slot).await;
                    let cell = cells
                        .iter_mut()
                        .find(|c| c.consumer == consumer && &c.format == format)
                        .ok_or("cell")?;
                    match result {
                        Ok(sample) => {
                            eprintln!(
                                "xtask: bench: {} {format} run {}: {:<15} {:>7.2} s wall, {:>6.2} s CPU, {:>6.1} MB, walsender {:.2} s",
                                scenario.name,
                                run + 1,
                                consumer.name(),
                                sample.wall_s,
                                sample.cpu_s(),
                                sample.maxrss_kb / 1024.0,
                                sample.walsender_cpu_s.unwrap_or(f64::NAN),
                            );
                            cell.samples.push(Some(sample));
                        }
                        Err(error) => {
                            eprintln!(
                                "xtask: bench: {} {format} run {}: {error}",
                                scenario.name,
                                run + 1
                            );
                            cell.samples.push(None);
                            cell.errors.push(format!("run {}: {error}", run + 1));
                        }
                    }
                }
            }
        }
        let _ = db
            .admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&template])
            .await;
        self.drop_database(db).await;
        Ok(cells)
    }

    /// `--live`: consumers stream while 4 writers commit 100-row transactions.
    async fn live(&self) -> Result<Vec<Cell>, String> {
        let scenario = Scenario {
            name: "Live-4-Writers-100",
            shape: Shape::Narrow { payload: 100 },
            batch: 100,
            writers: 4,
            scale: 10,
            unix: false,
        };
        let events = scenario.events(self.args.rows);
        let format = self
            .args
            .formats
            .first()
            .cloned()
            .unwrap_or_else(|| "text".into());
        let mut cells: Vec<Cell> = self
            .consumers
            .iter()
            .map(|&consumer| Cell {
                scenario: scenario.name.to_owned(),
                format: format.clone(),
                consumer,
                events,
                samples: Vec::new(),
                errors: Vec::new(),
            })
            .collect();
        for run in 0..self.args.runs {
            let db = self.database(&scenario).await?;
            let conninfo = self.conninfo(&db.name, false);
            let mut slots = Vec::new();
            for _ in self.consumers {
                let slot = unique_name("live");
                db.admin
                    .execute(
                        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[&slot],
                    )
                    .await
                    .map_err(|e| format!("slot: {}", pg_error(&e)))?;
                slots.push(slot);
            }
            let mut running = Vec::new();
            for (&consumer, slot) in self.consumers.iter().zip(&slots) {
                let spec = RunSpec {
                    conninfo: &conninfo,
                    slot,
                    proto: self.proto(),
                    binary: format == "binary",
                    stop_at: None,
                    until_dml: Some(events),
                    read_budget_us: self.args.read_budget_us,
                    recv_buffer_kib: self.args.recv_buffer_kib,
                    max_read_kib: self.args.max_read_kib,
                    wrap: self.profiler(scenario.name, &format, consumer, run),
                };
                let mut process = Running::start(self.tools, consumer, &spec)?;
                // Wait until its walsender is streaming before the writers start.
                let deadline = Instant::now() + Duration::from_secs(30);
                while !process.has_walsender()
                    && Instant::now() < deadline
                    && !process.finished()?
                {
                    process.sample(&db.admin, self.ticks).await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                running.push(process);
            }
            let mut writers = Box::pin(self.write(&db, &scenario, self.args.live_pause_ms.max(1)));
            let mut wrote = None;
            let deadline = Instant::now() + Duration::from_secs(self.args.timeout);
            loop {
                let mut all_done = true;
                for process in &mut running {
                    if !process.finished()? {
                        all_done = false;
                        process.sample(&db.admin, self.ticks).await;
                    }
                }
                if all_done && wrote.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    for process in &mut running {
                        process.kill();
                    }
                    return Err("live run timed out".into());
                }
                if wrote.is_none() {
                    tokio::select! {
                        result = &mut writers => wrote = Some(result?),
                        () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            drop(writers);
            eprintln!(
                "xtask: bench: live run {}: writers took {:.2} s",
                run + 1,
                wrote.unwrap_or(0.0)
            );
            for (process, cell) in running.into_iter().zip(cells.iter_mut()) {
                match process
                    .finish()
                    .and_then(|s| Self::check(cell.consumer, &s, events).map(|()| s))
                {
                    Ok(sample) => {
                        eprintln!(
                            "xtask: bench: live run {}: {:<15} p50 {:.2} ms p99 {:.2} ms, {:.2} s CPU",
                            run + 1,
                            cell.consumer.name(),
                            sample.reported("latency_p50_us").unwrap_or(f64::NAN) / 1000.0,
                            sample.reported("latency_p99_us").unwrap_or(f64::NAN) / 1000.0,
                            sample.cpu_s()
                        );
                        cell.samples.push(Some(sample));
                    }
                    Err(error) => {
                        cell.samples.push(None);
                        cell.errors.push(format!("run {}: {error}", run + 1));
                    }
                }
            }
            for slot in &slots {
                Self::drop_slot(&db.admin, slot).await;
            }
            self.drop_database(db).await;
        }
        Ok(cells)
    }
}
