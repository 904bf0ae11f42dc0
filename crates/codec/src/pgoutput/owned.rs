//! Borrowed → owned conversion.

use alloc::string::{String, ToString};

use bytes::Bytes;

use crate::share::share;

use super::messages::{
    BeginPrepare, CommitPrepared, Delete, Insert, LogicalMessage, OldTuple, Origin, Prepare,
    Relation, RollbackPrepared, Truncate, Type, Update,
};
use super::tuple::{OwnedTupleData, TupleData};
use super::{Message, OwnedMessage};

fn old_owned(old: &OldTuple<TupleData<'_>>, source: &Bytes) -> OldTuple<OwnedTupleData> {
    old.map(|t| t.to_owned_in(source))
}

fn prepare_owned(p: &Prepare<&str>) -> Prepare<String> {
    Prepare {
        flags: p.flags,
        prepare_lsn: p.prepare_lsn,
        end_lsn: p.end_lsn,
        prepare_time: p.prepare_time,
        xid: p.xid,
        gid: p.gid.to_string(),
    }
}

impl Message<'_> {
    /// The owned form. Tuple values and message content become slices of `source` (the
    /// `Bytes` this message was decoded from) without copying; names are copied into
    /// `String`s. Passing a different buffer is safe but copies the values.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use pg_walstream_codec::pgoutput::{decode_message, OwnedColumn, OwnedMessage, ProtocolVersion};
    ///
    /// let wire = Bytes::from_static(b"I\0\0\x40\0N\0\x01t\0\0\0\x02hi");
    /// let owned = decode_message(&wire, ProtocolVersion::V1, false)?.into_owned(&wire);
    /// let OwnedMessage::Insert(insert) = owned else { panic!() };
    /// let OwnedColumn::Text(v) = &insert.new.columns[0] else { panic!() };
    /// assert_eq!(v.as_ptr(), wire[13..].as_ptr()); // shares the buffer
    /// # Ok::<(), pg_walstream_codec::DecodeError>(())
    /// ```
    pub fn into_owned(self, source: &Bytes) -> OwnedMessage {
        match self {
            Message::Begin(m) => OwnedMessage::Begin(m),
            Message::Commit(m) => OwnedMessage::Commit(m),
            Message::Origin(m) => OwnedMessage::Origin(Origin {
                commit_lsn: m.commit_lsn,
                name: m.name.to_string(),
            }),
            Message::Relation(m) => OwnedMessage::Relation(Relation {
                xid: m.xid,
                oid: m.oid,
                namespace: m.namespace.to_string(),
                name: m.name.to_string(),
                replica_identity: m.replica_identity,
                columns: m.columns.to_vec(),
            }),
            Message::Type(m) => OwnedMessage::Type(Type {
                xid: m.xid,
                oid: m.oid,
                namespace: m.namespace.to_string(),
                name: m.name.to_string(),
            }),
            Message::Insert(m) => OwnedMessage::Insert(Insert {
                xid: m.xid,
                relation: m.relation,
                new: m.new.to_owned_in(source),
            }),
            Message::Update(m) => OwnedMessage::Update(Update {
                xid: m.xid,
                relation: m.relation,
                old: m.old.as_ref().map(|o| old_owned(o, source)),
                new: m.new.to_owned_in(source),
            }),
            Message::Delete(m) => OwnedMessage::Delete(Delete {
                xid: m.xid,
                relation: m.relation,
                old: old_owned(&m.old, source),
            }),
            Message::Truncate(m) => OwnedMessage::Truncate(Truncate {
                xid: m.xid,
                flags: m.flags,
                relations: m.relations.to_vec(),
            }),
            Message::Message(m) => OwnedMessage::Message(LogicalMessage {
                xid: m.xid,
                flags: m.flags,
                lsn: m.lsn,
                prefix: m.prefix.to_string(),
                content: share(source, m.content),
            }),
            Message::StreamStart(m) => OwnedMessage::StreamStart(m),
            Message::StreamStop => OwnedMessage::StreamStop,
            Message::StreamCommit(m) => OwnedMessage::StreamCommit(m),
            Message::StreamAbort(m) => OwnedMessage::StreamAbort(m),
            Message::BeginPrepare(m) => OwnedMessage::BeginPrepare(BeginPrepare {
                prepare_lsn: m.prepare_lsn,
                end_lsn: m.end_lsn,
                prepare_time: m.prepare_time,
                xid: m.xid,
                gid: m.gid.to_string(),
            }),
            Message::Prepare(m) => OwnedMessage::Prepare(prepare_owned(&m)),
            Message::CommitPrepared(m) => OwnedMessage::CommitPrepared(CommitPrepared {
                flags: m.flags,
                commit_lsn: m.commit_lsn,
                end_lsn: m.end_lsn,
                commit_time: m.commit_time,
                xid: m.xid,
                gid: m.gid.to_string(),
            }),
            Message::RollbackPrepared(m) => OwnedMessage::RollbackPrepared(RollbackPrepared {
                flags: m.flags,
                prepare_end_lsn: m.prepare_end_lsn,
                rollback_end_lsn: m.rollback_end_lsn,
                prepare_time: m.prepare_time,
                rollback_time: m.rollback_time,
                xid: m.xid,
                gid: m.gid.to_string(),
            }),
            Message::StreamPrepare(m) => OwnedMessage::StreamPrepare(prepare_owned(&m)),
        }
    }
}
