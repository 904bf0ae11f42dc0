//! Where a backup's events go: the [`ArchiveSink`] trait, tar files as the server sends them
//! ([`TarSink`]) and a sink that keeps nothing ([`DiscardSink`]).

use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::compress::{Encoder, decoder};
use crate::core::BackupEvent;
use crate::error::{BackupError, Result};
use crate::options::{Compression, CompressionMethod};
use crate::output::{Output, create_new};
use crate::tar_edit::inject_recovery;
use crate::worker::Worker;

/// The manifest's file name in a backup.
pub const MANIFEST_FILE: &str = "backup_manifest";

/// Consumes the events of a base backup (see [`BaseBackup::run_into`](crate::BaseBackup::run_into)).
pub trait ArchiveSink: Send {
    /// Handles one event, in the order the backup delivers them.
    ///
    /// # Errors
    /// When writing fails; the backup stops.
    fn handle(&mut self, event: BackupEvent) -> impl Future<Output = Result<()>> + Send;
}

/// Keeps nothing: for `TARGET 'server'` / `'blackhole'` backups, or to measure the stream.
#[derive(Debug, Default)]
pub struct DiscardSink {
    /// Archive and manifest bytes seen.
    pub bytes: u64,
}

impl ArchiveSink for DiscardSink {
    async fn handle(&mut self, event: BackupEvent) -> Result<()> {
        if let BackupEvent::Data(chunk) | BackupEvent::ManifestData(chunk) = event {
            self.bytes += chunk.len() as u64;
        }
        Ok(())
    }
}

pub(crate) fn archive_error(archive: &str, reason: &str) -> impl FnOnce(io::Error) -> BackupError {
    let archive = archive.to_owned();
    let reason = reason.to_owned();
    move |source| BackupError::Archive {
        archive,
        reason,
        source: Some(source),
    }
}

/// A plain file name of the server's (no directory part), or an error.
pub(crate) fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(BackupError::Archive {
            archive: name.to_owned(),
            reason: "the server's archive name is not a plain file name".to_owned(),
            source: None,
        });
    }
    Ok(())
}

/// A worker that writes its input to a new file at `path`: decompressed with `decompress`,
/// rewritten with `recovery` lines injected (see [`inject_recovery`]), then compressed with
/// `compress`, synced to disk when `sync`.
pub(crate) fn file_worker(
    label: &str,
    path: &Path,
    decompress: Option<CompressionMethod>,
    compress: Option<Compression>,
    recovery: Option<String>,
    sync: bool,
) -> Result<Worker> {
    let file = create_new(path)?;
    let label = label.to_owned();
    Worker::spawn(&label.clone(), move |mut reader| {
        let fail = |reason| archive_error(&label, reason);
        if decompress.is_none() && compress.is_none() && recovery.is_none() {
            // As sent: each chunk straight to the file, no copy through a buffer.
            let mut file = file;
            while let Some(chunk) = reader.next_chunk() {
                file.write_all(&chunk).map_err(fail("writing"))?;
            }
            if sync {
                file.sync_all().map_err(fail("syncing"))?;
            }
            return Ok(());
        }
        let mut input = decoder(decompress, reader).map_err(fail("starting to decompress"))?;
        let mut output = Encoder::new(
            compress.as_ref(),
            BufWriter::with_capacity(256 * 1024, file),
        )
        .map_err(fail("starting to compress"))?;
        let output = if let Some(lines) = &recovery {
            inject_recovery(input, output, lines).map_err(fail("rewriting"))?
        } else {
            io::copy(&mut input, &mut output).map_err(fail("writing"))?;
            output
        };
        let file = output
            .finish()
            .and_then(|mut w| w.flush().map(|()| w))
            .map_err(fail("finishing"))?
            .into_inner()
            .map_err(|e| archive_error(&label, "writing")(e.into_error()))?;
        if sync {
            file.sync_all().map_err(fail("syncing"))?;
        }
        Ok(())
    })
}

/// Writes each archive to a file in a directory, named as the server names it (`base.tar`,
/// `16385.tar`, `base.tar.gz` …), and the manifest as `backup_manifest` beside them, each
/// created readable by its owner only (mode 0600, as pg_basebackup creates them).
///
/// Server-compressed archives are stored as sent, or decompressed to `.tar`
/// ([`decompress`](Self::decompress)); uncompressed ones can be compressed here
/// ([`compress`](Self::compress)).
///
/// An archive stored as sent is written by [`handle`](ArchiveSink::handle) itself, chunk by
/// chunk, on the task running the backup (a blocking `write` each, and an `fsync` at its end);
/// one that is compressed, decompressed or rewritten here goes through a thread of its own —
/// and every one does with [`worker_thread`](Self::worker_thread).
#[derive(Debug)]
pub struct TarSink {
    dir: PathBuf,
    compress: Option<Compression>,
    decompress: bool,
    recovery: Option<String>,
    sync: bool,
    worker_thread: bool,
    current: Option<Output>,
    files: Vec<PathBuf>,
}

impl TarSink {
    /// Files go into `dir`, which must exist.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TarSink {
            dir: dir.into(),
            compress: None,
            decompress: false,
            recovery: None,
            sync: true,
            worker_thread: false,
            current: None,
            files: Vec::new(),
        }
    }

    /// Compresses every archive on this side (`-z`, `--compress client-…`).
    #[must_use]
    pub fn compress(mut self, compression: Compression) -> Self {
        self.compress = Some(compression);
        self
    }

    /// Stores server-compressed archives decompressed (as `.tar`).
    #[must_use]
    pub fn decompress(mut self, decompress: bool) -> Self {
        self.decompress = decompress;
        self
    }

    /// Injects a standby's recovery configuration into the main archive (`-R`): an empty
    /// `standby.signal`, and `lines` (see [`recovery_conf_lines`](crate::recovery_conf_lines))
    /// appended to `postgresql.auto.conf`. The main archive is then rewritten member by
    /// member (a server-compressed one decompressed and compressed again with the same method
    /// at its default level).
    #[must_use]
    pub fn recovery(mut self, lines: impl Into<String>) -> Self {
        self.recovery = Some(lines.into());
        self
    }

    /// Whether every file is synced to disk before it counts as written (default on).
    #[must_use]
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Whether archives stored as sent are written on a thread of their own too (default
    /// off: inline, which saves a thread hand-off per batch of chunks; on keeps the task
    /// running the backup free of file-system calls).
    #[must_use]
    pub fn worker_thread(mut self, worker_thread: bool) -> Self {
        self.worker_thread = worker_thread;
        self
    }

    /// The files written so far.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn open(&mut self, name: &str, archive: bool, base: bool) -> Result<()> {
        check_file_name(name)?;
        let server_method = CompressionMethod::from_file_name(name);
        let recovery = if base { self.recovery.clone() } else { None };
        let (file_name, decompress, compress) = if !archive {
            (name.to_owned(), None, None)
        } else if self.decompress && server_method.is_some() {
            let suffix = server_method.map_or("", CompressionMethod::suffix);
            (
                name.trim_end_matches(suffix).to_owned(),
                server_method,
                None,
            )
        } else if let (Some(compression), None) = (self.compress, server_method) {
            (
                format!("{name}{}", compression.method.suffix()),
                None,
                Some(compression),
            )
        } else if recovery.is_some() {
            // Rewritten: decompressed, then compressed again as the server did.
            (
                name.to_owned(),
                server_method,
                server_method.map(Compression::new),
            )
        } else {
            (name.to_owned(), None, None)
        };
        let path = self.dir.join(&file_name);
        let output = if !self.worker_thread
            && decompress.is_none()
            && compress.is_none()
            && recovery.is_none()
        {
            Output::file(name, &path, self.sync)?
        } else {
            Output::Worker(file_worker(
                name, &path, decompress, compress, recovery, self.sync,
            )?)
        };
        self.files.push(path);
        self.current = Some(output);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        match self.current.take() {
            Some(output) => output.finish().await,
            None => Ok(()),
        }
    }
}

impl ArchiveSink for TarSink {
    async fn handle(&mut self, event: BackupEvent) -> Result<()> {
        match event {
            BackupEvent::Archive(info) => {
                self.close().await?;
                self.open(&info.name, true, info.is_base())
            }
            BackupEvent::Manifest => {
                self.close().await?;
                self.open(MANIFEST_FILE, false, false)
            }
            BackupEvent::Data(chunk) | BackupEvent::ManifestData(chunk) => {
                match &mut self.current {
                    Some(output) => output.write(chunk).await,
                    None => Err(BackupError::Protocol {
                        got: "data",
                        during: "outside an archive",
                    }),
                }
            }
            BackupEvent::ArchiveEnd | BackupEvent::ManifestEnd | BackupEvent::End(_) => {
                self.close().await
            }
            _ => Ok(()),
        }
    }
}
