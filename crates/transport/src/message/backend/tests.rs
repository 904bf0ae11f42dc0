use bytes::{BufMut, BytesMut};

use super::*;
use crate::message::SqlState;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn all(buf: &mut BytesMut) -> Vec<BackendMessage> {
    let mut out = Vec::new();
    while let Some(m) = parse(buf, DEFAULT_MAX_FRAME_LEN).expect("valid") {
        out.push(m);
    }
    out
}

/// The tail of a successful startup as a PG 17 server sends it in one packet.
#[test]
fn startup_tail_many_frames_per_read() {
    let mut wire = Vec::new();
    wire.extend(frame(b'R', &0i32.to_be_bytes()));
    wire.extend(frame(b'S', b"server_version\x0017.10\0"));
    wire.extend(frame(b'S', b"client_encoding\0UTF8\0"));
    wire.extend(frame(b'K', &[0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef]));
    wire.extend(frame(b'Z', b"I"));
    let mut buf = BytesMut::from(&wire[..]);
    let msgs = all(&mut buf);
    assert!(buf.is_empty());
    assert_eq!(
        msgs,
        vec![
            BackendMessage::Authentication(Authentication::Ok),
            BackendMessage::ParameterStatus {
                name: "server_version".into(),
                value: "17.10".into()
            },
            BackendMessage::ParameterStatus {
                name: "client_encoding".into(),
                value: "UTF8".into()
            },
            BackendMessage::BackendKeyData {
                process_id: 12345,
                secret_key: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef])
            },
            BackendMessage::ReadyForQuery(b'I'),
        ]
    );
}

#[test]
fn partial_frames_wait_for_more() {
    let wire = frame(b'd', b"0123456789");
    for cut in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..cut]);
        assert_eq!(
            parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(),
            None,
            "cut {cut}"
        );
        assert_eq!(buf.len(), cut, "nothing consumed at cut {cut}");
        buf.put_slice(&wire[cut..]);
        assert_eq!(
            parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(),
            Some(BackendMessage::CopyData(Bytes::from_static(b"0123456789")))
        );
    }
}

#[test]
fn copy_data_is_zero_copy() {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_slice(&frame(b'd', b"walbytes"));
    let base = buf.as_ptr() as usize;
    let Some(BackendMessage::CopyData(data)) = parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap()
    else {
        panic!("expected CopyData");
    };
    assert_eq!(
        data.as_ptr() as usize,
        base + 5,
        "payload points into the read buffer"
    );
}

/// Captured: `IDENTIFY_SYSTEM` response from PG 15 (RowDescription, DataRow, CommandComplete).
#[test]
fn identify_system_result() {
    let mut t = Vec::new();
    t.extend_from_slice(&4i16.to_be_bytes());
    for (name, oid) in [
        ("systemid", 25u32),
        ("timeline", 23),
        ("xlogpos", 25),
        ("dbname", 25),
    ] {
        t.extend_from_slice(name.as_bytes());
        t.push(0);
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(&0i16.to_be_bytes());
        t.extend_from_slice(&oid.to_be_bytes());
        t.extend_from_slice(&(-1i16).to_be_bytes());
        t.extend_from_slice(&0i32.to_be_bytes());
        t.extend_from_slice(&0i16.to_be_bytes());
    }
    let mut d = Vec::new();
    d.extend_from_slice(&4i16.to_be_bytes());
    for v in [
        Some(&b"7300000000000000001"[..]),
        Some(b"1"),
        Some(b"0/1A2B3C4"),
        None,
    ] {
        match v {
            Some(v) => {
                d.extend_from_slice(&(v.len() as i32).to_be_bytes());
                d.extend_from_slice(v);
            }
            None => d.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let mut wire = frame(b'T', &t);
    wire.extend(frame(b'D', &d));
    wire.extend(frame(b'C', b"IDENTIFY_SYSTEM\0"));
    let mut buf = BytesMut::from(&wire[..]);
    let msgs = all(&mut buf);
    let BackendMessage::RowDescription(desc) = &msgs[0] else {
        panic!("{msgs:?}")
    };
    assert_eq!(
        desc.column_names().unwrap(),
        ["systemid", "timeline", "xlogpos", "dbname"]
    );
    let BackendMessage::DataRow(row) = &msgs[1] else {
        panic!("{msgs:?}")
    };
    let values = row.values().unwrap();
    assert_eq!(values[2].as_deref(), Some(&b"0/1A2B3C4"[..]));
    assert_eq!(values[3], None);
    assert_eq!(
        msgs[2],
        BackendMessage::CommandComplete("IDENTIFY_SYSTEM".into())
    );
}

#[test]
fn auth_requests() {
    let cases: Vec<(Vec<u8>, Authentication)> = vec![
        (
            3i32.to_be_bytes().to_vec(),
            Authentication::CleartextPassword,
        ),
        (
            [&5i32.to_be_bytes()[..], b"salt"].concat(),
            Authentication::Md5Password { salt: *b"salt" },
        ),
        (
            [
                &10i32.to_be_bytes()[..],
                b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0",
            ]
            .concat(),
            Authentication::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()],
            },
        ),
        (
            [&11i32.to_be_bytes()[..], b"r=abc"].concat(),
            Authentication::SaslContinue(Bytes::from_static(b"r=abc")),
        ),
        (
            [&12i32.to_be_bytes()[..], b"v=xyz"].concat(),
            Authentication::SaslFinal(Bytes::from_static(b"v=xyz")),
        ),
        (7i32.to_be_bytes().to_vec(), Authentication::Unsupported(7)),
    ];
    for (body, expected) in cases {
        let mut buf = BytesMut::from(&frame(b'R', &body)[..]);
        assert_eq!(
            parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap(),
            Some(BackendMessage::Authentication(expected))
        );
    }
}

#[test]
fn error_response_typed() {
    let body = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"md5\"\0\0";
    let mut buf = BytesMut::from(&frame(b'E', body)[..]);
    let Some(BackendMessage::ErrorResponse(e)) = parse(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap()
    else {
        panic!("expected error")
    };
    assert_eq!(e.code, SqlState::INVALID_PASSWORD);
    assert_eq!(
        e.to_string(),
        "FATAL: password authentication failed for user \"md5\""
    );
}

#[test]
fn copy_responses() {
    let mut wire = frame(b'W', &[0, 0, 0]);
    wire.extend(frame(b'H', &[0, 0, 1, 0, 0]));
    wire.extend(frame(b'c', b""));
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(
        all(&mut buf),
        vec![
            BackendMessage::CopyBothResponse,
            BackendMessage::CopyOutResponse,
            BackendMessage::CopyDone
        ]
    );
}

#[test]
fn absurd_lengths_rejected_without_consuming() {
    let cases: Vec<(Vec<u8>, MessageError)> = vec![
        (
            b"d\0\0\0\x03".to_vec(),
            MessageError::BadLength { tag: b'd', len: 3 },
        ),
        (
            b"d\x7f\xff\xff\xff".to_vec(),
            MessageError::TooLarge {
                tag: b'd',
                len: 0x7fff_ffff,
            },
        ),
        (
            b"Z\0\x20\0\0".to_vec(),
            MessageError::TooLarge {
                tag: b'Z',
                len: 0x0020_0000,
            },
        ),
        (frame(b'?', b""), MessageError::UnknownTag(b'?')),
    ];
    for (wire, expected) in cases {
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(parse(&mut buf, DEFAULT_MAX_FRAME_LEN), Err(expected));
        assert_eq!(buf.len(), wire.len());
    }
    let mut buf = BytesMut::from(&frame(b'd', &[0; 100])[..]);
    assert_eq!(
        parse(&mut buf, 50),
        Err(MessageError::TooLarge {
            tag: b'd',
            len: 104
        })
    );
}

#[test]
fn malformed_bodies_rejected() {
    let cases: Vec<Vec<u8>> = vec![
        frame(b'Z', b""),
        frame(b'Z', b"II"),
        frame(b'C', b"no nul"),
        frame(b'S', b"name\0"),
        frame(b'K', &[0, 0, 0, 1]),
        frame(b'R', &[0, 0]),
        frame(b'R', &[0, 0, 0, 5, 1, 2]),
        frame(b'R', &[0, 0, 0, 10, b'x']),
        frame(b'W', &[0, 0, 2, 0, 0]),
        frame(b'I', b"x"),
        frame(b'E', b"SERROR\0"),
    ];
    for wire in cases {
        let mut buf = BytesMut::from(&wire[..]);
        assert!(
            matches!(
                parse(&mut buf, DEFAULT_MAX_FRAME_LEN),
                Err(MessageError::Malformed { .. })
            ),
            "{wire:?}"
        );
    }
    let bad_rows = [
        DataRow(Bytes::from_static(&[0, 1, 0, 0, 0, 5, b'a'])),
        DataRow(Bytes::from_static(&[0, 1, 0xff, 0xff, 0xff, 0xfe])),
        DataRow(Bytes::from_static(&[0xff, 0xff])),
        DataRow(Bytes::from_static(&[0, 0, 1])),
    ];
    for row in bad_rows {
        assert!(row.values().is_err(), "{row:?}");
    }
    assert!(
        RowDescription(Bytes::from_static(&[0, 1, b'a', 0, 1]))
            .column_names()
            .is_err()
    );
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Garbage and mutated valid frames never panic: every outcome is a message, a request for
/// more bytes, or a typed error, and every returned message's lazily parsed parts are safe too.
#[test]
fn arbitrary_input_never_panics() {
    let tags = b"RKSZTDCIENGHWdcAv?";
    let mut valid = Vec::new();
    valid.extend(frame(b'R', &[0, 0, 0, 10, b'S', b'C', 0, 0]));
    valid.extend(frame(
        b'T',
        &[
            0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ],
    ));
    valid.extend(frame(
        b'D',
        &[0, 2, 0, 0, 0, 1, b'x', 0xff, 0xff, 0xff, 0xff],
    ));
    valid.extend(frame(b'E', b"SERROR\0C42710\0Mm\0\0"));
    for seed in 1..20_000u64 {
        let mut bytes = if seed % 2 == 0 {
            valid.clone()
        } else {
            noise(seed, (seed % 64) as usize)
        };
        let mutation = noise(seed.wrapping_mul(31), 8);
        if !bytes.is_empty() {
            let at = usize::from(mutation[0]) % bytes.len();
            bytes[at] = if seed % 3 == 0 {
                tags[usize::from(mutation[1]) % tags.len()]
            } else {
                mutation[2]
            };
        }
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..16 {
            match parse(&mut buf, 4096) {
                Ok(Some(BackendMessage::RowDescription(d))) => drop(d.column_names()),
                Ok(Some(BackendMessage::DataRow(r))) => drop(r.values()),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// The CopyData fast path returns what `parse` does, byte for byte, frame by frame; leaves a
/// partial frame and other messages in place; and refuses a bad length as `parse` does,
/// without consuming anything — at the front, or once the good frames before it are taken.
#[test]
fn copy_data_runs_agree_with_parse() {
    let mut wire = Vec::new();
    for body in [&b""[..], b"w1", &[7u8; 300][..]] {
        wire.extend(frame(b'd', body));
    }
    wire.extend(frame(b'c', b""));
    let mut fast = BytesMut::from(&wire[..]);
    let mut slow = BytesMut::from(&wire[..]);
    let mut run = CopyDataRun::split_from(&mut fast, DEFAULT_MAX_FRAME_LEN).unwrap();
    assert_eq!(run.remaining_bytes(), wire.len() - 5);
    for _ in 0..3 {
        let Some(BackendMessage::CopyData(expected)) =
            parse(&mut slow, DEFAULT_MAX_FRAME_LEN).unwrap()
        else {
            panic!("CopyData")
        };
        assert_eq!(run.next(), Some(expected));
    }
    assert_eq!(run.next(), None);
    assert!(run.is_empty());
    assert_eq!(fast, slow);
    let again = CopyDataRun::split_from(&mut fast, DEFAULT_MAX_FRAME_LEN).unwrap();
    assert!(again.is_empty());
    assert_eq!(fast, slow);

    let whole = frame(b'd', b"abc");
    let mut partial = BytesMut::from(&[&whole[..], &whole[..whole.len() - 1]].concat()[..]);
    let mut run = CopyDataRun::split_from(&mut partial, DEFAULT_MAX_FRAME_LEN).unwrap();
    assert_eq!(run.next().as_deref(), Some(&b"abc"[..]));
    assert_eq!(run.next(), None);
    assert_eq!(partial.len(), whole.len() - 1);

    let mut short = BytesMut::from(&b"d\0\0\0\x03"[..]);
    assert_eq!(
        CopyDataRun::split_from(&mut short, DEFAULT_MAX_FRAME_LEN).unwrap_err(),
        MessageError::BadLength { tag: b'd', len: 3 }
    );
    let mut large = BytesMut::from(&[&whole[..], &frame(b'd', &[0; 64])[..]].concat()[..]);
    let mut run = CopyDataRun::split_from(&mut large, 16).unwrap();
    assert_eq!(run.next().as_deref(), Some(&b"abc"[..]));
    assert_eq!(run.next(), None);
    assert_eq!(
        CopyDataRun::split_from(&mut large, 16).unwrap_err(),
        MessageError::TooLarge { tag: b'd', len: 68 }
    );
    assert_eq!(large.len(), 69);
}
