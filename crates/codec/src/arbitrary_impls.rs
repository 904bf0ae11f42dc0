//! [`Arbitrary`] for the codec's owned message types (feature `arbitrary`), for
//! property-based fuzzing of the codec and of applications that consume its messages.
//!
//! Every generated value is one the protocol can carry: strings have no NUL byte, counts
//! fit their wire fields, a WAL page header has `XLP_LONG_HEADER` exactly when it has the
//! long fields. So each generated message encodes, and decodes back to itself — pgoutput
//! messages with [`ProtocolVersion::V4`](crate::pgoutput::ProtocolVersion::V4) and
//! `in_stream` set for Stream Stop and for R, Y, I, U, D, T and M messages that carry an
//! xid (see `examples/arbitrary-fuzzing`).
//!
//! ```
//! use arbitrary::{Arbitrary, Unstructured};
//! use pg_walstream_codec::replication::FrontendMessage;
//!
//! let mut u = Unstructured::new(&[7; 64]);
//! let message = FrontendMessage::arbitrary(&mut u).unwrap();
//! let mut wire = Vec::new();
//! message.encode(&mut wire);
//! assert_eq!(FrontendMessage::parse(&wire).unwrap(), message);
//! ```

use alloc::string::String;
use alloc::vec::Vec;

use ::arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;

use crate::ids::{Oid, Xid};
use crate::lsn::Lsn;
use crate::pgoutput::{
    AbortInfo, Begin, BeginPrepare, Commit, CommitPrepared, Delete, Insert, LogicalMessage,
    OldTuple, Origin, OwnedColumn, OwnedMessage, OwnedTupleData, Prepare, Relation, RelationColumn,
    ReplicaIdentity, RollbackPrepared, StreamAbort, StreamCommit, StreamStart, Truncate, Type,
    Update,
};
use crate::replication::{
    BackendMessage, FrontendMessage, HotStandbyFeedback, PrimaryKeepalive, StandbyStatusUpdate,
    XLogData,
};
use crate::time::PgTimestamp;
use crate::wal::{LongHeader, PageHeader, XLP_ALL_FLAGS, XLP_LONG_HEADER};

/// Elements of generated lists, at most (keeps messages small and the fuzzing fast).
const MAX_LIST: usize = 16;

/// A string without NUL bytes (the wire form is NUL-terminated).
fn cstring(u: &mut Unstructured<'_>) -> Result<String> {
    let s: String = u.arbitrary()?;
    Ok(s.chars().filter(|&c| c != '\0').collect())
}

fn bytes(u: &mut Unstructured<'_>) -> Result<Bytes> {
    let v: Vec<u8> = u.arbitrary()?;
    Ok(Bytes::from(v))
}

fn list<'a, T>(
    u: &mut Unstructured<'a>,
    mut element: impl FnMut(&mut Unstructured<'a>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=MAX_LIST)?;
    (0..n).map(|_| element(u)).collect()
}

fn xid(u: &mut Unstructured<'_>) -> Result<Option<Xid>> {
    Ok(if u.arbitrary()? {
        Some(Xid(u.arbitrary()?))
    } else {
        None
    })
}

macro_rules! newtype {
    ($($t:ident),*) => {$(
        impl<'a> Arbitrary<'a> for $t {
            fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
                Ok($t(u.arbitrary()?))
            }
        }
    )*};
}
newtype!(Lsn, Xid, Oid, PgTimestamp);

impl<'a> Arbitrary<'a> for ReplicaIdentity {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(*u.choose(&[
            ReplicaIdentity::Default,
            ReplicaIdentity::Nothing,
            ReplicaIdentity::Full,
            ReplicaIdentity::Index,
        ])?)
    }
}

impl<'a> Arbitrary<'a> for OwnedColumn {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=3u8)? {
            0 => OwnedColumn::Null,
            1 => OwnedColumn::UnchangedToast,
            2 => OwnedColumn::Text(bytes(u)?),
            _ => OwnedColumn::Binary(bytes(u)?),
        })
    }
}

impl<'a> Arbitrary<'a> for OwnedTupleData {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(OwnedTupleData {
            columns: list(u, OwnedColumn::arbitrary)?,
        })
    }
}

impl<'a> Arbitrary<'a> for OldTuple<OwnedTupleData> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let tuple = u.arbitrary()?;
        Ok(if u.arbitrary()? {
            OldTuple::Key(tuple)
        } else {
            OldTuple::Full(tuple)
        })
    }
}

impl<'a> Arbitrary<'a> for Begin {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Begin {
            final_lsn: u.arbitrary()?,
            commit_time: u.arbitrary()?,
            xid: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for Commit {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Commit {
            flags: u.arbitrary()?,
            commit_lsn: u.arbitrary()?,
            end_lsn: u.arbitrary()?,
            commit_time: u.arbitrary()?,
        })
    }
}

fn relation_column(u: &mut Unstructured<'_>) -> Result<RelationColumn<String>> {
    Ok(RelationColumn {
        flags: u.arbitrary()?,
        name: cstring(u)?,
        type_oid: u.arbitrary()?,
        type_modifier: u.arbitrary()?,
    })
}

fn prepare(u: &mut Unstructured<'_>) -> Result<Prepare<String>> {
    Ok(Prepare {
        flags: u.arbitrary()?,
        prepare_lsn: u.arbitrary()?,
        end_lsn: u.arbitrary()?,
        prepare_time: u.arbitrary()?,
        xid: u.arbitrary()?,
        gid: cstring(u)?,
    })
}

impl<'a> Arbitrary<'a> for OwnedMessage {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=18u8)? {
            0 => OwnedMessage::Begin(u.arbitrary()?),
            1 => OwnedMessage::Commit(u.arbitrary()?),
            2 => OwnedMessage::Origin(Origin {
                commit_lsn: u.arbitrary()?,
                name: cstring(u)?,
            }),
            3 => OwnedMessage::Relation(Relation {
                xid: xid(u)?,
                oid: u.arbitrary()?,
                namespace: cstring(u)?,
                name: cstring(u)?,
                replica_identity: u.arbitrary()?,
                columns: list(u, relation_column)?,
            }),
            4 => OwnedMessage::Type(Type {
                xid: xid(u)?,
                oid: u.arbitrary()?,
                namespace: cstring(u)?,
                name: cstring(u)?,
            }),
            5 => OwnedMessage::Insert(Insert {
                xid: xid(u)?,
                relation: u.arbitrary()?,
                new: u.arbitrary()?,
            }),
            6 => OwnedMessage::Update(Update {
                xid: xid(u)?,
                relation: u.arbitrary()?,
                old: u.arbitrary()?,
                new: u.arbitrary()?,
            }),
            7 => OwnedMessage::Delete(Delete {
                xid: xid(u)?,
                relation: u.arbitrary()?,
                old: u.arbitrary()?,
            }),
            8 => OwnedMessage::Truncate(Truncate {
                xid: xid(u)?,
                flags: u.arbitrary()?,
                relations: list(u, Oid::arbitrary)?,
            }),
            9 => OwnedMessage::Message(LogicalMessage {
                xid: xid(u)?,
                flags: u.arbitrary()?,
                lsn: u.arbitrary()?,
                prefix: cstring(u)?,
                content: bytes(u)?,
            }),
            10 => OwnedMessage::StreamStart(StreamStart {
                xid: u.arbitrary()?,
                first_segment: u.arbitrary()?,
            }),
            11 => OwnedMessage::StreamStop,
            12 => OwnedMessage::StreamCommit(StreamCommit {
                xid: u.arbitrary()?,
                flags: u.arbitrary()?,
                commit_lsn: u.arbitrary()?,
                end_lsn: u.arbitrary()?,
                commit_time: u.arbitrary()?,
            }),
            13 => OwnedMessage::StreamAbort(StreamAbort {
                xid: u.arbitrary()?,
                subxid: u.arbitrary()?,
                abort: if u.arbitrary()? {
                    Some(AbortInfo {
                        abort_lsn: u.arbitrary()?,
                        abort_time: u.arbitrary()?,
                    })
                } else {
                    None
                },
            }),
            14 => OwnedMessage::BeginPrepare(BeginPrepare {
                prepare_lsn: u.arbitrary()?,
                end_lsn: u.arbitrary()?,
                prepare_time: u.arbitrary()?,
                xid: u.arbitrary()?,
                gid: cstring(u)?,
            }),
            15 => OwnedMessage::Prepare(prepare(u)?),
            16 => OwnedMessage::CommitPrepared(CommitPrepared {
                flags: u.arbitrary()?,
                commit_lsn: u.arbitrary()?,
                end_lsn: u.arbitrary()?,
                commit_time: u.arbitrary()?,
                xid: u.arbitrary()?,
                gid: cstring(u)?,
            }),
            17 => OwnedMessage::RollbackPrepared(RollbackPrepared {
                flags: u.arbitrary()?,
                prepare_end_lsn: u.arbitrary()?,
                rollback_end_lsn: u.arbitrary()?,
                prepare_time: u.arbitrary()?,
                rollback_time: u.arbitrary()?,
                xid: u.arbitrary()?,
                gid: cstring(u)?,
            }),
            _ => OwnedMessage::StreamPrepare(prepare(u)?),
        })
    }
}

impl<'a> Arbitrary<'a> for XLogData {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(XLogData {
            wal_start: u.arbitrary()?,
            wal_end: u.arbitrary()?,
            send_time: u.arbitrary()?,
            data: bytes(u)?,
        })
    }
}

impl<'a> Arbitrary<'a> for PrimaryKeepalive {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(PrimaryKeepalive {
            wal_end: u.arbitrary()?,
            send_time: u.arbitrary()?,
            reply_requested: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for BackendMessage {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.arbitrary()? {
            BackendMessage::XLogData(u.arbitrary()?)
        } else {
            BackendMessage::PrimaryKeepalive(u.arbitrary()?)
        })
    }
}

impl<'a> Arbitrary<'a> for StandbyStatusUpdate {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(StandbyStatusUpdate {
            write: u.arbitrary()?,
            flush: u.arbitrary()?,
            apply: u.arbitrary()?,
            send_time: u.arbitrary()?,
            reply_requested: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for HotStandbyFeedback {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(HotStandbyFeedback {
            send_time: u.arbitrary()?,
            xmin: u.arbitrary()?,
            xmin_epoch: u.arbitrary()?,
            catalog_xmin: u.arbitrary()?,
            catalog_xmin_epoch: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for FrontendMessage {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.arbitrary()? {
            FrontendMessage::StandbyStatusUpdate(u.arbitrary()?)
        } else {
            FrontendMessage::HotStandbyFeedback(u.arbitrary()?)
        })
    }
}

impl<'a> Arbitrary<'a> for PageHeader {
    /// Any flags PostgreSQL defines; the long fields exactly when `XLP_LONG_HEADER` is set.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let info = u.arbitrary::<u16>()? & XLP_ALL_FLAGS;
        let long = if info & XLP_LONG_HEADER != 0 {
            Some(LongHeader {
                system_identifier: u.arbitrary()?,
                segment_size: u.arbitrary()?,
                page_size: u.arbitrary()?,
            })
        } else {
            None
        };
        Ok(PageHeader {
            magic: u.arbitrary()?,
            info,
            timeline: u.arbitrary()?,
            page_addr: u.arbitrary()?,
            rem_len: u.arbitrary()?,
            long,
        })
    }
}
