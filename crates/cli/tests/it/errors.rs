//! Bad arguments and failures: one clear line on standard error, a non-zero exit code, no
//! panic or backtrace.

use std::process::Output;

use pg_walstream_testkit::{servers, unique_name};

use crate::support::{Fixture, args, run, stderr};

fn assert_one_line_failure(what: &str, output: &Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(err.starts_with("pg-walstream: "), "{what}: {err}");
    assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace") && !err.contains("RUST_"),
        "{what}: {err}"
    );
    assert!(output.stdout.is_empty(), "{what}: printed to stdout");
}

#[tokio::test]
async fn bad_arguments_fail_with_one_line_and_exit_code_2() {
    let cases: [(&str, Vec<&str>, &str); 7] = [
        (
            "bad --start",
            vec![
                "recv",
                "--slot",
                "s",
                "--publication",
                "p",
                "--start",
                "12345",
            ],
            "is not an LSN",
        ),
        (
            "bad --endpos",
            vec![
                "recv",
                "--slot",
                "s",
                "--publication",
                "p",
                "--endpos",
                "0/xyz",
            ],
            "is not an LSN",
        ),
        (
            "unknown format",
            vec![
                "recv",
                "--slot",
                "s",
                "--publication",
                "p",
                "--format",
                "xml",
            ],
            "'xml'",
        ),
        (
            "missing publication",
            vec!["recv", "--slot", "s"],
            "--publication",
        ),
        (
            "invalid slot name",
            vec![
                "recv",
                "-d",
                "user=x host=127.0.0.1",
                "--slot",
                "Bad-Name",
                "--publication",
                "p",
            ],
            "slot",
        ),
        (
            "--if-not-exists without --create-slot",
            vec![
                "recv",
                "--slot",
                "s",
                "--publication",
                "p",
                "--if-not-exists",
            ],
            "--create-slot",
        ),
        (
            "decode of a psql file without --proto",
            vec!["decode", "Cargo.toml"],
            "--proto",
        ),
    ];
    for (what, argv, needle) in cases {
        let output = run(args(&argv)).await;
        assert_one_line_failure(what, &output, 2, needle);
    }
}

#[tokio::test]
async fn unreadable_inputs_and_unreachable_servers_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.tsv");
    std::fs::write(&garbage, "0/1\t1\t\\x42\nnot a row\n").unwrap();
    let garbage = garbage.to_string_lossy().into_owned();
    let output = run(args(&["decode", "--proto", "1", &garbage])).await;
    assert_one_line_failure("a line that is no row", &output, 1, "line 2");
    let truncated = dir.path().join("truncated.tsv");
    std::fs::write(&truncated, "0/1\t1\t\\x42\n").unwrap();
    let truncated = truncated.to_string_lossy().into_owned();
    let output = run(args(&["decode", "--proto", "1", &truncated])).await;
    // A Begin cut short: the decoder's error names the row.
    assert_one_line_failure("truncated message", &output, 1, "line 1 (lsn 0/1)");
    let missing = run(args(&["decode", "--proto", "1", "/nonexistent/file"])).await;
    assert_one_line_failure("missing file", &missing, 1, "/nonexistent/file");
    // Port 1 on loopback: nothing listens there.
    let unreachable = run(args(&[
        "recv",
        "-d",
        "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=5",
        "--slot",
        "s",
        "--publication",
        "p",
    ]))
    .await;
    assert_one_line_failure("unreachable server", &unreachable, 1, "127.0.0.1");
    let slot_list = run(args(&[
        "slot",
        "list",
        "-d",
        "host=127.0.0.1 port=1 user=x",
    ]))
    .await;
    assert_one_line_failure(
        "unreachable server (slot list)",
        &slot_list,
        1,
        "could not connect",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_refusals_fail_cleanly_on_every_version() {
    for server in servers() {
        let fx = Fixture::new(server, "cli_errors").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let slot = unique_name("cli_missing");
        let missing = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot,
            "--publication",
            "p",
        ]))
        .await;
        assert_one_line_failure(
            &format!("PostgreSQL {v}: missing slot"),
            &missing,
            1,
            "--create-slot",
        );
        let bad_password = format!("{ci} password=wrong");
        let refused = run(args(&["slot", "list", "-d", &bad_password])).await;
        assert_one_line_failure(
            &format!("PostgreSQL {v}: wrong password"),
            &refused,
            1,
            "could not connect",
        );
        // Options the server version lacks are refused before anything is created.
        let mut too_new: Vec<(&[&str], &str)> = Vec::new();
        if v < 16 {
            too_new.push((&["--streaming", "parallel"], "16"));
            too_new.push((&["--origin", "none"], "16"));
        }
        if v < 15 {
            too_new.push((&["--two-phase"], "15"));
        }
        for (options, needle) in too_new {
            let mut argv = args(&[
                "recv",
                "-d",
                &ci,
                "--slot",
                &slot,
                "--publication",
                "p",
                "--create-slot",
            ]);
            argv.extend(args(options));
            let refused = run(argv).await;
            assert_one_line_failure(&format!("PostgreSQL {v}: {options:?}"), &refused, 2, needle);
            assert_eq!(fx.confirmed_flush(&slot).await, None, "nothing was created");
        }
        let created = run(args(&["slot", "create", "-d", &ci, &slot])).await;
        assert!(
            created.status.success(),
            "PostgreSQL {v}: {}",
            stderr(&created)
        );
        let exists = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot,
            "--publication",
            "p",
            "--create-slot",
        ]))
        .await;
        assert_one_line_failure(
            &format!("PostgreSQL {v}: existing slot"),
            &exists,
            1,
            "--if-not-exists",
        );
        let twice = run(args(&["slot", "create", "-d", &ci, &slot])).await;
        assert_one_line_failure(
            &format!("PostgreSQL {v}: create twice"),
            &twice,
            1,
            "already exists",
        );
        let dropped = run(args(&["slot", "drop", "-d", &ci, &slot])).await;
        assert!(
            dropped.status.success(),
            "PostgreSQL {v}: {}",
            stderr(&dropped)
        );
    }
}

#[tokio::test]
async fn a_closed_output_pipe_ends_decode_quietly_with_exit_0() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("begins.tsv");
    // 50k valid empty transactions (Begin, Commit): far more output than a pipe buffers.
    let rows = format!(
        "0/10\t5\t\\x42{}\n0/10\t5\t\\x43{}\n",
        "00".repeat(20),
        "00".repeat(25)
    );
    std::fs::write(&path, rows.repeat(50_000)).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(crate::support::bin())
            .args(["decode", "--proto", "1", "--format", "text"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("BEGIN xid=0 final_lsn=0/0"), "{first}");
        // The reader is gone now, like `| head -1`.
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}
