//! Events per second through the sans-IO core: frame parse, pgoutput decode, relation lookup,
//! feedback bookkeeping, event construction, and reading every column of every row.
//!
//! `cargo bench -p pg-walstream-stream --bench core`

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pg_walstream_codec::pgoutput::{
    Begin, Commit, Insert, OwnedColumn, OwnedMessage, OwnedTupleData, ProtocolVersion, Relation,
    RelationColumn, ReplicaIdentity,
};
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};
use pg_walstream_stream::{CoreOptions, EventKind, Feedback, LogicalCore};

const ROWS: u32 = 10_000;

fn transaction(first: u64) -> (Vec<Bytes>, usize) {
    let rel = Oid(16384);
    let mut messages = vec![
        OwnedMessage::Begin(Begin {
            final_lsn: Lsn(first + 1_000_000),
            commit_time: PgTimestamp(1),
            xid: Xid(9),
        }),
        OwnedMessage::Relation(Relation {
            xid: None,
            oid: rel,
            namespace: "public".into(),
            name: "bench".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: ["id", "name", "amount", "note"]
                .iter()
                .map(|n| RelationColumn {
                    flags: 0,
                    name: (*n).into(),
                    type_oid: Oid(25),
                    type_modifier: -1,
                })
                .collect(),
        }),
    ];
    for id in 0..ROWS {
        messages.push(OwnedMessage::Insert(Insert {
            xid: None,
            relation: rel,
            new: OwnedTupleData {
                columns: vec![
                    OwnedColumn::Text(Bytes::from(id.to_string())),
                    OwnedColumn::Text(Bytes::from_static(b"customer name")),
                    OwnedColumn::Text(Bytes::from_static(b"1234.56")),
                    OwnedColumn::Null,
                ],
            },
        }));
    }
    messages.push(OwnedMessage::Commit(Commit {
        flags: 0,
        commit_lsn: Lsn(first + 1_000_000),
        end_lsn: Lsn(first + 1_000_008),
        commit_time: PgTimestamp(1),
    }));
    let mut buffer = BytesMut::new();
    let mut lengths = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let mut data = Vec::new();
        m.encode(&mut data).unwrap();
        let before = buffer.len();
        XLogData {
            wal_start: Lsn(first + i as u64),
            wal_end: Lsn(first + i as u64),
            send_time: PgTimestamp(0),
            data: data.into(),
        }
        .encode(&mut buffer);
        lengths.push(buffer.len() - before);
    }
    let total = buffer.len();
    let mut shared = buffer.freeze();
    (
        lengths.into_iter().map(|n| shared.split_to(n)).collect(),
        total,
    )
}

fn bench(c: &mut Criterion) {
    let (frames, bytes) = transaction(0x1000);
    let mut group = c.benchmark_group("logical_core");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("decode_and_read_10k_inserts", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut core =
                LogicalCore::new(CoreOptions::new(ProtocolVersion::V1), Feedback::new(), now);
            let mut sum = 0usize;
            for frame in &frames {
                core.handle_copy_data(now, frame.clone());
                while let Some(event) = core.poll_event() {
                    if let EventKind::Insert(change) = event.unwrap().kind() {
                        for column in change.new_tuple().unwrap().columns() {
                            sum += column.value().map_or(0, <[u8]>::len);
                        }
                    }
                }
            }
            black_box(sum)
        });
    });
    group.bench_function("decode_and_read_10k_inserts_by_name", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut core =
                LogicalCore::new(CoreOptions::new(ProtocolVersion::V1), Feedback::new(), now);
            let mut sum = 0usize;
            for frame in &frames {
                core.handle_copy_data(now, frame.clone());
                while let Some(event) = core.poll_event() {
                    if let EventKind::Insert(change) = event.unwrap().kind() {
                        let row = change.new_row().unwrap();
                        for name in ["id", "name", "amount", "note"] {
                            sum += row
                                .get(name)
                                .and_then(|c| c.as_str())
                                .map_or(0, |s| s.map_or(0, str::len));
                        }
                    }
                }
            }
            black_box(sum)
        });
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut core =
                LogicalCore::new(CoreOptions::new(ProtocolVersion::V1), Feedback::new(), now);
            for frame in &frames {
                core.handle_copy_data(now, frame.clone());
                while let Some(event) = core.poll_event() {
                    black_box(event.unwrap());
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
