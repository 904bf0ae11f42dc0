//! One open segment file, optionally compressed.

use std::fs::File;
use std::io::Write;

use super::Compression;

/// The file of the segment being written, behind its compressor.
pub(crate) enum Sink {
    Plain(File),
    Gzip(flate2::write::GzEncoder<File>),
    Lz4(Box<lz4_flex::frame::FrameEncoder<File>>),
    Zstd(zstd::Encoder<'static, File>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::Plain(_) => "Sink::Plain",
            Sink::Gzip(_) => "Sink::Gzip",
            Sink::Lz4(_) => "Sink::Lz4",
            Sink::Zstd(_) => "Sink::Zstd",
        })
    }
}

impl Sink {
    pub(crate) fn new(file: File, compression: Compression) -> std::io::Result<Sink> {
        Ok(match compression {
            Compression::None => Sink::Plain(file),
            Compression::Gzip { level } => Sink::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::new(level.clamp(1, 9)),
            )),
            Compression::Lz4 => Sink::Lz4(Box::new(lz4_flex::frame::FrameEncoder::new(file))),
            Compression::Zstd { level } => Sink::Zstd(zstd::Encoder::new(file, level)?),
        })
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(data),
            Sink::Gzip(e) => e.write_all(data),
            Sink::Lz4(e) => e.write_all(data),
            Sink::Zstd(e) => e.write_all(data),
        }
    }

    /// Pushes everything written so far into the file (a compressor's pending block too) and
    /// optionally fsyncs it.
    pub(crate) fn flush(&mut self, sync: bool) -> std::io::Result<()> {
        let file = match self {
            Sink::Plain(f) => f,
            Sink::Gzip(e) => {
                e.flush()?;
                e.get_mut()
            }
            Sink::Lz4(e) => {
                e.flush()?;
                e.get_mut()
            }
            Sink::Zstd(e) => {
                e.flush()?;
                e.get_mut()
            }
        };
        if sync { file.sync_data() } else { Ok(()) }
    }

    /// Ends the compressed stream (trailer, end mark) and returns the file.
    pub(crate) fn finish(self) -> std::io::Result<File> {
        match self {
            Sink::Plain(f) => Ok(f),
            Sink::Gzip(e) => e.finish(),
            Sink::Lz4(e) => e.finish().map_err(std::io::Error::other),
            Sink::Zstd(e) => e.finish(),
        }
    }
}
