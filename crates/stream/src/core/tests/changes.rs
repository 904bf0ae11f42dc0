//! Row changes through the core's in-place validation (`PgOutputDecoder::decode_change`):
//! every tuple shape, the relation checks, and damaged changes.

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    Begin, Delete, OldTuple, OwnedColumn, OwnedMessage, OwnedTupleData, ProtocolVersion, Update,
};
use pg_walstream_codec::{Lsn, PgTimestamp, Xid};

use super::{Harness, REL, insert, relation};
use crate::error::Error;
use crate::events::EventKind;

fn row(value: &'static [u8]) -> OwnedTupleData {
    OwnedTupleData {
        columns: vec![OwnedColumn::Text(Bytes::from_static(value))],
    }
}

fn begun() -> Harness {
    let mut h = Harness::v(ProtocolVersion::V1);
    let begin = OwnedMessage::Begin(Begin {
        final_lsn: Lsn(0x100),
        commit_time: PgTimestamp(1),
        xid: Xid(5),
    });
    h.message(1.0, 0x10, &begin);
    h.message(1.0, 0, &relation(None));
    h
}

fn value(tuple: Option<pg_walstream_codec::pgoutput::TupleData<'_>>) -> Option<Vec<u8>> {
    Some(tuple?.column(0)?.value()?.to_vec())
}

#[test]
fn updates_and_deletes_keep_their_old_and_new_tuples() {
    let mut h = begun();
    let update = |old| {
        OwnedMessage::Update(Update {
            xid: None,
            relation: REL,
            old,
            new: row(b"new"),
        })
    };
    h.message(1.0, 0x20, &update(None));
    h.message(1.0, 0x28, &update(Some(OldTuple::Key(row(b"key")))));
    h.message(1.0, 0x30, &update(Some(OldTuple::Full(row(b"old")))));
    for old in [OldTuple::Key(row(b"gone")), OldTuple::Full(row(b"all"))] {
        let delete = OwnedMessage::Delete(Delete {
            xid: None,
            relation: REL,
            old,
        });
        h.message(1.0, 0x38, &delete);
    }
    let events = h.drain();
    let seen: Vec<_> = events[2..]
        .iter()
        .map(|event| match event {
            Ok(EventKind::Update(c) | EventKind::Delete(c)) => {
                let old = c.old_tuple().map(|o| o.map(|t| value(Some(t)).unwrap()));
                (old, value(c.new_tuple()))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let text = |s: &[u8]| s.to_vec();
    assert_eq!(
        seen,
        [
            (None, Some(text(b"new"))),
            (Some(OldTuple::Key(text(b"key"))), Some(text(b"new"))),
            (Some(OldTuple::Full(text(b"old"))), Some(text(b"new"))),
            (Some(OldTuple::Key(text(b"gone"))), None),
            (Some(OldTuple::Full(text(b"all"))), None),
        ]
    );
}

#[test]
fn a_change_with_the_wrong_column_count_is_an_error() {
    let mut h = begun();
    let two_columns = OwnedMessage::Update(Update {
        xid: None,
        relation: REL,
        old: Some(OldTuple::Key(OwnedTupleData {
            columns: vec![OwnedColumn::Null, OwnedColumn::Null],
        })),
        new: row(b"x"),
    });
    h.message(1.0, 0x20, &two_columns);
    let events = h.drain();
    assert!(
        matches!(
            events.last(),
            Some(Err(Error::ColumnCount {
                got: 2,
                expected: 1,
                ..
            }))
        ),
        "{events:?}"
    );
}

#[test]
fn a_damaged_change_stops_the_stream_with_the_decoders_error() {
    let mut h = begun();
    let mut data = Vec::new();
    insert(None, b"42").encode(&mut data).unwrap();
    // The tuple marker 'N' becomes 'K', which an Insert never carries.
    data[5] = b'K';
    h.raw_xlog(1.0, 0x20, data.into());
    // Nothing after the error is delivered.
    h.message(1.0, 0x28, &insert(None, b"43"));
    let events = h.drain();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(events[2], Err(Error::Decode { .. })), "{events:?}");
}
