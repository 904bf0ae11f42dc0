//! Unit tests of the Transaction and Heap2 descriptions on records laid out by
//! [`WalWriter`]: every optional part, each version's layout, and damaged main data (which
//! must neither panic nor claim pg_waldump's text).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::lsn::Lsn;
use crate::wal::describe::describe;
use crate::wal::writer::WalWriter;
use crate::wal::{RmgrId, WalDecoder, WalVersion};

const START: u64 = 0x0300_0000;

/// Describes one record; `(text, is pg_waldump's)`.
fn desc(
    version: WalVersion,
    rmgr: RmgrId,
    info: u8,
    block0: Option<&[u8]>,
    main: &[u8],
) -> (String, bool) {
    let mut w = WalWriter::new(version, Lsn::new(START), 1 << 20, 8192);
    let mut body = Vec::new();
    if let Some(data) = block0 {
        body.extend_from_slice(&[0, 0x20]);
        body.extend_from_slice(&(data.len() as u16).to_le_bytes());
        for v in [1663u32, 5, 16384, 0] {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    if let Ok(short) = u8::try_from(main.len()) {
        body.extend_from_slice(&[255, short]);
    } else {
        body.push(254);
        body.extend_from_slice(&(main.len() as u32).to_le_bytes());
    }
    if let Some(data) = block0 {
        body.extend_from_slice(data);
    }
    body.extend_from_slice(main);
    let _ = w.append(rmgr, info, 700, &body);
    w.finish_page();
    let mut d = WalDecoder::new(Lsn::new(START));
    d.feed(w.bytes());
    let r = d.next_record().unwrap().unwrap();
    let description = describe(&r);
    (description.to_string(), description.is_pg_waldump_text())
}

fn le(parts: &[u32]) -> Vec<u8> {
    parts.iter().flat_map(|p| p.to_le_bytes()).collect()
}

/// 2000-01-01 00:00:01.5 UTC, as an `xl_xact_commit` time.
const TIME: i64 = 1_500_000;

#[test]
fn commit_with_every_part() {
    let mut m = TIME.to_le_bytes().to_vec();
    let xinfo: u32 = 1 | 2 | 4 | 8 | 16 | 32 | 128 | (1 << 8) | (1 << 30) | (1 << 31);
    m.extend(le(&[xinfo, 5, 1663])); // xinfo, dbinfo
    m.extend(le(&[2, 801, 802])); // subxacts
    m.extend(le(&[2, 1663, 5, 16400, 1664, 0, 1262])); // rels
    m.extend(le(&[1, 1, 5, 16400])); // dropped stats (15-17 items: kind, db, objid)
    m.extend(le(&[4])); // invals
    for (id, value) in [(3i8, 0u32), (-1, 1259), (-2, 16400), (-5, 2608)] {
        let mut msg = [0u8; 16];
        msg[0] = id as u8;
        msg[8..12].copy_from_slice(&value.to_le_bytes());
        m.extend_from_slice(&msg);
    }
    m.extend(le(&[900])); // twophase xid
    m.extend_from_slice(b"gid1\0");
    m.extend_from_slice(&0x0000_0001_0000_00A0u64.to_le_bytes());
    m.extend_from_slice(&TIME.to_le_bytes());
    let (text, exact) = desc(WalVersion::V15, RmgrId::XACT, 0x30 | 0x80, None, &m);
    assert!(exact);
    assert_eq!(
        text,
        "900: 2000-01-01 00:00:01.500000 UTC; rels: base/5/16400 global/1262; subxacts: 801 \
         802; dropped stats: 1/5/16400; relcache init file inval dbid 5 tsid 1663; inval msgs: \
         catcache 3 catalog 1259 relcache 16400 snapshot 2608; sync; origin: node 0, lsn 1/A0, \
         at 2000-01-01 00:00:01.500000 UTC"
    );
}

#[test]
fn abort_and_version_specific_stats() {
    // 18's stats items carry a 64-bit object id (lo, hi).
    let mut m = TIME.to_le_bytes().to_vec();
    m.extend(le(&[2 | (1 << 8), 1, 801, 1, 2, 5, 7, 1]));
    let (text, exact) = desc(WalVersion::V18, RmgrId::XACT, 0x20 | 0x80, None, &m);
    assert!(exact);
    assert_eq!(
        text,
        "2000-01-01 00:00:01.500000 UTC; subxacts: 801; dropped stats: 2/5/4294967303"
    );
    // 14 has no dropped statistics: the flag makes the text unknown, not wrong.
    let (_, exact) = desc(WalVersion::V14, RmgrId::XACT, 0x20 | 0x80, None, &m);
    assert!(!exact);
    // A plain commit without xinfo.
    let (text, exact) = desc(
        WalVersion::V16,
        RmgrId::XACT,
        0x00,
        None,
        &TIME.to_le_bytes(),
    );
    assert!(exact);
    assert_eq!(text, "2000-01-01 00:00:01.500000 UTC");
}

#[test]
fn assignment_and_invalidation() {
    let (text, exact) = desc(
        WalVersion::V17,
        RmgrId::XACT,
        0x50,
        None,
        &le(&[800, 2, 801, 802]),
    );
    assert!(exact);
    assert_eq!(text, "xtop 800: subxacts: 801 802");
    let mut m = le(&[1]);
    m.extend_from_slice(&[0xFE, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let (text, exact) = desc(WalVersion::V17, RmgrId::XACT, 0x60, None, &m);
    assert!(exact);
    assert_eq!(text, "; inval msgs: relcache 16");
}

#[test]
fn damaged_transaction_records_are_not_claimed() {
    let mut m = TIME.to_le_bytes().to_vec();
    m.extend(le(&[2, 1000])); // 1000 subxacts announced, none there
    for v in WalVersion::ALL {
        let (_, exact) = desc(v, RmgrId::XACT, 0x80, None, &m);
        assert!(!exact, "{v:?}");
        let (_, exact) = desc(v, RmgrId::XACT, 0x00, None, &[1, 2, 3]);
        assert!(!exact, "{v:?}");
    }
    // A relation in a user tablespace: its path depends on the catalog version.
    let mut m = TIME.to_le_bytes().to_vec();
    m.extend(le(&[4, 1, 16500, 5, 16400]));
    let (text, exact) = desc(WalVersion::V16, RmgrId::XACT, 0x80, None, &m);
    assert!(!exact);
    assert!(
        text.starts_with("commit xid 700; time 2000-01-01"),
        "{text}"
    );
}

#[test]
fn heap2_before_16() {
    let m = [
        le(&[77]),
        2u16.to_le_bytes().to_vec(),
        3u16.to_le_bytes().to_vec(),
    ]
    .concat();
    let (text, exact) = desc(WalVersion::V15, RmgrId::HEAP2, 0x10, None, &m);
    assert!(exact);
    assert_eq!(text, "latestRemovedXid 77 nredirected 2 ndead 3");
    let (text, _) = desc(
        WalVersion::V14,
        RmgrId::HEAP2,
        0x20,
        None,
        &9u16.to_le_bytes(),
    );
    assert_eq!(text, "nunused 9");
    let (text, _) = desc(WalVersion::V15, RmgrId::HEAP2, 0x30, None, &m);
    assert_eq!(text, "cutoff xid 77 ntuples 2");
    let (text, _) = desc(
        WalVersion::V15,
        RmgrId::HEAP2,
        0x40,
        None,
        &[77, 0, 0, 0, 3],
    );
    assert_eq!(text, "cutoff xid 77 flags 0x03");
    let (text, _) = desc(WalVersion::V15, RmgrId::HEAP2, 0x50, None, &[1, 0, 4, 0]);
    assert_eq!(text, "4 tuples flags 0x01");
}

#[test]
fn heap2_16_pruning() {
    // 2 redirected, 1 dead; block 0 data: 3->4, 5->6, dead 7, unused 8.
    let m = [le(&[90]), alloc::vec![2, 0, 1, 0, 1]].concat();
    let data = [3u8, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0];
    let (text, exact) = desc(WalVersion::V16, RmgrId::HEAP2, 0x10, Some(&data), &m);
    assert!(exact);
    assert_eq!(
        text,
        "snapshotConflictHorizon: 90, nredirected: 2, ndead: 1, nunused: 1, redirected: \
         [3->4, 5->6], dead: [7], unused: [8]"
    );
    // Block data shorter than the counts say: not claimed (and no panic).
    let (_, exact) = desc(WalVersion::V16, RmgrId::HEAP2, 0x10, Some(&data[..6]), &m);
    assert!(!exact);
    let (text, _) = desc(
        WalVersion::V16,
        RmgrId::HEAP2,
        0x20,
        Some(&data[..4]),
        &[2, 0],
    );
    assert_eq!(text, "nunused: 2, unused: [3, 4]");
}

#[test]
fn heap2_16_and_later() {
    let m = [
        alloc::vec![1, 0],
        2u16.to_le_bytes().to_vec(),
        le(&[]),
        alloc::vec![5, 0, 6, 0],
    ]
    .concat();
    let (text, exact) = desc(WalVersion::V16, RmgrId::HEAP2, 0x50, Some(&[0; 8]), &m);
    assert!(exact);
    assert_eq!(text, "ntuples: 2, flags: 0x01, offsets: [5, 6]");
    // With INIT_PAGE the offsets are not logged.
    let (text, _) = desc(WalVersion::V18, RmgrId::HEAP2, 0xD0, Some(&[0; 8]), &m[..4]);
    assert_eq!(text, "ntuples: 2, flags: 0x01");
    let (text, _) = desc(
        WalVersion::V17,
        RmgrId::HEAP2,
        0x40,
        None,
        &[77, 0, 0, 0, 3],
    );
    assert_eq!(text, "snapshotConflictHorizon: 77, flags: 0x03");
}

#[test]
fn prune_17_with_every_sub_record() {
    // reason, flags (catalog, conflict horizon, plans, redirections, dead, unused), horizon.
    let flags: u8 = 2 | 8 | 16 | 32 | 64 | 128;
    let mut main = alloc::vec![1, flags];
    main.extend_from_slice(&55u32.to_le_bytes());
    let mut b = Vec::new();
    b.extend_from_slice(&[1, 0, 0, 0]); // one plan, padding
    b.extend_from_slice(&600u32.to_le_bytes()); // xmax
    b.extend_from_slice(&[2, 0, 0x10, 0, 0, 0, 2, 0]); // infomask2 2, infomask 16, ntuples 2
    b.extend_from_slice(&[1, 0, 3, 0, 4, 0]); // one redirect 3->4
    b.extend_from_slice(&[1, 0, 7, 0]); // dead 7
    b.extend_from_slice(&[2, 0, 8, 0, 9, 0]); // unused 8, 9
    b.extend_from_slice(&[10, 0, 11, 0]); // frozen offsets
    let (text, exact) = desc(WalVersion::V17, RmgrId::HEAP2, 0x20, Some(&b), &main);
    assert!(exact);
    assert_eq!(
        text,
        "snapshotConflictHorizon: 55, isCatalogRel: T, nplans: 1, nredirected: 1, ndead: 1, \
         nunused: 2, plans: [{ xmax: 600, infomask: 16, infomask2: 2, ntuples: 2, offsets: \
         [10, 11] }], redirected: [3->4], dead: [7], unused: [8, 9]"
    );
    // Without a horizon PostgreSQL starts with the separator; cut sub-records are refused.
    let (text, exact) = desc(WalVersion::V18, RmgrId::HEAP2, 0x10, None, &[0, 0]);
    assert!(exact);
    assert_eq!(text, ", isCatalogRel: F");
    let (_, exact) = desc(WalVersion::V18, RmgrId::HEAP2, 0x30, Some(&b[..10]), &main);
    assert!(!exact);
}
