//! Building [`Event`]s without a server, to unit-test the code that handles them (cargo
//! feature `testing`).
//!
//! [`TestEvents`] encodes each message as the server would and runs it through a real
//! [`LogicalCore`], so the events it returns are exactly what a stream delivers: relations
//! resolved, tuples validated, Relation events with their [`RelationChange`] summary,
//! acknowledgement positions set, and [`feedback`](TestEvents::feedback) accepting them.
//!
//! ```
//! use pg_walstream_stream::EventKind;
//! use pg_walstream_stream::testing::{TestEvents, column, null, text};
//!
//! let mut events = TestEvents::new();
//! let users = events.relation("public", "users", &[column("id", 23).key(), column("email", 25)]);
//! let begin = events.begin();
//! let insert = events.insert(&users, &[text("1"), null()]);
//! let commit = events.commit();
//! assert!(matches!(begin.kind(), EventKind::Begin(_)));
//! let EventKind::Insert(change) = insert.kind() else { unreachable!() };
//! assert!(change.new_row().unwrap().get("email").unwrap().is_null());
//! assert_eq!(events.feedback().ack(&commit), Ok(commit.ack_lsn()));
//! ```

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pg_walstream_codec::pgoutput::{
    Begin, Commit, Delete, Insert, LogicalMessage, OldTuple, OwnedColumn, OwnedMessage,
    OwnedTupleData, ProtocolVersion, Relation, RelationColumn, ReplicaIdentity, Type, Update,
};
use pg_walstream_codec::replication::XLogData;
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};

use crate::core::{CoreOptions, LogicalCore};
use crate::error::Result;
use crate::events::{Event, EventKind};
use crate::feedback::Feedback;
use crate::relation::RelationInfo;
#[cfg(doc)]
use crate::schema_change::RelationChange;

/// A column description for [`TestEvents::relation`]: see [`column()`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestColumn {
    name: String,
    type_oid: Oid,
    type_modifier: i32,
    key: bool,
}

/// A column named `name` of type `type_oid` (e.g. 23 `int4`, 25 `text`), not part of the
/// key.
pub fn column(name: &str, type_oid: u32) -> TestColumn {
    TestColumn {
        name: name.to_owned(),
        type_oid: Oid(type_oid),
        type_modifier: -1,
        key: false,
    }
}

impl TestColumn {
    /// Makes it a replica identity (key) column.
    #[must_use]
    pub fn key(mut self) -> Self {
        self.key = true;
        self
    }

    /// Sets the type modifier (`atttypmod`, e.g. `varchar(10)` is 14).
    #[must_use]
    pub fn type_modifier(mut self, modifier: i32) -> Self {
        self.type_modifier = modifier;
        self
    }

    fn to_relation_column(&self) -> RelationColumn<String> {
        RelationColumn {
            flags: u8::from(self.key),
            name: self.name.clone(),
            type_oid: self.type_oid,
            type_modifier: self.type_modifier,
        }
    }
}

/// A text-format value.
pub fn text(value: &str) -> OwnedColumn {
    OwnedColumn::Text(Bytes::copy_from_slice(value.as_bytes()))
}

/// A binary-format value.
pub fn binary(value: &[u8]) -> OwnedColumn {
    OwnedColumn::Binary(Bytes::copy_from_slice(value))
}

/// SQL NULL.
pub fn null() -> OwnedColumn {
    OwnedColumn::Null
}

/// An unchanged TOAST value (not sent).
pub fn unchanged_toast() -> OwnedColumn {
    OwnedColumn::UnchangedToast
}

/// A source of events as one logical stream delivers them; see the [module](self).
///
/// WAL positions grow with each message; a transaction's Commit gets `commit_lsn` = its
/// Begin's `final_lsn`. Changes may also be sent outside [`begin`](Self::begin) /
/// [`commit`](Self::commit), as the stream accepts them.
#[derive(Debug)]
pub struct TestEvents {
    core: LogicalCore,
    now: Instant,
    lsn: u64,
    next_xid: u32,
    next_oid: u32,
    /// The open transaction's commit position.
    final_lsn: Option<Lsn>,
}

impl Default for TestEvents {
    fn default() -> Self {
        Self::new()
    }
}

/// Room left between a Begin and its Commit for the positions of the changes.
const TRANSACTION_SPAN: u64 = 1 << 24;

impl TestEvents {
    /// Events of a stream with pgoutput protocol version 1, starting at `0/1000000`.
    pub fn new() -> Self {
        Self::with_version(ProtocolVersion::V1)
    }

    /// Events of a stream with protocol version `version` (which decides the messages
    /// allowed, as on a real stream).
    pub fn with_version(version: ProtocolVersion) -> Self {
        let now = Instant::now();
        TestEvents {
            core: LogicalCore::new(CoreOptions::new(version), Feedback::new(), now),
            now,
            lsn: 0x100_0000,
            next_xid: 1000,
            next_oid: 16384,
            final_lsn: None,
        }
    }

    /// The feedback handle of this stream: [`Feedback::ack`] accepts its events.
    pub fn feedback(&self) -> &Feedback {
        self.core.feedback()
    }

    /// The core the messages go through (its relation cache, its feedback positions).
    pub fn core(&self) -> &LogicalCore {
        &self.core
    }

    /// Describes a new relation (a Relation message with a fresh OID, replica identity
    /// DEFAULT) and returns its description, as later changes carry it. The Relation event is
    /// not returned: use [`describe`](Self::describe) for that.
    ///
    /// # Panics
    /// If a name contains a NUL byte.
    pub fn relation(
        &mut self,
        schema: &str,
        name: &str,
        columns: &[TestColumn],
    ) -> Arc<RelationInfo> {
        let oid = Oid(self.next_oid);
        self.next_oid += 1;
        let event = self.describe(oid, schema, name, ReplicaIdentity::Default, columns);
        match event.into_kind() {
            EventKind::Relation(change) => Arc::clone(change.relation()),
            _ => unreachable!("a Relation message makes a Relation event"),
        }
    }

    /// A Relation message for `oid` — a new relation, or a new description of one
    /// described before (after `ALTER TABLE`): the event says what changed.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::ReplicaIdentity;
    /// use pg_walstream_stream::EventKind;
    /// use pg_walstream_stream::testing::{TestEvents, column};
    ///
    /// let mut events = TestEvents::new();
    /// let t = events.relation("public", "t", &[column("id", 23).key()]);
    /// let altered = events.describe(
    ///     t.oid(), "public", "t", ReplicaIdentity::Default,
    ///     &[column("id", 23).key(), column("note", 25)],
    /// );
    /// let EventKind::Relation(change) = altered.kind() else { unreachable!() };
    /// assert_eq!(change.added_columns().collect::<Vec<_>>(), ["note"]);
    /// ```
    ///
    /// # Panics
    /// If a name contains a NUL byte.
    pub fn describe(
        &mut self,
        oid: Oid,
        schema: &str,
        name: &str,
        replica_identity: ReplicaIdentity,
        columns: &[TestColumn],
    ) -> Event {
        self.event(&OwnedMessage::Relation(Relation {
            xid: None,
            oid,
            namespace: schema.to_owned(),
            name: name.to_owned(),
            replica_identity,
            columns: columns.iter().map(TestColumn::to_relation_column).collect(),
        }))
    }

    /// A Type message naming the non-built-in type `oid` (send it before the relation
    /// whose columns use it, as the server does).
    ///
    /// # Panics
    /// If a name contains a NUL byte.
    pub fn type_message(&mut self, oid: Oid, schema: &str, name: &str) -> Event {
        self.event(&OwnedMessage::Type(Type {
            xid: None,
            oid,
            namespace: schema.to_owned(),
            name: name.to_owned(),
        }))
    }

    /// Begin of a new transaction.
    ///
    /// # Panics
    /// If a transaction is open.
    pub fn begin(&mut self) -> Event {
        assert!(self.final_lsn.is_none(), "begin: a transaction is open");
        let final_lsn = Lsn(self.lsn + TRANSACTION_SPAN);
        self.final_lsn = Some(final_lsn);
        let xid = Xid(self.next_xid);
        self.next_xid += 1;
        self.event(&OwnedMessage::Begin(Begin {
            final_lsn,
            commit_time: PgTimestamp(0),
            xid,
        }))
    }

    /// Commit of the open transaction; acknowledge it with [`Event::ack_lsn`].
    ///
    /// # Panics
    /// If no transaction is open.
    pub fn commit(&mut self) -> Event {
        let commit_lsn = self
            .final_lsn
            .take()
            .expect("commit: no transaction is open");
        self.lsn = self.lsn.max(commit_lsn.0);
        self.event(&OwnedMessage::Commit(Commit {
            flags: 0,
            commit_lsn,
            end_lsn: Lsn(commit_lsn.0 + 0x30),
            commit_time: PgTimestamp(0),
        }))
    }

    /// An Insert of `values` (one per column, in the relation's order).
    ///
    /// # Panics
    /// If the number of values differs from the relation's columns.
    pub fn insert(&mut self, relation: &RelationInfo, values: &[OwnedColumn]) -> Event {
        self.event(&OwnedMessage::Insert(Insert {
            xid: None,
            relation: relation.oid(),
            new: tuple(values),
        }))
    }

    /// An Update that kept its key (no old tuple), with the new row `values`.
    ///
    /// # Panics
    /// If the number of values differs from the relation's columns.
    pub fn update(&mut self, relation: &RelationInfo, values: &[OwnedColumn]) -> Event {
        self.update_with(relation, None, values)
    }

    /// An Update under REPLICA IDENTITY FULL: the whole `old` row, then `new`.
    ///
    /// # Panics
    /// If a number of values differs from the relation's columns.
    pub fn update_full(
        &mut self,
        relation: &RelationInfo,
        old: &[OwnedColumn],
        new: &[OwnedColumn],
    ) -> Event {
        self.update_with(relation, Some(OldTuple::Full(tuple(old))), new)
    }

    /// An Update that changed the key: the old key (`old_key`: one value per column, the
    /// non-key ones [`null`], as pgoutput sends them), then `new`.
    ///
    /// # Panics
    /// If a number of values differs from the relation's columns.
    pub fn update_key(
        &mut self,
        relation: &RelationInfo,
        old_key: &[OwnedColumn],
        new: &[OwnedColumn],
    ) -> Event {
        self.update_with(relation, Some(OldTuple::Key(tuple(old_key))), new)
    }

    fn update_with(
        &mut self,
        relation: &RelationInfo,
        old: Option<OldTuple<OwnedTupleData>>,
        new: &[OwnedColumn],
    ) -> Event {
        self.event(&OwnedMessage::Update(Update {
            xid: None,
            relation: relation.oid(),
            old,
            new: tuple(new),
        }))
    }

    /// A Delete identified by its old key (`old_key`: one value per column, the non-key ones
    /// [`null`], as pgoutput sends them).
    ///
    /// # Panics
    /// If the number of values differs from the relation's columns.
    pub fn delete(&mut self, relation: &RelationInfo, old_key: &[OwnedColumn]) -> Event {
        self.event(&OwnedMessage::Delete(Delete {
            xid: None,
            relation: relation.oid(),
            old: OldTuple::Key(tuple(old_key)),
        }))
    }

    /// A logical decoding message (`pg_logical_emit_message`).
    ///
    /// # Panics
    /// If `prefix` contains a NUL byte.
    pub fn message(&mut self, transactional: bool, prefix: &str, content: &[u8]) -> Event {
        let lsn = Lsn(self.lsn + 0x28);
        self.event(&OwnedMessage::Message(LogicalMessage {
            xid: None,
            flags: u8::from(transactional),
            lsn,
            prefix: prefix.to_owned(),
            content: Bytes::copy_from_slice(content),
        }))
    }

    /// Any pgoutput message, encoded and run through the core.
    ///
    /// # Panics
    /// If the message cannot be encoded or the stream rejects it (see
    /// [`try_event`](Self::try_event)).
    pub fn event(&mut self, message: &OwnedMessage) -> Event {
        self.try_event(message)
            .unwrap_or_else(|error| panic!("the stream rejects {message:?}: {error}"))
    }

    /// Any pgoutput message, encoded and run through the core: the event, or the error that
    /// would end a real stream (e.g. a change of an undescribed relation, a column count
    /// that differs from the relation's, a Commit without Begin).
    ///
    /// # Errors
    /// The stream's error for the message. The core is failed afterwards, like a stream;
    /// make a new `TestEvents` to go on.
    ///
    /// # Panics
    /// If the message cannot be encoded (a NUL byte in a string, a value too long).
    pub fn try_event(&mut self, message: &OwnedMessage) -> Result<Event> {
        let mut data = Vec::new();
        message
            .encode(&mut data)
            .unwrap_or_else(|error| panic!("cannot encode {message:?}: {error}"));
        self.lsn += 0x40;
        let mut frame = BytesMut::new();
        XLogData {
            wal_start: Lsn(self.lsn),
            wal_end: Lsn(self.lsn),
            send_time: PgTimestamp(0),
            data: data.into(),
        }
        .encode(&mut frame);
        self.core.handle_copy_data(self.now, frame.freeze());
        let event = self
            .core
            .poll_event()
            .expect("the core answers every XLogData frame");
        // Nothing more is queued after one frame (a stop LSN is never set here).
        debug_assert!(!self.core.has_pending_events());
        event
    }
}

fn tuple(values: &[OwnedColumn]) -> OwnedTupleData {
    OwnedTupleData {
        columns: values.to_vec(),
    }
}
