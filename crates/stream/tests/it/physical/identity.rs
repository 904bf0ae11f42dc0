//! Completed segments equal the server's files byte for byte; the `.partial` is a prefix.

use pg_walstream_stream::wal_writer::{WalWriter, WalWriterOptions};
use pg_walstream_stream::{Error, PhysicalEvent, PhysicalStart, PhysicalStream, ReceiveEnd};
use pg_walstream_testkit::servers;

use super::{
    SEGMENT, compare_with_server, config, lsn, private_server, receive_until, segment_size,
    write_load,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_segments_are_byte_identical_to_the_servers() {
    for shared in servers() {
        let version = shared.version();
        let server = private_server(version);
        let admin = server.admin("postgres").await;
        admin
            .batch_execute("SELECT pg_create_physical_replication_slot('archiver', true)")
            .await
            .unwrap();
        let start = lsn(&admin, "SELECT restart_lsn::text FROM pg_replication_slots").await;
        write_load(&admin, "load", 6).await;
        let end = lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text").await;
        assert!(
            end.0 - start.0 >= 5 * SEGMENT,
            "PG {version}: at least 5 segments of WAL"
        );

        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::new(dir.path(), WalWriterOptions::new(segment_size())).unwrap();
        // PostgreSQL 14 has no READ_REPLICATION_SLOT: say where the slot is.
        let from = if version >= 15 {
            PhysicalStart::Auto
        } else {
            PhysicalStart::At {
                lsn: start.segment_start(segment_size()),
                timeline: None,
            }
        };
        let stream = PhysicalStream::connect(
            config(&server)
                .slot("archiver")
                .start(from)
                .build()
                .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("PG {version}: start: {e}"));
        assert_eq!(stream.info().segment_size, segment_size(), "PG {version}");
        if version >= 15 {
            assert_eq!(
                stream.info().start_lsn,
                start.segment_start(segment_size()),
                "PG {version}: from the slot"
            );
        }
        let feedback = stream.feedback().clone();
        let outcome =
            receive_until(stream, &mut writer, end, &format!("PG {version}: receive")).await;
        assert_eq!(outcome, ReceiveEnd::EndPos);
        assert!(writer.written_lsn() >= end, "PG {version}");
        assert_eq!(
            feedback.sent_flush_lsn(),
            writer.flushed_lsn(),
            "PG {version}: final status update"
        );
        let counts = compare_with_server(version, dir.path(), &server.data_dir().join("pg_wal"));
        let complete: usize = counts.iter().map(|(_, n)| n).sum();
        assert!(
            complete >= 5,
            "PG {version}: {complete} complete segments compared"
        );
        let restart = lsn(&admin, "SELECT restart_lsn::text FROM pg_replication_slots").await;
        assert!(
            restart <= writer.flushed_lsn(),
            "PG {version}: slot at {restart}, flushed {}",
            writer.flushed_lsn()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_starts_are_refused_before_anything_is_streamed() {
    for server in servers() {
        let version = server.version();
        let admin = server.admin("postgres").await;
        let current = lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text").await;
        let unaligned = PhysicalStart::At {
            lsn: current.segment_start(pg_walstream_codec::WalSegmentSize::DEFAULT) + 8,
            timeline: None,
        };
        let error = PhysicalStream::connect(config(server).start(unaligned).build().unwrap())
            .await
            .map(drop)
            .unwrap_err();
        assert!(matches!(error, Error::Config(_)), "PG {version}: {error}");
        assert!(
            format!("{error:?}").contains("segment boundary"),
            "PG {version}: {error:?}"
        );

        let logical = pg_walstream_testkit::unique_name("logical");
        let db = server.create_database("phys").await;
        let client = server.admin(&db).await;
        client
            .batch_execute(&format!(
                "SELECT pg_create_logical_replication_slot('{logical}', 'pgoutput')"
            ))
            .await
            .unwrap();
        let error = PhysicalStream::connect(config(server).slot(&logical).build().unwrap())
            .await
            .map(drop)
            .unwrap_err();
        let text = pg_walstream_stream_error_chain(&error);
        assert!(
            text.contains("logical") || text.contains("physical"),
            "PG {version}: {text}"
        );
        client
            .batch_execute(&format!("SELECT pg_drop_replication_slot('{logical}')"))
            .await
            .unwrap();

        let error = PhysicalStream::connect(config(server).slot("no_such_slot").build().unwrap())
            .await
            .map(drop)
            .unwrap_err();
        let text = pg_walstream_stream_error_chain(&error);
        assert!(
            text.contains("no_such_slot") || text.contains("does not exist"),
            "PG {version}: {text}"
        );
    }
}

fn pg_walstream_stream_error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At a fast shutdown the walsender ends the COPY with CommandComplete and no CopyDone
/// (walsender.c, WalSndDone); the physical driver then reads the command's results, which on
/// the libpq backend failed with "no COPY in progress" (a permanent error) instead of ending
/// the stream as `ServerEnded` (transient: a receiver reconnects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutdown_ends_the_stream_as_a_transient_failure() {
    let version = servers()[0].version();
    let server = private_server(version);
    let mut stream = PhysicalStream::connect(config(&server).build().unwrap())
        .await
        .unwrap_or_else(|e| panic!("PG {version}: start: {e}"));
    // The walsender exits at shutdown only once the receiver has confirmed everything it
    // sent (walsender.c, WalSndDone): report each message as flushed, as a receiver does.
    let receiver = tokio::spawn(async move {
        loop {
            match stream.next_event().await {
                Some(Ok(PhysicalEvent::Wal(wal))) => {
                    stream.feedback().written(wal.end);
                    stream.feedback().flushed(wal.end);
                    stream.feedback().request_status_update();
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break Some(error),
                None => break None,
            }
        }
    });
    let restart = tokio::task::spawn_blocking(move || {
        server.restart().unwrap();
        server
    });
    let error = receiver
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("PG {version}: the stream ended without an error"));
    assert!(error.is_transient(), "PG {version}: {error:?}");
    drop(restart.await.unwrap());
}
