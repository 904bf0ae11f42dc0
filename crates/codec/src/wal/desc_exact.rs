//! pg_waldump's own description text (the rmgr's `*_desc` function) for the most common
//! record types, per version: heap INSERT, DELETE, UPDATE, HOT_UPDATE, CONFIRM and LOCK;
//! btree INSERT_LEAF, INSERT_UPPER, INSERT_META, INSERT_POST, SPLIT_L, SPLIT_R and DEDUP; standby LOCK and
//! RUNNING_XACTS; XLOG CHECKPOINT_SHUTDOWN and CHECKPOINT_ONLINE, NOOP, SWITCH, FPI and
//! FPI_FOR_HINT (which describe as nothing) and CHECKPOINT_REDO (17+); Transaction records
//! ([`desc_xact`]) and Heap2 records ([`desc_heap2`]).
//!
//! PostgreSQL 16 rewrote most descriptions as `key: value` lists (`heapdesc.c`, `nbtdesc.c`);
//! 14 and 15 share the older form. Transcribed from 14.13, 15.15, 16.2, 17.4 and 18.3's
//! `src/backend/access/rmgrdesc/`, and compared with pg_walinspect's `description` on
//! 15–18 by the codec's integration tests.

use core::fmt::{self, Write};

use crate::wal::page::{WalVersion, le_u16, le_u32, le_u64};
use crate::wal::record::Record;
use crate::wal::rmgr::RmgrId;
use crate::wal::{desc_heap2, desc_xact};

/// `XLHL_*` bits of `infobits_set`, in the order PostgreSQL prints them.
const INFOBITS: [(u8, &str); 5] = [
    (0x01, "IS_MULTI"),
    (0x02, "LOCK_ONLY"),
    (0x04, "EXCL_LOCK"),
    (0x08, "KEYSHR_LOCK"),
    (0x10, "KEYS_UPDATED"),
];

/// `infobits_desc` (16+): `key: [A, B]`; before 16 `out_infobits`: `A B ` (each followed by a
/// space).
pub(super) fn infobits(f: &mut impl Write, new_style: bool, key: &str, bits: u8) -> fmt::Result {
    let set = INFOBITS.iter().filter(|(bit, _)| bits & bit != 0);
    if new_style {
        write!(f, "{key}: [")?;
        for (i, (_, name)) in set.enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        f.write_str("]")
    } else {
        for (_, name) in set {
            write!(f, "{name} ")?;
        }
        Ok(())
    }
}

/// Whether [`write`] has pg_waldump's text for `record`.
pub(super) fn covers(record: &Record<'_>) -> bool {
    let d = record.main_data();
    let info = record.info() & 0xF0;
    match record.rmgr() {
        RmgrId::HEAP => match info & 0x70 {
            0x00 => d.len() >= 3,
            0x10 | 0x60 => d.len() >= 8,
            0x20 | 0x40 => d.len() >= 14,
            0x50 => d.len() >= 2,
            _ => false,
        },
        RmgrId::BTREE => match info {
            0x00 | 0x10 | 0x20 | 0x50 | 0x60 => d.len() >= 2,
            0x30 | 0x40 => d.len() >= 10,
            _ => false,
        },
        RmgrId::STANDBY => match info {
            0x00 => d.len() >= 4 && d.len() >= 4 + 12 * lock_count(d),
            0x10 => d.len() >= 24 && d.len() >= 24 + 4 * running_count(d),
            _ => false,
        },
        RmgrId::XACT => desc_xact::covers(record),
        RmgrId::HEAP2 => desc_heap2::covers(record),
        RmgrId::XLOG => {
            matches!(info, 0x20 | 0x40 | 0xA0 | 0xB0)
                || (matches!(info, 0x00 | 0x10) && d.len() >= 84)
                || (info == 0xE0 && record.version() >= WalVersion::V17 && d.len() >= 4)
        }
        _ => false,
    }
}

fn lock_count(d: &[u8]) -> usize {
    usize::try_from(le_u32(d, 0)).unwrap_or(usize::MAX / 16)
}

/// `xcnt + subxcnt` of an `xl_running_xacts` (negative counts count as huge).
fn running_count(d: &[u8]) -> usize {
    let n = |at| usize::try_from(le_u32(d, at) as i32).unwrap_or(usize::MAX / 16);
    n(0).saturating_add(n(4))
}

/// Writes pg_waldump's description of `record`; call only if [`covers`] says so.
pub(super) fn write(record: &Record<'_>, f: &mut impl Write) -> fmt::Result {
    let d = record.main_data();
    let info = record.info() & 0xF0;
    let new = record.version() >= WalVersion::V16;
    match record.rmgr() {
        RmgrId::HEAP => heap(f, new, info & 0x70, d),
        RmgrId::XACT => desc_xact::write(record, f),
        RmgrId::HEAP2 => desc_heap2::write(record, f),
        RmgrId::BTREE if info == 0x30 || info == 0x40 => {
            let sep = if new { ":" } else { "" };
            write!(
                f,
                "level{sep} {}, firstrightoff{sep} {}, newitemoff{sep} {}, postingoff{sep} {}",
                le_u32(d, 0),
                le_u16(d, 4),
                le_u16(d, 6),
                le_u16(d, 8)
            )
        }
        RmgrId::BTREE => {
            let key = if info == 0x60 { "nintervals" } else { "off" };
            if new {
                write!(f, "{key}: {}", le_u16(d, 0))
            } else {
                write!(f, "{key} {}", le_u16(d, 0))
            }
        }
        RmgrId::XLOG if info == 0xE0 => write!(f, "wal_level {}", wal_level(le_u32(d, 0))),
        RmgrId::XLOG if info <= 0x10 => checkpoint(f, record.version(), info == 0x00, d),
        RmgrId::STANDBY if info == 0x00 => {
            for i in 0..lock_count(d) {
                let at = 4 + 12 * i;
                write!(
                    f,
                    "xid {} db {} rel {} ",
                    le_u32(d, at),
                    le_u32(d, at + 4),
                    le_u32(d, at + 8)
                )?;
            }
            Ok(())
        }
        RmgrId::STANDBY => running_xacts(f, new, d),
        _ => Ok(()),
    }
}

/// `get_wal_level_string`: the name of the first `wal_level_options` entry with the value.
fn wal_level(value: u32) -> &'static str {
    match value {
        0 => "minimal",
        1 => "replica",
        2 => "logical",
        _ => "?",
    }
}

/// A `CheckPoint`: redo, this and previous timeline, fullPageWrites (then `wal_level` on
/// 17+), nextXid (epoch and xid), nextOid, nextMulti, nextMultiOffset, oldestXid and its
/// database, oldestMulti and its database, time (8-aligned), oldest and newest commit
/// timestamp xid, oldestActiveXid.
fn checkpoint(f: &mut impl Write, version: WalVersion, shutdown: bool, d: &[u8]) -> fmt::Result {
    let redo = le_u64(d, 0);
    write!(
        f,
        "redo {:X}/{:X}; tli {}; prev tli {}; fpw {}; ",
        redo >> 32,
        redo as u32,
        le_u32(d, 8),
        le_u32(d, 12),
        if d[16] != 0 { "true" } else { "false" }
    )?;
    if version >= WalVersion::V17 {
        write!(f, "wal_level {}; ", wal_level(le_u32(d, 20)))?;
    }
    let next_xid = le_u64(d, 24);
    write!(
        f,
        "xid {}:{}; oid {}; multi {}; offset {}; oldest xid {} in DB {}; oldest multi {} in \
         DB {}; oldest/newest commit timestamp xid: {}/{}; oldest running xid {}; {}",
        next_xid >> 32,
        next_xid as u32,
        le_u32(d, 32),
        le_u32(d, 36),
        le_u32(d, 40),
        le_u32(d, 44),
        le_u32(d, 48),
        le_u32(d, 52),
        le_u32(d, 56),
        le_u32(d, 72),
        le_u32(d, 76),
        le_u32(d, 80),
        if shutdown { "shutdown" } else { "online" }
    )
}

fn heap(f: &mut impl Write, new: bool, op: u8, d: &[u8]) -> fmt::Result {
    match (op, new) {
        (0x00, true) => write!(f, "off: {}, flags: 0x{:02X}", le_u16(d, 0), d[2]),
        (0x00, false) => write!(f, "off {} flags 0x{:02X}", le_u16(d, 0), d[2]),
        (0x10 | 0x60, true) => {
            write!(f, "xmax: {}, off: {}, ", le_u32(d, 0), le_u16(d, 4))?;
            infobits(f, true, "infobits", d[6])?;
            write!(f, ", flags: 0x{:02X}", d[7])
        }
        (0x10, false) => {
            write!(f, "off {} flags 0x{:02X} ", le_u16(d, 4), d[7])?;
            infobits(f, false, "", d[6])
        }
        (0x60, false) => {
            write!(
                f,
                "off {}: xid {}: flags 0x{:02X} ",
                le_u16(d, 4),
                le_u32(d, 0),
                d[7]
            )?;
            infobits(f, false, "", d[6])
        }
        (_, true) if op == 0x20 || op == 0x40 => {
            write!(f, "old_xmax: {}, old_off: {}, ", le_u32(d, 0), le_u16(d, 4))?;
            infobits(f, true, "old_infobits", d[6])?;
            write!(
                f,
                ", flags: 0x{:02X}, new_xmax: {}, new_off: {}",
                d[7],
                le_u32(d, 8),
                le_u16(d, 12)
            )
        }
        (0x20 | 0x40, false) => {
            write!(
                f,
                "off {} xmax {} flags 0x{:02X} ",
                le_u16(d, 4),
                le_u32(d, 0),
                d[7]
            )?;
            infobits(f, false, "", d[6])?;
            write!(f, "; new off {} xmax {}", le_u16(d, 12), le_u32(d, 8))
        }
        (0x50, true) => write!(f, "off: {}", le_u16(d, 0)),
        (0x50, false) => write!(f, "off {}", le_u16(d, 0)),
        _ => Ok(()),
    }
}

/// `standby_desc_running_xacts`: `xl_running_xacts` is xcnt, subxcnt, subxid_overflow
/// (padded to 4), nextXid, oldestRunningXid, latestCompletedXid, then the xids.
fn running_xacts(f: &mut impl Write, new: bool, d: &[u8]) -> fmt::Result {
    let xcnt = usize::try_from(le_u32(d, 0) as i32).unwrap_or(0);
    let subxcnt = usize::try_from(le_u32(d, 4) as i32).unwrap_or(0);
    write!(
        f,
        "nextXid {} latestCompletedXid {} oldestRunningXid {}",
        le_u32(d, 12),
        le_u32(d, 20),
        le_u32(d, 16)
    )?;
    let xid = |i: usize| le_u32(d, 24 + 4 * i);
    if xcnt > 0 {
        write!(f, "; {xcnt} xacts:")?;
        for i in 0..xcnt {
            write!(f, " {}", xid(i))?;
        }
    }
    if d[8] != 0 {
        f.write_str(if new {
            "; subxid overflowed"
        } else {
            "; subxid ovf"
        })?;
    }
    if new && subxcnt > 0 {
        write!(f, "; {subxcnt} subxacts:")?;
        for i in xcnt..xcnt + subxcnt {
            write!(f, " {}", xid(i))?;
        }
    }
    Ok(())
}
