//! The core fed real pgoutput bytes, captured from PostgreSQL 15 with
//! `pg_logical_slot_peek_binary_changes(…, 'proto_version', '1', …)` for
//!
//! ```sql
//! CREATE TABLE t (id int PRIMARY KEY, v text, n int);
//! INSERT INTO t VALUES (1, 'a', 10);
//! UPDATE t SET id = 2 WHERE id = 1;   -- old key 'K' (id = 1)
//! DELETE FROM t WHERE id = 2;         -- old key 'K' (id = 2)
//! ```
//!
//! and the same bytes with a tuple damaged: old keys read as key columns only, and a tuple
//! whose column count differs from its Relation message ends the stream.

use std::time::Instant;

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{Column, ProtocolVersion};
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, Oid};

use crate::core::{CoreOptions, LogicalCore};
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::feedback::Feedback;

/// (lsn, pgoutput message in hex), in stream order.
const CAPTURE: [(u64, &str); 10] = [
    (0x0153_0108, "4200000000015301f000030496a83bb007000002d7"),
    (
        0x0153_0108,
        "52000040097075626c69630074006400030169640000000017ffffffff00760000000019ffffffff006e0000000017ffffffff",
    ),
    (
        0x0153_0108,
        "49000040094e000374000000013174000000016174000000023130",
    ),
    (
        0x0153_0220,
        "430000000000015301f0000000000153022000030496a83bb007",
    ),
    (0x0153_0220, "4200000000015302b800030496a83bd0ba000002d8"),
    (
        0x0153_0220,
        "55000040094b00037400000001316e6e4e000374000000013274000000016174000000023130",
    ),
    (
        0x0153_02E8,
        "430000000000015302b800000000015302e800030496a83bd0ba",
    ),
    (0x0153_02E8, "42000000000153032800030496a83bd1c8000002d9"),
    (0x0153_02E8, "44000040094b00037400000001326e6e"),
    (
        0x0153_0358,
        "43000000000001530328000000000153035800030496a83bd1c8",
    ),
];

/// The captured Insert with its last column (`n`) cut off: two columns, count 2.
const INSERT_TWO_COLUMNS: &str = "49000040094e0002740000000131740000000161";
/// The captured Insert with a fourth column (NULL) added.
const INSERT_FOUR_COLUMNS: &str = "49000040094e0004740000000131740000000161740000000231306e";

fn unhex(hex: &str) -> Bytes {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

/// Feeds `messages` as XLogData frames and returns every event and error in order.
fn replay(messages: &[(u64, &str)]) -> Vec<crate::Result<Event>> {
    let now = Instant::now();
    let mut core = LogicalCore::new(CoreOptions::new(ProtocolVersion::V1), Feedback::new(), now);
    for &(lsn, hex) in messages {
        let mut frame = Vec::new();
        XLogData {
            wal_start: Lsn(lsn),
            wal_end: Lsn(lsn),
            send_time: pg_walstream_codec::PgTimestamp(0),
            data: unhex(hex),
        }
        .encode(&mut frame);
        core.handle_copy_data(now, frame.into());
    }
    std::iter::from_fn(|| core.poll_event()).collect()
}

fn key_of(event: &Event) -> Vec<(String, Vec<u8>)> {
    let (EventKind::Update(change) | EventKind::Delete(change)) = event.kind() else {
        panic!("not an update or delete: {:?}", event.kind())
    };
    change
        .old_key()
        .expect("an old key")
        .map(|(column, value)| {
            let Column::Text(text) = value else {
                panic!("{}: {value:?}", column.name)
            };
            (column.name.clone(), text.to_vec())
        })
        .collect()
}

#[test]
fn old_keys_are_the_key_columns_only() {
    let events: Vec<Event> = replay(&CAPTURE).into_iter().map(Result::unwrap).collect();
    assert_eq!(events.len(), CAPTURE.len());
    // The server sent the key tuples with NULL placeholders for `v` and `n` …
    let EventKind::Update(update) = events[5].kind() else {
        panic!()
    };
    let old = update.old_tuple().unwrap();
    assert_eq!(old.tuple().len(), 3);
    // … which the key view does not present as values.
    assert_eq!(key_of(&events[5]), [("id".to_owned(), b"1".to_vec())]);
    assert_eq!(key_of(&events[8]), [("id".to_owned(), b"2".to_vec())]);
    // An Insert has no old key; neither has a full old row.
    let EventKind::Insert(insert) = events[2].kind() else {
        panic!()
    };
    assert!(insert.old_key().is_none());
}

#[test]
fn a_tuple_with_fewer_or_more_columns_than_its_relation_is_an_error() {
    for (damaged, got) in [(INSERT_TWO_COLUMNS, 2), (INSERT_FOUR_COLUMNS, 4)] {
        let mut messages = CAPTURE;
        messages[2].1 = damaged;
        let results = replay(&messages);
        assert_eq!(results.len(), 3, "the stream ends at the bad change");
        assert!(results[..2].iter().all(Result::is_ok));
        let error = results[2].as_ref().unwrap_err();
        assert!(
            matches!(
                error,
                Error::ColumnCount {
                    lsn: Lsn(0x0153_0108),
                    oid: Oid(16393),
                    got: g,
                    expected: 3,
                } if *g == got
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "change at 0/1530108 of relation 16393 has a tuple of {got} columns, but its \
                 Relation message describes 3"
            )
        );
    }
    // A damaged old key is checked too.
    let mut messages = CAPTURE;
    messages[8].1 = "44000040094b00027400000001326e";
    let results = replay(&messages);
    assert!(matches!(
        results.last(),
        Some(Err(Error::ColumnCount {
            got: 2,
            expected: 3,
            ..
        }))
    ));
}
