//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`).
//!
//! Each function takes arbitrary bytes and panics only if the codec breaks one of its
//! promises: decoding must not panic, and whatever decodes must re-encode to exactly the
//! input (and survive the borrowed → owned conversion unchanged).

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use crate::Xid;
use crate::ids::Oid;
use crate::lsn::Lsn;
use crate::pgoutput::{
    self, AbortInfo, Begin, Commit, Insert, LogicalMessage, Message, OldTuple, OwnedColumn,
    OwnedMessage, OwnedTupleData, PgOutputDecoder, ProtocolVersion, Relation, RelationColumn,
    ReplicaIdentity, StreamAbort, Truncate, Update,
};
use crate::replication::{BackendMessage, FrontendMessage};
use crate::time::PgTimestamp;

fn version_of(b: u8) -> ProtocolVersion {
    match b % 4 {
        0 => ProtocolVersion::V1,
        1 => ProtocolVersion::V2,
        2 => ProtocolVersion::V3,
        _ => ProtocolVersion::V4,
    }
}

/// Decodes `data` as a server and as a client replication CopyData payload; whatever
/// decodes must re-encode byte-identically.
pub fn replication(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(msg) = BackendMessage::parse(&bytes) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(out, data, "backend message re-encodes identically");
    }
    if let Ok(msg) = FrontendMessage::parse(data) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(out, data, "frontend message re-encodes identically");
    }
}

/// Decodes one pgoutput message: `data[0]` picks the protocol version (low 2 bits) and
/// whether we are inside a streamed block (bit 2); the rest is the message.
pub fn pgoutput_message(data: &[u8]) {
    let Some((&ctl, msg)) = data.split_first() else {
        return;
    };
    let version = version_of(ctl);
    let in_stream = ctl & 4 != 0;
    let source = Bytes::copy_from_slice(msg);
    if let Ok(decoded) = pgoutput::decode_message(&source, version, in_stream) {
        check_message(&source, decoded);
    }
}

/// Decodes a sequence of pgoutput messages with a [`PgOutputDecoder`]: `data[0]` picks the
/// protocol version, then each message is a 16-bit big-endian length and that many bytes.
/// Decoding stops at the first error, like a replication stream would.
pub fn pgoutput_stream(data: &[u8]) {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let mut decoder = PgOutputDecoder::new(version_of(ctl));
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        let Some((msg, tail)) = tail.split_at_checked(len) else {
            return;
        };
        rest = tail;
        let source = Bytes::copy_from_slice(msg);
        let before = decoder.in_stream();
        let txn_before = decoder.in_transaction();
        let located = decoder.decode_change(&source);
        let decoded = decoder.decode(&source);
        check_located(&source, located, &decoded);
        let Ok(decoded) = decoded else {
            assert_eq!(
                (before, txn_before),
                (decoder.in_stream(), decoder.in_transaction()),
                "errors leave the state unchanged"
            );
            return;
        };
        match decoded {
            Message::Begin(_) | Message::BeginPrepare(_) => {
                assert!(!txn_before && decoder.in_transaction());
            }
            Message::Commit(_) | Message::Prepare(_) => {
                assert!(txn_before && !decoder.in_transaction());
            }
            _ => assert_eq!(txn_before, decoder.in_transaction()),
        }
        match decoded {
            Message::StreamStart(_) => assert!(!before && decoder.in_stream()),
            Message::StreamStop => assert!(before && !decoder.in_stream()),
            _ => assert_eq!(before, decoder.in_stream()),
        }
        check_message(&source, decoded);
    }
}

/// `decode_change` accepted and rejected what `decode` did, and located the same change.
fn check_located(
    source: &[u8],
    located: Result<Option<pgoutput::LocatedChange>, crate::DecodeError>,
    decoded: &Result<Message<'_>, crate::DecodeError>,
) {
    let is_change = |m: &Message<'_>| {
        matches!(
            m,
            Message::Insert(_) | Message::Update(_) | Message::Delete(_)
        )
    };
    let change = match (located, decoded) {
        (Ok(None), Ok(message)) => return assert!(!is_change(message)),
        (Ok(None), Err(_)) => return assert!(!matches!(source.first(), Some(b'I' | b'U' | b'D'))),
        (Err(e), Err(expected)) => return assert_eq!(&e, expected),
        (Err(e), Ok(message)) => panic!("decode_change refused {message:?}: {e}"),
        (Ok(Some(_)), Err(e)) => panic!("decode_change accepted what decode refused: {e}"),
        (Ok(Some(change)), Ok(message)) => (change, message),
    };
    let (located, message) = change;
    let tuple = |layout: pgoutput::TupleLayout| layout.tuple_in(source).expect("located inside");
    use pgoutput::ChangeKind::{Delete, Insert, Update};
    let (kind, xid, relation, old, new) = match message {
        Message::Insert(i) => (Insert, i.xid, i.relation, None, Some(&i.new)),
        Message::Update(u) => (Update, u.xid, u.relation, u.old.as_ref(), Some(&u.new)),
        Message::Delete(d) => (Delete, d.xid, d.relation, Some(&d.old), None),
        other => panic!("decode_change located {other:?}"),
    };
    assert_eq!(
        (located.kind(), located.xid(), located.relation()),
        (kind, xid, relation)
    );
    assert_eq!(located.old().map(|o| o.map(tuple)), old.copied());
    assert_eq!(located.new_tuple().map(tuple), new.copied());
}

fn check_message(source: &Bytes, decoded: Message<'_>) {
    // Touch every column so the lazy iterators run.
    let mut columns = 0usize;
    let mut count = |t: &pgoutput::TupleData<'_>| {
        assert_eq!(t.columns().count(), t.len());
        // Reading by position (through the offsets kept while validating) agrees with
        // walking the columns, and so does the tuple re-attached from its layout.
        let layout = t
            .layout_in(source)
            .expect("a decoded tuple lies inside its message");
        let again = layout
            .tuple_in(source)
            .expect("the layout fits its message");
        assert_eq!(&again, t);
        for (i, column) in t.columns().enumerate() {
            assert_eq!(t.column(i), Some(column));
            assert_eq!(again.column(i), Some(column));
        }
        assert_eq!(t.column(t.len()), None);
        // A layout applied to bytes too short for it is refused, never a panic.
        let short = &source[..source.len() / 2];
        if let Some(other) = layout.tuple_in(short) {
            let walked = other.columns().count();
            let by_position = (0..=other.len()).filter_map(|i| other.column(i)).count();
            assert!(walked <= other.len() && by_position <= other.len());
        }
        columns += t.len();
    };
    match &decoded {
        Message::Insert(m) => count(&m.new),
        Message::Update(m) => {
            if let Some(old) = &m.old {
                count(old.tuple());
            }
            count(&m.new);
        }
        Message::Delete(m) => count(m.old.tuple()),
        Message::Relation(m) => assert_eq!(m.columns.iter().count(), m.columns.len()),
        _ => {}
    }
    let mut out = Vec::new();
    decoded.encode(&mut out).expect("decoded messages encode");
    assert_eq!(out, source.as_ref(), "message re-encodes identically");
    let owned = decoded.into_owned(source);
    let mut out = Vec::new();
    owned.encode(&mut out).expect("owned messages encode");
    assert_eq!(out, source.as_ref(), "owned message re-encodes identically");
}

/// Builds pgoutput messages from the bytes, encodes them, decodes them and checks the
/// result equals what was built.
pub fn pgoutput_round_trip(data: &[u8]) {
    let mut g = Gen { data };
    while !g.data.is_empty() {
        let (msg, version, in_stream) = g.message();
        let mut wire = Vec::new();
        if msg.encode(&mut wire).is_err() {
            continue;
        }
        let wire = Bytes::from(wire);
        let decoded = pgoutput::decode_message(&wire, version, in_stream)
            .unwrap_or_else(|e| panic!("{msg:?} does not decode: {e}"));
        assert_eq!(decoded.into_owned(&wire), msg);
    }
}

/// A tiny byte-driven generator (no `arbitrary` dependency in the library).
struct Gen<'a> {
    data: &'a [u8],
}

impl Gen<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    fn bytes(&mut self) -> Bytes {
        let n = usize::from(self.u8() % 16).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Bytes::copy_from_slice(head)
    }

    fn string(&mut self) -> String {
        self.bytes()
            .iter()
            .map(|&b| char::from(b'a' + b % 26))
            .collect()
    }

    fn tuple(&mut self) -> OwnedTupleData {
        let n = self.u8() % 6;
        let columns = (0..n)
            .map(|_| match self.u8() % 4 {
                0 => OwnedColumn::Null,
                1 => OwnedColumn::UnchangedToast,
                2 => OwnedColumn::Text(self.bytes()),
                _ => OwnedColumn::Binary(self.bytes()),
            })
            .collect();
        OwnedTupleData { columns }
    }

    fn message(&mut self) -> (OwnedMessage, ProtocolVersion, bool) {
        let in_stream = self.u8() % 2 == 1;
        let xid = in_stream.then(|| Xid(self.u32()));
        let version = if in_stream {
            ProtocolVersion::V2
        } else {
            ProtocolVersion::V1
        };
        let msg = match self.u8() % 8 {
            0 if !in_stream => OwnedMessage::Begin(Begin {
                final_lsn: Lsn(self.u64()),
                commit_time: PgTimestamp(self.u64() as i64),
                xid: Xid(self.u32()),
            }),
            1 if !in_stream => OwnedMessage::Commit(Commit {
                flags: self.u8(),
                commit_lsn: Lsn(self.u64()),
                end_lsn: Lsn(self.u64()),
                commit_time: PgTimestamp(self.u64() as i64),
            }),
            2 => OwnedMessage::Relation(Relation {
                xid,
                oid: Oid(self.u32()),
                namespace: self.string(),
                name: self.string(),
                replica_identity: ReplicaIdentity::Full,
                columns: (0..self.u8() % 4)
                    .map(|_| RelationColumn {
                        flags: self.u8() % 2,
                        name: self.string(),
                        type_oid: Oid(self.u32()),
                        type_modifier: self.u32() as i32,
                    })
                    .collect(),
            }),
            3 => OwnedMessage::Update(Update {
                xid,
                relation: Oid(self.u32()),
                old: match self.u8() % 3 {
                    0 => None,
                    1 => Some(OldTuple::Key(self.tuple())),
                    _ => Some(OldTuple::Full(self.tuple())),
                },
                new: self.tuple(),
            }),
            4 => OwnedMessage::Truncate(Truncate {
                xid,
                flags: self.u8() % 4,
                relations: (0..self.u8() % 4).map(|_| Oid(self.u32())).collect(),
            }),
            5 => OwnedMessage::Message(LogicalMessage {
                xid,
                flags: self.u8() % 2,
                lsn: Lsn(self.u64()),
                prefix: self.string(),
                content: self.bytes(),
            }),
            6 if !in_stream => {
                return (
                    OwnedMessage::StreamAbort(StreamAbort {
                        xid: Xid(self.u32()),
                        subxid: Xid(self.u32()),
                        abort: Some(AbortInfo {
                            abort_lsn: Lsn(self.u64()),
                            abort_time: PgTimestamp(self.u64() as i64),
                        }),
                    }),
                    ProtocolVersion::V4,
                    false,
                );
            }
            _ => OwnedMessage::Insert(Insert {
                xid,
                relation: Oid(self.u32()),
                new: self.tuple(),
            }),
        };
        (msg, version, in_stream)
    }
}

/// Decodes `data` as WAL: `data[0]` picks the version of the synthetic first page header
/// and the chunk size the rest is fed in. The decoder must not panic, every record it
/// returns must lie inside the input, and whatever happens must be reproducible.
///
/// The input is laid behind a valid long page header, so the fuzzer reaches record
/// decoding instead of failing on the magic number.
pub fn wal(data: &[u8]) {
    use crate::wal::{WalDecoder, WalVersion};
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let version = WalVersion::ALL[usize::from(ctl) % WalVersion::ALL.len()];
    let mut input = Vec::with_capacity(40 + rest.len());
    input.extend_from_slice(&version.magic().to_le_bytes());
    input.extend_from_slice(&2u16.to_le_bytes()); // XLP_LONG_HEADER
    input.extend_from_slice(&1u32.to_le_bytes());
    input.extend_from_slice(&0x0100_0000u64.to_le_bytes());
    input.extend_from_slice(&0u32.to_le_bytes());
    input.extend_from_slice(&[0; 4]);
    input.extend_from_slice(&7u64.to_le_bytes());
    input.extend_from_slice(&(1u32 << 20).to_le_bytes());
    input.extend_from_slice(&1024u32.to_le_bytes());
    input.extend_from_slice(rest);
    let chunk = usize::from(ctl >> 3) * 37 + 1;
    // CRCs off, so that mutated records get past the checksum to the block decoder.
    let mut decoder = WalDecoder::new(Lsn::new(0x0100_0000)).with_crc(None);
    let mut seen = 0usize;
    for piece in input.chunks(chunk) {
        decoder.feed(piece);
        loop {
            match decoder.next_record() {
                Ok(Some(r)) => {
                    assert!(r.raw().len() <= input.len());
                    let _ = (r.main_data(), r.fpi_len(), r.type_name());
                    for b in r.blocks() {
                        let _ = (b.data(), b.locator());
                        if let Some(img) = b.image() {
                            let mut page = alloc::vec![0u8; img.page_size() as usize];
                            let _ = crate::wal::image::restore(&img, &mut page);
                        }
                    }
                    let _ = crate::wal::describe::describe(&r).to_string();
                    seen += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(decoder.next_record().unwrap_err(), e, "errors are sticky");
                    let _ = alloc::format!("{e}");
                    return;
                }
            }
        }
    }
    let _ = (decoder.finish(), seen);
}

/// Decompresses `data` with pglz into buffers of a size picked by `data[0..2]`: no panic,
/// and a successful full decompression fills the buffer exactly.
pub fn pglz(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut out = alloc::vec![0u8; usize::from(u16::from_le_bytes(*len)) % 9000];
    let _ = crate::wal::pglz::decompress_partial(rest, &mut out);
    if crate::wal::pglz::decompress(rest, &mut out).is_ok() {
        let (written, read) = crate::wal::pglz::decompress_partial(rest, &mut out).unwrap();
        assert_eq!((written, read), (out.len(), rest.len()));
    }
}

/// Decodes `data` as a `BASE_BACKUP` CopyData payload (`n`, `d`, `p`, `m`); whatever decodes
/// must re-encode byte-identically.
pub fn backup(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(message) = crate::backup::BackupMessage::parse(&bytes) {
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(out, data, "base backup message re-encodes identically");
    }
}
