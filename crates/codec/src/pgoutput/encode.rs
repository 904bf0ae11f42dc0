//! Encoding pgoutput messages, byte for byte as PostgreSQL writes them.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::BufMut;

use crate::ids::{Oid, Xid};

use super::lists::{OidList, RelationColumns};
use super::messages::{
    Begin, BeginPrepare, Commit, CommitPrepared, Delete, Insert, LogicalMessage, OldTuple, Origin,
    Prepare, Relation, RelationColumn, RollbackPrepared, StreamAbort, StreamCommit, StreamStart,
    Truncate, Type, Update,
};
use super::tuple::{
    COLUMN_BINARY, COLUMN_NULL, COLUMN_TEXT, COLUMN_UNCHANGED_TOAST, Column, TupleColumns,
};
use super::{Message, OwnedMessage, tag};

/// A message cannot be represented on the wire.
///
/// Only hand-built messages can fail: anything produced by decoding encodes successfully.
/// On error the buffer may hold part of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string contains a NUL byte, which the NUL-terminated wire form cannot carry.
    #[error("{field} contains a NUL byte")]
    InteriorNul {
        /// The string field.
        field: &'static str,
    },
    /// A length or count exceeds its wire field.
    #[error("{field} is {len}, more than the protocol can carry")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The length or count.
        len: usize,
    },
}

/// Relation columns that can be encoded: [`RelationColumns`] and `Vec<RelationColumn<String>>`.
pub trait RelationColumnList {
    /// Number of columns.
    fn relation_column_count(&self) -> usize;
    /// The columns, in order.
    fn relation_column_iter(&self) -> impl Iterator<Item = RelationColumn<&str>>;
}

impl RelationColumnList for RelationColumns<'_> {
    fn relation_column_count(&self) -> usize {
        self.len()
    }

    fn relation_column_iter(&self) -> impl Iterator<Item = RelationColumn<&str>> {
        self.iter()
    }
}

impl RelationColumnList for Vec<RelationColumn<String>> {
    fn relation_column_count(&self) -> usize {
        self.len()
    }

    fn relation_column_iter(&self) -> impl Iterator<Item = RelationColumn<&str>> {
        self.iter().map(|c| RelationColumn {
            flags: c.flags,
            name: c.name.as_str(),
            type_oid: c.type_oid,
            type_modifier: c.type_modifier,
        })
    }
}

/// OID lists that can be encoded: [`OidList`] and `Vec<Oid>`.
pub trait OidSequence {
    /// Number of OIDs.
    fn oid_count(&self) -> usize;
    /// The OIDs, in order.
    fn oid_iter(&self) -> impl Iterator<Item = Oid>;
}

impl OidSequence for OidList<'_> {
    fn oid_count(&self) -> usize {
        self.len()
    }

    fn oid_iter(&self) -> impl Iterator<Item = Oid> {
        self.iter()
    }
}

impl OidSequence for Vec<Oid> {
    fn oid_count(&self) -> usize {
        self.len()
    }

    fn oid_iter(&self) -> impl Iterator<Item = Oid> {
        self.iter().copied()
    }
}

fn put_cstr(buf: &mut impl BufMut, s: &str, field: &'static str) -> Result<(), EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::InteriorNul { field });
    }
    buf.put_slice(s.as_bytes());
    buf.put_u8(0);
    Ok(())
}

fn put_xid(buf: &mut impl BufMut, xid: Option<Xid>) {
    if let Some(xid) = xid {
        buf.put_u32(xid.0);
    }
}

fn len_i32(len: usize, field: &'static str) -> Result<i32, EncodeError> {
    i32::try_from(len).map_err(|_| EncodeError::TooLong { field, len })
}

fn len_u16(len: usize, field: &'static str) -> Result<u16, EncodeError> {
    u16::try_from(len).map_err(|_| EncodeError::TooLong { field, len })
}

/// Writes a TupleData (column count and columns).
fn put_tuple(buf: &mut impl BufMut, tuple: &impl TupleColumns) -> Result<(), EncodeError> {
    buf.put_u16(len_u16(tuple.column_count(), "tuple column count")?);
    for column in tuple.column_iter() {
        match column {
            Column::Null => buf.put_u8(COLUMN_NULL),
            Column::UnchangedToast => buf.put_u8(COLUMN_UNCHANGED_TOAST),
            Column::Text(v) | Column::Binary(v) => {
                let kind = if matches!(column, Column::Text(_)) {
                    COLUMN_TEXT
                } else {
                    COLUMN_BINARY
                };
                buf.put_u8(kind);
                buf.put_i32(len_i32(v.len(), "tuple column value length")?);
                buf.put_slice(v);
            }
        }
    }
    Ok(())
}

fn put_old(buf: &mut impl BufMut, old: &OldTuple<impl TupleColumns>) -> Result<(), EncodeError> {
    buf.put_u8(old.marker());
    put_tuple(buf, old.tuple())
}

impl Begin {
    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(tag::BEGIN);
        buf.put_u64(self.final_lsn.0);
        buf.put_i64(self.commit_time.0);
        buf.put_u32(self.xid.0);
    }
}

impl Commit {
    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(tag::COMMIT);
        buf.put_u8(self.flags);
        buf.put_u64(self.commit_lsn.0);
        buf.put_u64(self.end_lsn.0);
        buf.put_i64(self.commit_time.0);
    }
}

impl<S: AsRef<str>> Origin<S> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::InteriorNul`] if the name contains a NUL byte.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::ORIGIN);
        buf.put_u64(self.commit_lsn.0);
        put_cstr(buf, self.name.as_ref(), "Origin name")
    }
}

impl<S: AsRef<str>, C: RelationColumnList> Relation<S, C> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError`] if a name contains a NUL byte or there are more than 65535 columns.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::RELATION);
        put_xid(buf, self.xid);
        buf.put_u32(self.oid.0);
        put_cstr(buf, self.namespace.as_ref(), "Relation namespace")?;
        put_cstr(buf, self.name.as_ref(), "Relation name")?;
        buf.put_u8(self.replica_identity.as_byte());
        buf.put_u16(len_u16(
            self.columns.relation_column_count(),
            "relation column count",
        )?);
        for c in self.columns.relation_column_iter() {
            buf.put_u8(c.flags);
            put_cstr(buf, c.name, "relation column name")?;
            buf.put_u32(c.type_oid.0);
            buf.put_i32(c.type_modifier);
        }
        Ok(())
    }
}

impl<S: AsRef<str>> Type<S> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::InteriorNul`] if a name contains a NUL byte.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::TYPE);
        put_xid(buf, self.xid);
        buf.put_u32(self.oid.0);
        put_cstr(buf, self.namespace.as_ref(), "Type namespace")?;
        put_cstr(buf, self.name.as_ref(), "Type name")
    }
}

impl<T: TupleColumns> Insert<T> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] for more than 65535 columns or a value over 2 GiB.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::INSERT);
        put_xid(buf, self.xid);
        buf.put_u32(self.relation.0);
        buf.put_u8(b'N');
        put_tuple(buf, &self.new)
    }
}

impl<T: TupleColumns> Update<T> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] for more than 65535 columns or a value over 2 GiB.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::UPDATE);
        put_xid(buf, self.xid);
        buf.put_u32(self.relation.0);
        if let Some(old) = &self.old {
            put_old(buf, old)?;
        }
        buf.put_u8(b'N');
        put_tuple(buf, &self.new)
    }
}

impl<T: TupleColumns> Delete<T> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] for more than 65535 columns or a value over 2 GiB.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::DELETE);
        put_xid(buf, self.xid);
        buf.put_u32(self.relation.0);
        put_old(buf, &self.old)
    }
}

impl<L: OidSequence> Truncate<L> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] for more than `i32::MAX` relations.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::TRUNCATE);
        put_xid(buf, self.xid);
        buf.put_i32(len_i32(
            self.relations.oid_count(),
            "Truncate relation count",
        )?);
        buf.put_u8(self.flags);
        for oid in self.relations.oid_iter() {
            buf.put_u32(oid.0);
        }
        Ok(())
    }
}

impl<S: AsRef<str>, B: AsRef<[u8]>> LogicalMessage<S, B> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError`] if the prefix contains a NUL byte or the content exceeds 2 GiB.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::MESSAGE);
        put_xid(buf, self.xid);
        buf.put_u8(self.flags);
        buf.put_u64(self.lsn.0);
        put_cstr(buf, self.prefix.as_ref(), "Message prefix")?;
        let content = self.content.as_ref();
        buf.put_i32(len_i32(content.len(), "Message content length")?);
        buf.put_slice(content);
        Ok(())
    }
}

impl StreamStart {
    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(tag::STREAM_START);
        buf.put_u32(self.xid.0);
        buf.put_u8(self.first_segment.into());
    }
}

impl StreamCommit {
    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(tag::STREAM_COMMIT);
        buf.put_u32(self.xid.0);
        buf.put_u8(self.flags);
        buf.put_u64(self.commit_lsn.0);
        buf.put_u64(self.end_lsn.0);
        buf.put_i64(self.commit_time.0);
    }
}

impl StreamAbort {
    /// Appends the encoded message (tag included) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(tag::STREAM_ABORT);
        buf.put_u32(self.xid.0);
        buf.put_u32(self.subxid.0);
        if let Some(abort) = self.abort {
            buf.put_u64(abort.abort_lsn.0);
            buf.put_i64(abort.abort_time.0);
        }
    }
}

impl<S: AsRef<str>> BeginPrepare<S> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::InteriorNul`] if the gid contains a NUL byte.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::BEGIN_PREPARE);
        buf.put_u64(self.prepare_lsn.0);
        buf.put_u64(self.end_lsn.0);
        buf.put_i64(self.prepare_time.0);
        buf.put_u32(self.xid.0);
        put_cstr(buf, self.gid.as_ref(), "Begin Prepare gid")
    }
}

impl<S: AsRef<str>> Prepare<S> {
    /// Appends the encoded Prepare (`P`) message to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::InteriorNul`] if the gid contains a NUL byte.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        self.encode_with_tag(buf, tag::PREPARE)
    }

    /// Appends the same body as a Stream Prepare (`p`) message to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::InteriorNul`] if the gid contains a NUL byte.
    pub fn encode_stream_prepare(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        self.encode_with_tag(buf, tag::STREAM_PREPARE)
    }

    fn encode_with_tag(&self, buf: &mut impl BufMut, t: u8) -> Result<(), EncodeError> {
        buf.put_u8(t);
        buf.put_u8(self.flags);
        buf.put_u64(self.prepare_lsn.0);
        buf.put_u64(self.end_lsn.0);
        buf.put_i64(self.prepare_time.0);
        buf.put_u32(self.xid.0);
        put_cstr(buf, self.gid.as_ref(), "Prepare gid")
    }
}

impl<S: AsRef<str>> CommitPrepared<S> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::InteriorNul`] if the gid contains a NUL byte.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::COMMIT_PREPARED);
        buf.put_u8(self.flags);
        buf.put_u64(self.commit_lsn.0);
        buf.put_u64(self.end_lsn.0);
        buf.put_i64(self.commit_time.0);
        buf.put_u32(self.xid.0);
        put_cstr(buf, self.gid.as_ref(), "Commit Prepared gid")
    }
}

impl<S: AsRef<str>> RollbackPrepared<S> {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError::InteriorNul`] if the gid contains a NUL byte.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        buf.put_u8(tag::ROLLBACK_PREPARED);
        buf.put_u8(self.flags);
        buf.put_u64(self.prepare_end_lsn.0);
        buf.put_u64(self.rollback_end_lsn.0);
        buf.put_i64(self.prepare_time.0);
        buf.put_i64(self.rollback_time.0);
        buf.put_u32(self.xid.0);
        put_cstr(buf, self.gid.as_ref(), "Rollback Prepared gid")
    }
}

/// The same dispatch for both message enums (their variants have the same names).
macro_rules! encode_any {
    ($enum:ident, $msg:expr, $buf:expr) => {
        match $msg {
            $enum::Begin(m) => Ok(m.encode($buf)),
            $enum::Commit(m) => Ok(m.encode($buf)),
            $enum::Origin(m) => m.encode($buf),
            $enum::Relation(m) => m.encode($buf),
            $enum::Type(m) => m.encode($buf),
            $enum::Insert(m) => m.encode($buf),
            $enum::Update(m) => m.encode($buf),
            $enum::Delete(m) => m.encode($buf),
            $enum::Truncate(m) => m.encode($buf),
            $enum::Message(m) => m.encode($buf),
            $enum::StreamStart(m) => Ok(m.encode($buf)),
            $enum::StreamStop => Ok($buf.put_u8(tag::STREAM_STOP)),
            $enum::StreamCommit(m) => Ok(m.encode($buf)),
            $enum::StreamAbort(m) => Ok(m.encode($buf)),
            $enum::BeginPrepare(m) => m.encode($buf),
            $enum::Prepare(m) => m.encode($buf),
            $enum::CommitPrepared(m) => m.encode($buf),
            $enum::RollbackPrepared(m) => m.encode($buf),
            $enum::StreamPrepare(m) => m.encode_stream_prepare($buf),
        }
    };
}

impl Message<'_> {
    /// Appends the encoded message (tag included) to `buf`, byte-identical to what was
    /// decoded.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::{decode_message, ProtocolVersion};
    /// let wire = b"D\0\0\x40\0K\0\x02t\0\0\0\x011u";
    /// let msg = decode_message(wire, ProtocolVersion::V1, false)?;
    /// let mut out = Vec::new();
    /// msg.encode(&mut out).unwrap();
    /// assert_eq!(out, wire);
    /// # Ok::<(), pg_walstream_codec::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// Never for a decoded message; see [`EncodeError`] for hand-built ones.
    #[allow(clippy::unit_arg)]
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_any!(Message, self, buf)
    }
}

impl OwnedMessage {
    /// Appends the encoded message (tag included) to `buf`.
    ///
    /// # Errors
    /// [`EncodeError`] if a string contains a NUL byte or a length exceeds its wire field.
    #[allow(clippy::unit_arg)]
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_any!(OwnedMessage, self, buf)
    }
}
