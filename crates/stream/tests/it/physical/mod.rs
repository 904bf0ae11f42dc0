//! The physical stream against real servers: byte identity with the server's own WAL files,
//! timeline switches, hot standby feedback, flush-gated slots, bad input.

mod feedback;
mod identity;
mod metrics;
mod timeline;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pg_walstream_codec::{Lsn, WalSegmentSize};
use pg_walstream_stream::wal_writer::{PARTIAL_SUFFIX, WalWriter, parse_segment_file_name};
use pg_walstream_stream::{
    PhysicalConfig, PhysicalConfigBuilder, PhysicalStream, ReceiveEnd, receive_wal,
};
use pg_walstream_testkit::{AuthUser, TestServer, unique_name};

use crate::support::backend;

/// 1 MiB segments, so a few MB of WAL cross several; WAL kept, so the server's files are
/// still there to compare with at the end.
pub(crate) fn private_server(version: u32) -> TestServer {
    TestServer::builder(version)
        .initdb_arg("--wal-segsize=1")
        .setting("wal_keep_size", "'512MB'")
        .start()
        .unwrap_or_else(|e| panic!("PG {version}: {e}"))
}

pub(crate) const SEGMENT: u64 = 1 << 20;

pub(crate) fn segment_size() -> WalSegmentSize {
    WalSegmentSize::new(1 << 20).unwrap()
}

/// A physical stream configuration for `server` (replication over TCP with SCRAM).
pub(crate) fn config(server: &TestServer) -> PhysicalConfigBuilder {
    PhysicalConfig::builder()
        .conninfo(&format!(
            "{} sslmode=disable",
            server.conninfo(AuthUser::Scram, "postgres")
        ))
        .backend(backend())
        .status_interval(Duration::from_millis(200))
}

/// Receives `stream` into `writer` until `end` (no stop signal), panicking with `what` on an
/// error.
pub(crate) async fn receive_until(
    stream: PhysicalStream,
    writer: &mut WalWriter,
    end: Lsn,
    what: &str,
) -> ReceiveEnd {
    receive_wal(stream, writer, Some(end), std::future::pending(), |_| {})
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A physical slot reserving WAL from now, and an admin connection.
pub(crate) async fn physical_slot(
    server: &TestServer,
    prefix: &str,
) -> (tokio_postgres::Client, String) {
    let admin = server.admin("postgres").await;
    let slot = unique_name(prefix);
    admin
        .execute(
            "SELECT pg_create_physical_replication_slot($1, true)",
            &[&slot],
        )
        .await
        .unwrap();
    (admin, slot)
}

pub(crate) async fn lsn(client: &tokio_postgres::Client, sql: &str) -> Lsn {
    let text: String = client.query_one(sql, &[]).await.unwrap().get(0);
    text.parse().unwrap()
}

/// Writes about `megabytes` MB of WAL in committed transactions.
pub(crate) async fn write_load(client: &tokio_postgres::Client, table: &str, megabytes: u32) {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, payload text)"
        ))
        .await
        .unwrap();
    for _ in 0..megabytes {
        // ~1 MB of WAL per statement (rows of ~1 KB, incompressible enough).
        client
            .batch_execute(&format!(
                "INSERT INTO {table} (payload) SELECT string_agg(md5(random()::text || g::text || i::text), '') \
                 FROM generate_series(1, 800) g, generate_series(1, 32) i GROUP BY g"
            ))
            .await
            .unwrap();
    }
}

/// Compares every segment file in `ours` with the server's `pg_wal`: complete ones byte for
/// byte, `.partial` ones as a prefix of the server's file (named `.partial` or not). Returns
/// how many complete segments were compared per timeline.
pub(crate) fn compare_with_server(
    version: u32,
    ours: &Path,
    server_wal: &Path,
) -> Vec<(u32, usize)> {
    let mut counts: Vec<(u32, usize)> = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(ours)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(file) = parse_segment_file_name(&name, segment_size()) else {
            continue;
        };
        let mine = std::fs::read(&path).unwrap();
        let base = name.trim_end_matches(PARTIAL_SUFFIX);
        let theirs = std::fs::read(server_wal.join(base))
            .or_else(|_| std::fs::read(server_wal.join(format!("{base}{PARTIAL_SUFFIX}"))))
            .unwrap_or_else(|e| panic!("PG {version}: server file {base}: {e}"));
        if file.partial {
            assert!(
                mine.len() as u64 <= SEGMENT && theirs.starts_with(&mine),
                "PG {version}: {name} ({} bytes) is not a prefix of the server's file",
                mine.len()
            );
        } else {
            assert_eq!(mine.len() as u64, SEGMENT, "PG {version}: {name} size");
            assert!(
                mine == theirs,
                "PG {version}: {name} differs from the server's"
            );
            match counts.iter_mut().find(|(t, _)| *t == file.timeline) {
                Some((_, n)) => *n += 1,
                None => counts.push((file.timeline, 1)),
            }
        }
    }
    counts
}
