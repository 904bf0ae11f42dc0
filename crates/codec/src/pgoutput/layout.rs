//! Column offsets of validated tuples.
//!
//! Validating a TupleData walks every column once; [`ColumnIndex`] keeps where the columns
//! start as that walk finds them, inline (no heap allocation, whatever the width), so a
//! column is read by position without walking the tuple again. A [`TupleLayout`] detaches a
//! validated tuple from the bytes it borrows, so a consumer that keeps the message bytes
//! (and the layout next to them) can read the tuple again later without re-validating it.

use super::tuple::{COLUMN_BINARY, COLUMN_NULL, COLUMN_TEXT, COLUMN_UNCHANGED_TOAST};
use super::tuple::{Column, Columns, TupleData};

/// How many column offsets a tuple keeps inline. A tuple of at most this many columns keeps
/// every column's offset; a wider one keeps the offset of every 2ⁿ-th column (the smallest
/// n that fits), so reading a column walks fewer than 2ⁿ columns from the nearest one kept.
/// Offsets are 16-bit, which keeps a tuple view small enough to move without a `memcpy`
/// call: columns that start 64 KiB or more into a tuple are found by walking from the last
/// offset kept before them.
pub const INDEX_ANCHORS: usize = 8;

/// Offsets, within a tuple's column bytes, of the columns `k << shift` for each `k` below
/// `kept` (the first is always kept: it starts at 0).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnIndex {
    shift: u8,
    kept: u8,
    anchors: [u16; INDEX_ANCHORS],
}

impl ColumnIndex {
    /// An index that keeps only the first column's offset: columns are found by walking.
    pub(crate) const fn unindexed() -> Self {
        ColumnIndex {
            shift: 0,
            kept: 1,
            anchors: [0; INDEX_ANCHORS],
        }
    }

    /// Validates `count` columns at the start of `raw`, keeping where they start: the length
    /// they take and the index, or `None` if they are not well-formed (the hot path of
    /// decoding: plain slice operations, no error building).
    #[inline]
    pub(crate) fn scan(raw: &[u8], count: u16) -> Option<(usize, ColumnIndex)> {
        let count = usize::from(count);
        let mut index = ColumnIndex::unindexed();
        if count > INDEX_ANCHORS {
            // Columns per kept offset, rounded up to a power of two.
            let per = count.div_ceil(INDEX_ANCHORS);
            index.shift = per.next_power_of_two().trailing_zeros() as u8;
        }
        let mask = (1usize << index.shift) - 1;
        let mut rest = raw;
        for column in 0..count {
            if column & mask == 0 {
                let Ok(offset) = u16::try_from(raw.len() - rest.len()) else {
                    // Past 64 KiB: no more offsets fit; validate the remaining columns only.
                    for _ in column..count {
                        rest = skip_column(rest)?;
                    }
                    break;
                };
                if let Some(slot) = index.anchors.get_mut(column >> index.shift) {
                    *slot = offset;
                    index.kept = (column >> index.shift) as u8 + 1;
                }
            }
            rest = skip_column(rest)?;
        }
        Some((raw.len() - rest.len(), index))
    }

    /// The column at `index` of the validated column bytes `raw` holding `count` columns.
    #[inline]
    pub(crate) fn column<'a>(&self, raw: &'a [u8], count: u16, index: usize) -> Option<Column<'a>> {
        let index_u16 = u16::try_from(index).ok().filter(|&i| i < count)?;
        let anchor = (index >> self.shift).min(usize::from(self.kept).saturating_sub(1));
        let start = usize::from(*self.anchors.get(anchor)?);
        let first = (anchor << self.shift) as u16;
        let mut columns = Columns::new(raw.get(start..)?, count - first);
        columns.nth(usize::from(index_u16 - first))
    }
}

/// `raw` after its first column, or `None` if that column is not well-formed.
#[inline]
fn skip_column(raw: &[u8]) -> Option<&[u8]> {
    let (&kind, tail) = raw.split_first()?;
    match kind {
        COLUMN_NULL | COLUMN_UNCHANGED_TOAST => Some(tail),
        COLUMN_TEXT | COLUMN_BINARY => {
            let (len, tail) = tail.split_first_chunk::<4>()?;
            let len = usize::try_from(i32::from_be_bytes(*len)).ok()?;
            tail.get(len..)
        }
        _ => None,
    }
}

/// A validated tuple detached from the bytes it borrows: where its column bytes lie in the
/// message and where its columns start. Keep it next to the message bytes and read the tuple
/// again with [`tuple_in`](Self::tuple_in), without re-validating or re-scanning it.
/// `Copy`, inline, no heap allocation.
///
/// ```
/// use pg_walstream_codec::pgoutput::{Column, decode_message, Message, ProtocolVersion};
///
/// // Insert into relation 16384: (NULL, 'hi')
/// let wire = b"I\0\0\x40\0N\0\x02nt\0\0\0\x02hi";
/// let Message::Insert(insert) = decode_message(wire, ProtocolVersion::V1, false)? else {
///     panic!()
/// };
/// let layout = insert.new.layout_in(wire).expect("the tuple lies inside the message");
/// // Later, with the same bytes: no decoding.
/// let tuple = layout.tuple_in(wire).unwrap();
/// assert_eq!(tuple.column(1), Some(Column::Text(b"hi")));
/// // Bytes too short for the layout are refused.
/// assert!(layout.tuple_in(&wire[..10]).is_none());
/// # Ok::<(), pg_walstream_codec::DecodeError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TupleLayout {
    start: u32,
    len: u32,
    count: u16,
    index: ColumnIndex,
}

impl TupleLayout {
    /// The layout of a tuple of no columns at the start of a message: a placeholder where a
    /// layout must be stored but no tuple is (reading it yields an empty tuple).
    pub const EMPTY: TupleLayout = TupleLayout {
        start: 0,
        len: 0,
        count: 0,
        index: ColumnIndex::unindexed(),
    };

    /// Number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the tuple has no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The tuple, read from `message`: the bytes the layout was taken from
    /// ([`TupleData::layout_in`]) or a copy of them. `None` if `message` is too short for the
    /// layout. Never panics: with other bytes of sufficient length the columns read are
    /// meaningless, but reading them stays bounds-checked.
    #[inline]
    pub fn tuple_in<'a>(&self, message: &'a [u8]) -> Option<TupleData<'a>> {
        let start = usize::try_from(self.start).ok()?;
        let end = start.checked_add(usize::try_from(self.len).ok()?)?;
        let raw = message.get(start..end)?;
        Some(TupleData::from_parts(self.count, raw, self.index))
    }
}

impl TupleData<'_> {
    /// This tuple detached from its bytes: its position in `message`, which must contain it
    /// (the message it was decoded from), and its column offsets. `None` when the tuple's
    /// bytes do not lie inside `message`, or lie beyond 32-bit offsets.
    pub fn layout_in(&self, message: &[u8]) -> Option<TupleLayout> {
        let raw = self.raw();
        let base = message.as_ptr() as usize;
        let at = raw.as_ptr() as usize;
        let start = at.checked_sub(base)?;
        if start.checked_add(raw.len())? > message.len() {
            return None;
        }
        Some(TupleLayout {
            start: u32::try_from(start).ok()?,
            len: u32::try_from(raw.len()).ok()?,
            count: self.count(),
            index: self.index(),
        })
    }
}
