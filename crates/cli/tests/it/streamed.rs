//! Streamed (in-progress) and prepared transactions: `recv --streaming on|parallel
//! --two-phase` and
//! `decode` of the psql capture of the same changes print the same events; `jsonl-tx` puts a
//! streamed transaction on one line.

use pg_walstream_testkit::{servers, unique_name};
use serde_json::Value;

use crate::support::{Fixture, args, max_proto, ok_lines, run, stderr};

const ROWS: usize = 2000;

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["kind"] == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_and_prepared_transactions_decode_alike_on_every_version() {
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let fx = Fixture::new(server, "cli_streamed").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let proto = max_proto(v).to_string();
        let two_phase = v >= 15;
        // `on` where parallel apply does not exist, `parallel` (protocol 4) where it does.
        let streaming = if v >= 16 { "parallel" } else { "on" };
        let slot = unique_name("cli_s");
        let mut create = args(&["slot", "create", "-d", &ci, &slot]);
        if two_phase {
            create.push("--two-phase".to_owned());
        }
        ok_lines(v, "slot create", &run(create).await);
        // 2000 rows of ~100 bytes exceed logical_decoding_work_mem (64kB): streamed.
        fx.admin
            .batch_execute(&format!(
                "INSERT INTO t SELECT i, repeat('x', 100), NULL FROM generate_series(1, {ROWS}) i"
            ))
            .await
            .expect("big transaction");
        if two_phase {
            for statement in [
                "BEGIN; INSERT INTO t VALUES (-1, 'prepared', NULL); PREPARE TRANSACTION 'cli_gid'",
                "COMMIT PREPARED 'cli_gid'",
            ] {
                fx.admin.batch_execute(statement).await.expect(statement);
            }
        }
        let end = fx.current_lsn().await;
        let options = if two_phase {
            ", 'two_phase', 'true'"
        } else {
            ""
        };
        let csv_path = dir.path().join(format!("streamed-{v}.csv"));
        let copy = format!(
            "\\copy (SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes('{slot}', \
             NULL, NULL, 'proto_version', '{proto}', 'publication_names', 'p', 'streaming', \
             '{streaming}'{options})) TO '{}' CSV",
            csv_path.display()
        );
        let captured = fx.psql(args(&["-c", &copy])).await;
        assert!(
            captured.status.success(),
            "PostgreSQL {v}: {}",
            stderr(&captured)
        );

        let mut recv = args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot,
            "--publication",
            "p",
            "--proto",
            &proto,
            "--streaming",
            "on",
            "--endpos",
            &end,
            "--drop-slot",
        ]);
        if two_phase {
            recv.push("--two-phase".to_owned());
        }
        let events = ok_lines(v, "recv --streaming", &run(recv).await);
        assert!(
            count(&events, "stream_start") >= 1,
            "PostgreSQL {v}: not streamed"
        );
        assert_eq!(
            count(&events, "stream_start"),
            count(&events, "stream_stop"),
            "PostgreSQL {v}"
        );
        assert_eq!(count(&events, "stream_commit"), 1, "PostgreSQL {v}");
        let streamed_inserts = events
            .iter()
            .filter(|e| e["kind"] == "insert" && e.get("xid").is_some())
            .count();
        assert_eq!(
            streamed_inserts, ROWS,
            "PostgreSQL {v}: every row carries its xid"
        );
        if two_phase {
            for kind in ["begin_prepare", "prepare", "commit_prepared"] {
                assert_eq!(count(&events, kind), 1, "PostgreSQL {v}: {kind}");
            }
            let prepare = events.iter().find(|e| e["kind"] == "prepare").unwrap();
            assert_eq!(prepare["gid"], "cli_gid", "PostgreSQL {v}");
        }

        let csv_arg = csv_path.to_string_lossy().into_owned();
        let decoded = run(args(&["decode", "--proto", &proto, &csv_arg])).await;
        let decoded = ok_lines(v, "decode", &decoded);
        assert_eq!(decoded.len(), events.len(), "PostgreSQL {v}");
        for (index, (d, e)) in decoded.iter().zip(&events).enumerate() {
            assert_eq!(d, e, "PostgreSQL {v}: event {index}");
        }

        let grouped = run(args(&[
            "decode", "--format", "jsonl-tx", "--proto", &proto, &csv_arg,
        ]))
        .await;
        let grouped = ok_lines(v, "decode jsonl-tx", &grouped);
        let streamed = grouped
            .iter()
            .find(|g| g["streamed"] == true)
            .unwrap_or_else(|| panic!("PostgreSQL {v}: no streamed transaction: {grouped:?}"));
        let inserts = streamed["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "insert")
            .count();
        assert_eq!(inserts, ROWS, "PostgreSQL {v}");
        assert_eq!(
            grouped.len(),
            if two_phase { 3 } else { 1 },
            "PostgreSQL {v}"
        );
    }
}
