//! The borrowed decode path allocates nothing per DML message, proven with a counting
//! global allocator.

// A `GlobalAlloc` cannot be written without `unsafe`; this test-only allocator just
// delegates to `System` and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    Column, Insert, Message, OldTuple, OwnedColumn, OwnedMessage, OwnedTupleData, PgOutputDecoder,
    ProtocolVersion, RelationColumn, Update,
};
use pg_walstream_codec::{Oid, Xid};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; counting only touches a
// const-initialised thread-local `Cell`, which neither allocates nor re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn tuple(n: usize) -> OwnedTupleData {
    OwnedTupleData {
        columns: (0..n)
            .map(|i| match i % 4 {
                0 => OwnedColumn::Text(Bytes::from(format!("value-{i}"))),
                1 => OwnedColumn::Null,
                2 => OwnedColumn::Binary(Bytes::from(vec![i as u8; 8])),
                _ => OwnedColumn::UnchangedToast,
            })
            .collect(),
    }
}

fn encoded(msgs: &[OwnedMessage]) -> Vec<Vec<u8>> {
    msgs.iter()
        .map(|m| {
            let mut b = Vec::new();
            m.encode(&mut b).unwrap();
            b
        })
        .collect()
}

#[test]
fn dml_decoding_allocates_nothing() {
    let xid = Some(Xid(77));
    let messages = encoded(&[
        OwnedMessage::Insert(Insert {
            xid: None,
            relation: Oid(1),
            new: tuple(20),
        }),
        OwnedMessage::Update(Update {
            xid: None,
            relation: Oid(1),
            old: Some(OldTuple::Full(tuple(20))),
            new: tuple(20),
        }),
        OwnedMessage::Update(Update {
            xid: None,
            relation: Oid(1),
            old: None,
            new: tuple(5),
        }),
        OwnedMessage::Delete(pg_walstream_codec::pgoutput::Delete {
            xid: None,
            relation: Oid(1),
            old: OldTuple::Key(tuple(3)),
        }),
    ]);
    let streamed = encoded(&[OwnedMessage::Insert(Insert {
        xid,
        relation: Oid(1),
        new: tuple(20),
    })]);

    let mut decoder = PgOutputDecoder::new(ProtocolVersion::V4);
    let mut stream_decoder = PgOutputDecoder::new(ProtocolVersion::V4);
    stream_decoder.decode(b"S\0\0\0\x4d\x01").unwrap();

    // Descriptions of the Delete's three columns: the first and last are key columns.
    let described: Vec<RelationColumn<String>> = (0..3)
        .map(|i| RelationColumn {
            flags: u8::from(i != 1),
            name: format!("c{i}"),
            type_oid: Oid(25),
            type_modifier: -1,
        })
        .collect();
    let mut key_columns = 0usize;
    let mut columns = 0usize;
    let mut value_bytes = 0usize;
    let mut visit = |c: Column<'_>| {
        columns += 1;
        value_bytes += c.value().map_or(0, <[u8]>::len);
    };
    let before = allocations();
    for _ in 0..1000 {
        for m in &messages {
            match decoder.decode(m).unwrap() {
                Message::Insert(i) => i.new.columns().for_each(&mut visit),
                Message::Update(u) => {
                    if let Some(old) = &u.old {
                        old.tuple().columns().for_each(&mut visit);
                    }
                    u.new.columns().for_each(&mut visit);
                }
                Message::Delete(d) => {
                    d.old.tuple().columns().for_each(&mut visit);
                    key_columns += d.old.tuple().key_columns(&described).count();
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        for m in &streamed {
            let Message::Insert(i) = stream_decoder.decode(m).unwrap() else {
                panic!()
            };
            assert_eq!(i.xid, xid);
            i.new.columns().for_each(&mut visit);
        }
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "heap allocations while decoding 5000 DML messages"
    );
    // The loop really visited every column of every message.
    assert_eq!(columns, 1000 * (20 + 20 + 20 + 5 + 3 + 20));
    assert!(value_bytes > 0);
    assert_eq!(key_columns, 1000 * 2);
}

#[test]
fn counting_allocator_counts() {
    let before = allocations();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(16));
    drop(v);
    assert_eq!(allocations() - before, 1);
}
