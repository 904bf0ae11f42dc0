//! Streaming from a standby that is promoted while we stream: the stream follows the switch to
//! timeline 2, the history file matches the server's, and every completed segment of both
//! timelines equals the server's. Starting exactly at the switch point of the old timeline
//! goes straight on to the new one; starting past it is the server's error.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_walstream_codec::Lsn;
use pg_walstream_stream::wal_writer::{WalWriter, WalWriterOptions};
use pg_walstream_stream::{
    PhysicalEvent, PhysicalStart, PhysicalStream, ReceiveEnd, ReceiveProgress, receive_wal,
};
use pg_walstream_testkit::{TestServer, servers, unique_name};
use tokio::sync::Notify;

use super::{
    compare_with_server, config, lsn, private_server, receive_until, segment_size, write_load,
};

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
        let outcome = receive_until(
            stream,
            &mut writer,
            target,
            &format!("PG {version}: old timeline"),
        )
        .await;
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

/// The switch point of timeline 1 in the promoted server's `00000002.history`.
fn switchpoint_of_timeline_1(history: &str) -> Lsn {
    history
        .lines()
        .find_map(|line| {
            let mut fields = line.split('\t');
            (fields.next()? == "1").then(|| fields.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no timeline 1 in {history:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_exactly_at_the_switch_point_goes_on_to_the_next_timeline() {
    for shared in servers() {
        let version = shared.version();
        let primary = private_server(version);
        let admin = primary.admin("postgres").await;
        write_load(&admin, "before", 1).await;
        let standby = TestServer::start_standby_of(&primary).unwrap();
        write_load(&admin, "before", 1).await;
        standby
            .wait_replayed(
                &lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text")
                    .await
                    .to_string(),
            )
            .await;
        standby.promote().unwrap();
        let promoted = standby.admin("postgres").await;
        write_load(&promoted, "after", 2).await;
        let end = lsn(&promoted, "SELECT pg_current_wal_flush_lsn()::text").await;
        let server_wal = standby.data_dir().join("pg_wal");
        let history = std::fs::read_to_string(server_wal.join("00000002.history")).unwrap();
        let switchpoint = switchpoint_of_timeline_1(&history);
        // A slot lets the stream start at a position that is not a segment start.
        let slot = unique_name("at_switch");
        promoted
            .execute("SELECT pg_create_physical_replication_slot($1)", &[&slot])
            .await
            .unwrap();
        let at = |lsn: Lsn| PhysicalStart::At {
            lsn,
            timeline: Some(1),
        };

        // The server answers START_REPLICATION with the next timeline, without COPY: the
        // stream reports the switch at once and streams timeline 2 from the segment start.
        let mut stream = PhysicalStream::connect(
            config(&standby)
                .slot(&slot)
                .start(at(switchpoint))
                .build()
                .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("PG {version}: start at the switch point: {e}"));
        let resume_at = switchpoint.segment_start(segment_size());
        match stream.next_event().await {
            Some(Ok(PhysicalEvent::TimelineSwitch(switch))) => {
                assert_eq!(
                    (
                        switch.previous_timeline,
                        switch.ended_at,
                        switch.timeline,
                        switch.switchpoint,
                        switch.resume_at
                    ),
                    (1, switchpoint, 2, switchpoint, resume_at),
                    "PG {version}"
                );
                assert_eq!(switch.history.content, history, "PG {version}: history");
            }
            other => panic!("PG {version}: a timeline switch first, got {other:?}"),
        }
        match stream.next_event().await {
            Some(Ok(PhysicalEvent::Wal(wal))) => {
                assert_eq!((wal.timeline, wal.start()), (2, resume_at), "PG {version}");
            }
            other => panic!("PG {version}: WAL of timeline 2, got {other:?}"),
        }
        stream.stop().await.unwrap();

        // Into a writer: only timeline 2's files and its history, byte-identical.
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::new(dir.path(), WalWriterOptions::new(segment_size())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            // The walsender of the stopped stream may still hold the slot for a moment.
            match PhysicalStream::connect(
                config(&standby)
                    .slot(&slot)
                    .start(at(switchpoint))
                    .build()
                    .unwrap(),
            )
            .await
            {
                Ok(stream) => break stream,
                Err(error) if error.is_transient() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("PG {version}: again: {error}"),
            }
        };
        let outcome = receive_until(
            stream,
            &mut writer,
            end,
            &format!("PG {version}: receive from the switch point"),
        )
        .await;
        assert_eq!(outcome, ReceiveEnd::EndPos, "PG {version}");
        let counts = compare_with_server(version, dir.path(), &server_wal);
        assert!(
            counts.iter().all(|(tli, _)| *tli == 2) && !counts.is_empty(),
            "PG {version}: complete segments of timeline 2 only: {counts:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("00000002.history")).unwrap(),
            history,
            "PG {version}: history file"
        );

        // Past the switch point, timeline 1 is not in the server's history: a clear error.
        let past = PhysicalStream::connect(
            config(&standby)
                .slot(&slot)
                .start(at(switchpoint + 8))
                .build()
                .unwrap(),
        )
        .await;
        let error = past.map(|_| ()).expect_err("a start past the switch point");
        let chain = format!("{error:?}");
        assert!(
            chain.contains("history"),
            "PG {version}: the server's reason: {chain}"
        );
    }
}
