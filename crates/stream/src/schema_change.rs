//! What a Relation message changed compared with the relation's previous description.

use std::sync::Arc;

use pg_walstream_codec::Oid;
use pg_walstream_codec::pgoutput::ReplicaIdentity;

use crate::relation::RelationInfo;

/// What [`EventKind::Relation`](crate::EventKind::Relation) carries: the relation's new
/// description, the previous one on this stream (if any) and what differs between them.
///
/// The server sends a Relation message before the first change of a relation in a session
/// and again whenever its cached description was invalidated — after `ALTER TABLE`, but also
/// after unrelated catalog invalidations, so a re-description of an unchanged table is
/// common: [`is_unchanged`](Self::is_unchanged) tells them apart.
///
/// ```
/// use std::sync::Arc;
/// use pg_walstream_codec::Oid;
/// use pg_walstream_codec::pgoutput::{RelationColumn, ReplicaIdentity};
/// use pg_walstream_stream::{RelationChange, RelationInfo, SchemaChange};
///
/// let column = |name: &str| RelationColumn {
///     flags: 0, name: name.to_owned(), type_oid: Oid(25), type_modifier: -1,
/// };
/// let before = Arc::new(RelationInfo::new(
///     Oid(1), "public", "t", ReplicaIdentity::Default, vec![column("a")],
/// ));
/// let after = Arc::new(RelationInfo::new(
///     Oid(1), "public", "t", ReplicaIdentity::Default, vec![column("a"), column("b")],
/// ));
/// let change = RelationChange::new(after, Some(before));
/// assert_eq!(change.changes(), [SchemaChange::ColumnAdded { name: "b".into() }]);
/// assert_eq!(change.added_columns().collect::<Vec<_>>(), ["b"]);
/// assert!(!change.is_unchanged() && !change.is_new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationChange {
    relation: Arc<RelationInfo>,
    previous: Option<Arc<RelationInfo>>,
    changes: Vec<SchemaChange>,
}

/// One difference between two descriptions of a relation (see [`RelationChange`]).
///
/// Columns are matched by name; a column that disappeared at the position where a new name
/// appears counts as renamed. The Relation message carries no column numbers, so dropping a
/// column and adding another at the same position between two descriptions also reads as a
/// rename.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaChange {
    /// The relation itself was renamed or moved to another schema.
    RelationRenamed {
        /// The previous schema.
        schema: String,
        /// The previous name.
        name: String,
    },
    /// A column was added (or newly published).
    ColumnAdded {
        /// Its name.
        name: String,
    },
    /// A column was dropped (or no longer published).
    ColumnDropped {
        /// Its name.
        name: String,
    },
    /// A column was renamed.
    ColumnRenamed {
        /// The previous name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A column's type or type modifier changed.
    ColumnRetyped {
        /// The column's (new) name.
        name: String,
        /// The previous type OID and modifier.
        from: (Oid, i32),
        /// The new type OID and modifier.
        to: (Oid, i32),
    },
    /// A column joined or left the replica identity (key).
    KeyChanged {
        /// The column's (new) name.
        name: String,
        /// Whether it is a key column now.
        is_key: bool,
    },
    /// The replica identity setting changed.
    ReplicaIdentityChanged {
        /// The previous setting.
        from: ReplicaIdentity,
        /// The new one.
        to: ReplicaIdentity,
    },
}

impl RelationChange {
    /// Compares `relation` with its `previous` description (none for a relation described
    /// for the first time on the stream).
    pub fn new(relation: Arc<RelationInfo>, previous: Option<Arc<RelationInfo>>) -> Self {
        let changes = previous
            .as_deref()
            .map(|before| diff(before, &relation))
            .unwrap_or_default();
        RelationChange {
            relation,
            previous,
            changes,
        }
    }

    /// The new description (what later changes of the relation use).
    pub fn relation(&self) -> &Arc<RelationInfo> {
        &self.relation
    }

    /// The description it replaces, if the stream had one.
    pub fn previous(&self) -> Option<&Arc<RelationInfo>> {
        self.previous.as_ref()
    }

    /// What differs from the previous description (empty for a first description).
    pub fn changes(&self) -> &[SchemaChange] {
        &self.changes
    }

    /// Whether the stream had no previous description of the relation.
    pub fn is_new(&self) -> bool {
        self.previous.is_none()
    }

    /// Whether this re-describes the relation exactly as before.
    pub fn is_unchanged(&self) -> bool {
        self.previous.is_some() && self.changes.is_empty()
    }

    /// Names of the columns added since the previous description.
    pub fn added_columns(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().filter_map(|change| match change {
            SchemaChange::ColumnAdded { name } => Some(name.as_str()),
            _ => None,
        })
    }
}

fn diff(before: &RelationInfo, after: &RelationInfo) -> Vec<SchemaChange> {
    let mut changes = Vec::new();
    if before.schema() != after.schema() || before.name() != after.name() {
        changes.push(SchemaChange::RelationRenamed {
            schema: before.schema().to_owned(),
            name: before.name().to_owned(),
        });
    }
    if before.replica_identity() != after.replica_identity() {
        changes.push(SchemaChange::ReplicaIdentityChanged {
            from: before.replica_identity(),
            to: after.replica_identity(),
        });
    }
    let old = before.columns();
    let new = after.columns();
    // Old column matched by each new column: by name, else (a rename) the unmatched old
    // column at the same position.
    let by_name: Vec<Option<usize>> = new.iter().map(|c| before.column_index(&c.name)).collect();
    let matched = |i: usize| by_name.contains(&Some(i));
    for (position, column) in new.iter().enumerate() {
        let counterpart = by_name[position].or_else(|| {
            (position < old.len()
                && !matched(position)
                && after.column_index(&old[position].name).is_none())
            .then_some(position)
        });
        let Some(index) = counterpart else {
            changes.push(SchemaChange::ColumnAdded {
                name: column.name.clone(),
            });
            continue;
        };
        let previous = &old[index];
        if previous.name != column.name {
            changes.push(SchemaChange::ColumnRenamed {
                from: previous.name.clone(),
                to: column.name.clone(),
            });
        }
        if (previous.type_oid, previous.type_modifier) != (column.type_oid, column.type_modifier) {
            changes.push(SchemaChange::ColumnRetyped {
                name: column.name.clone(),
                from: (previous.type_oid, previous.type_modifier),
                to: (column.type_oid, column.type_modifier),
            });
        }
        if previous.is_key() != column.is_key() {
            changes.push(SchemaChange::KeyChanged {
                name: column.name.clone(),
                is_key: column.is_key(),
            });
        }
    }
    for (index, column) in old.iter().enumerate() {
        let renamed = index < new.len()
            && by_name[index].is_none()
            && !matched(index)
            && after.column_index(&column.name).is_none();
        if after.column_index(&column.name).is_none() && !renamed {
            changes.push(SchemaChange::ColumnDropped {
                name: column.name.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_walstream_codec::pgoutput::RelationColumn;

    fn relation(columns: &[(&str, u32, u8)]) -> Arc<RelationInfo> {
        let columns = columns
            .iter()
            .map(|&(name, oid, flags)| RelationColumn {
                flags,
                name: name.to_owned(),
                type_oid: Oid(oid),
                type_modifier: -1,
            })
            .collect();
        Arc::new(RelationInfo::new(
            Oid(9),
            "public",
            "t",
            ReplicaIdentity::Default,
            columns,
        ))
    }

    fn changes(before: &[(&str, u32, u8)], after: &[(&str, u32, u8)]) -> Vec<SchemaChange> {
        RelationChange::new(relation(after), Some(relation(before)))
            .changes()
            .to_vec()
    }

    #[test]
    fn detects_each_kind_of_change() {
        let base = [("id", 23, 1), ("v", 25, 0)];
        assert!(changes(&base, &base).is_empty());
        assert_eq!(
            changes(&base, &[("id", 23, 1), ("v", 25, 0), ("w", 16, 0)]),
            [SchemaChange::ColumnAdded { name: "w".into() }]
        );
        assert_eq!(
            changes(&base, &[("id", 23, 1)]),
            [SchemaChange::ColumnDropped { name: "v".into() }]
        );
        assert_eq!(
            changes(&base, &[("id", 23, 1), ("note", 25, 0)]),
            [SchemaChange::ColumnRenamed {
                from: "v".into(),
                to: "note".into()
            }]
        );
        assert_eq!(
            changes(&base, &[("id", 20, 1), ("v", 25, 1)]),
            [
                SchemaChange::ColumnRetyped {
                    name: "id".into(),
                    from: (Oid(23), -1),
                    to: (Oid(20), -1)
                },
                SchemaChange::KeyChanged {
                    name: "v".into(),
                    is_key: true
                }
            ]
        );
        // Drop `v`, add `w` after `x`: not a rename (different positions).
        assert_eq!(
            changes(
                &[("id", 23, 1), ("v", 25, 0), ("x", 25, 0)],
                &[("id", 23, 1), ("x", 25, 0), ("w", 25, 0)]
            ),
            [
                SchemaChange::ColumnAdded { name: "w".into() },
                SchemaChange::ColumnDropped { name: "v".into() }
            ]
        );
        let first = RelationChange::new(relation(&base), None);
        assert!(first.is_new() && !first.is_unchanged() && first.changes().is_empty());
    }
}
