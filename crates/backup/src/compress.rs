//! Client-side decompression of server-compressed archives and client-side compression of
//! archives written as files: gzip (flate2), LZ4 frames (lz4_flex), zstd.

use std::io::{self, Read, Write};

use crate::options::{Compression, CompressionMethod};

/// `reader` decompressed with `method` (`None`: as is).
pub(crate) fn decoder<'a, R: Read + Send + 'a>(
    method: Option<CompressionMethod>,
    reader: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match method {
        None => Box::new(reader),
        Some(CompressionMethod::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Some(CompressionMethod::Lz4) => Box::new(lz4_flex::frame::FrameDecoder::new(reader)),
        Some(CompressionMethod::Zstd) => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// A writer that compresses (or not) into `W`; [`finish`](Self::finish) writes the trailer.
pub(crate) enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Lz4(Box<lz4_flex::frame::FrameEncoder<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Compresses into `writer` as `compression` says (`None`: passes bytes through).
    pub(crate) fn new(compression: Option<&Compression>, writer: W) -> io::Result<Self> {
        let Some(compression) = compression else {
            return Ok(Self::Plain(writer));
        };
        Ok(match compression.method {
            CompressionMethod::Gzip => Self::Gzip(flate2::write::GzEncoder::new(
                writer,
                flate2::Compression::new(compression.level.map_or(6, |l| l as u32)),
            )),
            CompressionMethod::Lz4 => {
                Self::Lz4(Box::new(lz4_flex::frame::FrameEncoder::new(writer)))
            }
            CompressionMethod::Zstd => {
                let mut encoder =
                    zstd::stream::write::Encoder::new(writer, compression.level.unwrap_or(3))?;
                if compression.long {
                    encoder.long_distance_matching(true)?;
                }
                Self::Zstd(encoder)
            }
        })
    }

    /// Writes the compressed stream's trailer and returns the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Gzip(e) => e.finish(),
            Self::Lz4(e) => e.finish().map_err(io::Error::other),
            Self::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Gzip(e) => e.write(buf),
            Self::Lz4(e) => e.write(buf),
            Self::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(e) => e.flush(),
            Self::Lz4(e) => e.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}
