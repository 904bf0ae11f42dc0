//! The restore test: a backup taken while a writer commits rows, started as a new server,
//! compared table by table with the source.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use pg_walstream_backup::{
    ArchiveSink, BackupEvent, BackupOptions, BaseBackup, Checkpoint, Compression,
    CompressionMethod, Manifest, PlainSink, Progress, TablespaceMapping, TarSink, WalProblem,
    extract_archive_file, recovery_conf_lines, verify_dir, verify_tar_dir, verify_wal,
};
use pg_walstream_codec::{Lsn, WalSegmentSize};
use pg_walstream_testkit::{TestServer, client_tool_of_version};

use crate::{backend, replication, versions};

/// How the backup is taken.
#[derive(Debug, Clone, Copy)]
enum Format {
    Plain,
    Tar,
}

/// Rows the writer commits at most (it normally stops much earlier, when the backup ends).
const WRITER_LIMIT: i64 = 200_000;

pub(crate) async fn digest(
    client: &tokio_postgres::Client,
    table: &str,
    max_id: Option<i64>,
) -> (i64, String) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') \
                 FROM {table} t WHERE id::int8 <= $1"
            ),
            &[&max_id.unwrap_or(i64::MAX)],
        )
        .await
        .unwrap_or_else(|e| panic!("digest of {table}: {e}"));
    (row.get(0), row.get(1))
}

/// A directory every user can traverse (the restored server's user reaches a mapped
/// tablespace through it).
pub(crate) fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// `worker_thread`: the sinks write every archive on a thread of their own instead of on the
/// task that receives (only what is compressed, decompressed or rewritten here otherwise).
async fn backup_and_restore(
    version: u32,
    format: Format,
    compression: Option<CompressionMethod>,
    worker_thread: bool,
) {
    let context = format!(
        "PostgreSQL {version} ({:?}), {format:?}, {compression:?}, worker thread {worker_thread}",
        backend()
    );
    let server = TestServer::start(version).unwrap_or_else(|e| panic!("{context}: {e}"));
    let admin = server.admin("postgres").await;
    let ts_dir = server.create_server_dir("ts").unwrap();
    let setup = [
        "CREATE TABLE fixed (id int PRIMARY KEY, payload text)".to_owned(),
        "INSERT INTO fixed SELECT i, repeat(md5(i::text), 1 + i % 40) FROM generate_series(1, 3000) i"
            .to_owned(),
        "INSERT INTO fixed SELECT i, repeat(md5(i::text), 3000) FROM generate_series(3001, 3005) i"
            .to_owned(),
        format!("CREATE TABLESPACE ts LOCATION '{}'", ts_dir.display()),
        "CREATE TABLE in_ts (id int PRIMARY KEY, v text) TABLESPACE ts".to_owned(),
        "INSERT INTO in_ts SELECT i, md5(i::text) FROM generate_series(1, 1000) i".to_owned(),
        "CREATE TABLE writer (id bigint PRIMARY KEY, v text)".to_owned(),
    ];
    for statement in setup {
        admin
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{context}: {statement}: {e:?}"));
    }

    // The writer commits one row per transaction until told to stop.
    let committed = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer_client = server.admin("postgres").await;
    let writer = tokio::spawn({
        let (committed, stop) = (committed.clone(), stop.clone());
        async move {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) && id < WRITER_LIMIT {
                id += 1;
                writer_client
                    .execute(
                        "INSERT INTO writer VALUES ($1::int8, md5($1::int8::text))",
                        &[&id],
                    )
                    .await
                    .expect("writer insert");
                committed.store(id, Ordering::Release);
            }
        }
    });
    while committed.load(Ordering::Acquire) < 100 {
        assert!(!writer.is_finished(), "{context}: the writer stopped");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let work = open_tempdir();
    let data = work.path().join("data");
    let restored_ts = work.path().join("ts");
    let tar_dir = work.path().join("tar");
    let mappings = vec![TablespaceMapping {
        old: ts_dir.clone(),
        new: restored_ts.clone(),
    }];
    let options = BackupOptions {
        checkpoint: Checkpoint::Fast,
        wal: true,
        progress: true,
        compression: compression.map(Compression::new),
        ..BackupOptions::default()
    };
    let mut backup = BaseBackup::start(replication(&server).await, &options)
        .await
        .unwrap_or_else(|e| panic!("{context}: start: {e:?}"));
    assert_eq!(backup.tablespaces().len(), 2, "{context}");
    let ts_oid = backup.tablespaces()[0]
        .oid
        .expect("tablespace first, base last");
    let mut plain = PlainSink::new(&data)
        .mappings(mappings.clone())
        .sync(false)
        .worker_thread(worker_thread);
    std::fs::create_dir(&tar_dir).unwrap();
    // -R in tar format: injected into the main archive (server-compressed ones are
    // decompressed and compressed again). The primary is unreachable: the restored server
    // stays a hot standby on the backup's WAL.
    let recovery = recovery_conf_lines("host=/nonexistent-primary port=5432", None);
    let mut tar = TarSink::new(&tar_dir)
        .sync(false)
        .worker_thread(worker_thread)
        .recovery(recovery.clone());
    let mut committed_before_end = 0;
    let mut progress: Vec<Progress> = Vec::new();
    let mut archives = Vec::new();
    while let Some(event) = backup
        .next_event()
        .await
        .unwrap_or_else(|e| panic!("{context}: {e:?}"))
    {
        match &event {
            // Every commit acknowledged before the main archive starts precedes the backup's
            // end (the server stops the backup after sending the main data directory).
            BackupEvent::Archive(info) => {
                if info.is_base() {
                    committed_before_end = committed.load(Ordering::Acquire);
                }
                archives.push(info.clone());
            }
            BackupEvent::Progress(p) => progress.push(*p),
            _ => {}
        }
        match format {
            Format::Plain => plain.handle(event).await,
            Format::Tar => tar.handle(event).await,
        }
        .unwrap_or_else(|e| panic!("{context}: sink: {e:?}"));
    }
    let end = backup.end().expect("end position");
    assert!(end.lsn > backup.start_position().lsn, "{context}");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    // Archives: the tablespace first, the main directory last, named with the suffix.
    let suffix = compression.map_or("", CompressionMethod::suffix);
    let names: Vec<&str> = archives.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [format!("{ts_oid}.tar{suffix}"), format!("base.tar{suffix}")],
        "{context}"
    );
    assert_eq!(archives[0].tablespace_oid, Some(ts_oid), "{context}");

    // Progress never goes back and ends at the total.
    assert!(
        progress.windows(2).all(|w| w[0].done <= w[1].done),
        "{context}: {progress:?}"
    );
    let last = progress.last().expect("progress reports");
    assert_eq!(last.total, Some(last.done), "{context}");
    assert!(last.done > 1 << 20, "{context}: {last:?}");

    if let Format::Tar = format {
        let mut files: Vec<String> = std::fs::read_dir(&tar_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut expected = vec![
            format!("{ts_oid}.tar{suffix}"),
            "backup_manifest".to_owned(),
            format!("base.tar{suffix}"),
        ];
        expected.sort();
        assert_eq!(files, expected, "{context}");
        // Like pg_basebackup's: readable by their owner only (they hold the whole database).
        for file in &files {
            let mode = std::fs::metadata(tar_dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{context}: {file}");
        }
        // The archives as stored match the manifest, member by member.
        let manifest = Manifest::read_from_dir(&tar_dir).unwrap();
        let report = verify_tar_dir(&tar_dir, &manifest).unwrap();
        assert!(report.is_ok(), "{context}: {report:?}");
        assert!(report.checked > 900, "{context}: {report:?}");
        extract_archive_file(&tar_dir.join(format!("base.tar{suffix}")), &data, &mappings).unwrap();
        assert!(data.join("standby.signal").is_file(), "{context}");
        let auto_conf = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        assert!(auto_conf.ends_with(&recovery), "{context}: {auto_conf}");
        extract_archive_file(
            &tar_dir.join(format!("{ts_oid}.tar{suffix}")),
            &restored_ts,
            &[],
        )
        .unwrap();
        std::fs::copy(
            tar_dir.join("backup_manifest"),
            data.join("backup_manifest"),
        )
        .unwrap();
    }
    assert_eq!(
        std::fs::read_link(data.join(format!("pg_tblspc/{ts_oid}"))).unwrap(),
        restored_ts,
        "{context}"
    );

    // Our verification agrees with the manifest the server wrote.
    let manifest = Manifest::read_from_dir(&data).unwrap_or_else(|e| panic!("{context}: {e}"));
    let report = verify_dir(&data, &manifest).unwrap();
    assert!(report.is_ok(), "{context}: {report:?}");
    assert!(report.checked > 900, "{context}: {report:?}");
    assert_eq!(manifest.wal_ranges[0].timeline, end.timeline, "{context}");
    check_wal(version, &data, &manifest, work.path(), &context);

    let restored = restore(version, &data, &context);
    let restored_admin = restored.admin("postgres").await;
    let standby: bool = restored_admin
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(standby, matches!(format, Format::Tar), "{context}: standby");
    for table in ["fixed", "in_ts"] {
        assert_eq!(
            digest(&restored_admin, table, None).await,
            digest(&admin, table, None).await,
            "{context}: table {table}"
        );
    }
    let (rows, _) = digest(&restored_admin, "writer", None).await;
    assert!(
        rows >= committed_before_end,
        "{context}: {rows} writer rows restored, {committed_before_end} were committed before the backup ended"
    );
    assert_eq!(
        digest(&restored_admin, "writer", None).await,
        digest(&admin, "writer", Some(rows)).await,
        "{context}: the restored writer rows are the source's first {rows}"
    );
    drop(work);
}

/// The WAL check: the backup's WAL covers its manifest's range (ours, and pg_verifybackup's
/// where one of the version exists); a copy of `pg_wal` with a flipped byte in the first
/// record's header (its `xl_prev`) and one without that segment are each reported, by both.
fn check_wal(version: u32, data: &Path, manifest: &Manifest, work: &Path, context: &str) {
    let pg_wal = data.join("pg_wal");
    let problems = verify_wal(&pg_wal, &manifest.wal_ranges).unwrap();
    assert!(problems.is_empty(), "{context}: {problems:?}");
    // pg_waldump (which pg_verifybackup runs) reads only its own version's WAL: Debian's 15
    // and the wheel's 18 exist here.
    let theirs = client_tool_of_version("pg_verifybackup", version);
    let verify_with = |wal: &Path| {
        theirs.as_ref().map(|tool| {
            Command::new(tool)
                .arg("--wal-directory")
                .arg(wal)
                .arg(data)
                .output()
                .unwrap()
        })
    };
    if let Some(output) = verify_with(&pg_wal) {
        assert!(
            output.status.success(),
            "{context}: pg_verifybackup: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let range = &manifest.wal_ranges[0];
    let start: Lsn = range.start_lsn.parse().unwrap();
    let segment = start
        .segment_file_name(range.timeline, WalSegmentSize::DEFAULT)
        .to_string();
    let damaged = work.join("damaged-wal");
    std::fs::create_dir(&damaged).unwrap();
    for entry in std::fs::read_dir(&pg_wal).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), damaged.join(entry.file_name())).unwrap();
        }
    }
    let victim = damaged.join(&segment);
    let mut bytes = std::fs::read(&victim).unwrap();
    let offset = usize::try_from(start.segment_offset(WalSegmentSize::DEFAULT)).unwrap() + 8;
    bytes[offset] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let problems = verify_wal(&damaged, &manifest.wal_ranges).unwrap();
    assert!(
        matches!(problems.as_slice(), [WalProblem::Unreadable { .. }]),
        "{context}: {problems:?}"
    );
    if let Some(output) = verify_with(&damaged) {
        assert!(
            !output.status.success(),
            "{context}: pg_verifybackup accepted the flipped byte"
        );
    }
    std::fs::remove_file(&victim).unwrap();
    let problems = verify_wal(&damaged, &manifest.wal_ranges).unwrap();
    assert_eq!(
        problems,
        [WalProblem::MissingSegment {
            timeline: range.timeline,
            file: segment
        }],
        "{context}"
    );
    if let Some(output) = verify_with(&damaged) {
        assert!(
            !output.status.success(),
            "{context}: pg_verifybackup accepted a missing segment"
        );
    }
    std::fs::remove_dir_all(&damaged).unwrap();
}

fn restore(version: u32, data: &Path, context: &str) -> TestServer {
    TestServer::start_on_restored(version, data)
        .unwrap_or_else(|e| panic!("{context}: restore: {e}"))
}

/// Whether the shared server of `version` can compress with `method`: gzip always; lz4 and
/// zstd when the build has them (`wal_compression` offers them). The npm builds of 16–18
/// have neither; Debian's 15 has both.
async fn server_supports(version: u32, method: CompressionMethod) -> bool {
    if method == CompressionMethod::Gzip {
        return true;
    }
    let server = pg_walstream_testkit::server(version).expect("a server of the run");
    let row = server
        .admin("postgres")
        .await
        .query_one(
            "SELECT $1 = ANY(enumvals) FROM pg_settings WHERE name = 'wal_compression'",
            &[&method.name()],
        )
        .await
        .expect("pg_settings");
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_backup_with_tablespace_restores_while_writing() {
    for version in versions() {
        backup_and_restore(version, Format::Plain, None, false).await;
    }
}

/// The extraction on a worker thread (`PlainSink::worker_thread`), which uncompressed and
/// server-zstd archives otherwise do not use (zstd: where the server build has it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_backup_extracted_on_a_worker_thread_restores() {
    for version in versions() {
        backup_and_restore(version, Format::Plain, None, true).await;
        if version >= 15 && server_supports(version, CompressionMethod::Zstd).await {
            backup_and_restore(version, Format::Plain, Some(CompressionMethod::Zstd), true).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_backup_extracted_restores() {
    for version in versions() {
        // 15+: server-side lz4 (gzip where the build has no lz4), stored as sent and
        // decompressed by the extraction.
        let compression = if version < 15 {
            None
        } else if server_supports(version, CompressionMethod::Lz4).await {
            Some(CompressionMethod::Lz4)
        } else {
            Some(CompressionMethod::Gzip)
        };
        backup_and_restore(version, Format::Tar, compression, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_compressed_plain_backups_restore() {
    for version in versions().into_iter().filter(|&v| v >= 15) {
        for method in [CompressionMethod::Gzip, CompressionMethod::Zstd] {
            if !server_supports(version, method).await {
                continue;
            }
            backup_and_restore(version, Format::Plain, Some(method), false).await;
        }
    }
}
