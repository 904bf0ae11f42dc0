//! [`Row`]: a tuple read by column name, borrowed from the received message.

use pg_walstream_codec::pgoutput::{Column, Columns, OldTuple, RelationColumn, TupleData};

use crate::events::Change;
use crate::relation::RelationInfo;

/// A row of a change — its new tuple, old key or old row — read by column name, borrowed
/// from the received bytes together with the relation's description. Reading neither
/// copies nor allocates; [`get`](Self::get) finds the column through the relation's name
/// index (built once per Relation message), then reads it at the offset kept when the message
/// was validated ([`TupleData::column`]), without walking the tuple.
///
/// Each column keeps pgoutput's states ([`Column::Null`], [`Column::UnchangedToast`],
/// [`Column::Text`], [`Column::Binary`]). A row of an old *key* (`K`) holds the replica
/// identity columns only: the others were not sent, so [`get`](Self::get) returns `None` for
/// them and [`iter`](Self::iter) skips them. An unchanged TOAST value stays unchanged unless
/// asked for explicitly with [`merged_with_old`](Self::merged_with_old).
///
/// ```
/// # #[cfg(feature = "testing")] {
/// use pg_walstream_stream::EventKind;
/// use pg_walstream_stream::testing::{TestEvents, column, text};
///
/// let mut events = TestEvents::new();
/// let orders = events.relation("public", "orders", &[column("id", 23).key(), column("note", 25)]);
/// let event = events.insert(&orders, &[text("7"), text("hello")]);
/// let EventKind::Insert(change) = event.kind() else { unreachable!() };
/// let row = change.new_row().unwrap();
/// assert_eq!(row.get("id").and_then(|c| c.as_str()), Some(Ok("7")));
/// assert_eq!(row.len(), 2);
/// for (column, value) in row.iter() {
///     println!("{} = {:?}", column.name, value.as_str());
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    relation: &'a RelationInfo,
    tuple: TupleData<'a>,
    key_only: bool,
    /// The whole old row of an Update under REPLICA IDENTITY FULL, for
    /// [`merged_with_old`](Self::merged_with_old).
    old_full: Option<TupleData<'a>>,
    merge: bool,
}

impl<'a> Row<'a> {
    /// A row of `tuple`, whose values are in the order of `relation`'s columns; `key_only`
    /// for an old key (`K`) tuple.
    pub(crate) fn new(relation: &'a RelationInfo, tuple: TupleData<'a>, key_only: bool) -> Self {
        Row {
            relation,
            tuple,
            key_only,
            old_full: None,
            merge: false,
        }
    }

    /// The relation the row belongs to.
    pub fn relation(&self) -> &'a RelationInfo {
        self.relation
    }

    /// The value of the column named `name` (as the server names it: exact and
    /// case-sensitive): `None` if the relation has no such column — or, in an old key row,
    /// if it is not a key column.
    #[inline]
    pub fn get(&self, name: &str) -> Option<Column<'a>> {
        let index = self.relation.column_index(name)?;
        self.get_index(index)
    }

    /// The value of the column at `index` in the relation's column order (`None` past the
    /// end, or for a non-key column of an old key row).
    #[inline]
    pub fn get_index(&self, index: usize) -> Option<Column<'a>> {
        if self.key_only && !self.relation.columns().get(index)?.is_key() {
            return None;
        }
        let value = self.tuple.column(index)?;
        match (value, self.merge, self.old_full) {
            (Column::UnchangedToast, true, Some(old)) => old.column(index),
            _ => Some(value),
        }
    }

    /// The columns with their descriptions, in table order (key columns only in an old key
    /// row).
    pub fn iter(&self) -> RowIter<'a> {
        RowIter {
            descriptions: self.relation.columns().iter(),
            values: self.tuple.columns(),
            old: if self.merge {
                self.old_full.map(|t| t.columns())
            } else {
                None
            },
            key_only: self.key_only,
        }
    }

    /// How many columns [`iter`](Self::iter) yields: every column of the relation, or the key
    /// columns of an old key row.
    pub fn len(&self) -> usize {
        if self.key_only {
            self.relation.key_column_count()
        } else {
            self.tuple.len().min(self.relation.columns().len())
        }
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is an old key (`K`): key columns only.
    pub fn is_key_only(&self) -> bool {
        self.key_only
    }

    /// Whether some column is an unchanged TOAST value (its value was not sent), after
    /// merging if this row was [merged](Self::merged_with_old).
    pub fn has_unchanged_toast(&self) -> bool {
        self.iter().any(|(_, value)| value.is_unchanged_toast())
    }

    /// The same new row, with each unchanged TOAST column read from the old row instead —
    /// possible only for an Update of a table with REPLICA IDENTITY FULL, whose old row the
    /// server sends whole; otherwise (no old row, or only an old key) unchanged TOAST values
    /// stay as they are. Never silent: only this explicit call merges.
    ///
    /// ```
    /// # #[cfg(feature = "testing")] {
    /// use pg_walstream_codec::pgoutput::Column;
    /// use pg_walstream_stream::EventKind;
    /// use pg_walstream_stream::testing::{TestEvents, column, text, unchanged_toast};
    ///
    /// let mut events = TestEvents::new();
    /// let t = events.relation("public", "t", &[column("id", 23), column("doc", 25)]);
    /// let event = events.update_full(&t, &[text("1"), text("long")], &[text("1"), unchanged_toast()]);
    /// let EventKind::Update(change) = event.kind() else { unreachable!() };
    /// let row = change.new_row().unwrap();
    /// assert_eq!(row.get("doc"), Some(Column::UnchangedToast));
    /// assert_eq!(row.merged_with_old().get("doc"), Some(Column::Text(b"long")));
    /// # }
    /// ```
    #[must_use]
    pub fn merged_with_old(mut self) -> Self {
        self.merge = true;
        self
    }
}

impl<'a> IntoIterator for Row<'a> {
    type Item = (&'a RelationColumn<String>, Column<'a>);
    type IntoIter = RowIter<'a>;

    fn into_iter(self) -> RowIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Row<'a> {
    type Item = (&'a RelationColumn<String>, Column<'a>);
    type IntoIter = RowIter<'a>;

    fn into_iter(self) -> RowIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Row`]'s columns with their descriptions; allocation-free.
#[derive(Debug, Clone)]
pub struct RowIter<'a> {
    descriptions: std::slice::Iter<'a, RelationColumn<String>>,
    values: Columns<'a>,
    old: Option<Columns<'a>>,
    key_only: bool,
}

impl<'a> Iterator for RowIter<'a> {
    type Item = (&'a RelationColumn<String>, Column<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let description = self.descriptions.next()?;
            let value = self.values.next()?;
            let old = self.old.as_mut().and_then(Iterator::next);
            if self.key_only && !description.is_key() {
                continue;
            }
            let value = match (value, old) {
                (Column::UnchangedToast, Some(old)) => old,
                _ => value,
            };
            return Some((description, value));
        }
    }
}

impl Change {
    /// The new row (Insert, Update), read by column name: see [`Row`].
    ///
    /// ```
    /// # fn show(change: &pg_walstream_stream::Change) {
    /// if let Some(row) = change.new_row() {
    ///     let id = row.get("id").and_then(|c| c.as_str()); // Option<Result<&str, Utf8Error>>
    ///     println!("{}: id {id:?}", change.relation().name());
    /// }
    /// # }
    /// ```
    pub fn new_row(&self) -> Option<Row<'_>> {
        let (new, old) = self.tuples();
        let mut row = Row::new(self.relation(), new?, false);
        if let Some(OldTuple::Full(old)) = old {
            row.old_full = Some(old);
        }
        Some(row)
    }

    /// The old row of an Update or Delete: the whole row under REPLICA IDENTITY FULL (`O`),
    /// or the key columns only (`K`, see [`Row::is_key_only`]); `None` for an Insert and for
    /// an Update that kept its key.
    ///
    /// ```
    /// # fn show(change: &pg_walstream_stream::Change) {
    /// if let Some(old) = change.old_row() {
    ///     for (column, value) in old.iter() {
    ///         println!("was {} = {:?}", column.name, value.as_str());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn old_row(&self) -> Option<Row<'_>> {
        let (_, old) = self.tuples();
        Some(match old? {
            OldTuple::Key(tuple) => Row::new(self.relation(), tuple, true),
            OldTuple::Full(tuple) => Row::new(self.relation(), tuple, false),
        })
    }
}
