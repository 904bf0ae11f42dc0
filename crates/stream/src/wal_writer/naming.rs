//! WAL file names in a `pg_wal`-style directory, as `pg_receivewal` writes them.

use pg_walstream_codec::{Lsn, WalSegmentSize};

use super::Compression;

/// Suffix of a segment that is still being written.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// A WAL segment file found in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFile {
    /// Timeline of the segment.
    pub timeline: u32,
    /// Segment number (LSN / segment size).
    pub segment: u64,
    /// Whether it is a `.partial` (not yet complete) segment.
    pub partial: bool,
    /// The compression its suffix names.
    pub compression: Compression,
}

/// Parses a file name `TTTTTTTTLLLLLLLLSSSSSSSS[.gz|.lz4|.zst][.partial]`; `None` for anything
/// else (history files, temporary files, foreign files).
///
/// ```
/// use pg_walstream_codec::WalSegmentSize;
/// use pg_walstream_stream::wal_writer::{Compression, parse_segment_file_name};
/// let seg = WalSegmentSize::DEFAULT;
/// let file = parse_segment_file_name("000000020000000100000003.gz.partial", seg).unwrap();
/// assert_eq!((file.timeline, file.segment, file.partial), (2, 0x103, true));
/// assert!(matches!(file.compression, Compression::Gzip { .. }));
/// assert!(parse_segment_file_name("00000002.history", seg).is_none());
/// ```
pub fn parse_segment_file_name(name: &str, segment_size: WalSegmentSize) -> Option<SegmentFile> {
    let (name, partial) = match name.strip_suffix(PARTIAL_SUFFIX) {
        Some(rest) => (rest, true),
        None => (name, false),
    };
    let (hex, compression) = if let Some(rest) = name.strip_suffix(".gz") {
        (rest, Compression::Gzip { level: 0 })
    } else if let Some(rest) = name.strip_suffix(".lz4") {
        (rest, Compression::Lz4)
    } else if let Some(rest) = name.strip_suffix(".zst") {
        (rest, Compression::Zstd { level: 0 })
    } else {
        (name, Compression::None)
    };
    if hex.len() != 24 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| u32::from_str_radix(&hex[range], 16).ok();
    let timeline = field(0..8)?;
    let log = u64::from(field(8..16)?);
    let seg = u64::from(field(16..24)?);
    let per_log = segment_size.segments_per_log_id();
    if timeline == 0 || seg >= per_log {
        return None;
    }
    Some(SegmentFile {
        timeline,
        segment: log * per_log + seg,
        partial,
        compression,
    })
}

/// The file name of segment `segment` on `timeline` with `compression`'s suffix, without
/// [`PARTIAL_SUFFIX`].
pub fn segment_file_name(
    timeline: u32,
    segment: u64,
    segment_size: WalSegmentSize,
    compression: Compression,
) -> String {
    let start = Lsn(segment * u64::from(segment_size.bytes()));
    format!(
        "{}{}",
        start.segment_file_name(timeline, segment_size),
        compression.suffix()
    )
}

/// The name of the history file of `timeline` (`TTTTTTTT.history`).
pub fn history_file_name(timeline: u32) -> String {
    format!("{timeline:08X}.history")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let seg = WalSegmentSize::new(1 << 20).unwrap();
        for compression in [
            Compression::None,
            Compression::Gzip { level: 0 },
            Compression::Lz4,
            Compression::Zstd { level: 0 },
        ] {
            let name = segment_file_name(3, 0x1234, seg, compression);
            let parsed = parse_segment_file_name(&name, seg).unwrap();
            assert_eq!(
                (parsed.timeline, parsed.segment, parsed.partial),
                (3, 0x1234, false)
            );
            assert_eq!(parsed.compression.suffix(), compression.suffix());
            let partial = parse_segment_file_name(&format!("{name}.partial"), seg).unwrap();
            assert!(partial.partial);
        }
        assert_eq!(
            segment_file_name(1, 0x1_0003, WalSegmentSize::DEFAULT, Compression::None),
            "000000010000010000000003"
        );
        // A segment number beyond the per-log range, or timeline 0, is not a segment.
        assert!(
            parse_segment_file_name("000000010000000000000100", WalSegmentSize::DEFAULT).is_none()
        );
        assert!(parse_segment_file_name("000000000000000000000001", seg).is_none());
        assert!(parse_segment_file_name("00000001000000000000000G", seg).is_none());
        assert!(parse_segment_file_name("000000010000000000000001.tmp", seg).is_none());
        assert_eq!(history_file_name(0x1A), "0000001A.history");
    }
}
