//! Tar archives this client writes itself, for `-F tar`: the main archive rewritten with
//! `-R`'s recovery configuration injected (as pg_basebackup does: `standby.signal` added, the
//! settings appended to `postgresql.auto.conf`), and `pg_wal.tar` from a directory of WAL
//! segments (`-X stream`).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use crate::compress::Encoder;
use crate::error::{BackupError, Result};
use crate::options::Compression;

/// The archive member `-R` extends.
const AUTO_CONF: &[u8] = b"postgresql.auto.conf";
/// The archive member `-R` adds.
const STANDBY_SIGNAL: &[u8] = b"standby.signal";

/// A header for a new regular file of `size` bytes, mode 0600, like the server's members.
fn file_header(name: &[u8], size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(String::from_utf8_lossy(name).as_ref())?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_cksum();
    Ok(header)
}

/// Copies the tar stream `input` to `output` member by member, appending `recovery_lines` to
/// `postgresql.auto.conf` (a new one if the archive has none) and adding an empty
/// `standby.signal` (replacing one the archive has); ends with the end-of-archive blocks.
/// Headers are copied as they are (the server writes plain ustar headers); member data is
/// streamed, never held whole — except `postgresql.auto.conf`, a small file.
pub(crate) fn inject_recovery<R: Read, W: Write>(
    input: R,
    output: W,
    recovery_lines: &str,
) -> io::Result<W> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    let mut auto_conf_seen = false;
    let mut mtime = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        mtime = mtime.max(header.mtime().unwrap_or(0));
        let path = entry.path_bytes().into_owned();
        if path == AUTO_CONF {
            let mut content = Vec::new();
            entry.read_to_end(&mut content)?;
            content.extend_from_slice(recovery_lines.as_bytes());
            let mut header = header;
            header.set_size(content.len() as u64);
            header.set_cksum();
            builder.append(&header, content.as_slice())?;
            auto_conf_seen = true;
        } else if path != STANDBY_SIGNAL {
            builder.append(&header, &mut entry)?;
        }
    }
    if !auto_conf_seen {
        let header = file_header(AUTO_CONF, recovery_lines.len() as u64, mtime)?;
        builder.append(&header, recovery_lines.as_bytes())?;
    }
    builder.append(&file_header(STANDBY_SIGNAL, 0, mtime)?, io::empty())?;
    builder.into_inner()
}

/// Writes every file of `wal_dir` (WAL segments, `.history` files; sorted by name) into a new
/// tar archive at `archive`, compressed with `compression`, synced when `sync`: `pg_wal.tar`
/// of a tar-format backup, to be extracted into the restored data directory's `pg_wal/`.
///
/// # Errors
/// [`BackupError::Io`] naming the file that could not be read or written.
pub fn write_wal_archive(
    wal_dir: &Path,
    archive: &Path,
    compression: Option<&Compression>,
    sync: bool,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(wal_dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(BackupError::io("reading", wal_dir))?;
    names.sort();
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(archive)
        .map_err(BackupError::io("creating", archive))?;
    let writing = BackupError::io("writing", archive);
    let encoder = Encoder::new(compression, BufWriter::with_capacity(256 * 1024, file))
        .map_err(BackupError::io("writing", archive))?;
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Deterministic);
    for name in names {
        let path = wal_dir.join(&name);
        let mut source = File::open(&path).map_err(BackupError::io("reading", &path))?;
        let size = source
            .metadata()
            .map_err(BackupError::io("reading", &path))?
            .len();
        let header = file_header(name.as_encoded_bytes(), size, 0)
            .map_err(BackupError::io("naming", &path))?;
        builder
            .append(&header, &mut source)
            .map_err(BackupError::io("archiving", &path))?;
    }
    let finished = builder
        .into_inner()
        .and_then(Encoder::finish)
        .and_then(|mut writer| writer.flush().map(|()| writer))
        .and_then(|writer| writer.into_inner().map_err(io::IntoInnerError::into_error));
    let file = finished.map_err(writing)?;
    if sync {
        file.sync_all()
            .map_err(BackupError::io("syncing", archive))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in members {
            builder
                .append(
                    &file_header(name.as_bytes(), data.len() as u64, 7).unwrap(),
                    *data,
                )
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn members(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.path().unwrap().display().to_string(), data)
            })
            .collect()
    }

    #[test]
    fn recovery_is_injected_into_the_main_archive() {
        let big = vec![b'x'; 70_000];
        let input = archive(&[
            ("PG_VERSION", b"17\n"),
            ("postgresql.auto.conf", b"# kept\n"),
            ("base/1/1259", &big),
            ("standby.signal", b"old"),
        ]);
        let output =
            inject_recovery(input.as_slice(), Vec::new(), "primary_conninfo = 'x'\n").unwrap();
        let got = members(&output);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "PG_VERSION",
                "postgresql.auto.conf",
                "base/1/1259",
                "standby.signal"
            ]
        );
        assert_eq!(got[1].1, b"# kept\nprimary_conninfo = 'x'\n");
        assert_eq!(got[2].1, big);
        assert!(got[3].1.is_empty());
        // An archive without postgresql.auto.conf gets one.
        let bare = archive(&[("PG_VERSION", b"14\n")]);
        let got = members(&inject_recovery(bare.as_slice(), Vec::new(), "a = 'b'\n").unwrap());
        assert_eq!(
            got[1],
            ("postgresql.auto.conf".to_owned(), b"a = 'b'\n".to_vec())
        );
        assert_eq!(got[2].0, "standby.signal");
        // Damage is an error, not a panic.
        let mut damaged = archive(&[("PG_VERSION", b"17\n")]);
        damaged[148] ^= 0xff; // the header checksum
        assert!(inject_recovery(damaged.as_slice(), Vec::new(), "").is_err());
    }

    #[test]
    fn wal_archive_holds_the_segments_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        std::fs::create_dir(&wal).unwrap();
        std::fs::write(wal.join("000000010000000000000003"), b"three").unwrap();
        std::fs::write(wal.join("000000010000000000000002"), b"two").unwrap();
        let tar = dir.path().join("pg_wal.tar");
        write_wal_archive(&wal, &tar, None, false).unwrap();
        let got = members(&std::fs::read(&tar).unwrap());
        assert_eq!(
            got,
            [
                ("000000010000000000000002".to_owned(), b"two".to_vec()),
                ("000000010000000000000003".to_owned(), b"three".to_vec()),
            ]
        );
        assert!(
            write_wal_archive(&wal, &tar, None, false).is_err(),
            "exists"
        );
    }
}
