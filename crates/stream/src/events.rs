//! Decoded logical replication events.

use std::sync::Arc;

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    Begin, BeginPrepare, Commit, CommitPrepared, LocatedChange, LogicalMessage, Message, OldTuple,
    Origin, OwnedTupleData, Prepare, ProtocolVersion, RollbackPrepared, StreamAbort, StreamCommit,
    StreamStart, Truncate, TupleData, TupleLayout, decode_message,
};
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, PgTimestamp, Xid};

use crate::relation::{RelationInfo, TypeInfo};
use crate::schema_change::RelationChange;

/// One pgoutput message of the stream, with the WAL positions of the XLogData frame that
/// carried it.
///
/// Events are `Send + 'static` and cheap: relation descriptions are shared (`Arc`), row
/// values stay in the received buffer and are read through the codec's borrowed
/// [`TupleData`] view ([`Change::new_tuple`]); [`Change::to_owned_tuples`] gives an owned form
/// that still shares the buffer.
#[derive(Debug, Clone)]
pub struct Event {
    xlog: XLogData,
    kind: EventKind,
    version: ProtocolVersion,
    in_stream: bool,
    /// The [`Feedback`](crate::Feedback) identity of the stream that delivered it.
    stream_id: u64,
}

/// What an [`Event`] is. Streamed and two-phase variants appear only when the stream was
/// started with those options; variants carry the (sub)transaction xid where pgoutput sends
/// one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EventKind {
    /// `B`: a transaction begins (`final_lsn` is its commit LSN).
    Begin(Begin),
    /// `C`: the transaction commits; acknowledge it at `end_lsn`.
    Commit(Commit),
    /// `O`: the transaction came from another node.
    Origin(Origin<String>),
    /// `R`: a relation's schema; later changes use it. Carries the previous description on
    /// this stream, if any, and what changed ([`RelationChange::changes`]): columns added,
    /// dropped, renamed or retyped, key and replica identity changes — or nothing
    /// ([`RelationChange::is_unchanged`]), which is common (the server re-describes a table
    /// after any invalidation of its cache entry).
    Relation(RelationChange),
    /// `Y`: a data type's name (non-built-in types only, sent before the Relation message
    /// that uses it; [`RelationInfo::type_name`] then knows it).
    Type(TypeInfo),
    /// `I`: a row was inserted.
    Insert(Change),
    /// `U`: a row was updated.
    Update(Change),
    /// `D`: a row was deleted.
    Delete(Change),
    /// `T`: relations were truncated (all of them resolved, flags kept).
    Truncate(Truncate<Vec<Arc<RelationInfo>>>),
    /// `M`: a logical decoding message.
    Message(LogicalMessage<String, Bytes>),
    /// `S`: a block of a streamed, in-progress transaction begins.
    StreamStart(StreamStart),
    /// `E`: the block ends.
    StreamStop,
    /// `c`: a streamed transaction commits; acknowledge it at `end_lsn`.
    StreamCommit(StreamCommit),
    /// `A`: a streamed (sub)transaction aborted; discard `subxid`'s changes only.
    StreamAbort(StreamAbort),
    /// `b`: a prepared transaction begins.
    BeginPrepare(BeginPrepare<String>),
    /// `P`: PREPARE TRANSACTION; acknowledge at `end_lsn`.
    Prepare(Prepare<String>),
    /// `K`: COMMIT PREPARED; acknowledge at `end_lsn`.
    CommitPrepared(CommitPrepared<String>),
    /// `r`: ROLLBACK PREPARED; acknowledge at `rollback_end_lsn`.
    RollbackPrepared(RollbackPrepared<String>),
    /// `p`: a streamed transaction was prepared; acknowledge at `end_lsn`.
    StreamPrepare(Prepare<String>),
    /// Not a pgoutput message: the connection was lost and the stream reconnected by itself.
    /// Everything after this event comes from the new connection, which resumed at
    /// `resume_lsn`; a transaction that was delivered only partly before it (no Commit yet)
    /// will be delivered again, whole, from its Begin — discard what you buffered of it. A
    /// plain transaction the application reported as processed (through [`Feedback`]) by the
    /// time the stream would hand it over is not delivered again, even when the report came
    /// after the new connection started.
    ///
    /// [`Feedback`]: crate::Feedback
    Reconnected(Reconnected),
}

/// What [`EventKind::Reconnected`] tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnected {
    /// Which attempt succeeded (1 for the first) in this outage.
    pub attempt: u32,
    /// Where the new connection resumed: the larger of what the application had reported
    /// through [`Feedback`](crate::Feedback) and the slot's `confirmed_flush_lsn`.
    pub resume_lsn: Lsn,
    /// How long the stream was without a connection.
    pub downtime: std::time::Duration,
}

/// An Insert, Update or Delete: the (sub)transaction xid, the relation, and the rows, read
/// from the received bytes without copying — nor decoding them again: the column offsets
/// found when the message was validated are kept with it.
#[derive(Debug, Clone)]
pub struct Change {
    xid: Option<Xid>,
    relation: Arc<RelationInfo>,
    data: Bytes,
    version: ProtocolVersion,
    in_stream: bool,
    layout: ChangeLayout,
}

/// Where the tuples of a change's message lie and where their columns start, taken from the
/// decoding that validated the message (see the codec's [`TupleLayout`]). Flat (no nested
/// options) so that moving a change copies plain words.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChangeLayout {
    new: TupleLayout,
    old: TupleLayout,
    shape: Shape,
}

/// Which tuples a [`ChangeLayout`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// No layout: the change decodes its bytes again when read.
    Redecode,
    /// A new tuple only (Insert, Update without an old one).
    New,
    /// An old key or old row (which one: the `OldTuple` variant), and a new tuple (Update).
    OldAndNew(OldTuple<()>),
    /// An old key or old row only (Delete).
    Old(OldTuple<()>),
}

impl ChangeLayout {
    /// A layout that makes the change decode its bytes again when read.
    pub(crate) const REDECODE: ChangeLayout = ChangeLayout {
        new: TupleLayout::EMPTY,
        old: TupleLayout::EMPTY,
        shape: Shape::Redecode,
    };

    /// The layout of an Insert, Update or Delete decoded from `data`; a layout that decodes
    /// again for other messages and for a tuple that does not lie inside `data`. The core
    /// builds layouts with [`located`](Self::located); the tests build them from messages.
    #[cfg(test)]
    pub(crate) fn of(message: &Message<'_>, data: &[u8]) -> ChangeLayout {
        Self::try_of(message, data).unwrap_or(Self::REDECODE)
    }

    #[cfg(test)]
    fn try_of(message: &Message<'_>, data: &[u8]) -> Option<ChangeLayout> {
        let old = |old: &OldTuple<TupleData<'_>>| -> Option<(OldTuple<()>, TupleLayout)> {
            Some((old.map(|_| ()), old.tuple().layout_in(data)?))
        };
        let (new, old, shape) = match message {
            Message::Insert(i) => (i.new.layout_in(data)?, TupleLayout::EMPTY, Shape::New),
            Message::Update(u) => match &u.old {
                None => (u.new.layout_in(data)?, TupleLayout::EMPTY, Shape::New),
                Some(o) => {
                    let (kind, old) = old(o)?;
                    (u.new.layout_in(data)?, old, Shape::OldAndNew(kind))
                }
            },
            Message::Delete(d) => {
                let (kind, old) = old(&d.old)?;
                (TupleLayout::EMPTY, old, Shape::Old(kind))
            }
            _ => return None,
        };
        Some(ChangeLayout { new, old, shape })
    }

    /// The layout of a change the codec validated in place.
    pub(crate) fn located(change: &LocatedChange) -> ChangeLayout {
        let (new, old, shape) = match (change.old(), change.new_tuple()) {
            (None, Some(new)) => (new, TupleLayout::EMPTY, Shape::New),
            (Some(old), Some(new)) => (new, *old.tuple(), Shape::OldAndNew(old.map(|_| ()))),
            (Some(old), None) => (
                TupleLayout::EMPTY,
                *old.tuple(),
                Shape::Old(old.map(|_| ())),
            ),
            (None, None) => return Self::REDECODE,
        };
        ChangeLayout { new, old, shape }
    }

    /// The new tuple's layout, if it has one.
    fn new_layout(&self) -> Option<TupleLayout> {
        matches!(self.shape, Shape::New | Shape::OldAndNew(_)).then_some(self.new)
    }

    /// The old tuple's kind and layout, if it has one.
    fn old_layout(&self) -> Option<(OldTuple<()>, TupleLayout)> {
        match self.shape {
            Shape::OldAndNew(kind) | Shape::Old(kind) => Some((kind, self.old)),
            Shape::Redecode | Shape::New => None,
        }
    }
}

/// The old and new rows of a change in owned form (values share the received buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedTuples {
    /// The old key or old row (Update with a changed key or REPLICA IDENTITY FULL, Delete).
    pub old: Option<OldTuple<OwnedTupleData>>,
    /// The new row (Insert, Update).
    pub new: Option<OwnedTupleData>,
}

impl Event {
    pub(crate) fn new(
        xlog: XLogData,
        kind: EventKind,
        version: ProtocolVersion,
        in_stream: bool,
        stream_id: u64,
    ) -> Self {
        Event {
            xlog,
            kind,
            version,
            in_stream,
            stream_id,
        }
    }

    /// Which stream delivered the event (see [`Feedback::ack`](crate::Feedback::ack)).
    pub(crate) fn stream_id(&self) -> u64 {
        self.stream_id
    }

    /// What happened.
    pub fn kind(&self) -> &EventKind {
        &self.kind
    }

    /// Takes the event apart.
    pub fn into_kind(self) -> EventKind {
        self.kind
    }

    /// WAL position of the frame (`XLogData` `wal_start`): for logical replication the LSN
    /// the decoding context was at (a change's record, a commit's end), or `0/0` for a
    /// message the output plugin wrote ahead of another in the same callback (Relation, Type
    /// and Origin messages) — see [`wal_end`](Self::wal_end).
    pub fn wal_start(&self) -> Lsn {
        self.xlog.wal_start
    }

    /// The frame's `XLogData` `wal_end` field, as the walsender sends it. For logical
    /// replication this is **not** the server's current end of WAL: the walsender writes the
    /// same LSN into `wal_start` and `wal_end` (walsender.c, `WalSndPrepareWrite`), and
    /// `0/0` into both for a message that is not the last written by an output-plugin
    /// callback. For the server's WAL end use [`Feedback::server_wal_end`], which keepalives
    /// keep current; for acknowledging use [`ack_lsn`](Self::ack_lsn).
    ///
    /// [`Feedback::server_wal_end`]: crate::Feedback::server_wal_end
    pub fn wal_end(&self) -> Lsn {
        self.xlog.wal_end
    }

    /// The server's clock when it sent the frame.
    pub fn send_time(&self) -> PgTimestamp {
        self.xlog.send_time
    }

    /// The undecoded frame (its `data` is the pgoutput message; empty for
    /// [`EventKind::Reconnected`]).
    pub fn xlog_data(&self) -> &XLogData {
        &self.xlog
    }

    /// Takes the undecoded frame.
    pub fn into_xlog_data(self) -> XLogData {
        self.xlog
    }

    /// The borrowed codec view of the message (decoded again from the received bytes; it was
    /// validated when it arrived); `None` for [`EventKind::Reconnected`], which no message
    /// carried.
    pub fn message(&self) -> Option<Message<'_>> {
        if matches!(self.kind, EventKind::Reconnected(_)) {
            return None;
        }
        Some(redecode(&self.xlog.data, self.version, self.in_stream))
    }

    /// The event announcing a reconnect, positioned at the resume LSN.
    pub(crate) fn reconnected(info: Reconnected, version: ProtocolVersion, stream_id: u64) -> Self {
        Event {
            xlog: XLogData {
                wal_start: info.resume_lsn,
                wal_end: info.resume_lsn,
                send_time: PgTimestamp::EPOCH,
                data: Bytes::new(),
            },
            kind: EventKind::Reconnected(info),
            version,
            in_stream: false,
            stream_id,
        }
    }

    /// The position to report through [`Feedback`](crate::Feedback) once this event is durably
    /// processed: `end_lsn` of Commit, Stream Commit, Prepare, Stream Prepare and Commit
    /// Prepared, `rollback_end_lsn` of Rollback Prepared, and for a non-transactional logical
    /// message its `lsn` — already the *end* of the message's WAL record (decode.c passes
    /// `buf->endptr`), so after a restart the server skips the message itself (its record
    /// starts below) but not the record that starts right there, often the commit of the
    /// transaction the message was emitted in. `None` for events inside a transaction.
    pub fn ack_lsn(&self) -> Option<Lsn> {
        self.kind.ack_lsn()
    }
}

impl EventKind {
    /// See [`Event::ack_lsn`].
    pub fn ack_lsn(&self) -> Option<Lsn> {
        match self {
            EventKind::Commit(c) => Some(c.end_lsn),
            EventKind::StreamCommit(c) => Some(c.end_lsn),
            EventKind::Prepare(p) | EventKind::StreamPrepare(p) => Some(p.end_lsn),
            EventKind::CommitPrepared(c) => Some(c.end_lsn),
            EventKind::RollbackPrepared(r) => Some(r.rollback_end_lsn),
            EventKind::Message(m) if !m.is_transactional() => Some(m.lsn),
            _ => None,
        }
    }

    /// The (sub)transaction xid of a message sent inside a streamed block.
    pub fn stream_xid(&self) -> Option<Xid> {
        match self {
            EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) => c.xid,
            EventKind::Relation(r) => r.relation().xid(),
            EventKind::Type(t) => t.xid,
            EventKind::Truncate(t) => t.xid,
            EventKind::Message(m) => m.xid,
            _ => None,
        }
    }

    /// The transaction id the event belongs to, where the message names one: the streamed
    /// (sub)transaction xid, or the xid of Begin, Stream Start/Commit/Abort and the two-phase
    /// messages.
    pub fn xid(&self) -> Option<Xid> {
        match self {
            EventKind::Begin(b) => Some(b.xid),
            EventKind::StreamStart(s) => Some(s.xid),
            EventKind::StreamCommit(c) => Some(c.xid),
            EventKind::StreamAbort(a) => Some(a.subxid),
            EventKind::BeginPrepare(b) => Some(b.xid),
            EventKind::Prepare(p) | EventKind::StreamPrepare(p) => Some(p.xid),
            EventKind::CommitPrepared(c) => Some(c.xid),
            EventKind::RollbackPrepared(r) => Some(r.xid),
            other => other.stream_xid(),
        }
    }
}

fn redecode(data: &[u8], version: ProtocolVersion, in_stream: bool) -> Message<'_> {
    // The same bytes decoded with the same version and stream state decoded successfully when
    // the frame arrived (see `core`); decoding is deterministic.
    decode_message(data, version, in_stream)
        .expect("the message was validated when the frame was received")
}

impl Change {
    pub(crate) fn new(
        xid: Option<Xid>,
        relation: Arc<RelationInfo>,
        data: Bytes,
        version: ProtocolVersion,
        in_stream: bool,
        layout: ChangeLayout,
    ) -> Self {
        Change {
            xid,
            relation,
            data,
            version,
            in_stream,
            layout,
        }
    }

    /// The tuple layout kept from validation, for a change rebuilt over a copy of its bytes.
    pub(crate) fn layout(&self) -> ChangeLayout {
        self.layout
    }

    /// The (sub)transaction xid, inside a streamed block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The relation changed, as last described by the server.
    pub fn relation(&self) -> &Arc<RelationInfo> {
        &self.relation
    }

    /// The new row (Insert, Update): borrowed, zero-copy, three-state columns. Reading by
    /// column name is easier with [`new_row`](Change::new_row).
    #[inline]
    pub fn new_tuple(&self) -> Option<TupleData<'_>> {
        if self.layout.shape == Shape::Redecode {
            return self.tuples().0;
        }
        self.layout.new_layout()?.tuple_in(&self.data)
    }

    /// The new tuple and the old one, from the layout kept when the message was validated
    /// (or, without one, from decoding the message again).
    pub(crate) fn tuples(&self) -> (Option<TupleData<'_>>, Option<OldTuple<TupleData<'_>>>) {
        if self.layout.shape != Shape::Redecode {
            return (self.new_tuple(), self.old_tuple());
        }
        match redecode(&self.data, self.version, self.in_stream) {
            Message::Insert(i) => (Some(i.new), None),
            Message::Update(u) => (Some(u.new), u.old),
            Message::Delete(d) => (None, Some(d.old)),
            _ => (None, None),
        }
    }

    /// The old key (`K`) or old row (`O`, REPLICA IDENTITY FULL) of an Update or Delete.
    /// A `K` tuple's non-key columns are NULL placeholders ("not sent"): read a key with
    /// [`old_key`](Change::old_key) or [`old_row`](Change::old_row), which yield the key
    /// columns only.
    #[inline]
    pub fn old_tuple(&self) -> Option<OldTuple<TupleData<'_>>> {
        if self.layout.shape == Shape::Redecode {
            return self.tuples().1;
        }
        let (kind, layout) = self.layout.old_layout()?;
        let tuple = layout.tuple_in(&self.data)?;
        Some(kind.map(|()| tuple))
    }

    /// Old and new rows in owned form; values share the received buffer (no copy).
    pub fn to_owned_tuples(&self) -> OwnedTuples {
        let own = |t: &TupleData<'_>| t.to_owned_in(&self.data);
        OwnedTuples {
            old: self.old_tuple().map(|old| old.map(|t| own(&t))),
            new: self.new_tuple().as_ref().map(own),
        }
    }

    /// The pgoutput message bytes.
    pub fn raw(&self) -> &Bytes {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relation_cache::RelationCache;
    use pg_walstream_codec::Oid;
    use pg_walstream_codec::pgoutput::{
        Column, Delete, Insert, OwnedColumn, OwnedMessage, Relation, RelationColumn,
        ReplicaIdentity, Update,
    };

    fn relation() -> Arc<RelationInfo> {
        let mut wire = Vec::new();
        OwnedMessage::Relation(Relation {
            xid: None,
            oid: Oid(16_384),
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: ReplicaIdentity::Full,
            columns: ["id", "v"]
                .map(|name| RelationColumn {
                    flags: 0,
                    name: name.into(),
                    type_oid: Oid(25),
                    type_modifier: -1,
                })
                .into(),
        })
        .encode(&mut wire)
        .unwrap();
        let Message::Relation(r) = decode_message(&wire, ProtocolVersion::V1, false).unwrap()
        else {
            panic!()
        };
        let mut cache = RelationCache::new();
        Arc::clone(cache.update(&r).relation())
    }

    fn tuple(values: [&'static [u8]; 2]) -> OwnedTupleData {
        OwnedTupleData {
            columns: values
                .map(|v| OwnedColumn::Text(Bytes::from_static(v)))
                .into(),
        }
    }

    /// A change reads its tuples from the layout kept at validation, not by decoding its
    /// message again: given a stream state in which the bytes would not even decode (a
    /// streamed block under protocol v1), it still reads them; without a layout it decodes.
    #[test]
    fn tuples_come_from_the_kept_layout() {
        let mut wire = Vec::new();
        OwnedMessage::Update(Update {
            xid: None,
            relation: Oid(16_384),
            old: Some(OldTuple::Full(tuple([b"1", b"old"]))),
            new: tuple([b"1", b"new"]),
        })
        .encode(&mut wire)
        .unwrap();
        let data = Bytes::from(wire);
        let message = decode_message(&data, ProtocolVersion::V1, false).unwrap();
        let layout = ChangeLayout::of(&message, &data);
        assert_eq!(layout.shape, Shape::OldAndNew(OldTuple::Full(())));
        assert!(decode_message(&data, ProtocolVersion::V1, true).is_err());
        let kept = Change::new(
            None,
            relation(),
            data.clone(),
            ProtocolVersion::V1,
            true,
            layout,
        );
        let decoded = Change::new(
            None,
            relation(),
            data,
            ProtocolVersion::V1,
            false,
            ChangeLayout::REDECODE,
        );
        for change in [&kept, &decoded] {
            let (new, old) = change.tuples();
            assert_eq!(new.unwrap().column(1), Some(Column::Text(b"new")));
            let Some(OldTuple::Full(old)) = old else {
                panic!("the old row is kept as a full row")
            };
            assert_eq!(old.column(1), Some(Column::Text(b"old")));
            let row = change.new_row().unwrap();
            assert_eq!(row.get("v"), Some(Column::Text(b"new")));
            assert_eq!(row.get_index(2), None);
        }
        assert_eq!(kept.to_owned_tuples(), decoded.to_owned_tuples());
    }

    /// Only DML messages have a layout.
    #[test]
    fn other_messages_have_no_layout() {
        let message = decode_message(b"E", ProtocolVersion::V2, true).unwrap();
        assert_eq!(ChangeLayout::of(&message, b"E").shape, Shape::Redecode);
    }

    /// Every shape of change reads the same tuples through its kept layout as by decoding
    /// again: Insert, Update without, with a key and with a full old row, Delete by key and
    /// by full row.
    #[test]
    fn every_shape_reads_as_decoded() {
        let new = || tuple([b"1", b"new"]);
        let old = || tuple([b"1", b"old"]);
        let messages = [
            OwnedMessage::Insert(Insert {
                xid: None,
                relation: Oid(16_384),
                new: new(),
            }),
            OwnedMessage::Update(Update {
                xid: None,
                relation: Oid(16_384),
                old: None,
                new: new(),
            }),
            OwnedMessage::Update(Update {
                xid: None,
                relation: Oid(16_384),
                old: Some(OldTuple::Key(old())),
                new: new(),
            }),
            OwnedMessage::Update(Update {
                xid: None,
                relation: Oid(16_384),
                old: Some(OldTuple::Full(old())),
                new: new(),
            }),
            OwnedMessage::Delete(Delete {
                xid: None,
                relation: Oid(16_384),
                old: OldTuple::Key(old()),
            }),
            OwnedMessage::Delete(Delete {
                xid: None,
                relation: Oid(16_384),
                old: OldTuple::Full(old()),
            }),
        ];
        for owned in messages {
            let mut wire = Vec::new();
            owned.encode(&mut wire).unwrap();
            let data = Bytes::from(wire);
            let message = decode_message(&data, ProtocolVersion::V1, false).unwrap();
            let layout = ChangeLayout::of(&message, &data);
            assert_ne!(layout.shape, Shape::Redecode, "{owned:?}");
            let change = |layout| {
                Change::new(
                    None,
                    relation(),
                    data.clone(),
                    ProtocolVersion::V1,
                    false,
                    layout,
                )
            };
            let (kept, decoded) = (change(layout), change(ChangeLayout::REDECODE));
            assert_eq!(kept.tuples(), decoded.tuples(), "{owned:?}");
            assert_eq!(kept.to_owned_tuples(), decoded.to_owned_tuples());
            assert_eq!(
                kept.new_tuple().is_some(),
                !matches!(owned, OwnedMessage::Delete(_))
            );
        }
    }
}
