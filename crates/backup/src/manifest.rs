//! Backup manifests (`backup_manifest`, JSON, versions 1 and 2) and verification of a plain
//! backup against one, like `pg_verifybackup` (the WAL check is `wal_check.rs`, tar-format
//! backups `verify_tar.rs`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::Digest;

use crate::error::{BackupError, Result};
use crate::options::ChecksumAlgorithm;

/// Top-level entries `pg_verifybackup` ignores in a backup directory.
pub const IGNORED: [&str; 5] = [
    "backup_manifest",
    "pg_wal",
    "postgresql.auto.conf",
    "recovery.signal",
    "standby.signal",
];

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Path relative to the data directory (`Path`, or the bytes of `Encoded-Path`).
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// The checksum algorithm and checksum bytes; `None` for `NONE`.
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
}

/// A WAL range the backup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRange {
    /// Timeline.
    pub timeline: u32,
    /// Start LSN (text form, as in the manifest).
    pub start_lsn: String,
    /// End LSN.
    pub end_lsn: String,
}

/// A parsed backup manifest whose own checksum was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `PostgreSQL-Backup-Manifest-Version` (1, or 2 from PostgreSQL 17).
    pub version: u64,
    /// `System-Identifier` (version 2).
    pub system_identifier: Option<u64>,
    /// The files.
    pub files: Vec<ManifestFile>,
    /// The WAL ranges.
    pub wal_ranges: Vec<WalRange>,
}

fn bad(reason: impl Into<String>) -> BackupError {
    BackupError::Manifest(reason.into())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Manifest {
    /// Parses a manifest and checks its `Manifest-Checksum` (SHA-256 of everything up to the
    /// line that holds it).
    ///
    /// # Errors
    /// [`BackupError::Manifest`] for malformed JSON, a missing field or a checksum mismatch.
    pub fn parse(text: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let newlines: Vec<usize> = text
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| (b == b'\n').then_some(i))
            .collect();
        let Some(&covered) = newlines.len().checked_sub(2).and_then(|i| newlines.get(i)) else {
            return Err(bad("fewer than two lines"));
        };
        let expected = value
            .get("Manifest-Checksum")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no Manifest-Checksum"))?;
        let actual = hex(&sha2::Sha256::digest(&text[..=covered]));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(bad(format!(
                "manifest checksum mismatch: the manifest says {expected}, its contents hash to {actual}"
            )));
        }
        let version = value
            .get("PostgreSQL-Backup-Manifest-Version")
            .and_then(Value::as_u64)
            .filter(|v| (1..=2).contains(v))
            .ok_or_else(|| bad("PostgreSQL-Backup-Manifest-Version is not 1 or 2"))?;
        let system_identifier = value.get("System-Identifier").and_then(Value::as_u64);
        let files = value
            .get("Files")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no Files array"))?
            .iter()
            .map(parse_file)
            .collect::<Result<_>>()?;
        let wal_ranges = value
            .get("WAL-Ranges")
            .and_then(Value::as_array)
            .map(|ranges| ranges.iter().map(parse_wal_range).collect::<Result<_>>())
            .transpose()?
            .unwrap_or_default();
        Ok(Manifest {
            version,
            system_identifier,
            files,
            wal_ranges,
        })
    }

    /// Reads and parses `dir/backup_manifest`.
    ///
    /// # Errors
    /// I/O errors, and as [`parse`](Self::parse).
    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(crate::sink::MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(BackupError::io("reading", &path))?;
        Self::parse(&text)
    }
}

fn parse_file(entry: &Value) -> Result<ManifestFile> {
    let path = if let Some(path) = entry.get("Path").and_then(Value::as_str) {
        PathBuf::from(path)
    } else {
        let encoded = entry
            .get("Encoded-Path")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a file without Path or Encoded-Path"))?;
        let bytes = unhex(encoded).ok_or_else(|| bad(format!("Encoded-Path {encoded:?}")))?;
        PathBuf::from(OsStr::from_bytes(&bytes))
    };
    let size = entry
        .get("Size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(format!("{}: no Size", path.display())))?;
    let checksum = match entry.get("Checksum-Algorithm").and_then(Value::as_str) {
        None => None,
        Some(name) => {
            let algorithm: ChecksumAlgorithm = name
                .parse()
                .map_err(|_| bad(format!("algorithm {name:?}")))?;
            if algorithm == ChecksumAlgorithm::None {
                None
            } else {
                let text = entry
                    .get("Checksum")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{}: no Checksum", path.display())))?;
                let bytes = unhex(text).ok_or_else(|| bad(format!("Checksum {text:?}")))?;
                Some((algorithm, bytes))
            }
        }
    };
    Ok(ManifestFile {
        path,
        size,
        checksum,
    })
}

fn parse_wal_range(range: &Value) -> Result<WalRange> {
    let text = |key: &str| {
        range
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("a WAL range without {key}")))
    };
    Ok(WalRange {
        timeline: range
            .get("Timeline")
            .and_then(Value::as_u64)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad("a WAL range without Timeline"))?,
        start_lsn: text("Start-LSN")?,
        end_lsn: text("End-LSN")?,
    })
}

/// What is wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProblem {
    /// Its size differs from the manifest's.
    Size {
        /// The manifest's size.
        expected: u64,
        /// The file's.
        actual: u64,
    },
    /// Its checksum differs.
    Checksum {
        /// The algorithm.
        algorithm: ChecksumAlgorithm,
        /// The manifest's checksum (hex).
        expected: String,
        /// The file's (hex).
        actual: String,
    },
    /// It could not be read.
    Unreadable(String),
}

/// The outcome of [`verify_dir`] / [`verify_tar_dir`](crate::verify_tar_dir): empty lists
/// mean the backup matches its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Files in the manifest but not in the backup.
    pub missing: Vec<PathBuf>,
    /// Files in the backup but not in the manifest.
    pub extra: Vec<PathBuf>,
    /// Files whose size or checksum differ.
    pub changed: Vec<(PathBuf, FileProblem)>,
    /// Files checked.
    pub checked: usize,
}

impl VerifyReport {
    /// Whether nothing is missing, extra or changed.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

/// Checks every file of a plain backup in `dir` against `manifest`: presence, size, and
/// checksum in the manifest's algorithm. Follows the `pg_tblspc/<oid>` links; ignores
/// [`IGNORED`] at the top level, on disk and in the manifest. The WAL ranges are not checked.
///
/// # Errors
/// When `dir` cannot be listed.
pub fn verify_dir(dir: &Path, manifest: &Manifest) -> Result<VerifyReport> {
    let mut on_disk = BTreeMap::new();
    walk(dir, Path::new(""), &mut on_disk)?;
    let mut report = VerifyReport::default();
    for file in manifest.files.iter().filter(|f| !is_ignored(&f.path)) {
        let Some(size) = on_disk.remove(&file.path) else {
            report.missing.push(file.path.clone());
            continue;
        };
        report.check(file, size, |algorithm| {
            std::fs::File::open(dir.join(&file.path))
                .and_then(|mut f| checksum_of(&mut f, algorithm))
        });
    }
    report.extra = on_disk.into_keys().collect();
    Ok(report)
}

/// Whether `path` (relative to the data directory) is under one of [`IGNORED`].
pub(crate) fn is_ignored(path: &Path) -> bool {
    path.components()
        .next()
        .is_some_and(|first| IGNORED.iter().any(|i| OsStr::new(i) == first.as_os_str()))
}

impl VerifyReport {
    /// Compares a file of `size` bytes with the manifest's `file`; `content` computes its
    /// checksum (called only when the sizes match and the manifest has a checksum).
    pub(crate) fn check(
        &mut self,
        file: &ManifestFile,
        size: u64,
        content: impl FnOnce(ChecksumAlgorithm) -> std::io::Result<Vec<u8>>,
    ) {
        self.checked += 1;
        if size != file.size {
            self.changed.push((
                file.path.clone(),
                FileProblem::Size {
                    expected: file.size,
                    actual: size,
                },
            ));
            return;
        }
        let Some((algorithm, expected)) = &file.checksum else {
            return;
        };
        match content(*algorithm) {
            Ok(actual) if actual == *expected => {}
            Ok(actual) => self.changed.push((
                file.path.clone(),
                FileProblem::Checksum {
                    algorithm: *algorithm,
                    expected: hex(expected),
                    actual: hex(&actual),
                },
            )),
            Err(error) => self.changed.push((
                file.path.clone(),
                FileProblem::Unreadable(error.to_string()),
            )),
        }
    }
}

fn walk(dir: &Path, relative: &Path, files: &mut BTreeMap<PathBuf, u64>) -> Result<()> {
    let here = dir.join(relative);
    let entries = std::fs::read_dir(&here).map_err(BackupError::io("reading", &here))?;
    for entry in entries {
        let entry = entry.map_err(BackupError::io("reading", &here))?;
        let name = entry.file_name();
        if relative.as_os_str().is_empty() && IGNORED.iter().any(|i| OsStr::new(i) == name) {
            continue;
        }
        let path = relative.join(&name);
        let in_tablespaces = relative == Path::new("pg_tblspc");
        let metadata = if in_tablespaces {
            std::fs::metadata(entry.path())
        } else {
            std::fs::symlink_metadata(entry.path())
        }
        .map_err(BackupError::io("reading", entry.path()))?;
        if metadata.is_dir() {
            walk(dir, &path, files)?;
        } else if metadata.is_file() {
            files.insert(path, metadata.len());
        }
    }
    Ok(())
}

/// A file's checksum in the manifest's byte form (CRC-32C in the machine's byte order, as
/// PostgreSQL stores it).
///
/// # Errors
/// When the file cannot be read.
pub fn checksum(path: &Path, algorithm: ChecksumAlgorithm) -> std::io::Result<Vec<u8>> {
    checksum_of(&mut std::fs::File::open(path)?, algorithm)
}

/// The checksum of everything `file` reads, as [`checksum`].
pub(crate) fn checksum_of(
    file: &mut impl Read,
    algorithm: ChecksumAlgorithm,
) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut crc = 0u32;
    let mut sha224 = sha2::Sha224::new();
    let mut sha256 = sha2::Sha256::new();
    let mut sha384 = sha2::Sha384::new();
    let mut sha512 = sha2::Sha512::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        match algorithm {
            ChecksumAlgorithm::None => {}
            ChecksumAlgorithm::Crc32c => crc = crc32c::crc32c_append(crc, chunk),
            ChecksumAlgorithm::Sha224 => sha224.update(chunk),
            ChecksumAlgorithm::Sha256 => sha256.update(chunk),
            ChecksumAlgorithm::Sha384 => sha384.update(chunk),
            ChecksumAlgorithm::Sha512 => sha512.update(chunk),
        }
    }
    Ok(match algorithm {
        ChecksumAlgorithm::None => Vec::new(),
        ChecksumAlgorithm::Crc32c => crc.to_ne_bytes().to_vec(),
        ChecksumAlgorithm::Sha224 => sha224.finalize().to_vec(),
        ChecksumAlgorithm::Sha256 => sha256.finalize().to_vec(),
        ChecksumAlgorithm::Sha384 => sha384.finalize().to_vec(),
        ChecksumAlgorithm::Sha512 => sha512.finalize().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_text(files: &str) -> Vec<u8> {
        let body = format!(
            "{{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n{files}\n],\n\
             \"WAL-Ranges\": [\n{{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }}\n],\n"
        );
        let sum = hex(&sha2::Sha256::digest(body.as_bytes()));
        format!("{body}\"Manifest-Checksum\": \"{sum}\"}}\n").into_bytes()
    }

    #[test]
    fn parse_checks_the_manifest_checksum() {
        let text = manifest_text(
            "{ \"Path\": \"a\", \"Size\": 2, \"Last-Modified\": \"2020-01-01 00:00:00 GMT\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"00\" },\n\
             { \"Encoded-Path\": \"6e6f6e\", \"Size\": 0 }",
        );
        let manifest = Manifest::parse(&text).unwrap();
        assert_eq!(manifest.files.len(), 2);
        assert_eq!(manifest.files[1].path, Path::new("non"));
        assert_eq!(manifest.wal_ranges[0].end_lsn, "0/2000100");
        let mut flipped = text.clone();
        let at = flipped.iter().position(|&b| b == b'a').unwrap();
        flipped[at] = b'b';
        assert!(
            Manifest::parse(&flipped)
                .unwrap_err()
                .to_string()
                .contains("mismatch")
        );
        assert!(Manifest::parse(b"{}").is_err());
        assert!(Manifest::parse(b"not json").is_err());
    }

    #[test]
    fn verify_reports_missing_extra_and_changed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("same"), b"hello").unwrap();
        std::fs::write(dir.path().join("flipped"), b"hellp").unwrap();
        std::fs::write(dir.path().join("extra"), b"").unwrap();
        std::fs::write(dir.path().join("backup_manifest"), b"ignored").unwrap();
        let crc = hex(&crc32c::crc32c(b"hello").to_ne_bytes());
        let sha = hex(&sha2::Sha256::digest(b"hello"));
        let text = manifest_text(&format!(
            "{{ \"Path\": \"same\", \"Size\": 5, \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"{crc}\" }},\n\
             {{ \"Path\": \"flipped\", \"Size\": 5, \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"{sha}\" }},\n\
             {{ \"Path\": \"gone\", \"Size\": 1 }}"
        ));
        let manifest = Manifest::parse(&text).unwrap();
        let report = verify_dir(dir.path(), &manifest).unwrap();
        assert_eq!(report.missing, [PathBuf::from("gone")]);
        assert_eq!(report.extra, [PathBuf::from("extra")]);
        assert_eq!(report.changed.len(), 1);
        assert_eq!(report.changed[0].0, Path::new("flipped"));
        assert!(matches!(report.changed[0].1, FileProblem::Checksum { .. }));
        assert_eq!(report.checked, 2);
        assert!(!report.is_ok());
    }
}
