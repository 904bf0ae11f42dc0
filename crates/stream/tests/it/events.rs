//! Every event kind, live, on every version that has it.

use std::collections::{BTreeSet, HashMap};

use pg_walstream_codec::pgoutput::{Column, OldTuple, ReplicaIdentity, TupleData};
use pg_walstream_codec::{Oid, Xid};
use pg_walstream_stream::{EventKind, OriginFilter, SchemaChange, Streaming};
use pg_walstream_testkit::servers;

use crate::support::{Fixture, collect, text};

/// Column `index` as an integer, from text or binary (int4) format.
fn int(tuple: &TupleData<'_>, index: usize) -> Option<i64> {
    match tuple.columns().nth(index)? {
        Column::Text(v) => std::str::from_utf8(v).ok()?.parse().ok(),
        Column::Binary(v) => Some(i64::from(i32::from_be_bytes(v.try_into().ok()?))),
        Column::Null | Column::UnchangedToast => None,
    }
}

#[tokio::test]
async fn dml_truncate_messages_types_toast_and_alter_table() {
    for server in servers() {
        for binary in [false, true] {
            let v = server.version();
            let fx = Fixture::new(
                server,
                "events",
                "CREATE TYPE mood AS ENUM ('ok', 'sad');
                 CREATE TABLE t (id int PRIMARY KEY, v text, big text, m mood);
                 ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
                 CREATE TABLE u (id int PRIMARY KEY);",
                "FOR TABLE t, u",
            )
            .await;
            let mut stream = fx.start(fx.config().messages(true).binary(binary)).await;
            let big = "x".repeat(10_000);
            for sql in [
                format!("INSERT INTO t VALUES (1, 'a', '{big}', 'ok')"),
                "UPDATE t SET v = 'b' WHERE id = 1".to_owned(),
                "DELETE FROM t WHERE id = 1".to_owned(),
                "INSERT INTO u VALUES (1)".to_owned(),
                "TRUNCATE t, u RESTART IDENTITY".to_owned(),
                "SELECT pg_logical_emit_message(true, 'pfx', 'hello')".to_owned(),
                "SELECT pg_logical_emit_message(false, 'nt', 'bye')".to_owned(),
                "ALTER TABLE t ADD COLUMN extra int DEFAULT 7; INSERT INTO t (id, v) VALUES (2, 'c')"
                    .to_owned(),
            ] {
                fx.exec(&[&sql]).await;
            }
            let events = collect(&mut stream, 7, v).await;
            let ctx = format!("PG {v} binary={binary}");
            let kinds: Vec<&EventKind> = events
                .iter()
                .map(pg_walstream_stream::Event::kind)
                .collect();

            // Begin/Commit pairs carry consistent positions.
            let mut begin = None;
            for kind in &kinds {
                match kind {
                    EventKind::Begin(b) => begin = Some(*b),
                    EventKind::Commit(c) => {
                        let b = begin.take().expect("Begin before Commit");
                        assert_eq!(b.final_lsn, c.commit_lsn, "{ctx}");
                        assert!(c.end_lsn > c.commit_lsn, "{ctx}");
                        assert_eq!(b.commit_time, c.commit_time, "{ctx}");
                        assert!(b.xid.is_valid(), "{ctx}");
                    }
                    _ => {}
                }
            }

            let ty = kinds
                .iter()
                .find_map(|k| match k {
                    EventKind::Type(t) => Some(t),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{ctx}: no Type event"));
            assert_eq!(
                (ty.schema.as_str(), ty.name.as_str()),
                ("public", "mood"),
                "{ctx}"
            );

            let changes: Vec<_> = events
                .iter()
                .filter_map(|e| match e.kind() {
                    EventKind::Insert(c) => Some(("I", c)),
                    EventKind::Update(c) => Some(("U", c)),
                    EventKind::Delete(c) => Some(("D", c)),
                    _ => None,
                })
                .collect();
            assert_eq!(
                changes.iter().map(|(k, _)| *k).collect::<String>(),
                "IUDII",
                "{ctx}"
            );
            let (_, insert) = changes[0];
            let rel = insert.relation();
            assert_eq!((rel.schema(), rel.name()), ("public", "t"), "{ctx}");
            assert_eq!(rel.replica_identity(), ReplicaIdentity::Default, "{ctx}");
            let names: Vec<_> = rel.columns().iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["id", "v", "big", "m"], "{ctx}");
            assert!(
                rel.columns()[0].is_key() && !rel.columns()[1].is_key(),
                "{ctx}"
            );
            assert_eq!(rel.columns()[0].type_oid.0, 23, "{ctx}");
            assert_eq!(rel.columns()[3].type_oid, ty.oid, "{ctx}");
            let new = insert.new_tuple().unwrap();
            assert_eq!(int(&new, 0), Some(1), "{ctx}");
            assert_eq!(text(&new, 1).as_deref(), Some("a"), "{ctx}");
            assert_eq!(text(&new, 2).map(|s| s.len()), Some(10_000), "{ctx}");
            let kind_ok = if binary {
                matches!(new.columns().next(), Some(Column::Binary(_)))
            } else {
                matches!(new.columns().next(), Some(Column::Text(_)))
            };
            assert!(kind_ok, "{ctx}: column format");

            // Unchanged TOAST stays a third state, not NULL.
            let update = changes[1].1.new_tuple().unwrap();
            assert_eq!(text(&update, 1).as_deref(), Some("b"), "{ctx}");
            assert_eq!(
                update.columns().nth(2),
                Some(Column::UnchangedToast),
                "{ctx}"
            );
            assert!(changes[1].1.old_tuple().is_none(), "{ctx}");
            let owned = changes[1].1.to_owned_tuples();
            assert_eq!(owned.new.unwrap().columns.len(), 4, "{ctx}");

            let Some(OldTuple::Key(old)) = changes[2].1.old_tuple() else {
                panic!("{ctx}: delete without key")
            };
            assert_eq!(int(&old, 0), Some(1), "{ctx}");
            assert_eq!(old.columns().nth(1), Some(Column::Null), "{ctx}");

            assert_eq!(changes[3].1.relation().name(), "u", "{ctx}");

            // ALTER TABLE mid-stream: a new Relation, and the insert decodes with it.
            let (_, after_alter) = changes[4];
            assert_eq!(after_alter.relation().columns().len(), 5, "{ctx}");
            let row = after_alter.new_tuple().unwrap();
            assert_eq!(int(&row, 4), Some(7), "{ctx}");
            assert_eq!(text(&row, 1).as_deref(), Some("c"), "{ctx}");
            assert!(
                !std::sync::Arc::ptr_eq(after_alter.relation(), insert.relation()),
                "{ctx}"
            );
            // Rows by name, and the Relation event of the ALTER says what changed.
            let by_name = insert.new_row().unwrap();
            assert_eq!(by_name.len(), 4, "{ctx}");
            assert_eq!(
                rel.type_name(rel.columns()[3].type_oid),
                Some("mood"),
                "{ctx}"
            );
            assert_eq!(rel.type_name(Oid(23)), Some("int4"), "{ctx}");
            if !binary {
                assert_eq!(by_name.get("v").unwrap().as_str(), Some(Ok("a")), "{ctx}");
                assert_eq!(by_name.get("id").unwrap().as_str(), Some(Ok("1")), "{ctx}");
                let after = after_alter.new_row().unwrap();
                assert_eq!(after.get("extra").unwrap().as_str(), Some(Ok("7")), "{ctx}");
            }
            assert!(by_name.get("extra").is_none(), "{ctx}");
            let deleted = changes[2].1.old_row().unwrap();
            assert!(deleted.is_key_only(), "{ctx}");
            let names: Vec<&str> = deleted.iter().map(|(c, _)| c.name.as_str()).collect();
            assert_eq!(names, ["id"], "{ctx}: a key row has the key columns only");
            assert!(deleted.get("v").is_none(), "{ctx}");
            let relation_events: Vec<_> = kinds
                .iter()
                .filter_map(|k| match k {
                    EventKind::Relation(r) if r.relation().name() == "t" => Some(r),
                    _ => None,
                })
                .collect();
            assert!(relation_events[0].is_new(), "{ctx}");
            let altered = relation_events
                .iter()
                .find(|r| !r.changes().is_empty())
                .unwrap_or_else(|| panic!("{ctx}: no Relation event with changes"));
            assert_eq!(
                altered.changes(),
                [SchemaChange::ColumnAdded {
                    name: "extra".into()
                }],
                "{ctx}"
            );
            assert_eq!(altered.previous().unwrap().columns().len(), 4, "{ctx}");

            let truncate = kinds
                .iter()
                .find_map(|k| match k {
                    EventKind::Truncate(t) => Some(t),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{ctx}: no Truncate"));
            let mut truncated: Vec<_> = truncate.relations.iter().map(|r| r.name()).collect();
            truncated.sort_unstable();
            assert_eq!(truncated, ["t", "u"], "{ctx}");
            assert!(truncate.restart_identity() && !truncate.cascade(), "{ctx}");

            let messages: Vec<_> = kinds
                .iter()
                .filter_map(|k| match k {
                    EventKind::Message(m) => Some(m),
                    _ => None,
                })
                .collect();
            assert_eq!(messages.len(), 2, "{ctx}");
            assert!(messages[0].is_transactional(), "{ctx}");
            assert_eq!(
                (messages[0].prefix.as_str(), &messages[0].content[..]),
                ("pfx", &b"hello"[..]),
                "{ctx}"
            );
            assert!(!messages[1].is_transactional(), "{ctx}");
            assert_eq!(
                (messages[1].prefix.as_str(), &messages[1].content[..]),
                ("nt", &b"bye"[..]),
                "{ctx}"
            );
            stream
                .stop()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: stop: {e}"));
        }
    }
}

/// Applies streamed blocks the way a consumer must: changes are grouped by top-level xid,
/// a Stream Abort discards its subtransaction's rows (all of them for the top-level xid).
#[derive(Default)]
struct StreamApplier {
    current: Option<Xid>,
    pending: HashMap<Xid, Vec<(Xid, i64)>>,
    committed: BTreeSet<i64>,
    sub_aborts: usize,
    top_aborts: usize,
    abort_info: usize,
    stream_commits: usize,
    /// Top-level xids that had at least one block streamed.
    streamed: BTreeSet<Xid>,
    /// Top-level xids ended by a Stream Commit / a top-level Stream Abort.
    stream_committed: BTreeSet<Xid>,
    stream_aborted: BTreeSet<Xid>,
}

impl StreamApplier {
    fn apply(&mut self, kind: &EventKind, ctx: &str) {
        match kind {
            EventKind::StreamStart(s) => {
                self.current = Some(s.xid);
                self.streamed.insert(s.xid);
            }
            EventKind::StreamStop => self.current = None,
            EventKind::Insert(c) => {
                let id = int(&c.new_tuple().unwrap(), 0).unwrap();
                if let Some(top) = self.current {
                    let xid = c
                        .xid()
                        .unwrap_or_else(|| panic!("{ctx}: streamed change without xid"));
                    self.pending.entry(top).or_default().push((xid, id));
                } else {
                    assert!(c.xid().is_none(), "{ctx}");
                    self.committed.insert(id);
                }
            }
            EventKind::StreamAbort(a) => {
                if a.abort.is_some() {
                    self.abort_info += 1;
                }
                if a.xid == a.subxid {
                    self.top_aborts += 1;
                    self.stream_aborted.insert(a.xid);
                    self.pending.remove(&a.xid);
                } else {
                    self.sub_aborts += 1;
                    if let Some(rows) = self.pending.get_mut(&a.xid) {
                        rows.retain(|(x, _)| *x != a.subxid);
                    }
                }
            }
            EventKind::StreamCommit(c) => {
                self.stream_commits += 1;
                self.stream_committed.insert(c.xid);
                for (_, id) in self.pending.remove(&c.xid).unwrap_or_default() {
                    self.committed.insert(id);
                }
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn streamed_transactions_with_savepoint_and_rollback() {
    for server in servers() {
        let v = server.version();
        let modes: &[Streaming] = if v >= 16 {
            &[Streaming::On, Streaming::Parallel]
        } else {
            &[Streaming::On]
        };
        for &mode in modes {
            let ctx = format!("PG {v} {mode:?}");
            let fx = Fixture::new(
                server,
                "streamed",
                "CREATE TABLE s (id int PRIMARY KEY, pad text)",
                "FOR TABLE s",
            )
            .await;
            let mut stream = fx.start(fx.config().streaming(mode)).await;
            fx.exec(&[
                "BEGIN;
                 INSERT INTO s SELECT g, repeat('p', 100) FROM generate_series(1, 3000) g;
                 SAVEPOINT sp;
                 INSERT INTO s SELECT g, repeat('x', 100) FROM generate_series(100001, 103000) g;
                 ROLLBACK TO sp;
                 INSERT INTO s VALUES (5000, 'last');
                 COMMIT;",
                "BEGIN;
                 INSERT INTO s SELECT g, repeat('q', 100) FROM generate_series(200001, 203000) g;
                 ROLLBACK;",
                "INSERT INTO s VALUES (6000, 'after')",
            ])
            .await;
            // Until the Commit of the last, small transaction (PG 18 no longer streams a
            // transaction already known to be aborted, so the number of ends varies).
            let mut applier = StreamApplier::default();
            loop {
                let event =
                    tokio::time::timeout(std::time::Duration::from_secs(60), stream.next_event())
                        .await
                        .unwrap_or_else(|_| panic!("{ctx}: timed out"))
                        .unwrap_or_else(|| panic!("{ctx}: stream ended"))
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                applier.apply(event.kind(), &ctx);
                if matches!(event.kind(), EventKind::Commit(_)) && applier.committed.contains(&6000)
                {
                    break;
                }
            }
            let expected: BTreeSet<i64> = (1..=3000).chain([5000, 6000]).collect();
            assert_eq!(applier.committed, expected, "{ctx}");
            assert_eq!(applier.stream_commits, 1, "{ctx}");
            assert!(
                applier.sub_aborts >= 1,
                "{ctx}: savepoint rollback not streamed"
            );
            // What the server guarantees about the rolled-back transaction: a top-level Stream
            // Abort arrives iff some of its changes were streamed (PostgreSQL 18 may skip
            // streaming a transaction it already knows aborted, earlier versions stream it),
            // once, and none of its rows is ever committed (checked above).
            let streamed_not_committed: BTreeSet<Xid> = applier
                .streamed
                .difference(&applier.stream_committed)
                .copied()
                .collect();
            assert_eq!(
                applier.stream_aborted, streamed_not_committed,
                "{ctx}: top-level aborts for exactly the streamed, uncommitted transactions"
            );
            assert_eq!(applier.top_aborts, applier.stream_aborted.len(), "{ctx}");
            if mode == Streaming::Parallel {
                assert_eq!(
                    applier.abort_info,
                    applier.sub_aborts + applier.top_aborts,
                    "{ctx}: v4 abort LSN/time"
                );
            } else {
                assert_eq!(applier.abort_info, 0, "{ctx}");
            }
            stream
                .stop()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: stop: {e}"));
        }
    }
}

#[tokio::test]
async fn prepared_transactions_committed_and_rolled_back() {
    for server in servers().iter().filter(|s| s.version() >= 15) {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "twophase",
            "CREATE TABLE tp (id int PRIMARY KEY)",
            "FOR TABLE tp",
        )
        .await;
        let mut stream = fx.start(fx.config().two_phase(true)).await;
        fx.exec(&[
            "BEGIN; INSERT INTO tp VALUES (1); PREPARE TRANSACTION 'g1';",
            "COMMIT PREPARED 'g1'",
            "BEGIN; INSERT INTO tp VALUES (2); PREPARE TRANSACTION 'g2';",
            "ROLLBACK PREPARED 'g2'",
        ])
        .await;
        let events = collect(&mut stream, 4, v).await;
        let summary: Vec<String> = events
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::BeginPrepare(b) => Some(format!("b:{}", b.gid)),
                EventKind::Insert(_) => Some("I".to_owned()),
                EventKind::Prepare(p) => Some(format!("P:{}", p.gid)),
                EventKind::CommitPrepared(c) => Some(format!("K:{}", c.gid)),
                EventKind::RollbackPrepared(r) => Some(format!("r:{}", r.gid)),
                _ => None,
            })
            .collect();
        assert_eq!(
            summary,
            ["b:g1", "I", "P:g1", "K:g1", "b:g2", "I", "P:g2", "r:g2"],
            "PG {v}"
        );
        let xids: Vec<Xid> = events
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::BeginPrepare(_)
                | EventKind::Prepare(_)
                | EventKind::CommitPrepared(_)
                | EventKind::RollbackPrepared(_) => e.kind().xid(),
                _ => None,
            })
            .collect();
        assert!(xids[0] == xids[1] && xids[1] == xids[2], "PG {v}: {xids:?}");
        assert!(
            xids[3] == xids[4] && xids[4] == xids[5] && xids[0] != xids[3],
            "PG {v}: {xids:?}"
        );
        stream.stop().await.unwrap();
    }
}

#[tokio::test]
async fn origins_any_and_none() {
    for server in servers().iter().filter(|s| s.version() >= 16) {
        let v = server.version();
        for filter in [OriginFilter::Any, OriginFilter::None] {
            let fx = Fixture::new(
                server,
                "origin",
                "CREATE TABLE o (id int PRIMARY KEY)",
                "FOR TABLE o",
            )
            .await;
            // Origins are cluster-wide: one per run and filter.
            let origin = pg_walstream_testkit::unique_name("origin");
            let mut stream = fx.start(fx.config().origin(filter)).await;
            fx.exec(&[
                &format!("SELECT pg_replication_origin_create('{origin}')"),
                &format!("SELECT pg_replication_origin_session_setup('{origin}')"),
                "INSERT INTO o VALUES (1)",
                "SELECT pg_replication_origin_session_reset()",
                "INSERT INTO o VALUES (2)",
            ])
            .await;
            let commits = if filter == OriginFilter::Any { 2 } else { 1 };
            let events = collect(&mut stream, commits, v).await;
            let origins: Vec<_> = events
                .iter()
                .filter_map(|e| match e.kind() {
                    EventKind::Origin(o) => Some(o.name.clone()),
                    _ => None,
                })
                .collect();
            let ids: Vec<_> = events
                .iter()
                .filter_map(|e| match e.kind() {
                    EventKind::Insert(c) => int(&c.new_tuple().unwrap(), 0),
                    _ => None,
                })
                .collect();
            if filter == OriginFilter::Any {
                assert_eq!(origins, [origin], "PG {v}");
                assert_eq!(ids, [1, 2], "PG {v}");
            } else {
                assert!(origins.is_empty(), "PG {v}");
                assert_eq!(ids, [2], "PG {v}");
            }
            stream.stop().await.unwrap();
        }
    }
}

#[tokio::test]
async fn streamed_prepared_transaction() {
    for server in servers().iter().filter(|s| s.version() >= 15) {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "streamprep",
            "CREATE TABLE sp (id int PRIMARY KEY, pad text)",
            "FOR TABLE sp",
        )
        .await;
        let mut stream = fx
            .start(fx.config().two_phase(true).streaming(Streaming::On))
            .await;
        fx.exec(&[
            "BEGIN;
             INSERT INTO sp SELECT g, repeat('s', 100) FROM generate_series(1, 3000) g;
             PREPARE TRANSACTION 'big';",
            "COMMIT PREPARED 'big'",
        ])
        .await;
        let events = collect(&mut stream, 2, v).await;
        let mut inserts = 0;
        let mut top = None;
        let mut tail = Vec::new();
        for e in &events {
            match e.kind() {
                EventKind::StreamStart(s) => top = Some(s.xid),
                EventKind::Insert(c) => {
                    assert_eq!(c.xid(), top, "PG {v}: streamed change carries its xid");
                    inserts += 1;
                }
                EventKind::StreamPrepare(p) => tail.push(format!("p:{}", p.gid)),
                EventKind::CommitPrepared(c) => {
                    assert_eq!(Some(c.xid), top, "PG {v}");
                    tail.push(format!("K:{}", c.gid));
                }
                _ => {}
            }
        }
        assert_eq!(inserts, 3000, "PG {v}");
        assert_eq!(tail, ["p:big", "K:big"], "PG {v}");
        stream.stop().await.unwrap();
    }
}
