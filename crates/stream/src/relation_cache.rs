//! Relation and type descriptions received on the stream, shared with events behind `Arc`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use pg_walstream_codec::pgoutput::{Relation, RelationColumns, Type};
use pg_walstream_codec::{Lsn, Oid};

use crate::error::Error;
use crate::relation::{RelationInfo, TypeInfo};
use crate::schema_change::RelationChange;

/// The relations and types described so far on one stream, by OID.
///
/// A Relation message replaces the previous description of its OID (after `ALTER TABLE` the
/// server sends a new one before the first change that needs it); events already delivered
/// keep the description they were decoded with. Type messages are kept too: each relation
/// description carries the names of its columns' non-built-in types.
#[derive(Debug, Default)]
pub struct RelationCache {
    relations: HashMap<Oid, Arc<RelationInfo>, BuildHasherDefault<OidHasher>>,
    types: HashMap<Oid, TypeInfo, BuildHasherDefault<OidHasher>>,
    /// The description the last change resolved (or the last one stored): consecutive
    /// changes almost always touch the same relation, so most lookups skip the hash.
    last: Option<Arc<RelationInfo>>,
}

/// A multiplicative hash for the 32-bit OIDs the server assigns: one multiplication instead
/// of SipHash on the per-change lookup (OIDs are not attacker-chosen keys).
#[derive(Debug, Default)]
struct OidHasher(u64);

impl Hasher for OidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.0 = (self.0 ^ u64::from(value)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl RelationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores the description carried by a Relation message and returns it with the
    /// description it replaces and what changed.
    pub fn update(&mut self, relation: &Relation<&str, RelationColumns<'_>>) -> RelationChange {
        let info = Arc::new(RelationInfo::from_message(relation, |oid| {
            self.types.get(&oid)
        }));
        let previous = self.relations.insert(relation.oid, Arc::clone(&info));
        self.last = Some(Arc::clone(&info));
        RelationChange::new(info, previous)
    }

    /// Stores the description carried by a Type message and returns it.
    pub fn update_type(&mut self, ty: &Type<&str>) -> TypeInfo {
        let mut info = TypeInfo::new(ty.oid, ty.namespace, ty.name);
        info.xid = ty.xid;
        self.types.insert(ty.oid, info.clone());
        info
    }

    /// The description of `oid`, if the server sent one.
    pub fn get(&self, oid: Oid) -> Option<&Arc<RelationInfo>> {
        self.relations.get(&oid)
    }

    /// The description of `oid` as a new handle, for a change: the last one resolved when it
    /// is the same relation, the map otherwise. Always what [`get`](Self::get) returns (the
    /// last one is replaced whenever a Relation message stores a description).
    #[inline]
    pub(crate) fn resolve(&mut self, oid: Oid) -> Option<Arc<RelationInfo>> {
        if let Some(last) = &self.last
            && last.oid() == oid
        {
            return Some(Arc::clone(last));
        }
        let found = Arc::clone(self.relations.get(&oid)?);
        self.last = Some(Arc::clone(&found));
        Some(found)
    }

    /// The Type message's description of the non-built-in type `oid`, if the server sent one.
    pub fn type_info(&self, oid: Oid) -> Option<&TypeInfo> {
        self.types.get(&oid)
    }

    /// The name of data type `oid`: built-in types from the codec's catalogue, others from
    /// the Type messages received.
    pub fn type_name(&self, oid: Oid) -> Option<&str> {
        match pg_walstream_codec::types::builtin_type(oid) {
            Some(builtin) => Some(builtin.name),
            None => self.type_info(oid).map(|t| t.name.as_str()),
        }
    }

    /// Number of relations described.
    pub fn len(&self) -> usize {
        self.relations.len()
    }

    /// Whether no relation was described yet.
    pub fn is_empty(&self) -> bool {
        self.relations.is_empty()
    }
}

/// Checks that each of `tuples` (the old and new tuple of an Insert, Update or Delete) has
/// exactly as many columns as `relation`'s Relation message describes. pgoutput sends every
/// published column of the relation in each tuple (NULL for the non-key columns of an old
/// key), so any other count is a protocol violation: reading such a tuple would pair values
/// with the wrong columns.
///
/// # Errors
/// [`Error::ColumnCount`] for the first tuple whose count differs.
pub(crate) fn check_column_counts(
    relation: &RelationInfo,
    counts: [Option<usize>; 2],
    lsn: Lsn,
) -> Result<(), Error> {
    let expected = relation.columns().len();
    let wrong = counts.into_iter().flatten().find(|&got| got != expected);
    match wrong {
        Some(got) => Err(Error::ColumnCount {
            lsn,
            oid: relation.oid(),
            got,
            expected,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_walstream_codec::pgoutput::{
        Message, PgOutputDecoder, ProtocolVersion, RelationColumn, ReplicaIdentity,
    };

    #[test]
    fn update_replaces_and_keeps_old_arcs() {
        let mut wire = Vec::new();
        let mut relation = Relation {
            xid: None,
            oid: Oid(16384),
            namespace: "public".to_owned(),
            name: "t".to_owned(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![RelationColumn {
                flags: 1,
                name: "id".to_owned(),
                type_oid: Oid(23),
                type_modifier: -1,
            }],
        };
        relation.encode(&mut wire).unwrap();
        let mut decoder = PgOutputDecoder::new(ProtocolVersion::V1);
        let Message::Relation(r) = decoder.decode(&wire).unwrap() else {
            panic!("not a relation")
        };
        let mut cache = RelationCache::new();
        let change = cache.update(&r);
        assert!(change.is_new());
        let first = Arc::clone(change.relation());
        assert_eq!(first.name(), "t");
        assert_eq!(first.columns(), &relation.columns[..]);
        relation.columns.push(RelationColumn {
            flags: 0,
            name: "v".to_owned(),
            type_oid: Oid(25),
            type_modifier: -1,
        });
        wire.clear();
        relation.encode(&mut wire).unwrap();
        let Message::Relation(r) = decoder.decode(&wire).unwrap() else {
            panic!("not a relation")
        };
        let change = cache.update(&r);
        assert!(Arc::ptr_eq(change.previous().unwrap(), &first));
        assert_eq!(change.added_columns().collect::<Vec<_>>(), ["v"]);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(Oid(16384)).unwrap().columns().len(), 2);
        assert_eq!(
            first.columns().len(),
            1,
            "delivered events keep their schema"
        );
        assert!(cache.get(Oid(1)).is_none());
    }

    fn describe(cache: &mut RelationCache, oid: u32, columns: &[&str]) -> Arc<RelationInfo> {
        let mut wire = Vec::new();
        Relation {
            xid: None,
            oid: Oid(oid),
            namespace: "public".to_owned(),
            name: format!("t{oid}"),
            replica_identity: ReplicaIdentity::Default,
            columns: columns
                .iter()
                .map(|name| RelationColumn {
                    flags: 0,
                    name: (*name).to_owned(),
                    type_oid: Oid(25),
                    type_modifier: -1,
                })
                .collect::<Vec<_>>(),
        }
        .encode(&mut wire)
        .unwrap();
        let mut decoder = PgOutputDecoder::new(ProtocolVersion::V1);
        let Message::Relation(r) = decoder.decode(&wire).unwrap() else {
            panic!("not a relation")
        };
        Arc::clone(cache.update(&r).relation())
    }

    /// `resolve` (the per-change lookup, which remembers the last relation) always agrees
    /// with the map: across relations, after a re-description, for an unknown OID.
    #[test]
    fn resolve_follows_redescriptions_and_switches() {
        let mut cache = RelationCache::new();
        let a = describe(&mut cache, 1, &["id"]);
        let b = describe(&mut cache, 2, &["id", "v"]);
        for (oid, expected) in [(1, &a), (1, &a), (2, &b), (1, &a), (2, &b), (2, &b)] {
            let got = cache.resolve(Oid(oid)).unwrap();
            assert!(Arc::ptr_eq(&got, expected), "oid {oid}");
        }
        assert!(cache.resolve(Oid(3)).is_none());
        // Re-describing the relation resolved last replaces what `resolve` returns.
        assert!(Arc::ptr_eq(&cache.resolve(Oid(2)).unwrap(), &b));
        let b2 = describe(&mut cache, 2, &["id", "v", "w"]);
        assert!(Arc::ptr_eq(&cache.resolve(Oid(2)).unwrap(), &b2));
        assert_eq!(cache.resolve(Oid(2)).unwrap().columns().len(), 3);
        // And re-describing another one while this one is the last does too.
        let a2 = describe(&mut cache, 1, &["id", "x"]);
        assert!(Arc::ptr_eq(&cache.resolve(Oid(2)).unwrap(), &b2));
        assert!(Arc::ptr_eq(&cache.resolve(Oid(1)).unwrap(), &a2));
        assert!(Arc::ptr_eq(cache.get(Oid(1)).unwrap(), &a2));
    }
}
