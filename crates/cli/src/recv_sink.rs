//! `recv`'s output side: where events go, what is durable, and `FILE.ack` beside `-o FILE`
//! (what may be acknowledged, and where a reconnect or restart cuts the file back to).

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use pg_walstream_codec::Lsn;
use pg_walstream_stream::Event;

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
        let Some(ack) = event.ack_lsn() else {
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
