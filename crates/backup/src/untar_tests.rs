use super::*;

/// Feeds `tar` in chunks of the given sizes (cycled), then finishes.
fn extract_in_chunks(
    tar: &[u8],
    target: &Path,
    mappings: &[TablespaceMapping],
    sizes: &[usize],
) -> io::Result<()> {
    let mut extractor = Extractor::new(target.to_path_buf(), mappings.to_vec());
    let mut rest = tar;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        extractor.push(chunk)?;
        rest = tail;
    }
    extractor.finish()
}

/// PostgreSQL's archives end with two zero blocks.
fn finish(builder: tar::Builder<Vec<u8>>) -> Vec<u8> {
    builder.into_inner().unwrap()
}

fn file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32, mtime: u64) {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(mtime);
    builder.append_data(&mut header, path, data).unwrap();
}

fn link(builder: &mut tar::Builder<Vec<u8>>, path: &str, target: &Path) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    builder.append_link(&mut header, path, target).unwrap();
}

#[test]
fn files_and_directories_keep_bytes_mode_and_mtime_in_any_chunking() {
    use std::os::unix::fs::PermissionsExt as _;
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o750);
    builder.append_data(&mut dir, "base/1", &[][..]).unwrap();
    file(&mut builder, "base/1/1259", &big, 0o640, 1_700_000_000);
    file(&mut builder, "PG_VERSION", b"", 0o600, 1_600_000_000);
    file(
        &mut builder,
        "global/pg_control",
        b"ok",
        0o600,
        1_650_000_000,
    );
    let tar = finish(builder);
    for sizes in [&[1][..], &[7, 511, 513], &[512], &[32 * 1024], &[tar.len()]] {
        let target = tempfile::tempdir().unwrap();
        extract_in_chunks(&tar, target.path(), &[], sizes).unwrap();
        let path = target.path().join("base/1/1259");
        assert_eq!(std::fs::read(&path).unwrap(), big, "{sizes:?}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(
            meta.modified().unwrap(),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
        );
        let dir_mode = std::fs::metadata(target.path().join("base/1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o7777, 0o750);
        assert_eq!(
            std::fs::read(target.path().join("PG_VERSION")).unwrap(),
            b""
        );
        assert_eq!(
            std::fs::read(target.path().join("global/pg_control")).unwrap(),
            b"ok"
        );
    }
}

#[test]
fn what_follows_the_end_of_the_archive_is_dropped() {
    let mut builder = tar::Builder::new(Vec::new());
    file(&mut builder, "a", b"x", 0o600, 0);
    let mut tar = finish(builder);
    tar.extend_from_slice(b"not a header at all");
    let target = tempfile::tempdir().unwrap();
    extract_in_chunks(&tar, target.path(), &[], &[100]).unwrap();
    assert_eq!(std::fs::read(target.path().join("a")).unwrap(), b"x");
}

#[test]
fn tablespace_links_follow_the_mapping_and_nothing_is_written_through_them() {
    let target = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let mappings = [format!("/srv/ts={}", outside.path().display())
        .parse()
        .unwrap()];
    let mut builder = tar::Builder::new(Vec::new());
    // With the trailing slash some versions write.
    link(&mut builder, "pg_tblspc/16385/", Path::new("/srv/ts"));
    file(&mut builder, "./global/pg_control", b"ok", 0o600, 0);
    let tar = finish(builder);
    extract_in_chunks(&tar, target.path(), &mappings, &[300]).unwrap();
    assert_eq!(
        std::fs::read_link(target.path().join("pg_tblspc/16385")).unwrap(),
        outside.path()
    );
    assert_eq!(
        std::fs::read(target.path().join("global/pg_control")).unwrap(),
        b"ok"
    );

    let target = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    link(&mut builder, "pg_tblspc/16385", Path::new("/srv/ts"));
    file(&mut builder, "pg_tblspc/16385/planted", b"x", 0o600, 0);
    let tar = finish(builder);
    let error = extract_in_chunks(&tar, target.path(), &mappings, &[512]).unwrap_err();
    assert!(
        error.to_string().contains("through a tablespace link"),
        "{error}"
    );
    assert!(!outside.path().join("planted").exists());
}

#[test]
fn links_elsewhere_hard_links_and_escaping_paths_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    link(&mut builder, "escape", outside.path());
    file(&mut builder, "escape/planted", b"x", 0o600, 0);
    let tar = finish(builder);
    let target = tempfile::tempdir().unwrap();
    let error = extract_in_chunks(&tar, target.path(), &[], &[512]).unwrap_err();
    assert!(error.to_string().contains("outside pg_tblspc"), "{error}");
    assert!(!outside.path().join("planted").exists());

    let mut builder = tar::Builder::new(Vec::new());
    let mut hard = tar::Header::new_ustar();
    hard.set_entry_type(tar::EntryType::Link);
    hard.set_size(0);
    builder
        .append_link(&mut hard, "hard", "PG_VERSION")
        .unwrap();
    let error = extract_in_chunks(&finish(builder), target.path(), &[], &[512]).unwrap_err();
    assert!(error.to_string().contains("hard link"), "{error}");

    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_entry_type(tar::EntryType::Regular);
    header.as_gnu_mut().unwrap().name[..5].copy_from_slice(b"../x\0");
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"x"[..]).unwrap();
    let error = extract_in_chunks(&finish(builder), target.path(), &[], &[512]).unwrap_err();
    assert!(error.to_string().contains("not a relative path"), "{error}");
    assert!(!target.path().parent().unwrap().join("x").exists());
}

#[test]
fn corrupt_and_truncated_archives_are_errors() {
    let mut builder = tar::Builder::new(Vec::new());
    file(&mut builder, "base/1/1259", &[7; 1000], 0o600, 0);
    let tar = finish(builder);

    let mut flipped = tar.clone();
    flipped[10] ^= 1;
    let target = tempfile::tempdir().unwrap();
    let error = extract_in_chunks(&flipped, target.path(), &[], &[512]).unwrap_err();
    assert!(error.to_string().contains("checksum"), "{error}");

    for cut in [100, 512 + 999, 512 + 1000 + 3] {
        let target = tempfile::tempdir().unwrap();
        let error = extract_in_chunks(&tar[..cut], target.path(), &[], &[512]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
    }
    // A stream that stops right after a complete entry (no end-of-archive blocks) is whole.
    let target = tempfile::tempdir().unwrap();
    extract_in_chunks(&tar[..512 + 1024], target.path(), &[], &[512]).unwrap();

    let mut builder = tar::Builder::new(Vec::new());
    let mut fifo = tar::Header::new_ustar();
    fifo.set_entry_type(tar::EntryType::Fifo);
    fifo.set_size(0);
    builder.append_data(&mut fifo, "fifo", &[][..]).unwrap();
    let target = tempfile::tempdir().unwrap();
    let error = extract_in_chunks(&finish(builder), target.path(), &[], &[512]).unwrap_err();
    assert!(
        error.to_string().contains("unsupported entry type"),
        "{error}"
    );
}

#[test]
fn numbers_in_octal_and_base_256() {
    assert_eq!(number(b"0000644\0"), Some(0o644));
    assert_eq!(number(b" 17 \0\0"), Some(0o17));
    assert_eq!(number(b"\0\0\0"), Some(0));
    assert_eq!(number(b"0009\0"), None);
    let mut big = [0u8; 12];
    big[0] = 0x80;
    big[7] = 2; // 2 · 256⁴ = 8 GiB
    assert_eq!(number(&big), Some(8 << 30));
    assert_eq!(number(&[0xff; 12]), None);
}
