//! Where the current archive's bytes go: written or extracted on the receiving task itself
//! (the default for what needs no transformation, and for extracting a server-zstd archive:
//! one thread, as `pg_basebackup` does it, no hand-off, each chunk dropped as soon as it is
//! written or decompressed), or handed to a [`Worker`] thread (compression, gzip and LZ4
//! decompression, `-R` rewriting — CPU work that runs beside the receiving — or when the sink
//! is asked for one).

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::compress::ZstdPush;
use crate::error::{BackupError, Result};
use crate::extract::sync_tree;
use crate::sink::archive_error;
use crate::untar::Extractor;
use crate::worker::Worker;

/// The destination of one archive (or the manifest).
#[derive(Debug)]
pub(crate) enum Output {
    /// A file written as sent, on this thread.
    File {
        file: File,
        label: String,
        sync: bool,
    },
    /// An archive extracted on this thread, zstd-decompressed first when `inflate` is set.
    Extract {
        extractor: Box<Extractor>,
        inflate: Option<Box<ZstdPush>>,
        label: String,
        sync: bool,
    },
    /// A worker thread.
    Worker(Worker),
}

impl Output {
    /// A new file at `path` for bytes as sent, written inline.
    pub(crate) fn file(label: &str, path: &Path, sync: bool) -> Result<Self> {
        Ok(Output::File {
            file: create_new(path)?,
            label: label.to_owned(),
            sync,
        })
    }

    /// Inline extraction into `target` (existing and empty) of a tar archive, zstd-compressed
    /// when `zstd` is set.
    ///
    /// # Errors
    /// When zstd cannot allocate its decompression context.
    pub(crate) fn extract(
        label: &str,
        target: PathBuf,
        mappings: Vec<crate::TablespaceMapping>,
        sync: bool,
        zstd: bool,
    ) -> Result<Self> {
        let inflate = if zstd {
            Some(Box::new(
                ZstdPush::new().map_err(archive_error(label, "decompressing"))?,
            ))
        } else {
            None
        };
        Ok(Output::Extract {
            extractor: Box::new(Extractor::new(target, mappings)),
            inflate,
            label: label.to_owned(),
            sync,
        })
    }

    /// Writes (or queues) a chunk.
    ///
    /// # Errors
    /// A failed write or a refused tar entry; a worker that stopped early.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<()> {
        match self {
            Output::File { file, label, .. } => file
                .write_all(&chunk)
                .map_err(archive_error(label, "writing")),
            Output::Extract {
                extractor,
                inflate: None,
                label,
                ..
            } => extractor
                .push(&chunk)
                .map_err(archive_error(label, "extracting")),
            Output::Extract {
                extractor,
                inflate: Some(inflate),
                label,
                ..
            } => {
                // Keeps the extractor's own error apart from zstd's, to say which it was.
                let mut refused = None;
                let decoded = inflate.push(&chunk, |bytes| {
                    extractor.push(bytes).map_err(|error| {
                        let kind = error.kind();
                        refused = Some(error);
                        io::Error::from(kind)
                    })
                });
                if let Some(error) = refused {
                    return Err(archive_error(label, "extracting")(error));
                }
                decoded.map_err(archive_error(label, "decompressing"))
            }
            Output::Worker(worker) => worker.send(chunk).await,
        }
    }

    /// The archive is complete: syncs what was written (when asked to) and reports the outcome.
    ///
    /// # Errors
    /// As [`write`](Self::write), and a failed sync.
    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            Output::File { file, label, sync } => {
                if sync {
                    file.sync_all().map_err(archive_error(&label, "syncing"))?;
                }
                Ok(())
            }
            Output::Extract {
                extractor,
                inflate,
                label,
                sync,
            } => {
                if let Some(inflate) = inflate {
                    inflate
                        .finish()
                        .map_err(archive_error(&label, "decompressing"))?;
                }
                extractor
                    .finish()
                    .map_err(archive_error(&label, "extracting"))?;
                if sync {
                    sync_tree(extractor.target()).map_err(archive_error(&label, "syncing"))?;
                }
                Ok(())
            }
            Output::Worker(worker) => worker.finish().await,
        }
    }
}

/// The mode of the files a backup writes besides the server's own: owner read and write.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates a file that must not exist yet, readable by its owner only (mode 0600, as
/// pg_basebackup creates the files of a backup: they hold the whole database).
pub(crate) fn create_new(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    File::options()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
        .map_err(BackupError::io("creating", path))
}
