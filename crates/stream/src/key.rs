//! The old key of an Update or Delete, read as key columns only.

use std::slice;

use pg_walstream_codec::pgoutput::{KeyColumns, OldTuple, RelationColumn};

use crate::events::Change;

/// The key columns of an old key tuple with their descriptions: see [`Change::old_key`].
pub type OldKeyColumns<'a> = KeyColumns<'a, slice::Iter<'a, RelationColumn<String>>>;

impl Change {
    /// The replica identity (key) columns of the old key (`K`) of an Update or Delete, each
    /// with its description from the relation: `None` when the change has no old key (an
    /// Insert, an Update that kept its key, or an old row `O` under REPLICA IDENTITY FULL,
    /// which [`old_tuple`](Change::old_tuple) gives whole).
    ///
    /// pgoutput sends a key tuple with one column per relation column, the non-key ones as
    /// NULL placeholders that mean "not sent"; this view yields only the key columns, so a
    /// key never reads as a row of NULLs. Borrowed and allocation-free, like
    /// [`new_tuple`](Change::new_tuple).
    ///
    /// ```no_run
    /// # fn show(change: &pg_walstream_stream::Change) {
    /// if let Some(key) = change.old_key() {
    ///     for (column, value) in key {
    ///         println!("{} = {:?}", column.name, value.value());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn old_key(&self) -> Option<OldKeyColumns<'_>> {
        match self.old_tuple()? {
            OldTuple::Key(tuple) => Some(tuple.key_columns(self.relation().columns().iter())),
            OldTuple::Full(_) => None,
        }
    }
}
