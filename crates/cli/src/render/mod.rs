//! pgoutput messages as JSON objects: the one rendering shared by `recv` and `decode`, so
//! both print the same thing for the same message.
//!
//! Every object has a `kind` (`begin`, `commit`, `insert`, …) and the message's own fields;
//! WAL positions are `X/Y` strings, timestamps RFC 3339 in UTC with microseconds. Row values
//! are arrays of columns (see [`values`]). Frame positions (`XLogData` `wal_start`) are not
//! part of the objects: the walsender sends `0/0` there for all but the last message of a
//! change, so they carry no information `decode` could reproduce.

mod types;
pub(crate) mod values;

use std::collections::HashMap;

use pg_walstream_codec::pgoutput::{Column, Message, OldTuple, ReplicaIdentity, TupleData};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};
use serde_json::{Map, Value, json};

use values::{lsn, render_tuple, timestamp};

/// A message that cannot be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RenderError {
    /// A change names a relation no Relation message described.
    #[error("a change refers to relation {oid}, which no Relation message described")]
    UnknownRelation {
        /// The relation OID.
        oid: Oid,
    },
    /// A tuple has more or fewer columns than its relation (pgoutput sends every column).
    #[error(
        "a change of {schema}.{table} has {got} columns, but its Relation message describes {expected}"
    )]
    ColumnCount {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// Columns in the tuple.
        got: usize,
        /// Columns in the relation.
        expected: usize,
    },
    /// An old key tuple carries a value for a column that is not part of the key (pgoutput
    /// sends those as NULL placeholders).
    #[error(
        "the old key of a change of {schema}.{table} has a value for {column}, which is not a \
         key column"
    )]
    NonKeyValue {
        /// Schema.
        schema: String,
        /// Table.
        table: String,
        /// The column.
        column: String,
    },
}

/// A relation as the last Relation message described it.
#[derive(Debug, Clone)]
pub(crate) struct RelationDesc {
    pub(crate) schema: String,
    pub(crate) table: String,
    /// Name and type OID of each column.
    pub(crate) columns: Vec<(String, Oid)>,
    /// Whether each column is part of the replica identity (key flag 1).
    pub(crate) key: Vec<bool>,
}

/// Turns messages into JSON, remembering relations and type names as they are described.
#[derive(Debug, Default)]
pub(crate) struct Renderer {
    relations: HashMap<Oid, RelationDesc>,
    type_names: HashMap<Oid, String>,
}

fn object(kind: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("kind".to_owned(), Value::from(kind));
    map
}

fn put_xid(map: &mut Map<String, Value>, xid: Option<Xid>) {
    if let Some(xid) = xid {
        map.insert("xid".to_owned(), Value::from(xid.0));
    }
}

fn put_lsn(map: &mut Map<String, Value>, key: &str, value: Lsn) {
    map.insert(key.to_owned(), lsn(value));
}

fn put_time(map: &mut Map<String, Value>, key: &str, value: PgTimestamp) {
    map.insert(key.to_owned(), timestamp(value));
}

fn replica_identity(identity: ReplicaIdentity) -> &'static str {
    match identity {
        ReplicaIdentity::Default => "default",
        ReplicaIdentity::Nothing => "nothing",
        ReplicaIdentity::Full => "full",
        ReplicaIdentity::Index => "index",
    }
}

impl Renderer {
    /// A renderer that knows no relation yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The name of type `oid`: from a Type message, or PostgreSQL's name of a built-in type.
    fn type_name(&self, oid: Oid) -> Option<&str> {
        self.type_names
            .get(&oid)
            .map(String::as_str)
            .or_else(|| types::builtin_type_name(oid))
    }

    fn relation(&self, oid: Oid) -> Result<&RelationDesc, RenderError> {
        self.relations
            .get(&oid)
            .ok_or(RenderError::UnknownRelation { oid })
    }

    fn tuple(&self, relation: &RelationDesc, tuple: &TupleData<'_>) -> Result<Value, RenderError> {
        Self::check_count(relation, tuple)?;
        Ok(render_tuple(
            relation,
            tuple,
            |_| true,
            |oid| self.type_name(oid),
        ))
    }

    /// The key columns of an old key tuple: the others are NULL placeholders the server
    /// sends for columns it did not send, so they are left out rather than shown as NULL.
    fn key_tuple(
        &self,
        relation: &RelationDesc,
        tuple: &TupleData<'_>,
    ) -> Result<Value, RenderError> {
        Self::check_count(relation, tuple)?;
        let stray = tuple
            .columns()
            .zip(relation.columns.iter().zip(&relation.key))
            .find(|(value, (_, key))| !**key && *value != Column::Null);
        if let Some((_, ((name, _), _))) = stray {
            return Err(RenderError::NonKeyValue {
                schema: relation.schema.clone(),
                table: relation.table.clone(),
                column: name.clone(),
            });
        }
        Ok(render_tuple(
            relation,
            tuple,
            |i| relation.key[i],
            |oid| self.type_name(oid),
        ))
    }

    fn check_count(relation: &RelationDesc, tuple: &TupleData<'_>) -> Result<(), RenderError> {
        if tuple.len() != relation.columns.len() {
            return Err(RenderError::ColumnCount {
                schema: relation.schema.clone(),
                table: relation.table.clone(),
                got: tuple.len(),
                expected: relation.columns.len(),
            });
        }
        Ok(())
    }

    fn change(
        &self,
        kind: &str,
        xid: Option<Xid>,
        oid: Oid,
        old: Option<&OldTuple<TupleData<'_>>>,
        new: Option<&TupleData<'_>>,
    ) -> Result<Value, RenderError> {
        let relation = self.relation(oid)?;
        let mut map = object(kind);
        put_xid(&mut map, xid);
        map.insert("schema".to_owned(), Value::from(relation.schema.as_str()));
        map.insert("table".to_owned(), Value::from(relation.table.as_str()));
        match old {
            Some(OldTuple::Key(t)) => {
                map.insert("old_key".to_owned(), self.key_tuple(relation, t)?);
            }
            Some(OldTuple::Full(t)) => {
                map.insert("old".to_owned(), self.tuple(relation, t)?);
            }
            None => {}
        }
        if let Some(new) = new {
            map.insert("new".to_owned(), self.tuple(relation, new)?);
        }
        Ok(Value::Object(map))
    }

    /// Renders one message (and remembers Relation and Type descriptions).
    ///
    /// # Errors
    /// [`RenderError`] for a change of an undescribed relation, with another column count
    /// than its relation, or with a value in a non-key column of an old key.
    pub(crate) fn render(&mut self, message: &Message<'_>) -> Result<Value, RenderError> {
        Ok(match message {
            Message::Begin(b) => {
                let mut map = object("begin");
                map.insert("xid".to_owned(), Value::from(b.xid.0));
                put_lsn(&mut map, "final_lsn", b.final_lsn);
                put_time(&mut map, "commit_time", b.commit_time);
                Value::Object(map)
            }
            Message::Commit(c) => {
                let mut map = object("commit");
                map.insert("flags".to_owned(), Value::from(c.flags));
                put_lsn(&mut map, "commit_lsn", c.commit_lsn);
                put_lsn(&mut map, "end_lsn", c.end_lsn);
                put_time(&mut map, "commit_time", c.commit_time);
                Value::Object(map)
            }
            Message::Origin(o) => {
                let mut map = object("origin");
                put_lsn(&mut map, "commit_lsn", o.commit_lsn);
                map.insert("name".to_owned(), Value::from(o.name));
                Value::Object(map)
            }
            Message::Relation(r) => {
                let columns: Vec<(String, Oid)> = r
                    .columns
                    .iter()
                    .map(|c| (c.name.to_owned(), c.type_oid))
                    .collect();
                let mut map = object("relation");
                put_xid(&mut map, r.xid);
                map.insert("oid".to_owned(), Value::from(r.oid.0));
                map.insert("schema".to_owned(), Value::from(r.namespace));
                map.insert("table".to_owned(), Value::from(r.name));
                map.insert(
                    "replica_identity".to_owned(),
                    Value::from(replica_identity(r.replica_identity)),
                );
                let described: Vec<Value> = r
                    .columns
                    .iter()
                    .map(|c| {
                        let mut col = Map::new();
                        col.insert("name".to_owned(), Value::from(c.name));
                        col.insert("type_oid".to_owned(), Value::from(c.type_oid.0));
                        if let Some(name) = self.type_name(c.type_oid) {
                            col.insert("type".to_owned(), Value::from(name));
                        }
                        col.insert("type_modifier".to_owned(), Value::from(c.type_modifier));
                        col.insert("key".to_owned(), Value::from(c.is_key()));
                        Value::Object(col)
                    })
                    .collect();
                map.insert("columns".to_owned(), Value::Array(described));
                self.relations.insert(
                    r.oid,
                    RelationDesc {
                        schema: r.namespace.to_owned(),
                        table: r.name.to_owned(),
                        columns,
                        key: r.columns.iter().map(|c| c.is_key()).collect(),
                    },
                );
                Value::Object(map)
            }
            Message::Type(t) => {
                self.type_names.insert(t.oid, t.name.to_owned());
                let mut map = object("type");
                put_xid(&mut map, t.xid);
                map.insert("oid".to_owned(), Value::from(t.oid.0));
                map.insert("schema".to_owned(), Value::from(t.namespace));
                map.insert("name".to_owned(), Value::from(t.name));
                Value::Object(map)
            }
            Message::Insert(i) => self.change("insert", i.xid, i.relation, None, Some(&i.new))?,
            Message::Update(u) => {
                self.change("update", u.xid, u.relation, u.old.as_ref(), Some(&u.new))?
            }
            Message::Delete(d) => self.change("delete", d.xid, d.relation, Some(&d.old), None)?,
            Message::Truncate(t) => {
                let mut map = object("truncate");
                put_xid(&mut map, t.xid);
                map.insert("cascade".to_owned(), Value::from(t.cascade()));
                map.insert(
                    "restart_identity".to_owned(),
                    Value::from(t.restart_identity()),
                );
                let mut relations = Vec::with_capacity(t.relations.len());
                for oid in t.relations.iter() {
                    let r = self.relation(oid)?;
                    relations.push(json!({"schema": r.schema, "table": r.table}));
                }
                map.insert("relations".to_owned(), Value::Array(relations));
                Value::Object(map)
            }
            Message::Message(m) => {
                let mut map = object("message");
                put_xid(&mut map, m.xid);
                map.insert(
                    "transactional".to_owned(),
                    Value::from(m.is_transactional()),
                );
                put_lsn(&mut map, "lsn", m.lsn);
                map.insert("prefix".to_owned(), Value::from(m.prefix));
                let (key, content) = values::text_or_hex("content", m.content);
                map.insert(key, content);
                Value::Object(map)
            }
            Message::StreamStart(s) => {
                let mut map = object("stream_start");
                map.insert("xid".to_owned(), Value::from(s.xid.0));
                map.insert("first_segment".to_owned(), Value::from(s.first_segment));
                Value::Object(map)
            }
            Message::StreamStop => Value::Object(object("stream_stop")),
            Message::StreamCommit(c) => {
                let mut map = object("stream_commit");
                map.insert("xid".to_owned(), Value::from(c.xid.0));
                map.insert("flags".to_owned(), Value::from(c.flags));
                put_lsn(&mut map, "commit_lsn", c.commit_lsn);
                put_lsn(&mut map, "end_lsn", c.end_lsn);
                put_time(&mut map, "commit_time", c.commit_time);
                Value::Object(map)
            }
            Message::StreamAbort(a) => {
                let mut map = object("stream_abort");
                map.insert("xid".to_owned(), Value::from(a.xid.0));
                map.insert("subxid".to_owned(), Value::from(a.subxid.0));
                if let Some(info) = &a.abort {
                    put_lsn(&mut map, "abort_lsn", info.abort_lsn);
                    put_time(&mut map, "abort_time", info.abort_time);
                }
                Value::Object(map)
            }
            Message::BeginPrepare(b) => {
                let mut map = object("begin_prepare");
                map.insert("xid".to_owned(), Value::from(b.xid.0));
                map.insert("gid".to_owned(), Value::from(b.gid));
                put_lsn(&mut map, "prepare_lsn", b.prepare_lsn);
                put_lsn(&mut map, "end_lsn", b.end_lsn);
                put_time(&mut map, "prepare_time", b.prepare_time);
                Value::Object(map)
            }
            Message::Prepare(p) | Message::StreamPrepare(p) => {
                let kind = if matches!(message, Message::Prepare(_)) {
                    "prepare"
                } else {
                    "stream_prepare"
                };
                let mut map = object(kind);
                map.insert("xid".to_owned(), Value::from(p.xid.0));
                map.insert("gid".to_owned(), Value::from(p.gid));
                map.insert("flags".to_owned(), Value::from(p.flags));
                put_lsn(&mut map, "prepare_lsn", p.prepare_lsn);
                put_lsn(&mut map, "end_lsn", p.end_lsn);
                put_time(&mut map, "prepare_time", p.prepare_time);
                Value::Object(map)
            }
            Message::CommitPrepared(c) => {
                let mut map = object("commit_prepared");
                map.insert("xid".to_owned(), Value::from(c.xid.0));
                map.insert("gid".to_owned(), Value::from(c.gid));
                map.insert("flags".to_owned(), Value::from(c.flags));
                put_lsn(&mut map, "commit_lsn", c.commit_lsn);
                put_lsn(&mut map, "end_lsn", c.end_lsn);
                put_time(&mut map, "commit_time", c.commit_time);
                Value::Object(map)
            }
            Message::RollbackPrepared(r) => {
                let mut map = object("rollback_prepared");
                map.insert("xid".to_owned(), Value::from(r.xid.0));
                map.insert("gid".to_owned(), Value::from(r.gid));
                map.insert("flags".to_owned(), Value::from(r.flags));
                put_lsn(&mut map, "prepare_end_lsn", r.prepare_end_lsn);
                put_lsn(&mut map, "rollback_end_lsn", r.rollback_end_lsn);
                put_time(&mut map, "prepare_time", r.prepare_time);
                put_time(&mut map, "rollback_time", r.rollback_time);
                Value::Object(map)
            }
        })
    }
}

#[cfg(test)]
mod tests;
