//! `cargo xtask test`: one server per requested version, shared by every test process of the
//! workspace through the testkit's descriptor file, then a leak check.

use std::path::PathBuf;

use clap::Args;
use pg_walstream_testkit::{
    SERVERS_ENV, SUPPORTED_VERSIONS, TestServer, descriptor, workspace_root,
};

use crate::process::{available, cargo, run as run_command};

/// Packages whose integration tests run once per transport backend.
const CONFORMANCE_PACKAGES: [&str; 4] = [
    "pg-walstream-transport",
    "pg-walstream-backup",
    "pg-walstream-slot",
    "pg-walstream-stream",
];

/// Environment variable naming the backend the conformance suites use (`native` or `libpq`).
const BACKEND_ENV: &str = "PG_WALSTREAM_TEST_BACKEND";

/// Arguments of `cargo xtask test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Comma-separated PostgreSQL major versions to test against.
    #[arg(long, value_delimiter = ',', default_values_t = SUPPORTED_VERSIONS)]
    versions: Vec<u32>,
    /// Test only these packages (default: the whole workspace).
    #[arg(short = 'p', long = "package")]
    packages: Vec<String>,
    /// Extra arguments for the test runner (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    runner_args: Vec<String>,
}

pub(crate) fn run(args: &TestArgs) -> Result<(), String> {
    run_with(&args.versions, &args.packages, &args.runner_args)
}

/// Runs every test against `versions` (what `cargo xtask ci` calls).
pub(crate) fn run_versions(versions: &[u32]) -> Result<(), String> {
    run_with(versions, &[], &[])
}

fn run_with(versions: &[u32], packages: &[String], runner_args: &[String]) -> Result<(), String> {
    crate::deps::ensure_libpq_build_deps()?;
    // The incremental backup tests combine backups of 17 and 18 with pg_combinebackup of the
    // same version.
    if packages.is_empty() || packages.iter().any(|p| p == "pg-walstream-backup") {
        if versions.contains(&17) {
            crate::client_tools_17::ensure_client_tools_17()?;
        }
        if versions.iter().any(|&v| v >= 18) {
            crate::deps::ensure_client_tools_18()?;
        }
    }
    let mut scope: Vec<String> = packages
        .iter()
        .flat_map(|p| ["-p".to_owned(), p.clone()])
        .collect();
    if scope.is_empty() {
        scope.push("--workspace".to_owned());
    }
    let nextest = available(
        std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        &["nextest", "--version"],
    );
    let runner = move |scope: &[String]| {
        let mut command = cargo();
        if nextest {
            command.args(["nextest", "run"]);
        } else {
            command.arg("test");
        }
        command
            .args(["--all-features", "--no-fail-fast"])
            .args(scope);
        command
    };
    with_servers(versions, |descriptor_path| {
        let mut tests = runner(&scope);
        tests.args(runner_args).env(SERVERS_ENV, descriptor_path);
        let unit_and_integration = run_command(tests);
        // The backend conformance suites again, over libpq (the first pass used the native
        // backend): one set of tests holds both backends to one contract.
        let conformance: Vec<&str> = CONFORMANCE_PACKAGES
            .iter()
            .copied()
            .filter(|package| packages.is_empty() || packages.iter().any(|p| p == package))
            .collect();
        let libpq_pass = if conformance.is_empty() {
            Ok(())
        } else {
            let scope: Vec<String> = conformance
                .iter()
                .flat_map(|package| ["-p".to_owned(), (*package).to_owned()])
                .collect();
            let mut again = runner(&scope);
            again
                .args(runner_args)
                .env(SERVERS_ENV, descriptor_path)
                .env(BACKEND_ENV, "libpq");
            run_command(again)
        };
        let unit_and_integration = unit_and_integration.and(libpq_pass);
        let doc = if runner_args.is_empty() {
            run_doctests(packages, descriptor_path)
        } else {
            Ok(())
        };
        unit_and_integration.and(doc)
    })
}

/// Versions of the heavy chaos run in CI.
pub(crate) const HEAVY_CHAOS_VERSIONS: [u32; 2] = [16, 17];
/// Rows of the heavy chaos run.
pub(crate) const HEAVY_CHAOS_ROWS: u64 = 1_000_000;

/// The heavy chaos run (issue 17): `rows` numbered rows through the fault-injecting proxy,
/// with cuts, walsender terminations, a server restart and consumer kills, on each of
/// `versions` (its own private servers), native backend (the short run in the normal suite
/// covers both backends on every version). About 45 s per version on 2 cores.
pub(crate) fn run_chaos(versions: &[u32], rows: u64) -> Result<(), String> {
    crate::deps::ensure_libpq_build_deps()?;
    with_servers(versions, |descriptor_path| {
        let mut command = cargo();
        command
            .args([
                "test",
                "--all-features",
                "-p",
                "pg-walstream-stream",
                "--test",
                "it",
            ])
            .args([
                "--",
                "--exact",
                "chaos::chaos_every_committed_row_exactly_once_on_every_version",
            ])
            .arg("--nocapture")
            .env(SERVERS_ENV, descriptor_path)
            .env("PG_WALSTREAM_CHAOS_ROWS", rows.to_string());
        run_command(command)
    })
}

/// Installs and starts one server per version, runs `body` with the descriptor path, then
/// stops the servers and checks that no process or directory of theirs is left.
pub(crate) fn with_servers(
    versions: &[u32],
    body: impl FnOnce(&PathBuf) -> Result<(), String>,
) -> Result<(), String> {
    crate::pg::install(versions)?;
    let servers = start_all(versions)?;
    for server in &servers {
        eprintln!(
            "xtask: PostgreSQL {} on 127.0.0.1:{} ({})",
            server.version(),
            server.port(),
            server.root_dir().display()
        );
    }
    let dir = workspace_root().join("target").join("xtask");
    std::fs::create_dir_all(&dir)
        .map_err(|error| format!("creating {}: {error}", dir.display()))?;
    let path = dir.join(format!("servers-{}.txt", std::process::id()));
    std::fs::write(&path, descriptor(&servers))
        .map_err(|error| format!("writing {}: {error}", path.display()))?;
    let outcome = body(&path);
    let _ = std::fs::remove_file(&path);
    let leaks = stop_and_check(servers);
    outcome?;
    leaks
}

fn start_all(versions: &[u32]) -> Result<Vec<TestServer>, String> {
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = versions
            .iter()
            .map(|&version| scope.spawn(move || TestServer::start(version)))
            .collect();
        handles
            .into_iter()
            .map(std::thread::ScopedJoinHandle::join)
            .collect()
    });
    let mut servers = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(Ok(server)) => servers.push(server),
            Ok(Err(error)) => errors.push(error.to_string()),
            Err(_) => errors.push("a server start panicked".to_owned()),
        }
    }
    if errors.is_empty() {
        Ok(servers)
    } else {
        Err(errors.join("\n"))
    }
}

fn stop_and_check(servers: Vec<TestServer>) -> Result<(), String> {
    let watched: Vec<(u32, Option<u32>, PathBuf)> = servers
        .iter()
        .map(|server| {
            (
                server.version(),
                server.postmaster_pid(),
                server.root_dir().to_path_buf(),
            )
        })
        .collect();
    drop(servers);
    let mut leaks = Vec::new();
    for (version, pid, root) in watched {
        if pid.is_some_and(process_alive) {
            leaks.push(format!(
                "PostgreSQL {version}: postmaster {} still runs",
                pid.unwrap_or(0)
            ));
        }
        if root.exists() {
            leaks.push(format!(
                "PostgreSQL {version}: {} was not removed",
                root.display()
            ));
        }
        let root_text = root.to_string_lossy().into_owned();
        for process in processes_mentioning(&root_text) {
            leaks.push(format!(
                "PostgreSQL {version}: process {process} still uses {root_text}"
            ));
        }
    }
    if leaks.is_empty() {
        eprintln!("xtask: all servers stopped; no processes or directories left behind");
        Ok(())
    } else {
        Err(format!("leaked server resources:\n{}", leaks.join("\n")))
    }
}

fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn processes_mentioning(text: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && process_alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(text))
        })
        .collect()
}

/// Doctests of the workspace, or of the selected packages that have a library (doctests of a
/// binary-only package do not exist, and cargo refuses `--doc` for one).
fn run_doctests(packages: &[String], descriptor_path: &std::path::Path) -> Result<(), String> {
    let mut scope: Vec<String> = Vec::new();
    if packages.is_empty() {
        scope.push("--workspace".to_owned());
    } else {
        for package in packages.iter().filter(|package| has_library(package)) {
            scope.extend(["-p".to_owned(), package.clone()]);
        }
        if scope.is_empty() {
            return Ok(());
        }
    }
    let mut doctests = cargo();
    doctests
        .args(["test", "--all-features", "--doc"])
        .args(&scope)
        .env(SERVERS_ENV, descriptor_path);
    run_command(doctests)
}

/// Whether workspace package `name` has a library target (`src/lib.rs` beside a manifest that
/// names it).
fn has_library(name: &str) -> bool {
    let root = workspace_root();
    let needle = format!("name = \"{name}\"");
    ["crates", "examples"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir)).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .chain(std::iter::once(root.join("xtask")))
        .any(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|manifest| manifest.contains(&needle))
                && dir.join("src").join("lib.rs").exists()
        })
}
