//! TupleData: the column values of Insert, Update and Delete messages.

use alloc::vec::Vec;

use bytes::Bytes;

use super::layout::ColumnIndex;
use super::messages::RelationColumn;
use crate::error::DecodeError;
use crate::reader::Reader;
use crate::share::share;

/// Column kind byte: NULL.
pub const COLUMN_NULL: u8 = b'n';
/// Column kind byte: unchanged TOASTed value (the value itself is not sent).
pub const COLUMN_UNCHANGED_TOAST: u8 = b'u';
/// Column kind byte: value in text format.
pub const COLUMN_TEXT: u8 = b't';
/// Column kind byte: value in binary format.
pub const COLUMN_BINARY: u8 = b'b';

/// One column of a tuple, borrowed from the received message.
///
/// Exactly one of the four states pgoutput can send: an unchanged TOAST value is *not* a
/// NULL, it means "this column did not change and its value was not sent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column<'a> {
    /// `n`: SQL NULL.
    Null,
    /// `u`: unchanged TOASTed value; the old value still holds but was not sent.
    UnchangedToast,
    /// `t`: the value in text format (server encoding, not validated).
    Text(&'a [u8]),
    /// `b`: the value in the type's binary (send/recv) format.
    Binary(&'a [u8]),
}

impl<'a> Column<'a> {
    /// The value bytes of a text or binary column.
    pub fn value(&self) -> Option<&'a [u8]> {
        match *self {
            Column::Text(v) | Column::Binary(v) => Some(v),
            Column::Null | Column::UnchangedToast => None,
        }
    }

    /// The value bytes of a text or binary column (the same as [`value`](Self::value)):
    /// `None` for NULL and for an unchanged TOAST value.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::Column;
    /// assert_eq!(Column::Binary(b"\0\x07").as_bytes(), Some(&b"\0\x07"[..]));
    /// assert_eq!(Column::Null.as_bytes(), None);
    /// ```
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        self.value()
    }

    /// A text-format value as `&str`, borrowed from the received message: `None` for NULL,
    /// an unchanged TOAST value and a binary-format value (whose bytes are the type's
    /// binary representation, not text); `Some(Err(_))` when the text is not UTF-8 (the
    /// server sends text in the database's encoding). Never allocates.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::Column;
    /// assert_eq!(Column::Text(b"42").as_str(), Some(Ok("42")));
    /// assert!(Column::Text(b"\xff").as_str().unwrap().is_err());
    /// assert_eq!(Column::Binary(b"\0\0\0\x2a").as_str(), None);
    /// assert_eq!(Column::UnchangedToast.as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<Result<&'a str, core::str::Utf8Error>> {
        match *self {
            Column::Text(v) => Some(core::str::from_utf8(v)),
            Column::Binary(_) | Column::Null | Column::UnchangedToast => None,
        }
    }

    /// Whether the column is SQL NULL (`n`). An unchanged TOAST value is not NULL.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::Column;
    /// assert!(Column::Null.is_null());
    /// assert!(!Column::UnchangedToast.is_null());
    /// ```
    pub fn is_null(&self) -> bool {
        matches!(self, Column::Null)
    }

    /// Whether the column is an unchanged TOAST value (`u`): the column kept its value, which
    /// the server did not send.
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::Column;
    /// assert!(Column::UnchangedToast.is_unchanged_toast());
    /// assert!(!Column::Text(b"x").is_unchanged_toast());
    /// ```
    pub fn is_unchanged_toast(&self) -> bool {
        matches!(self, Column::UnchangedToast)
    }

    /// The owned form, sharing `source` when the value lies inside it (no copy).
    pub fn to_owned_in(&self, source: &Bytes) -> OwnedColumn {
        match *self {
            Column::Null => OwnedColumn::Null,
            Column::UnchangedToast => OwnedColumn::UnchangedToast,
            Column::Text(v) => OwnedColumn::Text(share(source, v)),
            Column::Binary(v) => OwnedColumn::Binary(share(source, v)),
        }
    }
}

/// A borrowed, already validated TupleData: iterate its columns with [`TupleData::columns`],
/// or read one by position with [`TupleData::column`].
///
/// Decoding checks the whole structure once and keeps where the columns start (inline, see
/// [`INDEX_ANCHORS`](super::INDEX_ANCHORS)); iterating or reading by position afterwards
/// neither fails, re-validates nor allocates. [`TupleData::layout_in`] detaches it from its
/// bytes, to read it again later without decoding the message again.
///
/// ```
/// use pg_walstream_codec::pgoutput::{Column, decode_message, Message, ProtocolVersion};
///
/// // Insert into relation 16384: (NULL, 'hi')
/// let wire = b"I\0\0\x40\0N\0\x02nt\0\0\0\x02hi";
/// let Message::Insert(insert) = decode_message(wire, ProtocolVersion::V1, false).unwrap() else {
///     panic!()
/// };
/// let cols: Vec<Column<'_>> = insert.new.columns().collect();
/// assert_eq!(cols, [Column::Null, Column::Text(b"hi")]);
/// assert_eq!(insert.new.column(1), Some(Column::Text(b"hi")));
/// assert_eq!(insert.new.column(2), None);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TupleData<'a> {
    count: u16,
    raw: &'a [u8],
    index: ColumnIndex,
}

// Equality and hashing are of the columns; the index only says where they start.
impl PartialEq for TupleData<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.raw == other.raw
    }
}

impl Eq for TupleData<'_> {}

impl core::hash::Hash for TupleData<'_> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.count.hash(state);
        self.raw.hash(state);
    }
}

impl<'a> TupleData<'a> {
    /// A tuple from parts that were validated together (see [`read_tuple`] and
    /// [`TupleLayout`](super::TupleLayout)).
    pub(crate) fn from_parts(count: u16, raw: &'a [u8], index: ColumnIndex) -> Self {
        TupleData { count, raw, index }
    }

    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    pub(crate) fn index(&self) -> ColumnIndex {
        self.index
    }

    /// The column at `index` (table order), or `None` past the end. Uses the column offsets
    /// kept when the tuple was validated: a tuple of up to
    /// [`INDEX_ANCHORS`](super::INDEX_ANCHORS) columns is read without walking, a wider one
    /// walks fewer than its anchor stride from the nearest kept offset. Allocation-free.
    #[inline]
    pub fn column(&self, index: usize) -> Option<Column<'a>> {
        self.index.column(self.raw, self.count, index)
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the tuple has no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The columns, in table order.
    pub fn columns(&self) -> Columns<'a> {
        Columns {
            rest: self.raw,
            remaining: self.count,
        }
    }

    /// The replica identity (key) columns of an old key tuple ([`OldTuple::Key`]), each
    /// paired with its description from the relation's `columns` (in the same order).
    ///
    /// A `K` tuple holds the key columns only: pgoutput sends a placeholder NULL for every
    /// other column, which means "not sent", not SQL NULL. This view skips them, so a key
    /// tuple never reads as a row of NULLs. Allocation-free. When `columns` and the tuple
    /// differ in length the shorter one ends the iteration (check the count first: pgoutput
    /// always sends every column of the relation).
    ///
    /// ```
    /// use pg_walstream_codec::pgoutput::{Column, decode_message, Message, OldTuple, ProtocolVersion};
    /// use pg_walstream_codec::pgoutput::RelationColumn;
    /// use pg_walstream_codec::Oid;
    ///
    /// let columns = [
    ///     RelationColumn { flags: 1, name: "id", type_oid: Oid(23), type_modifier: -1 },
    ///     RelationColumn { flags: 0, name: "v", type_oid: Oid(25), type_modifier: -1 },
    /// ];
    /// // Delete from relation 16384 with old key (id = 7): `v` is sent as a NULL placeholder.
    /// let wire = b"D\0\0\x40\0K\0\x02t\0\0\0\x017n";
    /// let Message::Delete(delete) = decode_message(wire, ProtocolVersion::V1, false)? else {
    ///     panic!()
    /// };
    /// let OldTuple::Key(key) = delete.old else { panic!() };
    /// let named: Vec<_> = key.key_columns(&columns).map(|(c, v)| (c.name, v)).collect();
    /// assert_eq!(named, [("id", Column::Text(b"7"))]);
    /// # Ok::<(), pg_walstream_codec::DecodeError>(())
    /// ```
    ///
    /// [`OldTuple::Key`]: super::OldTuple::Key
    pub fn key_columns<I>(&self, columns: I) -> KeyColumns<'a, I::IntoIter>
    where
        I: IntoIterator,
        I::Item: KeyFlag,
    {
        KeyColumns {
            values: self.columns(),
            columns: columns.into_iter(),
        }
    }

    /// The encoded column bytes (after the 16-bit column count).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The owned form, sharing `source` for every value (no copy of values).
    pub fn to_owned_in(&self, source: &Bytes) -> OwnedTupleData {
        // `count` was validated against the bytes present, so this capacity is bounded.
        let mut columns = Vec::with_capacity(self.len());
        columns.extend(self.columns().map(|c| c.to_owned_in(source)));
        OwnedTupleData { columns }
    }
}

/// A relation column description that says whether the column is part of the replica
/// identity (key): implemented by [`RelationColumn`] and references to it.
pub trait KeyFlag {
    /// Whether the column is part of the replica identity.
    fn is_key_column(&self) -> bool;
}

impl<S> KeyFlag for RelationColumn<S> {
    fn is_key_column(&self) -> bool {
        self.is_key()
    }
}

impl<T: KeyFlag + ?Sized> KeyFlag for &T {
    fn is_key_column(&self) -> bool {
        (**self).is_key_column()
    }
}

/// Iterator over the key columns of an old key tuple, with their descriptions: see
/// [`TupleData::key_columns`].
#[derive(Debug, Clone)]
pub struct KeyColumns<'a, I> {
    values: Columns<'a>,
    columns: I,
}

impl<'a, I> Iterator for KeyColumns<'a, I>
where
    I: Iterator,
    I::Item: KeyFlag,
{
    type Item = (I::Item, Column<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let value = self.values.next()?;
            let column = self.columns.next()?;
            if column.is_key_column() {
                return Some((column, value));
            }
        }
    }
}

/// Reads and validates a TupleData (column count, then each column).
#[inline]
pub(crate) fn read_tuple<'a>(r: &mut Reader<'a>) -> Result<TupleData<'a>, DecodeError> {
    let count = r.u16("tuple column count")?;
    let start_len = r.remaining();
    if usize::from(count) > start_len {
        return Err(DecodeError::Oversized {
            tag: crate::error::Tag(r.tag()),
            offset: r.offset() - 2,
            declared: count.into(),
            available: start_len,
            expected: "tuple column count",
        });
    }
    if let Some((used, index)) = ColumnIndex::scan(r.peek(), count) {
        let raw = r.take(used, 0, "tuple columns")?;
        return Ok(TupleData { count, raw, index });
    }
    // Malformed: walk again field by field to report exactly what is wrong and where.
    let mut probe = r.clone();
    for _ in 0..count {
        match probe.u8("tuple column kind 'n', 'u', 't' or 'b'")? {
            COLUMN_NULL | COLUMN_UNCHANGED_TOAST => {}
            COLUMN_TEXT | COLUMN_BINARY => {
                let len = probe.i32("tuple column value length")?;
                let len = usize::try_from(len)
                    .map_err(|_| probe.invalid(4, len.into(), "non-negative column length"))?;
                probe.take(len, 4, "tuple column value")?;
            }
            other => return Err(probe.unknown_tag(other, "tuple column kind 'n', 'u', 't' or 'b'")),
        }
    }
    let used = start_len - probe.remaining();
    let raw = r.take(used, 0, "tuple columns")?;
    Ok(TupleData {
        count,
        raw,
        index: ColumnIndex::unindexed(),
    })
}

/// Iterator over the columns of a [`TupleData`]; allocation-free.
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Columns<'a> {
    /// The `remaining` validated columns at the start of `rest`.
    pub(crate) fn new(rest: &'a [u8], remaining: u16) -> Self {
        Columns { rest, remaining }
    }
}

impl<'a> Iterator for Columns<'a> {
    type Item = Column<'a>;

    #[inline]
    fn next(&mut self) -> Option<Column<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let (&kind, rest) = self.rest.split_first()?;
        let column = match kind {
            COLUMN_NULL => {
                self.rest = rest;
                Column::Null
            }
            COLUMN_UNCHANGED_TOAST => {
                self.rest = rest;
                Column::UnchangedToast
            }
            _ => {
                // Validated on decode: a 4-byte non-negative length, then the value.
                let (len, rest) = rest.split_first_chunk::<4>()?;
                let len = u32::from_be_bytes(*len) as usize;
                let (value, rest) = rest.split_at_checked(len)?;
                self.rest = rest;
                if kind == COLUMN_TEXT {
                    Column::Text(value)
                } else {
                    Column::Binary(value)
                }
            }
        };
        Some(column)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.remaining);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Columns<'_> {}

/// One column of an [`OwnedTupleData`]; values share the received buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedColumn {
    /// `n`: SQL NULL.
    Null,
    /// `u`: unchanged TOASTed value (not sent).
    UnchangedToast,
    /// `t`: the value in text format.
    Text(Bytes),
    /// `b`: the value in binary format.
    Binary(Bytes),
}

impl OwnedColumn {
    /// A borrowed view of this column.
    pub fn as_column(&self) -> Column<'_> {
        match self {
            OwnedColumn::Null => Column::Null,
            OwnedColumn::UnchangedToast => Column::UnchangedToast,
            OwnedColumn::Text(v) => Column::Text(v),
            OwnedColumn::Binary(v) => Column::Binary(v),
        }
    }
}

/// An owned TupleData.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OwnedTupleData {
    /// The columns, in table order.
    pub columns: Vec<OwnedColumn>,
}

/// Tuple data that can be encoded: implemented by [`TupleData`] and [`OwnedTupleData`].
pub trait TupleColumns {
    /// Number of columns.
    fn column_count(&self) -> usize;
    /// The columns, in order.
    fn column_iter(&self) -> impl Iterator<Item = Column<'_>>;
}

impl TupleColumns for TupleData<'_> {
    fn column_count(&self) -> usize {
        self.len()
    }

    fn column_iter(&self) -> impl Iterator<Item = Column<'_>> {
        self.columns()
    }
}

impl TupleColumns for OwnedTupleData {
    fn column_count(&self) -> usize {
        self.columns.len()
    }

    fn column_iter(&self) -> impl Iterator<Item = Column<'_>> {
        self.columns.iter().map(OwnedColumn::as_column)
    }
}
