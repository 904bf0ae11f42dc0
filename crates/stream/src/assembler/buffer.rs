//! One open transaction's buffered events: in memory up to the limit, then in a spill file.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use pg_walstream_codec::Xid;
use pg_walstream_codec::pgoutput::{LogicalMessage, ProtocolVersion};
use pg_walstream_codec::replication::XLogData;

use super::spill::{ChangeKind, Record, SpillReader, SpillWriter};
use crate::error::{Error, Result};
use crate::events::{Change, ChangeLayout, Event, EventKind};
use crate::relation::RelationInfo;

/// The protocol version events rebuilt from owned bytes are decoded with. An event's own
/// version is not readable here; for the messages buffered (changes, Relation, Type, Origin,
/// Truncate, transactional Message) only the streamed-block flag changes how they decode, and
/// version 4 decodes every one of them as the lower versions do.
const REBUILD_VERSION: ProtocolVersion = ProtocolVersion::V4;

/// What an event held in memory costs against the limit: its bytes plus the event itself.
pub(crate) fn cost(event: &Event) -> usize {
    event.xlog_data().data.len() + size_of::<Event>()
}

/// An event whose bytes are its own: a held event must not keep the transport's read buffer
/// (which holds many other frames) alive.
pub(crate) fn owned(event: Event, in_stream: bool) -> Event {
    let stream_id = event.stream_id();
    let xlog = event.xlog_data();
    let data = Bytes::copy_from_slice(&xlog.data);
    let frame = XLogData {
        wal_start: xlog.wal_start,
        wal_end: xlog.wal_end,
        send_time: xlog.send_time,
        data: data.clone(),
    };
    let rebuild = |change: &Change| {
        Change::new(
            change.xid(),
            Arc::clone(change.relation()),
            data.clone(),
            REBUILD_VERSION,
            in_stream,
            // The copy has the same bytes: the offsets still hold.
            change.layout(),
        )
    };
    let kind = match event.into_kind() {
        EventKind::Insert(change) => EventKind::Insert(rebuild(&change)),
        EventKind::Update(change) => EventKind::Update(rebuild(&change)),
        EventKind::Delete(change) => EventKind::Delete(rebuild(&change)),
        EventKind::Message(message) => EventKind::Message(LogicalMessage {
            content: Bytes::copy_from_slice(&message.content),
            ..message
        }),
        other => other,
    };
    Event::new(frame, kind, REBUILD_VERSION, in_stream, stream_id)
}

/// The (sub)transaction an event belongs to, for dropping an aborted subtransaction.
fn subxid(event: &Event) -> Option<Xid> {
    event.kind().stream_xid()
}

/// Buffered events of one transaction, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    memory: Vec<Event>,
    /// Bytes of `memory` and `side` as counted by [`cost`].
    held: usize,
    spill: Option<Spill>,
    aborted: HashSet<Xid>,
    /// Events kept, aborted ones excluded (spilled ones included).
    count: usize,
    in_stream: bool,
    /// The stream that delivered the spilled changes (events keep it, for `Feedback::ack`).
    stream_id: u64,
}

#[derive(Debug)]
struct Spill {
    writer: SpillWriter,
    /// Events that are not changes, kept in memory once spilling started; the file names them
    /// by index. `None` once dropped by a subtransaction abort.
    side: Vec<Option<Event>>,
    relations: Vec<Arc<RelationInfo>>,
    relation_index: HashMap<usize, u32>,
}

impl Buffer {
    pub(crate) fn new(in_stream: bool) -> Self {
        Buffer {
            in_stream,
            ..Buffer::default()
        }
    }

    /// Bytes held in memory.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Events kept.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether events went to a spill file.
    pub(crate) fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// Bytes in the spill file.
    pub(crate) fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.writer.len())
    }

    /// Buffers `event` in memory (owned); returns the bytes added to the memory count. Only
    /// before spilling started: after that, order is kept by the file ([`push_spill`]).
    ///
    /// [`push_spill`]: Self::push_spill
    pub(crate) fn push_memory(&mut self, event: Event) -> usize {
        debug_assert!(self.spill.is_none(), "a spilling buffer takes push_spill");
        let event = owned(event, self.in_stream);
        let added = cost(&event);
        self.count += 1;
        self.memory.push(event);
        self.held += added;
        added
    }

    /// Buffers `event` in the spill file (changes) or, for other events, in memory named by
    /// the file; returns the bytes added to the memory count.
    ///
    /// # Errors
    /// [`Error::Spill`] when the file cannot be created or written.
    pub(crate) fn push_spill(&mut self, event: Event, dir: Option<&Path>) -> Result<usize> {
        if self.spill.is_none() {
            let writer = SpillWriter::create(dir).map_err(Error::spill("creating"))?;
            self.spill = Some(Spill {
                writer,
                side: Vec::new(),
                relations: Vec::new(),
                relation_index: HashMap::new(),
            });
        }
        self.stream_id = event.stream_id();
        let spill = self.spill.as_mut().expect("created above");
        let (kind, change) = match event.kind() {
            EventKind::Insert(c) => (ChangeKind::Insert, c),
            EventKind::Update(c) => (ChangeKind::Update, c),
            EventKind::Delete(c) => (ChangeKind::Delete, c),
            _ => {
                let event = owned(event, self.in_stream);
                let added = cost(&event);
                let index = spill.side.len() as u32;
                spill.side.push(Some(event));
                spill.writer.side(index).map_err(Error::spill("writing"))?;
                self.held += added;
                self.count += 1;
                return Ok(added);
            }
        };
        let key = Arc::as_ptr(change.relation()) as usize;
        let relation = if let Some(index) = spill.relation_index.get(&key) {
            *index
        } else {
            let index = spill.relations.len() as u32;
            spill.relations.push(Arc::clone(change.relation()));
            spill.relation_index.insert(key, index);
            index
        };
        let xlog = event.xlog_data();
        spill
            .writer
            .change(
                kind,
                change.xid(),
                relation,
                xlog.wal_start,
                xlog.wal_end,
                xlog.send_time,
                &xlog.data,
            )
            .map_err(Error::spill("writing"))?;
        self.count += 1;
        Ok(0)
    }

    /// Drops every event of subtransaction `subxid`; returns the memory freed.
    pub(crate) fn abort_subtransaction(&mut self, subxid: Xid) -> usize {
        let mut freed = 0;
        let mut dropped = 0;
        self.memory.retain(|event| {
            let keep = self::subxid(event) != Some(subxid);
            if !keep {
                freed += cost(event);
                dropped += 1;
            }
            keep
        });
        if let Some(spill) = &mut self.spill {
            for slot in &mut spill.side {
                if slot
                    .as_ref()
                    .is_some_and(|e| self::subxid(e) == Some(subxid))
                {
                    freed += slot.take().as_ref().map_or(0, cost);
                    dropped += 1;
                }
            }
            // Spilled changes are skipped on delivery; they are counted out then.
            self.aborted.insert(subxid);
        }
        self.held -= freed;
        self.count -= dropped;
        freed
    }

    /// Takes the in-memory events (partial delivery); returns them and the memory freed.
    pub(crate) fn take_memory(&mut self) -> (Vec<Event>, usize) {
        let events = std::mem::take(&mut self.memory);
        let freed: usize = events.iter().map(cost).sum();
        self.held -= freed;
        self.count -= events.len();
        (events, freed)
    }

    /// The buffered events, in order.
    ///
    /// # Errors
    /// [`Error::Spill`] when the spill file cannot be read back.
    pub(crate) fn into_events(self) -> Result<Events> {
        let spill = match self.spill {
            Some(spill) => Some(SpilledEvents {
                reader: spill
                    .writer
                    .into_reader()
                    .map_err(Error::spill("rewinding"))?,
                side: spill.side,
                relations: spill.relations,
                aborted: self.aborted,
                in_stream: self.in_stream,
                stream_id: self.stream_id,
            }),
            None => None,
        };
        Ok(Events {
            memory: self.memory.into_iter(),
            spill,
            len: self.count,
        })
    }
}

/// The events of a delivered [`Transaction`](super::Transaction), in order: those held in
/// memory, then those read back from its spill file (each read as owned bytes).
///
/// An `Err` item (the spill file could not be read) ends the iteration.
#[derive(Debug)]
pub struct Events {
    memory: std::vec::IntoIter<Event>,
    spill: Option<SpilledEvents>,
    len: usize,
}

#[derive(Debug)]
struct SpilledEvents {
    reader: SpillReader,
    side: Vec<Option<Event>>,
    relations: Vec<Arc<RelationInfo>>,
    aborted: HashSet<Xid>,
    in_stream: bool,
    stream_id: u64,
}

impl Events {
    /// How many events the transaction had when delivered (subtransaction changes dropped
    /// by a later abort are not counted, except spilled ones, which are skipped as read).
    pub fn len_hint(&self) -> usize {
        self.len
    }
}

impl Iterator for Events {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(event) = self.memory.next() {
            return Some(Ok(event));
        }
        let spill = self.spill.as_mut()?;
        loop {
            let record = match spill.reader.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => {
                    self.spill = None;
                    return None;
                }
                Err(error) => {
                    self.spill = None;
                    return Some(Err(Error::spill("reading")(error)));
                }
            };
            match record {
                Record::Side(index) => {
                    if let Some(event) = spill.side.get_mut(index as usize).and_then(Option::take) {
                        return Some(Ok(event));
                    }
                }
                Record::Change {
                    kind,
                    xid,
                    relation,
                    wal_start,
                    wal_end,
                    send_time,
                    data,
                } => {
                    if xid.is_some_and(|xid| spill.aborted.contains(&xid)) {
                        continue;
                    }
                    let Some(relation) = spill.relations.get(relation as usize) else {
                        self.spill = None;
                        return Some(Err(Error::spill("reading")(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "spill record names an unknown relation",
                        ))));
                    };
                    let change = Change::new(
                        xid,
                        Arc::clone(relation),
                        data.clone(),
                        REBUILD_VERSION,
                        spill.in_stream,
                        // Read back from the spill file: decoded again when read.
                        ChangeLayout::REDECODE,
                    );
                    let kind = match kind {
                        ChangeKind::Insert => EventKind::Insert(change),
                        ChangeKind::Update => EventKind::Update(change),
                        ChangeKind::Delete => EventKind::Delete(change),
                    };
                    let frame = XLogData {
                        wal_start,
                        wal_end,
                        send_time,
                        data,
                    };
                    return Some(Ok(Event::new(
                        frame,
                        kind,
                        REBUILD_VERSION,
                        spill.in_stream,
                        spill.stream_id,
                    )));
                }
            }
        }
    }
}
