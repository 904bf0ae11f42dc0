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

/// Bytes of decompressed output handed on at a time: zstd's own block size (its
/// `ZSTD_DStreamOutSize`), so a block is decoded straight into it.
const ZSTD_OUTPUT_BYTES: usize = 128 * 1024;

/// Push-based zstd decompression: compressed bytes in as they arrive, decompressed bytes out
/// to a callback, on the caller's thread. Unlike a [`decoder`] over a reader it needs no
/// thread to pull with and copies nothing in front of zstd: each received chunk is decoded
/// from where it lies.
pub(crate) struct ZstdPush {
    decoder: zstd::stream::raw::Decoder<'static>,
    output: Box<[u8]>,
    /// Whether the last frame ended with the bytes pushed so far.
    at_frame_end: bool,
}

impl std::fmt::Debug for ZstdPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdPush")
            .field("at_frame_end", &self.at_frame_end)
            .finish_non_exhaustive()
    }
}

impl ZstdPush {
    /// A decompressor at the start of a stream of one or more zstd frames.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(ZstdPush {
            decoder: zstd::stream::raw::Decoder::new()?,
            output: vec![0; ZSTD_OUTPUT_BYTES].into_boxed_slice(),
            at_frame_end: true,
        })
    }

    /// Decompresses `input` and hands every piece of output to `out`, in order.
    ///
    /// # Errors
    /// Corrupt input, and what `out` returns.
    pub(crate) fn push(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        use zstd::stream::raw::{InBuffer, Operation as _, OutBuffer};
        let mut input = InBuffer::around(input);
        loop {
            let mut output = OutBuffer::around(&mut self.output[..]);
            let hint = self.decoder.run(&mut input, &mut output)?;
            let (produced, full) = (output.pos(), output.pos() == ZSTD_OUTPUT_BYTES);
            if hint == 0 {
                self.at_frame_end = true;
            } else if produced > 0 || input.pos() > 0 {
                self.at_frame_end = false;
            }
            if produced > 0 {
                out(&self.output[..produced])?;
            }
            // A full output buffer may leave decoded bytes inside zstd: run again.
            if input.pos() == input.src.len() && !full {
                return Ok(());
            }
        }
    }

    /// The stream is complete: an error when it stopped inside a frame.
    ///
    /// # Errors
    /// A truncated stream.
    pub(crate) fn finish(&self) -> io::Result<()> {
        if self.at_frame_end {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the zstd stream ends inside a frame",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_all(compressed: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        let mut push = ZstdPush::new()?;
        let mut out = Vec::new();
        for piece in compressed.chunks(chunk.max(1)) {
            push.push(piece, |bytes| {
                out.extend_from_slice(bytes);
                Ok(())
            })?;
        }
        push.finish()?;
        Ok(out)
    }

    fn sample() -> Vec<u8> {
        (0..700_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn zstd_pushed_in_any_chunking_gives_the_original_bytes() {
        let original = sample();
        let compressed = zstd::encode_all(&original[..], 3).unwrap();
        for chunk in [1, 7, 512, 32 * 1024, compressed.len()] {
            assert_eq!(push_all(&compressed, chunk).unwrap(), original, "{chunk}");
        }
    }

    #[test]
    fn concatenated_zstd_frames_decode_one_after_the_other() {
        let (a, b) = (sample(), b"second frame".repeat(1000));
        let mut compressed = zstd::encode_all(&a[..], 1).unwrap();
        compressed.extend(zstd::encode_all(&b[..], 1).unwrap());
        let mut expected = a;
        expected.extend(b);
        assert_eq!(push_all(&compressed, 4096).unwrap(), expected);
    }

    #[test]
    fn a_truncated_or_corrupt_zstd_stream_is_an_error() {
        let compressed = zstd::encode_all(&sample()[..], 3).unwrap();
        let truncated = push_all(&compressed[..compressed.len() - 3], 1000).unwrap_err();
        assert_eq!(truncated.kind(), io::ErrorKind::UnexpectedEof);
        let mut corrupt = compressed;
        corrupt[0] ^= 0xff;
        assert!(push_all(&corrupt, 1000).is_err());
    }

    #[test]
    fn an_empty_stream_is_complete() {
        assert_eq!(push_all(&[], 1).unwrap(), Vec::<u8>::new());
    }
}
