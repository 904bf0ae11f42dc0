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

    /// Whether it can connect over a unix-domain socket: upstream 0.9.0's rustls backend is
    /// TCP-only (its conninfo parser turns an empty or socket host into `localhost`).
    pub(crate) fn supports_unix(self) -> bool {
        self != Consumer::Upstream
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
    /// Our consumers' read-coalescing budget, µs (`None`: the library's default).
    pub(crate) read_budget_us: Option<u64>,
    /// Our consumers' socket receive buffer, KiB (`None`: the operating system's).
    pub(crate) recv_buffer_kib: Option<u64>,
    /// Our native consumer's most KiB per socket read (`None`: the library's default).
    pub(crate) max_read_kib: Option<u64>,
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
    /// Voluntary context switches of the consumer (all its threads: getrusage of the child).
    pub(crate) nvcsw: f64,
    /// Involuntary context switches of the consumer (all its threads).
    pub(crate) nivcsw: f64,
    /// System calls of the consumer (all threads), from `strace -c -f` under
    /// `--profile strace`; `None` otherwise.
    pub(crate) syscalls: Option<f64>,
    /// The walsender's voluntary and involuntary context switches while serving it (from
    /// /proc/PID/status, sampled every 10 ms; the last sample).
    pub(crate) walsender_switches: Option<(f64, f64)>,
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
            if let Some(us) = spec.read_budget_us {
                command.args(["--read-budget-us", &us.to_string()]);
            }
            if let Some(kib) = spec.recv_buffer_kib {
                command.args(["--recv-buffer-kib", &kib.to_string()]);
            }
            if let Some(kib) = spec.max_read_kib {
                command.args(["--max-read-kib", &kib.to_string()]);
            }
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

/// What was last read from /proc about the walsender serving a consumer.
#[derive(Debug, Clone, Copy)]
struct Walsender {
    pid: u32,
    cpu_s: f64,
    switches: Option<(f64, f64)>,
}

/// A consumer process that has been started.
pub(crate) struct Running {
    child: std::process::Child,
    consumer: Consumer,
    slot: String,
    walsender: Option<Walsender>,
    strace_output: Option<PathBuf>,
}

impl Running {
    /// Starts `consumer` for `spec`.
    pub(crate) fn start(
        tools: &Tools,
        consumer: Consumer,
        spec: &RunSpec<'_>,
    ) -> Result<Running, String> {
        let mut command = command(tools, consumer, spec)?;
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
            slot: spec.slot.to_owned(),
            walsender: None,
            strace_output: strace_output(&spec.wrap),
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
                self.walsender = Some(Walsender {
                    pid: pid as u32,
                    cpu_s: 0.0,
                    switches: None,
                });
            }
        }
        if let Some(walsender) = &mut self.walsender {
            // Once the walsender has exited /proc has nothing: keep the last reading.
            if let Some(cpu) = proc_cpu_seconds(walsender.pid, ticks) {
                walsender.cpu_s = cpu.max(walsender.cpu_s);
            }
            if let Some(switches) = proc_context_switches(walsender.pid) {
                walsender.switches = Some(switches);
            }
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
            nivcsw: number("nivcsw"),
            syscalls: self
                .strace_output
                .as_ref()
                .and_then(|path| std::fs::read_to_string(path).ok())
                .and_then(|text| strace_total_calls(&text)),
            walsender_switches: self.walsender.and_then(|w| w.switches),
            walsender_cpu_s: self.walsender.map(|w| w.cpu_s),
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

/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of `pid` (its main thread;
/// a walsender has no other), from /proc/PID/status.
pub(crate) fn proc_context_switches(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
    };
    Some((
        field("voluntary_ctxt_switches:")?,
        field("nonvoluntary_ctxt_switches:")?,
    ))
}

/// The `-o FILE` of a `strace -c` profiler command (see `Context::profiler`).
fn strace_output(wrap: &[String]) -> Option<PathBuf> {
    if wrap.first().map(String::as_str) != Some("strace") {
        return None;
    }
    let at = wrap.iter().position(|w| w == "-o")?;
    wrap.get(at + 1).map(PathBuf::from)
}

/// The number of calls on the `total` line of a `strace -c` summary.
pub(crate) fn strace_total_calls(summary: &str) -> Option<f64> {
    let line = summary
        .lines()
        .rev()
        .find(|line| line.split_whitespace().last() == Some("total"))?;
    // `% time, seconds, usecs/call, calls, [errors,] total`.
    line.split_whitespace().nth(3)?.parse().ok()
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
    fn own_context_switches_are_readable() {
        let (voluntary, involuntary) = proc_context_switches(std::process::id()).unwrap();
        assert!(voluntary >= 0.0 && involuntary >= 0.0);
    }

    #[test]
    fn strace_summary_total_is_parsed() {
        let summary = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n \
            60.00    0.000300           3       100           recvfrom\n \
            40.00    0.000200           2       101         7 epoll_wait\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.000500           2       201         7 total\n";
        assert_eq!(strace_total_calls(summary), Some(201.0));
        let no_errors = "100.00    0.000500           2       42           total\n";
        assert_eq!(strace_total_calls(no_errors), Some(42.0));
        assert_eq!(strace_total_calls("nothing"), None);
        let wrap: Vec<String> = ["strace", "-f", "-c", "-o", "/x/s.txt"]
            .map(String::from)
            .into();
        assert_eq!(strace_output(&wrap), Some(PathBuf::from("/x/s.txt")));
        assert_eq!(
            strace_output(&["perf".into(), "-o".into(), "p".into()]),
            None
        );
    }

    #[test]
    fn consumers_parse_by_name() {
        assert_eq!(Consumer::parse("upstream").unwrap(), Consumer::Upstream);
        assert_eq!(Consumer::parse("OURS-LIBPQ").unwrap(), Consumer::OursLibpq);
        assert!(Consumer::parse("psql").is_err());
    }
}
