//! The pgoutput logical replication protocol, versions 1–4.
//!
//! Each XLogData payload of a logical replication stream is one pgoutput message. Decode
//! them with a [`PgOutputDecoder`], which knows the protocol version and tracks Stream
//! Start/Stop blocks itself (inside them, DML and schema messages carry the xid of their
//! (sub)transaction), or with [`decode_message`] when the caller tracks that state.
//!
//! Decoding yields a borrowed [`Message`] that points into the received bytes; tuple
//! columns are iterated lazily without allocating. [`Message::into_owned`] turns it into an
//! [`OwnedMessage`] whose values share the received [`Bytes`] buffer.
//!
//! ```
//! use pg_walstream_codec::pgoutput::{Column, Message, PgOutputDecoder, ProtocolVersion};
//!
//! let mut decoder = PgOutputDecoder::new(ProtocolVersion::V2);
//! // Stream Start for xid 9 (first segment), then an Insert inside it (xid prefix 10).
//! assert!(matches!(decoder.decode(b"S\0\0\0\x09\x01")?, Message::StreamStart(_)));
//! let Message::Insert(insert) = decoder.decode(b"I\0\0\0\x0a\0\0\x40\0N\0\x01t\0\0\0\x01x")? else {
//!     panic!()
//! };
//! assert_eq!(insert.xid.map(|x| x.0), Some(10));
//! assert_eq!(insert.new.columns().next(), Some(Column::Text(b"x")));
//! assert!(matches!(decoder.decode(b"E")?, Message::StreamStop));
//! assert!(!decoder.in_stream());
//! # Ok::<(), pg_walstream_codec::DecodeError>(())
//! ```

mod change;
mod decoder;
mod encode;
mod layout;
mod lists;
mod messages;
mod owned;
mod tuple;

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

pub use change::{ChangeKind, LocatedChange};
pub use decoder::{PgOutputDecoder, decode_message};
pub use encode::{EncodeError, OidSequence, RelationColumnList};
pub use layout::{INDEX_ANCHORS, TupleLayout};
pub use lists::{OidList, RelationColumnIter, RelationColumns};
pub use messages::{
    AbortInfo, Begin, BeginPrepare, Commit, CommitPrepared, Delete, Insert, LogicalMessage,
    OldTuple, Origin, OwnedRelationColumns, Prepare, Relation, RelationColumn, ReplicaIdentity,
    RollbackPrepared, StreamAbort, StreamCommit, StreamStart, Truncate, Type, Update,
};
pub use tuple::{
    COLUMN_BINARY, COLUMN_NULL, COLUMN_TEXT, COLUMN_UNCHANGED_TOAST, Column, Columns, KeyColumns,
    KeyFlag, OwnedColumn, OwnedTupleData, TupleColumns, TupleData,
};

use crate::ids::{Oid, Xid};

/// A pgoutput protocol version (`proto_version` option of `START_REPLICATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// Version 1 (PostgreSQL 10+).
    V1 = 1,
    /// Version 2 (PostgreSQL 14+): streaming of in-progress transactions.
    V2 = 2,
    /// Version 3 (PostgreSQL 15+): two-phase commit.
    V3 = 3,
    /// Version 4 (PostgreSQL 16+): parallel streaming (abort LSN and time on Stream Abort).
    V4 = 4,
}

impl ProtocolVersion {
    /// The version number.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

impl TryFrom<u32> for ProtocolVersion {
    type Error = crate::DecodeError;

    /// # Errors
    /// [`DecodeError::UnsupportedProtocolVersion`](crate::DecodeError) outside 1–4.
    fn try_from(version: u32) -> Result<Self, Self::Error> {
        match version {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            4 => Ok(Self::V4),
            _ => Err(crate::DecodeError::UnsupportedProtocolVersion { version }),
        }
    }
}

/// A decoded pgoutput message borrowing from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message<'a> {
    /// `B`.
    Begin(Begin),
    /// `C`.
    Commit(Commit),
    /// `O`.
    Origin(Origin<&'a str>),
    /// `R`.
    Relation(Relation<&'a str, RelationColumns<'a>>),
    /// `Y`.
    Type(Type<&'a str>),
    /// `I`.
    Insert(Insert<TupleData<'a>>),
    /// `U`.
    Update(Update<TupleData<'a>>),
    /// `D`.
    Delete(Delete<TupleData<'a>>),
    /// `T`.
    Truncate(Truncate<OidList<'a>>),
    /// `M`.
    Message(LogicalMessage<&'a str, &'a [u8]>),
    /// `S` (v2+).
    StreamStart(StreamStart),
    /// `E` (v2+).
    StreamStop,
    /// `c` (v2+).
    StreamCommit(StreamCommit),
    /// `A` (v2+).
    StreamAbort(StreamAbort),
    /// `b` (v3+).
    BeginPrepare(BeginPrepare<&'a str>),
    /// `P` (v3+).
    Prepare(Prepare<&'a str>),
    /// `K` (v3+).
    CommitPrepared(CommitPrepared<&'a str>),
    /// `r` (v3+).
    RollbackPrepared(RollbackPrepared<&'a str>),
    /// `p` (v3+).
    StreamPrepare(Prepare<&'a str>),
}

/// An owned pgoutput message: strings are `String`s, values and content share the received
/// [`Bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedMessage {
    /// `B`.
    Begin(Begin),
    /// `C`.
    Commit(Commit),
    /// `O`.
    Origin(Origin<String>),
    /// `R`.
    Relation(Relation<String, OwnedRelationColumns>),
    /// `Y`.
    Type(Type<String>),
    /// `I`.
    Insert(Insert<OwnedTupleData>),
    /// `U`.
    Update(Update<OwnedTupleData>),
    /// `D`.
    Delete(Delete<OwnedTupleData>),
    /// `T`.
    Truncate(Truncate<Vec<Oid>>),
    /// `M`.
    Message(LogicalMessage<String, Bytes>),
    /// `S` (v2+).
    StreamStart(StreamStart),
    /// `E` (v2+).
    StreamStop,
    /// `c` (v2+).
    StreamCommit(StreamCommit),
    /// `A` (v2+).
    StreamAbort(StreamAbort),
    /// `b` (v3+).
    BeginPrepare(BeginPrepare<String>),
    /// `P` (v3+).
    Prepare(Prepare<String>),
    /// `K` (v3+).
    CommitPrepared(CommitPrepared<String>),
    /// `r` (v3+).
    RollbackPrepared(RollbackPrepared<String>),
    /// `p` (v3+).
    StreamPrepare(Prepare<String>),
}

/// Message tags, as they appear as the first byte of each message.
pub mod tag {
    /// `B` Begin.
    pub const BEGIN: u8 = b'B';
    /// `C` Commit.
    pub const COMMIT: u8 = b'C';
    /// `O` Origin.
    pub const ORIGIN: u8 = b'O';
    /// `R` Relation.
    pub const RELATION: u8 = b'R';
    /// `Y` Type.
    pub const TYPE: u8 = b'Y';
    /// `I` Insert.
    pub const INSERT: u8 = b'I';
    /// `U` Update.
    pub const UPDATE: u8 = b'U';
    /// `D` Delete.
    pub const DELETE: u8 = b'D';
    /// `T` Truncate.
    pub const TRUNCATE: u8 = b'T';
    /// `M` logical decoding Message.
    pub const MESSAGE: u8 = b'M';
    /// `S` Stream Start.
    pub const STREAM_START: u8 = b'S';
    /// `E` Stream Stop.
    pub const STREAM_STOP: u8 = b'E';
    /// `c` Stream Commit.
    pub const STREAM_COMMIT: u8 = b'c';
    /// `A` Stream Abort.
    pub const STREAM_ABORT: u8 = b'A';
    /// `b` Begin Prepare.
    pub const BEGIN_PREPARE: u8 = b'b';
    /// `P` Prepare.
    pub const PREPARE: u8 = b'P';
    /// `K` Commit Prepared.
    pub const COMMIT_PREPARED: u8 = b'K';
    /// `r` Rollback Prepared.
    pub const ROLLBACK_PREPARED: u8 = b'r';
    /// `p` Stream Prepare.
    pub const STREAM_PREPARE: u8 = b'p';
}

impl Message<'_> {
    /// The message's tag byte.
    pub fn tag(&self) -> u8 {
        match self {
            Message::Begin(_) => tag::BEGIN,
            Message::Commit(_) => tag::COMMIT,
            Message::Origin(_) => tag::ORIGIN,
            Message::Relation(_) => tag::RELATION,
            Message::Type(_) => tag::TYPE,
            Message::Insert(_) => tag::INSERT,
            Message::Update(_) => tag::UPDATE,
            Message::Delete(_) => tag::DELETE,
            Message::Truncate(_) => tag::TRUNCATE,
            Message::Message(_) => tag::MESSAGE,
            Message::StreamStart(_) => tag::STREAM_START,
            Message::StreamStop => tag::STREAM_STOP,
            Message::StreamCommit(_) => tag::STREAM_COMMIT,
            Message::StreamAbort(_) => tag::STREAM_ABORT,
            Message::BeginPrepare(_) => tag::BEGIN_PREPARE,
            Message::Prepare(_) => tag::PREPARE,
            Message::CommitPrepared(_) => tag::COMMIT_PREPARED,
            Message::RollbackPrepared(_) => tag::ROLLBACK_PREPARED,
            Message::StreamPrepare(_) => tag::STREAM_PREPARE,
        }
    }

    /// The in-stream (sub)transaction xid carried by R, Y, I, U, D, T and M messages inside
    /// a streamed block.
    pub fn stream_xid(&self) -> Option<Xid> {
        match self {
            Message::Relation(m) => m.xid,
            Message::Type(m) => m.xid,
            Message::Insert(m) => m.xid,
            Message::Update(m) => m.xid,
            Message::Delete(m) => m.xid,
            Message::Truncate(m) => m.xid,
            Message::Message(m) => m.xid,
            _ => None,
        }
    }
}
