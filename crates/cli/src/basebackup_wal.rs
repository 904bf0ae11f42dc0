//! `basebackup -X stream`: the WAL a backup needs, streamed over a second connection with a
//! temporary physical slot while the backup runs, into `pg_wal/` of the plain data directory
//! (like `pg_basebackup -X stream`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pg_walstream_backup::Position;
use pg_walstream_codec::{Lsn, WalSegmentSize};
use pg_walstream_slot::{CreateSlot, SlotName, show};
use pg_walstream_stream::wal_writer::{SyncPolicy, WalWriter, WalWriterOptions};
use pg_walstream_stream::{
    PhysicalConfig, PhysicalStart, PhysicalStream, parse_wal_segment_size, receive_wal,
};
use pg_walstream_transport::conninfo::Config;
use pg_walstream_transport::{Backend, Connection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{CliError, chain};

/// A connection holding a temporary slot, ready to stream once the backup's start is known.
pub(crate) struct Prepared {
    connection: Connection,
    slot: SlotName,
    segment_size: WalSegmentSize,
}

/// Connects and creates the temporary slot (it reserves WAL from the current redo position,
/// which the backup's checkpoint does not go behind).
pub(crate) async fn prepare(config: &Config, backend: Backend) -> Result<Prepared, CliError> {
    let mut connection = Connection::connect_with(config, backend)
        .await
        .map_err(|e| CliError::failed("could not connect for -X stream", &e))?;
    let size_text = show(&mut connection, "wal_segment_size")
        .await
        .map_err(|e| CliError::failed("reading wal_segment_size", &e))?;
    let segment_size = parse_wal_segment_size(&size_text)
        .ok_or_else(|| CliError::message(format!("unusable wal_segment_size {size_text:?}")))?;
    let name = format!("pg_walstream_{}", std::process::id());
    let slot = SlotName::new(&name).map_err(|e| CliError::failed("slot name", &e))?;
    CreateSlot::physical(slot.clone())
        .temporary()
        .reserve_wal()
        .execute(&mut connection)
        .await
        .map_err(|e| CliError::failed("creating the temporary slot for -X stream", &e))?;
    Ok(Prepared {
        connection,
        slot,
        segment_size,
    })
}

/// The streaming task.
pub(crate) struct Streamer {
    end: Option<oneshot::Sender<Lsn>>,
    task: JoinHandle<Result<(), CliError>>,
    dir: PathBuf,
    segment_size: WalSegmentSize,
}

impl Prepared {
    /// Starts streaming from the segment of `start` into `dir` (created; must not exist).
    pub(crate) fn start(
        self,
        start: Position,
        dir: PathBuf,
        sync: bool,
    ) -> Result<Streamer, CliError> {
        std::fs::create_dir(&dir)
            .map_err(|e| CliError::failed(format!("creating {}", dir.display()), &e))?;
        let Prepared {
            connection,
            slot,
            segment_size,
        } = self;
        let (end_sender, end_receiver) = oneshot::channel::<Lsn>();
        let task_dir = dir.clone();
        let task = tokio::spawn(async move {
            let config = PhysicalConfig::builder()
                .slot(slot.as_str())
                .start(PhysicalStart::At {
                    lsn: start.lsn.segment_start(segment_size),
                    timeline: Some(start.timeline),
                })
                .status_interval(Duration::from_secs(1))
                .build()
                .map_err(|e| CliError::failed("-X stream", &e))?;
            let stream = PhysicalStream::start(connection, config)
                .await
                .map_err(|e| CliError::failed("starting -X stream", &e))?;
            let mut options = WalWriterOptions::new(segment_size);
            options.sync = if sync {
                SyncPolicy::PerSegment
            } else {
                SyncPolicy::Never
            };
            let mut writer = WalWriter::new(&task_dir, options)
                .map_err(|e| CliError::failed("-X stream", &e))?;
            let written = Arc::new(AtomicU64::new(0));
            let seen = written.clone();
            // Stop once everything up to the backup's end position is written; at once when
            // the backup failed (the sender is dropped).
            let stop = async move {
                let Ok(end) = end_receiver.await else { return };
                while seen.load(Ordering::Acquire) < end.0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            receive_wal(stream, &mut writer, None, stop, |progress| {
                written.store(progress.written.0, Ordering::Release);
            })
            .await
            .map_err(|e| CliError::failed("-X stream", &e))?;
            Ok(())
        });
        Ok(Streamer {
            end: Some(end_sender),
            task,
            dir,
            segment_size,
        })
    }
}

impl Streamer {
    /// Streams up to `end`, then completes the last segment (zero-padded, its final name) and
    /// moves every file into `pg_wal`.
    pub(crate) async fn finish(mut self, end: Lsn, pg_wal: &Path) -> Result<(), CliError> {
        if let Some(sender) = self.end.take() {
            let _ = sender.send(end);
        }
        (&mut self.task)
            .await
            .map_err(|e| CliError::message(format!("-X stream task: {e}")))??;
        let moved = move_segments(&self.dir, pg_wal, self.segment_size);
        let _ = std::fs::remove_dir_all(&self.dir);
        moved.map_err(|e| CliError::message(format!("moving streamed WAL: {}", chain(&e))))
    }

    /// Stops streaming and removes what it wrote (the backup failed).
    pub(crate) fn abandon(self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn move_segments(from: &Path, pg_wal: &Path, segment_size: WalSegmentSize) -> std::io::Result<()> {
    std::fs::create_dir_all(pg_wal)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (name, partial) = match name.strip_suffix(".partial") {
            Some(base) => (base.to_owned(), true),
            None => (name, false),
        };
        if partial {
            let file = std::fs::File::options().write(true).open(entry.path())?;
            file.set_len(u64::from(segment_size.bytes()))?;
            file.sync_all()?;
        }
        std::fs::rename(entry.path(), pg_wal.join(name))?;
    }
    Ok(())
}
