//! Throughput of pgoutput decoding over generated, realistic streams.
//!
//! Each workload is a sequence of transactions (Begin, 10 DML messages, Commit) preceded by
//! the Relation message, laid out back to back in one buffer as a replication read buffer
//! would hold them. The borrowed benchmark decodes every message and visits every column;
//! the owned one also converts each message to its owned form. The `read_again` group is what
//! a consumer that keeps the message bytes (the stream's `Change`) pays to read the tuples a
//! second time: decoding the message again, or re-attaching the `TupleLayout` kept from the
//! first decoding; `by_position` reads every column by index (`TupleData::column`).

use std::hint::black_box;
use std::ops::Range;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pg_walstream_codec::pgoutput::{
    Begin, Column, Commit, Insert, Message, OldTuple, OwnedColumn, OwnedMessage, OwnedTupleData,
    PgOutputDecoder, ProtocolVersion, Relation, RelationColumn, ReplicaIdentity, TupleData,
    TupleLayout, Update, decode_message,
};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};

/// A workload: one buffer and the ranges of its messages.
struct Stream {
    name: String,
    buf: Bytes,
    messages: Vec<Range<usize>>,
}

/// Text values of one row: `columns` values (every seventh one NULL) totalling about
/// `payload` bytes.
fn row(seed: usize, columns: usize, payload: usize) -> OwnedTupleData {
    let is_null = |c: usize| c % 7 == 3;
    let valued = (1..columns).filter(|&c| !is_null(c)).count().max(1);
    let per = payload.saturating_sub(6) / valued;
    let columns = (0..columns)
        .map(|c| {
            if c == 0 {
                return OwnedColumn::Text(Bytes::from(format!("{seed:06}")));
            }
            if is_null(c) {
                return OwnedColumn::Null;
            }
            let text: String = (0..per)
                .map(|i| char::from(b'a' + ((seed + c + i) % 26) as u8))
                .collect();
            OwnedColumn::Text(Bytes::from(text))
        })
        .collect();
    OwnedTupleData { columns }
}

fn build(name: &str, columns: usize, payload: usize, updates: bool) -> Stream {
    let mut buf = Vec::new();
    let mut messages = Vec::new();
    let mut push = |m: OwnedMessage, buf: &mut Vec<u8>| {
        let start = buf.len();
        m.encode(buf).unwrap();
        messages.push(start..buf.len());
    };
    let rel = Oid(16_384);
    push(
        OwnedMessage::Relation(Relation {
            xid: None,
            oid: rel,
            namespace: "public".into(),
            name: "bench".into(),
            replica_identity: if updates {
                ReplicaIdentity::Full
            } else {
                ReplicaIdentity::Default
            },
            columns: (0..columns)
                .map(|c| RelationColumn {
                    flags: u8::from(c == 0),
                    name: format!("col{c}"),
                    type_oid: Oid(if c == 0 { 23 } else { 25 }),
                    type_modifier: -1,
                })
                .collect(),
        }),
        &mut buf,
    );
    let mut lsn = 0x1_0000_0000u64;
    for tx in 0..2_000usize {
        push(
            OwnedMessage::Begin(Begin {
                final_lsn: Lsn(lsn + 4096),
                commit_time: PgTimestamp(800_000_000_000_000 + tx as i64),
                xid: Xid(1000 + tx as u32),
            }),
            &mut buf,
        );
        for r in 0..10 {
            let seed = tx * 10 + r;
            let m = if updates {
                OwnedMessage::Update(Update {
                    xid: None,
                    relation: rel,
                    old: Some(OldTuple::Full(row(seed, columns, payload))),
                    new: row(seed + 1, columns, payload),
                })
            } else {
                OwnedMessage::Insert(Insert {
                    xid: None,
                    relation: rel,
                    new: row(seed, columns, payload),
                })
            };
            push(m, &mut buf);
        }
        push(
            OwnedMessage::Commit(Commit {
                flags: 0,
                commit_lsn: Lsn(lsn + 4096),
                end_lsn: Lsn(lsn + 4200),
                commit_time: PgTimestamp(800_000_000_000_000 + tx as i64),
            }),
            &mut buf,
        );
        lsn += 8192;
    }
    Stream {
        name: name.into(),
        buf: Bytes::from(buf),
        messages,
    }
}

fn visit(c: Column<'_>) -> usize {
    match c {
        Column::Text(v) | Column::Binary(v) => v.len(),
        Column::Null => 1,
        Column::UnchangedToast => 2,
    }
}

fn decode_borrowed(s: &Stream) -> usize {
    let mut decoder = PgOutputDecoder::new(ProtocolVersion::V4);
    let mut acc = 0usize;
    for r in &s.messages {
        let Some(bytes) = s.buf.get(r.clone()) else {
            continue;
        };
        match decoder.decode(bytes).expect("valid stream") {
            Message::Insert(i) => acc += i.new.columns().map(visit).sum::<usize>(),
            Message::Update(u) => {
                if let Some(old) = &u.old {
                    acc += old.tuple().columns().map(visit).sum::<usize>();
                }
                acc += u.new.columns().map(visit).sum::<usize>();
            }
            Message::Relation(rel) => acc += rel.columns.len(),
            Message::Begin(b) => acc += b.xid.0 as usize,
            Message::Commit(c) => acc += c.end_lsn.0 as usize,
            _ => {}
        }
    }
    acc
}

/// The layouts of every DML message's tuples, from one decoding.
fn layouts(s: &Stream) -> Vec<(Range<usize>, Vec<TupleLayout>)> {
    let mut decoder = PgOutputDecoder::new(ProtocolVersion::V4);
    let mut out = Vec::new();
    for r in &s.messages {
        let bytes = &s.buf[r.clone()];
        let tuples: Vec<TupleLayout> = match decoder.decode(bytes).expect("valid stream") {
            Message::Insert(i) => vec![i.new.layout_in(bytes).unwrap()],
            Message::Update(u) => u
                .old
                .iter()
                .map(|o| *o.tuple())
                .chain([u.new])
                .map(|t| t.layout_in(bytes).unwrap())
                .collect(),
            _ => continue,
        };
        out.push((r.clone(), tuples));
    }
    out
}

fn visit_all(t: &TupleData<'_>) -> usize {
    t.columns().map(visit).sum()
}

/// Reads every DML tuple again by decoding its message again (the stream before layouts).
fn read_again_decoding(s: &Stream, kept: &[(Range<usize>, Vec<TupleLayout>)]) -> usize {
    let mut acc = 0;
    for (r, _) in kept {
        match decode_message(&s.buf[r.clone()], ProtocolVersion::V4, false).expect("valid") {
            Message::Insert(i) => acc += visit_all(&i.new),
            Message::Update(u) => {
                acc += u.old.map_or(0, |o| visit_all(o.tuple()));
                acc += visit_all(&u.new);
            }
            _ => {}
        }
    }
    acc
}

/// Reads every DML tuple again from its kept layout.
fn read_again_layout(s: &Stream, kept: &[(Range<usize>, Vec<TupleLayout>)]) -> usize {
    let mut acc = 0;
    for (r, tuples) in kept {
        let bytes = &s.buf[r.clone()];
        for layout in tuples {
            acc += layout.tuple_in(bytes).map_or(0, |t| visit_all(&t));
        }
    }
    acc
}

/// Reads every column of every DML tuple by position.
fn read_by_position(s: &Stream, kept: &[(Range<usize>, Vec<TupleLayout>)]) -> usize {
    let mut acc = 0;
    for (r, tuples) in kept {
        let bytes = &s.buf[r.clone()];
        for layout in tuples {
            if let Some(t) = layout.tuple_in(bytes) {
                acc += (0..t.len())
                    .filter_map(|i| t.column(i))
                    .map(visit)
                    .sum::<usize>();
            }
        }
    }
    acc
}

fn decode_owned(s: &Stream) -> usize {
    let mut decoder = PgOutputDecoder::new(ProtocolVersion::V4);
    let mut acc = 0usize;
    for r in &s.messages {
        let bytes = s.buf.slice(r.clone());
        let owned = decoder
            .decode(&bytes)
            .expect("valid stream")
            .into_owned(&bytes);
        if let OwnedMessage::Insert(i) = &owned {
            acc += i.new.columns.len();
        }
        acc += usize::from(black_box(&owned) != &OwnedMessage::StreamStop);
    }
    acc
}

fn benches(c: &mut Criterion) {
    let streams = [
        build("insert_5col_100B", 5, 100, false),
        build("insert_20col_100B", 20, 100, false),
        build("insert_5col_2KB", 5, 2048, false),
        build("insert_20col_2KB", 20, 2048, false),
        build("update_old_5col_100B", 5, 100, true),
    ];
    for s in &streams {
        eprintln!(
            "{}: {} messages, {} bytes per iteration ({} bytes/message)",
            s.name,
            s.messages.len(),
            s.buf.len(),
            s.buf.len() / s.messages.len()
        );
    }
    let mut group = c.benchmark_group("pgoutput_borrowed");
    for s in &streams {
        group.throughput(Throughput::Bytes(s.buf.len() as u64));
        group.bench_function(&s.name, |b| {
            b.iter(|| black_box(decode_borrowed(black_box(s))));
        });
    }
    group.finish();
    let mut group = c.benchmark_group("pgoutput_borrowed_messages");
    for s in &streams {
        group.throughput(Throughput::Elements(s.messages.len() as u64));
        group.bench_function(&s.name, |b| {
            b.iter(|| black_box(decode_borrowed(black_box(s))));
        });
    }
    group.finish();
    let mut group = c.benchmark_group("read_again");
    for s in &streams {
        let kept = layouts(s);
        group.throughput(Throughput::Elements(kept.len() as u64));
        group.bench_function(format!("{}/decoding", s.name), |b| {
            b.iter(|| black_box(read_again_decoding(black_box(s), &kept)));
        });
        group.bench_function(format!("{}/layout", s.name), |b| {
            b.iter(|| black_box(read_again_layout(black_box(s), &kept)));
        });
        group.bench_function(format!("{}/by_position", s.name), |b| {
            b.iter(|| black_box(read_by_position(black_box(s), &kept)));
        });
    }
    group.finish();
    let mut group = c.benchmark_group("pgoutput_owned");
    for s in &streams {
        group.throughput(Throughput::Bytes(s.buf.len() as u64));
        group.bench_function(&s.name, |b| {
            b.iter(|| black_box(decode_owned(black_box(s))));
        });
    }
    group.finish();
}

criterion_group!(codec, benches);
criterion_main!(codec);
