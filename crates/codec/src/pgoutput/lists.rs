//! Borrowed lists inside messages: Relation columns and Truncate relation OIDs.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::DecodeError;
use crate::ids::Oid;
use crate::reader::Reader;

use super::messages::RelationColumn;

/// The columns of a borrowed [`Relation`](super::Relation), validated on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelationColumns<'a> {
    count: u16,
    raw: &'a [u8],
}

impl<'a> RelationColumns<'a> {
    /// Number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The columns, in table order.
    pub fn iter(&self) -> RelationColumnIter<'a> {
        RelationColumnIter {
            rest: self.raw,
            remaining: self.count,
        }
    }

    /// Owned copies of the columns.
    pub fn to_vec(&self) -> Vec<RelationColumn<String>> {
        let mut v = Vec::with_capacity(self.len());
        v.extend(self.iter().map(|c| RelationColumn {
            flags: c.flags,
            name: c.name.to_string(),
            type_oid: c.type_oid,
            type_modifier: c.type_modifier,
        }));
        v
    }
}

impl<'a> IntoIterator for &RelationColumns<'a> {
    type Item = RelationColumn<&'a str>;
    type IntoIter = RelationColumnIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Reads and validates the column count and columns of a Relation message.
pub(crate) fn read_relation_columns<'a>(
    r: &mut Reader<'a>,
) -> Result<RelationColumns<'a>, DecodeError> {
    let count = r.u16("relation column count")?;
    let start_len = r.remaining();
    // Each column takes at least 10 bytes (flags, NUL, type oid, typmod).
    if usize::from(count) * 10 > start_len {
        return Err(DecodeError::Oversized {
            tag: crate::error::Tag(r.tag()),
            offset: r.offset() - 2,
            declared: count.into(),
            available: start_len,
            expected: "relation column count",
        });
    }
    let mut probe = r.clone();
    for _ in 0..count {
        probe.u8("relation column flags")?;
        probe.cstr("relation column name")?;
        probe.u32("relation column type oid")?;
        probe.i32("relation column type modifier")?;
    }
    let used = start_len - probe.remaining();
    let raw = r.take(used, 0, "relation columns")?;
    Ok(RelationColumns { count, raw })
}

/// Iterator over [`RelationColumns`].
#[derive(Debug, Clone)]
pub struct RelationColumnIter<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Iterator for RelationColumnIter<'a> {
    type Item = RelationColumn<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Validated on decode; a mismatch ends the iteration rather than panicking.
        let (&flags, rest) = self.rest.split_first()?;
        let nul = rest.iter().position(|&b| b == 0)?;
        let (name, rest) = rest.split_at_checked(nul)?;
        let name = core::str::from_utf8(name).ok()?;
        let rest = rest.get(1..)?;
        let (oid, rest) = rest.split_first_chunk::<4>()?;
        let (typmod, rest) = rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(RelationColumn {
            flags,
            name,
            type_oid: Oid(u32::from_be_bytes(*oid)),
            type_modifier: i32::from_be_bytes(*typmod),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.remaining);
        (n, Some(n))
    }
}

impl ExactSizeIterator for RelationColumnIter<'_> {}

/// The relation OIDs of a borrowed [`Truncate`](super::Truncate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OidList<'a> {
    raw: &'a [u8],
}

impl<'a> OidList<'a> {
    /// Number of OIDs.
    pub fn len(&self) -> usize {
        self.raw.len() / 4
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The OIDs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Oid> + 'a {
        self.raw
            .as_chunks::<4>()
            .0
            .iter()
            .map(|c| Oid(u32::from_be_bytes(*c)))
    }

    /// The OIDs as a `Vec`.
    pub fn to_vec(&self) -> Vec<Oid> {
        self.iter().collect()
    }
}

/// Reads `count` OIDs.
pub(crate) fn read_oids<'a>(r: &mut Reader<'a>, count: i32) -> Result<OidList<'a>, DecodeError> {
    let n = usize::try_from(count)
        .map_err(|_| r.invalid(4 + 1, count.into(), "non-negative relation count"))?;
    let bytes = n.saturating_mul(4);
    // `take` reports a count beyond the remaining bytes as oversized at the count field.
    let raw = r.take(bytes, 4 + 1, "truncated relation OIDs")?;
    Ok(OidList { raw })
}
