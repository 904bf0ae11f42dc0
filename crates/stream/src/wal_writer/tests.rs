use std::io::Read as _;

use super::*;

const MIB: usize = 1 << 20;

fn seg() -> WalSegmentSize {
    WalSegmentSize::new(1 << 20).unwrap()
}

fn pattern(start: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((start + i) % 251) as u8).collect()
}

fn options(compression: Compression, sync: SyncPolicy) -> WalWriterOptions {
    let mut options = WalWriterOptions::new(seg());
    options.compression = compression;
    options.sync = sync;
    options
}

fn decompress(path: &Path, compression: Compression) -> Vec<u8> {
    let file = File::open(path).unwrap();
    let mut out = Vec::new();
    match compression {
        Compression::None => {
            let mut file = file;
            file.read_to_end(&mut out).unwrap();
        }
        Compression::Gzip { .. } => {
            flate2::read::GzDecoder::new(file)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(file)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zstd { .. } => {
            zstd::Decoder::new(file)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
        }
    }
    out
}

#[test]
fn writes_segments_across_boundaries_in_every_compression() {
    for compression in [
        Compression::None,
        Compression::Gzip { level: 1 },
        Compression::Lz4,
        Compression::Zstd { level: 1 },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            WalWriter::new(dir.path(), options(compression, SyncPolicy::Never)).unwrap();
        let start = 3 * MIB as u64;
        let mut at = start;
        // Odd-sized chunks crossing two segment boundaries.
        for len in [100_000usize, MIB, 700_000, 300_000] {
            writer.write(1, Lsn(at), &pattern(at, len)).unwrap();
            at += len as u64;
        }
        assert_eq!(writer.written_lsn(), Lsn(at));
        assert_eq!(
            writer.flushed_lsn(),
            Lsn(5 * MIB as u64),
            "flushed at the last complete segment"
        );
        assert_eq!(
            writer.flush().unwrap(),
            Lsn(5 * MIB as u64),
            "no fsync of the open segment"
        );
        writer.close_segment().unwrap();
        assert_eq!(writer.flushed_lsn(), Lsn(at));
        for (segment, complete) in [(3u64, true), (4, true), (5, false)] {
            let mut name = segment_file_name(1, segment, seg(), compression);
            if !complete {
                name.push_str(PARTIAL_SUFFIX);
            }
            let bytes = decompress(&dir.path().join(&name), compression);
            let seg_start = segment * MIB as u64;
            let expected_len = if complete {
                MIB
            } else {
                (at - seg_start) as usize
            };
            assert_eq!(bytes, pattern(seg_start, expected_len), "{name}");
        }
        let resume = find_resume_point(dir.path(), seg()).unwrap().unwrap();
        assert_eq!(
            resume,
            ResumePoint {
                timeline: 1,
                lsn: Lsn(5 * MIB as u64),
                partial: true
            }
        );
    }
}

#[test]
fn rejects_gaps_repeats_and_unaligned_starts_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer =
        WalWriter::new(dir.path(), options(Compression::None, SyncPolicy::Never)).unwrap();
    let error = writer.write(1, Lsn(0x10_0010), b"x").unwrap_err();
    assert!(
        matches!(
            error,
            WalWriterError::Unaligned {
                lsn: Lsn(0x10_0010)
            }
        ),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
    writer.write(1, Lsn(0x10_0000), b"abc").unwrap();
    for (timeline, lsn) in [(1, 0x10_0002), (1, 0x10_0004), (2, 0x10_0003)] {
        let error = writer.write(timeline, Lsn(lsn), b"d").unwrap_err();
        assert!(
            matches!(
                error,
                WalWriterError::NotContiguous {
                    expected: Lsn(0x10_0003),
                    ..
                }
            ),
            "{error}"
        );
    }
    writer.write(1, Lsn(0x10_0003), b"d").unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("000000010000000000000001.partial")).unwrap(),
        b"abcd"
    );
}

#[test]
fn synchronous_flush_advances_the_flushed_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = WalWriter::new(
        dir.path(),
        options(Compression::None, SyncPolicy::Synchronous),
    )
    .unwrap();
    writer.write(1, Lsn(0x10_0000), b"abc").unwrap();
    assert_eq!(writer.flushed_lsn(), Lsn::INVALID);
    assert_eq!(writer.flush().unwrap(), Lsn(0x10_0003));
    let mut per_segment = WalWriter::new(
        dir.path(),
        options(Compression::None, SyncPolicy::PerSegment),
    )
    .unwrap();
    per_segment.write(1, Lsn(0x30_0000), b"abc").unwrap();
    assert_eq!(
        per_segment.flush().unwrap(),
        Lsn::INVALID,
        "per-segment: only complete segments count"
    );
}

#[test]
fn resume_point_prefers_the_newest_segment_and_timeline() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(find_resume_point(dir.path(), seg()).unwrap(), None);
    for name in [
        "000000010000000000000003",
        "000000010000000000000004.partial",
        "000000020000000000000004.partial",
        "00000002.history",
        "unrelated.txt",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let resume = find_resume_point(dir.path(), seg()).unwrap().unwrap();
    assert_eq!(
        resume,
        ResumePoint {
            timeline: 2,
            lsn: Lsn(4 * MIB as u64),
            partial: true
        }
    );
    std::fs::write(dir.path().join("000000020000000000000004.zst"), b"").unwrap();
    let resume = find_resume_point(dir.path(), seg()).unwrap().unwrap();
    assert_eq!(
        resume,
        ResumePoint {
            timeline: 2,
            lsn: Lsn(5 * MIB as u64),
            partial: false
        }
    );
}

#[test]
fn history_files_and_unwritable_directories() {
    let dir = tempfile::tempdir().unwrap();
    let writer = WalWriter::new(dir.path(), WalWriterOptions::new(seg())).unwrap();
    writer
        .write_history(
            "00000002.history",
            b"1\t0/3000000\tno recovery target specified\n",
        )
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("00000002.history")).unwrap(),
        b"1\t0/3000000\tno recovery target specified\n"
    );
    let missing = dir.path().join("missing");
    let error = WalWriter::new(&missing, WalWriterOptions::new(seg())).unwrap_err();
    assert!(matches!(error, WalWriterError::Io { .. }), "{error}");
    assert!(!missing.exists());
}

/// A segment's first page: a long header with `sysid`, then `len - 40` pattern bytes.
fn first_page(sysid: u64, len: usize) -> Vec<u8> {
    let mut page = pattern(0, len);
    page[..40].fill(0);
    page[2] = 0x02; // XLP_LONG_HEADER
    page[24..32].copy_from_slice(&sysid.to_le_bytes());
    page
}

#[test]
fn system_identifier_of_every_segment_in_every_compression() {
    for compression in [
        Compression::None,
        Compression::Gzip { level: 1 },
        Compression::Lz4,
        Compression::Zstd { level: 1 },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            WalWriter::new(dir.path(), options(compression, SyncPolicy::Never)).unwrap();
        let mut segment = first_page(42, MIB);
        writer.write(1, Lsn(MIB as u64), &segment).unwrap();
        segment.truncate(8192);
        writer.write(1, Lsn(2 * MIB as u64), &segment).unwrap();
        writer.close_segment().unwrap();
        drop(writer);
        assert_eq!(check_system_identifier(dir.path(), seg(), 42).unwrap(), 2);
        match check_system_identifier(dir.path(), seg(), 43) {
            Err(WalWriterError::OtherSystem {
                found, expected, ..
            }) => assert_eq!((found, expected), (42, 43), "{compression:?}"),
            other => panic!("{compression:?}: {other:?}"),
        }
    }
    // A .partial too short for its header is skipped (it is rewritten on resume); a complete
    // segment without a long header is not WAL.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("000000010000000000000003.partial"),
        b"short",
    )
    .unwrap();
    assert_eq!(check_system_identifier(dir.path(), seg(), 42).unwrap(), 0);
    std::fs::write(dir.path().join("000000010000000000000001"), vec![0u8; 8192]).unwrap();
    assert!(matches!(
        check_system_identifier(dir.path(), seg(), 42),
        Err(WalWriterError::NotASegment { .. })
    ));
}
