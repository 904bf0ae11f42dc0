//! Unit tests of the WAL decoder on WAL laid out by [`WalWriter`].

use alloc::vec::Vec;

use crate::lsn::Lsn;
use crate::wal::writer::WalWriter;
use crate::wal::{RmgrId, WalDecoder, WalError, WalVersion, XLP_FIRST_IS_OVERWRITE_CONTRECORD};

const SEG: u32 = 1 << 20;
const PAGE: u32 = 8192;
const START: u64 = 0x0300_0000;

/// Records of sizes that land on every kind of boundary, including one longer than a
/// segment; returns the writer and the records' (lsn, main data length).
fn sample() -> (WalWriter, Vec<(Lsn, usize)>) {
    let mut w = WalWriter::new(WalVersion::V16, Lsn::new(START), SEG, PAGE);
    let mut out = Vec::new();
    let mut size = 0usize;
    for i in 0..400u32 {
        size = (size * 7 + 13) % 9000;
        let data = alloc::vec![i as u8; size];
        out.push((
            w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, i, &data),
            size,
        ));
    }
    let big = alloc::vec![0xAB; SEG as usize + 5000];
    out.push((
        w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 9, &big),
        big.len(),
    ));
    out.push((w.append_main_data(RmgrId::HEAP, 0, 10, &[1, 0, 0]), 3));
    w.finish_page();
    (w, out)
}

fn decode_all(bytes: &[u8], chunk: usize) -> (Vec<(Lsn, Lsn, usize)>, Option<WalError>) {
    let mut d = WalDecoder::new(Lsn::new(START));
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        d.feed(piece);
        loop {
            match d.next_record() {
                Ok(Some(r)) => out.push((r.lsn(), r.end_lsn(), r.main_data().len())),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, d.finish().err())
}

#[test]
fn any_chunking_gives_the_same_records() {
    let (w, expected) = sample();
    for chunk in [1, 7, 24, 8191, 8192, 100_000, usize::MAX] {
        if chunk == 1 && cfg!(miri) {
            continue;
        }
        let (got, err) = decode_all(w.bytes(), chunk);
        // The zero-filled rest of the last page is where the WAL ends.
        assert!(
            matches!(err, Some(WalError::ZeroLength { .. })),
            "chunk {chunk}: {err:?}"
        );
        assert_eq!(got.len(), expected.len(), "chunk {chunk}");
        for (i, ((lsn, end, len), (elsn, elen))) in got.iter().zip(&expected).enumerate() {
            assert_eq!((lsn, len), (elsn, elen), "record {i}, chunk {chunk}");
            if let Some((next, _)) = expected.get(i + 1) {
                assert_eq!(end, next, "end of record {i} is the next record's start");
            }
        }
    }
}

#[test]
fn a_flipped_bit_is_reported_at_its_record() {
    let (w, expected) = sample();
    for (k, (lsn, len)) in expected.iter().enumerate().step_by(37) {
        if *len < 10 {
            continue;
        }
        let mut bytes = w.bytes().to_vec();
        // A byte of the main data, 30 bytes into the record: on the record's first page.
        let at = (lsn.as_u64() - START) as usize + 30;
        if (at % PAGE as usize) < 40 {
            continue;
        }
        bytes[at] ^= 0x10;
        let (got, err) = decode_all(&bytes, 4096);
        assert_eq!(got.len(), k, "records before the damaged one decode");
        match err {
            Some(WalError::CrcMismatch { lsn: at_lsn, .. }) => assert_eq!(at_lsn, *lsn),
            other => panic!("record {k}: {other:?}"),
        }
    }
}

#[test]
fn truncated_input_ends_with_a_typed_error() {
    let (w, expected) = sample();
    let cut = (expected[10].0.as_u64() - START) as usize + 20;
    let (got, err) = decode_all(&w.bytes()[..cut], 1000);
    assert_eq!(got.len(), 10);
    assert!(matches!(err, Some(WalError::Truncated { .. })), "{err:?}");
}

#[test]
fn wrong_version_says_which() {
    let (w, _) = sample();
    let mut d = WalDecoder::new(Lsn::new(START)).with_version(WalVersion::V17);
    d.feed(w.bytes());
    let err = d.next_record().unwrap_err();
    assert_eq!(
        err,
        WalError::VersionMismatch {
            lsn: Lsn::new(START),
            found: WalVersion::V16,
            expected: WalVersion::V17
        }
    );
    assert!(err.to_string().contains("PostgreSQL 16"), "{err}");
    // The error is sticky.
    assert_eq!(d.next_record().unwrap_err(), err);
}

#[test]
fn stale_page_and_zero_tail_are_end_of_wal() {
    let mut w = WalWriter::new(WalVersion::V15, Lsn::new(START), SEG, PAGE);
    let _ = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 1, &[0; 100]);
    w.finish_page();
    let bytes = w.bytes().to_vec();
    // The rest of page 1 is zeros: end of WAL there.
    let (got, err) = decode_all(&bytes, 8192);
    assert_eq!(got.len(), 1);
    let err = err.unwrap();
    assert!(
        matches!(err, WalError::ZeroLength { .. }) && err.is_end_of_wal(),
        "{err:?}"
    );
    // A record continuing onto a recycled page (valid magic, an old address): end of WAL.
    let mut w = WalWriter::new(WalVersion::V15, Lsn::new(START), SEG, PAGE);
    let _ = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 1, &[0; 9000]);
    let mut bytes = w.bytes()[..PAGE as usize].to_vec();
    let mut stale = WalWriter::new(WalVersion::V15, Lsn::new(START - u64::from(SEG)), SEG, PAGE);
    let _ = stale.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 1, &[0; 9000]);
    stale.finish_page();
    bytes.extend_from_slice(&stale.bytes()[PAGE as usize..2 * PAGE as usize]);
    let (got, err) = decode_all(&bytes, 8192);
    assert!(got.is_empty());
    let err = err.unwrap();
    assert_eq!(
        err,
        WalError::UnexpectedPageAddr {
            lsn: Lsn::new(START + u64::from(PAGE)),
            found: Lsn::new(START - u64::from(SEG) + u64::from(PAGE))
        }
    );
    assert!(err.is_end_of_wal());
}

#[test]
fn switch_skips_the_rest_of_the_segment() {
    let mut w = WalWriter::new(WalVersion::V18, Lsn::new(START), SEG, PAGE);
    let _ = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 1, b"a");
    let switch = w.switch();
    let after = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 2, b"b");
    w.finish_page();
    assert_eq!(after.as_u64(), START + u64::from(SEG) + 40);
    let (got, err) = decode_all(w.bytes(), 65536);
    assert!(matches!(err, Some(WalError::ZeroLength { .. })), "{err:?}");
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].0, switch);
    assert_eq!(
        got[1].1,
        Lsn::new(START + u64::from(SEG)),
        "switch ends at the segment end"
    );
    assert_eq!(got[2].0, after);
}

#[test]
fn overwritten_contrecord_is_discarded() {
    let mut w = WalWriter::new(WalVersion::V16, Lsn::new(START), SEG, PAGE);
    let first = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 1, &[1; 100]);
    let aborted = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 2, &[2; 12000]);
    // Keep page 1 only, then write page 2 anew as recovery does after losing the rest.
    let mut bytes = w.bytes()[..PAGE as usize].to_vec();
    let mut w2 = WalWriter::new(
        WalVersion::V16,
        Lsn::new(START + u64::from(PAGE)),
        SEG,
        PAGE,
    );
    w2.set_prev(first);
    w2.set_next_page_flags(XLP_FIRST_IS_OVERWRITE_CONTRECORD);
    let overwrite = w2.append_main_data(RmgrId::XLOG, 0xD0, 0, &[0; 16]);
    w2.finish_page();
    bytes.extend_from_slice(w2.bytes());
    let mut d = WalDecoder::new(Lsn::new(START));
    d.feed(&bytes);
    assert_eq!(d.next_record().unwrap().unwrap().lsn(), first);
    let r = d.next_record().unwrap().unwrap();
    assert_eq!(r.lsn(), overwrite);
    assert_eq!(r.type_name(), Some("OVERWRITE_CONTRECORD"));
    assert_eq!(d.aborted_record(), Some(aborted));
}

#[test]
fn missing_contrecord_and_bad_prev_link_are_errors() {
    let mut w = WalWriter::new(WalVersion::V16, Lsn::new(START), SEG, PAGE);
    let _ = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 1, &[1; 100]);
    let spanning = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 2, &[2; 12000]);
    w.finish_page();
    let mut bytes = w.bytes().to_vec();
    bytes[PAGE as usize + 2] &= !1; // clear XLP_FIRST_IS_CONTRECORD on page 2
    let (_, err) = decode_all(&bytes, 8192);
    assert_eq!(
        err,
        Some(WalError::MissingContrecord {
            lsn: Lsn::new(START + u64::from(PAGE)),
            record: spanning
        })
    );
    let mut w = WalWriter::new(WalVersion::V16, Lsn::new(START), SEG, PAGE);
    let _ = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 1, &[1; 100]);
    w.set_prev(Lsn::new(0x1234));
    let bad = w.append_main_data(RmgrId::LOGICAL_MESSAGE, 0, 2, &[2; 10]);
    w.finish_page();
    let (_, err) = decode_all(w.bytes(), 8192);
    assert!(
        matches!(err, Some(WalError::InvalidPrevLink { lsn, .. }) if lsn == bad),
        "{err:?}"
    );
}

#[test]
fn record_anatomy_with_blocks_origin_and_toplevel_xid() {
    // Block 0 with data and a new relation, block 1 SAME_REL with an uncompressed image
    // with a hole, origin, toplevel xid, short main data.
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 0x20, 3, 0]); // id 0, HAS_DATA, 3 bytes
    body.extend_from_slice(
        &[
            1663u32.to_le_bytes(),
            5u32.to_le_bytes(),
            16384u32.to_le_bytes(),
        ]
        .concat(),
    );
    body.extend_from_slice(&7u32.to_le_bytes());
    let image_len: u16 = 8192 - 4000;
    body.extend_from_slice(&[1, 0x80 | 0x10 | 1]); // id 1, SAME_REL | HAS_IMAGE, fork fsm
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&image_len.to_le_bytes());
    body.extend_from_slice(&100u16.to_le_bytes()); // hole offset
    body.push(0x01 | 0x02); // HAS_HOLE | APPLY (15+ layout)
    body.extend_from_slice(&9u32.to_le_bytes());
    body.extend_from_slice(&[253, 2, 0]); // origin 2
    body.extend_from_slice(&[252]);
    body.extend_from_slice(&777u32.to_le_bytes());
    body.extend_from_slice(&[255, 2]);
    body.extend_from_slice(&[9, 9, 9]); // block 0 data
    body.extend((0..image_len).map(|i| (i % 251) as u8 + 1)); // block 1 image
    body.extend_from_slice(&[4, 5]); // main data
    let mut w = WalWriter::new(WalVersion::V15, Lsn::new(START), SEG, PAGE);
    let _ = w.append(RmgrId::HEAP, 0x00, 33, &body);
    w.finish_page();
    let mut d = WalDecoder::new(Lsn::new(START));
    d.feed(w.bytes());
    let r = d.next_record().unwrap().unwrap();
    assert_eq!(r.main_data(), &[4, 5]);
    assert_eq!(r.origin(), Some(2));
    assert_eq!(r.toplevel_xid(), Some(777));
    assert_eq!(r.fpi_len(), u32::from(image_len));
    let blocks: Vec<_> = r.blocks().collect();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].data(), &[9, 9, 9]);
    assert_eq!(blocks[0].block_number(), 7);
    assert_eq!(
        blocks[1].locator(),
        blocks[0].locator(),
        "SAME_REL inherits"
    );
    assert_eq!(blocks[1].fork_name(), "fsm");
    let img = blocks[1].image().unwrap();
    assert!(img.apply() && img.has_hole());
    assert_eq!((img.hole_offset(), img.hole_length()), (100, 4000));
    let mut page = alloc::vec![0xFF; 8192];
    crate::wal::image::restore(&img, &mut page).unwrap();
    assert_eq!(page[99], 100);
    assert!(page[100..4100].iter().all(|&b| b == 0));
    assert_eq!(page[4100], img.bytes()[100]);
}
