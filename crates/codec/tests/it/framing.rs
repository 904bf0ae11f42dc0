//! Transaction framing is checked by `PgOutputDecoder`: Begin/Commit and Begin
//! Prepare/Prepare pair up, nothing opens a transaction inside another, and what pgoutput
//! sends between transactions (non-transactional messages, streamed blocks and their ends,
//! Commit/Rollback Prepared) still decodes there. Real server streams of every version go
//! through the same decoder in `fidelity`.

use pg_walstream_codec::pgoutput::{
    Begin, BeginPrepare, Commit, CommitPrepared, Insert, LogicalMessage, OwnedMessage,
    OwnedTupleData, PgOutputDecoder, Prepare, ProtocolVersion, RollbackPrepared, StreamAbort,
    StreamCommit, StreamStart,
};
use pg_walstream_codec::{DecodeError, Lsn, Oid, PgTimestamp, Xid};

fn wire(msg: &OwnedMessage) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

fn begin() -> Vec<u8> {
    wire(&OwnedMessage::Begin(Begin {
        final_lsn: Lsn(0x100),
        commit_time: PgTimestamp(1),
        xid: Xid(700),
    }))
}

fn commit() -> Vec<u8> {
    wire(&OwnedMessage::Commit(Commit {
        flags: 0,
        commit_lsn: Lsn(0x100),
        end_lsn: Lsn(0x108),
        commit_time: PgTimestamp(1),
    }))
}

fn insert(xid: Option<Xid>) -> Vec<u8> {
    wire(&OwnedMessage::Insert(Insert {
        xid,
        relation: Oid(16384),
        new: OwnedTupleData::default(),
    }))
}

fn message(transactional: bool, xid: Option<Xid>) -> Vec<u8> {
    wire(&OwnedMessage::Message(LogicalMessage {
        xid,
        flags: u8::from(transactional),
        lsn: Lsn(0x200),
        prefix: "p".to_owned(),
        content: bytes::Bytes::from_static(b"x"),
    }))
}

fn begin_prepare() -> Vec<u8> {
    wire(&OwnedMessage::BeginPrepare(BeginPrepare {
        prepare_lsn: Lsn(0x300),
        end_lsn: Lsn(0x308),
        prepare_time: PgTimestamp(2),
        xid: Xid(701),
        gid: "g".to_owned(),
    }))
}

fn prepare_body() -> Prepare<String> {
    Prepare {
        flags: 0,
        prepare_lsn: Lsn(0x300),
        end_lsn: Lsn(0x308),
        prepare_time: PgTimestamp(2),
        xid: Xid(701),
        gid: "g".to_owned(),
    }
}

fn prepare() -> Vec<u8> {
    wire(&OwnedMessage::Prepare(prepare_body()))
}

fn commit_prepared() -> Vec<u8> {
    wire(&OwnedMessage::CommitPrepared(CommitPrepared {
        flags: 0,
        commit_lsn: Lsn(0x400),
        end_lsn: Lsn(0x408),
        commit_time: PgTimestamp(3),
        xid: Xid(701),
        gid: "g".to_owned(),
    }))
}

fn rollback_prepared() -> Vec<u8> {
    wire(&OwnedMessage::RollbackPrepared(RollbackPrepared {
        flags: 0,
        prepare_end_lsn: Lsn(0x308),
        rollback_end_lsn: Lsn(0x508),
        prepare_time: PgTimestamp(2),
        rollback_time: PgTimestamp(4),
        xid: Xid(701),
        gid: "g".to_owned(),
    }))
}

fn stream_start(xid: u32) -> Vec<u8> {
    wire(&OwnedMessage::StreamStart(StreamStart {
        xid: Xid(xid),
        first_segment: true,
    }))
}

fn stream_commit(xid: u32) -> Vec<u8> {
    wire(&OwnedMessage::StreamCommit(StreamCommit {
        xid: Xid(xid),
        flags: 0,
        commit_lsn: Lsn(0x600),
        end_lsn: Lsn(0x608),
        commit_time: PgTimestamp(5),
    }))
}

fn stream_abort(xid: u32, subxid: u32) -> Vec<u8> {
    wire(&OwnedMessage::StreamAbort(StreamAbort {
        xid: Xid(xid),
        subxid: Xid(subxid),
        abort: None,
    }))
}

fn stream_prepare() -> Vec<u8> {
    wire(&OwnedMessage::StreamPrepare(prepare_body()))
}

/// Decodes every message of `seq`, which must all be valid.
fn accepts(version: ProtocolVersion, seq: &[Vec<u8>]) -> PgOutputDecoder {
    let mut d = PgOutputDecoder::new(version);
    for (i, m) in seq.iter().enumerate() {
        if let Err(e) = d.decode(m) {
            panic!("message {i} ({}) rejected: {e}", char::from(m[0]));
        }
    }
    d
}

/// Decodes `seq`, then expects `bad` to be rejected as out of place, leaving the state as
/// it was.
fn rejects(version: ProtocolVersion, seq: &[Vec<u8>], bad: &[u8]) -> DecodeError {
    let mut d = accepts(version, seq);
    let state = (d.in_stream(), d.in_transaction());
    let err = d.decode(bad).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnexpectedStreamState { .. }),
        "{}: {err}",
        char::from(bad[0])
    );
    assert_eq!(err.tag(), Some(bad[0]));
    assert_eq!(
        state,
        (d.in_stream(), d.in_transaction()),
        "state unchanged"
    );
    err
}

#[test]
fn commit_without_begin_is_rejected() {
    let err = rejects(ProtocolVersion::V1, &[], &commit());
    assert_eq!(
        err.to_string(),
        "message 'C' is not allowed outside a transaction (no Begin or Begin Prepare is open)"
    );
}

#[test]
fn second_commit_is_rejected() {
    rejects(
        ProtocolVersion::V1,
        &[begin(), insert(None), commit()],
        &commit(),
    );
}

#[test]
fn begin_inside_an_open_transaction_is_rejected() {
    let err = rejects(ProtocolVersion::V1, &[begin(), insert(None)], &begin());
    assert!(
        err.to_string().contains("inside an open transaction"),
        "{err}"
    );
    // After the rejected Begin the open transaction still ends normally.
    let d = accepts(ProtocolVersion::V1, &[begin(), insert(None), commit()]);
    assert!(!d.in_transaction());
}

#[test]
fn two_phase_framing_is_checked() {
    let v3 = ProtocolVersion::V3;
    rejects(v3, &[], &prepare());
    rejects(v3, &[begin_prepare()], &commit());
    rejects(v3, &[begin()], &prepare());
    rejects(v3, &[begin_prepare()], &begin());
    rejects(v3, &[begin()], &begin_prepare());
    for control in [
        commit_prepared(),
        rollback_prepared(),
        stream_start(9),
        stream_commit(9),
        stream_abort(9, 9),
        stream_prepare(),
    ] {
        rejects(v3, &[begin()], &control);
        rejects(v3, &[begin_prepare()], &control);
    }
}

#[test]
fn messages_between_transactions_still_decode() {
    // Non-transactional logical messages outside a transaction, transactional ones inside.
    let d = accepts(
        ProtocolVersion::V1,
        &[
            message(false, None),
            begin(),
            message(true, None),
            message(false, None),
            commit(),
            message(false, None),
        ],
    );
    assert!(!d.in_transaction());
}

#[test]
fn streamed_and_prepared_transactions_still_decode() {
    let streamed = |xid| Some(Xid(xid));
    // v2: two interleaved streamed transactions, one committed, one aborted (a
    // subtransaction first), with plain transactions and messages in between.
    accepts(
        ProtocolVersion::V2,
        &[
            stream_start(9),
            insert(streamed(9)),
            message(true, streamed(9)),
            b"E".to_vec(),
            begin(),
            insert(None),
            commit(),
            stream_start(10),
            insert(streamed(11)),
            b"E".to_vec(),
            message(false, None),
            stream_start(9),
            insert(streamed(9)),
            b"E".to_vec(),
            stream_commit(9),
            stream_abort(10, 11),
            stream_abort(10, 10),
        ],
    );
    // v3: a prepared transaction committed, another rolled back, a streamed one prepared,
    // and Commit Prepared of a transaction prepared before the stream started.
    let d = accepts(
        ProtocolVersion::V3,
        &[
            commit_prepared(),
            begin_prepare(),
            insert(None),
            prepare(),
            commit_prepared(),
            begin_prepare(),
            prepare(),
            rollback_prepared(),
            stream_start(12),
            insert(streamed(12)),
            b"E".to_vec(),
            stream_prepare(),
            commit_prepared(),
            begin(),
            commit(),
        ],
    );
    assert!(!d.in_transaction() && !d.in_stream());
}
