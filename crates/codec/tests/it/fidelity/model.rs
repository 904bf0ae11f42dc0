//! Replays a decoded pgoutput stream into table contents, honouring transactions, streamed
//! (sub)transactions and two-phase commit, and checks old tuples against the model.

use std::collections::{BTreeMap, HashMap};

use pg_walstream_codec::pgoutput::{
    Column, OldTuple, OwnedColumn, OwnedMessage, OwnedTupleData, ReplicaIdentity,
};
use pg_walstream_codec::{Oid, Xid};

use super::workload::Rows;

/// Column name and type OID, as the Relation message announced them.
type Schema = Vec<(String, Oid)>;

/// A change as recorded before its transaction's outcome is known.
#[derive(Debug)]
enum Change {
    Insert(Oid, Schema, OwnedTupleData),
    Update(
        Oid,
        Schema,
        Option<OldTuple<OwnedTupleData>>,
        OwnedTupleData,
    ),
    Delete(Oid, Schema, OldTuple<OwnedTupleData>),
    Truncate(Vec<Oid>),
    Message(String, Vec<u8>, bool),
}

/// Facts observed while replaying, checked by the caller against the configuration.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) tags: BTreeMap<u8, usize>,
    pub(crate) unchanged_toast_columns: usize,
    pub(crate) full_old_tuples: usize,
    pub(crate) key_old_tuples: usize,
    pub(crate) subxact_aborts: usize,
    pub(crate) toplevel_aborts: usize,
    pub(crate) aborts_with_info: usize,
    pub(crate) truncate_flags: Vec<u8>,
    pub(crate) origins: Vec<(String, u64)>,
    pub(crate) types: Vec<(Oid, String, String)>,
    pub(crate) gids: Vec<(u8, String)>,
    pub(crate) relation_columns: BTreeMap<String, Vec<Schema>>,
    pub(crate) replica_identities: BTreeMap<String, ReplicaIdentity>,
    pub(crate) key_flags: BTreeMap<String, Vec<String>>,
}

/// The replayed state.
#[derive(Debug, Default)]
pub(crate) struct Model {
    relations: HashMap<Oid, (String, Schema)>,
    tables: BTreeMap<String, Rows>,
    current: Option<Vec<Change>>,
    streamed: HashMap<Xid, Vec<(Xid, Change)>>,
    stream_xid: Option<Xid>,
    prepared: HashMap<String, Vec<Change>>,
    pub(crate) messages: Vec<(String, Vec<u8>, bool)>,
    pub(crate) seen: Seen,
}

/// A column value as text, converting the binary forms of the workload's types.
fn text_of(col: &OwnedColumn, type_oid: Oid) -> Result<Option<String>, String> {
    Ok(match col {
        OwnedColumn::Null => None,
        OwnedColumn::UnchangedToast => return Err("unchanged TOAST has no value".into()),
        OwnedColumn::Text(v) => Some(String::from_utf8(v.to_vec()).map_err(|e| e.to_string())?),
        OwnedColumn::Binary(v) => Some(match type_oid.0 {
            23 => i32::from_be_bytes(v[..].try_into().map_err(|_| "int4 length")?).to_string(),
            20 => i64::from_be_bytes(v[..].try_into().map_err(|_| "int8 length")?).to_string(),
            // text, enum labels: the binary form is the text itself.
            _ => String::from_utf8(v.to_vec()).map_err(|e| e.to_string())?,
        }),
    })
}

fn id_of(schema: &Schema, tuple: &OwnedTupleData) -> Result<i64, String> {
    let pos = schema
        .iter()
        .position(|(n, _)| n == "id")
        .ok_or("no id column")?;
    let col = tuple.columns.get(pos).ok_or("tuple lacks id")?;
    text_of(col, schema[pos].1)?
        .ok_or("NULL id")?
        .parse()
        .map_err(|e| format!("id: {e}"))
}

impl Model {
    /// Feeds one decoded message.
    pub(crate) fn apply(&mut self, msg: OwnedMessage) -> Result<(), String> {
        let tag = {
            let mut buf = Vec::new();
            msg.encode(&mut buf).map_err(|e| e.to_string())?;
            buf[0]
        };
        *self.seen.tags.entry(tag).or_default() += 1;
        match msg {
            OwnedMessage::Begin(_) | OwnedMessage::BeginPrepare(_) => {
                if self.current.is_some() {
                    return Err("nested Begin".into());
                }
                if let OwnedMessage::BeginPrepare(b) = &msg {
                    self.seen.gids.push((tag, b.gid.clone()));
                }
                self.current = Some(Vec::new());
            }
            OwnedMessage::Commit(_) => {
                let changes = self.current.take().ok_or("Commit without Begin")?;
                self.commit(changes)?;
            }
            OwnedMessage::Prepare(p) => {
                let changes = self.current.take().ok_or("Prepare without Begin Prepare")?;
                self.seen.gids.push((tag, p.gid.clone()));
                self.prepared.insert(p.gid, changes);
            }
            OwnedMessage::StreamPrepare(p) => {
                let changes = self
                    .streamed
                    .remove(&p.xid)
                    .ok_or("Stream Prepare of unknown xid")?;
                self.seen.gids.push((tag, p.gid.clone()));
                self.prepared
                    .insert(p.gid, changes.into_iter().map(|(_, c)| c).collect());
            }
            OwnedMessage::CommitPrepared(c) => {
                self.seen.gids.push((tag, c.gid.clone()));
                let changes = self
                    .prepared
                    .remove(&c.gid)
                    .ok_or("Commit Prepared of unknown gid")?;
                self.commit(changes)?;
            }
            OwnedMessage::RollbackPrepared(r) => {
                self.seen.gids.push((tag, r.gid.clone()));
                self.prepared
                    .remove(&r.gid)
                    .ok_or("Rollback Prepared of unknown gid")?;
            }
            OwnedMessage::StreamStart(s) => {
                self.stream_xid = Some(s.xid);
                if s.first_segment {
                    if self.streamed.contains_key(&s.xid) {
                        return Err(format!("first segment of {} twice", s.xid));
                    }
                    self.streamed.insert(s.xid, Vec::new());
                } else if !self.streamed.contains_key(&s.xid) {
                    return Err(format!("continued stream {} never started", s.xid));
                }
            }
            OwnedMessage::StreamStop => self.stream_xid = None,
            OwnedMessage::StreamCommit(c) => {
                let changes = self
                    .streamed
                    .remove(&c.xid)
                    .ok_or("Stream Commit of unknown xid")?;
                self.commit(changes.into_iter().map(|(_, c)| c).collect())?;
            }
            OwnedMessage::StreamAbort(a) => {
                if a.abort.is_some() {
                    self.seen.aborts_with_info += 1;
                }
                if a.xid == a.subxid {
                    self.seen.toplevel_aborts += 1;
                    self.streamed.remove(&a.xid);
                } else {
                    self.seen.subxact_aborts += 1;
                    if let Some(changes) = self.streamed.get_mut(&a.xid) {
                        changes.retain(|(sub, _)| *sub != a.subxid);
                    }
                }
            }
            OwnedMessage::Origin(o) => self.seen.origins.push((o.name, o.commit_lsn.0)),
            OwnedMessage::Type(t) => {
                self.check_stream_xid(t.xid)?;
                self.seen.types.push((t.oid, t.namespace, t.name));
            }
            OwnedMessage::Relation(r) => {
                self.check_stream_xid(r.xid)?;
                let schema: Schema = r
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.type_oid))
                    .collect();
                let keys = r
                    .columns
                    .iter()
                    .filter(|c| c.is_key())
                    .map(|c| c.name.clone())
                    .collect();
                self.seen.key_flags.insert(r.name.clone(), keys);
                self.seen
                    .replica_identities
                    .insert(r.name.clone(), r.replica_identity);
                let history = self
                    .seen
                    .relation_columns
                    .entry(r.name.clone())
                    .or_default();
                if history.last() != Some(&schema) {
                    history.push(schema.clone());
                }
                self.relations.insert(r.oid, (r.name, schema));
            }
            OwnedMessage::Insert(i) => {
                let schema = self.schema(i.relation)?;
                self.record(i.xid, Change::Insert(i.relation, schema, i.new))?;
            }
            OwnedMessage::Update(u) => {
                let schema = self.schema(u.relation)?;
                self.record(u.xid, Change::Update(u.relation, schema, u.old, u.new))?;
            }
            OwnedMessage::Delete(d) => {
                let schema = self.schema(d.relation)?;
                self.record(d.xid, Change::Delete(d.relation, schema, d.old))?;
            }
            OwnedMessage::Truncate(t) => {
                self.seen.truncate_flags.push(t.flags);
                self.record(t.xid, Change::Truncate(t.relations))?;
            }
            OwnedMessage::Message(m) => {
                let transactional = m.is_transactional();
                let change = Change::Message(m.prefix, m.content.to_vec(), transactional);
                if transactional {
                    self.record(m.xid, change)?;
                } else {
                    self.commit(vec![change])?;
                }
            }
        }
        Ok(())
    }

    fn check_stream_xid(&self, xid: Option<Xid>) -> Result<(), String> {
        if xid.is_some() != self.stream_xid.is_some() {
            return Err(format!(
                "xid prefix {xid:?} while stream is {:?}",
                self.stream_xid
            ));
        }
        Ok(())
    }

    fn schema(&self, oid: Oid) -> Result<Schema, String> {
        self.relations
            .get(&oid)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| format!("change for relation {oid} before its Relation message"))
    }

    fn record(&mut self, xid: Option<Xid>, change: Change) -> Result<(), String> {
        self.check_stream_xid(xid)?;
        match (xid, self.stream_xid) {
            (Some(sub), Some(top)) => {
                self.streamed
                    .get_mut(&top)
                    .ok_or("stream not started")?
                    .push((sub, change));
            }
            _ => self
                .current
                .as_mut()
                .ok_or("change outside a transaction")?
                .push(change),
        }
        Ok(())
    }

    fn commit(&mut self, changes: Vec<Change>) -> Result<(), String> {
        for change in changes {
            self.commit_one(change)?;
        }
        Ok(())
    }

    fn table_name(&self, oid: Oid) -> Result<String, String> {
        self.relations
            .get(&oid)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| format!("unknown relation {oid}"))
    }

    fn commit_one(&mut self, change: Change) -> Result<(), String> {
        match change {
            Change::Message(prefix, content, transactional) => {
                self.messages.push((prefix, content, transactional));
            }
            Change::Truncate(oids) => {
                for oid in oids {
                    let name = self.table_name(oid)?;
                    self.tables.entry(name).or_default().clear();
                }
            }
            Change::Insert(oid, schema, new) => {
                let name = self.table_name(oid)?;
                let id = id_of(&schema, &new)?;
                let row = Self::row(&schema, &new, None)?;
                if self
                    .tables
                    .entry(name.clone())
                    .or_default()
                    .insert(id, row)
                    .is_some()
                {
                    return Err(format!("{name}: insert of existing id {id}"));
                }
            }
            Change::Update(oid, schema, old, new) => {
                let name = self.table_name(oid)?;
                let rows = self.tables.entry(name.clone()).or_default();
                let old_id = match &old {
                    Some(o) => id_of(&schema, o.tuple())?,
                    None => id_of(&schema, &new)?,
                };
                let existing = rows
                    .remove(&old_id)
                    .ok_or(format!("{name}: update of missing id {old_id}"))?;
                if let Some(o) = &old {
                    Self::check_old(&mut self.seen, &schema, o, &existing)?;
                }
                let row = Self::row(&schema, &new, Some(&existing))?;
                self.seen.unchanged_toast_columns += new
                    .columns
                    .iter()
                    .filter(|c| c.as_column() == Column::UnchangedToast)
                    .count();
                rows.insert(id_of(&schema, &new)?, row);
            }
            Change::Delete(oid, schema, old) => {
                let name = self.table_name(oid)?;
                let id = id_of(&schema, old.tuple())?;
                let rows = self.tables.entry(name.clone()).or_default();
                let existing = rows
                    .remove(&id)
                    .ok_or(format!("{name}: delete of missing id {id}"))?;
                Self::check_old(&mut self.seen, &schema, &old, &existing)?;
            }
        }
        Ok(())
    }

    /// The old tuple must agree with the model's row: all columns for FULL, keys for K.
    fn check_old(
        seen: &mut Seen,
        schema: &Schema,
        old: &OldTuple<OwnedTupleData>,
        existing: &BTreeMap<String, Option<String>>,
    ) -> Result<(), String> {
        let full = matches!(old, OldTuple::Full(_));
        if full {
            seen.full_old_tuples += 1;
        } else {
            seen.key_old_tuples += 1;
        }
        for ((name, type_oid), col) in schema.iter().zip(&old.tuple().columns) {
            if *col == OwnedColumn::UnchangedToast || (!full && *col == OwnedColumn::Null) {
                continue;
            }
            let value = text_of(col, *type_oid)?;
            let expected = existing.get(name).cloned().flatten();
            if value != expected {
                return Err(format!(
                    "old tuple column {name}: {value:?} but model has {expected:?}"
                ));
            }
        }
        Ok(())
    }

    fn row(
        schema: &Schema,
        tuple: &OwnedTupleData,
        existing: Option<&BTreeMap<String, Option<String>>>,
    ) -> Result<BTreeMap<String, Option<String>>, String> {
        if schema.len() != tuple.columns.len() {
            return Err(format!(
                "{} columns for a {}-column relation",
                tuple.columns.len(),
                schema.len()
            ));
        }
        let mut row = BTreeMap::new();
        for ((name, type_oid), col) in schema.iter().zip(&tuple.columns) {
            let value = if *col == OwnedColumn::UnchangedToast {
                existing
                    .and_then(|e| e.get(name).cloned())
                    .ok_or(format!("unchanged TOAST {name} without a previous value"))?
            } else {
                text_of(col, *type_oid)?
            };
            row.insert(name.clone(), value);
        }
        Ok(row)
    }

    /// The replayed tables; columns a row never had (added later by ALTER TABLE) are NULL.
    pub(crate) fn tables(&self, columns: &[(&str, &[&str])]) -> BTreeMap<String, Rows> {
        let mut out = BTreeMap::new();
        for (table, cols) in columns {
            let mut rows = self.tables.get(*table).cloned().unwrap_or_default();
            for row in rows.values_mut() {
                for c in *cols {
                    row.entry((*c).to_string()).or_insert(None);
                }
            }
            out.insert((*table).to_string(), rows);
        }
        out
    }

    /// Nothing may be left pending at the end of the stream.
    pub(crate) fn check_finished(&self) -> Result<(), String> {
        if self.current.is_some()
            || !self.streamed.is_empty()
            || !self.prepared.is_empty()
            || self.stream_xid.is_some()
        {
            return Err(format!(
                "unfinished: tx open {}, streamed {:?}, prepared {:?}",
                self.current.is_some(),
                self.streamed.keys().collect::<Vec<_>>(),
                self.prepared.keys().collect::<Vec<_>>()
            ));
        }
        Ok(())
    }
}
