//! Short descriptions of common WAL records (heap insert/update/delete, btree insert/split,
//! commit/abort, checkpoint, full-page images). Not pg_waldump's text: a compact,
//! documented summary; other record types describe as an empty string.

use core::fmt;

use crate::wal::page::{le_u16, le_u32, le_u64};
use crate::wal::record::Record;
use crate::wal::rmgr::RmgrId;

/// A record's description, formatted on demand (no allocation).
///
/// ```
/// # use pg_walstream_codec::wal::describe::format_timestamp;
/// // 2000-01-01 00:00:00 UTC is PostgreSQL's epoch.
/// assert_eq!(format_timestamp(0).to_string(), "2000-01-01 00:00:00.000000 UTC");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Description<'a> {
    record: Record<'a>,
}

/// Describes `record`.
pub fn describe<'a>(record: &Record<'a>) -> Description<'a> {
    Description { record: *record }
}

impl fmt::Display for Description<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        let d = r.main_data();
        let op = r.info() & 0xF0;
        match (r.rmgr(), op & 0x70) {
            (RmgrId::HEAP, 0x00) if d.len() >= 3 => {
                write!(f, "off: {}, flags: 0x{:02X}", le_u16(d, 0), d[2])
            }
            (RmgrId::HEAP, 0x10) if d.len() >= 8 => write!(
                f,
                "xmax: {}, off: {}, infobits: 0x{:02X}, flags: 0x{:02X}",
                le_u32(d, 0),
                le_u16(d, 4),
                d[6],
                d[7]
            ),
            (RmgrId::HEAP, 0x20 | 0x40) if d.len() >= 14 => write!(
                f,
                "old_xmax: {}, old_off: {}, old_infobits: 0x{:02X}, flags: 0x{:02X}, new_xmax: {}, new_off: {}",
                le_u32(d, 0),
                le_u16(d, 4),
                d[6],
                d[7],
                le_u32(d, 8),
                le_u16(d, 12)
            ),
            (RmgrId::BTREE, 0x00..=0x20) if op <= 0x20 && d.len() >= 2 => {
                write!(f, "off: {}", le_u16(d, 0))
            }
            (RmgrId::BTREE, 0x30 | 0x40) if op <= 0x40 && d.len() >= 10 => write!(
                f,
                "level: {}, firstrightoff: {}, newitemoff: {}, postingoff: {}",
                le_u32(d, 0),
                le_u16(d, 4),
                le_u16(d, 6),
                le_u16(d, 8)
            ),
            (RmgrId::XACT, 0x00 | 0x20) if d.len() >= 8 => {
                let what = if op & 0x70 == 0 { "commit" } else { "abort" };
                write!(
                    f,
                    "{what} xid {}; time {}",
                    r.xid(),
                    format_timestamp(le_u64(d, 0) as i64)
                )
            }
            (RmgrId::XLOG, 0x00 | 0x10) if op <= 0x10 && d.len() >= 40 => {
                let redo = le_u64(d, 0);
                let next_xid = le_u64(d, 24);
                write!(
                    f,
                    "redo {:X}/{:X}; tli {}; prev tli {}; fpw {}; xid {}:{}; oid {}",
                    redo >> 32,
                    redo as u32,
                    le_u32(d, 8),
                    le_u32(d, 12),
                    d[16] != 0,
                    next_xid >> 32,
                    next_xid as u32,
                    le_u32(d, 32)
                )
            }
            (RmgrId::XLOG, _) if op == 0xA0 || op == 0xB0 => {
                write!(f, "{} full-page image(s)", r.block_count())
            }
            _ => Ok(()),
        }
    }
}

/// A PostgreSQL timestamp (microseconds since 2000-01-01 UTC), formatted as
/// `YYYY-MM-DD HH:MM:SS.ffffff UTC`.
pub fn format_timestamp(micros: i64) -> impl fmt::Display {
    Timestamp(micros)
}

struct Timestamp(i64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Days from 1970-01-01 to 2000-01-01.
        const EPOCH_DAYS: i64 = 10_957;
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400) + EPOCH_DAYS;
        let sod = secs.rem_euclid(86_400);
        // Civil date from days since the Unix epoch (proleptic Gregorian).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{micros:06} UTC",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}
