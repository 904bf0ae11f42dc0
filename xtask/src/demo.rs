//! `cargo xtask demo`: changes flowing out of a throwaway PostgreSQL, decoded, in one command.
//!
//! Starts a server (installing the binaries if missing), creates a table and a publication,
//! creates a slot with `pg-walstream slot create`, runs a short workload with psql (inserts,
//! an update that leaves a TOASTed value unchanged, a delete, a truncate, a logical message),
//! then streams it with `pg-walstream recv --endpos … --drop-slot` as JSON lines to standard
//! output. Everything else goes to standard error. The server and its data are removed at the
//! end (and, by the testkit's reaper, also after Ctrl-C).
//!
//! The `pg-walstream` binary is `PG_WALSTREAM_BIN` when set, otherwise built and run with
//! `cargo run -p pg-walstream-cli`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Args;
use pg_walstream_testkit::{AuthUser, DEFAULT_VERSION, TestServer, client_tool, ensure_installed};

use crate::process::cargo;

/// Arguments of `cargo xtask demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// PostgreSQL major version of the throwaway server (14-18).
    #[arg(long, default_value_t = DEFAULT_VERSION)]
    pg_version: u32,
}

/// Environment variable naming a prebuilt `pg-walstream` binary to use.
const BIN_ENV: &str = "PG_WALSTREAM_BIN";
const DATABASE: &str = "demo";
const SLOT: &str = "demo_slot";
const PUBLICATION: &str = "demo_pub";

/// The workload, one transaction per statement.
const WORKLOAD: [&str; 5] = [
    "INSERT INTO orders (id, item, qty, note) VALUES \
     (1, 'coffee', 2, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 100) i)), \
     (2, 'tea', 1, 'green')",
    // `note` is stored out of line and not changed: pgoutput sends it as "unchanged TOAST".
    "UPDATE orders SET qty = 3 WHERE id = 1",
    "DELETE FROM orders WHERE id = 2",
    "TRUNCATE orders",
    "SELECT pg_logical_emit_message(false, 'demo', 'workload done')",
];

/// Runs the demo.
pub(crate) fn run(args: &DemoArgs) -> Result<(), String> {
    let version = args.pg_version;
    crate::pg::install(&[version])?;
    let psql = find_psql(version)?;
    eprintln!("xtask: starting PostgreSQL {version}");
    let server = TestServer::start(version).map_err(|e| e.to_string())?;
    let outcome = demo(&server, &psql);
    drop(server);
    eprintln!("xtask: server stopped and removed");
    outcome
}

/// psql beside the server binaries, else anywhere; PostgreSQL 15's Debian package brings one.
fn find_psql(version: u32) -> Result<PathBuf, String> {
    if let Some(psql) = client_tool("psql", version) {
        return Ok(psql);
    }
    eprintln!("xtask: psql not found; installing PostgreSQL 15's client tools");
    ensure_installed(15).map_err(|e| e.to_string())?;
    client_tool("psql", version)
        .ok_or_else(|| "the demo needs psql: install postgresql-client and retry".to_owned())
}

fn demo(server: &TestServer, psql: &PathBuf) -> Result<(), String> {
    sql(
        psql,
        &server.admin_conninfo("postgres"),
        &[&format!("CREATE DATABASE {DATABASE}")],
    )?;
    let admin = server.admin_conninfo(DATABASE);
    sql(
        psql,
        &admin,
        &[
            "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int, note text)",
            "ALTER TABLE orders ALTER COLUMN note SET STORAGE EXTERNAL",
            &format!("CREATE PUBLICATION {PUBLICATION} FOR TABLE orders"),
        ],
    )?;
    let conninfo = server.conninfo(AuthUser::Scram, DATABASE);
    let created = pg_walstream(&["slot", "create", "-d", &conninfo, SLOT])
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("running pg-walstream: {e}"))?;
    if !created.status.success() {
        return Err(format!(
            "pg-walstream slot create failed ({})",
            created.status
        ));
    }
    eprintln!(
        "xtask: slot created: {}",
        String::from_utf8_lossy(&created.stdout).trim()
    );
    eprintln!("xtask: workload:");
    for statement in WORKLOAD {
        eprintln!("  {statement}");
        sql(psql, &admin, &[statement])?;
    }
    let endpos = wait_flushed(psql, &admin)?;
    eprintln!(
        "xtask: pg-walstream recv -d '<conninfo>' --slot {SLOT} --publication {PUBLICATION} \
         --messages --endpos {endpos} --drop-slot"
    );
    let status = pg_walstream(&[
        "recv",
        "-d",
        &conninfo,
        "--slot",
        SLOT,
        "--publication",
        PUBLICATION,
        "--messages",
        "--endpos",
        &endpos,
        "--drop-slot",
    ])
    .status()
    .map_err(|e| format!("running pg-walstream: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("pg-walstream recv failed ({status})"))
    }
}

/// Waits until all WAL written is flushed (the final message is not flushed by a commit, and
/// decoding reads only flushed WAL); returns the end of WAL as the stop position.
fn wait_flushed(psql: &PathBuf, admin: &str) -> Result<String, String> {
    for _ in 0..100 {
        let answer = sql(
            psql,
            admin,
            &[
                "SELECT pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn(), \
               pg_current_wal_insert_lsn()",
            ],
        )?;
        if let Some(lsn) = answer.trim().strip_prefix("t|") {
            return Ok(lsn.to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the server did not flush its WAL within 5 s".to_owned())
}

/// Runs each statement in its own transaction; returns psql's unaligned output.
fn sql(psql: &PathBuf, conninfo: &str, statements: &[&str]) -> Result<String, String> {
    let mut command = Command::new(psql);
    command.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
    ]);
    for statement in statements {
        command.arg("-c").arg(statement);
    }
    let output = command
        .output()
        .map_err(|e| format!("running {}: {e}", psql.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A command running `pg-walstream` with `args`.
fn pg_walstream(args: &[&str]) -> Command {
    let mut command = if let Some(bin) = std::env::var_os(BIN_ENV) {
        Command::new(bin)
    } else {
        let mut command = cargo();
        command
            .current_dir(pg_walstream_testkit::workspace_root())
            .args([
                "run",
                "-q",
                "-p",
                "pg-walstream-cli",
                "--bin",
                "pg-walstream",
                "--",
            ]);
        command
    };
    command.args(args);
    command
}
