//! Push-based extraction of an uncompressed tar stream, chunk by chunk as the server sends it,
//! on the caller's thread: no worker thread, no reader in between, and every file's bytes go
//! from the received chunk straight to `write` (the receive buffer is free again once the chunk
//! is handled, so the transport reuses it instead of allocating a new one).
//!
//! It understands what PostgreSQL's `BASE_BACKUP` sends — regular files, directories and
//! symbolic links directly under `pg_tblspc` (ustar, with base-256 sizes for files over
//! 8 GiB) — and refuses anything else with an error naming the entry: other link types,
//! links elsewhere, paths leaving the target or passing through a tablespace link.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use crate::extract::{TablespaceMapping, bad_entry, map_tablespace, with_path};

/// A tar block.
const BLOCK: usize = 512;

/// What the extractor expects next.
#[derive(Debug)]
enum State {
    /// (The rest of) a header block.
    Header,
    /// A regular file's content: written to `file` (`None`: skipped), `remaining` bytes, then
    /// `padding` bytes up to the next block.
    Content {
        file: Option<OpenFile>,
        remaining: u64,
        padding: usize,
    },
    /// After the end-of-archive block: the rest is dropped.
    Ended,
}

/// A file being written and what it gets once complete.
#[derive(Debug)]
struct OpenFile {
    file: File,
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

/// Extracts one archive into a directory as its chunks arrive ([`push`](Self::push)).
#[derive(Debug)]
pub(crate) struct Extractor {
    target: PathBuf,
    mappings: Vec<TablespaceMapping>,
    state: State,
    header: [u8; BLOCK],
    header_len: usize,
    /// Names of the symbolic links created under `pg_tblspc`: nothing is written through them.
    links: HashSet<OsString>,
}

impl Extractor {
    /// Extracts into `target` (which must exist and be empty), rewriting `pg_tblspc/<oid>`
    /// links by `mappings`.
    pub(crate) fn new(target: PathBuf, mappings: Vec<TablespaceMapping>) -> Self {
        Extractor {
            target,
            mappings,
            state: State::Header,
            header: [0; BLOCK],
            header_len: 0,
            links: HashSet::new(),
        }
    }

    /// The directory extracted into.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Consumes the next bytes of the archive.
    ///
    /// # Errors
    /// A malformed or refused entry (the error names it), or a failed file operation.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match &mut self.state {
                State::Ended => return Ok(()),
                State::Header => {
                    let n = (BLOCK - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                    self.header_len += n;
                    data = &data[n..];
                    if self.header_len == BLOCK {
                        self.header_len = 0;
                        self.state = self.start_entry()?;
                    }
                }
                State::Content {
                    file,
                    remaining,
                    padding,
                } => {
                    if *remaining > 0 {
                        let n =
                            usize::try_from(*remaining).map_or(data.len(), |r| r.min(data.len()));
                        if let Some(open) = file {
                            open.file
                                .write_all(&data[..n])
                                .map_err(|e| with_path(&open.path, &e))?;
                        }
                        *remaining -= n as u64;
                        data = &data[n..];
                        if *remaining > 0 {
                            continue;
                        }
                        if let Some(open) = file.take() {
                            complete(open)?;
                        }
                    }
                    let n = (*padding).min(data.len());
                    *padding -= n;
                    data = &data[n..];
                    if *padding == 0 {
                        self.state = State::Header;
                    }
                }
            }
        }
        // A file without content is complete as soon as its header is.
        if let State::Content {
            file,
            remaining: 0,
            padding: 0,
        } = &mut self.state
        {
            if let Some(open) = file.take() {
                complete(open)?;
            }
            self.state = State::Header;
        }
        Ok(())
    }

    /// The archive is complete: checks that it did not stop inside an entry.
    ///
    /// # Errors
    /// When the archive ends inside a header or a file's content.
    pub(crate) fn finish(&self) -> io::Result<()> {
        match self.state {
            State::Header if self.header_len == 0 => Ok(()),
            State::Ended => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            )),
        }
    }

    /// Parses the header block just completed and prepares its entry.
    fn start_entry(&mut self) -> io::Result<State> {
        let header = &self.header;
        if header.iter().all(|&b| b == 0) {
            return Ok(State::Ended);
        }
        let path = entry_path(header)?;
        let bad = |reason: &str| bad_entry(&path, reason);
        let computed: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if number(&header[148..156]) != Some(computed) {
            return Err(bad("header checksum mismatch"));
        }
        let size = number(&header[124..136]).ok_or_else(|| bad("bad size field"))?;
        let mode = number(&header[100..108]).ok_or_else(|| bad("bad mode field"))?;
        let mode = u32::try_from(mode & 0o7777).unwrap_or(0o600);
        let mtime = number(&header[136..148]).ok_or_else(|| bad("bad mtime field"))?;
        let padding = usize::try_from((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64)
            .unwrap_or_default();
        let kind = header[156];
        if self.through_link(&path) {
            return Err(bad("would be written through a tablespace link"));
        }
        let destination = self.target.join(&path);
        let file = match kind {
            b'0' | b'\0' | b'7' => {
                if let Some(parent) = destination.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| with_path(&path, &e))?;
                }
                let file = create_file(&destination, mode).map_err(|e| with_path(&path, &e))?;
                Some(OpenFile {
                    file,
                    path: destination,
                    mode,
                    mtime,
                })
            }
            b'5' => {
                create_dir(&destination, mode).map_err(|e| with_path(&path, &e))?;
                None
            }
            b'2' => {
                let mut parts = path.components();
                let name = match (parts.next(), parts.next(), parts.next()) {
                    (Some(Component::Normal(dir)), Some(Component::Normal(name)), None)
                        if dir == "pg_tblspc" =>
                    {
                        name.to_owned()
                    }
                    _ => return Err(bad("a symbolic link outside pg_tblspc")),
                };
                let link = field(&header[157..257]);
                if link.is_empty() {
                    return Err(bad("symlink without a target"));
                }
                let link = Path::new(OsStr::from_bytes(link));
                if let Some(parent) = destination.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| with_path(&path, &e))?;
                }
                std::os::unix::fs::symlink(map_tablespace(&self.mappings, link), &destination)
                    .map_err(|e| with_path(&path, &e))?;
                self.links.insert(name);
                None
            }
            b'1' => return Err(bad("a hard link (PostgreSQL sends none)")),
            other => {
                return Err(bad(&format!(
                    "unsupported entry type {:?}",
                    char::from(other)
                )));
            }
        };
        Ok(State::Content {
            file,
            remaining: size,
            padding,
        })
    }

    /// Whether `path` lies under a link this extraction created in `pg_tblspc`.
    fn through_link(&self, path: &Path) -> bool {
        let mut parts = path.components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(dir)), Some(Component::Normal(name))) if dir == "pg_tblspc" => {
                self.links.contains(name)
            }
            _ => false,
        }
    }
}

/// Gives a complete file its archived mode (the umask may have narrowed it) and mtime.
fn complete(open: OpenFile) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let OpenFile {
        file,
        path,
        mode,
        mtime,
    } = open;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| {
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
        })
        .map_err(|e| with_path(&path, &e))
}

fn create_file(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The entry's relative path (ustar prefix and name), checked to stay inside the target.
fn entry_path(header: &[u8; BLOCK]) -> io::Result<PathBuf> {
    let name = field(&header[..100]);
    let mut path = PathBuf::new();
    if &header[257..263] == b"ustar\0" {
        let prefix = field(&header[345..500]);
        if !prefix.is_empty() {
            path.push(OsStr::from_bytes(prefix));
        }
    }
    path.push(OsStr::from_bytes(name));
    if path.as_os_str().is_empty() {
        return Err(bad_entry(&path, "an empty name"));
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad_entry(&path, "not a relative path inside the archive"));
    }
    // Without `./` parts or a trailing slash (PostgreSQL names tablespace links
    // `pg_tblspc/<oid>/` on some versions, and a symlink cannot be created at such a path).
    let path: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if path.as_os_str().is_empty() {
        return Err(bad_entry(&path, "an empty name"));
    }
    Ok(path)
}

/// A NUL-terminated header field.
fn field(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes, |end| &bytes[..end])
}

/// An octal number field (spaces and NULs around it; an empty one is 0), or base-256 when the
/// high bit of the first byte is set (GNU tar and PostgreSQL for sizes of 8 GiB and more).
fn number(bytes: &[u8]) -> Option<u64> {
    if bytes.first().is_some_and(|&b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(bytes[0] & 0x7f);
        for &b in &bytes[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let text = bytes
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ');
    let mut value: u64 = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
#[path = "untar_tests.rs"]
mod tests;
