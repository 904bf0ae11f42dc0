//! Malformed input gives precise errors, never panics or large allocations.

use bytes::Bytes;
use pg_walstream_codec::DecodeError;
use pg_walstream_codec::pgoutput::{
    Message, OwnedMessage, PgOutputDecoder, ProtocolVersion, StreamAbort, decode_message,
};
use proptest::prelude::*;

use crate::strategies::case;

fn v(n: u32) -> ProtocolVersion {
    ProtocolVersion::try_from(n).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Every strict prefix of a valid message is an error (the one exception is a v4 Stream
    /// Abort, whose abort LSN/time are optional), and so is any extra trailing byte.
    #[test]
    fn prefixes_and_extensions_fail(c in case(), extra: u8) {
        let mut wire = Vec::new();
        c.msg.encode(&mut wire).unwrap();
        let optional_tail = matches!(c.msg, OwnedMessage::StreamAbort(StreamAbort { abort: Some(_), .. }));
        for cut in 0..wire.len() {
            let res = decode_message(&wire[..cut], c.version, c.in_stream);
            if optional_tail && cut == 9 {
                prop_assert!(res.is_ok());
            } else {
                let err = res.unwrap_err();
                // Errors point inside the message.
                prop_assert!(err.offset().is_none_or(|o| o <= cut), "{err} for cut {cut}");
            }
        }
        wire.push(extra);
        prop_assert!(decode_message(&wire, c.version, c.in_stream).is_err());
    }
}

#[test]
fn empty_and_unknown_tags() {
    assert!(matches!(
        decode_message(b"", v(4), false),
        Err(DecodeError::Empty { .. })
    ));
    let err = decode_message(b"Z", v(4), false).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownTag { offset: 0, .. }),
        "{err}"
    );
    assert_eq!(err.tag(), Some(b'Z'));
    // Unknown tuple column kind 'x' at byte 9.
    let err = decode_message(b"I\0\0\0\x01N\0\x01x", v(1), false).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownTag {
            tag: pg_walstream_codec::Tag(b'I'),
            offset: 8,
            found: pg_walstream_codec::Tag(b'x'),
            expected: "tuple column kind 'n', 'u', 't' or 'b'",
        }
    );
    // Update with a bad old-tuple marker.
    let err = decode_message(b"U\0\0\0\x01X\0\0", v(1), false).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownTag { offset: 5, .. }),
        "{err}"
    );
    // Unknown replica identity.
    let err = decode_message(b"R\0\0\0\x01\0t\0z\0\0", v(1), false).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownTag { offset: 8, .. }),
        "{err}"
    );
}

#[test]
fn invalid_utf8_is_reported_at_the_string() {
    let err = decode_message(b"Y\0\0\0\x17\0\xff\xfe\0", v(1), false).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::InvalidUtf8 {
                offset: 6,
                expected: "Type name",
                ..
            }
        ),
        "{err}"
    );
    let msg = "Y\0\0\0\x17\0caf\u{e9}\0";
    let Message::Type(t) = decode_message(msg.as_bytes(), v(1), false).unwrap() else {
        panic!()
    };
    assert_eq!(t.name, "caf\u{e9}");
}

#[test]
fn oversized_lengths_and_counts() {
    // Column value length 1000 with 2 bytes present.
    let err = decode_message(b"I\0\0\0\x01N\0\x01t\0\0\x03\xe8ab", v(1), false).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Oversized {
                offset: 9,
                declared: 1000,
                available: 2,
                ..
            }
        ),
        "{err}"
    );
    // Negative value length.
    let err = decode_message(b"I\0\0\0\x01N\0\x01t\xff\xff\xff\xff", v(1), false).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::InvalidValue {
                offset: 9,
                value: -1,
                ..
            }
        ),
        "{err}"
    );
    // 65535 columns declared, 1 byte present: rejected before any per-column work.
    let err = decode_message(b"I\0\0\0\x01N\xff\xffn", v(1), false).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Oversized {
                offset: 6,
                declared: 65535,
                ..
            }
        ),
        "{err}"
    );
    // Truncate of i32::MAX relations.
    let err = decode_message(b"T\x7f\xff\xff\xff\0\0\0\0\x01", v(1), false).unwrap_err();
    assert!(
        matches!(err, DecodeError::Oversized { offset: 1, .. }),
        "{err}"
    );
    // Negative Truncate count.
    let err = decode_message(b"T\xff\xff\xff\xff\0", v(1), false).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::InvalidValue {
                offset: 1,
                value: -1,
                ..
            }
        ),
        "{err}"
    );
    // Relation with 65535 columns declared.
    let err = decode_message(b"R\0\0\0\x01\0t\0d\xff\xff", v(1), false).unwrap_err();
    assert!(
        matches!(err, DecodeError::Oversized { offset: 9, .. }),
        "{err}"
    );
    // Message content length beyond the end.
    let err = decode_message(b"M\x01\0\0\0\0\0\0\0\x01p\0\0\0\0\x09abc", v(1), false).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Oversized {
                offset: 12,
                declared: 9,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn version_gating() {
    let start = b"S\0\0\0\x05\x01";
    let err = decode_message(start, v(1), false).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedMessage {
            tag: pg_walstream_codec::Tag(b'S'),
            proto_version: 1,
            required: 2
        }
    );
    assert!(decode_message(start, v(2), false).is_ok());
    let prepare = b"P\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x03\0\0\0\x07g\0";
    assert!(matches!(
        decode_message(prepare, v(2), false),
        Err(DecodeError::UnsupportedMessage { required: 3, .. })
    ));
    let Message::Prepare(p) = decode_message(prepare, v(3), false).unwrap() else {
        panic!()
    };
    assert_eq!(
        (
            p.prepare_lsn.0,
            p.end_lsn.0,
            p.prepare_time.0,
            p.xid.0,
            p.gid
        ),
        (1, 2, 3, 7, "g")
    );
    // A Stream Abort with abort LSN/time is only valid in v4.
    let abort = b"A\0\0\0\x05\0\0\0\x06\0\0\0\0\0\0\0\x09\0\0\0\0\0\0\0\x0a";
    assert!(decode_message(abort, v(3), false).is_err());
    let Message::StreamAbort(a) = decode_message(abort, v(4), false).unwrap() else {
        panic!()
    };
    assert_eq!(
        a.abort.map(|a| (a.abort_lsn.0, a.abort_time.0)),
        Some((9, 10))
    );
    let Message::StreamAbort(a) = decode_message(&abort[..9], v(4), false).unwrap() else {
        panic!()
    };
    assert_eq!((a.xid.0, a.subxid.0, a.abort), (5, 6, None));
    // Partial abort info is truncated, not silently ignored.
    assert!(matches!(
        decode_message(&abort[..12], v(4), false),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn protocol_v1_has_no_stream_state() {
    let err = decode_message(b"I\0\0\0\x09\0\0\0\x01N\0\x01n", v(1), true).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnexpectedStreamState { .. }),
        "{err}"
    );
}

#[test]
fn decoder_tracks_stream_blocks() {
    let mut d = PgOutputDecoder::new(v(2));
    let insert_plain = b"I\0\0\0\x01N\0\x01n";
    let insert_streamed = b"I\0\0\0\x09\0\0\0\x01N\0\x01n";
    assert!(d.decode(insert_plain).is_ok());
    // Stream Stop outside a block is rejected and changes nothing.
    assert!(matches!(
        d.decode(b"E"),
        Err(DecodeError::UnexpectedStreamState { .. })
    ));
    assert!(!d.in_stream());
    d.decode(b"S\0\0\0\x09\x01").unwrap();
    assert!(d.in_stream());
    // Inside, the same bytes would misparse; the decoder reads the xid prefix.
    let Message::Insert(i) = d.decode(insert_streamed).unwrap() else {
        panic!()
    };
    assert_eq!((i.xid.map(|x| x.0), i.relation.0), (Some(9), 1));
    assert!(d.decode(insert_plain).is_err());
    // Begin and a nested Stream Start are not allowed inside a block.
    assert!(
        d.decode(b"B\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02\0\0\0\x03")
            .is_err()
    );
    assert!(d.decode(b"S\0\0\0\x09\x00").is_err());
    assert!(d.in_stream());
    assert_eq!(d.decode(b"E").unwrap(), Message::StreamStop);
    assert!(!d.in_stream());
}

#[test]
fn owned_conversion_with_a_foreign_buffer_copies_safely() {
    let wire = b"I\0\0\0\x01N\0\x01t\0\0\0\x02hi";
    let msg = decode_message(wire, v(1), false).unwrap();
    // `Bytes` unrelated to the decoded slice: values are copied, nothing panics.
    let other = Bytes::from_static(b"unrelated");
    let owned = msg.into_owned(&other);
    let mut out = Vec::new();
    owned.encode(&mut out).unwrap();
    assert_eq!(out, wire);
}
