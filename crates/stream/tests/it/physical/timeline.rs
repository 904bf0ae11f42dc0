//! Streaming from a standby that is promoted while we stream: the stream follows the switch to
//! timeline 2, the history file matches the server's, and every completed segment of both
//! timelines equals the server's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_walstream_stream::wal_writer::{WalWriter, WalWriterOptions};
use pg_walstream_stream::{
    PhysicalStart, PhysicalStream, ReceiveEnd, ReceiveProgress, receive_wal,
};
use pg_walstream_testkit::{TestServer, servers};
use tokio::sync::Notify;

use super::{compare_with_server, config, lsn, private_server, segment_size, write_load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_follows_a_promotion_to_timeline_2() {
    for shared in servers() {
        let version = shared.version();
        let primary = private_server(version);
        let admin = primary.admin("postgres").await;
        write_load(&admin, "before", 1).await;
        let standby = TestServer::start_standby_of(&primary).unwrap();
        // The standby holds WAL from here on; start there so timeline 1 has complete segments.
        let start = lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text").await;
        write_load(&admin, "before", 2).await;
        standby
            .wait_replayed(
                &lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text")
                    .await
                    .to_string(),
            )
            .await;

        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::new(dir.path(), WalWriterOptions::new(segment_size())).unwrap();
        let from = PhysicalStart::At {
            lsn: start.segment_start(segment_size()),
            timeline: Some(1),
        };
        let stream = PhysicalStream::connect(config(&standby).start(from).build().unwrap())
            .await
            .unwrap_or_else(|e| panic!("PG {version}: start on the standby: {e}"));
        assert_eq!(stream.info().timeline, 1, "PG {version}");
        let progress: Arc<Mutex<Vec<ReceiveProgress>>> = Arc::default();
        let stop = Arc::new(Notify::new());
        let task = {
            let progress = progress.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let outcome = receive_wal(stream, &mut writer, None, stop.notified(), |p| {
                    progress.lock().unwrap().push(*p);
                })
                .await;
                (outcome, writer)
            })
        };

        standby.promote().unwrap();
        let promoted = standby.admin("postgres").await;
        write_load(&promoted, "after", 3).await;
        let target = lsn(&promoted, "SELECT pg_current_wal_flush_lsn()::text").await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reached = progress
                .lock()
                .unwrap()
                .last()
                .is_some_and(|p| p.timeline == 2 && p.written >= target);
            if reached {
                break;
            }
            assert!(
                !task.is_finished(),
                "PG {version}: the receiver ended early"
            );
            assert!(
                Instant::now() < deadline,
                "PG {version}: timeline 2 up to {target} not received"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.notify_one();
        let (outcome, writer) = task.await.unwrap();
        assert_eq!(
            outcome.unwrap_or_else(|e| panic!("PG {version}: {e}")),
            ReceiveEnd::Stopped
        );
        assert!(writer.written_lsn() >= target, "PG {version}");

        let switches: Vec<u32> = progress
            .lock()
            .unwrap()
            .iter()
            .filter_map(|p| p.switched_to)
            .collect();
        assert_eq!(switches, [2], "PG {version}: one switch, to timeline 2");
        let server_wal = standby.data_dir().join("pg_wal");
        assert_eq!(
            std::fs::read(dir.path().join("00000002.history")).unwrap(),
            std::fs::read(server_wal.join("00000002.history")).unwrap(),
            "PG {version}: history file"
        );
        let counts = compare_with_server(version, dir.path(), &server_wal);
        let on = |tli: u32| {
            counts
                .iter()
                .find(|(t, _)| *t == tli)
                .map_or(0, |(_, n)| *n)
        };
        assert!(
            on(2) >= 2,
            "PG {version}: complete segments of timeline 2: {counts:?}"
        );
        // Timeline 1 ends in a .partial (the switch point is mid-segment) after complete ones.
        assert!(
            on(1) >= 1,
            "PG {version}: complete segments of timeline 1: {counts:?}"
        );
        let partial_1 = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .any(|n| n.starts_with("00000001") && n.ends_with(".partial"));
        assert!(
            partial_1,
            "PG {version}: timeline 1's last segment is kept as .partial"
        );

        // Starting again on timeline 1, which the server has left: it streams timeline 1 up to
        // the switch point, then the stream follows to timeline 2 — the same files result.
        let again = tempfile::tempdir().unwrap();
        let mut writer =
            WalWriter::new(again.path(), WalWriterOptions::new(segment_size())).unwrap();
        let stream = PhysicalStream::connect(config(&standby).start(from).build().unwrap())
            .await
            .unwrap_or_else(|e| panic!("PG {version}: start on the old timeline: {e}"));
        let outcome = receive_wal(
            stream,
            &mut writer,
            Some(target),
            std::future::pending(),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("PG {version}: old timeline: {e}"));
        assert_eq!(outcome, ReceiveEnd::EndPos, "PG {version}");
        let recount = compare_with_server(version, again.path(), &server_wal);
        // Timeline 1 is closed: exactly the same segments; timeline 2 up to `target`.
        let again_on = |tli: u32| {
            recount
                .iter()
                .find(|(t, _)| *t == tli)
                .map_or(0, |(_, n)| *n)
        };
        assert_eq!(
            again_on(1),
            on(1),
            "PG {version}: timeline 1 again: {recount:?}"
        );
        assert!(
            again_on(2) >= 2,
            "PG {version}: timeline 2 again: {recount:?}"
        );
        assert_eq!(
            std::fs::read(again.path().join("00000002.history")).unwrap(),
            std::fs::read(server_wal.join("00000002.history")).unwrap(),
            "PG {version}: history file"
        );
    }
}
