//! `pg-walstream verifybackup` (and `basebackup --verify`): a backup against its manifest,
//! plain or tar format, and the WAL it needs, like pg_verifybackup.

use std::path::{Path, PathBuf};

use clap::Args;
use pg_walstream_backup::{
    BackupError, Manifest, WalProblem, extract_archive_file, verify_dir, verify_tar_dir, verify_wal,
};

use crate::error::CliError;

/// Arguments of `verifybackup`.
#[derive(Debug, Clone, Args)]
pub(crate) struct VerifyArgs {
    /// The backup: its data directory, or the directory of a tar-format backup (base.tar,
    /// backup_manifest, …).
    #[arg(value_name = "DIR")]
    pub(crate) directory: PathBuf,
    /// Do not check the WAL (the manifest's WAL ranges in pg_wal/, or in pg_wal.tar).
    #[arg(short = 'n', long)]
    pub(crate) no_parse_wal: bool,
}

/// `NAME`, `NAME.gz`, `NAME.lz4` or `NAME.zst` in `dir`, whichever exists.
fn tar_archive(dir: &Path, name: &str) -> Option<PathBuf> {
    ["", ".gz", ".lz4", ".zst"]
        .into_iter()
        .map(|suffix| dir.join(format!("{name}{suffix}")))
        .find(|path| path.is_file())
}

/// Verifies a backup against its manifest — a plain data directory, or the files of a
/// tar-format backup (`base.tar` present) — and with `wal` the WAL it needs (`pg_wal/`, or a
/// tar backup's `pg_wal.tar`); every problem named, exit code 1.
pub(crate) fn verify(dir: &Path, wal: bool) -> Result<(), CliError> {
    let failed = |e: BackupError| CliError::failed("verify", &e);
    let manifest = Manifest::read_from_dir(dir).map_err(failed)?;
    let tar = tar_archive(dir, "base.tar");
    let report = if tar.is_some() {
        verify_tar_dir(dir, &manifest)
    } else {
        verify_dir(dir, &manifest)
    }
    .map_err(failed)?;
    let wal_problems = match (wal, tar) {
        (false, _) => Vec::new(),
        (true, None) => verify_wal(&dir.join("pg_wal"), &manifest.wal_ranges).map_err(failed)?,
        (true, Some(_)) => {
            let Some(wal_tar) = tar_archive(dir, "pg_wal.tar") else {
                return Err(CliError::usage(
                    "the WAL of a tar-format backup is checked in its pg_wal.tar (-X stream); \
                     this one has none: use -n",
                ));
            };
            let staging = tempfile::tempdir()
                .map_err(|e| CliError::failed("verify: a temporary directory", &e))?;
            let segments = staging.path().join("pg_wal");
            extract_archive_file(&wal_tar, &segments, &[]).map_err(failed)?;
            verify_wal(&segments, &manifest.wal_ranges).map_err(failed)?
        }
    };
    if report.is_ok() && wal_problems.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    problems.extend(
        report
            .missing
            .iter()
            .map(|p| format!("missing {}", p.display())),
    );
    problems.extend(
        report
            .extra
            .iter()
            .map(|p| format!("not in the manifest {}", p.display())),
    );
    problems.extend(
        report
            .changed
            .iter()
            .map(|(p, problem)| format!("changed {} ({problem:?})", p.display())),
    );
    problems.extend(wal_problems.iter().map(|problem| match problem {
        WalProblem::MissingSegment { timeline, file } => {
            format!("WAL of timeline {timeline} missing: pg_wal/{file}")
        }
        WalProblem::Unreadable {
            timeline,
            lsn,
            reason,
        } => format!("WAL of timeline {timeline} unreadable at {lsn}: {reason}"),
        WalProblem::BadRange { range } => format!("bad WAL range {range:?}"),
        _ => format!("{problem:?}"),
    }));
    Err(CliError::message(format!(
        "backup {} does not match its manifest: {}",
        dir.display(),
        problems.join("; ")
    )))
}
