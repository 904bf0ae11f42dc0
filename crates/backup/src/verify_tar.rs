//! Verification of a tar-format backup against its manifest, like `pg_verifybackup` 18 does
//! for `-F tar` backups: every member of `base.tar` and of each `<oid>.tar` (compressed ones
//! decompressed by their suffix), streamed, never extracted.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::compress::decoder;
use crate::error::{BackupError, Result};
use crate::manifest::{Manifest, ManifestFile, VerifyReport, checksum_of, is_ignored};
use crate::options::CompressionMethod;

/// Where an archive's members live in the data directory: `base.tar` at its top,
/// `<oid>.tar` under `pg_tblspc/<oid>/`; `None` for files that are not backup archives
/// (`pg_wal.tar`, `backup_manifest`).
fn archive_prefix(file_name: &str) -> Option<PathBuf> {
    let stem = [".gz", ".lz4", ".zst", ""]
        .into_iter()
        .find_map(|suffix| file_name.strip_suffix(suffix)?.strip_suffix(".tar"))?;
    if stem == "base" {
        Some(PathBuf::new())
    } else if !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()) {
        Some(Path::new("pg_tblspc").join(stem))
    } else {
        None
    }
}

/// Checks the archives of a tar-format backup in `dir` against `manifest`: every regular
/// member's size and checksum, manifest files no archive has (missing), members the manifest
/// does not list (extra). [`IGNORED`](crate::IGNORED) paths are skipped as in [`verify_dir`](
/// crate::verify_dir); `pg_wal.tar` is not read (use [`verify_wal`](crate::verify_wal) on
/// its extracted segments).
///
/// # Errors
/// When `dir` cannot be listed or an archive cannot be read, decompressed or parsed.
pub fn verify_tar_dir(dir: &Path, manifest: &Manifest) -> Result<VerifyReport> {
    let mut expected: BTreeMap<&Path, &ManifestFile> = manifest
        .files
        .iter()
        .filter(|f| !is_ignored(&f.path))
        .map(|f| (f.path.as_path(), f))
        .collect();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .map_err(BackupError::io("reading", dir))?;
    names.sort();
    let mut report = VerifyReport::default();
    for name in names {
        let Some(prefix) = archive_prefix(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let failed = |reason: &'static str| {
            let archive = name.clone();
            move |source: io::Error| BackupError::Archive {
                archive,
                reason: reason.to_owned(),
                source: Some(source),
            }
        };
        let file = std::fs::File::open(&path).map_err(BackupError::io("opening", &path))?;
        let input = decoder(
            CompressionMethod::from_file_name(&name),
            BufReader::with_capacity(256 * 1024, file),
        )
        .map_err(failed("decompressing"))?;
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries().map_err(failed("reading"))? {
            let mut entry = entry.map_err(failed("reading"))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let member = prefix.join(entry.path().map_err(failed("reading"))?);
            if is_ignored(&member) {
                continue;
            }
            let size = entry.size();
            match expected.remove(member.as_path()) {
                Some(file) => report.check(file, size, |algorithm| {
                    checksum_of(&mut (&mut entry).take(size), algorithm)
                }),
                None => report.extra.push(member),
            }
        }
    }
    report.missing = expected.into_keys().map(Path::to_path_buf).collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::archive_prefix;
    use std::path::{Path, PathBuf};

    #[test]
    fn archives_and_their_places() {
        assert_eq!(archive_prefix("base.tar"), Some(PathBuf::new()));
        assert_eq!(archive_prefix("base.tar.zst"), Some(PathBuf::new()));
        assert_eq!(
            archive_prefix("16384.tar.gz").as_deref(),
            Some(Path::new("pg_tblspc/16384"))
        );
        assert_eq!(archive_prefix("pg_wal.tar"), None);
        assert_eq!(archive_prefix("backup_manifest"), None);
        assert_eq!(archive_prefix(".tar"), None);
    }
}
