//! pg_waldump's description of Heap2 records (`heap2_desc`): PRUNE, VACUUM, FREEZE_PAGE
//! (14–16), PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN, PRUNE_VACUUM_CLEANUP (17+, which replaced
//! the three), VISIBLE, MULTI_INSERT, LOCK_UPDATED and NEW_CID.
//!
//! 14 and 15 print a few numbers (`latestRemovedXid 0 nredirected 1 ndead 2`); 16 switched
//! to `key: value` lists with the item offsets of block 0's data as `[a, b]` arrays
//! (`rmgrdesc_utils.c`); 17 merged pruning, vacuuming and freezing into one record whose
//! main data is only flags (and an unaligned conflict horizon) and whose block 0 data holds
//! optional sub-records (`heap_xlog_deserialize_prune_and_freeze`). Read from PostgreSQL
//! 18.4's `heapdesc.c` and `heapam_xlog.h` and the 14/15 `heapdesc.c`; no 16 source was at
//! hand, so 16's PRUNE/VACUUM/FREEZE_PAGE text is checked against 16's pg_walinspect only
//! (there is no pg_waldump 16 here either).

use core::fmt::{self, Write};

use crate::wal::page::{WalVersion, le_u16, le_u32};
use crate::wal::record::Record;

const INIT_PAGE: u8 = 0x80;
const IS_CATALOG_REL: u8 = 1 << 1;
const HAS_CONFLICT_HORIZON: u8 = 1 << 3;
const HAS_FREEZE_PLANS: u8 = 1 << 4;
const HAS_REDIRECTIONS: u8 = 1 << 5;
const HAS_DEAD_ITEMS: u8 = 1 << 6;
const HAS_NOW_UNUSED_ITEMS: u8 = 1 << 7;
/// `xlhp_freeze_plan` / `xl_heap_freeze_plan`: xmax, infomask2, infomask, flags, ntuples.
const PLAN_LEN: usize = 12;

/// `infobits_desc` (16+) or `out_infobits` (14, 15) — shared with heap records.
use super::desc_exact::infobits;

/// The sub-records of a 17+ prune record's block 0 data.
struct PruneParts<'a> {
    plans: &'a [u8],
    redirected: &'a [u8],
    dead: &'a [u8],
    unused: &'a [u8],
    frz_offsets: &'a [u8],
}

fn counted(d: &[u8], at: &mut usize, per: usize) -> Option<usize> {
    let n = usize::from(le_u16(d.get(*at..*at + 2)?, 0));
    *at += 2;
    Some(n * per)
}

fn slice<'a>(d: &'a [u8], at: &mut usize, len: usize) -> Option<&'a [u8]> {
    let s = d.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some(s)
}

/// `heap_xlog_deserialize_prune_and_freeze`, bounds-checked.
fn prune_parts(d: &[u8], flags: u8) -> Option<PruneParts<'_>> {
    let mut at = 0;
    let mut plans: &[u8] = &[];
    if flags & HAS_FREEZE_PLANS != 0 {
        let n = counted(d, &mut at, PLAN_LEN)?;
        at += 2; // padding before the 4-aligned plans
        plans = slice(d, &mut at, n)?;
    }
    let mut items = |flag: u8, per: usize| -> Option<&[u8]> {
        if flags & flag == 0 {
            return Some(&[]);
        }
        let n = counted(d, &mut at, per)?;
        slice(d, &mut at, n)
    };
    let redirected = items(HAS_REDIRECTIONS, 4)?;
    let dead = items(HAS_DEAD_ITEMS, 2)?;
    let unused = items(HAS_NOW_UNUSED_ITEMS, 2)?;
    let frozen: usize = plans
        .chunks_exact(PLAN_LEN)
        .map(|p| usize::from(le_u16(p, 10)))
        .sum();
    let frz_offsets = slice(d, &mut at, frozen * 2)?;
    Some(PruneParts {
        plans,
        redirected,
        dead,
        unused,
        frz_offsets,
    })
}

/// `array_desc` of offsets: ` [1, 2, 3]`.
fn offsets(f: &mut impl Write, items: &[u8]) -> fmt::Result {
    f.write_str(" [")?;
    for (i, o) in items.chunks_exact(2).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}", le_u16(o, 0))?;
    }
    f.write_str("]")
}

fn redirects(f: &mut impl Write, items: &[u8]) -> fmt::Result {
    f.write_str(" [")?;
    for (i, o) in items.chunks_exact(4).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}->{}", le_u16(o, 0), le_u16(o, 2))?;
    }
    f.write_str("]")
}

/// Freeze plans (`plan_elem_desc`), each with its share of `frz_offsets`.
fn plans(f: &mut impl Write, plans: &[u8], mut frz: &[u8]) -> fmt::Result {
    f.write_str(" [")?;
    for (i, p) in plans.chunks_exact(PLAN_LEN).enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        let n = usize::from(le_u16(p, 10));
        write!(
            f,
            "{{ xmax: {}, infomask: {}, infomask2: {}, ntuples: {n}, offsets:",
            le_u32(p, 0),
            le_u16(p, 6),
            le_u16(p, 4)
        )?;
        let (mine, rest) = frz.split_at((n * 2).min(frz.len()));
        offsets(f, mine)?;
        frz = rest;
        f.write_str(" }")?;
    }
    f.write_str("]")
}

fn block0<'a>(record: &Record<'a>) -> &'a [u8] {
    record.block(0).map_or(&[], |b| b.data())
}

/// Whether [`write`] has pg_waldump's text for `record` (a Heap2 record).
pub(super) fn covers(record: &Record<'_>) -> bool {
    let d = record.main_data();
    let v = record.version();
    let op = record.info() & 0x70;
    match op {
        0x10..=0x30 if v >= WalVersion::V17 => {
            let Some(&flags) = d.get(1) else { return false };
            let horizon = flags & HAS_CONFLICT_HORIZON != 0;
            (!horizon || d.len() >= 6)
                && (block0(record).is_empty() || prune_parts(block0(record), flags).is_some())
        }
        0x10 if v == WalVersion::V16 => {
            d.len() >= 9 && {
                let listed = 4 * usize::from(le_u16(d, 4)) + 2 * usize::from(le_u16(d, 6));
                let data = block0(record);
                data.is_empty() || (data.len() >= listed && data.len().is_multiple_of(2))
            }
        }
        0x20 if v == WalVersion::V16 => {
            d.len() >= 2 && {
                let data = block0(record);
                data.is_empty() || data.len() >= 2 * usize::from(le_u16(d, 0))
            }
        }
        0x30 if v == WalVersion::V16 => {
            d.len() >= 7 && {
                let data = block0(record);
                let plans = usize::from(le_u16(d, 4)) * PLAN_LEN;
                data.is_empty()
                    || data.get(..plans).is_some_and(|p| {
                        let frozen: usize = p
                            .chunks_exact(PLAN_LEN)
                            .map(|p| usize::from(le_u16(p, 10)))
                            .sum();
                        data.len() >= plans + 2 * frozen
                    })
            }
        }
        // PRUNE (xl_heap_prune) and LOCK_UPDATED: 8 bytes.
        0x10 | 0x60 => d.len() >= 8,
        0x20 => d.len() >= 2,
        0x30 => d.len() >= 6,
        0x40 => d.len() >= 5,
        0x50 => {
            let offsets_shown = v >= WalVersion::V16
                && record.info() & INIT_PAGE == 0
                && !block0(record).is_empty();
            d.len() >= 4 && (!offsets_shown || d.len() >= 4 + 2 * usize::from(le_u16(d, 2)))
        }
        0x70 => d.len() >= 34,
        _ => false,
    }
}

/// Writes pg_waldump's description of a Heap2 record; call only if [`covers`].
pub(super) fn write(record: &Record<'_>, f: &mut impl Write) -> fmt::Result {
    let d = record.main_data();
    let v = record.version();
    let new = v >= WalVersion::V16;
    match record.info() & 0x70 {
        0x10..=0x30 if v >= WalVersion::V17 => prune17(f, record),
        0x10..=0x30 if v == WalVersion::V16 => vacuum16(f, record),
        0x10 => write!(
            f,
            "latestRemovedXid {} nredirected {} ndead {}",
            le_u32(d, 0),
            le_u16(d, 4),
            le_u16(d, 6)
        ),
        0x20 => write!(f, "nunused {}", le_u16(d, 0)),
        0x30 => write!(f, "cutoff xid {} ntuples {}", le_u32(d, 0), le_u16(d, 4)),
        0x40 if new => write!(
            f,
            "snapshotConflictHorizon: {}, flags: 0x{:02X}",
            le_u32(d, 0),
            d[4]
        ),
        0x40 => write!(f, "cutoff xid {} flags 0x{:02X}", le_u32(d, 0), d[4]),
        0x50 if new => {
            let n = le_u16(d, 2);
            write!(f, "ntuples: {n}, flags: 0x{:02X}", d[0])?;
            if !block0(record).is_empty() && record.info() & INIT_PAGE == 0 {
                f.write_str(", offsets:")?;
                offsets(f, &d[4..4 + 2 * usize::from(n)])?;
            }
            Ok(())
        }
        0x50 => write!(f, "{} tuples flags 0x{:02X}", le_u16(d, 2), d[0]),
        0x60 if new => {
            write!(f, "xmax: {}, off: {}, ", le_u32(d, 0), le_u16(d, 4))?;
            infobits(f, true, "infobits", d[6])?;
            write!(f, ", flags: 0x{:02X}", d[7])
        }
        0x60 => {
            write!(
                f,
                "off {}: xmax {}: flags 0x{:02X} ",
                le_u16(d, 4),
                le_u32(d, 0),
                d[7]
            )?;
            infobits(f, false, "", d[6])
        }
        0x70 => {
            let (spc, db, rel) = (le_u32(d, 16), le_u32(d, 20), le_u32(d, 24));
            let block = (u32::from(le_u16(d, 28)) << 16) | u32::from(le_u16(d, 30));
            let (off, cmin, cmax, combo) =
                (le_u16(d, 32), le_u32(d, 4), le_u32(d, 8), le_u32(d, 12));
            if new {
                write!(
                    f,
                    "rel: {spc}/{db}/{rel}, tid: {block}/{off}, cmin: {cmin}, cmax: {cmax}, combo: {combo}"
                )
            } else {
                write!(
                    f,
                    "rel {spc}/{db}/{rel}; tid {block}/{off}; cmin: {cmin}, cmax: {cmax}, combo: {combo}"
                )
            }
        }
        _ => Ok(()),
    }
}

/// A 17+ `xl_heap_prune`: reason, flags, then (unaligned) the conflict horizon.
fn prune17(f: &mut impl Write, record: &Record<'_>) -> fmt::Result {
    let d = record.main_data();
    let flags = d[1];
    if flags & HAS_CONFLICT_HORIZON != 0 {
        write!(f, "snapshotConflictHorizon: {}", le_u32(d, 2))?;
    }
    write!(
        f,
        ", isCatalogRel: {}",
        if flags & IS_CATALOG_REL != 0 {
            'T'
        } else {
            'F'
        }
    )?;
    let data = block0(record);
    if data.is_empty() {
        return Ok(());
    }
    let Some(p) = prune_parts(data, flags) else {
        return Ok(());
    };
    write!(
        f,
        ", nplans: {}, nredirected: {}, ndead: {}, nunused: {}",
        p.plans.len() / PLAN_LEN,
        p.redirected.len() / 4,
        p.dead.len() / 2,
        p.unused.len() / 2
    )?;
    if !p.plans.is_empty() {
        f.write_str(", plans:")?;
        plans(f, p.plans, p.frz_offsets)?;
    }
    if !p.redirected.is_empty() {
        f.write_str(", redirected:")?;
        redirects(f, p.redirected)?;
    }
    if !p.dead.is_empty() {
        f.write_str(", dead:")?;
        offsets(f, p.dead)?;
    }
    if !p.unused.is_empty() {
        f.write_str(", unused:")?;
        offsets(f, p.unused)?;
    }
    Ok(())
}

/// 16's PRUNE, VACUUM and FREEZE_PAGE: counts in the main data, item offsets (and freeze
/// plans) in block 0's data, every array printed even when empty (16 logs `isCatalogRel`
/// but does not print it).
fn vacuum16(f: &mut impl Write, record: &Record<'_>) -> fmt::Result {
    let d = record.main_data();
    let data = block0(record);
    match record.info() & 0x70 {
        0x10 => {
            let (nredirected, ndead) = (usize::from(le_u16(d, 4)), usize::from(le_u16(d, 6)));
            write!(
                f,
                "snapshotConflictHorizon: {}, nredirected: {nredirected}, ndead: {ndead}",
                le_u32(d, 0)
            )?;
            if data.is_empty() {
                return Ok(());
            }
            let (redirected, rest) = data.split_at(4 * nredirected);
            let (dead, unused) = rest.split_at(2 * ndead);
            write!(f, ", nunused: {}", unused.len() / 2)?;
            f.write_str(", redirected:")?;
            redirects(f, redirected)?;
            f.write_str(", dead:")?;
            offsets(f, dead)?;
            f.write_str(", unused:")?;
            offsets(f, unused)
        }
        0x20 => {
            let n = usize::from(le_u16(d, 0));
            write!(f, "nunused: {n}")?;
            if data.is_empty() {
                return Ok(());
            }
            f.write_str(", unused:")?;
            offsets(f, &data[..2 * n])
        }
        _ => {
            let n = usize::from(le_u16(d, 4));
            write!(f, "snapshotConflictHorizon: {}, nplans: {n}", le_u32(d, 0))?;
            if data.is_empty() {
                return Ok(());
            }
            let (p, frz) = data.split_at(n * PLAN_LEN);
            f.write_str(", plans:")?;
            plans(f, p, frz)
        }
    }
}
