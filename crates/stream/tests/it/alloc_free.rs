//! The stream core allocates nothing per DML event on the borrowed path — reading rows by
//! column name (`Row::get`, `Column::as_str`) included — proven with a counting global
//! allocator (per thread, so concurrent tests do not interfere).

// A `GlobalAlloc` cannot be written without `unsafe`; this test-only allocator just
// delegates to `System` and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pg_walstream_codec::pgoutput::{
    Begin, Delete, Insert, OldTuple, OwnedColumn, OwnedMessage, OwnedTupleData, ProtocolVersion,
    Relation, RelationColumn, ReplicaIdentity, Update,
};
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};
use pg_walstream_stream::{CoreOptions, EventKind, Feedback, LogicalCore};

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

fn row(id: u32) -> OwnedTupleData {
    OwnedTupleData {
        columns: vec![
            OwnedColumn::Text(Bytes::from(id.to_string())),
            OwnedColumn::Null,
            OwnedColumn::UnchangedToast,
            OwnedColumn::Binary(Bytes::from_static(b"\0\0\0\x07")),
        ],
    }
}

/// Frames as the transport delivers them: slices of one large shared read buffer.
fn frames(messages: &[OwnedMessage]) -> Vec<Bytes> {
    let mut buffer = BytesMut::new();
    let mut lengths = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let mut data = Vec::new();
        message.encode(&mut data).unwrap();
        let before = buffer.len();
        XLogData {
            wal_start: Lsn(0x1000 + i as u64),
            wal_end: Lsn(0x1000 + i as u64),
            send_time: PgTimestamp(0),
            data: data.into(),
        }
        .encode(&mut buffer);
        lengths.push(buffer.len() - before);
    }
    let mut shared = buffer.freeze();
    lengths.into_iter().map(|n| shared.split_to(n)).collect()
}

#[test]
fn dml_events_allocate_nothing() {
    let rel = Oid(16384);
    let mut messages = vec![
        OwnedMessage::Begin(Begin {
            final_lsn: Lsn(0x9000),
            commit_time: PgTimestamp(1),
            xid: Xid(5),
        }),
        OwnedMessage::Relation(Relation {
            xid: None,
            oid: rel,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: ReplicaIdentity::Full,
            columns: ["a", "b", "c", "d"]
                .iter()
                .map(|n| RelationColumn {
                    flags: u8::from(*n == "a"),
                    name: (*n).into(),
                    type_oid: Oid(25),
                    type_modifier: -1,
                })
                .collect(),
        }),
    ];
    for id in 0..3000 {
        messages.push(match id % 3 {
            0 => OwnedMessage::Insert(Insert {
                xid: None,
                relation: rel,
                new: row(id),
            }),
            1 => OwnedMessage::Update(Update {
                xid: None,
                relation: rel,
                old: Some(OldTuple::Full(row(id - 1))),
                new: row(id),
            }),
            _ => OwnedMessage::Delete(Delete {
                xid: None,
                relation: rel,
                old: OldTuple::Key(row(id)),
            }),
        });
    }
    let frames = frames(&messages);
    let now = Instant::now();
    let mut core = LogicalCore::new(CoreOptions::new(ProtocolVersion::V1), Feedback::new(), now);
    let mut out = BytesMut::with_capacity(64);
    let consume = |core: &mut LogicalCore, frame: &Bytes| -> usize {
        core.handle_copy_data(now, frame.clone());
        let event = core.poll_event().expect("an event").expect("no error");
        let mut width = 0;
        match event.kind() {
            EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) => {
                if let Some(new) = c.new_tuple() {
                    width += new
                        .columns()
                        .filter_map(|col| col.value())
                        .map(<[u8]>::len)
                        .sum::<usize>();
                }
                if let Some(old) = c.old_tuple() {
                    width += old.tuple().columns().count();
                }
                if let Some(key) = c.old_key() {
                    width += key.filter_map(|(_, col)| col.value()).count();
                }
                width += c.relation().columns().len();
                // Rows by name: the name index lookup, the walk to the column, `as_str`.
                if let Some(row) = c.new_row() {
                    width += row
                        .get("a")
                        .and_then(|v| v.as_str())
                        .map_or(0, |text| text.expect("UTF-8").len());
                    width += usize::from(row.get("b").is_some_and(|v| v.is_null()));
                    width += usize::from(row.merged_with_old().get("c").is_some());
                    width += row.get("missing").map_or(0, |_| 1000);
                    width += row.iter().filter(|(_, v)| v.as_bytes().is_some()).count();
                }
                if let Some(old) = c.old_row() {
                    width += old
                        .get("a")
                        .and_then(|v| v.as_str())
                        .map_or(0, |t| t.map_or(0, str::len));
                    width += old.len() + old.iter().count();
                }
            }
            _ => {}
        }
        width
    };
    // Warm-up: Begin, Relation (allocates the cached description) and a few changes.
    for frame in &frames[..12] {
        consume(&mut core, frame);
    }
    let before = allocations();
    let mut total = 0;
    for frame in &frames[12..] {
        total += consume(&mut core, frame);
    }
    let status = core.poll_transmit(now + Duration::from_secs(60), PgTimestamp(0), &mut out);
    let during = allocations() - before;
    assert!(total > 0 && status.is_some());
    assert_eq!(
        during,
        0,
        "{during} allocations for {} DML events",
        frames.len() - 12
    );
}
