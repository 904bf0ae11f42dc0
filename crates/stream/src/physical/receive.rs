//! Streaming into a [`WalWriter`]: what `pg_receivewal` does, as a function.

use std::future::Future;

use pg_walstream_codec::Lsn;

use super::events::PhysicalEvent;
use super::stream::PhysicalStream;
use crate::error::Error;
use crate::wal_writer::{WalWriter, WalWriterError};

/// Why [`receive_wal`] stopped without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiveEnd {
    /// WAL up to the end position was written.
    EndPos,
    /// The `stop` future completed.
    Stopped,
}

/// Why [`receive_wal`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The stream failed (see [`Error::is_transient`] to decide whether to reconnect).
    #[error("replication stream failed")]
    Stream(#[from] Error),
    /// Writing the files failed.
    #[error("writing WAL files failed")]
    Writer(#[from] WalWriterError),
}

/// Progress after a batch of WAL was written (see [`receive_wal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveProgress {
    /// The timeline being written.
    pub timeline: u32,
    /// Position after the last byte written.
    pub written: Lsn,
    /// Position up to which the files are durable (reported to the server as flushed).
    pub flushed: Lsn,
    /// Set when this progress report is a timeline switch: the new timeline's history file.
    pub switched_to: Option<u32>,
}

/// Writes `stream`'s WAL into `writer` until `endpos` (the first write reaching it) or until
/// `stop` completes, then stops the stream gracefully; a stream error is returned as is
/// (reconnect from [`find_resume_point`](crate::wal_writer::find_resume_point)).
///
/// Everything ready is written before one [`WalWriter::flush`] (one fsync per batch under
/// [`SyncPolicy::Synchronous`](crate::wal_writer::SyncPolicy::Synchronous)); then the written and flushed positions are reported through
/// the stream's [`PhysicalFeedback`](crate::PhysicalFeedback), with an immediate status update
/// whenever the flushed position moved, so the slot's `restart_lsn` never passes what is
/// durable. At a timeline switch the old timeline's segment is closed (kept as `.partial`) and
/// the new timeline's history file is written. On a stop or at `endpos` the open segment is
/// closed as `.partial`.
///
/// # Errors
/// [`ReceiveError::Stream`] when the stream fails; [`ReceiveError::Writer`] for file errors
/// (the stream is stopped first).
pub async fn receive_wal(
    mut stream: PhysicalStream,
    writer: &mut WalWriter,
    endpos: Option<Lsn>,
    stop: impl Future<Output = ()>,
    mut on_progress: impl FnMut(&ReceiveProgress),
) -> Result<ReceiveEnd, ReceiveError> {
    let feedback = stream.feedback().clone();
    let mut timeline = stream.info().timeline;
    let mut reported_flush = writer.flushed_lsn();
    let metrics = stream.metrics.clone();
    let mut completed = writer.completed_segments();
    tokio::pin!(stop);
    let end = loop {
        let first = tokio::select! {
            biased;
            () = &mut stop => break ReceiveEnd::Stopped,
            item = stream.next_event() => item,
        };
        let Some(first) = first else {
            return Err(Error::ServerEnded.into());
        };
        let mut item = Some(first);
        let mut switched_to = None;
        let mut reached_end = false;
        while let Some(event) = item.take() {
            let outcome = match event? {
                PhysicalEvent::Wal(wal) => {
                    timeline = wal.timeline;
                    writer
                        .write(wal.timeline, wal.start(), wal.data())
                        .map(|()| endpos.is_some_and(|end| writer.written_lsn() >= end))
                }
                PhysicalEvent::TimelineSwitch(switch) => {
                    switched_to = Some(switch.timeline);
                    writer.close_segment().and_then(|()| {
                        writer
                            .write_history(
                                &switch.history.file_name,
                                switch.history.content.as_bytes(),
                            )
                            .map(|()| false)
                    })
                }
            };
            match outcome {
                Ok(true) => {
                    reached_end = true;
                    break;
                }
                Ok(false) => {}
                Err(error) => {
                    let _ = stream.stop().await;
                    return Err(error.into());
                }
            }
            if switched_to.is_some() {
                break;
            }
            item = stream.try_next_event();
        }
        if reached_end {
            break ReceiveEnd::EndPos;
        }
        let flushed = match writer.flush() {
            Ok(lsn) => lsn,
            Err(error) => {
                let _ = stream.stop().await;
                return Err(error.into());
            }
        };
        report(&feedback, writer, &mut reported_flush, flushed);
        metrics.on_segments(writer.completed_segments() - completed);
        completed = writer.completed_segments();
        on_progress(&ReceiveProgress {
            timeline,
            written: writer.written_lsn(),
            flushed,
            switched_to,
        });
    };
    metrics.on_segments(writer.completed_segments() - completed);
    let closed = writer.close_segment();
    if closed.is_ok() {
        let flushed = writer.flushed_lsn();
        report(&feedback, writer, &mut reported_flush, flushed);
    }
    // The final status update carries the last report.
    stream.stop().await?;
    closed?;
    Ok(end)
}

fn report(
    feedback: &crate::PhysicalFeedback,
    writer: &WalWriter,
    reported: &mut Lsn,
    flushed: Lsn,
) {
    feedback.written(writer.written_lsn());
    feedback.flushed(flushed);
    if flushed > *reported {
        *reported = flushed;
        feedback.request_status_update();
    }
}
