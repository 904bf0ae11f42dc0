//! `pg-walstream basebackup` and `verifybackup` against the run's servers.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use pg_walstream_testkit::{
    AuthUser, TestServer, client_tool, servers, unique_name, wheel_bindir, workspace_root,
};

use crate::support::{args, bin, run, stderr};

fn conninfo(server: &TestServer) -> String {
    format!(
        "{} sslmode=disable",
        server.conninfo(AuthUser::Scram, "postgres")
    )
}

fn backend() -> String {
    std::env::var("PG_WALSTREAM_TEST_BACKEND").unwrap_or_else(|_| "native".into())
}

#[tokio::test]
async fn plain_backup_with_recovery_conf_verifies() {
    for server in servers() {
        let v = server.version();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("data");
        let output = run(args(&[
            "basebackup",
            "-d",
            &conninfo(server),
            "--backend",
            &backend(),
            "-D",
            dir.to_str().unwrap(),
            "-c",
            "fast",
            "-P",
            "-R",
            "-S",
            "standby_slot",
            "-N",
            "--verify",
            "-v",
            // Shared servers keep no extra WAL (wal_keep_size 0): other tests' checkpoints
            // could remove segments a fetch needs. -X fetch is tested on private servers.
            "-X",
            "none",
        ]))
        .await;
        let err = stderr(&output);
        assert!(output.status.success(), "PostgreSQL {v}: {err}");
        assert!(
            err.contains("starts at") && err.contains("ends at"),
            "{err}"
        );
        assert!(err.contains(" kB"), "PostgreSQL {v}: no progress: {err}");
        assert!(
            err.contains("(100%)"),
            "PostgreSQL {v}: progress ends at the total: {err}"
        );
        assert!(dir.join("PG_VERSION").is_file());
        assert!(dir.join("backup_manifest").is_file());
        assert!(dir.join("standby.signal").is_file());
        let auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
        assert!(
            auto.contains("primary_conninfo = '") && auto.contains("user=scram_user"),
            "{auto}"
        );
        assert!(
            auto.contains("primary_slot_name = 'standby_slot'"),
            "{auto}"
        );

        // The server's own verifier agrees (Debian's 15 on a 15 backup).
        if v == 15
            && let Some(tool) = client_tool("pg_verifybackup", 15)
        {
            let checked = Command::new(tool)
                .arg("--no-parse-wal")
                .arg(&dir)
                .output()
                .unwrap();
            assert!(
                checked.status.success(),
                "pg_verifybackup: {}",
                stderr(&checked)
            );
        }

        // A flipped byte, a removed file and an added file are each named.
        let victim = dir.join("PG_VERSION");
        let mut bytes = std::fs::read(&victim).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&victim, bytes).unwrap();
        std::fs::remove_file(dir.join("global/pg_control")).unwrap();
        std::fs::write(dir.join("global/intruder"), b"x").unwrap();
        // -X none: no WAL to check (-n, as pg_verifybackup's --no-parse-wal).
        let output = run(args(&["verifybackup", "-n", dir.to_str().unwrap()])).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        for needle in [
            "missing global/pg_control",
            "not in the manifest global/intruder",
            "changed PG_VERSION",
        ] {
            assert!(
                err.contains(needle),
                "PostgreSQL {v}: {err:?} lacks {needle:?}"
            );
        }
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[tokio::test]
async fn tar_backup_with_client_gzip() {
    for server in servers() {
        let v = server.version();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("tar");
        let output = run(args(&[
            "basebackup",
            "-d",
            &conninfo(server),
            "--backend",
            &backend(),
            "-D",
            dir.to_str().unwrap(),
            "-F",
            "t",
            "-z",
            "-c",
            "fast",
            "-N",
            "--manifest-checksums",
            "sha256",
            "-X",
            "none",
        ]))
        .await;
        assert!(
            output.status.success(),
            "PostgreSQL {v}: {}",
            stderr(&output)
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["backup_manifest", "base.tar.gz"], "PostgreSQL {v}");
        // Owner-only, as pg_basebackup creates them: the archive holds the whole database.
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "PostgreSQL {v}");
        for name in &names {
            assert_eq!(mode(&dir.join(name)), 0o600, "PostgreSQL {v}: {name}");
        }
        let file = std::fs::File::open(dir.join("base.tar.gz")).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let entries: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(
            entries.iter().any(|e| e == "global/pg_control"),
            "PostgreSQL {v}"
        );
        assert!(
            entries.iter().any(|e| e == "backup_label"),
            "PostgreSQL {v}"
        );
        let manifest = std::fs::read_to_string(dir.join("backup_manifest")).unwrap();
        assert!(
            manifest.contains("\"Checksum-Algorithm\": \"SHA256\""),
            "PostgreSQL {v}"
        );
    }
}

fn assert_failure(what: &str, output: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_left() {
    let server = &servers()[0];
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data");
    let d = dir.to_str().unwrap();
    let c = conninfo(server);
    for (what, extra, needle) in [
        (
            "unknown compression",
            vec!["-Z", "server-brotli"],
            "unknown method \"brotli\"",
        ),
        (
            "client compression of a plain backup",
            vec!["-Z", "gzip"],
            "needs -F tar",
        ),
        (
            "--verify with tar",
            vec!["--verify", "-F", "t"],
            "--verify works only with -F plain",
        ),
        ("bad level", vec!["-Z", "server-gzip:12"], "outside 1..=9"),
        ("bad mapping", vec!["-T", "relative=/x"], "absolute"),
    ] {
        let mut list = vec!["basebackup", "-d", &c, "-D", d];
        list.extend(extra);
        let output = run(args(&list)).await;
        assert_failure(what, &output, 2, needle);
        assert!(!dir.exists(), "{what}: left {}", dir.display());
    }
    let output = run(args(&["basebackup", "-d", &c])).await;
    assert_failure("no -D", &output, 2, "-D");

    // A non-empty directory is refused and kept as it was.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mine"), b"keep").unwrap();
    let output = run(args(&["basebackup", "-d", &c, "-D", d])).await;
    assert_failure("non-empty -D", &output, 1, "exists but is not empty");
    assert_eq!(std::fs::read(dir.join("mine")).unwrap(), b"keep");
    std::fs::remove_dir_all(&dir).unwrap();

    // A prior manifest that cannot be read.
    let missing = work.path().join("no-such-manifest");
    let m = missing.to_str().unwrap();
    let output = run(args(&["basebackup", "-d", &c, "-D", d, "-i", m])).await;
    assert_failure(
        "unreadable -i",
        &output,
        1,
        "could not read the prior manifest",
    );
    assert!(!dir.exists());
    let output = run(args(&[
        "basebackup",
        "-d",
        &c,
        "-D",
        d,
        "-i",
        m,
        "--no-manifest",
    ]))
    .await;
    assert_failure(
        "-i --no-manifest",
        &output,
        2,
        "--incremental needs a manifest",
    );

    // Incremental before 17: refused before the backup starts, nothing left.
    for old in servers().iter().filter(|s| s.version() < 17) {
        let manifest = work.path().join("manifest");
        std::fs::write(&manifest, b"{}").unwrap();
        let output = run(args(&[
            "basebackup",
            "-d",
            &conninfo(old),
            "-D",
            d,
            "-i",
            manifest.to_str().unwrap(),
        ]))
        .await;
        assert_failure(
            "incremental before 17",
            &output,
            1,
            &format!(
                "INCREMENTAL needs PostgreSQL 17 or later; server is {}.",
                old.version()
            ),
        );
        assert!(!dir.exists());
    }

    // Options the server cannot do name the option and both versions.
    if let Some(old) = servers().iter().find(|s| s.version() == 14) {
        let output = run(args(&[
            "basebackup",
            "-d",
            &conninfo(old),
            "-D",
            d,
            "-Z",
            "server-gzip",
        ]))
        .await;
        assert_failure(
            "compression on 14",
            &output,
            1,
            "COMPRESSION needs PostgreSQL 15 or later; server is 14.",
        );
        assert!(!dir.exists());
    }
}

/// A backup whose walsender is terminated midway fails with exit code 1 and removes the
/// directory it created; with --no-clean it keeps it.
#[tokio::test]
async fn a_failed_backup_removes_what_it_wrote() {
    let server = &servers()[0];
    for no_clean in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("data");
        let name = unique_name("bb");
        let conninfo = format!("{} application_name={name}", conninfo(server));
        let mut list = vec![
            "basebackup".to_owned(),
            "-d".to_owned(),
            conninfo,
            "-D".to_owned(),
            dir.display().to_string(),
            "-N".to_owned(),
            "-X".to_owned(),
            "none".to_owned(),
            "-c".to_owned(),
            "fast".to_owned(),
            // Slow enough (32 kB/s) that it is still running when the walsender is ended.
            "-r".to_owned(),
            "32".to_owned(),
        ];
        if no_clean {
            list.push("--no-clean".to_owned());
        }
        let child = Command::new(bin())
            .args(&list)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&dir.join("PG_VERSION")).await;
        let admin = server.admin("postgres").await;
        let ended: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1 AND backend_type = 'walsender'",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(ended, 1);
        let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert_failure("terminated backup", &output, 1, "base backup failed");
        assert_eq!(dir.exists(), no_clean, "{}", stderr(&output));
    }
}

async fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `-X stream` while a writer commits: the restored server has every table as the source and
/// at least the rows committed before the backup started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_wal_backup_restores() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    for v in servers().iter().map(TestServer::version) {
        let server = TestServer::start(v).unwrap();
        let admin = server.admin("postgres").await;
        admin
            .batch_execute(
                "CREATE TABLE fixed AS SELECT i AS id, md5(i::text) AS v FROM generate_series(1, 20000) i;
                 CREATE TABLE writer (id bigint PRIMARY KEY);",
            )
            .await
            .unwrap();
        let (committed, stop) = (
            Arc::new(AtomicI64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let writer_client = server.admin("postgres").await;
        let writer = tokio::spawn({
            let (committed, stop) = (committed.clone(), stop.clone());
            async move {
                let mut id: i64 = 0;
                while !stop.load(Ordering::Relaxed) && id < 200_000 {
                    id += 1;
                    writer_client
                        .execute("INSERT INTO writer VALUES ($1)", &[&id])
                        .await
                        .unwrap();
                    committed.store(id, Ordering::Release);
                }
            }
        });
        while committed.load(Ordering::Acquire) < 100 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let before = committed.load(Ordering::Acquire);
        let work = open_tempdir();
        let dir = work.path().join("data");
        let output = run(args(&[
            "basebackup",
            "-d",
            &conninfo(&server),
            "--backend",
            &backend(),
            "-D",
            dir.to_str().unwrap(),
            "-X",
            "stream",
            "-c",
            "fast",
            "-N",
            "--verify",
        ]))
        .await;
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        assert!(
            output.status.success(),
            "PostgreSQL {v}: {}",
            stderr(&output)
        );
        assert!(
            !work.path().join(".data.wal-stream").exists(),
            "PostgreSQL {v}"
        );
        let segments = std::fs::read_dir(dir.join("pg_wal"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().len() == 24)
            .count();
        assert!(segments >= 1, "PostgreSQL {v}: no streamed segment");
        let restored = TestServer::start_on_restored(v, &dir)
            .unwrap_or_else(|e| panic!("PostgreSQL {v}: {e}"));
        let restored_admin = restored.admin("postgres").await;
        let digest = "SELECT count(*)::int8, md5(string_agg(v, ',' ORDER BY id)) FROM fixed";
        let source: (i64, String) = {
            let row = admin.query_one(digest, &[]).await.unwrap();
            (row.get(0), row.get(1))
        };
        let row = restored_admin.query_one(digest, &[]).await.unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, String>(1)),
            source,
            "PostgreSQL {v}"
        );
        let rows: i64 = restored_admin
            .query_one("SELECT count(*) FROM writer", &[])
            .await
            .unwrap()
            .get(0);
        assert!(
            rows >= before,
            "PostgreSQL {v}: {rows} rows restored, {before} committed before the backup"
        );
    }
}

/// `examples/pg-basebackup` backs up a private server (of the run's first version) and finds
/// every file matching the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pg_basebackup_example_runs() {
    let server = TestServer::start(servers()[0].version()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let conninfo = conninfo(&server);
    let target = dir.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(cargo)
            .current_dir(workspace_root())
            .args(["run", "-q", "-p", "example-pg-basebackup", "--"])
            .arg(&target)
            .env("PG_WALSTREAM_CONNINFO", conninfo)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("files match backup_manifest: true"),
        "{out} {err}"
    );
    assert!(err.contains("(100%)"), "{err}");
    assert!(dir.join("global/pg_control").is_file());
}

/// `-i`: a full and an incremental backup with the CLI on the newest server of the run (17+,
/// a private one with summarize_wal on); the second holds INCREMENTAL.* files and verifies.
/// (Combining and restoring is the backup crate's incremental test.)
#[tokio::test]
async fn incremental_backup_with_the_cli() {
    let Some(version) = servers()
        .iter()
        .map(TestServer::version)
        .filter(|&v| v >= 17)
        .max()
    else {
        return;
    };
    let server = TestServer::builder(version)
        .setting("summarize_wal", "on")
        .start()
        .unwrap();
    let admin = server.admin("postgres").await;
    admin
        .batch_execute(
            "CREATE TABLE t AS SELECT i, md5(i::text) AS v FROM generate_series(1, 5000) i",
        )
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let full = work.path().join("full");
    let incremental = work.path().join("incremental");
    let c = conninfo(&server);
    let b = backend();
    let backup = |dir: &Path, extra: Vec<String>| {
        let mut list = args(&[
            "basebackup",
            "-d",
            &c,
            "--backend",
            &b,
            "-c",
            "fast",
            "-N",
            "--verify",
            "-D",
        ]);
        list.push(dir.to_str().unwrap().to_owned());
        list.extend(extra);
        run(list)
    };
    let output = backup(&full, Vec::new()).await;
    assert!(
        output.status.success(),
        "PostgreSQL {version}: {}",
        stderr(&output)
    );
    admin
        .batch_execute("UPDATE t SET v = 'x' WHERE i % 10 = 0")
        .await
        .unwrap();
    let manifest = full.join("backup_manifest");
    let output = backup(
        &incremental,
        vec!["-i".to_owned(), manifest.to_str().unwrap().to_owned()],
    )
    .await;
    assert!(
        output.status.success(),
        "PostgreSQL {version}: {}",
        stderr(&output)
    );
    let base = std::fs::read_dir(incremental.join("base")).unwrap();
    let incremental_files = base
        .flatten()
        .flat_map(|db| std::fs::read_dir(db.path()).unwrap().flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with("INCREMENTAL."))
        .count();
    assert!(
        incremental_files > 0,
        "PostgreSQL {version}: no INCREMENTAL.* files"
    );
}

/// `-F tar -X stream -R` (pg_basebackup's layout): base.tar with standby.signal and
/// primary_conninfo injected, pg_wal.tar with the streamed WAL, backup_manifest. Extracted
/// (base.tar into the data directory, pg_wal.tar into its pg_wal), the result starts as a
/// standby of the source with the source's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_backup_with_stream_and_recovery_conf_restores_as_standby() {
    use pg_walstream_backup::extract_archive_file;
    for v in servers().iter().map(TestServer::version) {
        let server = TestServer::start(v).unwrap();
        let admin = server.admin("postgres").await;
        admin
            .batch_execute(
                "CREATE TABLE fixed AS SELECT i AS id, md5(i::text) AS v FROM generate_series(1, 20000) i",
            )
            .await
            .unwrap();
        let work = open_tempdir();
        let tar_dir = work.path().join("tar");
        let output = run(args(&[
            "basebackup",
            "-d",
            &conninfo(&server),
            "--backend",
            &backend(),
            "-D",
            tar_dir.to_str().unwrap(),
            "-F",
            "t",
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            "-N",
        ]))
        .await;
        assert!(
            output.status.success(),
            "PostgreSQL {v}: {}",
            stderr(&output)
        );
        let mut files: Vec<String> = std::fs::read_dir(&tar_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["backup_manifest", "base.tar", "pg_wal.tar"],
            "PostgreSQL {v}"
        );
        // verifybackup reads the tar files (and the WAL in pg_wal.tar); pg_verifybackup 18
        // (the wheel's, the only one that reads tar-format backups) agrees on 18.
        let t = tar_dir.to_str().unwrap();
        let output = run(args(&["verifybackup", t])).await;
        assert!(
            output.status.success(),
            "PostgreSQL {v}: {}",
            stderr(&output)
        );
        if v == 18 {
            let theirs = wheel_bindir().join("pg_verifybackup");
            let checked = Command::new(&theirs).args(["-n", t]).output().unwrap();
            assert!(
                checked.status.success(),
                "pg_verifybackup: {}",
                stderr(&checked)
            );
        }
        let data = work.path().join("data");
        extract_archive_file(&tar_dir.join("base.tar"), &data, &[]).unwrap();
        // pg_wal/ (with archive_status/) comes in base.tar; the segments go into it.
        let pg_wal = data.join("pg_wal");
        let wal = work.path().join("wal");
        extract_archive_file(&tar_dir.join("pg_wal.tar"), &wal, &[]).unwrap();
        for segment in std::fs::read_dir(&wal).unwrap() {
            let segment = segment.unwrap();
            std::fs::rename(segment.path(), pg_wal.join(segment.file_name())).unwrap();
        }
        assert!(data.join("standby.signal").is_file(), "PostgreSQL {v}");
        let auto_conf = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        assert!(
            auto_conf.contains(&format!("port={}", server.port())),
            "PostgreSQL {v}: {auto_conf}"
        );
        let segments = std::fs::read_dir(&pg_wal)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().len() == 24)
            .count();
        assert!(segments >= 1, "PostgreSQL {v}: no streamed segment");

        // A flipped byte inside base.tar's PG_VERSION is named.
        let base = tar_dir.join("base.tar");
        let offset = {
            let mut archive = tar::Archive::new(std::fs::File::open(&base).unwrap());
            let entry = archive
                .entries()
                .unwrap()
                .map(Result::unwrap)
                .find(|e| e.path().unwrap() == Path::new("PG_VERSION"))
                .expect("PG_VERSION in base.tar");
            usize::try_from(entry.raw_file_position()).unwrap()
        };
        let mut bytes = std::fs::read(&base).unwrap();
        bytes[offset] ^= 1;
        std::fs::write(&base, bytes).unwrap();
        let output = run(args(&["verifybackup", "-n", t])).await;
        assert_eq!(
            output.status.code(),
            Some(1),
            "PostgreSQL {v}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("changed PG_VERSION"),
            "{}",
            stderr(&output)
        );

        let restored = TestServer::start_on_restored(v, &data)
            .unwrap_or_else(|e| panic!("PostgreSQL {v}: {e}"));
        let restored_admin = restored.admin("postgres").await;
        let in_recovery: bool = restored_admin
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(in_recovery, "PostgreSQL {v}: not a standby");
        let digest = "SELECT count(*)::int8, md5(string_agg(v, ',' ORDER BY id)) FROM fixed";
        let source = admin.query_one(digest, &[]).await.unwrap();
        let copy = restored_admin.query_one(digest, &[]).await.unwrap();
        assert_eq!(
            (copy.get::<_, i64>(0), copy.get::<_, String>(1)),
            (source.get::<_, i64>(0), source.get::<_, String>(1)),
            "PostgreSQL {v}"
        );
    }
}

/// `-P` on a terminal (a pseudo-terminal from `script`) draws an indicatif bar that ends full
/// at 100 %; without a terminal it prints plain lines (the other tests).
#[tokio::test]
async fn progress_bar_on_a_terminal() {
    let Some(script) = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        panic!("util-linux `script` is needed to give the CLI a terminal");
    };
    let server = &servers()[0];
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data");
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let command = [
        bin().display().to_string(),
        "basebackup".to_owned(),
        "-d".to_owned(),
        conninfo(server),
        "--backend".to_owned(),
        backend(),
        "-D".to_owned(),
        dir.display().to_string(),
        "-X".to_owned(),
        "none".to_owned(),
        "-c".to_owned(),
        "fast".to_owned(),
        "-N".to_owned(),
        "-P".to_owned(),
    ]
    .iter()
    .map(|a| quote(a))
    .collect::<Vec<_>>()
    .join(" ");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(script)
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("(100%)"), "no complete bar: {screen:?}");
    assert!(screen.contains(&"█".repeat(40)), "no full bar: {screen:?}");
    assert!(
        !screen.contains(" kB ("),
        "plain lines on a terminal: {screen:?}"
    );
    assert!(dir.join("PG_VERSION").is_file());
}

/// A temporary directory every user can traverse (the restored server's user reaches its data
/// directory through it).
fn open_tempdir() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    work
}
