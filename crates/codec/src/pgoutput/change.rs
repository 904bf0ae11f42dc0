//! Row changes (Insert, Update, Delete): reading their bodies, for both [`Message`]s and
//! [`LocatedChange`]s.
//!
//! A [`LocatedChange`] is what a consumer that keeps the message bytes needs from a row
//! change: the relation, the xid and where the tuples lie, validated exactly as
//! [`decode_message`](super::decode_message) validates them, without building a borrowed
//! [`Message`] and taking its tuples' positions apart again.
//!
//! [`Message`]: super::Message

use crate::error::DecodeError;
use crate::ids::{Oid, Xid};
use crate::reader::Reader;

use super::TupleLayout;
use super::messages::OldTuple;
use super::tag;
use super::tuple::{TupleData, read_tuple};

/// Which row change a [`LocatedChange`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// `I`: a new tuple.
    Insert,
    /// `U`: a new tuple, and an old key or old row when the server sends one.
    Update,
    /// `D`: an old key or old row.
    Delete,
}

/// An Insert, Update or Delete message, validated and located: its relation, its
/// (sub)transaction xid and where its tuples lie in the message bytes, with their column
/// offsets. Read a tuple with [`TupleLayout::tuple_in`] over the same bytes.
///
/// Built by [`PgOutputDecoder::decode_change`](super::PgOutputDecoder::decode_change).
#[derive(Debug, Clone, Copy)]
pub struct LocatedChange {
    kind: ChangeKind,
    xid: Option<Xid>,
    relation: Oid,
    old: Option<OldTuple<TupleLayout>>,
    new: Option<TupleLayout>,
}

impl LocatedChange {
    /// Insert, Update or Delete.
    pub fn kind(&self) -> ChangeKind {
        self.kind
    }

    /// The (sub)transaction xid, inside a streamed block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The OID of the relation changed.
    pub fn relation(&self) -> Oid {
        self.relation
    }

    /// The old key (`K`) or old row (`O`) of an Update or Delete.
    pub fn old(&self) -> Option<OldTuple<TupleLayout>> {
        self.old
    }

    /// The new tuple of an Insert or Update.
    pub fn new_tuple(&self) -> Option<TupleLayout> {
        self.new
    }

    /// `change` with its tuples located in `message`, the bytes they were read from; `None`
    /// when they lie beyond 32-bit offsets.
    #[inline]
    pub(crate) fn locate(change: ChangeBody<'_>, xid: Option<Xid>, message: &[u8]) -> Option<Self> {
        let (kind, old, new) = match change {
            ChangeBody::Insert { new, .. } => (ChangeKind::Insert, None, Some(new)),
            ChangeBody::Update { old, new, .. } => (ChangeKind::Update, old, Some(new)),
            ChangeBody::Delete { old, .. } => (ChangeKind::Delete, Some(old), None),
        };
        let old = match old {
            Some(old) => Some(match old {
                OldTuple::Key(t) => OldTuple::Key(t.layout_in(message)?),
                OldTuple::Full(t) => OldTuple::Full(t.layout_in(message)?),
            }),
            None => None,
        };
        let new = match new {
            Some(new) => Some(new.layout_in(message)?),
            None => None,
        };
        Some(LocatedChange {
            kind,
            xid,
            relation: change.relation(),
            old,
            new,
        })
    }
}

/// The body of a row change after its tag (and streamed xid), as read from the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ChangeBody<'a> {
    Insert {
        relation: Oid,
        new: TupleData<'a>,
    },
    Update {
        relation: Oid,
        old: Option<OldTuple<TupleData<'a>>>,
        new: TupleData<'a>,
    },
    Delete {
        relation: Oid,
        old: OldTuple<TupleData<'a>>,
    },
}

impl<'a> ChangeBody<'a> {
    /// The change as a borrowed [`Message`](super::Message).
    pub(crate) fn into_message(self, xid: Option<Xid>) -> super::Message<'a> {
        use super::messages::{Delete, Insert, Update};
        match self {
            ChangeBody::Insert { relation, new } => {
                super::Message::Insert(Insert { xid, relation, new })
            }
            ChangeBody::Update { relation, old, new } => super::Message::Update(Update {
                xid,
                relation,
                old,
                new,
            }),
            ChangeBody::Delete { relation, old } => {
                super::Message::Delete(Delete { xid, relation, old })
            }
        }
    }

    fn relation(&self) -> Oid {
        match self {
            ChangeBody::Insert { relation, .. }
            | ChangeBody::Update { relation, .. }
            | ChangeBody::Delete { relation, .. } => *relation,
        }
    }
}

/// Whether `t` is the tag of a row change.
pub(crate) fn is_change_tag(t: u8) -> bool {
    matches!(t, tag::INSERT | tag::UPDATE | tag::DELETE)
}

/// Reads the body of the row change tagged `t`.
#[inline]
pub(crate) fn read_change<'a>(r: &mut Reader<'a>, t: u8) -> Result<ChangeBody<'a>, DecodeError> {
    Ok(match t {
        tag::INSERT => {
            let relation = Oid(r.u32("Insert relation OID")?);
            expect_new(r, "Insert tuple marker 'N'")?;
            ChangeBody::Insert {
                relation,
                new: read_tuple(r)?,
            }
        }
        tag::UPDATE => {
            let relation = Oid(r.u32("Update relation OID")?);
            let marker = r.u8("Update tuple marker 'K', 'O' or 'N'")?;
            let old = if marker == b'N' {
                None
            } else {
                let old = read_old(r, marker).unwrap_or_else(|| {
                    Err(r.unknown_tag(marker, "tuple marker 'K', 'O' or 'N'"))
                })?;
                expect_new(r, "Update new tuple marker 'N'")?;
                Some(old)
            };
            ChangeBody::Update {
                relation,
                old,
                new: read_tuple(r)?,
            }
        }
        tag::DELETE => {
            let relation = Oid(r.u32("Delete relation OID")?);
            let marker = r.u8("Delete tuple marker 'K' or 'O'")?;
            let old = read_old(r, marker)
                .unwrap_or_else(|| Err(r.unknown_tag(marker, "Delete tuple marker 'K' or 'O'")))?;
            ChangeBody::Delete { relation, old }
        }
        other => return Err(r.unknown_tag(other, "row change tag 'I', 'U' or 'D'")),
    })
}

/// Reads the `N` marker that announces a new tuple (`expected` names it in the error).
fn expect_new(r: &mut Reader<'_>, expected: &'static str) -> Result<(), DecodeError> {
    match r.u8(expected)? {
        b'N' => Ok(()),
        marker => Err(r.unknown_tag(marker, expected)),
    }
}

/// The old tuple a `K` (key) or `O` (whole row) marker announces; `None` for another marker.
fn read_old<'a>(
    r: &mut Reader<'a>,
    marker: u8,
) -> Option<Result<OldTuple<TupleData<'a>>, DecodeError>> {
    match marker {
        b'K' => Some(read_tuple(r).map(OldTuple::Key)),
        b'O' => Some(read_tuple(r).map(OldTuple::Full)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::pgoutput::{Message, PgOutputDecoder, ProtocolVersion, decode_message};

    /// A TupleData: `n` (NULL), `u` (unchanged TOAST), or a text column per entry.
    fn tuple(columns: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = (columns.len() as u16).to_be_bytes().to_vec();
        for column in columns {
            match column {
                None => out.push(b'n'),
                Some(b"u") => out.push(b'u'),
                Some(value) => {
                    out.push(b't');
                    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
                    out.extend_from_slice(value);
                }
            }
        }
        out
    }

    /// Row-change messages of every shape, with the streamed xid prefix when `xid` is given.
    fn changes(xid: Option<u32>) -> Vec<Vec<u8>> {
        let narrow = tuple(&[Some(b"1"), None, Some(b"hello")]);
        let wide: Vec<Option<&[u8]>> = (0..21)
            .map(|i| match i % 4 {
                0 => None,
                1 => Some(&b"u"[..]),
                _ => Some(&b"value"[..]),
            })
            .collect();
        let wide = tuple(&wide);
        let key = tuple(&[Some(b"1"), None, None]);
        let body = |t: u8, parts: &[&[u8]]| {
            let mut out = vec![t];
            if let Some(xid) = xid {
                out.extend_from_slice(&xid.to_be_bytes());
            }
            out.extend_from_slice(&16384u32.to_be_bytes());
            for part in parts {
                out.extend_from_slice(part);
            }
            out
        };
        vec![
            body(b'I', &[b"N", &narrow]),
            body(b'I', &[b"N", &wide]),
            body(b'I', &[b"N", &tuple(&[])]),
            body(b'U', &[b"N", &narrow]),
            body(b'U', &[b"K", &key, b"N", &narrow]),
            body(b'U', &[b"O", &wide, b"N", &wide]),
            body(b'D', &[b"K", &key]),
            body(b'D', &[b"O", &narrow]),
        ]
    }

    /// `decode_change` and `decode_message` agree on `data`: the same error, or the same
    /// change with tuples at the same places.
    fn assert_agree(data: &[u8], version: ProtocolVersion, in_stream: bool) {
        let mut decoder = PgOutputDecoder::new(version);
        if in_stream {
            decoder.decode(b"S\0\0\0\x09\x01").unwrap();
        }
        let located = decoder.decode_change(data);
        let expected = decode_message(data, version, in_stream);
        let (message, located) = match (expected, located) {
            (Err(expected), located) => {
                if data.first().is_some_and(|&t| is_change_tag(t)) {
                    assert_eq!(located.unwrap_err(), expected, "{data:?}");
                } else {
                    assert!(matches!(located, Ok(None)), "{data:?}");
                }
                return;
            }
            (Ok(message), Ok(located)) => (message, located),
            (Ok(message), Err(e)) => panic!("{data:?}: decode gave {message:?}, decode_change {e}"),
        };
        let tuple_of = |layout: Option<TupleLayout>| layout.map(|l| l.tuple_in(data).unwrap());
        let Some(located) = located else {
            assert!(!matches!(
                message,
                Message::Insert(_) | Message::Update(_) | Message::Delete(_)
            ));
            return;
        };
        let old = located.old().map(|o| o.map(|l| l.tuple_in(data).unwrap()));
        let (kind, xid, relation, want_old, want_new) = match message {
            Message::Insert(i) => (ChangeKind::Insert, i.xid, i.relation, None, Some(i.new)),
            Message::Update(u) => (ChangeKind::Update, u.xid, u.relation, u.old, Some(u.new)),
            Message::Delete(d) => (ChangeKind::Delete, d.xid, d.relation, Some(d.old), None),
            other => panic!("decode_change located {other:?}"),
        };
        assert_eq!(located.kind(), kind);
        assert_eq!(located.xid(), xid);
        assert_eq!(located.relation(), relation);
        assert_eq!(old, want_old);
        assert_eq!(tuple_of(located.new_tuple()), want_new);
        if let Some(new) = want_new {
            let layout = located.new_tuple().unwrap();
            for i in 0..new.len() {
                assert_eq!(layout.tuple_in(data).unwrap().column(i), new.column(i));
            }
        }
    }

    #[test]
    fn decode_change_agrees_with_decode_on_good_and_damaged_messages() {
        let cases = [
            (None, ProtocolVersion::V1, false),
            (None, ProtocolVersion::V4, false),
            (Some(77), ProtocolVersion::V2, true),
        ];
        let mut checked = 0;
        for (xid, version, in_stream) in cases {
            for message in changes(xid) {
                assert!(decode_message(&message, version, in_stream).is_ok());
                for len in 0..=message.len() {
                    assert_agree(&message[..len], version, in_stream);
                    checked += 1;
                }
                let mut longer = message.clone();
                longer.push(0);
                assert_agree(&longer, version, in_stream);
                for at in 0..message.len() {
                    for byte in [0, 0xff, b'I', b'K', b'N', b'O', b'n', b't', b'u', b'b'] {
                        let mut damaged = message.clone();
                        damaged[at] = byte;
                        assert_agree(&damaged, version, in_stream);
                        checked += 1;
                    }
                }
            }
        }
        // A streamed change read outside its block (the xid taken for the relation).
        for message in changes(Some(77)) {
            assert_agree(&message, ProtocolVersion::V2, false);
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn a_change_that_is_not_a_change_is_left_to_decode() {
        let decoder = PgOutputDecoder::new(ProtocolVersion::V1);
        assert!(matches!(decoder.decode_change(b""), Ok(None)));
        let begin = b"B\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\x05\0\0\x02\x2a";
        assert!(matches!(decoder.decode_change(begin), Ok(None)));
    }
}
