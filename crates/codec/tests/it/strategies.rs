//! proptest strategies producing owned messages with the protocol context they need.

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    AbortInfo, Begin, BeginPrepare, Commit, CommitPrepared, Delete, Insert, LogicalMessage,
    OldTuple, Origin, OwnedColumn, OwnedMessage, OwnedTupleData, Prepare, ProtocolVersion,
    Relation, RelationColumn, ReplicaIdentity, RollbackPrepared, StreamAbort, StreamCommit,
    StreamStart, Truncate, Type, Update,
};
use pg_walstream_codec::replication::{
    BackendMessage, FrontendMessage, HotStandbyFeedback, PrimaryKeepalive, StandbyStatusUpdate,
    XLogData,
};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};
use proptest::prelude::*;

/// A message plus the decoder context (version, in-stream) under which it is valid.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) msg: OwnedMessage,
    pub(crate) version: ProtocolVersion,
    pub(crate) in_stream: bool,
}

fn lsn() -> impl Strategy<Value = Lsn> {
    any::<u64>().prop_map(Lsn)
}
fn ts() -> impl Strategy<Value = PgTimestamp> {
    any::<i64>().prop_map(PgTimestamp)
}
fn xid() -> impl Strategy<Value = Xid> {
    any::<u32>().prop_map(Xid)
}
fn oid() -> impl Strategy<Value = Oid> {
    any::<u32>().prop_map(Oid)
}
fn name() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}
fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

pub(crate) fn column() -> impl Strategy<Value = OwnedColumn> {
    prop_oneof![
        Just(OwnedColumn::Null),
        Just(OwnedColumn::UnchangedToast),
        bytes(40).prop_map(OwnedColumn::Text),
        bytes(40).prop_map(OwnedColumn::Binary),
    ]
}

fn tuple() -> impl Strategy<Value = OwnedTupleData> {
    proptest::collection::vec(column(), 0..12).prop_map(|columns| OwnedTupleData { columns })
}

fn old_tuple() -> impl Strategy<Value = OldTuple<OwnedTupleData>> {
    prop_oneof![
        tuple().prop_map(OldTuple::Key),
        tuple().prop_map(OldTuple::Full)
    ]
}

fn replica_identity() -> impl Strategy<Value = ReplicaIdentity> {
    prop_oneof![
        Just(ReplicaIdentity::Default),
        Just(ReplicaIdentity::Nothing),
        Just(ReplicaIdentity::Full),
        Just(ReplicaIdentity::Index),
    ]
}

fn relation_column() -> impl Strategy<Value = RelationColumn<String>> {
    (0u8..=1, name(), oid(), any::<i32>()).prop_map(|(flags, name, type_oid, type_modifier)| {
        RelationColumn {
            flags,
            name,
            type_oid,
            type_modifier,
        }
    })
}

/// Messages that may appear inside or outside a streamed block (with an xid inside).
fn either_place(xid: Option<Xid>) -> impl Strategy<Value = OwnedMessage> {
    prop_oneof![
        (
            oid(),
            name(),
            name(),
            replica_identity(),
            proptest::collection::vec(relation_column(), 0..6)
        )
            .prop_map(move |(oid, namespace, name, replica_identity, columns)| {
                OwnedMessage::Relation(Relation {
                    xid,
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                })
            }),
        (oid(), name(), name()).prop_map(move |(oid, namespace, name)| {
            OwnedMessage::Type(Type {
                xid,
                oid,
                namespace,
                name,
            })
        }),
        (oid(), tuple()).prop_map(move |(relation, new)| {
            OwnedMessage::Insert(Insert { xid, relation, new })
        }),
        (oid(), proptest::option::of(old_tuple()), tuple()).prop_map(
            move |(relation, old, new)| {
                OwnedMessage::Update(Update {
                    xid,
                    relation,
                    old,
                    new,
                })
            }
        ),
        (oid(), old_tuple()).prop_map(move |(relation, old)| {
            OwnedMessage::Delete(Delete { xid, relation, old })
        }),
        (0u8..4, proptest::collection::vec(oid(), 0..8)).prop_map(move |(flags, relations)| {
            OwnedMessage::Truncate(Truncate {
                xid,
                flags,
                relations,
            })
        }),
        (0u8..2, lsn(), name(), bytes(64)).prop_map(move |(flags, lsn, prefix, content)| {
            OwnedMessage::Message(LogicalMessage {
                xid,
                flags,
                lsn,
                prefix,
                content,
            })
        }),
        (lsn(), name())
            .prop_map(|(commit_lsn, name)| OwnedMessage::Origin(Origin { commit_lsn, name })),
    ]
}

fn prepare() -> impl Strategy<Value = Prepare<String>> {
    (any::<u8>(), lsn(), lsn(), ts(), xid(), name()).prop_map(
        |(flags, prepare_lsn, end_lsn, prepare_time, xid, gid)| Prepare {
            flags,
            prepare_lsn,
            end_lsn,
            prepare_time,
            xid,
            gid,
        },
    )
}

/// Messages only valid outside streamed blocks, with the minimum version they need.
fn outside_only() -> impl Strategy<Value = (OwnedMessage, ProtocolVersion)> {
    use ProtocolVersion::{V1, V2, V3, V4};
    prop_oneof![
        (lsn(), ts(), xid()).prop_map(|(final_lsn, commit_time, xid)| {
            (
                OwnedMessage::Begin(Begin {
                    final_lsn,
                    commit_time,
                    xid,
                }),
                V1,
            )
        }),
        (any::<u8>(), lsn(), lsn(), ts()).prop_map(|(flags, commit_lsn, end_lsn, commit_time)| {
            (
                OwnedMessage::Commit(Commit {
                    flags,
                    commit_lsn,
                    end_lsn,
                    commit_time,
                }),
                V1,
            )
        }),
        (xid(), any::<bool>()).prop_map(|(xid, first_segment)| {
            (
                OwnedMessage::StreamStart(StreamStart { xid, first_segment }),
                V2,
            )
        }),
        (xid(), any::<u8>(), lsn(), lsn(), ts()).prop_map(
            |(xid, flags, commit_lsn, end_lsn, commit_time)| {
                (
                    OwnedMessage::StreamCommit(StreamCommit {
                        xid,
                        flags,
                        commit_lsn,
                        end_lsn,
                        commit_time,
                    }),
                    V2,
                )
            }
        ),
        (xid(), xid()).prop_map(|(xid, subxid)| {
            (
                OwnedMessage::StreamAbort(StreamAbort {
                    xid,
                    subxid,
                    abort: None,
                }),
                V2,
            )
        }),
        (xid(), xid(), lsn(), ts()).prop_map(|(xid, subxid, abort_lsn, abort_time)| {
            let abort = Some(AbortInfo {
                abort_lsn,
                abort_time,
            });
            (
                OwnedMessage::StreamAbort(StreamAbort { xid, subxid, abort }),
                V4,
            )
        }),
        (lsn(), lsn(), ts(), xid(), name()).prop_map(
            |(prepare_lsn, end_lsn, prepare_time, xid, gid)| {
                (
                    OwnedMessage::BeginPrepare(BeginPrepare {
                        prepare_lsn,
                        end_lsn,
                        prepare_time,
                        xid,
                        gid,
                    }),
                    V3,
                )
            }
        ),
        prepare().prop_map(|p| (OwnedMessage::Prepare(p), V3)),
        prepare().prop_map(|p| (OwnedMessage::StreamPrepare(p), V3)),
        (any::<u8>(), lsn(), lsn(), ts(), xid(), name()).prop_map(
            |(flags, commit_lsn, end_lsn, commit_time, xid, gid)| {
                (
                    OwnedMessage::CommitPrepared(CommitPrepared {
                        flags,
                        commit_lsn,
                        end_lsn,
                        commit_time,
                        xid,
                        gid,
                    }),
                    V3,
                )
            }
        ),
        (any::<u8>(), lsn(), lsn(), ts(), ts(), xid(), name()).prop_map(
            |(flags, prepare_end_lsn, rollback_end_lsn, prepare_time, rollback_time, xid, gid)| {
                (
                    OwnedMessage::RollbackPrepared(RollbackPrepared {
                        flags,
                        prepare_end_lsn,
                        rollback_end_lsn,
                        prepare_time,
                        rollback_time,
                        xid,
                        gid,
                    }),
                    V3,
                )
            }
        ),
    ]
}

fn version_at_least(min: ProtocolVersion) -> impl Strategy<Value = ProtocolVersion> {
    use ProtocolVersion::{V1, V2, V3, V4};
    prop_oneof![Just(V1), Just(V2), Just(V3), Just(V4)].prop_map(move |v| v.max(min))
}

/// Any pgoutput message with a context it is valid in.
pub(crate) fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        (either_place(None), version_at_least(ProtocolVersion::V1)).prop_map(|(msg, version)| {
            Case {
                msg,
                version,
                in_stream: false,
            }
        }),
        xid()
            .prop_flat_map(|x| either_place(Some(x)))
            .prop_flat_map(|msg| (Just(msg), version_at_least(ProtocolVersion::V2)))
            .prop_map(|(msg, version)| Case {
                msg,
                version,
                in_stream: true
            }),
        Just(Case {
            msg: OwnedMessage::StreamStop,
            version: ProtocolVersion::V2,
            in_stream: true
        }),
        outside_only()
            .prop_flat_map(|(msg, min)| (Just(msg), version_at_least(min)))
            .prop_map(|(msg, version)| Case {
                msg,
                version,
                in_stream: false
            }),
    ]
}

/// Any server replication message.
pub(crate) fn backend() -> impl Strategy<Value = BackendMessage> {
    prop_oneof![
        (lsn(), lsn(), ts(), bytes(100)).prop_map(|(wal_start, wal_end, send_time, data)| {
            BackendMessage::XLogData(XLogData {
                wal_start,
                wal_end,
                send_time,
                data,
            })
        }),
        (lsn(), ts(), any::<bool>()).prop_map(|(wal_end, send_time, reply_requested)| {
            BackendMessage::PrimaryKeepalive(PrimaryKeepalive {
                wal_end,
                send_time,
                reply_requested,
            })
        }),
    ]
}

/// Any client replication message.
pub(crate) fn frontend() -> impl Strategy<Value = FrontendMessage> {
    prop_oneof![
        (lsn(), lsn(), lsn(), ts(), any::<bool>()).prop_map(
            |(write, flush, apply, send_time, reply_requested)| {
                FrontendMessage::StandbyStatusUpdate(StandbyStatusUpdate {
                    write,
                    flush,
                    apply,
                    send_time,
                    reply_requested,
                })
            }
        ),
        (ts(), xid(), any::<u32>(), xid(), any::<u32>()).prop_map(
            |(send_time, xmin, xmin_epoch, catalog_xmin, catalog_xmin_epoch)| {
                FrontendMessage::HotStandbyFeedback(HotStandbyFeedback {
                    send_time,
                    xmin,
                    xmin_epoch,
                    catalog_xmin,
                    catalog_xmin_epoch,
                })
            }
        ),
    ]
}
