//! What `waldump` prints: pg_waldump's record lines and `--stats` tables, and JSON lines.

use std::fmt::Write as _;

use pg_walstream_codec::Lsn;
use pg_walstream_codec::wal::describe::describe;
use pg_walstream_codec::wal::{ImageCompression, Record, RmgrId, WalVersion};
use serde_json::{Value, json};

/// `%X/%08X`, as pg_waldump prints LSNs in record lines.
fn lsn8(lsn: Lsn) -> String {
    let v = lsn.as_u64();
    format!("{:X}/{:08X}", v >> 32, v as u32)
}

/// The record type's name, or `UNKNOWN (xx)` as PostgreSQL prints it.
pub(crate) fn type_name(record: &Record<'_>) -> String {
    record.type_name().map_or_else(
        || format!("UNKNOWN ({:x})", record.info() & 0xF0),
        ToString::to_string,
    )
}

fn compression_name(c: ImageCompression) -> &'static str {
    match c {
        ImageCompression::None => "none",
        ImageCompression::Pglz => "pglz",
        ImageCompression::Lz4 => "lz4",
        ImageCompression::Zstd => "zstd",
    }
}

/// One record in pg_waldump's layout (`rmgr: … desc: TYPE …`), block references inline, or
/// one per line with `bkp_details` (`-b`).
pub(crate) fn text_line(record: &Record<'_>, bkp_details: bool) -> String {
    let mut line = format!(
        "rmgr: {:<11} len (rec/tot): {:>6}/{:>6}, tx: {:>10}, lsn: {}, prev {}, desc: {} {}",
        record.rmgr().to_string(),
        record.record_len_without_fpi(),
        record.total_len(),
        record.xid(),
        lsn8(record.lsn()),
        lsn8(record.prev()),
        type_name(record),
        describe(record)
    );
    for b in record.blocks() {
        let l = b.locator();
        if bkp_details {
            let _ = write!(
                line,
                "\n\tblkref #{}: rel {}/{}/{} fork {} blk {}",
                b.id(),
                l.spc_oid,
                l.db_oid,
                l.rel_number,
                b.fork_name(),
                b.block_number()
            );
            if let Some(img) = b.image() {
                let _ = write!(
                    line,
                    " (FPW{}); hole: offset: {}, length: {}",
                    if img.apply() {
                        ""
                    } else {
                        " for WAL verification"
                    },
                    img.hole_offset(),
                    img.hole_length()
                );
                if img.compression() != ImageCompression::None {
                    let saved = img.page_size() as i64
                        - i64::from(img.hole_length())
                        - img.bytes().len() as i64;
                    let _ = write!(
                        line,
                        ", compression saved: {saved}, method: {}",
                        compression_name(img.compression())
                    );
                }
            }
        } else {
            let _ = write!(
                line,
                ", blkref #{}: rel {}/{}/{}",
                b.id(),
                l.spc_oid,
                l.db_oid,
                l.rel_number
            );
            if b.fork() != 0 {
                let _ = write!(line, " fork {}", b.fork_name());
            }
            let _ = write!(line, " blk {}", b.block_number());
            if let Some(img) = b.image() {
                line.push_str(if img.apply() {
                    " FPW"
                } else {
                    " FPW for WAL verification"
                });
            }
        }
    }
    line
}

/// One record as a JSON object.
pub(crate) fn json_line(record: &Record<'_>) -> String {
    let blocks: Vec<Value> = record
        .blocks()
        .map(|b| {
            let l = b.locator();
            let image = b.image().map(|img| {
                json!({
                    "length": img.bytes().len(),
                    "hole_offset": img.hole_offset(),
                    "hole_length": img.hole_length(),
                    "compression": compression_name(img.compression()),
                    "apply": img.apply(),
                })
            });
            json!({
                "id": b.id(),
                "spc_oid": l.spc_oid,
                "db_oid": l.db_oid,
                "rel_number": l.rel_number,
                "fork": b.fork_name(),
                "block": b.block_number(),
                "will_init": b.will_init(),
                "data_length": b.data().len(),
                "image": image,
            })
        })
        .collect();
    let value = json!({
        "lsn": record.lsn().to_string(),
        "end_lsn": record.end_lsn().to_string(),
        "prev_lsn": record.prev().to_string(),
        "xid": record.xid(),
        "rmgr": record.rmgr().to_string(),
        "type": type_name(record),
        "info": record.info(),
        "total_length": record.total_len(),
        "record_length": record.record_len_without_fpi(),
        "main_data_length": record.main_data().len(),
        "fpi_length": record.fpi_len(),
        "origin": record.origin(),
        "toplevel_xid": record.toplevel_xid(),
        "description": describe(record).to_string(),
        "blocks": blocks,
    });
    value.to_string()
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    count: u64,
    rec_len: u64,
    fpi_len: u64,
}

/// `--stats` counters, per resource manager and per record type (`xl_info >> 4`).
pub(crate) struct Stats {
    per_record: bool,
    version: Option<WalVersion>,
    first: Option<Lsn>,
    last_end: Lsn,
    count: u64,
    rmgr: Vec<Counts>,
    record: Vec<[Counts; 16]>,
}

impl Stats {
    pub(crate) fn new(per_record: bool) -> Self {
        Self {
            per_record,
            version: None,
            first: None,
            last_end: Lsn::INVALID,
            count: 0,
            rmgr: vec![Counts::default(); 256],
            record: vec![[Counts::default(); 16]; 256],
        }
    }

    /// Counts `record` (as pg_waldump's `XLogRecStoreStats`).
    pub(crate) fn add(&mut self, record: &Record<'_>) {
        self.version.get_or_insert(record.version());
        self.first.get_or_insert(record.lsn());
        self.last_end = record.end_lsn();
        self.count += 1;
        let rmid = usize::from(record.rmgr().0);
        let fpi = u64::from(record.fpi_len());
        let rec = u64::from(record.total_len()) - fpi;
        let mut recid = usize::from(record.info() >> 4);
        // Transaction records use the top bit of the four for a flag.
        if record.rmgr() == RmgrId::XACT {
            recid &= 0x07;
        }
        for c in [&mut self.rmgr[rmid], &mut self.record[rmid][recid]] {
            c.count += 1;
            c.rec_len += rec;
            c.fpi_len += fpi;
        }
    }

    /// Adds the counts of `later`, whose records all follow the ones counted here.
    pub(crate) fn merge(&mut self, later: &Stats) {
        if later.count == 0 {
            return;
        }
        self.version = self.version.or(later.version);
        self.first = self.first.or(later.first);
        self.last_end = later.last_end;
        self.count += later.count;
        let pairs = self.rmgr.iter_mut().zip(&later.rmgr).chain(
            self.record
                .iter_mut()
                .flatten()
                .zip(later.record.iter().flatten()),
        );
        for (into, from) in pairs {
            into.count += from.count;
            into.rec_len += from.rec_len;
            into.fpi_len += from.fpi_len;
        }
    }

    /// The table pg_waldump prints.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let (first, last) = (self.first.unwrap_or(Lsn::INVALID), self.last_end);
        let _ = writeln!(out, "WAL statistics between {first} and {last}:");
        let total_rec: u64 = self.rmgr.iter().map(|c| c.rec_len).sum();
        let total_fpi: u64 = self.rmgr.iter().map(|c| c.fpi_len).sum();
        let total = total_rec + total_fpi;
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>8} {:>20} {:>8} {:>20} {:>8} {:>20} {:>8}",
            "Type", "N", "(%)", "Record size", "(%)", "FPI size", "(%)", "Combined size", "(%)"
        );
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>8} {:>20} {:>8} {:>20} {:>8} {:>20} {:>8}",
            "----", "-", "---", "-----------", "---", "--------", "---", "-------------", "---"
        );
        let version = self.version.unwrap_or(WalVersion::V18);
        for id in 0..=255u8 {
            let rmgr = RmgrId(id);
            let c = self.rmgr[usize::from(id)];
            if !self.per_record {
                // Built-in rmgrs always get a row; custom ones only when present.
                if id <= RmgrId::MAX_BUILTIN || c.count > 0 {
                    self.row(&mut out, &rmgr.to_string(), c, total_rec, total_fpi, total);
                }
                continue;
            }
            for (recid, c) in self.record[usize::from(id)].iter().enumerate() {
                if c.count == 0 {
                    continue;
                }
                let info = (recid as u8) << 4;
                let name = rmgr
                    .record_type_name(version, info)
                    .map_or_else(|| format!("UNKNOWN ({info:x})"), ToString::to_string);
                self.row(
                    &mut out,
                    &format!("{rmgr}/{name}"),
                    *c,
                    total_rec,
                    total_fpi,
                    total,
                );
            }
        }
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>8} {:>20} {:>8} {:>20} {:>8} {:>20}",
            "", "--------", "", "--------", "", "--------", "", "--------"
        );
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>8} {:>20} {:<9}{:>20} {:<9}{:>20} {:<6}",
            "Total",
            self.count,
            "",
            total_rec,
            format!("[{:.2}%]", pct(total_rec, total)),
            total_fpi,
            format!("[{:.2}%]", pct(total_fpi, total)),
            total,
            "[100%]"
        );
        out
    }

    fn row(
        &self,
        out: &mut String,
        name: &str,
        c: Counts,
        total_rec: u64,
        total_fpi: u64,
        total: u64,
    ) {
        let combined = c.rec_len + c.fpi_len;
        let _ = writeln!(
            out,
            "{name:<40} {:>8} ({:>6.2}) {:>20} ({:>6.2}) {:>20} ({:>6.2}) {:>20} ({:>6.2})",
            c.count,
            pct(c.count, self.count),
            c.rec_len,
            pct(c.rec_len, total_rec),
            c.fpi_len,
            pct(c.fpi_len, total_fpi),
            combined,
            pct(combined, total)
        );
    }
}

#[allow(clippy::cast_precision_loss)] // a percentage to two decimals
fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
