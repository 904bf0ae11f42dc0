//! One large read buffer parsed frame by frame, and one write buffer flushed at once.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::Stream;
use crate::error::{Result, TransportError};
use crate::message::BackendMessage;
use crate::message::backend::{CopyDataRun, parse};

/// Size of each read-buffer allocation: many frames arrive per read syscall. A logical
/// stream's events keep their frames — slices of these allocations — until the application
/// drops them, so the size bounds what a slow application pins: 64 KiB keeps the consumer's
/// peak memory near upstream's, where 256 KiB added ~1.3 MB on Baseline; a base backup,
/// whose chunks are dropped before the next read, reuses one allocation either way
/// (docs/BENCHMARKS.md, "Per-event instructions and read buffers").
pub(crate) const READ_BUFFER_SIZE: usize = 64 * 1024;
/// When less than this much room is left, a fresh allocation is reserved before reading.
const MIN_READ_SPACE: usize = 16 * 1024;
/// The smallest per-read limit [`Framed::set_max_read`] accepts.
const MIN_MAX_READ: usize = 1024;
/// Largest message accepted before authentication completes: libpq's `MAX_ERRLEN` for an
/// ErrorResponse in the startup phase. Nothing a server legitimately sends before
/// AuthenticationOk (authentication requests, notices, errors) comes near it, and an
/// unauthenticated peer must not make the client buffer up to the session limit (1 GiB).
pub(crate) const PRE_AUTH_MAX_FRAME_LEN: usize = 30_000;

pub(crate) struct Framed {
    pub(crate) stream: Stream,
    read_buf: BytesMut,
    /// Whole CopyData messages split off the front of `read_buf`, not handed out yet: they
    /// come before anything still in `read_buf`.
    ready: CopyDataRun,
    pub(crate) write_buf: BytesMut,
    max_frame: usize,
    /// The most bytes asked for per socket read (unlimited: what the buffer has room for).
    max_read: usize,
}

/// Shows buffer sizes only: buffered bytes may include credentials or row data.
impl core::fmt::Debug for Framed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Framed")
            .field("tls", &self.stream.is_tls())
            .field(
                "buffered_in",
                &(self.ready.remaining_bytes() + self.read_buf.len()),
            )
            .field("buffered_out", &self.write_buf.len())
            .finish_non_exhaustive()
    }
}

impl Framed {
    pub(crate) fn new(stream: Stream, max_frame: usize) -> Self {
        Framed {
            stream,
            read_buf: BytesMut::with_capacity(READ_BUFFER_SIZE),
            ready: CopyDataRun::default(),
            write_buf: BytesMut::with_capacity(8 * 1024),
            max_frame,
            max_read: usize::MAX,
        }
    }

    /// The next message. Cancel-safe: no received byte is lost if the future is dropped.
    pub(crate) async fn read_message(&mut self) -> Result<BackendMessage> {
        if let Some(body) = self.ready.next() {
            return Ok(BackendMessage::CopyData(body));
        }
        loop {
            if let Some(message) = parse(&mut self.read_buf, self.max_frame)? {
                return Ok(message);
            }
            self.fill().await?;
        }
    }

    /// The next message if it is a CopyData already complete in the read buffer, without
    /// reading from the socket; `None` when the buffer holds anything else (or too little).
    /// The whole CopyData messages of a read are split off together, then handed out one by
    /// one.
    pub(crate) fn try_copy_data(&mut self) -> Result<Option<Bytes>> {
        if let Some(body) = self.ready.next() {
            return Ok(Some(body));
        }
        self.ready = CopyDataRun::split_from(&mut self.read_buf, self.max_frame)?;
        Ok(self.ready.next())
    }

    /// Reads at least one more byte into the read buffer.
    async fn fill(&mut self) -> Result<()> {
        if self.read_buf.capacity() - self.read_buf.len() < MIN_READ_SPACE {
            self.read_buf.reserve(READ_BUFFER_SIZE);
        }
        let n = self
            .stream
            .read_buf(&mut (&mut self.read_buf).limit(self.max_read))
            .await
            .map_err(TransportError::io)?;
        if n == 0 {
            return Err(TransportError::Closed);
        }
        Ok(())
    }

    /// Writes everything buffered and flushes the stream. Progress survives cancellation.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        while !self.write_buf.is_empty() {
            let n = self
                .stream
                .write_buf(&mut self.write_buf)
                .await
                .map_err(TransportError::io)?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
        }
        self.stream.flush().await.map_err(TransportError::io)
    }

    /// Takes the socket off the reactor until the next I/O.
    pub(crate) fn park(&mut self) -> Result<()> {
        self.stream.park().map_err(TransportError::io)
    }

    /// Asks the socket for at most `bytes` per read (at least [`MIN_MAX_READ`]).
    pub(crate) fn set_max_read(&mut self, bytes: usize) {
        self.max_read = bytes.max(MIN_MAX_READ);
    }

    /// Changes the largest accepted message (see [`PRE_AUTH_MAX_FRAME_LEN`]).
    pub(crate) fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    pub(crate) fn into_stream(self) -> Stream {
        self.stream
    }
}

#[cfg(all(test, unix))]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixStream;

    use super::*;
    use crate::native::stream::Socket;

    /// `count` CopyData messages of `len` bytes each, the i-th filled with byte i.
    fn copy_data(count: usize, len: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for i in 0..count {
            wire.push(b'd');
            wire.extend_from_slice(&(len as u32 + 4).to_be_bytes());
            wire.extend(std::iter::repeat_n(i as u8, len));
        }
        wire
    }

    #[tokio::test]
    async fn reads_take_at_most_the_limit_and_lose_nothing() {
        let (ours, mut server) = UnixStream::pair().unwrap();
        let mut framed = Framed::new(Stream::Plain(Socket::Unix(ours)), 1 << 20);
        framed.set_max_read(10);
        assert_eq!(framed.max_read, MIN_MAX_READ, "raised to the minimum");
        framed.set_max_read(4096);
        let wire = copy_data(100, 300);
        server.write_all(&wire).await.unwrap();
        let mut bodies = Vec::new();
        while bodies.len() < 100 {
            let BackendMessage::CopyData(body) = framed.read_message().await.unwrap() else {
                panic!("not CopyData");
            };
            // One read asks for 4 KiB at most, whatever is waiting (30 KiB here).
            assert!(framed.ready.remaining_bytes() + framed.read_buf.len() < 4096);
            bodies.push(body);
            while let Some(body) = framed.try_copy_data().unwrap() {
                bodies.push(body);
            }
        }
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(body.len(), 300);
            assert!(body.iter().all(|&b| b == i as u8), "message {i}");
        }
    }
}
