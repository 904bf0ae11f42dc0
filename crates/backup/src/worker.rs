//! A thread that consumes one archive's bytes through a blocking [`std::io::Read`], fed from
//! async code through a bounded channel. Chunks travel in batches of about [`BATCH_BYTES`]
//! (one channel operation and at most one thread wake-up per batch, not per 32 KiB chunk);
//! backpressure: at most [`QUEUED_BATCHES`] batches wait.
//!
//! The chunks are copied into the batch, one buffer per batch, and the reader hands each
//! buffer back once it has read it: held chunks would pin the transport's receive buffer,
//! which then allocates (and faults in) a fresh one for every read; one copy costs less.

use std::io::{self, Read};
use std::sync::mpsc as std_mpsc;

use bytes::{Bytes, BytesMut};
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
    /// Where read buffers go back to the sender.
    recycle: std_mpsc::Sender<BytesMut>,
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
        if self.current.is_empty()
            && let Ok(mut buffer) = std::mem::take(&mut self.current).try_into_mut()
        {
            buffer.clear();
            let _ = self.recycle.send(buffer);
        }
        Ok(n)
    }
}

/// A running worker thread.
#[derive(Debug)]
pub(crate) struct Worker {
    sender: Option<mpsc::Sender<Vec<Bytes>>>,
    /// The bytes gathered for the next batch.
    pending: BytesMut,
    /// Buffers the reader is done with.
    recycled: std_mpsc::Receiver<BytesMut>,
    done: oneshot::Receiver<Result<()>>,
}

impl Worker {
    /// Starts `job` on a thread of its own.
    pub(crate) fn spawn(
        name: &str,
        job: impl FnOnce(ChunkReader) -> Result<()> + Send + 'static,
    ) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUED_BATCHES);
        let (recycle, recycled) = std_mpsc::channel();
        let (done_sender, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("backup {name}"))
            .spawn(move || {
                let outcome = job(ChunkReader {
                    receiver,
                    batch: Vec::new().into_iter(),
                    current: Bytes::new(),
                    recycle,
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
            pending: BytesMut::new(),
            recycled,
            done,
        })
    }

    /// Queues a chunk (sent on with others once [`BATCH_BYTES`] are gathered); when the worker
    /// has stopped early, its error.
    pub(crate) async fn send(&mut self, chunk: Bytes) -> Result<()> {
        if self.pending.capacity() == 0 {
            self.pending = self
                .recycled
                .try_recv()
                .unwrap_or_else(|_| BytesMut::with_capacity(BATCH_BYTES + 32 * 1024));
        }
        self.pending.extend_from_slice(&chunk);
        drop(chunk);
        if self.pending.len() < BATCH_BYTES {
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
        let batch = std::mem::take(&mut self.pending).freeze();
        if sender.send(vec![batch]).await.is_ok() {
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
