//! Descriptions of WAL records. For the most common record types — heap INSERT, DELETE,
//! UPDATE, HOT_UPDATE, CONFIRM, LOCK; btree inserts, splits and DEDUP; standby LOCK and
//! RUNNING_XACTS; XLOG checkpoints, NOOP, SWITCH, CHECKPOINT_REDO and full-page images;
//! Transaction COMMIT, ABORT, their PREPARED forms, ASSIGNMENT and INVALIDATION; Heap2
//! pruning, vacuuming and freezing (every version's form), VISIBLE, MULTI_INSERT, LOCK_UPDATED and
//! NEW_CID — the text is pg_waldump's own, in the layout of the WAL's version
//! ([`Description::is_pg_waldump_text`]), with times in UTC as pg_waldump prints them under
//! `TZ=UTC`. A commit or abort whose text is not known exactly (e.g. a relation in a
//! user tablespace) gets a compact summary; other record types describe as an empty string.

use core::fmt;

use crate::wal::desc_exact;
use crate::wal::page::le_u64;
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

impl Description<'_> {
    /// Whether the text is exactly what pg_waldump (and pg_walinspect's `description`)
    /// prints for this record.
    pub fn is_pg_waldump_text(&self) -> bool {
        desc_exact::covers(&self.record)
    }
}

impl fmt::Display for Description<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        let d = r.main_data();
        let op = r.info() & 0xF0;
        if desc_exact::covers(r) {
            return desc_exact::write(r, f);
        }
        match (r.rmgr(), op & 0x70) {
            (RmgrId::XACT, 0x00 | 0x20) if d.len() >= 8 => {
                let what = if op & 0x70 == 0 { "commit" } else { "abort" };
                write!(
                    f,
                    "{what} xid {}; time {}",
                    r.xid(),
                    format_timestamp(le_u64(d, 0) as i64)
                )
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
