//! SIGTERM and SIGINT: `recv` flushes, acknowledges what it printed, stops and exits 0.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pg_walstream_testkit::{servers, unique_name};
use serde_json::Value;

use crate::support::{Fixture, args, bin, ok_lines, run};

fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("X/Y");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_flushes_acknowledges_and_exits_0_on_every_version() {
    for (index, server) in servers().iter().enumerate() {
        let fx = Fixture::new(server, "cli_signal").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let slot = unique_name("cli_sig");
        ok_lines(
            v,
            "slot create",
            &run(args(&["slot", "create", "-d", &ci, &slot])).await,
        );
        let signal = if index % 2 == 0 { "TERM" } else { "INT" };
        let mut child = Command::new(bin())
            .args([
                "recv",
                "-d",
                &ci,
                "--slot",
                &slot,
                "--publication",
                "p",
                "--messages",
                "--status-interval",
                "60",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn recv");
        let stdout = child.stdout.take().unwrap();
        // Reads until the workload's final message, which ends the last unit to acknowledge.
        let reader = tokio::task::spawn_blocking(move || {
            let mut events = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let event: Value = serde_json::from_str(&line.expect("read")).expect("JSON");
                let done = event["kind"] == "message";
                events.push(event);
                if done {
                    break;
                }
            }
            events
        });
        fx.workload().await;
        let events = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .unwrap_or_else(|_| panic!("PostgreSQL {v}: no output within 60 s"))
            .expect("join");
        let last_commit = events
            .iter()
            .rev()
            .find(|e| e["kind"] == "commit")
            .unwrap_or_else(|| panic!("PostgreSQL {v}: {events:?}"));
        let last_end = lsn(last_commit["end_lsn"].as_str().unwrap());
        let pid = child.id().to_string();
        let killed = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("wait");
        assert_eq!(
            output.status.code(),
            Some(0),
            "PostgreSQL {v}: SIG{signal}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stderr.is_empty(),
            "PostgreSQL {v}: {:?}",
            output.stderr
        );
        // The status interval is 60 s: only the stop's final status update can have confirmed
        // the last transaction.
        let confirmed = fx.confirmed_flush(&slot).await.expect("slot exists");
        assert!(
            lsn(&confirmed) >= last_end,
            "PostgreSQL {v}: SIG{signal}: confirmed_flush_lsn {confirmed} is before the last \
             printed commit {}",
            last_commit["end_lsn"]
        );
        ok_lines(
            v,
            "slot drop",
            &run(args(&["slot", "drop", "-d", &ci, &slot, "--wait"])).await,
        );
    }
}
