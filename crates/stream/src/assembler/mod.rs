//! Whole transactions from the event stream: [`TransactionAssembler`] (sans-IO) and its
//! `Stream` adapter [`Assemble`].
//!
//! The assembler buffers each transaction's events and yields it once it is decided, in the
//! order the server decides them (commit order):
//!
//! - **protocol 1**: Begin … Commit becomes one [`Transaction`];
//! - **streamed** (protocol 2 `streaming on`, 4 `parallel`): blocks of several transactions
//!   interleave; each block's events join their top-level transaction; a Stream Abort for a
//!   subtransaction drops exactly that subtransaction's events, a top-level Stream Abort drops
//!   the whole transaction; Stream Commit delivers it;
//! - **two-phase** (protocol 3): a prepared transaction is delivered at its Prepare or at its
//!   Commit Prepared ([`TwoPhaseDelivery`]); Rollback Prepared discards a held one.
//!
//! **Memory** is bounded by [`AssemblerConfig::memory_limit`] over all open transactions.
//! Past it, by [`Overflow`], a transaction's further changes go to an anonymous temporary file
//! (owned bytes, read back lazily when the delivered [`Transaction`] is iterated), or what is
//! buffered is handed out early as [`Chunk`]s. Held events never keep the transport's read
//! buffers alive: buffered bytes are copied into allocations of their own.
//!
//! **Acknowledgement**: report each item's [`Assembled::ack_lsn`] once it is durably applied
//! (with an [`OrderedFeedback`](crate::OrderedFeedback) when workers apply concurrently).
//! While a prepared transaction is held for its Commit Prepared, later items' positions are
//! capped at its prepare LSN so a restart sends it again.
//!
//! **Reconnects**: at an [`EventKind::Reconnected`] event the server is about to send every
//! undecided transaction again from its start, so the assembler drops what it buffered of them
//! (with [`Overflow::Partial`], an [`Assembled::Aborted`] voids chunks already handed out),
//! keeps the transactions already decided, and passes the event on as
//! [`Assembled::Reconnected`]. [`TransactionAssembler::reset`] drops everything, for a stream
//! restarted by other means.

mod adapter;
mod buffer;
mod spill;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use pg_walstream_codec::pgoutput::{Commit, CommitPrepared, Prepare, StreamCommit};
use pg_walstream_codec::{Lsn, Xid};

pub use adapter::Assemble;
pub use buffer::Events;
use buffer::{Buffer, cost};

use crate::error::{Error, Result};
use crate::events::{Event, EventKind};

/// What to do with a transaction's changes once the memory limit is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Write further changes to an anonymous temporary file (in `dir`, else the system's
    /// temporary directory) and read them back when the transaction is iterated.
    Spill {
        /// Where the temporary files go.
        dir: Option<PathBuf>,
    },
    /// Hand out what is buffered as a [`Chunk`] (marked partial) and keep going; the final
    /// [`Transaction`] then has [`is_partial`](Transaction::is_partial) set. A streamed
    /// transaction's chunks may contain changes of a subtransaction that aborts later, or the
    /// whole transaction may abort: [`Assembled::Aborted`] says so.
    Partial,
}

impl Default for Overflow {
    /// Spill to the system's temporary directory.
    fn default() -> Self {
        Overflow::Spill { dir: None }
    }
}

/// When a two-phase (prepared) transaction is delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TwoPhaseDelivery {
    /// At PREPARE TRANSACTION: the [`Transaction`] ends with [`TransactionEnd::Prepare`];
    /// its COMMIT PREPARED or ROLLBACK PREPARED follows as its own item.
    AtPrepare,
    /// At COMMIT PREPARED: the transaction is held (memory or spill file) until then and ends
    /// with [`TransactionEnd::CommitPrepared`]; ROLLBACK PREPARED discards it.
    #[default]
    AtCommitPrepared,
}

/// Settings of a [`TransactionAssembler`].
#[derive(Debug, Clone)]
pub struct AssemblerConfig {
    /// Bytes of buffered events held in memory over all open transactions before
    /// [`overflow`](Self::overflow) applies (default 64 MiB).
    pub memory_limit: usize,
    /// What happens past the limit (default: spill to the temporary directory).
    pub overflow: Overflow,
    /// When prepared transactions are delivered (default: at COMMIT PREPARED).
    pub two_phase: TwoPhaseDelivery,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            memory_limit: 64 << 20,
            overflow: Overflow::default(),
            two_phase: TwoPhaseDelivery::default(),
        }
    }
}

/// How a delivered transaction was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionEnd {
    /// Commit of a transaction sent whole (Begin … Commit).
    Commit(Commit),
    /// Stream Commit of a streamed transaction.
    StreamCommit(StreamCommit),
    /// PREPARE TRANSACTION ([`TwoPhaseDelivery::AtPrepare`]).
    Prepare(Prepare<String>),
    /// Stream Prepare of a streamed transaction ([`TwoPhaseDelivery::AtPrepare`]).
    StreamPrepare(Prepare<String>),
    /// COMMIT PREPARED of a held prepared transaction ([`TwoPhaseDelivery::AtCommitPrepared`]).
    CommitPrepared {
        /// Its Prepare (or Stream Prepare).
        prepare: Prepare<String>,
        /// The commit.
        commit: CommitPrepared<String>,
    },
}

/// A decided transaction and its events (changes, and the Relation, Type, Origin, Truncate and
/// transactional Message events among them), in the order the server sent them.
#[derive(Debug)]
pub struct Transaction {
    xid: Xid,
    end: TransactionEnd,
    ack_lsn: Lsn,
    partial: bool,
    buffer: Buffer,
}

impl Transaction {
    /// The top-level transaction id.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// How it was decided.
    pub fn end(&self) -> &TransactionEnd {
        &self.end
    }

    /// The position to report once the transaction is durably applied (its end LSN, capped
    /// while an earlier prepared transaction is held). Record this position — not the
    /// commit's own end LSN — as the restart point downstream: restarting past a held
    /// prepared transaction would skip its contents.
    pub fn ack_lsn(&self) -> Lsn {
        self.ack_lsn
    }

    /// Whether earlier parts were handed out as [`Chunk`]s ([`Overflow::Partial`]); the
    /// transaction then holds only the rest.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// How many events it holds (spilled changes of aborted subtransactions may be counted;
    /// they are skipped as read).
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Whether it holds no events.
    pub fn is_empty(&self) -> bool {
        self.buffer.len() == 0
    }

    /// Whether some of its events are in a spill file.
    pub fn is_spilled(&self) -> bool {
        self.buffer.spilled()
    }

    /// Bytes of its spill file (0 when nothing spilled).
    pub fn spilled_bytes(&self) -> u64 {
        self.buffer.spilled_bytes()
    }

    /// The events, in order; spilled ones are read back as the iterator advances.
    ///
    /// # Errors
    /// [`Error::Spill`] when the spill file cannot be rewound (reading errors come as items).
    pub fn into_events(self) -> Result<Events> {
        self.buffer.into_events()
    }
}

/// Part of a transaction handed out early ([`Overflow::Partial`]).
#[derive(Debug)]
pub struct Chunk {
    /// The top-level transaction id.
    pub xid: Xid,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// One item of assembled output.
#[derive(Debug)]
#[non_exhaustive]
pub enum Assembled {
    /// A decided transaction.
    Transaction(Transaction),
    /// Part of a transaction still open ([`Overflow::Partial`]).
    Chunk(Chunk),
    /// With [`Overflow::Partial`]: `subxid`'s changes already handed out in chunks are void
    /// (`subxid == xid`: the whole transaction aborted, or a held prepared transaction was
    /// rolled back).
    Aborted {
        /// The top-level transaction.
        xid: Xid,
        /// The aborted (sub)transaction.
        subxid: Xid,
    },
    /// COMMIT PREPARED of a transaction delivered at its prepare (or prepared before this
    /// stream started).
    CommitPrepared(Passed),
    /// ROLLBACK PREPARED; a held transaction was discarded.
    RollbackPrepared(Passed),
    /// A non-transactional logical message.
    Message(Passed),
    /// The stream reconnected ([`EventKind::Reconnected`]): transactions not yet decided were
    /// dropped and will arrive again, whole.
    Reconnected(Event),
}

/// An event passed through as it came, with the position to report for it.
#[derive(Debug)]
pub struct Passed {
    /// The event.
    pub event: Event,
    /// Its [`Event::ack_lsn`], capped while a prepared transaction is held.
    pub ack_lsn: Option<Lsn>,
}

impl Assembled {
    /// The position to report once the item is durably processed; `None` for chunks and
    /// aborts.
    pub fn ack_lsn(&self) -> Option<Lsn> {
        match self {
            Assembled::Transaction(t) => Some(t.ack_lsn),
            Assembled::Chunk(_) | Assembled::Aborted { .. } | Assembled::Reconnected(_) => None,
            Assembled::CommitPrepared(p)
            | Assembled::RollbackPrepared(p)
            | Assembled::Message(p) => p.ack_lsn,
        }
    }
}

#[derive(Debug)]
struct Open {
    xid: Xid,
    buffer: Buffer,
    partial: bool,
}

#[derive(Debug)]
struct Held {
    prepare: Prepare<String>,
    open: Open,
}

/// The sans-IO transaction assembler: [`push`](Self::push) events in stream order, take
/// [`Assembled`] items with [`poll`](Self::poll).
///
/// ```
/// use pg_walstream_stream::assembler::{AssemblerConfig, TransactionAssembler};
/// let mut assembler = TransactionAssembler::new(AssemblerConfig::default());
/// assert!(assembler.poll().is_none());
/// assert_eq!(assembler.memory_held(), 0);
/// ```
#[derive(Debug)]
pub struct TransactionAssembler {
    config: AssemblerConfig,
    current: Option<Open>,
    streams: HashMap<Xid, Open>,
    in_block: Option<Xid>,
    held: HashMap<String, Held>,
    memory: usize,
    peak: usize,
    ready: VecDeque<Assembled>,
}

impl TransactionAssembler {
    /// An assembler with `config`.
    pub fn new(config: AssemblerConfig) -> Self {
        TransactionAssembler {
            config,
            current: None,
            streams: HashMap::new(),
            in_block: None,
            held: HashMap::new(),
            memory: 0,
            peak: 0,
            ready: VecDeque::new(),
        }
    }

    /// The most bytes of buffered events ever held in memory at once: at most
    /// [`memory_limit`](AssemblerConfig::memory_limit) plus the one event that crossed it (and
    /// the events other than changes of spilling transactions, which stay in memory).
    pub fn peak_memory_held(&self) -> usize {
        self.peak
    }

    /// Bytes of buffered events held in memory now.
    pub fn memory_held(&self) -> usize {
        self.memory
    }

    /// Drops every open and held transaction (and their spill files) and anything not yet
    /// polled: for a new connection, which sends open transactions again from their start.
    pub fn reset(&mut self) {
        self.current = None;
        self.streams.clear();
        self.in_block = None;
        self.held.clear();
        self.ready.clear();
        self.memory = 0;
    }

    /// The next assembled item, if one is ready.
    pub fn poll(&mut self) -> Option<Assembled> {
        self.ready.pop_front()
    }

    /// Takes one event of the stream.
    ///
    /// # Errors
    /// [`Error::Assembly`] for events out of place (the stream validates nesting, so this
    /// means events were dropped or reordered on the way), [`Error::Spill`] when the spill
    /// file fails.
    pub fn push(&mut self, event: Event) -> Result<()> {
        let lsn = event.wal_start();
        let misplaced = |what| Error::Assembly { lsn, what };
        match event.kind() {
            EventKind::Begin(b) => self.begin(b.xid).map_err(misplaced),
            EventKind::BeginPrepare(b) => self.begin(b.xid).map_err(misplaced),
            EventKind::Commit(c) => {
                let end = TransactionEnd::Commit(*c);
                let open = self
                    .current
                    .take()
                    .ok_or(misplaced("Commit without Begin"))?;
                self.deliver(open, end, c.end_lsn);
                Ok(())
            }
            EventKind::Prepare(p) => {
                let prepare = p.clone();
                let open = self
                    .current
                    .take()
                    .ok_or(misplaced("Prepare without Begin Prepare"))?;
                self.prepared(open, prepare, false);
                Ok(())
            }
            EventKind::StreamStart(s) => {
                if self.current.is_some() || self.in_block.is_some() {
                    return Err(misplaced("Stream Start inside a transaction"));
                }
                self.in_block = Some(s.xid);
                self.streams
                    .entry(s.xid)
                    .or_insert_with(|| Open::new(s.xid, true));
                Ok(())
            }
            EventKind::StreamStop => {
                self.in_block
                    .take()
                    .ok_or(misplaced("Stream Stop outside a block"))?;
                Ok(())
            }
            EventKind::StreamCommit(c) => {
                let commit = *c;
                let open = self
                    .streams
                    .remove(&c.xid)
                    .ok_or(misplaced("Stream Commit of an unknown transaction"))?;
                self.memory -= open.buffer.held();
                self.deliver_owned(open, TransactionEnd::StreamCommit(commit), commit.end_lsn);
                Ok(())
            }
            EventKind::StreamAbort(a) => {
                let (xid, subxid) = (a.xid, a.subxid);
                self.stream_abort(xid, subxid);
                Ok(())
            }
            EventKind::StreamPrepare(p) => {
                let prepare = p.clone();
                let open = self
                    .streams
                    .remove(&p.xid)
                    .ok_or(misplaced("Stream Prepare of an unknown transaction"))?;
                self.memory -= open.buffer.held();
                self.prepared_owned(open, prepare, true);
                Ok(())
            }
            EventKind::CommitPrepared(c) => {
                let commit = c.clone();
                if let Some(held) = self.held.remove(&c.gid) {
                    self.memory -= held.open.buffer.held();
                    let end_lsn = commit.end_lsn;
                    let end = TransactionEnd::CommitPrepared {
                        prepare: held.prepare,
                        commit,
                    };
                    self.deliver_owned(held.open, end, end_lsn);
                } else {
                    let passed = self.pass(event);
                    self.ready.push_back(Assembled::CommitPrepared(passed));
                }
                Ok(())
            }
            EventKind::RollbackPrepared(r) => {
                if let Some(held) = self.held.remove(&r.gid) {
                    self.memory -= held.open.buffer.held();
                    if held.open.partial {
                        // Chunks of it were handed out: they are void.
                        let xid = held.open.xid;
                        self.ready
                            .push_back(Assembled::Aborted { xid, subxid: xid });
                    }
                }
                let passed = self.pass(event);
                self.ready.push_back(Assembled::RollbackPrepared(passed));
                Ok(())
            }
            EventKind::Reconnected(_) => {
                self.reconnected(event);
                Ok(())
            }
            EventKind::Message(m) if !m.is_transactional() => {
                let passed = self.pass(event);
                self.ready.push_back(Assembled::Message(passed));
                Ok(())
            }
            _ => self.buffer(event).map_err(|e| match e {
                Buffering::Misplaced(what) => misplaced(what),
                Buffering::Failed(error) => error,
            }),
        }
    }

    /// Drops every undecided transaction (voiding handed-out chunks) and passes the event on;
    /// decided transactions not yet polled stay.
    fn reconnected(&mut self, event: Event) {
        let open = self
            .current
            .take()
            .into_iter()
            .chain(self.streams.drain().map(|(_, open)| open))
            .chain(self.held.drain().map(|(_, held)| held.open));
        let voided: Vec<Xid> = open
            .filter(|open| open.partial)
            .map(|open| open.xid)
            .collect();
        for xid in voided {
            self.ready
                .push_back(Assembled::Aborted { xid, subxid: xid });
        }
        self.in_block = None;
        self.memory = 0;
        self.ready.push_back(Assembled::Reconnected(event));
    }

    fn begin(&mut self, xid: Xid) -> std::result::Result<(), &'static str> {
        if self.current.is_some() || self.in_block.is_some() {
            return Err("Begin inside a transaction");
        }
        self.current = Some(Open::new(xid, false));
        Ok(())
    }

    fn buffer(&mut self, event: Event) -> std::result::Result<(), Buffering> {
        let limit = self.config.memory_limit;
        let over = self.memory + cost(&event) > limit;
        let open = match self.in_block {
            Some(xid) => self.streams.get_mut(&xid),
            None => self.current.as_mut(),
        }
        .ok_or(Buffering::Misplaced("change outside a transaction"))?;
        match &self.config.overflow {
            Overflow::Spill { dir } if over || open.buffer.spilled() => {
                self.memory += open
                    .buffer
                    .push_spill(event, dir.as_deref())
                    .map_err(Buffering::Failed)?;
            }
            Overflow::Partial if over => {
                self.memory += open.buffer.push_memory(event);
                let (events, freed) = open.buffer.take_memory();
                self.memory -= freed;
                open.partial = true;
                self.ready.push_back(Assembled::Chunk(Chunk {
                    xid: open.xid,
                    events,
                }));
            }
            _ => self.memory += open.buffer.push_memory(event),
        }
        self.peak = self.peak.max(self.memory);
        Ok(())
    }

    fn stream_abort(&mut self, xid: Xid, subxid: Xid) {
        let partial = if xid == subxid {
            let Some(open) = self.streams.remove(&xid) else {
                return;
            };
            self.memory -= open.buffer.held();
            open.partial
        } else {
            let Some(open) = self.streams.get_mut(&xid) else {
                return;
            };
            self.memory -= open.buffer.abort_subtransaction(subxid);
            open.partial
        };
        if partial {
            self.ready.push_back(Assembled::Aborted { xid, subxid });
        }
    }

    /// A non-streamed transaction ends: its memory leaves the count.
    fn deliver(&mut self, open: Open, end: TransactionEnd, end_lsn: Lsn) {
        self.memory -= open.buffer.held();
        self.deliver_owned(open, end, end_lsn);
    }

    /// Delivers a transaction whose memory was already taken off the count.
    fn deliver_owned(&mut self, open: Open, end: TransactionEnd, end_lsn: Lsn) {
        let ack_lsn = self.cap(end_lsn);
        self.ready.push_back(Assembled::Transaction(Transaction {
            xid: open.xid,
            end,
            ack_lsn,
            partial: open.partial,
            buffer: open.buffer,
        }));
    }

    fn prepared(&mut self, open: Open, prepare: Prepare<String>, streamed: bool) {
        match self.config.two_phase {
            TwoPhaseDelivery::AtPrepare => {
                self.memory -= open.buffer.held();
                self.prepared_owned(open, prepare, streamed);
            }
            // Stays in the memory count while held.
            TwoPhaseDelivery::AtCommitPrepared => {
                self.held
                    .insert(prepare.gid.clone(), Held { prepare, open });
            }
        }
    }

    /// `open`'s memory is off the count; a held transaction puts it back.
    fn prepared_owned(&mut self, open: Open, prepare: Prepare<String>, streamed: bool) {
        match self.config.two_phase {
            TwoPhaseDelivery::AtPrepare => {
                let end_lsn = prepare.end_lsn;
                let end = if streamed {
                    TransactionEnd::StreamPrepare(prepare)
                } else {
                    TransactionEnd::Prepare(prepare)
                };
                self.deliver_owned(open, end, end_lsn);
            }
            TwoPhaseDelivery::AtCommitPrepared => {
                self.memory += open.buffer.held();
                self.held
                    .insert(prepare.gid.clone(), Held { prepare, open });
            }
        }
    }

    fn pass(&self, event: Event) -> Passed {
        let ack_lsn = event.ack_lsn().map(|lsn| self.cap(lsn));
        Passed { event, ack_lsn }
    }

    /// While prepared transactions are held, positions stop at the oldest one's prepare LSN:
    /// a restart from there sends it again (the server skips only what precedes the start).
    fn cap(&self, lsn: Lsn) -> Lsn {
        self.held
            .values()
            .map(|held| held.prepare.prepare_lsn)
            .min()
            .map_or(lsn, |floor| lsn.min(floor))
    }
}

enum Buffering {
    Misplaced(&'static str),
    Failed(Error),
}

impl Open {
    fn new(xid: Xid, in_stream: bool) -> Self {
        Open {
            xid,
            buffer: Buffer::new(in_stream),
            partial: false,
        }
    }
}
