//! The consumers, each run as its own process under `bench-measure` (getrusage of exactly
//! that child), with the walsender serving it sampled from /proc while it runs.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value as Json;

/// Which consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consumer {
    /// Ours, native (pure Rust) transport.
    OursNative,
    /// Ours, libpq transport.
    OursLibpq,
    /// PostgreSQL's pg_recvlogical writing pgoutput to /dev/null.
    PgRecvlogical,
    /// Upstream pg_walstream 0.9.0 (default rustls backend).
    Upstream,
}

impl Consumer {
    /// Every consumer, in report order.
    pub(crate) const ALL: [Consumer; 4] = [
        Consumer::OursNative,
        Consumer::OursLibpq,
        Consumer::PgRecvlogical,
        Consumer::Upstream,
    ];

    /// Name in tables, JSON and on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Consumer::OursNative => "ours-native",
            Consumer::OursLibpq => "ours-libpq",
            Consumer::PgRecvlogical => "pg_recvlogical",
            Consumer::Upstream => "upstream-0.9.0",
        }
    }

    /// Whether this is one of ours.
    pub(crate) fn is_ours(self) -> bool {
        matches!(self, Consumer::OursNative | Consumer::OursLibpq)
    }

    /// Parses a `--consumers` entry.
    pub(crate) fn parse(text: &str) -> Result<Consumer, String> {
        Consumer::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(text) || (text == "upstream" && *c == Consumer::Upstream))
            .ok_or_else(|| {
                format!("unknown consumer {text:?}; known: ours-native, ours-libpq, pg_recvlogical, upstream")
            })
    }
}

/// Where the bench binaries and pg_recvlogical are.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// `bench-measure`.
    pub(crate) measure: PathBuf,
    /// `bench-ours-consumer` built without libpq.
    pub(crate) ours_native: PathBuf,
    /// `bench-ours-consumer` built with the libpq feature.
    pub(crate) ours_libpq: PathBuf,
    /// `bench-upstream-consumer`.
    pub(crate) upstream: PathBuf,
    /// `pg_recvlogical`, if one that can talk to the server was found.
    pub(crate) recvlogical: Option<PathBuf>,
}

/// What one consumer run is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec<'a> {
    /// libpq key=value connection string (TCP, no TLS, no replication key).
    pub(crate) conninfo: &'a str,
    /// The slot to consume (already created).
    pub(crate) slot: &'a str,
    /// pgoutput protocol version.
    pub(crate) proto: u32,
    /// Binary column format.
    pub(crate) binary: bool,
    /// Stop position (all consumers end after the transaction ending there).
    pub(crate) stop_at: Option<&'a str>,
    /// Live mode: end after this many DML events, measuring commit latency.
    pub(crate) until_dml: Option<u64>,
    /// A profiler command the consumer runs under (`perf record … --`, `strace -c …`); its
    /// cost then counts as the consumer's.
    pub(crate) wrap: Vec<String>,
}

/// The measured result of one consumer process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    /// Wall time of the consumer process, s.
    pub(crate) wall_s: f64,
    /// User CPU, s.
    pub(crate) user_s: f64,
    /// System CPU, s.
    pub(crate) sys_s: f64,
    /// Peak RSS, KiB.
    pub(crate) maxrss_kb: f64,
    /// Voluntary context switches.
    pub(crate) nvcsw: f64,
    /// CPU of the walsender serving it, s (from /proc, sampled every 10 ms).
    pub(crate) walsender_cpu_s: Option<f64>,
    /// 1-minute load average when the run started.
    pub(crate) load_1m: f64,
    /// What the consumer reported about itself (ours and upstream only).
    pub(crate) report: Option<Json>,
}

impl Sample {
    /// User + system CPU seconds.
    pub(crate) fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    /// A number from the consumer's own report.
    pub(crate) fn reported(&self, key: &str) -> Option<f64> {
        self.report.as_ref()?.get(key)?.as_f64()
    }

    /// A string from the consumer's own report.
    pub(crate) fn reported_str(&self, key: &str) -> Option<String> {
        self.report.as_ref()?.get(key)?.as_str().map(str::to_owned)
    }
}

/// The command line that runs `consumer` for `spec` under `bench-measure`.
pub(crate) fn command(
    tools: &Tools,
    consumer: Consumer,
    spec: &RunSpec<'_>,
) -> Result<Command, String> {
    let mut command = Command::new(&tools.measure);
    command.args(&spec.wrap);
    let proto = spec.proto.to_string();
    match consumer {
        Consumer::OursNative | Consumer::OursLibpq => {
            let (backend, program) = if consumer == Consumer::OursNative {
                ("native", &tools.ours_native)
            } else {
                ("libpq", &tools.ours_libpq)
            };
            command.arg(program).args([
                "--conninfo",
                spec.conninfo,
                "--slot",
                spec.slot,
                "--publication",
                super::scenario::PUBLICATION,
                "--proto",
                &proto,
                "--backend",
                backend,
            ]);
        }
        Consumer::Upstream => {
            let conninfo = format!("{} replication=database", spec.conninfo);
            command.arg(&tools.upstream).args([
                "--conninfo",
                &conninfo,
                "--slot",
                spec.slot,
                "--publication",
                super::scenario::PUBLICATION,
                "--proto",
                &proto,
            ]);
        }
        Consumer::PgRecvlogical => {
            let program = tools
                .recvlogical
                .as_ref()
                .ok_or("no pg_recvlogical available")?;
            let stop = spec
                .stop_at
                .ok_or("pg_recvlogical needs an end position (not available in --live mode)")?;
            command.arg(program).args([
                "-d",
                spec.conninfo,
                "--slot",
                spec.slot,
                "--start",
                "--no-loop",
                "-f",
                "/dev/null",
                "-F",
                "0",
                "-o",
            ]);
            command.arg(format!("proto_version={proto}"));
            command.args([
                "-o",
                &format!("publication_names={}", super::scenario::PUBLICATION),
            ]);
            if spec.binary {
                command.args(["-o", "binary=true"]);
            }
            command.arg(format!("--endpos={stop}"));
            return Ok(command);
        }
    }
    if spec.binary {
        command.arg("--binary");
    }
    if let Some(stop) = spec.stop_at {
        command.args(["--stop-at", stop]);
    }
    if let Some(n) = spec.until_dml {
        command.args(["--until-dml", &n.to_string(), "--latency"]);
    }
    Ok(command)
}

/// A consumer process that has been started.
pub(crate) struct Running {
    child: std::process::Child,
    consumer: Consumer,
    slot: String,
    walsender: Option<(u32, f64)>,
}

impl Running {
    /// Starts `command` (from [`command`]).
    pub(crate) fn start(
        mut command: Command,
        consumer: Consumer,
        slot: &str,
    ) -> Result<Running, String> {
        // Its own process group, so a kill reaches the consumer under bench-measure too.
        command
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .process_group(0);
        let child = command.spawn().map_err(|e| {
            format!(
                "{}: cannot start {}: {e}",
                consumer.name(),
                command.get_program().display()
            )
        })?;
        Ok(Running {
            child,
            consumer,
            slot: slot.to_owned(),
            walsender: None,
        })
    }

    /// Samples the walsender's CPU once (finding its pid through the slot first).
    pub(crate) async fn sample(&mut self, admin: &tokio_postgres::Client, ticks: f64) {
        if self.walsender.is_none() {
            let row = admin
                .query_opt(
                    "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.slot],
                )
                .await;
            if let Ok(Some(row)) = row
                && let Ok(Some(pid)) = row.try_get::<_, Option<i32>>(0)
            {
                self.walsender = Some((pid as u32, 0.0));
            }
        }
        if let Some((pid, last)) = self.walsender
            && let Some(cpu) = proc_cpu_seconds(pid, ticks)
        {
            self.walsender = Some((pid, cpu.max(last)));
        }
    }

    /// Whether its walsender has been seen.
    pub(crate) fn has_walsender(&self) -> bool {
        self.walsender.is_some()
    }

    /// Kills the process (a run that took too long).
    pub(crate) fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has ended.
    pub(crate) fn finished(&mut self) -> Result<bool, String> {
        self.child
            .try_wait()
            .map(|status| status.is_some())
            .map_err(|e| format!("{}: wait: {e}", self.consumer.name()))
    }

    /// Collects the measurement once the process has ended.
    pub(crate) fn finish(self) -> Result<Sample, String> {
        let name = self.consumer.name();
        let output = self
            .child
            .wait_with_output()
            .map_err(|e| format!("{name}: wait: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let json: Json = serde_json::from_str(text.trim())
            .map_err(|e| format!("{name}: bench-measure printed {text:?}: {e}"))?;
        let number = |key: &str| json.get(key).and_then(Json::as_f64).unwrap_or(0.0);
        if !output.status.success() {
            return Err(format!(
                "{name} failed (exit code {}); its error is printed above",
                number("exit_code")
            ));
        }
        Ok(Sample {
            wall_s: number("wall_s"),
            user_s: number("user_s"),
            sys_s: number("sys_s"),
            maxrss_kb: number("maxrss_kb"),
            nvcsw: number("nvcsw"),
            walsender_cpu_s: self.walsender.map(|(_, cpu)| cpu),
            load_1m: f64::NAN,
            report: json
                .get("consumer")
                .filter(|c| !matches!(c, Json::Null))
                .cloned(),
        })
    }
}

/// utime + stime of `pid` in seconds, from /proc/PID/stat.
pub(crate) fn proc_cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); index 0 here is field 3 (state).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// Clock ticks per second for /proc times (`getconf CLK_TCK`, 100 when unknown).
pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_cpu_is_readable() {
        let cpu = proc_cpu_seconds(std::process::id(), clock_ticks());
        assert!(cpu.is_some_and(|s| s >= 0.0), "{cpu:?}");
    }

    #[test]
    fn consumers_parse_by_name() {
        assert_eq!(Consumer::parse("upstream").unwrap(), Consumer::Upstream);
        assert_eq!(Consumer::parse("OURS-LIBPQ").unwrap(), Consumer::OursLibpq);
        assert!(Consumer::parse("psql").is_err());
    }
}
