//! Decoding pgoutput messages.

use crate::error::{DecodeError, Tag};
use crate::ids::{Oid, Xid};
use crate::lsn::Lsn;
use crate::reader::Reader;
use crate::time::PgTimestamp;

use super::change::{LocatedChange, is_change_tag, read_change};
use super::lists::{read_oids, read_relation_columns};
use super::messages::{
    AbortInfo, Begin, BeginPrepare, Commit, CommitPrepared, LogicalMessage, Origin, Prepare,
    Relation, ReplicaIdentity, RollbackPrepared, StreamAbort, StreamCommit, StreamStart, Truncate,
    Type,
};
use super::{Message, ProtocolVersion, tag};

const ANY_TAG: &str = "pgoutput message tag";

/// Where a message may appear relative to Stream Start/Stop blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    Outside,
    Inside,
    Either,
}

/// Protocol version that introduced a tag, and where it may appear.
fn rules(tag: u8) -> Option<(ProtocolVersion, Placement)> {
    use ProtocolVersion::{V1, V2, V3};
    Some(match tag {
        tag::BEGIN | tag::COMMIT => (V1, Placement::Outside),
        tag::ORIGIN
        | tag::RELATION
        | tag::TYPE
        | tag::INSERT
        | tag::UPDATE
        | tag::DELETE
        | tag::TRUNCATE
        | tag::MESSAGE => (V1, Placement::Either),
        tag::STREAM_START | tag::STREAM_COMMIT | tag::STREAM_ABORT => (V2, Placement::Outside),
        tag::STREAM_STOP => (V2, Placement::Inside),
        tag::BEGIN_PREPARE
        | tag::PREPARE
        | tag::COMMIT_PREPARED
        | tag::ROLLBACK_PREPARED
        | tag::STREAM_PREPARE => (V3, Placement::Outside),
        _ => return None,
    })
}

/// Decodes one pgoutput message, with the stream state supplied by the caller.
///
/// `in_stream` says whether the message lies between a Stream Start and a Stream Stop; it
/// decides whether R, Y, I, U, D, T and M messages carry a (sub)transaction xid prefix.
/// Prefer [`PgOutputDecoder`], which tracks that itself; this function is for tools that
/// process messages out of order.
///
/// ```
/// use pg_walstream_codec::pgoutput::{decode_message, Message, ProtocolVersion};
/// let msg = decode_message(b"E", ProtocolVersion::V2, true).unwrap();
/// assert_eq!(msg, Message::StreamStop);
/// // A Stream Stop outside a streamed block is an error, as is one in protocol v1.
/// assert!(decode_message(b"E", ProtocolVersion::V2, false).is_err());
/// assert!(decode_message(b"E", ProtocolVersion::V1, true).is_err());
/// ```
///
/// # Errors
/// [`DecodeError`] if the message is empty, truncated, has bytes left over, has an unknown
/// tag (of the message, a tuple column or an old-tuple marker), an invalid UTF-8 string, an
/// out-of-range field, is not part of `version`, or cannot appear at this `in_stream` state.
pub fn decode_message(
    data: &[u8],
    version: ProtocolVersion,
    in_stream: bool,
) -> Result<Message<'_>, DecodeError> {
    let (mut r, t, xid) = open(data, version, in_stream)?;
    let msg = decode_body(&mut r, t, xid, version)?;
    r.finish()?;
    Ok(msg)
}

/// Starts decoding `data`: its tag, checked against `version` and the `in_stream` state,
/// and the streamed (sub)transaction xid where the message carries one.
#[inline]
fn open(
    data: &[u8],
    version: ProtocolVersion,
    in_stream: bool,
) -> Result<(Reader<'_>, u8, Option<Xid>), DecodeError> {
    let mut r = Reader::message(data, ANY_TAG)?;
    let t = r.tag();
    let Some((since, placement)) = rules(t) else {
        return Err(r.unknown_tag(t, ANY_TAG));
    };
    if version < since {
        return Err(DecodeError::UnsupportedMessage {
            tag: Tag(t),
            proto_version: version.as_u32(),
            required: since.as_u32(),
        });
    }
    if in_stream && version < ProtocolVersion::V2 {
        return Err(DecodeError::UnexpectedStreamState {
            tag: Tag(t),
            state: "inside a streamed block (protocol version 1 has no streaming)",
        });
    }
    match (placement, in_stream) {
        (Placement::Outside, true) => {
            return Err(DecodeError::UnexpectedStreamState {
                tag: Tag(t),
                state: "inside a streamed block",
            });
        }
        (Placement::Inside, false) => {
            return Err(DecodeError::UnexpectedStreamState {
                tag: Tag(t),
                state: "outside a streamed block",
            });
        }
        _ => {}
    }
    let xid = if in_stream && placement == Placement::Either && t != tag::ORIGIN {
        Some(Xid(r.u32("streamed transaction xid")?))
    } else {
        None
    };
    Ok((r, t, xid))
}

fn lsn(r: &mut Reader<'_>, expected: &'static str) -> Result<Lsn, DecodeError> {
    r.u64(expected).map(Lsn)
}

fn time(r: &mut Reader<'_>, expected: &'static str) -> Result<PgTimestamp, DecodeError> {
    r.i64(expected).map(PgTimestamp)
}

fn decode_body<'a>(
    r: &mut Reader<'a>,
    t: u8,
    xid: Option<Xid>,
    version: ProtocolVersion,
) -> Result<Message<'a>, DecodeError> {
    Ok(match t {
        tag::BEGIN => Message::Begin(Begin {
            final_lsn: lsn(r, "Begin final LSN")?,
            commit_time: time(r, "Begin commit time")?,
            xid: Xid(r.u32("Begin xid")?),
        }),
        tag::COMMIT => Message::Commit(Commit {
            flags: r.u8("Commit flags")?,
            commit_lsn: lsn(r, "Commit LSN")?,
            end_lsn: lsn(r, "Commit end LSN")?,
            commit_time: time(r, "Commit time")?,
        }),
        tag::ORIGIN => Message::Origin(Origin {
            commit_lsn: lsn(r, "Origin commit LSN")?,
            name: r.cstr("Origin name")?,
        }),
        tag::RELATION => {
            let oid = Oid(r.u32("Relation OID")?);
            let namespace = r.cstr("Relation namespace")?;
            let name = r.cstr("Relation name")?;
            let ident = r.u8("Relation replica identity")?;
            let replica_identity = ReplicaIdentity::from_byte(ident)
                .ok_or_else(|| r.unknown_tag(ident, "replica identity 'd', 'n', 'f' or 'i'"))?;
            let columns = read_relation_columns(r)?;
            Message::Relation(Relation {
                xid,
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        tag::TYPE => Message::Type(Type {
            xid,
            oid: Oid(r.u32("Type OID")?),
            namespace: r.cstr("Type namespace")?,
            name: r.cstr("Type name")?,
        }),
        tag::INSERT | tag::UPDATE | tag::DELETE => read_change(r, t)?.into_message(xid),
        tag::TRUNCATE => {
            let count = r.i32("Truncate relation count")?;
            let flags = r.u8("Truncate flags")?;
            let relations = read_oids(r, count)?;
            Message::Truncate(Truncate {
                xid,
                flags,
                relations,
            })
        }
        tag::MESSAGE => {
            let flags = r.u8("Message flags")?;
            let lsn = lsn(r, "Message LSN")?;
            let prefix = r.cstr("Message prefix")?;
            let len = r.i32("Message content length")?;
            let len = usize::try_from(len)
                .map_err(|_| r.invalid(4, len.into(), "non-negative content length"))?;
            let content = r.take(len, 4, "Message content")?;
            Message::Message(LogicalMessage {
                xid,
                flags,
                lsn,
                prefix,
                content,
            })
        }
        tag::STREAM_START => {
            let xid = Xid(r.u32("Stream Start xid")?);
            let first_segment = match r.u8("Stream Start first-segment flag")? {
                0 => false,
                1 => true,
                other => return Err(r.invalid(1, other.into(), "first-segment flag 0 or 1")),
            };
            Message::StreamStart(StreamStart { xid, first_segment })
        }
        tag::STREAM_STOP => Message::StreamStop,
        tag::STREAM_COMMIT => Message::StreamCommit(StreamCommit {
            xid: Xid(r.u32("Stream Commit xid")?),
            flags: r.u8("Stream Commit flags")?,
            commit_lsn: lsn(r, "Stream Commit LSN")?,
            end_lsn: lsn(r, "Stream Commit end LSN")?,
            commit_time: time(r, "Stream Commit time")?,
        }),
        tag::STREAM_ABORT => {
            let xid = Xid(r.u32("Stream Abort xid")?);
            let subxid = Xid(r.u32("Stream Abort subtransaction xid")?);
            // v4 sends abort LSN and time only with `streaming = parallel`; the message
            // length tells which form this is.
            let abort = if version >= ProtocolVersion::V4 && r.remaining() > 0 {
                Some(AbortInfo {
                    abort_lsn: lsn(r, "Stream Abort LSN")?,
                    abort_time: time(r, "Stream Abort time")?,
                })
            } else {
                None
            };
            Message::StreamAbort(StreamAbort { xid, subxid, abort })
        }
        tag::BEGIN_PREPARE => Message::BeginPrepare(BeginPrepare {
            prepare_lsn: lsn(r, "Begin Prepare LSN")?,
            end_lsn: lsn(r, "Begin Prepare end LSN")?,
            prepare_time: time(r, "Begin Prepare time")?,
            xid: Xid(r.u32("Begin Prepare xid")?),
            gid: r.cstr("Begin Prepare gid")?,
        }),
        tag::PREPARE | tag::STREAM_PREPARE => {
            let prepare = Prepare {
                flags: r.u8("Prepare flags")?,
                prepare_lsn: lsn(r, "Prepare LSN")?,
                end_lsn: lsn(r, "Prepare end LSN")?,
                prepare_time: time(r, "Prepare time")?,
                xid: Xid(r.u32("Prepare xid")?),
                gid: r.cstr("Prepare gid")?,
            };
            if t == tag::PREPARE {
                Message::Prepare(prepare)
            } else {
                Message::StreamPrepare(prepare)
            }
        }
        tag::COMMIT_PREPARED => Message::CommitPrepared(CommitPrepared {
            flags: r.u8("Commit Prepared flags")?,
            commit_lsn: lsn(r, "Commit Prepared LSN")?,
            end_lsn: lsn(r, "Commit Prepared end LSN")?,
            commit_time: time(r, "Commit Prepared time")?,
            xid: Xid(r.u32("Commit Prepared xid")?),
            gid: r.cstr("Commit Prepared gid")?,
        }),
        tag::ROLLBACK_PREPARED => Message::RollbackPrepared(RollbackPrepared {
            flags: r.u8("Rollback Prepared flags")?,
            prepare_end_lsn: lsn(r, "Rollback Prepared prepare end LSN")?,
            rollback_end_lsn: lsn(r, "Rollback Prepared end LSN")?,
            prepare_time: time(r, "Rollback Prepared prepare time")?,
            rollback_time: time(r, "Rollback Prepared time")?,
            xid: Xid(r.u32("Rollback Prepared xid")?),
            gid: r.cstr("Rollback Prepared gid")?,
        }),
        other => return Err(r.unknown_tag(other, ANY_TAG)),
    })
}

/// Which transaction, if any, a [`PgOutputDecoder`] is inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transaction {
    /// Between transactions.
    None,
    /// After Begin: ends with Commit.
    Plain,
    /// After Begin Prepare: ends with Prepare.
    Prepare,
}

/// Checks transaction framing: Begin and Begin Prepare open a transaction, Commit and Prepare
/// close the one their Begin opened, and nothing that belongs between transactions (streamed
/// and two-phase control messages) appears inside one. Returns the state after `tag`.
fn next_transaction(open: Transaction, tag: u8) -> Result<Transaction, DecodeError> {
    let violation = |state| {
        Err(DecodeError::UnexpectedStreamState {
            tag: Tag(tag),
            state,
        })
    };
    match (tag, open) {
        (tag::BEGIN, Transaction::None) => Ok(Transaction::Plain),
        (tag::BEGIN_PREPARE, Transaction::None) => Ok(Transaction::Prepare),
        (tag::COMMIT, Transaction::Plain) | (tag::PREPARE, Transaction::Prepare) => {
            Ok(Transaction::None)
        }
        (tag::COMMIT | tag::PREPARE, Transaction::None) => {
            violation("outside a transaction (no Begin or Begin Prepare is open)")
        }
        (tag::COMMIT, Transaction::Prepare) => {
            violation("inside a transaction opened by Begin Prepare (it ends with Prepare)")
        }
        (tag::PREPARE, Transaction::Plain) => {
            violation("inside a transaction opened by Begin (it ends with Commit)")
        }
        (
            tag::BEGIN
            | tag::BEGIN_PREPARE
            | tag::STREAM_START
            | tag::STREAM_COMMIT
            | tag::STREAM_ABORT
            | tag::STREAM_PREPARE
            | tag::COMMIT_PREPARED
            | tag::ROLLBACK_PREPARED,
            Transaction::Plain | Transaction::Prepare,
        ) => violation("inside an open transaction (Begin without Commit or Prepare yet)"),
        _ => Ok(open),
    }
}

/// A pgoutput decoder for one replication stream.
///
/// It knows the negotiated protocol version, tracks Stream Start/Stop blocks, so the xid
/// prefix of streamed messages is always read correctly, and tracks transaction framing:
/// a Commit without its Begin, a second Commit, a Begin (or a streamed or two-phase control
/// message) inside an open transaction and a Commit closing a Begin Prepare are rejected
/// with [`DecodeError::UnexpectedStreamState`], like out-of-place stream messages.
/// Messages that may appear between transactions (non-transactional logical messages,
/// Commit Prepared, Rollback Prepared, Stream Commit/Abort/Prepare, streamed blocks) decode
/// there. A message that fails to decode leaves the state unchanged.
///
/// ```
/// use pg_walstream_codec::DecodeError;
/// use pg_walstream_codec::pgoutput::{Message, PgOutputDecoder, ProtocolVersion};
///
/// let mut decoder = PgOutputDecoder::new(ProtocolVersion::V1);
/// let begin = b"B\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\x05\0\0\x02\x2a";
/// let Message::Begin(b) = decoder.decode(begin)? else { panic!() };
/// assert_eq!(b.xid.0, 554);
/// assert!(decoder.in_transaction());
/// // Streaming messages are not part of protocol version 1.
/// assert!(decoder.decode(b"S\0\0\0\x01\x01").is_err());
/// // A second Begin before the Commit is a protocol error.
/// assert!(matches!(
///     decoder.decode(begin),
///     Err(DecodeError::UnexpectedStreamState { .. })
/// ));
/// # Ok::<(), pg_walstream_codec::DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PgOutputDecoder {
    version: ProtocolVersion,
    in_stream: bool,
    transaction: Transaction,
}

impl PgOutputDecoder {
    /// A decoder for a stream started with `proto_version` = `version`, positioned between
    /// transactions (where every replication stream starts).
    pub const fn new(version: ProtocolVersion) -> Self {
        Self {
            version,
            in_stream: false,
            transaction: Transaction::None,
        }
    }

    /// The protocol version.
    pub const fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Whether the last decoded message left us inside a Stream Start/Stop block.
    pub const fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Whether the last decoded message left us inside a transaction: after a Begin and
    /// before its Commit, or after a Begin Prepare and before its Prepare. (Streamed
    /// transactions are tracked by [`in_stream`](Self::in_stream) blocks instead.)
    pub const fn in_transaction(&self) -> bool {
        !matches!(self.transaction, Transaction::None)
    }

    /// Decodes the next message of the stream (an XLogData payload).
    ///
    /// # Errors
    /// As [`decode_message`], and [`DecodeError::UnexpectedStreamState`] for a message that
    /// breaks transaction framing (see the type's description); the state is unchanged on
    /// error.
    #[inline]
    pub fn decode<'a>(&mut self, data: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let msg = decode_message(data, self.version, self.in_stream)?;
        let tag = msg.tag();
        self.transaction = next_transaction(self.transaction, tag)?;
        match tag {
            tag::STREAM_START => self.in_stream = true,
            tag::STREAM_STOP => self.in_stream = false,
            _ => {}
        }
        Ok(msg)
    }

    /// Decodes the next message if it is an Insert, Update or Delete — the hot path of a
    /// consumer that keeps the message bytes — without building a [`Message`]: the change's
    /// relation, xid and tuple positions ([`LocatedChange`]). It accepts and rejects exactly
    /// the messages [`decode`](Self::decode) does, with the same errors, and a row change
    /// leaves the decoder's state as it was, so either method may decode any message.
    ///
    /// `Ok(None)` for any other message, which is left undecoded (decode it with
    /// [`decode`](Self::decode)), and for a change whose tuples lie beyond 32-bit offsets.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::{ChangeKind, Column, PgOutputDecoder, ProtocolVersion};
    ///
    /// let decoder = PgOutputDecoder::new(ProtocolVersion::V1);
    /// // Insert into relation 16384: (NULL, 'hi')
    /// let wire = b"I\0\0\x40\0N\0\x02nt\0\0\0\x02hi";
    /// let change = decoder.decode_change(wire)?.expect("an Insert");
    /// assert_eq!(change.kind(), ChangeKind::Insert);
    /// assert_eq!(change.relation().0, 16384);
    /// let tuple = change.new_tuple().and_then(|t| t.tuple_in(wire)).unwrap();
    /// assert_eq!(tuple.column(1), Some(Column::Text(b"hi")));
    /// // Not a row change: left to `decode`.
    /// assert!(decoder.decode_change(b"E")?.is_none());
    /// // A truncated change is the error `decode` reports.
    /// assert!(decoder.decode_change(&wire[..12]).is_err());
    /// # Ok::<(), pg_walstream_codec::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// As [`decode`](Self::decode), for a message tagged `I`, `U` or `D`.
    #[inline]
    pub fn decode_change(&self, data: &[u8]) -> Result<Option<LocatedChange>, DecodeError> {
        if !data.first().is_some_and(|&t| is_change_tag(t)) {
            return Ok(None);
        }
        // Row changes pass transaction framing wherever they appear (`next_transaction`)
        // and do not move Stream Start/Stop state: nothing to update.
        let (mut r, t, xid) = open(data, self.version, self.in_stream)?;
        let change = read_change(&mut r, t)?;
        r.finish()?;
        Ok(LocatedChange::locate(change, xid, data))
    }
}
