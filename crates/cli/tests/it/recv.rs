//! `recv`, `decode` and `slot` against every server of the run: the workload's events exactly,
//! text and binary, the same JSON from psql captures and raw captures, acknowledgement and
//! `--drop-slot`.

use pg_walstream_testkit::{servers, unique_name};
use serde_json::Value;

use crate::support::{
    Fixture, WORKLOAD_KINDS, args, column, json_lines, kinds, max_proto, ok_lines, run, stderr,
};

fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("X/Y");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// Equal event lists, or a message naming the first difference.
fn assert_same(v: u32, what: &str, got: &[Value], expected: &[Value]) {
    for (index, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g, e, "PostgreSQL {v}: {what}: event {index} differs");
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "PostgreSQL {v}: {what}: {} events instead of {}; extra: {:?}",
        got.len(),
        expected.len(),
        if got.len() > expected.len() {
            &got[expected.len()..]
        } else {
            &expected[got.len()..]
        }
    );
}

fn tuple_of<'a>(events: &'a [Value], kind: &str, key: &str) -> &'a Value {
    &events
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event"))[key]
}

/// The workload's values, text mode.
fn check_text_values(v: u32, events: &[Value]) {
    let insert = tuple_of(events, "insert", "new");
    assert_eq!(column(insert, "id")["text"], "1", "PostgreSQL {v}");
    assert_eq!(column(insert, "id")["type"], "int4", "PostgreSQL {v}");
    assert_eq!(column(insert, "v")["text"], "a", "PostgreSQL {v}");
    assert_eq!(
        column(insert, "big")["text"].as_str().map(str::len),
        Some(9600),
        "PostgreSQL {v}"
    );
    let update = tuple_of(events, "update", "new");
    assert_eq!(column(update, "v")["text"], "b", "PostgreSQL {v}");
    assert_eq!(
        column(update, "big")["unchanged_toast"],
        true,
        "PostgreSQL {v}: unchanged TOAST is not null: {update}"
    );
    assert!(
        column(update, "big").get("null").is_none(),
        "PostgreSQL {v}"
    );
    let second = events
        .iter()
        .filter(|e| e["kind"] == "insert")
        .nth(1)
        .unwrap();
    assert_eq!(
        column(&second["new"], "v")["text"],
        "it's",
        "PostgreSQL {v}"
    );
    assert_eq!(
        column(&second["new"], "big")["null"],
        true,
        "PostgreSQL {v}"
    );
    let delete = tuple_of(events, "delete", "old_key");
    assert_eq!(column(delete, "id")["text"], "2", "PostgreSQL {v}");
    // The server sends `v` and `big` of the key as NULL placeholders: not printed.
    assert_eq!(
        delete.as_array().map(Vec::len),
        Some(1),
        "PostgreSQL {v}: old_key holds the key columns only: {delete}"
    );
    let truncate = events.iter().find(|e| e["kind"] == "truncate").unwrap();
    assert_eq!(truncate["relations"][0]["table"], "t", "PostgreSQL {v}");
    let message = events.last().unwrap();
    assert_eq!(
        (
            &message["prefix"],
            &message["content"],
            &message["transactional"]
        ),
        (
            &Value::from("cli"),
            &Value::from("done"),
            &Value::from(false)
        ),
        "PostgreSQL {v}"
    );
}

fn check_binary_values(v: u32, events: &[Value]) {
    let insert = tuple_of(events, "insert", "new");
    assert_eq!(
        column(insert, "id")["binary_hex"],
        "00000001",
        "PostgreSQL {v}"
    );
    // text's binary form is its bytes: 'a'.
    assert_eq!(column(insert, "v")["binary_hex"], "61", "PostgreSQL {v}");
    let update = tuple_of(events, "update", "new");
    assert_eq!(
        column(update, "big")["unchanged_toast"],
        true,
        "PostgreSQL {v}"
    );
    let delete = tuple_of(events, "delete", "old_key");
    assert_eq!(
        column(delete, "id")["binary_hex"],
        "00000002",
        "PostgreSQL {v}"
    );
    assert_eq!(delete.as_array().map(Vec::len), Some(1), "PostgreSQL {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_decode_and_slots_agree_on_every_version() {
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let fx = Fixture::new(server, "cli_recv").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let proto = max_proto(v).to_string();
        let (slot_text, slot_binary, slot_raw, slot_libpq) = (
            unique_name("cli_t"),
            unique_name("cli_b"),
            unique_name("cli_r"),
            unique_name("cli_l"),
        );

        // --create-slot with an --endpos already reached: creates the slot, prints nothing.
        let before = fx.current_lsn().await;
        let created = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot_text,
            "--publication",
            "p",
            "--create-slot",
            "--messages",
            "--endpos",
            &before,
        ]))
        .await;
        assert!(
            ok_lines(v, "recv --create-slot", &created).is_empty(),
            "PostgreSQL {v}"
        );
        assert!(
            fx.confirmed_flush(&slot_text).await.is_some(),
            "PostgreSQL {v}"
        );
        for slot in [&slot_binary, &slot_raw, &slot_libpq] {
            let out = run(args(&["slot", "create", "-d", &ci, slot])).await;
            let lines = ok_lines(v, "slot create", &out);
            assert_eq!(lines[0]["created"], true, "PostgreSQL {v}: {lines:?}");
        }
        let again = run(args(&[
            "slot",
            "create",
            "-d",
            &ci,
            &slot_raw,
            "--if-not-exists",
        ]))
        .await;
        assert_eq!(
            ok_lines(v, "slot create again", &again)[0]["created"],
            false
        );

        fx.workload().await;
        let end = fx.current_lsn().await;

        // psql captures: tab-separated (text mode) and CSV via \copy (binary mode).
        let peek = |slot: &str, binary: bool| {
            format!(
                "SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes('{slot}', NULL, \
                 NULL, 'proto_version', '{proto}', 'publication_names', 'p', 'messages', 'true', \
                 'binary', '{binary}')"
            )
        };
        let tsv = fx
            .psql(args(&["-At", "-F", "\t", "-c", &peek(&slot_text, false)]))
            .await;
        assert!(
            tsv.status.success(),
            "PostgreSQL {v}: psql: {}",
            stderr(&tsv)
        );
        let tsv_path = dir.path().join(format!("peek-{v}.tsv"));
        std::fs::write(&tsv_path, &tsv.stdout).unwrap();
        let csv_path = dir.path().join(format!("peek-{v}.csv"));
        let copy = format!(
            "\\copy ({}) TO '{}' CSV HEADER",
            peek(&slot_binary, true),
            csv_path.display()
        );
        let csv = fx.psql(args(&["-c", &copy])).await;
        assert!(
            csv.status.success(),
            "PostgreSQL {v}: psql: {}",
            stderr(&csv)
        );

        // recv, text mode: exactly the workload, acknowledged.
        let text_out = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot_text,
            "--publication",
            "p",
            "--proto",
            &proto,
            "--messages",
            "--endpos",
            &end,
        ]))
        .await;
        let text_events = ok_lines(v, "recv", &text_out);
        assert_eq!(
            kinds(&text_events),
            WORKLOAD_KINDS,
            "PostgreSQL {v}: {text_events:?}"
        );
        assert_eq!(text_events[1]["kind"], "relation", "PostgreSQL {v}");
        check_text_values(v, &text_events);
        let last_commit = text_events
            .iter()
            .rev()
            .find(|e| e["kind"] == "commit")
            .unwrap();
        let confirmed = fx.confirmed_flush(&slot_text).await.unwrap();
        assert!(
            lsn(&confirmed) >= lsn(last_commit["end_lsn"].as_str().unwrap()),
            "PostgreSQL {v}: confirmed_flush_lsn {confirmed} is before the last commit {}",
            last_commit["end_lsn"]
        );

        // recv, binary mode, then --drop-slot.
        let binary_out = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot_binary,
            "--publication",
            "p",
            "--proto",
            &proto,
            "--messages",
            "--binary",
            "--endpos",
            &end,
            "--drop-slot",
        ]))
        .await;
        let binary_events = ok_lines(v, "recv --binary", &binary_out);
        assert_eq!(kinds(&binary_events), WORKLOAD_KINDS, "PostgreSQL {v}");
        check_binary_values(v, &binary_events);
        assert_eq!(
            fx.confirmed_flush(&slot_binary).await,
            None,
            "PostgreSQL {v}: --drop-slot removes the slot"
        );

        // decode of the psql captures prints what recv printed.
        let tsv_arg = tsv_path.to_string_lossy().into_owned();
        let decoded = run(args(&["decode", "--proto", &proto, &tsv_arg])).await;
        let decoded = ok_lines(v, "decode tsv", &decoded);
        assert_same(
            v,
            "decode of the psql capture (text mode)",
            &decoded,
            &text_events,
        );
        let csv_arg = csv_path.to_string_lossy().into_owned();
        let decoded = run(args(&["decode", "--proto", &proto, &csv_arg])).await;
        let decoded = ok_lines(v, "decode csv", &decoded);
        assert_same(
            v,
            "decode of the psql capture (binary mode)",
            &decoded,
            &binary_events,
        );

        // recv --format raw to a file; decode reads it back (protocol from the header).
        let raw_path = dir.path().join(format!("capture-{v}.raw"));
        let raw_arg = raw_path.to_string_lossy().into_owned();
        let raw = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot_raw,
            "--publication",
            "p",
            "--proto",
            &proto,
            "--messages",
            "--endpos",
            &end,
            "--format",
            "raw",
            "-o",
            &raw_arg,
        ]))
        .await;
        assert!(ok_lines(v, "recv --format raw", &raw).is_empty());
        let decoded = run(args(&["decode", &raw_arg])).await;
        assert_eq!(
            ok_lines(v, "decode raw", &decoded),
            text_events,
            "PostgreSQL {v}"
        );
        let wrong = run(args(&["decode", "--proto", "1", &raw_arg])).await;
        assert_eq!(
            wrong.status.code(),
            Some(2),
            "PostgreSQL {v}: {}",
            stderr(&wrong)
        );

        // Grouped and text output of the same capture.
        let grouped = run(args(&["decode", "--format", "jsonl-tx", &raw_arg])).await;
        let grouped = ok_lines(v, "decode jsonl-tx", &grouped);
        let grouped_kinds: Vec<&str> = grouped
            .iter()
            .map(|g| g["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            grouped_kinds,
            [
                "transaction",
                "transaction",
                "transaction",
                "transaction",
                "transaction",
                "message"
            ],
            "PostgreSQL {v}"
        );
        assert_eq!(grouped[1]["events"][1]["kind"], "update", "PostgreSQL {v}");
        let text = run(args(&["decode", "--format", "text", &raw_arg])).await;
        assert!(text.status.success(), "PostgreSQL {v}: {}", stderr(&text));
        let text = String::from_utf8(text.stdout).unwrap();
        assert_eq!(text.lines().count(), text_events.len(), "PostgreSQL {v}");
        assert!(
            text.contains("big[text]=<unchanged toast>") && text.contains("v[text]='it''s'"),
            "PostgreSQL {v}: {text}"
        );

        // The libpq backend prints the same, or (a build without the `libpq` feature) refuses.
        let libpq = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot_libpq,
            "--publication",
            "p",
            "--proto",
            &proto,
            "--messages",
            "--endpos",
            &end,
            "--backend",
            "libpq",
            "--drop-slot",
        ]))
        .await;
        if libpq.status.code() == Some(2) {
            assert!(
                stderr(&libpq).contains("built without the `libpq` feature"),
                "PostgreSQL {v}: {}",
                stderr(&libpq)
            );
        } else {
            let events = ok_lines(v, "recv --backend libpq", &libpq);
            assert_same(v, "recv --backend libpq", &events, &text_events);
            assert_eq!(
                fx.confirmed_flush(&slot_libpq).await,
                None,
                "PostgreSQL {v}"
            );
        }

        // slot list / show report health.
        let listed = run(args(&["slot", "list", "-d", &ci, "--format", "json"])).await;
        let listed = ok_lines(v, "slot list", &listed);
        let mine = listed
            .iter()
            .find(|s| s["slot_name"] == slot_text.as_str())
            .unwrap_or_else(|| panic!("PostgreSQL {v}: {slot_text} not listed: {listed:?}"));
        assert_eq!(
            mine["confirmed_flush_lsn"],
            confirmed.as_str(),
            "PostgreSQL {v}"
        );
        assert_eq!(mine["usable"], true, "PostgreSQL {v}");
        let shown = run(args(&[
            "slot", "show", "-d", &ci, &slot_text, "--format", "json",
        ]))
        .await;
        assert_eq!(
            ok_lines(v, "slot show", &shown),
            vec![mine.clone()],
            "PostgreSQL {v}"
        );
        for slot in [&slot_text, &slot_raw] {
            let dropped = run(args(&["slot", "drop", "-d", &ci, slot])).await;
            assert_eq!(ok_lines(v, "slot drop", &dropped)[0]["dropped"], true);
            assert_eq!(fx.confirmed_flush(slot).await, None, "PostgreSQL {v}");
        }
        let missing = run(args(&["slot", "show", "-d", &ci, &slot_text])).await;
        assert_eq!(missing.status.code(), Some(1), "PostgreSQL {v}");
        assert!(json_lines(&missing).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_skips_transactions_before_it_on_every_version() {
    for server in servers() {
        let fx = Fixture::new(server, "cli_start").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let slot = unique_name("cli_start");
        ok_lines(
            v,
            "slot create",
            &run(args(&["slot", "create", "-d", &ci, &slot])).await,
        );
        fx.admin
            .batch_execute("INSERT INTO t VALUES (1, 'before', NULL)")
            .await
            .unwrap();
        let start = fx.current_lsn().await;
        fx.admin
            .batch_execute("INSERT INTO t VALUES (2, 'after', NULL)")
            .await
            .unwrap();
        let end = fx.current_lsn().await;
        let out = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot,
            "--publication",
            "p",
            "--start",
            &start,
            "--endpos",
            &end,
            "--status-interval",
            "0.5",
            "--drop-slot",
        ]))
        .await;
        let events = ok_lines(v, "recv --start", &out);
        let inserted: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "insert")
            .map(|e| &column(&e["new"], "v")["text"])
            .collect();
        assert_eq!(
            inserted,
            [&Value::from("after")],
            "PostgreSQL {v}: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_files_are_appended_and_raw_captures_continue_on_every_version() {
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let fx = Fixture::new(server, "cli_append").await;
        let v = fx.version();
        let ci = fx.conninfo();
        let (raw_slot, json_slot) = (unique_name("cli_ar"), unique_name("cli_aj"));
        for slot in [&raw_slot, &json_slot] {
            ok_lines(
                v,
                "slot create",
                &run(args(&["slot", "create", "-d", &ci, slot])).await,
            );
        }
        let raw_path = dir.path().join(format!("append-{v}.raw"));
        let raw_arg = raw_path.to_string_lossy().into_owned();
        let json_path = dir.path().join(format!("append-{v}.jsonl"));
        let json_arg = json_path.to_string_lossy().into_owned();
        for (id, word) in [(1, "first"), (2, "second")] {
            fx.admin
                .batch_execute(&format!("INSERT INTO t VALUES ({id}, '{word}', NULL)"))
                .await
                .unwrap();
            let end = fx.current_lsn().await;
            for (slot, format, path) in [
                (&raw_slot, "raw", &raw_arg),
                (&json_slot, "json", &json_arg),
            ] {
                let out = run(args(&[
                    "recv",
                    "-d",
                    &ci,
                    "--slot",
                    slot,
                    "--publication",
                    "p",
                    "--endpos",
                    &end,
                    "--format",
                    format,
                    "-o",
                    path,
                ]))
                .await;
                assert!(ok_lines(v, "recv -o", &out).is_empty(), "PostgreSQL {v}");
            }
        }
        let words = |events: &[Value]| -> Vec<String> {
            events
                .iter()
                .filter(|e| e["kind"] == "insert")
                .map(|e| column(&e["new"], "v")["text"].as_str().unwrap().to_owned())
                .collect()
        };
        let decoded = ok_lines(v, "decode", &run(args(&["decode", &raw_arg])).await);
        assert_eq!(
            words(&decoded),
            ["first", "second"],
            "PostgreSQL {v}: one capture"
        );
        let appended: Vec<Value> = std::fs::read_to_string(&json_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(words(&appended), ["first", "second"], "PostgreSQL {v}");
        // Continuing a text-mode capture in binary mode would mix formats: refused.
        let end = fx.current_lsn().await;
        let mixed = run(args(&[
            "recv",
            "-d",
            &ci,
            "--slot",
            &raw_slot,
            "--publication",
            "p",
            "--endpos",
            &end,
            "--format",
            "raw",
            "--binary",
            "-o",
            &raw_arg,
        ]))
        .await;
        assert_eq!(
            mixed.status.code(),
            Some(2),
            "PostgreSQL {v}: {}",
            stderr(&mixed)
        );
        assert!(
            stderr(&mixed).contains("another file"),
            "PostgreSQL {v}: {}",
            stderr(&mixed)
        );
        for slot in [&raw_slot, &json_slot] {
            ok_lines(
                v,
                "slot drop",
                &run(args(&["slot", "drop", "-d", &ci, slot, "--wait"])).await,
            );
        }
    }
}
