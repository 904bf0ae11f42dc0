//! `pg-walstream receivewal` against real servers: resume after SIGKILL with byte-identical
//! segments, slot management, and bad input that fails cleanly with nothing written.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pg_walstream_testkit::{AuthUser, TestServer, servers, unique_name};

use crate::support::{args, run, stderr};

const SEGMENT: usize = 1 << 20;

/// The backend of this run (`PG_WALSTREAM_TEST_BACKEND`, native by default).
fn backend() -> String {
    std::env::var("PG_WALSTREAM_TEST_BACKEND").unwrap_or_else(|_| "native".into())
}

fn conninfo(server: &TestServer) -> String {
    format!(
        "{} sslmode=disable",
        server.conninfo(AuthUser::Scram, "postgres")
    )
}

fn receivewal(server: &TestServer, extra: &[&str]) -> Vec<String> {
    let mut list = args(&["receivewal", "-d", &conninfo(server), "--backend"]);
    list.push(backend());
    list.extend(extra.iter().map(|s| (*s).to_owned()));
    list
}

async fn flush_lsn(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits until the receiver streams from `slot`: on PostgreSQL 14 (no READ_REPLICATION_SLOT)
/// a receiver without files starts at the server's current position, as pg_receivewal does, so
/// WAL written before it connected would not be received.
async fn wait_streaming(server: &TestServer, slot: &str, v: u32) {
    let pid = server
        .wait_for_walsender(slot, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(pid.is_some(), "PG {v}: the receiver did not connect");
}

async fn write_load(client: &tokio_postgres::Client, megabytes: u32) {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS load (id bigserial, payload text)")
        .await
        .unwrap();
    for _ in 0..megabytes {
        client
            .batch_execute(
                "INSERT INTO load (payload) SELECT string_agg(md5(random()::text || g::text || i::text), '') \
                 FROM generate_series(1, 800) g, generate_series(1, 32) i GROUP BY g",
            )
            .await
            .unwrap();
    }
}

/// `receivewal --drop-slot`, again while the walsender of a receiver that just exited still
/// holds the slot ("is active for PID", which ends as soon as that walsender exits).
async fn drop_slot(server: &TestServer, slot: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = run(receivewal(server, &["--drop-slot", "-S", slot])).await;
        if output.status.success()
            || !stderr(&output).contains("is active")
            || Instant::now() > deadline
        {
            return output;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn assert_failed(v: u32, what: &str, output: &Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "PG {v}: {what}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "PG {v}: {what}: one line: {err}"
    );
    assert!(
        err.contains(needle),
        "PG {v}: {what}: {err:?} should mention {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_segment_then_resume_byte_identical() {
    for shared in servers() {
        let v = shared.version();
        let server = TestServer::builder(v)
            .initdb_arg("--wal-segsize=1")
            .setting("wal_keep_size", "'512MB'")
            .start()
            .unwrap();
        let admin = server.admin("postgres").await;
        let slot = unique_name("rw");
        let created = run(receivewal(&server, &["--create-slot", "-S", &slot])).await;
        assert!(
            created.status.success(),
            "PG {v}: create: {}",
            stderr(&created)
        );
        // A second slot from the same start, for a compressed copy at the end.
        let zslot = unique_name("rwz");
        let zcreated = run(receivewal(&server, &["--create-slot", "-S", &zslot])).await;
        assert!(
            zcreated.status.success(),
            "PG {v}: create: {}",
            stderr(&zcreated)
        );
        let again = run(receivewal(
            &server,
            &["--create-slot", "-S", &slot, "--if-not-exists"],
        ))
        .await;
        assert!(
            again.status.success(),
            "PG {v}: create if not exists: {}",
            stderr(&again)
        );

        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap().to_owned();
        let mut child = Command::new(crate::support::bin())
            .args(receivewal(
                &server,
                &["-D", &dir_text, "-S", &slot, "-s", "1"],
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_streaming(&server, &slot, v).await;
        write_load(&admin, 3).await;
        // Wait for a complete segment and an open .partial, then kill without warning.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let names = files(dir.path());
            let complete = names.iter().filter(|n| n.len() == 24).count();
            if complete >= 1 && names.iter().any(|n| n.ends_with(".partial")) {
                break;
            }
            assert!(Instant::now() < deadline, "PG {v}: no progress: {names:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        write_load(&admin, 2).await;
        let end = flush_lsn(&admin).await;
        let rest = run(receivewal(
            &server,
            &["-D", &dir_text, "-S", &slot, "-E", &end, "-n", "-v"],
        ))
        .await;
        assert!(rest.status.success(), "PG {v}: resume: {}", stderr(&rest));
        assert!(
            stderr(&rest).contains("streaming from"),
            "PG {v}: progress on stderr: {}",
            stderr(&rest)
        );

        let server_wal = server.data_dir().join("pg_wal");
        let mut complete = 0;
        for name in files(dir.path()) {
            let mine = std::fs::read(dir.path().join(&name)).unwrap();
            let base = name.trim_end_matches(".partial");
            let theirs = std::fs::read(server_wal.join(base)).unwrap();
            if name.ends_with(".partial") {
                assert!(
                    theirs.starts_with(&mine),
                    "PG {v}: {name} is a prefix of the server's"
                );
            } else {
                assert_eq!(mine.len(), SEGMENT, "PG {v}: {name}");
                assert!(mine == theirs, "PG {v}: {name} differs from the server's");
                complete += 1;
            }
        }
        assert!(complete >= 3, "PG {v}: {complete} complete segments");
        assert_eq!(
            files(dir.path())
                .iter()
                .filter(|n| n.ends_with(".partial"))
                .count(),
            1,
            "PG {v}: one open segment"
        );

        // The same WAL again, zstd-compressed per segment (PostgreSQL 15+ resumes from the
        // slot; 14 has no READ_REPLICATION_SLOT and would start at the current position).
        if v >= 15 {
            let zdir = tempfile::tempdir().unwrap();
            let ztext = zdir.path().to_str().unwrap().to_owned();
            let output = run(receivewal(
                &server,
                &[
                    "-D",
                    &ztext,
                    "-S",
                    &zslot,
                    "-E",
                    &end,
                    "-n",
                    "--compress",
                    "zstd:1",
                    "--synchronous",
                ],
            ))
            .await;
            assert!(output.status.success(), "PG {v}: zstd: {}", stderr(&output));
            let mut compared = 0;
            for name in files(zdir.path()) {
                let Some(base) = name.strip_suffix(".zst") else {
                    assert!(name.ends_with(".zst.partial"), "PG {v}: unexpected {name}");
                    continue;
                };
                let bytes = zstd::decode_all(std::fs::File::open(zdir.path().join(&name)).unwrap())
                    .unwrap();
                let theirs = std::fs::read(server_wal.join(base)).unwrap();
                assert!(
                    bytes == theirs,
                    "PG {v}: {name} decompresses to the server's segment"
                );
                compared += 1;
            }
            assert!(compared >= 3, "PG {v}: {compared} compressed segments");
        }
        let zdropped = drop_slot(&server, &zslot).await;
        assert!(
            zdropped.status.success(),
            "PG {v}: drop: {}",
            stderr(&zdropped)
        );

        let dropped = drop_slot(&server, &slot).await;
        assert!(
            dropped.status.success(),
            "PG {v}: drop: {}",
            stderr(&dropped)
        );
        let gone: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(gone, 0, "PG {v}: slot dropped");
    }
}

/// Compares the files in `dir` with the server's: complete segments byte for byte, the
/// `.partial` as a prefix. Returns the number of complete segments.
fn compare(v: u32, dir: &Path, server_wal: &Path) -> usize {
    let mut complete = 0;
    for name in files(dir) {
        let mine = std::fs::read(dir.join(&name)).unwrap();
        let base = name.trim_end_matches(".partial");
        let theirs = std::fs::read(server_wal.join(base)).unwrap();
        if name.ends_with(".partial") {
            assert!(
                theirs.starts_with(&mine),
                "PG {v}: {name} is a prefix of the server's"
            );
        } else {
            assert!(mine == theirs, "PG {v}: {name} differs from the server's");
            complete += 1;
        }
    }
    complete
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_server_restart_and_stops_on_sigterm() {
    let v = servers()[0].version();
    let server = TestServer::builder(v)
        .initdb_arg("--wal-segsize=1")
        .setting("wal_keep_size", "'512MB'")
        .start()
        .unwrap();
    let slot = unique_name("rr");
    let created = run(receivewal(&server, &["--create-slot", "-S", &slot])).await;
    assert!(
        created.status.success(),
        "PG {v}: create: {}",
        stderr(&created)
    );
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_str().unwrap().to_owned();
    let mut child = Command::new(crate::support::bin())
        .args(receivewal(
            &server,
            &[
                "-D",
                &dir_text,
                "-S",
                &slot,
                "-s",
                "1",
                "--synchronous",
                "-v",
            ],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_streaming(&server, &slot, v).await;
    {
        let admin = server.admin("postgres").await;
        write_load(&admin, 2).await;
    }
    server.stop_server().unwrap();
    server.start_again().unwrap();
    let admin = server.admin("postgres").await;
    write_load(&admin, 2).await;
    let end: String = flush_lsn(&admin).await;
    // --synchronous: the slot follows what the receiver fsynced; wait for it to pass `end`.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reached: bool = admin
            .query_one(
                "SELECT coalesce(restart_lsn >= $2::text::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot, &end],
            )
            .await
            .unwrap()
            .get(0);
        if reached {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "PG {v}: the receiver did not get past {end} after the restart: {}",
                stderr(&output)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let err = stderr(&output);
    assert!(
        output.status.success(),
        "PG {v}: SIGTERM ends with exit code 0: {err}"
    );
    assert!(
        err.contains("reconnecting in"),
        "PG {v}: the restart was noticed: {err}"
    );
    let complete = compare(v, dir.path(), &server.data_dir().join("pg_wal"));
    assert!(complete >= 3, "PG {v}: {complete} complete segments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_one_line_and_writes_nothing() {
    for server in servers() {
        let v = server.version();
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap().to_owned();

        // Usage errors: exit code 2.
        for (what, extra) in [
            ("no -D", vec!["-n"]),
            (
                "bad --compress",
                vec!["-D", &dir_text, "--compress", "brotli"],
            ),
            ("bad --endpos", vec!["-D", &dir_text, "-E", "nonsense"]),
            ("--create-slot without a slot", vec!["--create-slot"]),
            (
                "--if-not-exists alone",
                vec!["-D", &dir_text, "--if-not-exists"],
            ),
        ] {
            let output = run(receivewal(server, &extra)).await;
            assert_eq!(
                output.status.code(),
                Some(2),
                "PG {v}: {what}: {}",
                stderr(&output)
            );
            assert_eq!(
                stderr(&output).trim_end().lines().count(),
                1,
                "PG {v}: {what}: {}",
                stderr(&output)
            );
        }

        // A directory that cannot be written.
        let missing = dir.path().join("missing");
        let output = run(receivewal(server, &["-D", missing.to_str().unwrap(), "-n"])).await;
        assert_failed(v, "missing -D", &output, 1, "missing");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let output = run(receivewal(server, &["-D", file.to_str().unwrap(), "-n"])).await;
        assert_failed(v, "-D is a file", &output, 1, "a-file");

        // A logical slot.
        let db = server.create_database("rwlogical").await;
        let client = server.admin(&db).await;
        let logical = unique_name("logical");
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&logical],
            )
            .await
            .unwrap();
        let output = run(receivewal(server, &["-D", &dir_text, "-S", &logical])).await;
        assert_failed(v, "logical slot", &output, 1, "logical");
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[&logical])
            .await
            .unwrap();
        // A slot that does not exist.
        let output = run(receivewal(
            server,
            &["-D", &dir_text, "-S", "no_such_slot_here"],
        ))
        .await;
        assert_failed(v, "missing slot", &output, 1, "no_such_slot_here");
        assert_eq!(files(dir.path()), ["a-file"], "PG {v}: nothing written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_on_a_server_without_replication_slots_fail_clearly() {
    let v = servers()[0].version();
    let server = TestServer::builder(v)
        .setting("max_replication_slots", "0")
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_str().unwrap().to_owned();
    let output = run(receivewal(&server, &["--create-slot", "-S", "s1"])).await;
    assert_failed(v, "--create-slot", &output, 1, "replication slots");
    let output = run(receivewal(&server, &["-D", &dir_text, "-S", "s1"])).await;
    assert_eq!(output.status.code(), Some(1), "PG {v}: {}", stderr(&output));
    assert!(files(dir.path()).is_empty(), "PG {v}: nothing written");
}

/// Names and sizes of the files in `dir`.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    files(dir)
        .into_iter()
        .map(|n| {
            let len = std::fs::metadata(dir.join(&n)).unwrap().len();
            (n, len)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_another_server_is_refused() {
    for server in servers() {
        let v = server.version();
        let admin = server.admin("postgres").await;
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap().to_owned();
        // Two runs: the second resumes from the first one's .partial, so that file holds at
        // least the WAL written in between (its first page header included).
        for round in 0..2 {
            admin
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS sysid_load (payload text); \
                     INSERT INTO sysid_load SELECT repeat(md5(g::text), 100) FROM generate_series(1, 20) g",
                )
                .await
                .unwrap();
            let end = flush_lsn(&admin).await;
            let output = run(receivewal(server, &["-D", &dir_text, "-E", &end, "-n"])).await;
            assert!(
                output.status.success(),
                "PG {v}: round {round}: {}",
                stderr(&output)
            );
        }
        let before = listing(dir.path());
        assert!(
            before.iter().any(|(n, len)| n.len() >= 24 && *len >= 40),
            "PG {v}: a segment with its first page: {before:?}"
        );

        let other = TestServer::builder(v).start().unwrap();
        let output = run(receivewal(&other, &["-D", &dir_text, "-n"])).await;
        assert_failed(v, "another server's files", &output, 1, "database system");
        assert_eq!(listing(dir.path()), before, "PG {v}: nothing written");

        // The right server still resumes into the directory.
        let end = flush_lsn(&admin).await;
        let output = run(receivewal(server, &["-D", &dir_text, "-E", &end, "-n"])).await;
        assert!(output.status.success(), "PG {v}: {}", stderr(&output));
    }
}
