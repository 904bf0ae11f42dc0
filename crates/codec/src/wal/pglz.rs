//! Decompression of PostgreSQL's pglz format (`src/common/pg_lzcompress.c`), used for
//! full-page images with `wal_compression = pglz` (and `on` before 15).
//!
//! The format: a control byte whose 8 bits (least significant first) say whether each of
//! the next 8 items is a literal byte (0) or a back-reference (1) of 2–3 bytes: length
//! `(b0 & 0x0F) + 3` (18 means "add the next byte"), offset `((b0 & 0xF0) << 4) | b1`,
//! copied byte by byte so that overlapping references repeat a pattern.

/// Why a pglz stream could not be decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PglzError {
    /// A back-reference points before the start of the output, or has offset 0.
    #[error(
        "pglz back-reference at input byte {at} has offset {offset} with only {written} bytes written"
    )]
    BadOffset {
        /// Input offset of the reference.
        at: usize,
        /// The reference's offset.
        offset: usize,
        /// Output bytes written so far.
        written: usize,
    },
    /// The input ends inside a back-reference.
    #[error("pglz input ends inside a back-reference at byte {at}")]
    Truncated {
        /// Input offset of the reference.
        at: usize,
    },
    /// The input and output did not end together (`check_complete`).
    #[error(
        "pglz stream produced {written} of {expected} bytes and consumed {consumed} of {input} input bytes"
    )]
    Incomplete {
        /// Bytes produced.
        written: usize,
        /// Bytes expected (the output's length).
        expected: usize,
        /// Input bytes consumed.
        consumed: usize,
        /// Input length.
        input: usize,
    },
}

/// Decompresses `source` into all of `dest`, which must come out exactly full with the
/// input exactly consumed (PostgreSQL's `check_complete = true`).
///
/// ```
/// use pg_walstream_codec::wal::pglz::decompress;
/// // Control byte 0b10: literal 'a', then a reference of length 3+2=5 at offset 1.
/// let mut out = [0u8; 6];
/// decompress(&[0b10, b'a', 0x02, 0x01], &mut out).unwrap();
/// assert_eq!(&out, b"aaaaaa");
/// ```
///
/// # Errors
/// [`PglzError`] for corrupt input; never panics and never reads or writes out of bounds.
pub fn decompress(source: &[u8], dest: &mut [u8]) -> Result<(), PglzError> {
    let written = decompress_partial(source, dest)?;
    let (written, consumed) = written;
    if written != dest.len() || consumed != source.len() {
        return Err(PglzError::Incomplete {
            written,
            expected: dest.len(),
            consumed,
            input: source.len(),
        });
    }
    Ok(())
}

/// Decompresses until `dest` is full or `source` ends; returns (bytes written, bytes read).
///
/// # Errors
/// [`PglzError::BadOffset`] or [`PglzError::Truncated`] for corrupt input.
pub fn decompress_partial(source: &[u8], dest: &mut [u8]) -> Result<(usize, usize), PglzError> {
    let (mut sp, mut dp) = (0usize, 0usize);
    while sp < source.len() && dp < dest.len() {
        let mut ctrl = source[sp];
        sp += 1;
        let mut bit = 0;
        while bit < 8 && sp < source.len() && dp < dest.len() {
            if ctrl & 1 != 0 {
                let at = sp;
                let (Some(&b0), Some(&b1)) = (source.get(sp), source.get(sp + 1)) else {
                    return Err(PglzError::Truncated { at });
                };
                let mut len = usize::from(b0 & 0x0F) + 3;
                let offset = (usize::from(b0 & 0xF0) << 4) | usize::from(b1);
                sp += 2;
                if len == 18 {
                    let Some(&extra) = source.get(sp) else {
                        return Err(PglzError::Truncated { at });
                    };
                    len += usize::from(extra);
                    sp += 1;
                }
                if offset == 0 || offset > dp {
                    return Err(PglzError::BadOffset {
                        at,
                        offset,
                        written: dp,
                    });
                }
                len = len.min(dest.len() - dp);
                if offset >= len {
                    dest.copy_within(dp - offset..dp - offset + len, dp);
                } else {
                    for i in dp..dp + len {
                        dest[i] = dest[i - offset];
                    }
                }
                dp += len;
            } else {
                dest[dp] = source[sp];
                dp += 1;
                sp += 1;
            }
            ctrl >>= 1;
            bit += 1;
        }
    }
    Ok((dp, sp))
}
