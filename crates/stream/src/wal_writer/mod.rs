//! A WAL segment writer: the directory layout `pg_receivewal` keeps, usable without the
//! stream.
//!
//! Segments are written as `TTTTTTTTLLLLLLLLSSSSSSSS` files (optionally compressed, with
//! `pg_receivewal`'s suffixes `.gz`, `.lz4`, `.zst`); the segment being written carries the
//! suffix `.partial` and is renamed when its last byte is in. The segment size comes from the
//! caller (the server's `wal_segment_size`), never assumed. Timeline history files are written
//! uncompressed (`TTTTTTTT.history`).
//!
//! **Durability** ([`SyncPolicy`]): by default every completed segment is fsynced before its
//! rename, and [`flushed_lsn`](WalWriter::flushed_lsn) — what may be reported to the server as
//! flushed — advances only then. With [`SyncPolicy::Synchronous`] (`pg_receivewal
//! --synchronous`), [`flush`](WalWriter::flush) fsyncs the open segment too and the flushed
//! position follows every flush. [`SyncPolicy::Never`] advances the same positions without
//! calling fsync (`--no-sync`, for tests).
//!
//! **Restart** ([`find_resume_point`]): streaming resumes at the start of the newest `.partial`
//! segment (which is rewritten from its start), or after the newest complete one. Before
//! resuming into a directory, [`check_system_identifier`] tells whether its segments are the
//! server's (the system identifier in each segment's first page header).
//!
//! ```
//! use pg_walstream_codec::{Lsn, WalSegmentSize};
//! use pg_walstream_stream::wal_writer::{WalWriter, WalWriterOptions, find_resume_point};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let seg = WalSegmentSize::new(1 << 20).unwrap();
//! let mut writer = WalWriter::new(dir.path(), WalWriterOptions::new(seg)).unwrap();
//! writer.write(1, Lsn(0x100000), &vec![7u8; 1 << 20]).unwrap(); // one whole segment
//! writer.write(1, Lsn(0x200000), b"half").unwrap();
//! assert_eq!(writer.flushed_lsn(), Lsn(0x200000));
//! assert!(dir.path().join("000000010000000000000001").is_file());
//! assert!(dir.path().join("000000010000000000000002.partial").is_file());
//! drop(writer);
//! let resume = find_resume_point(dir.path(), seg).unwrap().unwrap();
//! assert_eq!((resume.timeline, resume.lsn), (1, Lsn(0x200000)));
//! ```

mod identity;
mod naming;
mod sink;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use pg_walstream_codec::{Lsn, WalSegmentSize};

pub use identity::check_system_identifier;
pub use naming::{
    PARTIAL_SUFFIX, SegmentFile, history_file_name, parse_segment_file_name, segment_file_name,
};

use sink::Sink;

/// Per-segment compression, with `pg_receivewal`'s file suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain segments.
    #[default]
    None,
    /// gzip (`.gz`), level 1–9.
    Gzip {
        /// Compression level.
        level: u32,
    },
    /// LZ4 frame format (`.lz4`).
    Lz4,
    /// Zstandard (`.zst`).
    Zstd {
        /// Compression level (1–22; 0 = zstd's default).
        level: i32,
    },
}

impl Compression {
    /// The file-name suffix: `""`, `".gz"`, `".lz4"` or `".zst"`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip { .. } => ".gz",
            Compression::Lz4 => ".lz4",
            Compression::Zstd { .. } => ".zst",
        }
    }
}

/// When written WAL is fsynced (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fsync each segment when it is complete (and history files), `pg_receivewal`'s default.
    #[default]
    PerSegment,
    /// Also fsync the open segment on every [`WalWriter::flush`] (`--synchronous`).
    Synchronous,
    /// Never fsync (`--no-sync`): positions advance as with `PerSegment`.
    Never,
}

/// Settings of a [`WalWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalWriterOptions {
    /// The server's `wal_segment_size`.
    pub segment_size: WalSegmentSize,
    /// Per-segment compression.
    pub compression: Compression,
    /// fsync policy.
    pub sync: SyncPolicy,
}

impl WalWriterOptions {
    /// Uncompressed segments of `segment_size`, fsynced per segment.
    pub fn new(segment_size: WalSegmentSize) -> Self {
        WalWriterOptions {
            segment_size,
            compression: Compression::None,
            sync: SyncPolicy::PerSegment,
        }
    }
}

/// Why writing WAL files failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalWriterError {
    /// A file operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Data does not continue where the previous write ended (or, with no segment open, does
    /// not start a segment).
    #[error(
        "WAL data at {got} on timeline {timeline} does not continue the open segment (expected {expected})"
    )]
    NotContiguous {
        /// Where the next byte was expected.
        expected: Lsn,
        /// Where the data starts.
        got: Lsn,
        /// The data's timeline.
        timeline: u32,
    },
    /// A segment file in the directory was written by another cluster (see
    /// [`check_system_identifier`]).
    #[error(
        "{} belongs to database system {found}, but the server is database system {expected}",
        path.display()
    )]
    OtherSystem {
        /// The segment file.
        path: PathBuf,
        /// Its `xlp_sysid`.
        found: u64,
        /// The server's system identifier.
        expected: u64,
    },
    /// A complete segment file does not start with a WAL long page header.
    #[error("{} is not a WAL segment (no long page header at its start)", path.display())]
    NotASegment {
        /// The file.
        path: PathBuf,
    },
    /// The first write of a segment is not at the segment's start.
    #[error("WAL data at {lsn} does not start a segment and no segment is open")]
    Unaligned {
        /// Where the data starts.
        lsn: Lsn,
    },
}

impl WalWriterError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| WalWriterError::Io {
            action,
            path,
            source,
        }
    }
}

/// Where to resume streaming into a directory (see [`find_resume_point`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// Timeline of the newest segment.
    pub timeline: u32,
    /// The segment-aligned position to start at.
    pub lsn: Lsn,
    /// Whether that segment is a `.partial` that will be rewritten.
    pub partial: bool,
}

/// Scans `dir` for WAL segments: the newest segment (highest number, then highest timeline)
/// decides where to resume — at its start if it is `.partial`, after it if it is complete.
/// `None` for a directory without segments.
///
/// # Errors
/// When the directory cannot be read.
pub fn find_resume_point(
    dir: &Path,
    segment_size: WalSegmentSize,
) -> Result<Option<ResumePoint>, WalWriterError> {
    let mut best: Option<SegmentFile> = None;
    for (_, file) in segment_files(dir, segment_size)? {
        let newer = best.is_none_or(|b| {
            (file.segment, file.timeline, !file.partial) > (b.segment, b.timeline, !b.partial)
        });
        if newer {
            best = Some(file);
        }
    }
    Ok(best.map(|file| {
        let segment = if file.partial {
            file.segment
        } else {
            file.segment + 1
        };
        ResumePoint {
            timeline: file.timeline,
            lsn: Lsn(segment * u64::from(segment_size.bytes())),
            partial: file.partial,
        }
    }))
}

/// The WAL segment files in `dir` (other files are ignored), in no particular order.
fn segment_files(
    dir: &Path,
    segment_size: WalSegmentSize,
) -> Result<Vec<(PathBuf, SegmentFile)>, WalWriterError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(WalWriterError::io("reading", dir))? {
        let entry = entry.map_err(WalWriterError::io("reading", dir))?;
        if let Some(file) = entry
            .file_name()
            .to_str()
            .and_then(|name| parse_segment_file_name(name, segment_size))
        {
            files.push((entry.path(), file));
        }
    }
    Ok(files)
}

/// Checks that `dir` is a directory this process can create files in (without leaving
/// anything behind).
///
/// # Errors
/// When it is missing, not a directory, or not writable.
pub fn check_writable(dir: &Path) -> Result<(), WalWriterError> {
    let probe = dir.join(".pg-walstream-probe");
    File::create(&probe).map_err(WalWriterError::io("creating a file in", dir))?;
    std::fs::remove_file(&probe).map_err(WalWriterError::io("removing", &probe))
}

#[derive(Debug)]
struct OpenSegment {
    timeline: u32,
    segment: u64,
    /// Bytes of the segment written so far.
    offset: u64,
    sink: Sink,
    partial_path: PathBuf,
    final_path: PathBuf,
}

/// Writes streamed WAL into a directory; see the [module documentation](self).
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    options: WalWriterOptions,
    open: Option<OpenSegment>,
    written: Lsn,
    flushed: Lsn,
    completed: u64,
}

impl WalWriter {
    /// A writer into the existing directory `dir`.
    ///
    /// # Errors
    /// When `dir` is not a writable directory ([`check_writable`]).
    pub fn new(dir: &Path, options: WalWriterOptions) -> Result<WalWriter, WalWriterError> {
        check_writable(dir)?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            options,
            open: None,
            written: Lsn::INVALID,
            flushed: Lsn::INVALID,
            completed: 0,
        })
    }

    /// The position after the last byte written (`0/0` before the first write).
    pub fn written_lsn(&self) -> Lsn {
        self.written
    }

    /// The position up to which written WAL is durable under the [`SyncPolicy`] — what to
    /// report to the server as flushed.
    pub fn flushed_lsn(&self) -> Lsn {
        self.flushed
    }

    /// How many segments this writer completed (renamed from `.partial`).
    pub fn completed_segments(&self) -> u64 {
        self.completed
    }

    /// The settings.
    pub fn options(&self) -> &WalWriterOptions {
        &self.options
    }

    /// Writes `data`, which starts at `start` on `timeline`. It must continue the open
    /// segment, or — with none open — start a segment; segments are completed (fsynced,
    /// renamed) as their last byte arrives.
    ///
    /// # Errors
    /// [`WalWriterError::NotContiguous`], [`WalWriterError::Unaligned`], file errors.
    pub fn write(&mut self, timeline: u32, start: Lsn, data: &[u8]) -> Result<(), WalWriterError> {
        let seg_bytes = u64::from(self.options.segment_size.bytes());
        if let Some(open) = &self.open
            && (open.timeline != timeline || start != self.written)
        {
            return Err(WalWriterError::NotContiguous {
                expected: self.written,
                got: start,
                timeline,
            });
        }
        let mut position = start;
        let mut rest = data;
        while !rest.is_empty() {
            if self.open.is_none() {
                if !position.is_segment_start(self.options.segment_size) {
                    return Err(WalWriterError::Unaligned { lsn: position });
                }
                self.open_segment(timeline, position.segment_number(self.options.segment_size))?;
            }
            let open = self.open.as_mut().expect("a segment is open");
            let room = seg_bytes - open.offset;
            let take = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            open.sink
                .write_all(&rest[..take])
                .map_err(WalWriterError::io("writing", &open.partial_path))?;
            open.offset += take as u64;
            position += take as u64;
            self.written = position;
            rest = &rest[take..];
            if open.offset == seg_bytes {
                self.complete_segment()?;
            }
        }
        Ok(())
    }

    /// Makes everything written durable as far as the policy asks: with
    /// [`SyncPolicy::Synchronous`] the open segment is fsynced and the flushed position
    /// becomes the written one. Returns the flushed position.
    ///
    /// # Errors
    /// File errors.
    pub fn flush(&mut self) -> Result<Lsn, WalWriterError> {
        if self.options.sync == SyncPolicy::Synchronous
            && let Some(open) = &mut self.open
        {
            open.sink
                .flush(true)
                .map_err(WalWriterError::io("fsyncing", &open.partial_path))?;
            self.flushed = self.written;
        }
        Ok(self.flushed)
    }

    /// Closes the open segment where the data ended (a timeline's end or a stop): it keeps
    /// its `.partial` name unless it happens to be complete, and is fsynced (unless the policy
    /// is [`SyncPolicy::Never`]); the flushed position becomes the written one.
    ///
    /// # Errors
    /// File errors.
    pub fn close_segment(&mut self) -> Result<(), WalWriterError> {
        if let Some(open) = self.open.take() {
            let path = open.partial_path.clone();
            let file = open
                .sink
                .finish()
                .map_err(WalWriterError::io("finishing", &path))?;
            if self.options.sync != SyncPolicy::Never {
                file.sync_all()
                    .map_err(WalWriterError::io("fsyncing", &path))?;
            }
        }
        self.flushed = self.written;
        Ok(())
    }

    /// Writes a timeline history file (`file_name` as the server named it), durably: written
    /// to a temporary name, fsynced, renamed.
    ///
    /// # Errors
    /// File errors.
    pub fn write_history(&self, file_name: &str, content: &[u8]) -> Result<(), WalWriterError> {
        use std::io::Write as _;
        let target = self.dir.join(file_name);
        let temp = self.dir.join(format!("{file_name}.tmp"));
        let mut file = File::create(&temp).map_err(WalWriterError::io("creating", &temp))?;
        file.write_all(content)
            .map_err(WalWriterError::io("writing", &temp))?;
        if self.options.sync != SyncPolicy::Never {
            file.sync_all()
                .map_err(WalWriterError::io("fsyncing", &temp))?;
        }
        std::fs::rename(&temp, &target).map_err(WalWriterError::io("renaming", &temp))?;
        self.sync_dir()
    }

    fn open_segment(&mut self, timeline: u32, segment: u64) -> Result<(), WalWriterError> {
        let name = segment_file_name(
            timeline,
            segment,
            self.options.segment_size,
            self.options.compression,
        );
        let final_path = self.dir.join(&name);
        let partial_path = self.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial_path)
            .map_err(WalWriterError::io("creating", &partial_path))?;
        let sink = Sink::new(file, self.options.compression)
            .map_err(WalWriterError::io("starting compression of", &partial_path))?;
        self.open = Some(OpenSegment {
            timeline,
            segment,
            offset: 0,
            sink,
            partial_path,
            final_path,
        });
        Ok(())
    }

    fn complete_segment(&mut self) -> Result<(), WalWriterError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let file = open
            .sink
            .finish()
            .map_err(WalWriterError::io("finishing", &open.partial_path))?;
        if self.options.sync != SyncPolicy::Never {
            file.sync_all()
                .map_err(WalWriterError::io("fsyncing", &open.partial_path))?;
        }
        drop(file);
        std::fs::rename(&open.partial_path, &open.final_path)
            .map_err(WalWriterError::io("renaming", &open.partial_path))?;
        self.sync_dir()?;
        self.completed += 1;
        tracing::debug!(
            segment = open.segment,
            timeline = open.timeline,
            "segment complete"
        );
        self.flushed = self.written;
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), WalWriterError> {
        if self.options.sync == SyncPolicy::Never {
            return Ok(());
        }
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(WalWriterError::io("fsyncing", &self.dir))
    }
}

impl Drop for WalWriter {
    fn drop(&mut self) {
        // Keep what was written; a .partial is rewritten from its start after a restart.
        if let Some(open) = &mut self.open {
            let _ = open.sink.flush(false);
        }
    }
}

#[cfg(test)]
mod tests;
