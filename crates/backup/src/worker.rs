//! A thread that consumes one archive's bytes through a blocking [`std::io::Read`], fed from
//! async code through a bounded channel. Chunks travel in batches of about [`BATCH_BYTES`]
//! (one channel operation and at most one thread wake-up per batch, not per 32 KiB chunk);
//! backpressure: at most [`QUEUED_BATCHES`] batches wait.

use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{BackupError, Result};

/// Bytes of chunks (≤ 32 KiB each from the server) gathered before they go to the worker.
pub(crate) const BATCH_BYTES: usize = 256 * 1024;

/// Batches queued ahead of the worker (with [`BATCH_BYTES`]: about 2 MiB).
pub(crate) const QUEUED_BATCHES: usize = 8;

/// The reading end: yields the chunks in order, then end of file when the sender is done.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    receiver: mpsc::Receiver<Vec<Bytes>>,
    /// The rest of the batch being read.
    batch: std::vec::IntoIter<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    /// The next whole chunk (what `read` has not handed out of it yet), `None` at the end.
    pub(crate) fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.current.is_empty() {
            return Some(std::mem::take(&mut self.current));
        }
        loop {
            if let Some(chunk) = self.batch.next() {
                return Some(chunk);
            }
            self.batch = self.receiver.blocking_recv()?.into_iter();
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.next_chunk() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// A running worker thread.
#[derive(Debug)]
pub(crate) struct Worker {
    sender: Option<mpsc::Sender<Vec<Bytes>>>,
    /// Chunks gathered for the next batch, and their size.
    pending: Vec<Bytes>,
    pending_bytes: usize,
    done: oneshot::Receiver<Result<()>>,
}

impl Worker {
    /// Starts `job` on a thread of its own.
    pub(crate) fn spawn(
        name: &str,
        job: impl FnOnce(ChunkReader) -> Result<()> + Send + 'static,
    ) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUED_BATCHES);
        let (done_sender, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("backup {name}"))
            .spawn(move || {
                let outcome = job(ChunkReader {
                    receiver,
                    batch: Vec::new().into_iter(),
                    current: Bytes::new(),
                });
                let _ = done_sender.send(outcome);
            })
            .map_err(|e| BackupError::Archive {
                archive: name.to_owned(),
                reason: "starting a worker thread".to_owned(),
                source: Some(e),
            })?;
        Ok(Worker {
            sender: Some(sender),
            pending: Vec::new(),
            pending_bytes: 0,
            done,
        })
    }

    /// Queues a chunk (sent on with others once [`BATCH_BYTES`] are gathered); when the worker
    /// has stopped early, its error.
    pub(crate) async fn send(&mut self, chunk: Bytes) -> Result<()> {
        self.pending_bytes += chunk.len();
        self.pending.push(chunk);
        if self.pending_bytes < BATCH_BYTES {
            return Ok(());
        }
        self.send_pending().await
    }

    /// Sends the gathered chunks to the worker.
    async fn send_pending(&mut self) -> Result<()> {
        let Some(sender) = &self.sender else {
            self.pending.clear();
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending_bytes = 0;
        let batch = std::mem::take(&mut self.pending);
        if sender.send(batch).await.is_ok() {
            return Ok(());
        }
        self.sender = None;
        match (&mut self.done).await {
            Ok(Err(error)) => Err(error),
            _ => Err(stopped()),
        }
    }

    /// Sends what is gathered, ends the input and waits for the job's outcome.
    pub(crate) async fn finish(mut self) -> Result<()> {
        self.send_pending().await?;
        self.sender = None;
        self.done.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> BackupError {
    BackupError::Archive {
        archive: String::new(),
        reason: "the worker stopped before the end of the archive".to_owned(),
        source: None,
    }
}
