//! A thread that consumes one archive's bytes through a blocking [`std::io::Read`], fed from
//! async code through a bounded channel (backpressure: at most [`QUEUED_CHUNKS`] chunks wait).

use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{BackupError, Result};

/// Chunks (≤ 32 KiB each from the server) queued ahead of the worker.
pub(crate) const QUEUED_CHUNKS: usize = 64;

/// The reading end: yields the chunks in order, then end of file when the sender is done.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    receiver: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    /// The next whole chunk (what `read` has not handed out of it yet), `None` at the end.
    pub(crate) fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.current.is_empty() {
            return Some(std::mem::take(&mut self.current));
        }
        self.receiver.blocking_recv()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
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
    sender: Option<mpsc::Sender<Bytes>>,
    done: oneshot::Receiver<Result<()>>,
}

impl Worker {
    /// Starts `job` on a thread of its own.
    pub(crate) fn spawn(
        name: &str,
        job: impl FnOnce(ChunkReader) -> Result<()> + Send + 'static,
    ) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUED_CHUNKS);
        let (done_sender, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("backup {name}"))
            .spawn(move || {
                let outcome = job(ChunkReader {
                    receiver,
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
            done,
        })
    }

    /// Queues a chunk; when the worker has stopped early, its error.
    pub(crate) async fn send(&mut self, chunk: Bytes) -> Result<()> {
        let Some(sender) = &self.sender else {
            return Ok(());
        };
        if sender.send(chunk).await.is_ok() {
            return Ok(());
        }
        self.sender = None;
        match (&mut self.done).await {
            Ok(Err(error)) => Err(error),
            _ => Err(stopped()),
        }
    }

    /// Ends the input and waits for the job's outcome.
    pub(crate) async fn finish(mut self) -> Result<()> {
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
