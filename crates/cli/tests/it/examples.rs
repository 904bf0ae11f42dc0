//! The examples of `examples/` against every server of the run: each prints the workload's
//! row changes in order and exits at `PG_WALSTREAM_STOP_LSN`.

use std::process::{Command, Output};

use pg_walstream_testkit::{servers, unique_name, workspace_root};

use crate::support::{Fixture, args, ok_lines, run, stderr};

const EXAMPLES: [&str; 5] = [
    "example-basic-streaming",
    "example-polling",
    "example-rate-limited-streaming",
    "example-tokio-spawn-streaming",
    "example-safe-transaction-consumer",
];

async fn cargo_run(package: &'static str, env: Vec<(&'static str, String)>) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(cargo);
        command
            .current_dir(workspace_root())
            .args(["run", "-q", "-p", package])
            .env_remove("PG_WALSTREAM_CONNINFO");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("cargo run")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_stream_the_workload_on_every_version() {
    for example in EXAMPLES {
        let output = cargo_run(example, Vec::new()).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{example}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("set PG_WALSTREAM_CONNINFO"),
            "{example}: {}",
            stderr(&output)
        );
    }
    for server in servers() {
        let fx = Fixture::new(server, "cli_examples").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let slots: Vec<String> = EXAMPLES.iter().map(|_| unique_name("example")).collect();
        for slot in &slots {
            let created = run(args(&["slot", "create", "-d", &ci, slot])).await;
            ok_lines(v, "slot create", &created);
        }
        fx.workload().await;
        let end = fx.current_lsn().await;
        for (example, slot) in EXAMPLES.into_iter().zip(&slots) {
            let output = cargo_run(
                example,
                vec![
                    ("PG_WALSTREAM_CONNINFO", ci.clone()),
                    ("PG_WALSTREAM_SLOT", slot.clone()),
                    ("PG_WALSTREAM_PUBLICATION", "p".to_owned()),
                    ("PG_WALSTREAM_STOP_LSN", end.clone()),
                    ("PG_WALSTREAM_EVENTS_PER_SECOND", "1000".to_owned()),
                    ("PG_WALSTREAM_TARGET", server.admin_conninfo(&fx.db)),
                ],
            )
            .await;
            assert!(
                output.status.success(),
                "PostgreSQL {v}: {example} failed ({}): {}",
                output.status,
                stderr(&output)
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let changes: Vec<&str> = stdout
                .lines()
                .filter_map(|line| {
                    ["insert", "update", "delete"]
                        .into_iter()
                        .find(|kind| line.starts_with(&format!("{kind} public.t")))
                })
                .collect();
            assert_eq!(
                changes,
                ["insert", "update", "insert", "delete"],
                "PostgreSQL {v}: {example}: {stdout}"
            );
            if example == "example-safe-transaction-consumer" {
                // The downstream holds each transaction with changes once, keyed by end_lsn.
                let applied: i64 = fx
                    .admin
                    .query_one(
                        "SELECT count(*) FROM walstream_applied WHERE changes <> ''",
                        &[],
                    )
                    .await
                    .expect("walstream_applied")
                    .get(0);
                assert_eq!(applied, 4, "PostgreSQL {v}: {example}");
            }
            let confirmed = fx.confirmed_flush(slot).await;
            assert!(confirmed.is_some(), "PostgreSQL {v}: {example}");
            let dropped = run(args(&["slot", "drop", "-d", &ci, slot, "--wait"])).await;
            ok_lines(v, "slot drop", &dropped);
        }
    }
}
