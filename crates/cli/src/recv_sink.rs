//! `recv`'s output side: where events go, what is durable, and `FILE.ack` beside `-o FILE`
//! (what may be acknowledged, and where a reconnect or restart cuts the file back to).

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use pg_walstream_codec::{Lsn, Xid};
use pg_walstream_stream::{Event, EventKind};

use crate::ackfile::{self, AckRecord};
use crate::capture::raw::write_frame;
use crate::error::CliError;
use crate::output::{Destination, EventWriter, Format};
use crate::render::{RenderError, Renderer};

/// Output state: where events go and what may be acknowledged.
pub(crate) struct Sink {
    pub(crate) out: Destination,
    pub(crate) writer: EventWriter,
    pub(crate) renderer: Renderer,
    pub(crate) format: Format,
    /// Written but not yet durable (files are synced at most once a second): the position to
    /// acknowledge and the output's length after it.
    pub(crate) pending_ack: Option<(Lsn, u64)>,
    /// The last position acknowledged (given to `Feedback::processed`, or read from FILE.ack).
    pub(crate) reported: Option<Lsn>,
    /// `-o FILE`: its acknowledgement record.
    pub(crate) tracking: Option<Tracking>,
    /// Streamed transactions whose blocks are in the output but not yet ended.
    pub(crate) streams: OpenStreams,
}

/// Holds acknowledgements back while a streamed transaction's blocks are in the output
/// unfinished (formats that write blocks as they arrive: json, text, raw).
///
/// A new connection (or process) sends such a transaction again from its first change, however
/// far the slot has advanced: the server decodes from the slot's `restart_lsn`, which never
/// passes the start of a running transaction, and streams whatever it collected once the
/// decoded position is past the start (`ReorderBufferCanStartStreaming` checks
/// `SnapBuildXactNeedsSkip` on the current record only). Acknowledging a later unit would put
/// those blocks before `FILE.ack`'s cut, so they would be in the file twice. Held back, the cut
/// falls before the first open block and everything after it arrives again once.
#[derive(Debug, Default)]
pub(crate) struct OpenStreams {
    open: Vec<Xid>,
    /// The highest acknowledgement point met while a stream was open.
    held: Option<Lsn>,
}

impl OpenStreams {
    /// The position to acknowledge once `kind` is written: its own acknowledgement point, or
    /// nothing while a streamed transaction is open — then, when the last one ends, the
    /// highest point held back meanwhile.
    pub(crate) fn ack_after(&mut self, kind: &EventKind) -> Option<Lsn> {
        let own = kind.ack_lsn();
        match kind {
            EventKind::StreamStart(s) if !self.open.contains(&s.xid) => self.open.push(s.xid),
            EventKind::StreamCommit(c) => self.close(c.xid),
            EventKind::StreamPrepare(p) => self.close(p.xid),
            EventKind::StreamAbort(a) if a.xid == a.subxid => self.close(a.xid),
            _ => {}
        }
        if self.open.is_empty() {
            own.max(self.held.take())
        } else {
            self.held = self.held.max(own);
            None
        }
    }

    fn close(&mut self, xid: Xid) {
        self.open.retain(|x| *x != xid);
    }

    /// Everything unacknowledged was dropped (cut back, or a new connection).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
        self.held = None;
    }
}

/// What FILE.ack says (and will say after the next sync).
pub(crate) struct Tracking {
    pub(crate) path: PathBuf,
    pub(crate) record: AckRecord,
}

/// Why an event could not be handled.
pub(crate) enum HandleError {
    /// Writing the output failed.
    Io(io::Error),
    /// The event cannot be rendered.
    Render(RenderError),
}

impl From<io::Error> for HandleError {
    fn from(error: io::Error) -> Self {
        HandleError::Io(error)
    }
}

impl Sink {
    pub(crate) fn handle(&mut self, event: &Event) -> Result<Option<Lsn>, HandleError> {
        if self.format == Format::Raw {
            write_frame(self.out.writer(), event.xlog_data())?;
        } else if let Some(message) = event.message() {
            let value = self
                .renderer
                .render(&message)
                .map_err(HandleError::Render)?;
            self.writer.write(self.out.writer(), &value)?;
        }
        let own = event.ack_lsn();
        let ack = if self.format == Format::JsonlTx {
            // Streamed transactions are spooled and written whole at their end.
            own
        } else {
            self.streams.ack_after(event.kind())
        };
        let Some(ack) = ack else {
            if own.is_some() {
                // A unit held back behind an open stream: readable now, acknowledged later.
                self.out.writer().flush()?;
            }
            return Ok(None);
        };
        if self.out.syncs() {
            self.out.writer().flush()?;
            self.pending_ack = Some((ack, self.out.position()));
            Ok(None)
        } else {
            self.out.flush_durable()?;
            self.reported = Some(ack);
            Ok(Some(ack))
        }
    }

    /// After a reconnect (the new connection sends every unit not acknowledged again, whole):
    /// cuts `-o FILE` back to its acknowledged bytes, dropping written but unacknowledged
    /// units and any half unit, and forgets what the writer held. Standard output cannot be
    /// cut: what was written is made durable and returned for acknowledgement.
    pub(crate) fn rewind(&mut self) -> Result<Option<Lsn>, io::Error> {
        self.writer = EventWriter::new(self.format);
        self.streams.clear();
        match &self.tracking {
            Some(tracking) => {
                self.pending_ack = None;
                self.out.truncate_to(tracking.record.offset)?;
                Ok(None)
            }
            None => self.sync(),
        }
    }

    /// Makes everything written durable, records it in FILE.ack, and returns the position
    /// that may now be reported.
    pub(crate) fn sync(&mut self) -> Result<Option<Lsn>, io::Error> {
        self.out.flush_durable()?;
        let Some((lsn, offset)) = self.pending_ack.take() else {
            return Ok(None);
        };
        if let Some(tracking) = &mut self.tracking {
            tracking.record.offset = offset;
            tracking.record.lsn = Some(lsn);
            ackfile::write(&tracking.path, &tracking.record)?;
        }
        self.reported = Some(lsn);
        Ok(Some(lsn))
    }

    /// After the last sync: cuts `-o FILE` back to its acknowledged bytes (a transaction or
    /// stream block cut short is sent again next time).
    pub(crate) fn finish(&mut self) -> Result<(), io::Error> {
        match &self.tracking {
            Some(tracking) => self.out.truncate_to(tracking.record.offset),
            None => Ok(()),
        }
    }
}

/// Opens FILE.ack beside `-o FILE`: cuts FILE back to the bytes it names and returns it (with
/// the position to resume after when it names `slot`), or, without one, takes FILE as it is.
pub(crate) fn open_record(
    out: &mut Destination,
    path: &Path,
    slot: &str,
) -> Result<Tracking, CliError> {
    let record_path = ackfile::record_path(path);
    let found = ackfile::read(&record_path)
        .map_err(|e| CliError::failed(format!("reading {}", record_path.display()), &e))?;
    let len = out
        .existing_len()
        .map_err(|e| CliError::failed(format!("reading {}", path.display()), &e))?;
    let record = match found {
        Some(found) if found.offset > len => {
            return Err(CliError::message(format!(
                "{} is {len} bytes long, but {} says {} bytes of it were acknowledged: it was \
                 changed by something else (move both files away to start anew)",
                path.display(),
                record_path.display(),
                found.offset
            )));
        }
        Some(found) => {
            if found.offset < len {
                out.truncate_to(found.offset).map_err(|e| {
                    CliError::failed(format!("cutting {} back", path.display()), &e)
                })?;
            }
            AckRecord {
                slot: slot.to_owned(),
                offset: found.offset,
                lsn: found.lsn.filter(|_| found.slot == slot),
            }
        }
        None => AckRecord {
            slot: slot.to_owned(),
            offset: len,
            lsn: None,
        },
    };
    Ok(Tracking {
        path: record_path,
        record,
    })
}

#[cfg(test)]
mod tests {
    use pg_walstream_codec::pgoutput::{Commit, StreamAbort, StreamCommit, StreamStart};
    use pg_walstream_codec::{Lsn, PgTimestamp, Xid};
    use pg_walstream_stream::EventKind;

    use super::OpenStreams;

    fn start(xid: u32) -> EventKind {
        EventKind::StreamStart(StreamStart {
            xid: Xid(xid),
            first_segment: true,
        })
    }

    fn commit(end: u64) -> EventKind {
        EventKind::Commit(Commit {
            flags: 0,
            commit_lsn: Lsn(end - 8),
            end_lsn: Lsn(end),
            commit_time: PgTimestamp(0),
        })
    }

    fn stream_commit(xid: u32, end: u64) -> EventKind {
        EventKind::StreamCommit(StreamCommit {
            xid: Xid(xid),
            flags: 0,
            commit_lsn: Lsn(end - 8),
            end_lsn: Lsn(end),
            commit_time: PgTimestamp(0),
        })
    }

    fn abort(xid: u32, subxid: u32) -> EventKind {
        EventKind::StreamAbort(StreamAbort {
            xid: Xid(xid),
            subxid: Xid(subxid),
            abort: None,
        })
    }

    #[test]
    fn without_streams_every_unit_is_acknowledged() {
        let mut streams = OpenStreams::default();
        assert_eq!(streams.ack_after(&commit(0x100)), Some(Lsn(0x100)));
        assert_eq!(streams.ack_after(&start(7)), None);
    }

    #[test]
    fn acknowledgements_wait_for_the_last_open_stream() {
        let mut streams = OpenStreams::default();
        assert_eq!(streams.ack_after(&start(7)), None);
        assert_eq!(streams.ack_after(&commit(0x100)), None, "held: 7 is open");
        assert_eq!(streams.ack_after(&start(8)), None);
        assert_eq!(streams.ack_after(&start(7)), None, "a later block of 7");
        assert_eq!(
            streams.ack_after(&abort(7, 9)),
            None,
            "a subtransaction only"
        );
        assert_eq!(
            streams.ack_after(&stream_commit(7, 0x300)),
            None,
            "8 is open"
        );
        assert_eq!(streams.ack_after(&commit(0x200)), None);
        // 8 rolled back: no position of its own, the held one is acknowledged now.
        assert_eq!(streams.ack_after(&abort(8, 8)), Some(Lsn(0x300)));
        assert_eq!(streams.ack_after(&commit(0x400)), Some(Lsn(0x400)));
    }

    #[test]
    fn the_last_stream_commit_acknowledges_its_own_end() {
        let mut streams = OpenStreams::default();
        streams.ack_after(&start(7));
        assert_eq!(streams.ack_after(&commit(0x100)), None);
        assert_eq!(
            streams.ack_after(&stream_commit(7, 0x200)),
            Some(Lsn(0x200))
        );
    }

    #[test]
    fn clearing_forgets_open_streams_and_held_positions() {
        let mut streams = OpenStreams::default();
        streams.ack_after(&start(7));
        streams.ack_after(&commit(0x100));
        streams.clear();
        assert_eq!(streams.ack_after(&abort(7, 7)), None);
        assert_eq!(streams.ack_after(&commit(0x200)), Some(Lsn(0x200)));
    }
}
