//! Restoring full-page images: decompress (pglz always; LZ4 with the `lz4` feature; zstd
//! with the `zstd` feature) and re-insert the hole, giving the whole page.

use crate::wal::pglz::{self, PglzError};
use crate::wal::record::{BlockImage, ImageCompression};

/// Why a full-page image could not be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The output buffer is not exactly one page.
    #[error("output buffer holds {got} bytes, the page has {page_size}")]
    BufferSize {
        /// Buffer length.
        got: usize,
        /// Page size.
        page_size: u32,
    },
    /// The pglz data is corrupt.
    #[error("pglz: {0}")]
    Pglz(#[from] PglzError),
    /// The LZ4 or zstd data is corrupt or does not fill the page.
    #[error("{method} data of the image is corrupt or does not give {expected} bytes")]
    Decompress {
        /// `"lz4"` or `"zstd"`.
        method: &'static str,
        /// Bytes expected.
        expected: usize,
    },
    /// The image's compression method is not compiled in.
    #[error("{0} support is not compiled in (enable the codec's `{0}` feature)")]
    Unsupported(&'static str),
    /// The uncompressed image and hole do not make up a page.
    #[error(
        "image of {image} bytes with a hole of {hole} bytes does not make a {page_size}-byte page"
    )]
    Inconsistent {
        /// Image bytes.
        image: usize,
        /// Hole bytes.
        hole: usize,
        /// Page size.
        page_size: u32,
    },
}

/// Restores `image` into `page`, which must be exactly [`BlockImage::page_size`] bytes long
/// (as PostgreSQL's `RestoreBlockImage`).
///
/// # Errors
/// [`ImageError`] for a wrong buffer, corrupt compressed data or a compression method that is
/// not compiled in.
pub fn restore(image: &BlockImage<'_>, page: &mut [u8]) -> Result<(), ImageError> {
    let page_size = image.page_size();
    if page.len() != page_size as usize {
        return Err(ImageError::BufferSize {
            got: page.len(),
            page_size,
        });
    }
    let hole_offset = usize::from(image.hole_offset());
    let hole = usize::from(image.hole_length());
    let data_len = page.len() - hole;
    // Decompress (or copy) the image's bytes to the start of the page, then open the hole.
    let dst = &mut page[..data_len];
    match image.compression() {
        ImageCompression::None => {
            if image.bytes().len() != data_len {
                return Err(ImageError::Inconsistent {
                    image: image.bytes().len(),
                    hole,
                    page_size,
                });
            }
            dst.copy_from_slice(image.bytes());
        }
        ImageCompression::Pglz => pglz::decompress(image.bytes(), dst)?,
        ImageCompression::Lz4 => lz4(image.bytes(), dst)?,
        ImageCompression::Zstd => zstd(image.bytes(), dst)?,
    }
    if hole > 0 {
        page.copy_within(hole_offset..data_len, hole_offset + hole);
        page[hole_offset..hole_offset + hole].fill(0);
    }
    Ok(())
}

#[cfg(feature = "lz4")]
fn lz4(src: &[u8], dst: &mut [u8]) -> Result<(), ImageError> {
    match lz4_flex::block::decompress_into(src, dst) {
        Ok(n) if n == dst.len() => Ok(()),
        _ => Err(ImageError::Decompress {
            method: "lz4",
            expected: dst.len(),
        }),
    }
}

#[cfg(not(feature = "lz4"))]
fn lz4(_: &[u8], _: &mut [u8]) -> Result<(), ImageError> {
    Err(ImageError::Unsupported("lz4"))
}

#[cfg(feature = "zstd")]
fn zstd(src: &[u8], dst: &mut [u8]) -> Result<(), ImageError> {
    match zstd::bulk::decompress_to_buffer(src, dst) {
        Ok(n) if n == dst.len() => Ok(()),
        _ => Err(ImageError::Decompress {
            method: "zstd",
            expected: dst.len(),
        }),
    }
}

#[cfg(not(feature = "zstd"))]
fn zstd(_: &[u8], _: &mut [u8]) -> Result<(), ImageError> {
    Err(ImageError::Unsupported("zstd"))
}

#[cfg(all(test, feature = "lz4"))]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    /// An LZ4 block of an 8 KiB page: one literal repeated by a long match, then the five
    /// literals the format requires at the end.
    fn lz4_page_block() -> Vec<u8> {
        let mut block = alloc::vec![0x1F, b'x', 0x01, 0x00];
        // Match length 8186 = 4 + 15 + 32 × 255 + 7.
        block.extend([0xFF; 32]);
        block.push(7);
        block.push(0x50);
        block.extend(*b"yyyyy");
        block
    }

    #[test]
    fn lz4_image_decodes_and_damaged_ones_are_errors() {
        let block = lz4_page_block();
        let mut page = [0u8; 8192];
        lz4(&block, &mut page).unwrap();
        assert!(page[..8187].iter().all(|&b| b == b'x'));
        assert_eq!(&page[8187..], b"yyyyy");
        for len in 0..block.len() {
            assert!(
                lz4(&block[..len], &mut page).is_err(),
                "truncated to {len} bytes"
            );
        }
        // Any flipped bit decodes or fails, and none panics.
        for at in 0..block.len() {
            for bit in 0..8 {
                let mut damaged = block.clone();
                damaged[at] ^= 1 << bit;
                let _ = lz4(&damaged, &mut page);
            }
        }
    }
}
