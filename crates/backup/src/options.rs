//! `BASE_BACKUP` options and the command text for the connected server's version: the
//! PostgreSQL 15+ option list, or PostgreSQL 14's keywords.

use core::fmt::{self, Write as _};

use bytes::Bytes;

use crate::error::{BackupError, Result};

/// Where the server sends the backup (`TARGET`, 15+).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Target {
    /// To this client, over the connection (the only choice on 14).
    #[default]
    Client,
    /// Into a directory on the server host (`TARGET 'server'`, `TARGET_DETAIL`): the stream
    /// then carries no archive data, only archive starts, progress and the manifest start.
    Server(String),
    /// Nowhere: the server reads everything and discards it (for testing and benchmarks).
    Blackhole,
}

/// `CHECKPOINT 'fast' | 'spread'` (14: `FAST` or nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checkpoint {
    /// Request an immediate checkpoint.
    Fast,
    /// Wait for the next checkpoint spread over `checkpoint_completion_target`.
    #[default]
    Spread,
}

/// A compression method the server or this client applies to archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionMethod {
    /// gzip (levels 1–9).
    Gzip,
    /// LZ4 frame format (levels 1–12).
    Lz4,
    /// Zstandard (levels -131072–22; `workers`, and `long` on 16+).
    Zstd,
}

impl CompressionMethod {
    /// The name `BASE_BACKUP` and pg_basebackup use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// The file suffix of an archive compressed with it (`.gz`, `.lz4`, `.zst`).
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Gzip => ".gz",
            Self::Lz4 => ".lz4",
            Self::Zstd => ".zst",
        }
    }

    /// The method whose suffix ends `name` (`base.tar.gz` → gzip).
    pub fn from_file_name(name: &str) -> Option<Self> {
        [Self::Gzip, Self::Lz4, Self::Zstd]
            .into_iter()
            .find(|method| name.ends_with(method.suffix()))
    }

    const fn levels(self) -> (i32, i32) {
        match self {
            Self::Gzip => (1, 9),
            Self::Lz4 => (1, 12),
            Self::Zstd => (-131_072, 22),
        }
    }
}

impl core::str::FromStr for CompressionMethod {
    type Err = BackupError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "gzip" => Ok(Self::Gzip),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            other => Err(BackupError::InvalidOption {
                option: "COMPRESSION",
                reason: format!("unknown method {other:?}: expected gzip, lz4 or zstd"),
            }),
        }
    }
}

/// A compression method with its details (`COMPRESSION`, `COMPRESSION_DETAIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// The method.
    pub method: CompressionMethod,
    /// The level; `None` for the method's default.
    pub level: Option<i32>,
    /// zstd worker threads.
    pub workers: Option<u32>,
    /// zstd long-distance matching (16+).
    pub long: bool,
}

impl Compression {
    /// `method` at its default level.
    pub const fn new(method: CompressionMethod) -> Self {
        Compression {
            method,
            level: None,
            workers: None,
            long: false,
        }
    }

    /// Checks the details against the method (levels as in PostgreSQL's `compression.c`).
    ///
    /// # Errors
    /// [`BackupError::InvalidOption`] naming what is out of range.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| BackupError::InvalidOption {
            option: "COMPRESSION_DETAIL",
            reason,
        };
        let name = self.method.name();
        if let Some(level) = self.level {
            let (low, high) = self.method.levels();
            if !(low..=high).contains(&level) {
                return Err(invalid(format!(
                    "{name} level {level} is outside {low}..={high}"
                )));
            }
        }
        if self.method != CompressionMethod::Zstd {
            if self.workers.is_some() {
                return Err(invalid(format!("{name} does not accept a worker count")));
            }
            if self.long {
                return Err(invalid(format!(
                    "{name} does not support long-distance mode"
                )));
            }
        }
        Ok(())
    }

    /// The `COMPRESSION_DETAIL` text (`level=3,workers=2,long`), empty for none.
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(level) = self.level {
            parts.push(format!("level={level}"));
        }
        if let Some(workers) = self.workers {
            parts.push(format!("workers={workers}"));
        }
        if self.long {
            parts.push("long".to_owned());
        }
        parts.join(",")
    }
}

/// `MANIFEST 'yes' | 'no' | 'force-encode'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestOption {
    /// A manifest with UTF-8 paths as text (the default).
    #[default]
    Yes,
    /// No manifest.
    No,
    /// Every path hex-encoded (`Encoded-Path`).
    ForceEncode,
}

/// A file checksum algorithm of backup manifests (`MANIFEST_CHECKSUMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// No checksums.
    None,
    /// CRC-32C (the default).
    Crc32c,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl ChecksumAlgorithm {
    /// The name manifests and `MANIFEST_CHECKSUMS` use (`CRC32C`, `SHA256`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Crc32c => "CRC32C",
            Self::Sha224 => "SHA224",
            Self::Sha256 => "SHA256",
            Self::Sha384 => "SHA384",
            Self::Sha512 => "SHA512",
        }
    }
}

impl core::str::FromStr for ChecksumAlgorithm {
    type Err = BackupError;

    /// Case-insensitive, as the server accepts it.
    fn from_str(text: &str) -> Result<Self> {
        let all = [
            Self::None,
            Self::Crc32c,
            Self::Sha224,
            Self::Sha256,
            Self::Sha384,
            Self::Sha512,
        ];
        all.into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| BackupError::InvalidOption {
                option: "MANIFEST_CHECKSUMS",
                reason: format!(
                    "unknown algorithm {text:?}: expected NONE, CRC32C, SHA224, SHA256, SHA384 or SHA512"
                ),
            })
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to ask `BASE_BACKUP` for. Defaults: label `pg-walstream base backup`, to the client,
/// spread checkpoint, no WAL, wait for WAL archiving, no compression, checksums verified, a
/// manifest with CRC-32C, a full (not incremental) backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOptions {
    /// `LABEL`.
    pub label: String,
    /// `TARGET` (15+ for anything but [`Target::Client`]).
    pub target: Target,
    /// `PROGRESS`: the server first sizes every tablespace, for a progress total.
    pub progress: bool,
    /// `CHECKPOINT`.
    pub checkpoint: Checkpoint,
    /// `WAL`: include the WAL the backup needs in the main archive (`-X fetch`).
    pub wal: bool,
    /// `WAIT`: wait until the WAL is archived (14: `NOWAIT` when false).
    pub wait: bool,
    /// `COMPRESSION` on the server (15+).
    pub compression: Option<Compression>,
    /// `MAX_RATE` in kB/s (32–1048576).
    pub max_rate: Option<u32>,
    /// `TABLESPACE_MAP`: a `tablespace_map` file instead of `pg_tblspc` symlinks.
    pub tablespace_map: bool,
    /// `VERIFY_CHECKSUMS` (14: `NOVERIFY_CHECKSUMS` when false).
    pub verify_checksums: bool,
    /// `MANIFEST`.
    pub manifest: ManifestOption,
    /// `MANIFEST_CHECKSUMS`; `None` for the server's default (CRC-32C).
    pub manifest_checksums: Option<ChecksumAlgorithm>,
    /// `INCREMENTAL` (17+): the `backup_manifest` of the backup this one builds on. It is
    /// sent with `UPLOAD_MANIFEST` on the same connection first; the server then sends only
    /// the blocks changed since, and needs `summarize_wal = on` (since before that backup).
    /// Combine the result with `pg_combinebackup`.
    pub incremental: Option<Bytes>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            label: "pg-walstream base backup".to_owned(),
            target: Target::Client,
            progress: false,
            checkpoint: Checkpoint::Spread,
            wal: false,
            wait: true,
            compression: None,
            max_rate: None,
            tablespace_map: false,
            verify_checksums: true,
            manifest: ManifestOption::Yes,
            manifest_checksums: None,
            incremental: None,
        }
    }
}

/// `'text'` with quotes doubled.
fn quote(text: &str, option: &'static str) -> Result<String> {
    if text.contains('\0') {
        return Err(BackupError::InvalidOption {
            option,
            reason: "contains a NUL byte".to_owned(),
        });
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

impl BackupOptions {
    /// Whether the server sends a manifest.
    pub fn wants_manifest(&self) -> bool {
        self.manifest != ManifestOption::No
    }

    /// The `BASE_BACKUP` command for a server of `server_version_num` (e.g. `150004`): the
    /// option list on 15+, the legacy keywords on 14.
    ///
    /// # Errors
    /// [`BackupError::Unsupported`] (naming the option, the version it needs and the server's)
    /// for an option the server does not have; [`BackupError::InvalidOption`] for a value no
    /// server accepts.
    pub fn command(&self, server_version_num: u32) -> Result<String> {
        let major = server_version_num / 10_000;
        let server = format!("{major}.{}", server_version_num % 10_000);
        let needs = |option: &'static str, needs: u32| {
            if major >= needs {
                Ok(())
            } else {
                Err(BackupError::Unsupported {
                    option,
                    needs,
                    server: server.clone(),
                })
            }
        };
        if major < 14 {
            needs("BASE_BACKUP of this client", 14)?;
        }
        if let Some(rate) = self.max_rate
            && !(32..=1_048_576).contains(&rate)
        {
            return Err(BackupError::InvalidOption {
                option: "MAX_RATE",
                reason: format!("{rate} kB/s is outside 32..=1048576"),
            });
        }
        if let Some(compression) = &self.compression {
            needs("COMPRESSION", 15)?;
            compression.validate()?;
            if compression.long {
                needs("COMPRESSION_DETAIL long", 16)?;
            }
        }
        if self.target != Target::Client {
            needs("TARGET", 15)?;
        }
        if self.incremental.is_some() {
            needs("INCREMENTAL", 17)?;
            if !self.wants_manifest() {
                return Err(BackupError::InvalidOption {
                    option: "INCREMENTAL",
                    reason: "an incremental backup needs a manifest (pg_combinebackup reads it)"
                        .to_owned(),
                });
            }
        }
        if major >= 15 {
            self.option_list()
        } else {
            self.legacy_keywords()
        }
    }

    fn option_list(&self) -> Result<String> {
        let mut options = vec![format!("LABEL {}", quote(&self.label, "LABEL")?)];
        match &self.target {
            Target::Client => {}
            Target::Server(path) => {
                options.push("TARGET 'server'".to_owned());
                options.push(format!("TARGET_DETAIL {}", quote(path, "TARGET_DETAIL")?));
            }
            Target::Blackhole => options.push("TARGET 'blackhole'".to_owned()),
        }
        if self.progress {
            options.push("PROGRESS".to_owned());
        }
        if self.checkpoint == Checkpoint::Fast {
            options.push("CHECKPOINT 'fast'".to_owned());
        }
        if self.wal {
            options.push("WAL".to_owned());
        }
        if !self.wait {
            options.push("WAIT false".to_owned());
        }
        if let Some(compression) = &self.compression {
            options.push(format!("COMPRESSION '{}'", compression.method.name()));
            let detail = compression.detail();
            if !detail.is_empty() {
                options.push(format!("COMPRESSION_DETAIL '{detail}'"));
            }
        }
        if let Some(rate) = self.max_rate {
            options.push(format!("MAX_RATE {rate}"));
        }
        if self.tablespace_map {
            options.push("TABLESPACE_MAP".to_owned());
        }
        if !self.verify_checksums {
            options.push("VERIFY_CHECKSUMS false".to_owned());
        }
        match self.manifest {
            ManifestOption::Yes => options.push("MANIFEST 'yes'".to_owned()),
            ManifestOption::ForceEncode => options.push("MANIFEST 'force-encode'".to_owned()),
            ManifestOption::No => {}
        }
        if let Some(algorithm) = self.manifest_checksums
            && self.wants_manifest()
        {
            options.push(format!("MANIFEST_CHECKSUMS '{algorithm}'"));
        }
        if self.incremental.is_some() {
            options.push("INCREMENTAL".to_owned());
        }
        Ok(format!("BASE_BACKUP ({})", options.join(", ")))
    }

    fn legacy_keywords(&self) -> Result<String> {
        let mut command = format!("BASE_BACKUP LABEL {}", quote(&self.label, "LABEL")?);
        let mut keyword = |word: &str| {
            command.push(' ');
            command.push_str(word);
        };
        if self.progress {
            keyword("PROGRESS");
        }
        if self.checkpoint == Checkpoint::Fast {
            keyword("FAST");
        }
        if self.wal {
            keyword("WAL");
        }
        if !self.wait {
            keyword("NOWAIT");
        }
        if let Some(rate) = self.max_rate {
            keyword(&format!("MAX_RATE {rate}"));
        }
        if self.tablespace_map {
            keyword("TABLESPACE_MAP");
        }
        if !self.verify_checksums {
            keyword("NOVERIFY_CHECKSUMS");
        }
        match self.manifest {
            ManifestOption::Yes => keyword("MANIFEST 'yes'"),
            ManifestOption::ForceEncode => keyword("MANIFEST 'force-encode'"),
            ManifestOption::No => {}
        }
        if let Some(algorithm) = self.manifest_checksums
            && self.wants_manifest()
        {
            let _ = write!(command, " MANIFEST_CHECKSUMS '{algorithm}'");
        }
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_list_on_15_and_later() {
        let options = BackupOptions {
            label: "it's".into(),
            progress: true,
            checkpoint: Checkpoint::Fast,
            wal: true,
            wait: false,
            compression: Some(Compression {
                level: Some(3),
                workers: Some(2),
                ..Compression::new(CompressionMethod::Zstd)
            }),
            max_rate: Some(1024),
            tablespace_map: true,
            verify_checksums: false,
            manifest_checksums: Some(ChecksumAlgorithm::Sha256),
            ..BackupOptions::default()
        };
        assert_eq!(
            options.command(150_004).unwrap(),
            "BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'fast', WAL, WAIT false, \
             COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=3,workers=2', MAX_RATE 1024, \
             TABLESPACE_MAP, VERIFY_CHECKSUMS false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256')"
        );
        let targets = BackupOptions {
            target: Target::Server("/srv/b'k".into()),
            manifest: ManifestOption::No,
            manifest_checksums: Some(ChecksumAlgorithm::Sha256),
            ..BackupOptions::default()
        };
        assert_eq!(
            targets.command(180_000).unwrap(),
            "BASE_BACKUP (LABEL 'pg-walstream base backup', TARGET 'server', \
             TARGET_DETAIL '/srv/b''k')"
        );
    }

    #[test]
    fn legacy_keywords_on_14() {
        let options = BackupOptions {
            progress: true,
            checkpoint: Checkpoint::Fast,
            wal: true,
            wait: false,
            max_rate: Some(32),
            tablespace_map: true,
            verify_checksums: false,
            manifest: ManifestOption::ForceEncode,
            manifest_checksums: Some(ChecksumAlgorithm::Sha512),
            ..BackupOptions::default()
        };
        assert_eq!(
            options.command(140_023).unwrap(),
            "BASE_BACKUP LABEL 'pg-walstream base backup' PROGRESS FAST WAL NOWAIT MAX_RATE 32 \
             TABLESPACE_MAP NOVERIFY_CHECKSUMS MANIFEST 'force-encode' MANIFEST_CHECKSUMS 'SHA512'"
        );
        assert_eq!(
            BackupOptions::default().command(140_000).unwrap(),
            "BASE_BACKUP LABEL 'pg-walstream base backup' MANIFEST 'yes'"
        );
    }

    #[test]
    fn preflight_names_option_and_versions() {
        let compressed = BackupOptions {
            compression: Some(Compression::new(CompressionMethod::Lz4)),
            ..BackupOptions::default()
        };
        assert_eq!(
            compressed.command(140_023).unwrap_err().to_string(),
            "COMPRESSION needs PostgreSQL 15 or later; server is 14.23"
        );
        let target = BackupOptions {
            target: Target::Blackhole,
            ..BackupOptions::default()
        };
        assert_eq!(
            target.command(140_001).unwrap_err().to_string(),
            "TARGET needs PostgreSQL 15 or later; server is 14.1"
        );
        let long = BackupOptions {
            compression: Some(Compression {
                long: true,
                ..Compression::new(CompressionMethod::Zstd)
            }),
            ..BackupOptions::default()
        };
        assert!(long.command(160_000).is_ok());
        assert_eq!(
            long.command(150_010).unwrap_err().to_string(),
            "COMPRESSION_DETAIL long needs PostgreSQL 16 or later; server is 15.10"
        );
    }

    #[test]
    fn incremental_on_17_and_later() {
        let incremental = BackupOptions {
            incremental: Some(Bytes::from_static(b"{}")),
            ..BackupOptions::default()
        };
        assert_eq!(
            incremental.command(170_010).unwrap(),
            "BASE_BACKUP (LABEL 'pg-walstream base backup', MANIFEST 'yes', INCREMENTAL)"
        );
        assert_eq!(
            incremental.command(160_014).unwrap_err().to_string(),
            "INCREMENTAL needs PostgreSQL 17 or later; server is 16.14"
        );
        assert_eq!(
            incremental.command(140_023).unwrap_err().to_string(),
            "INCREMENTAL needs PostgreSQL 17 or later; server is 14.23"
        );
        let no_manifest = BackupOptions {
            manifest: ManifestOption::No,
            ..incremental
        };
        assert!(matches!(
            no_manifest.command(180_000),
            Err(BackupError::InvalidOption {
                option: "INCREMENTAL",
                ..
            })
        ));
    }

    #[test]
    fn invalid_values() {
        let level = BackupOptions {
            compression: Some(Compression {
                level: Some(10),
                ..Compression::new(CompressionMethod::Gzip)
            }),
            ..BackupOptions::default()
        };
        assert_eq!(
            level.command(170_000).unwrap_err().to_string(),
            "invalid option COMPRESSION_DETAIL: gzip level 10 is outside 1..=9"
        );
        let workers = Compression {
            workers: Some(2),
            ..Compression::new(CompressionMethod::Lz4)
        };
        assert!(workers.validate().is_err());
        assert!("brotli".parse::<CompressionMethod>().is_err());
        assert_eq!(
            "sha224".parse::<ChecksumAlgorithm>().unwrap(),
            ChecksumAlgorithm::Sha224
        );
        let rate = BackupOptions {
            max_rate: Some(10),
            ..BackupOptions::default()
        };
        assert!(matches!(
            rate.command(150_000),
            Err(BackupError::InvalidOption {
                option: "MAX_RATE",
                ..
            })
        ));
        let nul = BackupOptions {
            label: "a\0b".into(),
            ..BackupOptions::default()
        };
        assert!(nul.command(150_000).is_err());
        assert_eq!(
            CompressionMethod::from_file_name("base.tar.zst"),
            Some(CompressionMethod::Zstd)
        );
        assert_eq!(CompressionMethod::from_file_name("base.tar"), None);
    }
}
