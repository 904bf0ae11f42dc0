//! A `BASE_BACKUP` client for PostgreSQL 14–18.
//!
//! - [`BackupOptions`] builds the command for the connected server: the option list on 15+,
//!   the keyword form on 14, with errors naming the option and both versions for what the
//!   server cannot do ([`BackupError::Unsupported`]), before anything is sent.
//! - [`BaseBackup`] runs it over any [`Transport`](pg_walstream_transport::Transport) and
//!   yields [`BackupEvent`]s: archives (name, tablespace) with their tar bytes as zero-copy
//!   `Bytes` chunks, monotonic [`Progress`], the manifest, and the end position. PostgreSQL
//!   14's one-CopyOut-per-tablespace form (tar without end-of-archive blocks) is normalised to
//!   the same sequence by the sans-IO [`StreamCore`].
//! - Sinks: [`TarSink`] (tar files as sent, optionally compressed or decompressed here),
//!   [`PlainSink`] (streaming extraction into a data directory with `-T` tablespace
//!   mappings), [`DiscardSink`]; [`write_standby_config`] for `-R`.
//! - [`Manifest`] and [`verify_dir`]: sizes and checksums of a plain backup against its
//!   manifest, like `pg_verifybackup`, as a typed [`VerifyReport`]; [`verify_wal`]: the
//!   manifest's WAL ranges present in `pg_wal/` and parseable (the codec's WAL decoder);
//!   [`verify_tar_dir`]: the same file checks on a tar-format backup's archives.
//! - Incremental backups (17+): [`BackupOptions::incremental`] uploads the prior backup's
//!   manifest (`UPLOAD_MANIFEST`, a CopyIn stream) before `BASE_BACKUP ... INCREMENTAL`.
//!
//! - `-F tar` extras: [`TarSink::recovery`] injects `-R`'s files into the main archive;
//!   [`write_wal_archive`] writes `pg_wal.tar` from streamed WAL.

mod compress;
mod core;
mod driver;
mod error;
mod extract;
mod incremental;
mod manifest;
mod options;
mod output;
mod recovery;
mod sink;
mod tar_edit;
mod untar;
mod verify_tar;
mod wal_check;
mod worker;

pub use crate::core::{ArchiveInfo, BackupEvent, Position, Progress, StreamCore, Tablespace};
pub use driver::BaseBackup;
pub use error::{BackupError, Result};
pub use extract::{
    PlainSink, TablespaceMapping, extract_archive_file, map_tablespace, prepare_empty_dir,
};
pub use manifest::{
    FileProblem, IGNORED, Manifest, ManifestFile, VerifyReport, WalRange, checksum, verify_dir,
};
pub use options::{
    BackupOptions, Checkpoint, ChecksumAlgorithm, Compression, CompressionMethod, ManifestOption,
    Target,
};
pub use recovery::{conninfo_value, recovery_conf_lines, write_standby_config};
pub use sink::{ArchiveSink, DiscardSink, MANIFEST_FILE, TarSink};
pub use tar_edit::write_wal_archive;
pub use verify_tar::verify_tar_dir;
pub use wal_check::{WalProblem, verify_wal};
