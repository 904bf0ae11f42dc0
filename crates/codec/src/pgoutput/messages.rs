//! The pgoutput message structs.
//!
//! Structs that hold strings, tuples or lists are generic over how they hold them, so one
//! definition serves both the borrowed view ([`Message`](super::Message): `&str`,
//! [`TupleData`](super::TupleData), …) and the owned form
//! ([`OwnedMessage`](super::OwnedMessage): `String`, [`OwnedTupleData`](super::OwnedTupleData),
//! `Bytes`, …).

use alloc::string::String;
use alloc::vec::Vec;

use crate::ids::{Oid, Xid};
use crate::lsn::Lsn;
use crate::time::PgTimestamp;

/// `B`: start of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Begin {
    /// LSN of the transaction's commit record.
    pub final_lsn: Lsn,
    /// Commit time.
    pub commit_time: PgTimestamp,
    /// Transaction id.
    pub xid: Xid,
}

/// `C`: end of a transaction. Acknowledge the transaction at `end_lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commit {
    /// Flags (currently always 0).
    pub flags: u8,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// End LSN of the transaction: the position to acknowledge once it is processed.
    pub end_lsn: Lsn,
    /// Commit time.
    pub commit_time: PgTimestamp,
}

/// `O`: the transaction originated on another node (replication origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin<S> {
    /// Commit LSN on the origin server.
    pub commit_lsn: Lsn,
    /// Origin name.
    pub name: S,
}

/// Replica identity setting of a relation (`pg_class.relreplident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: all columns.
    Full,
    /// `i`: a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// The wire byte.
    pub const fn as_byte(self) -> u8 {
        match self {
            ReplicaIdentity::Default => b'd',
            ReplicaIdentity::Nothing => b'n',
            ReplicaIdentity::Full => b'f',
            ReplicaIdentity::Index => b'i',
        }
    }

    /// From the wire byte.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelationColumn<S> {
    /// Flags: [`RelationColumn::FLAG_KEY`] marks a replica identity column.
    pub flags: u8,
    /// Column name.
    pub name: S,
    /// Data type OID.
    pub type_oid: Oid,
    /// Type modifier (`atttypmod`), -1 if none.
    pub type_modifier: i32,
}

impl<S> RelationColumn<S> {
    /// Flag bit: the column is part of the replica identity (key).
    pub const FLAG_KEY: u8 = 1;

    /// Whether the column is part of the replica identity.
    pub fn is_key(&self) -> bool {
        self.flags & Self::FLAG_KEY != 0
    }
}

/// `R`: a relation's schema, sent before the first change of it (and after it changes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relation<S, C> {
    /// Streamed (sub)transaction id, present inside a Stream Start/Stop block.
    pub xid: Option<Xid>,
    /// Relation OID.
    pub oid: Oid,
    /// Schema name (empty for `pg_catalog`).
    pub namespace: S,
    /// Relation name.
    pub name: S,
    /// Replica identity.
    pub replica_identity: ReplicaIdentity,
    /// Columns ([`RelationColumns`](super::RelationColumns) borrowed, a `Vec` owned).
    pub columns: C,
}

/// `Y`: a data type's name, sent before its first use by a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Type<S> {
    /// Streamed (sub)transaction id, present inside a Stream Start/Stop block.
    pub xid: Option<Xid>,
    /// Type OID.
    pub oid: Oid,
    /// Schema name (empty for `pg_catalog`).
    pub namespace: S,
    /// Type name.
    pub name: S,
}

/// `I`: a new row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Insert<T> {
    /// Streamed (sub)transaction id, present inside a Stream Start/Stop block.
    pub xid: Option<Xid>,
    /// Relation OID (see the preceding [`Relation`]).
    pub relation: Oid,
    /// The new row.
    pub new: T,
}

/// The old row of an Update or Delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OldTuple<T> {
    /// `K`: only the replica identity (key) columns were sent. The tuple still has one
    /// column per relation column, but the non-key ones are NULL placeholders meaning "not
    /// sent", not SQL NULL: read it with [`TupleData::key_columns`](super::TupleData::key_columns).
    Key(T),
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full(T),
}

impl<T> OldTuple<T> {
    /// The tuple, whichever kind it is.
    pub fn tuple(&self) -> &T {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }

    /// The same kind of old tuple, holding `f` of this one's tuple.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::OldTuple;
    /// assert_eq!(OldTuple::Key(2).map(|n| n * 10), OldTuple::Key(20));
    /// assert_eq!(OldTuple::Full("x").map(str::len), OldTuple::Full(1));
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> OldTuple<U> {
        match self {
            OldTuple::Key(t) => OldTuple::Key(f(t)),
            OldTuple::Full(t) => OldTuple::Full(f(t)),
        }
    }

    /// The wire marker, `K` or `O`.
    pub fn marker(&self) -> u8 {
        match self {
            OldTuple::Key(_) => b'K',
            OldTuple::Full(_) => b'O',
        }
    }
}

/// `U`: a changed row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Update<T> {
    /// Streamed (sub)transaction id, present inside a Stream Start/Stop block.
    pub xid: Option<Xid>,
    /// Relation OID.
    pub relation: Oid,
    /// Old key or old row, when the replica identity changed or is FULL.
    pub old: Option<OldTuple<T>>,
    /// The new row; unchanged TOAST columns are [`Column::UnchangedToast`](super::Column).
    pub new: T,
}

/// `D`: a deleted row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delete<T> {
    /// Streamed (sub)transaction id, present inside a Stream Start/Stop block.
    pub xid: Option<Xid>,
    /// Relation OID.
    pub relation: Oid,
    /// Old key or old row.
    pub old: OldTuple<T>,
}

/// `T`: TRUNCATE of one or more relations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Truncate<L> {
    /// Streamed (sub)transaction id, present inside a Stream Start/Stop block.
    pub xid: Option<Xid>,
    /// Option bits: [`Truncate::CASCADE`], [`Truncate::RESTART_IDENTITY`].
    pub flags: u8,
    /// Truncated relations ([`OidList`](super::OidList) borrowed, `Vec<Oid>` owned).
    pub relations: L,
}

impl<L> Truncate<L> {
    /// Flag bit: `TRUNCATE … CASCADE`.
    pub const CASCADE: u8 = 1;
    /// Flag bit: `TRUNCATE … RESTART IDENTITY`.
    pub const RESTART_IDENTITY: u8 = 2;

    /// Whether CASCADE was given.
    pub fn cascade(&self) -> bool {
        self.flags & Self::CASCADE != 0
    }

    /// Whether RESTART IDENTITY was given.
    pub fn restart_identity(&self) -> bool {
        self.flags & Self::RESTART_IDENTITY != 0
    }
}

/// `M`: a logical decoding message (`pg_logical_emit_message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogicalMessage<S, B> {
    /// Streamed (sub)transaction id, present inside a Stream Start/Stop block.
    pub xid: Option<Xid>,
    /// Flags: [`LogicalMessage::TRANSACTIONAL`].
    pub flags: u8,
    /// LSN of the message.
    pub lsn: Lsn,
    /// Prefix given to `pg_logical_emit_message`.
    pub prefix: S,
    /// Content bytes.
    pub content: B,
}

impl<S, B> LogicalMessage<S, B> {
    /// Flag bit: the message is transactional.
    pub const TRANSACTIONAL: u8 = 1;

    /// Whether the message is transactional.
    pub fn is_transactional(&self) -> bool {
        self.flags & Self::TRANSACTIONAL != 0
    }
}

/// `S` (v2+): start of a block of changes of a streamed, still running transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamStart {
    /// Top-level transaction id.
    pub xid: Xid,
    /// Whether this is the first block of this transaction.
    pub first_segment: bool,
}

/// `c` (v2+): commit of a streamed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamCommit {
    /// Top-level transaction id.
    pub xid: Xid,
    /// Flags (currently always 0).
    pub flags: u8,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// End LSN of the transaction: the position to acknowledge.
    pub end_lsn: Lsn,
    /// Commit time.
    pub commit_time: PgTimestamp,
}

/// Abort position and time of a [`StreamAbort`] (v4 with `streaming = parallel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortInfo {
    /// LSN of the abort record.
    pub abort_lsn: Lsn,
    /// Abort time.
    pub abort_time: PgTimestamp,
}

/// `A` (v2+): abort of a streamed (sub)transaction. Discard only `subxid`'s changes (all of
/// them if `subxid == xid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamAbort {
    /// Top-level transaction id.
    pub xid: Xid,
    /// The aborted (sub)transaction id.
    pub subxid: Xid,
    /// Abort LSN and time: sent by protocol v4 when streaming is `parallel`.
    pub abort: Option<AbortInfo>,
}

/// `b` (v3+): start of a prepared transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BeginPrepare<S> {
    /// LSN of the prepare record.
    pub prepare_lsn: Lsn,
    /// End LSN of the prepared transaction.
    pub end_lsn: Lsn,
    /// Prepare time.
    pub prepare_time: PgTimestamp,
    /// Transaction id.
    pub xid: Xid,
    /// Global transaction identifier given to `PREPARE TRANSACTION`.
    pub gid: S,
}

/// `P` (v3+): PREPARE TRANSACTION; also the body of `p` Stream Prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prepare<S> {
    /// Flags (currently always 0).
    pub flags: u8,
    /// LSN of the prepare record.
    pub prepare_lsn: Lsn,
    /// End LSN of the prepared transaction.
    pub end_lsn: Lsn,
    /// Prepare time.
    pub prepare_time: PgTimestamp,
    /// Transaction id.
    pub xid: Xid,
    /// Global transaction identifier.
    pub gid: S,
}

/// `K` (v3+): COMMIT PREPARED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommitPrepared<S> {
    /// Flags (currently always 0).
    pub flags: u8,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// End LSN of the commit: the position to acknowledge.
    pub end_lsn: Lsn,
    /// Commit time.
    pub commit_time: PgTimestamp,
    /// Transaction id.
    pub xid: Xid,
    /// Global transaction identifier.
    pub gid: S,
}

/// `r` (v3+): ROLLBACK PREPARED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RollbackPrepared<S> {
    /// Flags (currently always 0).
    pub flags: u8,
    /// End LSN of the prepared transaction.
    pub prepare_end_lsn: Lsn,
    /// End LSN of the rollback: the position to acknowledge.
    pub rollback_end_lsn: Lsn,
    /// Prepare time.
    pub prepare_time: PgTimestamp,
    /// Rollback time.
    pub rollback_time: PgTimestamp,
    /// Transaction id.
    pub xid: Xid,
    /// Global transaction identifier.
    pub gid: S,
}

/// Owned [`Relation`] columns.
pub type OwnedRelationColumns = Vec<RelationColumn<String>>;
