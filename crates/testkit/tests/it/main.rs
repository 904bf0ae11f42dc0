//! Integration tests of the testkit against real servers: every version of the run.

mod cleanup;
mod connect;
mod environment;
mod proxy;
mod standby;

use std::path::Path;
use std::process::{Command, Output};

use pg_walstream_testkit::{TestServer, client_tool};

/// Runs psql (the server's own or Debian's) with a clean environment: no `PG*` variables and an
/// empty home, so neither `~/.pgpass` nor `~/.postgresql/root.crt` changes the outcome.
pub(crate) fn psql(server: &TestServer, conninfo: &str, sql: &str) -> Output {
    let psql = client_tool("psql", server.version())
        .expect("psql not found: apt-get install postgresql-client-15");
    let home = tempfile::tempdir().expect("temp home");
    Command::new(psql)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs")
}

/// Text of a command's stdout and stderr, for assertion messages.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether process `pid` is still alive (a zombie counts as dead).
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls `condition` for up to `seconds`.
pub(crate) fn eventually(seconds: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    condition()
}

/// Whether `path` exists.
pub(crate) fn exists(path: &Path) -> bool {
    path.exists()
}
