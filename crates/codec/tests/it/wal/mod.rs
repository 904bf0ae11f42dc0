//! Physical WAL decoding against real servers: WAL written by 14–18 (a pgbench-like
//! workload after checkpoints, so full-page images exist, under every `wal_compression` the
//! build supports; a segment switch; a record spanning segments) decodes, and on 15–18 every
//! record agrees field by field with the server's own reader, pg_walinspect.

mod segments;
mod workload;

use std::collections::BTreeMap;

use pg_walstream_codec::Lsn;
use pg_walstream_codec::wal::describe::describe;
use pg_walstream_codec::wal::{WalDecoder, image};
use pg_walstream_testkit::servers;

use workload::{Generated, generate};

/// One record as both sides report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    start: String,
    end: String,
    prev: String,
    xid: i64,
    rmgr: String,
    record_type: String,
    record_length: i64,
    main_data_length: i64,
    fpi_length: i64,
    blocks: i64,
    /// Each block reference as pg_walinspect's `block_ref` writes it (relation, fork,
    /// block, and the full-page image's hole, apply flag and compression).
    block_refs: String,
}

/// `XLogRecGetBlockRefInfo(record, pretty = false, detailed = true)`, PostgreSQL's text of
/// the block references, built from our decoding.
fn block_refs(record: &pg_walstream_codec::wal::Record<'_>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for b in record.blocks() {
        if b.id() > 0 {
            out.push(' ');
        }
        let l = b.locator();
        let _ = write!(
            out,
            "blkref #{}: rel {}/{}/{} fork {} blk {}",
            b.id(),
            l.spc_oid,
            l.db_oid,
            l.rel_number,
            b.fork_name(),
            b.block_number()
        );
        if let Some(img) = b.image() {
            let verification = if img.apply() {
                ""
            } else {
                " for WAL verification"
            };
            let _ = write!(
                out,
                " (FPW{verification}); hole: offset: {}, length: {}",
                img.hole_offset(),
                img.hole_length()
            );
            if img.compression() != pg_walstream_codec::wal::ImageCompression::None {
                let saved =
                    img.page_size() - u32::from(img.hole_length()) - img.bytes().len() as u32;
                let _ = write!(
                    out,
                    ", compression saved: {saved}, method: {}",
                    compression_name(img.compression())
                );
            }
        }
    }
    out
}

/// What decoding the range found besides the rows.
#[derive(Debug, Default)]
struct Decoded {
    rows: Vec<Row>,
    switches: usize,
    longest: u32,
    longest_crosses_segment: bool,
    images: BTreeMap<&'static str, usize>,
    /// Our description of each row where it claims to be pg_waldump's text.
    exact: Vec<Option<String>>,
}

fn decode(g: &Generated) -> Decoded {
    let seg = u64::from(g.segment_size);
    let first = Lsn::new(g.start.as_u64() / seg * seg);
    let wal = &g.wal;
    let mut decoder = WalDecoder::new(first).skip_until(g.start);
    let mut out = Decoded::default();
    let mut page = vec![0u8; 8192];
    // Feed in odd-sized chunks to exercise reassembly at every boundary.
    let mut chunks = wal.chunks(7777);
    'outer: loop {
        loop {
            let record = match decoder.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                // Nothing was written at `end` yet: the WAL ends there.
                Err(e) if e.is_end_of_wal() && e.lsn() >= g.end => break 'outer,
                Err(e) => panic!(
                    "PostgreSQL {}: decoding {}..{} failed: {e}",
                    g.version, g.start, g.end
                ),
            };
            if record.lsn() >= g.end {
                break 'outer;
            }
            let name = record.rmgr().to_string();
            let record_type = record.type_name().map_or_else(
                || format!("UNKNOWN ({:x})", record.info() & 0xF0),
                ToString::to_string,
            );
            if name == "XLOG" && record_type == "SWITCH" {
                out.switches += 1;
            }
            if record.total_len() > out.longest {
                out.longest = record.total_len();
                out.longest_crosses_segment =
                    record.lsn().as_u64() / seg != (record.end_lsn().as_u64() - 1) / seg;
            }
            for block in record.blocks() {
                if let Some(img) = block.image() {
                    *out.images
                        .entry(compression_name(img.compression()))
                        .or_default() += 1;
                    match image::restore(&img, &mut page) {
                        Ok(()) => {}
                        // Only a build without the `lz4` / `zstd` features may lack them.
                        Err(image::ImageError::Unsupported(method))
                            if !cfg!(all(feature = "lz4", feature = "zstd")) =>
                        {
                            eprintln!("skipping a {method} image: feature not compiled in");
                            continue;
                        }
                        Err(e) => {
                            panic!("PostgreSQL {}: image at {}: {e}", g.version, record.lsn())
                        }
                    }
                    // A restored heap or index page has a sane header: pd_lower <= pd_upper.
                    let lower = u16::from_le_bytes([page[12], page[13]]);
                    let upper = u16::from_le_bytes([page[14], page[15]]);
                    assert!(
                        lower <= upper && usize::from(upper) <= page.len(),
                        "PostgreSQL {}: restored page at {} has lower {lower} upper {upper}",
                        g.version,
                        record.lsn()
                    );
                }
            }
            let description = describe(&record);
            out.exact.push(
                description
                    .is_pg_waldump_text()
                    .then(|| description.to_string()),
            );
            out.rows.push(Row {
                start: record.lsn().to_string(),
                end: record.end_lsn().to_string(),
                prev: record.prev().to_string(),
                xid: i64::from(record.xid()),
                rmgr: name,
                record_type,
                record_length: i64::from(record.total_len()),
                main_data_length: record.main_data().len() as i64,
                fpi_length: i64::from(record.fpi_len()),
                blocks: record.block_count() as i64,
                block_refs: block_refs(&record),
            });
        }
        match chunks.next() {
            Some(chunk) => decoder.feed(chunk),
            None => panic!(
                "PostgreSQL {}: WAL files end at {} before {}",
                g.version,
                decoder.fed_end(),
                g.end
            ),
        }
    }
    out
}

fn compression_name(c: pg_walstream_codec::wal::ImageCompression) -> &'static str {
    use pg_walstream_codec::wal::ImageCompression as C;
    match c {
        C::None => "none",
        C::Pglz => "pglz",
        C::Lz4 => "lz4",
        C::Zstd => "zstd",
    }
}

#[tokio::test(flavor = "current_thread")]
async fn decodes_real_wal_like_the_server() {
    for server in servers() {
        let version = server.version();
        let g = generate(server).await;
        let decoded = decode(&g);
        assert!(!decoded.rows.is_empty(), "PostgreSQL {version}: no records");
        assert!(
            decoded.switches >= 1,
            "PostgreSQL {version}: no XLOG_SWITCH seen"
        );
        assert!(
            decoded.longest > g.segment_size && decoded.longest_crosses_segment,
            "PostgreSQL {version}: the long message record ({} bytes) should span a segment",
            decoded.longest
        );
        for mode in &g.compressions {
            assert!(
                decoded.images.get(mode).copied().unwrap_or(0) > 0,
                "PostgreSQL {version}: no {mode} full-page images in {:?}",
                decoded.images
            );
        }
        for row in &decoded.rows {
            assert!(
                !row.record_type.starts_with("UNKNOWN"),
                "PostgreSQL {version}: record without a name: {row:?}"
            );
        }
        if let Some(server_rows) = &g.walinspect {
            compare(version, &decoded.rows, server_rows);
            let theirs = g.descriptions.as_ref().unwrap();
            let mut checked: BTreeMap<String, usize> = BTreeMap::new();
            let mut xact_parts = std::collections::BTreeSet::new();
            for ((row, ours), theirs) in decoded.rows.iter().zip(&decoded.exact).zip(theirs) {
                if let Some(ours) = ours {
                    assert_eq!(
                        ours, theirs,
                        "PostgreSQL {version}: description of {}/{} at {}",
                        row.rmgr, row.record_type, row.start
                    );
                    *checked
                        .entry(format!("{}/{}", row.rmgr, row.record_type))
                        .or_default() += 1;
                    if row.rmgr == "Transaction" {
                        xact_parts.extend(
                            ["; subxacts:", "; rels:", "; inval msgs:"]
                                .into_iter()
                                .filter(|part| ours.contains(part)),
                        );
                    }
                }
            }
            // Pruning, freezing and visibility records depend on the server-wide xmin
            // horizon (other tests' slots may hold it back): compared whenever present.
            for kind in [
                "Heap/INSERT",
                "Heap/UPDATE",
                "Heap/DELETE",
                "Btree/INSERT_LEAF",
                "Transaction/COMMIT",
                "Transaction/ABORT",
                "Heap2/MULTI_INSERT",
            ] {
                // UPDATE or HOT_UPDATE, whichever the pages allowed.
                assert!(
                    checked.keys().any(|k| k.starts_with(kind)
                        || (kind == "Heap/UPDATE" && k == "Heap/HOT_UPDATE")),
                    "PostgreSQL {version}: no {kind} description checked: {checked:?}"
                );
            }
            assert_eq!(
                xact_parts.len(),
                3,
                "PostgreSQL {version}: commit/abort parts compared: {xact_parts:?}"
            );
            eprintln!("PostgreSQL {version}: descriptions equal pg_walinspect's: {checked:?}");
            let mut ours: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
            for r in &decoded.rows {
                let e = ours
                    .entry(format!("{}/{}", r.rmgr, r.record_type))
                    .or_default();
                e.0 += 1;
                e.1 += r.record_length - r.fpi_length;
                e.2 += r.fpi_length;
            }
            assert_eq!(
                &ours,
                g.stats.as_ref().unwrap(),
                "PostgreSQL {version}: per-record-type stats differ from pg_get_wal_stats"
            );
        }
        eprintln!(
            "PostgreSQL {version}: {} records, images {:?}, longest {} bytes, {} switch(es)",
            decoded.rows.len(),
            decoded.images,
            decoded.longest,
            decoded.switches
        );
    }
}

fn compare(version: u32, ours: &[Row], theirs: &[Row]) {
    // Name mismatches first, all at once (they are table errors, not decoding errors).
    let names: std::collections::BTreeSet<_> = ours
        .iter()
        .zip(theirs)
        .filter(|(a, b)| a.record_type != b.record_type || a.rmgr != b.rmgr)
        .map(|(a, b)| {
            format!(
                "{}/{} vs {}/{}",
                a.rmgr, a.record_type, b.rmgr, b.record_type
            )
        })
        .collect();
    assert!(
        names.is_empty(),
        "PostgreSQL {version}: record type names differ: {names:?}"
    );
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(
            a, b,
            "PostgreSQL {version}: record #{i} differs (ours, then pg_walinspect)"
        );
    }
    assert_eq!(
        ours.len(),
        theirs.len(),
        "PostgreSQL {version}: record counts differ (ours, pg_walinspect)"
    );
}
