//! [`RelationInfo`]: a relation as the server described it, with a column-name index built
//! once per description.

use pg_walstream_codec::pgoutput::{Relation, RelationColumn, RelationColumns, ReplicaIdentity};
use pg_walstream_codec::types::builtin_type;
use pg_walstream_codec::{Oid, Xid};

/// The schema pgoutput leaves empty in Relation and Type messages.
const PG_CATALOG: &str = "pg_catalog";

/// A data type the server named in a Type message (`Y`): pgoutput sends one for every column
/// type that is not built in, before the Relation message that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TypeInfo {
    /// The streamed (sub)transaction xid of the Type message, inside a streamed block.
    pub xid: Option<Xid>,
    /// The type's OID.
    pub oid: Oid,
    /// Its schema (`pg_catalog` when the server sent it empty).
    pub schema: String,
    /// Its name.
    pub name: String,
}

impl TypeInfo {
    /// A type description from owned values; an empty `schema` reads as `pg_catalog`.
    ///
    /// ```
    /// use pg_walstream_codec::Oid;
    /// use pg_walstream_stream::TypeInfo;
    /// let mood = TypeInfo::new(Oid(16400), "", "mood");
    /// assert_eq!((mood.schema.as_str(), mood.name.as_str()), ("pg_catalog", "mood"));
    /// ```
    pub fn new(oid: Oid, schema: &str, name: &str) -> Self {
        TypeInfo {
            xid: None,
            oid,
            schema: schema_or_catalog(schema).to_owned(),
            name: name.to_owned(),
        }
    }
}

fn schema_or_catalog(schema: &str) -> &str {
    if schema.is_empty() {
        PG_CATALOG
    } else {
        schema
    }
}

/// A relation as the server last described it (a Relation message): OID, schema, name,
/// replica identity and columns (name, type OID, type modifier, key flag), plus the names of
/// its columns' non-built-in types. Shared by every change event of the relation through an
/// [`Arc`](std::sync::Arc), so events never copy it.
///
/// Looking a column up by name ([`column_index`](Self::column_index), and through it
/// [`Row::get`](crate::Row::get)) is O(1): the index is built once, when the description
/// arrives, never per row.
///
/// ```
/// use pg_walstream_codec::Oid;
/// use pg_walstream_codec::pgoutput::{RelationColumn, ReplicaIdentity};
/// use pg_walstream_stream::RelationInfo;
///
/// let columns = vec![
///     RelationColumn { flags: 1, name: "id".to_owned(), type_oid: Oid(23), type_modifier: -1 },
///     RelationColumn { flags: 0, name: "note".to_owned(), type_oid: Oid(25), type_modifier: -1 },
/// ];
/// let relation = RelationInfo::new(Oid(16384), "", "orders", ReplicaIdentity::Default, columns);
/// assert_eq!(relation.schema(), "pg_catalog"); // an empty schema is pg_catalog
/// assert_eq!(relation.column_index("note"), Some(1));
/// assert_eq!(relation.column_index("missing"), None);
/// assert_eq!(relation.type_name(Oid(25)), Some("text"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationInfo {
    xid: Option<Xid>,
    oid: Oid,
    schema: String,
    name: String,
    replica_identity: ReplicaIdentity,
    columns: Vec<RelationColumn<String>>,
    key_count: usize,
    index: NameIndex,
    types: Vec<TypeInfo>,
}

impl RelationInfo {
    /// A description from owned values (as a Relation message would carry them); an empty
    /// `schema` reads as `pg_catalog`. Builds the column-name index.
    pub fn new(
        oid: Oid,
        schema: &str,
        name: &str,
        replica_identity: ReplicaIdentity,
        columns: Vec<RelationColumn<String>>,
    ) -> Self {
        let index = NameIndex::build(&columns);
        let key_count = columns.iter().filter(|c| c.is_key()).count();
        RelationInfo {
            xid: None,
            oid,
            schema: schema_or_catalog(schema).to_owned(),
            name: name.to_owned(),
            replica_identity,
            columns,
            key_count,
            index,
            types: Vec::new(),
        }
    }

    /// The owned form of a received Relation message, with the descriptions of its columns'
    /// non-built-in types taken from `types` (what Type messages said so far).
    pub(crate) fn from_message<'t>(
        relation: &Relation<&str, RelationColumns<'_>>,
        types: impl Fn(Oid) -> Option<&'t TypeInfo>,
    ) -> Self {
        let mut info = RelationInfo::new(
            relation.oid,
            relation.namespace,
            relation.name,
            relation.replica_identity,
            relation.columns.to_vec(),
        );
        info.xid = relation.xid;
        for column in &info.columns {
            if builtin_type(column.type_oid).is_none()
                && !info.types.iter().any(|t| t.oid == column.type_oid)
                && let Some(ty) = types(column.type_oid)
            {
                info.types.push(ty.clone());
            }
        }
        info
    }

    /// Attaches the description of a non-built-in type of the relation's columns (the
    /// testing constructors' counterpart of a Type message).
    ///
    /// ```
    /// use pg_walstream_codec::Oid;
    /// use pg_walstream_codec::pgoutput::{RelationColumn, ReplicaIdentity};
    /// use pg_walstream_stream::{RelationInfo, TypeInfo};
    /// let columns = vec![RelationColumn {
    ///     flags: 0, name: "m".to_owned(), type_oid: Oid(16400), type_modifier: -1,
    /// }];
    /// let relation = RelationInfo::new(Oid(1), "public", "t", ReplicaIdentity::Default, columns)
    ///     .with_type(TypeInfo::new(Oid(16400), "public", "mood"));
    /// assert_eq!(relation.type_name(Oid(16400)), Some("mood"));
    /// ```
    #[must_use]
    pub fn with_type(mut self, ty: TypeInfo) -> Self {
        self.types.retain(|t| t.oid != ty.oid);
        self.types.push(ty);
        self
    }

    /// The streamed (sub)transaction xid of the Relation message, inside a streamed block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The relation's OID.
    pub fn oid(&self) -> Oid {
        self.oid
    }

    /// The relation's schema: `pg_catalog` when the server sent it empty (pgoutput does so
    /// for `pg_catalog`).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The schema, under the codec's name for it.
    #[deprecated(note = "use `schema()`")]
    pub fn namespace(&self) -> &str {
        &self.schema
    }

    /// The relation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its replica identity.
    pub fn replica_identity(&self) -> ReplicaIdentity {
        self.replica_identity
    }

    /// The columns, in table order (the order of every tuple's values).
    pub fn columns(&self) -> &[RelationColumn<String>] {
        &self.columns
    }

    /// How many columns are part of the replica identity (key).
    pub fn key_column_count(&self) -> usize {
        self.key_count
    }

    /// The position of the column named `name` (exact, case-sensitive, as the server sent
    /// it), in O(1) without allocating.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.index.find(&self.columns, name)
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&RelationColumn<String>> {
        self.column_index(name).map(|i| &self.columns[i])
    }

    /// The name of the data type `oid`: a built-in type's from the codec's catalogue, any
    /// other from the Type message the server sent before this description (pgoutput sends
    /// one for every non-built-in column type); `None` if neither knows it.
    pub fn type_name(&self, oid: Oid) -> Option<&str> {
        if let Some(builtin) = builtin_type(oid) {
            return Some(builtin.name);
        }
        self.type_info(oid).map(|t| t.name.as_str())
    }

    /// The Type message's description of a non-built-in column type.
    pub fn type_info(&self, oid: Oid) -> Option<&TypeInfo> {
        self.types.iter().find(|t| t.oid == oid)
    }

    /// The descriptions of the non-built-in column types the server sent.
    pub fn types(&self) -> &[TypeInfo] {
        &self.types
    }
}

/// Slot value of an empty [`NameIndex`] slot (no relation has 65535 columns: the protocol's
/// count is 16-bit and PostgreSQL allows at most 1664).
const EMPTY: u16 = u16::MAX;

/// Open-addressing hash table from column name to column position. It stores positions only
/// (no copy of the names): a probe compares against the column list it was built from, so a
/// lookup costs one hash of the name and, usually, one string comparison.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct NameIndex {
    slots: Box<[u16]>,
}

impl NameIndex {
    fn build(columns: &[RelationColumn<String>]) -> Self {
        if columns.is_empty() || columns.len() >= usize::from(EMPTY) {
            return NameIndex::default();
        }
        let size = (columns.len() * 2).next_power_of_two();
        let mask = size - 1;
        let mut slots = vec![EMPTY; size].into_boxed_slice();
        for (position, column) in columns.iter().enumerate() {
            let mut slot = hash(column.name.as_bytes()) as usize & mask;
            loop {
                match slots[slot] {
                    EMPTY => {
                        slots[slot] = position as u16;
                        break;
                    }
                    // A repeated name (only possible in hand-built descriptions): the first
                    // column of that name wins.
                    taken if columns[usize::from(taken)].name == column.name => break,
                    _ => slot = (slot + 1) & mask,
                }
            }
        }
        NameIndex { slots }
    }

    #[inline]
    fn find(&self, columns: &[RelationColumn<String>], name: &str) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash(name.as_bytes()) as usize & mask;
        loop {
            let position = *self.slots.get(slot)?;
            if position == EMPTY {
                return None;
            }
            let position = usize::from(position);
            if columns.get(position)?.name == name {
                return Some(position);
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// FNV-1a: short column names hash in a few nanoseconds (they are not attacker-chosen keys;
/// a colliding set of names only makes lookups of that one table slower).
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, flags: u8) -> RelationColumn<String> {
        RelationColumn {
            flags,
            name: name.to_owned(),
            type_oid: Oid(25),
            type_modifier: -1,
        }
    }

    #[test]
    fn index_finds_every_column_and_nothing_else() {
        for n in [0usize, 1, 2, 3, 7, 8, 9, 100, 1664] {
            let columns: Vec<_> = (0..n).map(|i| column(&format!("c{i}"), 0)).collect();
            let relation =
                RelationInfo::new(Oid(1), "public", "t", ReplicaIdentity::Default, columns);
            for i in 0..n {
                assert_eq!(relation.column_index(&format!("c{i}")), Some(i), "{n}");
            }
            assert_eq!(relation.column_index("nope"), None);
            assert_eq!(relation.column_index(""), None);
            assert_eq!(relation.column_index(&format!("c{n}")), None);
        }
    }

    #[test]
    fn repeated_names_resolve_to_the_first() {
        let columns = vec![column("a", 1), column("b", 0), column("a", 0)];
        let relation = RelationInfo::new(Oid(1), "s", "t", ReplicaIdentity::Default, columns);
        assert_eq!(relation.column_index("a"), Some(0));
        assert_eq!(relation.column_index("b"), Some(1));
        assert_eq!(relation.key_column_count(), 1);
    }
}
