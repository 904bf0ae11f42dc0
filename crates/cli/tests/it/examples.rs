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

/// `examples/arbitrary-fuzzing` needs no server: two seconds of generated messages, every one
/// round-tripping (it panics, exiting non-zero, at the first that does not).
#[tokio::test]
async fn arbitrary_fuzzing_example_round_trips_generated_messages() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(cargo)
            .current_dir(workspace_root())
            .args(["run", "-q", "-p", "example-arbitrary-fuzzing", "--", "2"])
            .output()
            .expect("cargo run")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("pgoutput round trips") && !stdout.contains(" 0 pgoutput round trips"),
        "{stdout}"
    );
}

/// `example-polling` on SIGTERM: the `StopHandle` ends its loop after the final status update,
/// so the slot has the last printed commit, and the example exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_example_stops_on_sigterm_with_the_final_ack() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    for server in servers() {
        let fx = Fixture::new(server, "cli_example_sigterm").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let slot = unique_name("example_term");
        ok_lines(
            v,
            "slot create",
            &run(args(&["slot", "create", "-d", &ci, &slot])).await,
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // `cargo run` replaces itself with the example (exec), so the signal reaches it.
        let mut child = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["run", "-q", "-p", "example-polling"])
            .env("PG_WALSTREAM_CONNINFO", &ci)
            .env("PG_WALSTREAM_SLOT", &slot)
            .env("PG_WALSTREAM_PUBLICATION", "p")
            .env_remove("PG_WALSTREAM_STOP_LSN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cargo run");
        let stdout = child.stdout.take().unwrap();
        // The workload's five transactions: read until the fifth commit.
        let reader = tokio::task::spawn_blocking(move || {
            let mut commits = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("read");
                if let Some(end) = line.strip_prefix("commit at ") {
                    commits.push(end.to_owned());
                    if commits.len() == 5 {
                        break;
                    }
                }
            }
            commits
        });
        fx.workload().await;
        let commits = tokio::time::timeout(std::time::Duration::from_secs(300), reader)
            .await
            .unwrap_or_else(|_| panic!("PostgreSQL {v}: no five commits within 300 s"))
            .expect("join");
        let last = commits
            .last()
            .unwrap_or_else(|| panic!("PostgreSQL {v}: {commits:?}"))
            .clone();
        let killed = Command::new("kill")
            .args(["-TERM".to_owned(), child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("wait");
        assert!(
            output.status.success(),
            "PostgreSQL {v}: SIGTERM: {} {}",
            output.status,
            stderr(&output)
        );
        let confirmed = fx.confirmed_flush(&slot).await.expect("slot exists");
        let (confirmed, last): (pg_walstream_codec::Lsn, pg_walstream_codec::Lsn) =
            (confirmed.parse().unwrap(), last.parse().unwrap());
        assert!(
            confirmed >= last,
            "PostgreSQL {v}: confirmed {confirmed} is before the last printed commit {last}"
        );
        let dropped = run(args(&["slot", "drop", "-d", &ci, &slot, "--wait"])).await;
        ok_lines(v, "slot drop", &dropped);
    }
}
