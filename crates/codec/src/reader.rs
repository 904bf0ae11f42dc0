//! A cursor over one message that reads its fields and turns a short or malformed field into a
//! [`DecodeError`] with its offset.

use nom::IResult;

use crate::error::{DecodeError, Tag};

/// Reads fields of one message front to back, tracking the byte offset for errors.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    len: usize,
    rest: &'a [u8],
    tag: Tag,
}

type NomResult<'a, O> = IResult<&'a [u8], O, ()>;

impl<'a> Reader<'a> {
    /// A reader over a whole message whose tag byte is `message[0]`; the tag is consumed.
    pub(crate) fn message(message: &'a [u8], expected: &'static str) -> Result<Self, DecodeError> {
        match message.split_first() {
            Some((&tag, _)) => Ok(Self {
                len: message.len(),
                rest: message.get(1..).unwrap_or_default(),
                tag: Tag(tag),
            }),
            None => Err(DecodeError::Empty { expected }),
        }
    }

    /// The tag byte of the message.
    pub(crate) fn tag(&self) -> u8 {
        self.tag.0
    }

    /// Byte offset of the next unread byte, counted from the start of the message.
    pub(crate) fn offset(&self) -> usize {
        self.len - self.rest.len()
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn peek(&self) -> &'a [u8] {
        self.rest
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    #[inline]
    fn run<O>(
        &mut self,
        parser: impl FnOnce(&'a [u8]) -> NomResult<'a, O>,
        expected: &'static str,
    ) -> Result<O, DecodeError> {
        match parser(self.rest) {
            Ok((rest, value)) => {
                self.rest = rest;
                Ok(value)
            }
            Err(_) => Err(self.truncated(expected)),
        }
    }

    /// A [`DecodeError::Truncated`] at the current offset.
    pub(crate) fn truncated(&self, expected: &'static str) -> DecodeError {
        DecodeError::Truncated {
            tag: self.tag,
            offset: self.offset(),
            expected,
        }
    }

    /// A [`DecodeError::InvalidValue`] for a field that started `width` bytes ago.
    pub(crate) fn invalid(&self, width: usize, value: i64, expected: &'static str) -> DecodeError {
        DecodeError::InvalidValue {
            tag: self.tag,
            offset: self.offset().saturating_sub(width),
            value,
            expected,
        }
    }

    /// A [`DecodeError::UnknownTag`] for the byte just read.
    pub(crate) fn unknown_tag(&self, found: u8, expected: &'static str) -> DecodeError {
        DecodeError::UnknownTag {
            tag: self.tag,
            offset: self.offset().saturating_sub(1),
            found: Tag(found),
            expected,
        }
    }

    /// The next `N` bytes as an array (the fixed-width fields: a bounds check and a copy,
    /// no parser machinery on the per-message path).
    #[inline]
    fn array<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], DecodeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((bytes, rest)) => {
                self.rest = rest;
                Ok(*bytes)
            }
            None => Err(self.truncated(expected)),
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self, expected: &'static str) -> Result<u8, DecodeError> {
        self.array::<1>(expected).map(|[b]| b)
    }

    #[inline]
    pub(crate) fn u16(&mut self, expected: &'static str) -> Result<u16, DecodeError> {
        self.array(expected).map(u16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self, expected: &'static str) -> Result<u32, DecodeError> {
        self.array(expected).map(u32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i32(&mut self, expected: &'static str) -> Result<i32, DecodeError> {
        self.array(expected).map(i32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u64(&mut self, expected: &'static str) -> Result<u64, DecodeError> {
        self.array(expected).map(u64::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i64(&mut self, expected: &'static str) -> Result<i64, DecodeError> {
        self.array(expected).map(i64::from_be_bytes)
    }

    /// Exactly `n` bytes; a length larger than what remains is [`DecodeError::Oversized`]
    /// reported at the length field, `width` bytes back.
    #[inline]
    pub(crate) fn take(
        &mut self,
        n: usize,
        width: usize,
        expected: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        match self.rest.split_at_checked(n) {
            Some((taken, rest)) => {
                self.rest = rest;
                Ok(taken)
            }
            None => Err(DecodeError::Oversized {
                tag: self.tag,
                offset: self.offset().saturating_sub(width),
                declared: n as u64,
                available: self.rest.len(),
                expected,
            }),
        }
    }

    /// A NUL-terminated UTF-8 string (the terminator is consumed, not returned).
    pub(crate) fn cstr(&mut self, expected: &'static str) -> Result<&'a str, DecodeError> {
        let start = self.offset();
        let bytes = self.run(nom::bytes::complete::take_till(|b| b == 0), expected)?;
        // The terminator itself.
        self.u8(expected)?;
        core::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 {
            tag: self.tag,
            offset: start,
            expected,
        })
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                tag: self.tag,
                offset: self.offset(),
                count: self.rest.len(),
            })
        }
    }
}
