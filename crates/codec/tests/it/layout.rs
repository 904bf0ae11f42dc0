//! Tuples read by position through the column offsets kept while validating, and through a
//! detached [`TupleLayout`], agree with walking the columns, at every width.

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    Column, INDEX_ANCHORS, Insert, Message, OldTuple, OwnedColumn, OwnedMessage, OwnedTupleData,
    ProtocolVersion, TupleData, Update, decode_message,
};
use pg_walstream_codec::{Oid, Xid};
use proptest::prelude::*;

use crate::strategies::column;

fn encode(message: &OwnedMessage) -> Vec<u8> {
    let mut out = Vec::new();
    message.encode(&mut out).unwrap();
    out
}

/// Every column read by position equals the one the iterator yields, and the position past
/// the end reads `None`.
fn assert_positions_agree(tuple: &TupleData<'_>) {
    let walked: Vec<Column<'_>> = tuple.columns().collect();
    assert_eq!(walked.len(), tuple.len());
    for (i, column) in walked.iter().enumerate() {
        assert_eq!(
            tuple.column(i).as_ref(),
            Some(column),
            "column {i} of {}",
            tuple.len()
        );
    }
    assert_eq!(tuple.column(tuple.len()), None);
    assert_eq!(tuple.column(usize::MAX), None);
}

proptest! {
    #[test]
    fn reading_by_position_matches_walking(
        new in proptest::collection::vec(column(), 0..80),
        old in proptest::collection::vec(column(), 0..40),
        streamed in any::<bool>(),
    ) {
        let message = OwnedMessage::Update(Update {
            xid: streamed.then_some(Xid(9)),
            relation: Oid(16_384),
            old: Some(OldTuple::Full(OwnedTupleData { columns: old.clone() })),
            new: OwnedTupleData { columns: new.clone() },
        });
        let wire = encode(&message);
        let Message::Update(update) = decode_message(&wire, ProtocolVersion::V4, streamed).unwrap()
        else {
            panic!("an Update decodes as an Update")
        };
        let old_tuple = *update.old.unwrap().tuple();
        assert_positions_agree(&update.new);
        assert_positions_agree(&old_tuple);
        // Detached and re-attached to a copy of the bytes: the same columns, no decoding.
        let copy = Bytes::copy_from_slice(&wire);
        for (tuple, expected) in [(update.new, &new), (old_tuple, &old)] {
            let layout = tuple.layout_in(&wire).unwrap();
            prop_assert_eq!(layout.len(), expected.len());
            let again = layout.tuple_in(&copy).unwrap();
            assert_positions_agree(&again);
            let owned: Vec<OwnedColumn> = again.to_owned_in(&copy).columns;
            prop_assert_eq!(&owned, expected);
        }
        // The new tuple ends the message: one byte less cannot hold its layout.
        let layout = update.new.layout_in(&wire).unwrap();
        prop_assert!(layout.tuple_in(&copy[..wire.len() - 1]).is_none());
    }
}

/// The widest tuple pgoutput can send (a relation has at most 1,600 columns, the count field
/// allows 65,535): every position still reads right, through the strided offsets.
#[test]
fn widest_tuples_read_by_position() {
    for width in [
        0,
        1,
        INDEX_ANCHORS,
        INDEX_ANCHORS + 1,
        2 * INDEX_ANCHORS + 1,
        1_600,
        65_535,
    ] {
        let columns: Vec<OwnedColumn> = (0..width)
            .map(|i| match i % 3 {
                0 => OwnedColumn::Null,
                1 => OwnedColumn::Text(Bytes::from(format!("{i}"))),
                _ => OwnedColumn::UnchangedToast,
            })
            .collect();
        let wire = encode(&OwnedMessage::Insert(Insert {
            xid: None,
            relation: Oid(1),
            new: OwnedTupleData { columns },
        }));
        let Message::Insert(insert) = decode_message(&wire, ProtocolVersion::V1, false).unwrap()
        else {
            panic!()
        };
        assert_positions_agree(&insert.new);
        if width > 0 {
            let last = width - 1;
            let expected = match last % 3 {
                0 => Column::Null,
                1 => Column::Text(format!("{last}").into_bytes().leak()),
                _ => Column::UnchangedToast,
            };
            assert_eq!(insert.new.column(last), Some(expected), "width {width}");
        }
    }
}

/// Columns that start 64 KiB or more into a tuple lie beyond the 16-bit offsets kept: they
/// are found by walking from the last offset kept, and still read right — narrow and wide
/// tuples, with the large values first, last or throughout.
#[test]
fn columns_past_64_kib_read_by_position() {
    let big = |i: usize| OwnedColumn::Text(Bytes::from(vec![b'a' + (i % 26) as u8; 30_000]));
    let small = |i: usize| OwnedColumn::Text(Bytes::from(format!("{i}")));
    let shapes: [(usize, &dyn Fn(usize) -> OwnedColumn); 4] = [
        (INDEX_ANCHORS, &|i| big(i)),
        (3 * INDEX_ANCHORS, &|i| {
            if i < 3 { big(i) } else { small(i) }
        }),
        (3 * INDEX_ANCHORS, &|i| {
            if i % 5 == 0 { big(i) } else { small(i) }
        }),
        (1_600, &|i| if i == 1_599 { big(i) } else { small(i) }),
    ];
    for (width, make) in shapes {
        let columns: Vec<OwnedColumn> = (0..width).map(make).collect();
        let wire = encode(&OwnedMessage::Insert(Insert {
            xid: None,
            relation: Oid(1),
            new: OwnedTupleData {
                columns: columns.clone(),
            },
        }));
        let Message::Insert(insert) = decode_message(&wire, ProtocolVersion::V1, false).unwrap()
        else {
            panic!()
        };
        assert_positions_agree(&insert.new);
        let again = insert
            .new
            .layout_in(&wire)
            .unwrap()
            .tuple_in(&wire)
            .unwrap();
        assert_positions_agree(&again);
        assert_eq!(
            again.to_owned_in(&Bytes::from(wire.clone())).columns,
            columns
        );
    }
}

/// A layout is refused by bytes that cannot hold it and by a tuple outside the message.
#[test]
fn layouts_check_their_bytes() {
    let wire = b"I\0\0\x40\0N\0\x02nt\0\0\0\x02hi";
    let Message::Insert(insert) = decode_message(wire, ProtocolVersion::V1, false).unwrap() else {
        panic!()
    };
    let layout = insert.new.layout_in(wire).unwrap();
    assert!(layout.tuple_in(&wire[..wire.len() - 1]).is_none());
    assert!(layout.tuple_in(b"").is_none());
    // Another buffer than the one decoded from does not contain the tuple.
    let other = wire.to_vec();
    assert!(insert.new.layout_in(&other).is_none());
    assert!(insert.new.layout_in(&wire[..5]).is_none());
    // Bytes of the right length but other content: reading stays bounds-checked.
    let garbage = [0xffu8; 32];
    let tuple = layout.tuple_in(&garbage).unwrap();
    assert_eq!(tuple.len(), 2);
    let _ = tuple.columns().count();
    let _ = (tuple.column(0), tuple.column(1), tuple.column(2));
}
