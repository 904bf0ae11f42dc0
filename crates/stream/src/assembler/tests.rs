//! The assembler over real events: pgoutput messages encoded, decoded by the stream's core,
//! then assembled — fixed scenarios and generated interleavings checked against a model.

use std::time::Instant;

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    Begin, BeginPrepare, Commit, CommitPrepared, Insert, LogicalMessage, OwnedColumn, OwnedMessage,
    OwnedTupleData, Prepare, ProtocolVersion, Relation, RelationColumn, ReplicaIdentity,
    RollbackPrepared, StreamAbort, StreamCommit, StreamStart,
};
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};

use super::*;
use crate::core::{CoreOptions, LogicalCore};
use crate::feedback::Feedback;

const REL: Oid = Oid(16384);

/// Encodes messages into frames at increasing LSNs, decodes them with a real core and feeds
/// the events to an assembler.
struct Harness {
    core: LogicalCore,
    feedback: Feedback,
    assembler: TransactionAssembler,
    lsn: u64,
    now: Instant,
}

impl Harness {
    fn new(version: ProtocolVersion, config: AssemblerConfig) -> Self {
        let now = Instant::now();
        let feedback = Feedback::new();
        Harness {
            core: LogicalCore::new(CoreOptions::new(version), feedback.clone(), now),
            feedback,
            assembler: TransactionAssembler::new(config),
            lsn: 0x1000,
            now,
        }
    }

    fn next_lsn(&mut self) -> u64 {
        self.lsn += 0x40;
        self.lsn
    }

    fn send(&mut self, message: &OwnedMessage) {
        let mut data = Vec::new();
        message.encode(&mut data).unwrap();
        let lsn = Lsn(self.next_lsn());
        let mut frame = Vec::new();
        XLogData {
            wal_start: lsn,
            wal_end: lsn,
            send_time: PgTimestamp(0),
            data: data.into(),
        }
        .encode(&mut frame);
        self.core.handle_copy_data(self.now, frame.into());
        while let Some(event) = self.core.poll_event() {
            let event = event.expect("valid event");
            self.assembler.push(event).expect("assembles");
        }
    }

    fn items(&mut self) -> Vec<Assembled> {
        std::iter::from_fn(|| self.assembler.poll()).collect()
    }

    fn relation(&mut self, xid: Option<Xid>) {
        self.send(&OwnedMessage::Relation(Relation {
            xid,
            oid: REL,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![RelationColumn {
                flags: 1,
                name: "id".into(),
                type_oid: Oid(23),
                type_modifier: -1,
            }],
        }));
    }

    fn insert(&mut self, xid: Option<Xid>, value: u32) {
        self.send(&OwnedMessage::Insert(Insert {
            xid,
            relation: REL,
            new: OwnedTupleData {
                columns: vec![OwnedColumn::Text(Bytes::from(value.to_string()))],
            },
        }));
    }

    /// Begin, Relation, inserts, Commit; returns the end LSN.
    fn transaction(&mut self, xid: u32, values: &[u32]) -> Lsn {
        let commit = self.lsn + 0x40 * (values.len() as u64 + 3);
        self.send(&OwnedMessage::Begin(Begin {
            final_lsn: Lsn(commit),
            commit_time: PgTimestamp(1),
            xid: Xid(xid),
        }));
        self.relation(None);
        for value in values {
            self.insert(None, *value);
        }
        let end = Lsn(commit + 8);
        self.send(&OwnedMessage::Commit(Commit {
            flags: 0,
            commit_lsn: Lsn(commit),
            end_lsn: end,
            commit_time: PgTimestamp(1),
        }));
        end
    }

    fn stream_start(&mut self, xid: u32, first: bool) {
        self.send(&OwnedMessage::StreamStart(StreamStart {
            xid: Xid(xid),
            first_segment: first,
        }));
        self.relation(Some(Xid(xid)));
    }

    fn stream_stop(&mut self) {
        self.send(&OwnedMessage::StreamStop);
    }

    fn stream_commit(&mut self, xid: u32) -> Lsn {
        let commit = self.lsn + 0x40;
        let end = Lsn(commit + 8);
        self.send(&OwnedMessage::StreamCommit(StreamCommit {
            xid: Xid(xid),
            flags: 0,
            commit_lsn: Lsn(commit),
            end_lsn: end,
            commit_time: PgTimestamp(1),
        }));
        end
    }

    fn stream_abort(&mut self, xid: u32, subxid: u32) {
        self.send(&OwnedMessage::StreamAbort(StreamAbort {
            xid: Xid(xid),
            subxid: Xid(subxid),
            abort: None,
        }));
    }

    fn prepared(&mut self, xid: u32, gid: &str, values: &[u32]) -> (Lsn, Lsn) {
        let prepare_lsn = self.lsn + 0x40 * (values.len() as u64 + 3);
        let end = Lsn(prepare_lsn + 8);
        self.send(&OwnedMessage::BeginPrepare(BeginPrepare {
            prepare_lsn: Lsn(prepare_lsn),
            end_lsn: end,
            prepare_time: PgTimestamp(1),
            xid: Xid(xid),
            gid: gid.into(),
        }));
        self.relation(None);
        for value in values {
            self.insert(None, *value);
        }
        self.send(&OwnedMessage::Prepare(Prepare {
            flags: 0,
            prepare_lsn: Lsn(prepare_lsn),
            end_lsn: end,
            prepare_time: PgTimestamp(1),
            xid: Xid(xid),
            gid: gid.into(),
        }));
        (Lsn(prepare_lsn), end)
    }

    fn commit_prepared(&mut self, xid: u32, gid: &str) -> Lsn {
        let commit = self.lsn + 0x40;
        let end = Lsn(commit + 8);
        self.send(&OwnedMessage::CommitPrepared(CommitPrepared {
            flags: 0,
            commit_lsn: Lsn(commit),
            end_lsn: end,
            commit_time: PgTimestamp(2),
            xid: Xid(xid),
            gid: gid.into(),
        }));
        end
    }

    fn rollback_prepared(&mut self, xid: u32, gid: &str, prepare_end: Lsn) -> Lsn {
        let end = Lsn(self.lsn + 0x48);
        self.send(&OwnedMessage::RollbackPrepared(RollbackPrepared {
            flags: 0,
            prepare_end_lsn: prepare_end,
            rollback_end_lsn: end,
            prepare_time: PgTimestamp(1),
            rollback_time: PgTimestamp(2),
            xid: Xid(xid),
            gid: gid.into(),
        }));
        end
    }
}

/// The inserted values of a transaction, in order.
fn values(transaction: Transaction) -> Vec<u32> {
    transaction
        .into_events()
        .unwrap()
        .filter_map(|event| {
            let event = event.unwrap();
            let EventKind::Insert(change) = event.kind() else {
                return None;
            };
            let tuple = change.new_tuple().unwrap();
            let value = tuple.columns().next().unwrap().value().unwrap();
            Some(std::str::from_utf8(value).unwrap().parse().unwrap())
        })
        .collect()
}

/// `(xid, ack, values)` of each transaction item; other items are returned apart.
type Summary = Vec<(u32, Lsn, Vec<u32>)>;

fn transactions(items: Vec<Assembled>) -> (Summary, Vec<Assembled>) {
    let mut done = Vec::new();
    let mut other = Vec::new();
    for item in items {
        match item {
            Assembled::Transaction(t) => done.push((t.xid().0, t.ack_lsn(), values(t))),
            item => other.push(item),
        }
    }
    (done, other)
}

fn spill_config(limit: usize) -> AssemblerConfig {
    AssemblerConfig {
        memory_limit: limit,
        ..AssemblerConfig::default()
    }
}

#[test]
fn protocol_1_transactions_whole_in_commit_order() {
    let mut h = Harness::new(ProtocolVersion::V1, AssemblerConfig::default());
    let first = h.transaction(10, &[1, 2, 3]);
    assert_eq!(h.assembler.memory_held(), 0);
    let second = h.transaction(11, &[4]);
    let (done, other) = transactions(h.items());
    assert!(other.is_empty());
    assert_eq!(
        done,
        vec![(10, first, vec![1, 2, 3]), (11, second, vec![4])]
    );
}

#[test]
fn nothing_is_delivered_before_the_commit() {
    let mut h = Harness::new(ProtocolVersion::V1, AssemblerConfig::default());
    h.send(&OwnedMessage::Begin(Begin {
        final_lsn: Lsn(0x9000),
        commit_time: PgTimestamp(1),
        xid: Xid(5),
    }));
    h.relation(None);
    h.insert(None, 7);
    assert!(h.assembler.memory_held() > 0);
    assert!(h.items().is_empty(), "nothing before the commit");
}

/// Interleaved streamed transactions; a subtransaction abort drops exactly its changes.
fn streamed_scenario(h: &mut Harness) -> (Lsn, Lsn) {
    h.stream_start(100, true);
    h.insert(Some(Xid(100)), 1);
    h.insert(Some(Xid(101)), 2); // subtransaction 101, aborted below
    h.insert(Some(Xid(102)), 3); // subtransaction 102, kept
    h.stream_stop();
    h.stream_start(200, true);
    h.insert(Some(Xid(200)), 20);
    h.stream_stop();
    h.stream_start(100, false);
    h.insert(Some(Xid(101)), 4);
    h.insert(Some(Xid(100)), 5);
    h.stream_stop();
    h.stream_start(300, true);
    h.insert(Some(Xid(300)), 30);
    h.stream_stop();
    h.stream_abort(100, 101);
    h.stream_abort(300, 300);
    let second = h.stream_commit(200);
    let first = h.stream_commit(100);
    (first, second)
}

#[test]
fn streamed_transactions_interleave_and_aborts_drop_exactly_their_changes() {
    for version in [ProtocolVersion::V2, ProtocolVersion::V4] {
        for limit in [usize::MAX, 0, 600] {
            let mut h = Harness::new(version, spill_config(limit));
            let (first, second) = streamed_scenario(&mut h);
            assert_eq!(h.assembler.memory_held(), 0, "limit {limit}");
            let (done, other) = transactions(h.items());
            assert!(other.is_empty());
            assert_eq!(
                done,
                vec![(200, second, vec![20]), (100, first, vec![1, 3, 5])],
                "{version:?} limit {limit}"
            );
        }
    }
}

#[test]
fn spilled_transactions_report_their_file_and_keep_their_stream() {
    for limit in [0, usize::MAX] {
        let mut h = Harness::new(ProtocolVersion::V2, spill_config(limit));
        let (_first, _second) = streamed_scenario(&mut h);
        let mut items = h.items();
        let Assembled::Transaction(t) = items.remove(1) else {
            panic!("{items:?}")
        };
        assert_eq!(t.is_spilled(), limit == 0);
        assert_eq!(t.spilled_bytes() > 0, limit == 0);
        assert!(!t.is_partial());
        // Events rebuilt from owned or spilled bytes still belong to their stream.
        let other = Feedback::new();
        for event in t.into_events().unwrap() {
            let event = event.unwrap();
            assert!(h.feedback.ack(&event).is_ok());
            assert!(other.ack(&event).is_err());
        }
    }
}

#[test]
fn partial_overflow_hands_out_chunks_and_reports_aborts() {
    let config = AssemblerConfig {
        memory_limit: 0,
        overflow: Overflow::Partial,
        ..AssemblerConfig::default()
    };
    let mut h = Harness::new(ProtocolVersion::V2, config);
    let _ = streamed_scenario(&mut h);
    assert_eq!(h.assembler.memory_held(), 0);
    let mut chunked: Vec<(u32, u32)> = Vec::new();
    let mut aborted = Vec::new();
    let mut finals = Vec::new();
    for item in h.items() {
        match item {
            Assembled::Chunk(chunk) => {
                for event in chunk.events {
                    if let EventKind::Insert(change) = event.kind() {
                        let tuple = change.new_tuple().unwrap();
                        let text = tuple.columns().next().unwrap().value().unwrap();
                        let value = std::str::from_utf8(text).unwrap().parse().unwrap();
                        chunked.push((change.xid().unwrap().0, value));
                    }
                }
            }
            Assembled::Aborted { xid, subxid } => aborted.push((xid.0, subxid.0)),
            Assembled::Transaction(t) => {
                assert!(t.is_partial());
                finals.push(t.xid().0);
            }
            other => panic!("{other:?}"),
        }
    }
    // Every change went out in a chunk, in order; the consumer learns what to void.
    assert_eq!(
        chunked,
        vec![
            (100, 1),
            (101, 2),
            (102, 3),
            (200, 20),
            (101, 4),
            (100, 5),
            (300, 30)
        ]
    );
    assert_eq!(aborted, vec![(100, 101), (300, 300)]);
    assert_eq!(finals, vec![200, 100]);
}

#[test]
fn two_phase_at_commit_prepared_holds_and_caps_later_positions() {
    for limit in [usize::MAX, 0] {
        let mut h = Harness::new(ProtocolVersion::V3, spill_config(limit));
        let (prepare_lsn, _) = h.prepared(50, "g1", &[1, 2]);
        assert!(h.items().is_empty(), "held until COMMIT PREPARED");
        // A transaction committed while g1 is held: its position stops at g1's prepare.
        let later = h.transaction(51, &[3]);
        let (done, _) = transactions(h.items());
        assert_eq!(done, vec![(51, prepare_lsn, vec![3])]);
        assert!(later > prepare_lsn);
        let (_, prepare_end) = h.prepared(52, "g2", &[4]);
        let end = h.commit_prepared(50, "g1");
        let rollback_end = h.rollback_prepared(52, "g2", prepare_end);
        let items = h.items();
        assert_eq!(h.assembler.memory_held(), 0);
        let mut items = items.into_iter();
        let Some(Assembled::Transaction(t)) = items.next() else {
            panic!("g1 first")
        };
        assert!(
            matches!(t.end(), TransactionEnd::CommitPrepared { commit, .. } if commit.gid == "g1")
        );
        // g2 is still held when g1 commits: g1's position is capped at g2's prepare.
        assert!(t.ack_lsn() < end);
        assert_eq!(values(t), vec![1, 2]);
        let Some(Assembled::RollbackPrepared(passed)) = items.next() else {
            panic!("then the rollback")
        };
        assert_eq!(passed.ack_lsn, Some(rollback_end));
        assert!(items.next().is_none());
    }
}

#[test]
fn two_phase_at_prepare_delivers_then_passes_the_decision() {
    let config = AssemblerConfig {
        two_phase: TwoPhaseDelivery::AtPrepare,
        ..AssemblerConfig::default()
    };
    let mut h = Harness::new(ProtocolVersion::V3, config);
    let (_, prepare_end) = h.prepared(50, "g1", &[1]);
    let end = h.commit_prepared(50, "g1");
    let items = h.items();
    assert_eq!(items.len(), 2);
    let Assembled::Transaction(t) = &items[0] else {
        panic!("{items:?}")
    };
    assert!(matches!(t.end(), TransactionEnd::Prepare(p) if p.gid == "g1"));
    assert_eq!(t.ack_lsn(), prepare_end);
    assert!(matches!(&items[1], Assembled::CommitPrepared(p) if p.ack_lsn == Some(end)));
}

#[test]
fn non_transactional_messages_pass_through() {
    let mut h = Harness::new(ProtocolVersion::V1, AssemblerConfig::default());
    h.send(&OwnedMessage::Message(LogicalMessage {
        xid: None,
        flags: 0,
        lsn: Lsn(0x5000),
        prefix: "p".into(),
        content: Bytes::from_static(b"hello"),
    }));
    let items = h.items();
    assert!(matches!(&items[..], [Assembled::Message(p)] if p.ack_lsn == Some(Lsn(0x5000))));
}

#[test]
fn events_out_of_place_are_errors() {
    // A Relation event taken from inside a transaction, given to an assembler that never saw
    // its Begin (events dropped on the way).
    let mut h = Harness::new(ProtocolVersion::V1, AssemblerConfig::default());
    h.send(&OwnedMessage::Begin(Begin {
        final_lsn: Lsn(0x9000),
        commit_time: PgTimestamp(1),
        xid: Xid(9),
    }));
    let mut data = Vec::new();
    OwnedMessage::Relation(Relation {
        xid: None,
        oid: REL,
        namespace: "public".into(),
        name: "t".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: Vec::new(),
    })
    .encode(&mut data)
    .unwrap();
    let mut frame = Vec::new();
    XLogData {
        wal_start: Lsn(0x2000),
        wal_end: Lsn(0x2000),
        send_time: PgTimestamp(0),
        data: data.into(),
    }
    .encode(&mut frame);
    h.core.handle_copy_data(h.now, frame.into());
    let relation = h.core.poll_event().unwrap().unwrap();
    let mut fresh = TransactionAssembler::new(AssemblerConfig::default());
    let error = fresh.push(relation).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Assembly {
                lsn: Lsn(0x2000),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

/// A tiny deterministic generator (xorshift) for interleavings.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn generated_interleavings_match_the_model() {
    let mut value = 0u32;
    for seed in 1..=150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let limit = [usize::MAX, 0, 700, 3000][(seed % 4) as usize];
        let mut h = Harness::new(ProtocolVersion::V4, spill_config(limit));
        // Up to 4 open top-level transactions, each with up to 3 subtransactions.
        let tops: Vec<u32> = (0..=rng.below(4) as u32).map(|i| 1000 + i * 10).collect();
        let mut rows: Vec<Vec<(u32, u32)>> = vec![Vec::new(); tops.len()];
        let mut started = vec![false; tops.len()];
        for _ in 0..=rng.below(12) {
            let t = rng.below(tops.len() as u64) as usize;
            h.stream_start(tops[t], !started[t]);
            started[t] = true;
            for _ in 0..rng.below(5) {
                let sub = tops[t] + rng.below(4) as u32; // 0: the top-level xid itself
                value += 1;
                h.insert(Some(Xid(sub)), value);
                rows[t].push((sub, value));
            }
            h.stream_stop();
        }
        // Decide each: abort some subtransactions, then commit or abort the whole.
        let mut expected = Vec::new();
        let mut order: Vec<usize> = (0..tops.len()).filter(|t| started[*t]).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for t in order {
            let top = tops[t];
            let mut aborted = Vec::new();
            for sub in 1..4 {
                if rng.below(3) == 0 {
                    h.stream_abort(top, top + sub);
                    aborted.push(top + sub);
                }
            }
            if rng.below(4) == 0 {
                h.stream_abort(top, top);
            } else {
                let end = h.stream_commit(top);
                let kept = rows[t]
                    .iter()
                    .filter(|(sub, _)| !aborted.contains(sub))
                    .map(|(_, v)| *v)
                    .collect();
                expected.push((top, end, kept));
            }
        }
        assert_eq!(h.assembler.memory_held(), 0, "seed {seed}");
        let (done, other) = transactions(h.items());
        assert!(other.is_empty(), "seed {seed}");
        assert_eq!(done, expected, "seed {seed} limit {limit}");
    }
}

#[test]
fn reset_drops_open_transactions() {
    let mut h = Harness::new(ProtocolVersion::V2, spill_config(0));
    h.stream_start(7, true);
    h.insert(Some(Xid(7)), 1);
    h.stream_stop();
    h.assembler.reset();
    assert_eq!(h.assembler.memory_held(), 0);
    assert!(h.items().is_empty());
}

#[test]
fn reconnect_drops_undecided_transactions_and_keeps_decided_ones() {
    for overflow in [Overflow::Spill { dir: None }, Overflow::Partial] {
        let config = AssemblerConfig {
            memory_limit: 0,
            overflow: overflow.clone(),
            ..AssemblerConfig::default()
        };
        let mut h = Harness::new(ProtocolVersion::V2, config);
        let decided = h.transaction(1, &[1]);
        h.stream_start(7, true);
        h.insert(Some(Xid(7)), 2);
        h.stream_stop();
        let info = crate::events::Reconnected {
            attempt: 1,
            resume_lsn: decided,
            downtime: std::time::Duration::from_millis(5),
        };
        let event = Event::reconnected(info, ProtocolVersion::V2, h.feedback.stream_id());
        h.assembler.push(event).unwrap();
        assert_eq!(h.assembler.memory_held(), 0);
        // The new connection sends transaction 7 again, whole.
        h.stream_start(7, true);
        h.insert(Some(Xid(7)), 2);
        h.stream_stop();
        let end = h.stream_commit(7);
        let mut kinds = Vec::new();
        let mut rows = Vec::new();
        for item in h.items() {
            match item {
                Assembled::Transaction(t) => {
                    kinds.push(format!("T{}", t.xid().0));
                    rows.push((t.xid().0, t.ack_lsn(), values(t)));
                }
                Assembled::Chunk(c) => kinds.push(format!("C{}", c.xid.0)),
                Assembled::Aborted { xid, .. } => kinds.push(format!("A{}", xid.0)),
                Assembled::Reconnected(_) => kinds.push("R".into()),
                other => panic!("{other:?}"),
            }
        }
        if overflow == Overflow::Partial {
            // Chunks of 7 went out before the reconnect: voided, then 7 again from the start.
            let r = kinds.iter().position(|k| k == "R").unwrap();
            assert!(kinds[..r].contains(&"T1".to_owned()), "{kinds:?}");
            assert_eq!(kinds[r - 1], "A7", "{kinds:?}");
            assert_eq!(kinds.last().map(String::as_str), Some("T7"), "{kinds:?}");
        } else {
            assert_eq!(kinds, ["T1", "R", "T7"]);
            assert_eq!(rows, vec![(1, decided, vec![1]), (7, end, vec![2])]);
        }
    }
}
