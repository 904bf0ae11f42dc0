//! `cargo xtask demo` end to end: it prints the workload's changes as JSON lines and exits 0.

use std::process::Command;

use pg_walstream_testkit::{servers, workspace_root};
use serde_json::Value;

use crate::support::{bin, column, kinds};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_xtask_demo_prints_the_workload_and_exits_0() {
    // The demo starts its own server; use the version this run tests first.
    let version = servers()
        .first()
        .map_or(15, pg_walstream_testkit::TestServer::version);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(cargo)
            .current_dir(workspace_root())
            .args(["run", "-q", "-p", "xtask", "--", "demo", "--pg-version"])
            .arg(version.to_string())
            .env("PG_WALSTREAM_BIN", bin())
            .output()
            .expect("run cargo xtask demo")
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "PostgreSQL {version}: demo failed ({}): {stderr}",
        output.status
    );
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(
        kinds(&events),
        [
            "begin", "insert", "insert", "commit", "begin", "update", "commit", "begin", "delete",
            "commit", "begin", "truncate", "commit", "message"
        ],
        "PostgreSQL {version}: {events:?}"
    );
    let update = events.iter().find(|e| e["kind"] == "update").unwrap();
    assert_eq!(
        column(&update["new"], "qty")["text"],
        "3",
        "PostgreSQL {version}"
    );
    assert_eq!(
        column(&update["new"], "note")["unchanged_toast"],
        true,
        "PostgreSQL {version}"
    );
    assert_eq!(events.last().unwrap()["content"], "workload done");
    assert!(
        stderr.contains("server stopped and removed"),
        "PostgreSQL {version}: {stderr}"
    );
}
