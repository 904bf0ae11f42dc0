//! Where `recv` and `decode` write: standard output or a file, and what makes it durable.
//!
//! - `-o FILE`: a regular file; [`Destination::flush_durable`] syncs it, and `recv` can cut it back
//!   to the last acknowledged byte ([`Destination::truncate_to`]).
//! - Standard output redirected to a regular file (`> FILE`): synced like `-o FILE`, but never
//!   cut back (the shell owns it; use `-o` to resume cleanly).
//! - Standard output that is a pipe or a terminal: flushed (handed to the reader); what the
//!   reader does with it afterwards is beyond this process.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd as _;
use std::path::Path;

/// Size of the output buffer.
const BUFFER: usize = 64 * 1024;

/// What the output is.
enum Target {
    /// `-o FILE`, a regular file.
    File(File),
    /// Standard output, a regular file: a duplicate of its descriptor, for syncing.
    RegularStdout(File),
    /// Standard output that is a pipe, terminal or other stream, or `-o` naming a FIFO or
    /// device.
    Stream,
}

/// A writer that counts the bytes it is given.
pub(crate) struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where output goes: standard output or a file (`-o`).
pub(crate) struct Destination {
    writer: Counted<BufWriter<Box<dyn Write + Send>>>,
    target: Target,
    /// Bytes in the file before `writer` counted any.
    base: u64,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("is_file", &self.is_file())
            .field("syncs", &self.syncs())
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl Destination {
    /// `-` or no path: standard output; otherwise the file, created or truncated.
    ///
    /// # Errors
    /// The file cannot be created.
    pub(crate) fn create(path: Option<&Path>) -> io::Result<Self> {
        Self::open_with(
            path,
            OpenOptions::new().write(true).create(true).truncate(true),
        )
    }

    /// `-` or no path: standard output; otherwise the file, created if missing and appended
    /// to.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub(crate) fn append(path: Option<&Path>) -> io::Result<Self> {
        Self::open_with(path, OpenOptions::new().append(true).create(true))
    }

    fn open_with(path: Option<&Path>, options: &OpenOptions) -> io::Result<Self> {
        match path {
            None => Ok(Self::stdout()),
            Some(p) if p.as_os_str() == "-" => Ok(Self::stdout()),
            Some(p) => {
                let file = options.open(p)?;
                let meta = file.metadata()?;
                let writer: Box<dyn Write + Send> = Box::new(file.try_clone()?);
                // A FIFO or device named by -o is written like a pipe: never synced or cut.
                let (target, base) = if meta.is_file() {
                    (Target::File(file), meta.len())
                } else {
                    (Target::Stream, 0)
                };
                Ok(Destination {
                    writer: counted(writer),
                    target,
                    base,
                })
            }
        }
    }

    fn stdout() -> Self {
        // A duplicate of descriptor 1, to sync it; none if standard output is closed.
        let target = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from)
            .map_or(Target::Stream, classify_stdout);
        Destination {
            writer: counted(Box::new(io::stdout())),
            target,
            base: 0,
        }
    }

    /// Bytes already in the output file (0 for standard output).
    ///
    /// # Errors
    /// The file's metadata cannot be read.
    pub(crate) fn existing_len(&self) -> io::Result<u64> {
        match &self.target {
            Target::File(file) => Ok(file.metadata()?.len()),
            Target::RegularStdout(_) | Target::Stream => Ok(0),
        }
    }

    /// The output's length once everything written so far is flushed: for `-o FILE`, the
    /// file's byte offset after the last byte written.
    pub(crate) fn position(&self) -> u64 {
        self.base + self.writer.written
    }

    /// The buffered writer.
    pub(crate) fn writer(&mut self) -> &mut Counted<BufWriter<Box<dyn Write + Send>>> {
        &mut self.writer
    }

    /// Flushes the buffer and, for a file (`-o`, or standard output redirected to one), makes
    /// it durable: after this returns, everything written may be acknowledged to the server.
    ///
    /// # Errors
    /// Write or sync failures.
    pub(crate) fn flush_durable(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        match &self.target {
            Target::File(file) | Target::RegularStdout(file) => file.sync_data(),
            Target::Stream => Ok(()),
        }
    }

    /// Flushes what is buffered, then cuts an `-o` file back to `len` bytes (dropping what was
    /// written after it) and syncs it. Later writes continue at `len`.
    ///
    /// # Errors
    /// Write, truncate or sync failures; `Unsupported` when the output is not an `-o` file.
    pub(crate) fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        self.writer.flush()?;
        let Target::File(file) = &self.target else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        file.set_len(len)?;
        file.sync_data()?;
        self.base = len;
        self.writer.written = 0;
        Ok(())
    }

    /// Whether output goes to an `-o` file.
    pub(crate) fn is_file(&self) -> bool {
        matches!(self.target, Target::File(_))
    }

    /// Whether [`Destination::flush_durable`] syncs to disk (an `-o` file, or standard output
    /// redirected to a regular file); syncs are expensive, so they are batched.
    pub(crate) fn syncs(&self) -> bool {
        !matches!(self.target, Target::Stream)
    }
}

fn counted(writer: Box<dyn Write + Send>) -> Counted<BufWriter<Box<dyn Write + Send>>> {
    Counted {
        inner: BufWriter::with_capacity(BUFFER, writer),
        written: 0,
    }
}

/// Standard output (given as a duplicate of its descriptor) is synced only when it is a
/// regular file: syncing a pipe or terminal fails or means nothing.
fn classify_stdout(handle: File) -> Target {
    match handle.metadata() {
        Ok(meta) if meta.is_file() => Target::RegularStdout(handle),
        _ => Target::Stream,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn standard_output_is_synced_only_when_it_is_a_regular_file() {
        let file = tempfile::tempfile().unwrap();
        assert!(matches!(classify_stdout(file), Target::RegularStdout(_)));
        let (reader, writer) = io::pipe().unwrap();
        assert!(matches!(
            classify_stdout(File::from(std::os::fd::OwnedFd::from(writer))),
            Target::Stream
        ));
        drop(reader);
        let null = File::options().write(true).open("/dev/null").unwrap();
        assert!(matches!(classify_stdout(null), Target::Stream));
    }

    #[test]
    fn truncation_drops_the_unacknowledged_tail_and_writing_continues_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"old\n").unwrap();
        let mut out = Destination::append(Some(&path)).unwrap();
        assert_eq!(out.position(), 4);
        out.writer().write_all(b"acked\n").unwrap();
        let acked = out.position();
        out.writer().write_all(b"half a li").unwrap();
        assert_eq!(out.position(), acked + 9);
        out.truncate_to(acked).unwrap();
        out.writer().write_all(b"next\n").unwrap();
        out.flush_durable().unwrap();
        assert_eq!(out.position(), acked + 5);
        let mut text = String::new();
        File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "old\nacked\nnext\n");
        assert!(out.is_file() && out.syncs());
        let null = Destination::append(Some(Path::new("/dev/null"))).unwrap();
        assert!(!null.is_file() && !null.syncs());
    }
}
