//! `decode` of a real capture and of damaged copies of it: old keys print their key columns
//! only, a tuple whose column count differs from its Relation message and broken transaction
//! framing are errors naming the line, and an empty xid column is accepted.
//!
//! The rows were captured from PostgreSQL 15 with
//! `\copy (SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL,
//! 'proto_version', '1', 'publication_names', 'p', 'messages', 'true')) TO … CSV` after
//!
//! ```sql
//! CREATE TABLE t (id int PRIMARY KEY, v text, n int);
//! INSERT INTO t VALUES (1, 'a', 10);
//! UPDATE t SET id = 2 WHERE id = 1;
//! DELETE FROM t WHERE id = 2;
//! SELECT pg_logical_emit_message(false, 'cli', 'done');
//! ```
//!
//! The last row (the non-transactional message) has its xid column empty, as a capture made
//! on the walsender side has.

use serde_json::{Value, json};

use crate::support::{args, json_lines, run, stderr};

const CAPTURE: [&str; 11] = [
    "0/1530108,727,\\x4200000000015301f000030496a83bb007000002d7",
    "0/1530108,727,\\x52000040097075626c69630074006400030169640000000017ffffffff00760000000019ffffffff006e0000000017ffffffff",
    "0/1530108,727,\\x49000040094e000374000000013174000000016174000000023130",
    "0/1530220,727,\\x430000000000015301f0000000000153022000030496a83bb007",
    "0/1530220,728,\\x4200000000015302b800030496a83bd0ba000002d8",
    "0/1530220,728,\\x55000040094b00037400000001316e6e4e000374000000013274000000016174000000023130",
    "0/15302E8,728,\\x430000000000015302b800000000015302e800030496a83bd0ba",
    "0/15302E8,729,\\x42000000000153032800030496a83bd1c8000002d9",
    "0/15302E8,729,\\x44000040094b00037400000001326e6e",
    "0/1530358,729,\\x43000000000001530328000000000153035800030496a83bd1c8",
    "0/1530398,,\\x4d000000000001530398636c690000000004646f6e65",
];

/// Runs `decode --proto 1` on `rows` written as a CSV file.
async fn decode(rows: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.csv");
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    run(args(&["decode", "--proto", "1", &path.to_string_lossy()])).await
}

/// Expects `decode` of `rows` to fail with one line on stderr containing every needle.
async fn fails(what: &str, rows: &[&str], needles: &[&str]) {
    let output = decode(rows).await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err:?}");
    for needle in needles {
        assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
    }
}

#[tokio::test]
async fn a_real_capture_decodes_with_old_keys_as_key_columns_only() {
    let output = decode(&CAPTURE).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let events = json_lines(&output);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "begin", "relation", "insert", "commit", "begin", "update", "commit", "begin",
            "delete", "commit", "message"
        ]
    );
    let id = |text: &str| json!([{"name": "id", "type_oid": 23, "type": "int4", "text": text}]);
    // The server sent `v` and `n` of each key as NULL placeholders; they are not printed.
    assert_eq!(events[5]["old_key"], id("1"));
    assert_eq!(events[8]["old_key"], id("2"));
    assert_eq!(events[5]["new"].as_array().map(Vec::len), Some(3));
    assert_eq!(events[10]["content"], Value::from("done"));
    assert_eq!(events[10]["transactional"], Value::from(false));
}

#[tokio::test]
async fn a_tuple_with_fewer_or_more_columns_than_its_relation_is_an_error() {
    // The Insert (line 3) with its last column cut off, and with a fourth column added.
    let fewer = "0/1530108,727,\\x49000040094e0002740000000131740000000161";
    let more = "0/1530108,727,\\x49000040094e0004740000000131740000000161740000000231306e";
    for (damaged, got) in [(fewer, "2"), (more, "4")] {
        let mut rows = CAPTURE;
        rows[2] = damaged;
        let count = format!("has {got} columns, but its Relation message describes 3");
        fails("column count", &rows, &["line 3 (lsn 0/1530108)", &count]).await;
    }
    // The Delete's old key (line 9) with a column missing.
    let mut rows = CAPTURE;
    rows[8] = "0/15302E8,729,\\x44000040094b00027400000001326e";
    fails("key column count", &rows, &["line 9", "has 2 columns"]).await;
}

#[tokio::test]
async fn broken_transaction_framing_is_an_error() {
    let mut rows: Vec<&str> = CAPTURE.to_vec();
    rows.remove(0);
    fails(
        "Commit without Begin",
        &rows,
        &[
            "line 3 (lsn 0/1530220)",
            "message 'C' is not allowed outside a transaction",
        ],
    )
    .await;
    let mut rows: Vec<&str> = CAPTURE.to_vec();
    rows.insert(4, CAPTURE[3]);
    fails(
        "second Commit",
        &rows,
        &["line 5", "message 'C' is not allowed outside a transaction"],
    )
    .await;
    let mut rows: Vec<&str> = CAPTURE.to_vec();
    rows.remove(3);
    fails(
        "Begin inside a transaction",
        &rows,
        &[
            "line 4",
            "message 'B' is not allowed inside an open transaction",
        ],
    )
    .await;
}
