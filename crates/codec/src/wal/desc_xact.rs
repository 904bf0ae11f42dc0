//! pg_waldump's description of transaction records (`xactdesc.c`): COMMIT, ABORT,
//! COMMIT_PREPARED, ABORT_PREPARED, ASSIGNMENT and INVALIDATION, with the prepared xid, the
//! commit time, dropped relations (`rels:`), subtransactions, dropped statistics (15+),
//! invalidation messages (`standby_desc_invalidations`), `sync` and the origin.
//!
//! Times print as pg_waldump prints them with `TZ=UTC` (`2024-01-02 03:04:05.678901 UTC`);
//! pg_walinspect prints the same instant in the server's `TimeZone` and DateStyle.
//! Read from PostgreSQL 18.4's `xactdesc.c`, `standbydesc.c` and `xact.h`; the record
//! layout of 14–17 differs only in dropped-statistics items (12 bytes, 16 on 18).

use core::fmt::{self, Write};

use crate::wal::describe::format_timestamp;
use crate::wal::page::{WalVersion, le_u32, le_u64};
use crate::wal::record::Record;

const HAS_INFO: u8 = 0x80;
const XINFO_DBINFO: u32 = 1 << 0;
const XINFO_SUBXACTS: u32 = 1 << 1;
const XINFO_RELS: u32 = 1 << 2;
const XINFO_INVALS: u32 = 1 << 3;
const XINFO_TWOPHASE: u32 = 1 << 4;
const XINFO_ORIGIN: u32 = 1 << 5;
const XINFO_GID: u32 = 1 << 7;
const XINFO_DROPPED_STATS: u32 = 1 << 8;
const APPLY_FEEDBACK: u32 = 1 << 29;
const RELCACHE_INIT_INVAL: u32 = 1 << 30;
const FORCE_SYNC: u32 = 1 << 31;
const GLOBAL_TABLESPACE: u32 = 1664;
const DEFAULT_TABLESPACE: u32 = 1663;

/// A bounds-checked reader over main data.
struct Cursor<'a> {
    d: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.d.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| le_u32(b, 0))
    }

    /// A counted array: an `int` count, then `count` items of `size` bytes.
    fn array(&mut self, size: usize) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()? as i32).ok()?;
        self.take(n.checked_mul(size)?)
    }
}

/// A parsed `xl_xact_commit` / `xl_xact_abort`.
struct Parsed<'a> {
    time: i64,
    xinfo: u32,
    db: (u32, u32),
    subxacts: &'a [u8],
    rels: &'a [u8],
    stats: &'a [u8],
    msgs: &'a [u8],
    twophase_xid: u32,
    origin: Option<(u64, i64)>,
}

fn stats_item_len(version: WalVersion) -> usize {
    if version >= WalVersion::V18 { 16 } else { 12 }
}

/// `ParseCommitRecord` / `ParseAbortRecord` (the same order of parts; an abort never has
/// invalidations).
fn parse<'a>(record: &Record<'a>, commit: bool) -> Option<Parsed<'a>> {
    let mut c = Cursor {
        d: record.main_data(),
        at: 0,
    };
    let time = le_u64(c.take(8)?, 0) as i64;
    let xinfo = if record.info() & HAS_INFO != 0 {
        c.u32()?
    } else {
        0
    };
    let mut p = Parsed {
        time,
        xinfo,
        db: (0, 0),
        subxacts: &[],
        rels: &[],
        stats: &[],
        msgs: &[],
        twophase_xid: 0,
        origin: None,
    };
    if xinfo & XINFO_DBINFO != 0 {
        p.db = (c.u32()?, c.u32()?);
    }
    if xinfo & XINFO_SUBXACTS != 0 {
        p.subxacts = c.array(4)?;
    }
    if xinfo & XINFO_RELS != 0 {
        p.rels = c.array(12)?;
    }
    if xinfo & XINFO_DROPPED_STATS != 0 {
        if record.version() < WalVersion::V15 {
            return None;
        }
        p.stats = c.array(stats_item_len(record.version()))?;
    }
    if xinfo & XINFO_INVALS != 0 {
        if !commit {
            return None;
        }
        p.msgs = c.array(16)?;
    }
    if xinfo & XINFO_TWOPHASE != 0 {
        p.twophase_xid = c.u32()?;
        if xinfo & XINFO_GID != 0 {
            let rest = c.d.get(c.at..)?;
            let nul = rest.iter().position(|&b| b == 0)?;
            c.take(nul + 1)?;
        }
    }
    if xinfo & XINFO_ORIGIN != 0 {
        let o = c.take(16)?;
        p.origin = Some((le_u64(o, 0), le_u64(o, 8) as i64));
    }
    Some(p)
}

/// Whether every invalidation message is of a kind whose text is known for `version`.
fn msgs_known(msgs: &[u8], version: WalVersion) -> bool {
    msgs.chunks_exact(16).all(|m| match m[0] as i8 {
        0.. | -1 | -2 | -5 => true,
        -6 => version >= WalVersion::V18,
        _ => false,
    })
}

/// Whether every relation lies in a tablespace whose path does not depend on the catalog
/// version (`global`, `base`).
fn rels_known(rels: &[u8]) -> bool {
    rels.chunks_exact(12)
        .all(|r| matches!(le_u32(r, 0), GLOBAL_TABLESPACE | DEFAULT_TABLESPACE))
}

/// Whether [`write`] has pg_waldump's text for `record` (a Transaction record).
pub(super) fn covers(record: &Record<'_>) -> bool {
    let d = record.main_data();
    let v = record.version();
    match record.info() & 0x70 {
        // COMMIT, COMMIT_PREPARED, ABORT, ABORT_PREPARED.
        op @ (0x00 | 0x20 | 0x30 | 0x40) => {
            let commit = matches!(op, 0x00 | 0x30);
            parse(record, commit).is_some_and(|p| {
                rels_known(p.rels)
                    && msgs_known(p.msgs, v)
                    && (p.xinfo & APPLY_FEEDBACK == 0 || v >= WalVersion::V18)
                    && (commit || p.origin.is_none() || v >= WalVersion::V18)
            })
        }
        // ASSIGNMENT.
        0x50 => d.len() >= 8 && assignment_subxacts(d).is_some(),
        // INVALIDATION (14+).
        0x60 => invalidations(d).is_some_and(|m| msgs_known(m, v)),
        _ => false,
    }
}

fn assignment_subxacts(d: &[u8]) -> Option<&[u8]> {
    Cursor { d, at: 4 }.array(4)
}

fn invalidations(d: &[u8]) -> Option<&[u8]> {
    Cursor { d, at: 0 }.array(16)
}

/// Writes pg_waldump's description of a Transaction record; call only if [`covers`].
pub(super) fn write(record: &Record<'_>, f: &mut impl Write) -> fmt::Result {
    let d = record.main_data();
    let op = record.info() & 0x70;
    match op {
        0x50 => {
            write!(f, "xtop {}: subxacts:", le_u32(d, 0))?;
            xids(f, assignment_subxacts(d).unwrap_or_default())
        }
        0x60 => inval_msgs(f, invalidations(d).unwrap_or_default(), None),
        _ => {
            let commit = matches!(op, 0x00 | 0x30);
            let Some(p) = parse(record, commit) else {
                return Ok(());
            };
            if p.twophase_xid != 0 {
                write!(f, "{}: ", p.twophase_xid)?;
            }
            write!(f, "{}", format_timestamp(p.time))?;
            if !p.rels.is_empty() {
                f.write_str("; rels:")?;
                for r in p.rels.chunks_exact(12) {
                    let (spc, db, rel) = (le_u32(r, 0), le_u32(r, 4), le_u32(r, 8));
                    if spc == GLOBAL_TABLESPACE {
                        write!(f, " global/{rel}")?;
                    } else {
                        write!(f, " base/{db}/{rel}")?;
                    }
                }
            }
            if !p.subxacts.is_empty() {
                f.write_str("; subxacts:")?;
                xids(f, p.subxacts)?;
            }
            if commit {
                dropped_stats(f, record.version(), p.stats)?;
                let init = (p.xinfo & RELCACHE_INIT_INVAL != 0).then_some(p.db);
                inval_msgs(f, p.msgs, init)?;
                if p.xinfo & APPLY_FEEDBACK != 0 {
                    f.write_str("; apply_feedback")?;
                }
                if p.xinfo & FORCE_SYNC != 0 {
                    f.write_str("; sync")?;
                }
                origin(f, record, p.origin)
            } else {
                origin(f, record, p.origin)?;
                dropped_stats(f, record.version(), p.stats)
            }
        }
    }
}

fn xids(f: &mut impl Write, xids: &[u8]) -> fmt::Result {
    for x in xids.chunks_exact(4) {
        write!(f, " {}", le_u32(x, 0))?;
    }
    Ok(())
}

fn origin(f: &mut impl Write, record: &Record<'_>, origin: Option<(u64, i64)>) -> fmt::Result {
    let Some((lsn, at)) = origin else {
        return Ok(());
    };
    write!(
        f,
        "; origin: node {}, lsn {:X}/{:X}, at {}",
        record.origin().unwrap_or(0),
        lsn >> 32,
        lsn as u32,
        format_timestamp(at)
    )
}

/// `xact_desc_stats`: `kind/dboid/objid` per item (objid 64-bit on 18).
fn dropped_stats(f: &mut impl Write, version: WalVersion, items: &[u8]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    f.write_str("; dropped stats:")?;
    for item in items.chunks_exact(stats_item_len(version)) {
        let objid = if version >= WalVersion::V18 {
            (u64::from(le_u32(item, 12)) << 32) | u64::from(le_u32(item, 8))
        } else {
            u64::from(le_u32(item, 8))
        };
        write!(f, " {}/{}/{objid}", le_u32(item, 0) as i32, le_u32(item, 4))?;
    }
    Ok(())
}

/// `standby_desc_invalidations`; `init_file` is the (database, tablespace) whose relcache
/// init file is invalidated, if so.
fn inval_msgs(f: &mut impl Write, msgs: &[u8], init_file: Option<(u32, u32)>) -> fmt::Result {
    if msgs.is_empty() {
        return Ok(());
    }
    if let Some((db, ts)) = init_file {
        write!(f, "; relcache init file inval dbid {db} tsid {ts}")?;
    }
    f.write_str("; inval msgs:")?;
    for m in msgs.chunks_exact(16) {
        match m[0] as i8 {
            id @ 0.. => write!(f, " catcache {id}")?,
            -1 => write!(f, " catalog {}", le_u32(m, 8))?,
            -2 => write!(f, " relcache {}", le_u32(m, 8))?,
            -5 => write!(f, " snapshot {}", le_u32(m, 8))?,
            -6 => write!(f, " relsync {}", le_u32(m, 8))?,
            id => write!(f, " unrecognized id {id}")?,
        }
    }
    Ok(())
}
