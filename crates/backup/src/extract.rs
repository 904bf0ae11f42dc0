//! Extraction into a plain data directory: each archive streams through a tar reader (never
//! whole in memory) into the data directory or its tablespace's (mapped) location.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::compress::decoder;
use crate::core::{ArchiveInfo, BackupEvent};
use crate::error::{BackupError, Result};
use crate::options::CompressionMethod;
use crate::output::Output;
use crate::sink::{ArchiveSink, MANIFEST_FILE, archive_error, check_file_name, file_worker};
use crate::worker::Worker;

/// One `-T OLDDIR=NEWDIR`: a tablespace at `old` on the server is restored to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceMapping {
    /// The tablespace's location on the server.
    pub old: PathBuf,
    /// Where this backup puts it.
    pub new: PathBuf,
}

impl core::str::FromStr for TablespaceMapping {
    type Err = BackupError;

    /// `OLDDIR=NEWDIR`, both absolute; `\=` is a literal `=` (as pg_basebackup).
    fn from_str(text: &str) -> Result<Self> {
        let invalid = |reason: &str| BackupError::InvalidOption {
            option: "tablespace mapping",
            reason: format!("{text:?}: {reason}"),
        };
        let mut old = String::new();
        let mut new = None::<String>;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let c = match c {
                '\\' if chars.clone().next() == Some('=') => {
                    chars.next();
                    '='
                }
                '=' if new.is_none() => {
                    new = Some(String::new());
                    continue;
                }
                '=' => return Err(invalid("multiple \"=\" signs")),
                c => c,
            };
            new.as_mut().unwrap_or(&mut old).push(c);
        }
        let new = new.ok_or_else(|| invalid("must be in OLDDIR=NEWDIR format"))?;
        if old.is_empty() || new.is_empty() {
            return Err(invalid("must be in OLDDIR=NEWDIR format"));
        }
        let (old, new) = (PathBuf::from(old), PathBuf::from(new));
        if !old.is_absolute() || !new.is_absolute() {
            return Err(invalid("both directories must be absolute paths"));
        }
        Ok(TablespaceMapping { old, new })
    }
}

/// Where a tablespace at `location` goes under `mappings`.
pub fn map_tablespace(mappings: &[TablespaceMapping], location: &Path) -> PathBuf {
    mappings
        .iter()
        .find(|m| m.old == location)
        .map_or_else(|| location.to_path_buf(), |m| m.new.clone())
}

/// Extracts a backup into a plain data directory like `pg_basebackup -F p`: the main archive
/// into the data directory, each tablespace into its location (or its `-T` mapping, with the
/// `pg_tblspc/<oid>` symlink pointing there), `backup_manifest` into the data directory.
/// Server-compressed archives are decompressed on the way.
///
/// Uncompressed archives are extracted by [`handle`](ArchiveSink::handle) itself as their
/// chunks arrive, on the task running the backup (blocking file-system calls, and the syncs at
/// the end of each archive); compressed ones are decompressed and extracted on a thread of
/// their own — and every one is with [`worker_thread`](Self::worker_thread).
#[derive(Debug)]
pub struct PlainSink {
    data_dir: PathBuf,
    mappings: Vec<TablespaceMapping>,
    sync: bool,
    worker_thread: bool,
    current: Option<Output>,
    tablespace_dirs: Vec<PathBuf>,
}

impl PlainSink {
    /// Extracts into `data_dir` (created if missing, mode 0700; must be empty).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        PlainSink {
            data_dir: data_dir.into(),
            mappings: Vec::new(),
            sync: true,
            worker_thread: false,
            current: None,
            tablespace_dirs: Vec::new(),
        }
    }

    /// Tablespace mappings (`-T`).
    #[must_use]
    pub fn mappings(mut self, mappings: Vec<TablespaceMapping>) -> Self {
        self.mappings = mappings;
        self
    }

    /// Whether extracted files are synced to disk at the end of each archive (default on).
    #[must_use]
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Whether uncompressed and zstd archives are extracted on a thread of their own too, as
    /// gzip and LZ4 ones always are (default off: inline, which saves a thread hand-off per
    /// batch of chunks and two copies through a reader; on keeps the task running the backup
    /// free of file-system calls and of decompression).
    #[must_use]
    pub fn worker_thread(mut self, worker_thread: bool) -> Self {
        self.worker_thread = worker_thread;
        self
    }

    /// The tablespace directories extracted into so far.
    pub fn tablespace_dirs(&self) -> &[PathBuf] {
        &self.tablespace_dirs
    }

    fn open(&mut self, info: &ArchiveInfo) -> Result<()> {
        check_file_name(&info.name)?;
        let target = match &info.location {
            None => self.data_dir.clone(),
            Some(location) => map_tablespace(&self.mappings, Path::new(location)),
        };
        prepare_empty_dir(&target)?;
        if !info.is_base() {
            self.tablespace_dirs.push(target.clone());
        }
        let method = CompressionMethod::from_file_name(&info.name);
        // Uncompressed and zstd archives are extracted inline (zstd decodes pushed chunks);
        // gzip and LZ4 decoders pull through a reader, on a worker thread.
        let inline = matches!(method, None | Some(CompressionMethod::Zstd));
        if inline && !self.worker_thread {
            self.current = Some(Output::extract(
                &info.name,
                target,
                self.mappings.clone(),
                self.sync,
                method.is_some(),
            )?);
            return Ok(());
        }
        let mappings = self.mappings.clone();
        let (name, sync) = (info.name.clone(), self.sync);
        let worker = Worker::spawn(&info.name, move |reader| {
            let input = decoder(method, reader).map_err(archive_error(&name, "decompressing"))?;
            extract(input, &target, &mappings).map_err(archive_error(&name, "extracting"))?;
            if sync {
                sync_tree(&target).map_err(archive_error(&name, "syncing"))?;
            }
            Ok(())
        })?;
        self.current = Some(Output::Worker(worker));
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        match self.current.take() {
            Some(output) => output.finish().await,
            None => Ok(()),
        }
    }
}

impl ArchiveSink for PlainSink {
    async fn handle(&mut self, event: BackupEvent) -> Result<()> {
        match event {
            BackupEvent::Archive(info) => {
                self.close().await?;
                self.open(&info)
            }
            BackupEvent::Manifest => {
                self.close().await?;
                let path = self.data_dir.join(MANIFEST_FILE);
                self.current = Some(if self.worker_thread {
                    Output::Worker(file_worker(
                        MANIFEST_FILE,
                        &path,
                        None,
                        None,
                        None,
                        self.sync,
                    )?)
                } else {
                    Output::file(MANIFEST_FILE, &path, self.sync)?
                });
                Ok(())
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

/// Extracts a tar archive file (`.tar`, or `.tar.gz` / `.tar.lz4` / `.tar.zst`, decompressed
/// by its suffix) into `target` (created if missing; must be empty), as [`PlainSink`] does with
/// a received archive: e.g. the files of a tar-format backup.
///
/// # Errors
/// When `target` is not empty, and on read, decompression or extraction errors.
pub fn extract_archive_file(
    archive: &Path,
    target: &Path,
    mappings: &[TablespaceMapping],
) -> Result<()> {
    let name = archive.display().to_string();
    prepare_empty_dir(target)?;
    let file = std::fs::File::open(archive).map_err(BackupError::io("opening", archive))?;
    let method = CompressionMethod::from_file_name(&name);
    let input = decoder(method, io::BufReader::with_capacity(256 * 1024, file))
        .map_err(archive_error(&name, "decompressing"))?;
    extract(input, target, mappings).map_err(archive_error(&name, "extracting"))
}

/// Creates `dir` (mode 0700) or checks that it is empty.
///
/// # Errors
/// When it is not empty or cannot be created.
pub fn prepare_empty_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Io {
                    action: "extracting into",
                    path: dir.to_path_buf(),
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "directory exists and is not empty",
                    ),
                });
            }
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(BackupError::io("creating", dir))
        }
        Err(error) => Err(BackupError::io("reading", dir)(error)),
    }
}

/// An error naming a refused archive entry.
pub(crate) fn bad_entry(path: &Path, reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("entry {}: {reason}", path.display()),
    )
}

/// `error`, naming the entry it happened to.
pub(crate) fn with_path(path: &Path, error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("entry {}: {error}", path.display()))
}

/// Unpacks one tar stream into `target`, rewriting `pg_tblspc/<oid>` symlinks by `mappings`.
fn extract(input: impl Read, target: &Path, mappings: &[TablespaceMapping]) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(false);
    let mut buffer = vec![0u8; FILE_WRITE_BYTES];
    // Whether a symlink or hard link was unpacked outside pg_tblspc (PostgreSQL sends none):
    // from then on every entry goes through tar's own checks against escaping the target.
    let mut other_links = false;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad_entry(&path, "not a relative path inside the archive"));
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() && path.starts_with("pg_tblspc") {
            let link = entry
                .link_name()?
                .ok_or_else(|| bad_entry(&path, "symlink without a target"))?;
            // PostgreSQL names tablespace links `pg_tblspc/<oid>/` on some versions.
            let destination = target.join(path.components().collect::<PathBuf>());
            if let Some(parent) = destination.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::os::unix::fs::symlink(map_tablespace(mappings, &link), &destination)
                .map_err(|e| with_path(&path, &e))?;
        } else if kind == tar::EntryType::Regular && !other_links && !path.starts_with("pg_tblspc")
        {
            // No link exists outside pg_tblspc, so this path cannot pass through one: safe to
            // write without tar's own checks.
            write_file(&mut entry, &target.join(&path), &mut buffer)
                .map_err(|e| with_path(&path, &e))?;
        } else {
            other_links |= kind.is_symlink() || kind.is_hard_link();
            if !entry.unpack_in(target).map_err(|e| with_path(&path, &e))? {
                return Err(bad_entry(
                    &path,
                    "would be written outside the target directory",
                ));
            }
        }
    }
    // Whatever follows the end-of-archive blocks (padding) is read and dropped.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(())
}

/// Bytes per write of an extracted file: the size of the server's chunks, which the inline
/// path writes as they come. Larger writes cost more system time, not less: on a 2 GB plain
/// server-lz4 backup (ext4, kernel 6.18) 256 KiB writes took 1.7-4.4 s of system time run by
/// run, 32 KiB writes 0.9-1.3 s (pg_basebackup 1.5 s).
const FILE_WRITE_BYTES: usize = 32 * 1024;

/// Writes a regular file entry with writes of [`FILE_WRITE_BYTES`] (tar's own unpacking copies
/// through an 8 KiB buffer: four writes for every 32 KiB chunk), with its mode and mtime.
fn write_file(
    entry: &mut tar::Entry<'_, impl Read>,
    destination: &Path,
    buffer: &mut [u8],
) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mode = entry.header().mode()? & 0o7777;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(destination)?;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match entry.read(&mut buffer[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        file.write_all(&buffer[..filled])?;
    }
    // The mode exactly as archived (the umask may have narrowed it at creation).
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    let mtime = entry.header().mtime()?;
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
}

/// fsyncs every file and directory under `dir` (not following symlinks), then `dir`. As
/// `pg_basebackup`'s sync does, a first pass starts the write-back of every file without
/// waiting for it, so the fsyncs that follow find most of it done instead of waiting for each
/// file's writes one after the other.
pub(crate) fn sync_tree(dir: &Path) -> io::Result<()> {
    walk_files(dir, &mut |file| {
        // Linux starts writing the dirty pages back (WB_SYNC_NONE) and returns; only a hint:
        // the fsync of the second pass reports what fails.
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
        Ok(())
    })?;
    walk_files(dir, &mut |file| file.sync_all())
}

/// Calls `each` with every regular file and directory under `dir` (not following symlinks),
/// then with `dir`.
fn walk_files(
    dir: &Path,
    each: &mut impl FnMut(&std::fs::File) -> io::Result<()>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_files(&entry.path(), each)?;
        } else if kind.is_file() {
            each(&std::fs::File::open(entry.path())?)?;
        }
    }
    each(&std::fs::File::open(dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_like_pg_basebackup() {
        let m: TablespaceMapping = "/old/a\\=b=/new".parse().unwrap();
        assert_eq!(m.old, Path::new("/old/a=b"));
        assert_eq!(m.new, Path::new("/new"));
        for bad in ["/old", "/a=b=c", "rel=/new", "/old=rel", "=/new", "/old="] {
            assert!(bad.parse::<TablespaceMapping>().is_err(), "{bad}");
        }
        let mappings = [m];
        assert_eq!(
            map_tablespace(&mappings, Path::new("/old/a=b")),
            Path::new("/new")
        );
        assert_eq!(
            map_tablespace(&mappings, Path::new("/other")),
            Path::new("/other")
        );
    }

    #[test]
    fn entries_outside_the_target_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        header.as_gnu_mut().unwrap().name[..5].copy_from_slice(b"../x\0");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        let error = extract(&tar[..], dir.path(), &[]).unwrap_err();
        assert!(error.to_string().contains("not a relative path"), "{error}");
        assert!(!dir.path().parent().unwrap().join("x").exists());
    }

    #[test]
    fn tablespace_links_follow_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "pg_tblspc/16385", "/srv/ts")
            .unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_size(2);
        file.set_mode(0o600);
        builder
            .append_data(&mut file, "global/pg_control", &b"ok"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let mappings = ["/srv/ts=/restored/ts".parse().unwrap()];
        extract(&tar[..], dir.path(), &mappings).unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("pg_tblspc/16385")).unwrap(),
            Path::new("/restored/ts")
        );
        assert_eq!(
            std::fs::read(dir.path().join("global/pg_control")).unwrap(),
            b"ok"
        );
    }

    #[test]
    fn files_keep_their_bytes_mode_and_mtime() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        // Larger than one write, not a multiple of it.
        let data: Vec<u8> = (0..FILE_WRITE_BYTES * 2 + 4321)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o640);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(&mut header, "base/1/1259", &data[..])
            .unwrap();
        let mut empty = tar::Header::new_ustar();
        empty.set_size(0);
        empty.set_mode(0o600);
        builder
            .append_data(&mut empty, "PG_VERSION", &[][..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        extract(&tar[..], dir.path(), &[]).unwrap();
        let path = dir.path().join("base/1/1259");
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        let mtime = meta.modified().unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
        );
        assert_eq!(std::fs::read(dir.path().join("PG_VERSION")).unwrap(), b"");
    }

    #[test]
    fn a_file_behind_a_link_outside_pg_tblspc_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder.append_link(&mut link, "escape", &outside).unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_size(1);
        file.set_mode(0o600);
        builder
            .append_data(&mut file, "escape/planted", &b"x"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        std::fs::create_dir_all(&target).unwrap();
        assert!(extract(&tar[..], &target, &[]).is_err());
        assert!(!outside.join("planted").exists());
    }
}
