//! The byte stream under a native connection: TCP or unix socket, with or without TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio_rustls::client::TlsStream;

/// A plain socket.
#[derive(Debug)]
pub(crate) enum Socket {
    /// TCP.
    Tcp(TcpStream),
    /// Unix-domain socket.
    #[cfg(unix)]
    Unix(UnixStream),
    /// Taken off the reactor by [`park`](Self::park); the next I/O puts it back.
    Parked(Parked),
}

/// A socket the reactor does not watch: arriving data wakes no thread.
#[derive(Debug)]
pub(crate) enum Parked {
    Tcp(std::net::TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
    /// Moving between the reactor and here failed: the socket is gone.
    Lost,
}

impl Socket {
    /// Whether this is a Unix-domain socket (parked or not).
    pub(crate) fn is_unix(&self) -> bool {
        #[cfg(unix)]
        {
            matches!(self, Socket::Unix(_) | Socket::Parked(Parked::Unix(_)))
        }
        #[cfg(not(unix))]
        {
            false
        }
    }

    /// Takes the socket off the reactor until the next read or write (which puts it back,
    /// reporting what arrived meanwhile): a caller that will not read for a while is then
    /// not woken by every packet that arrives (edge-triggered readiness fires per packet).
    /// Costs two `epoll_ctl` calls per park.
    pub(crate) fn park(&mut self) -> io::Result<()> {
        let parked = match std::mem::replace(self, Socket::Parked(Parked::Lost)) {
            Socket::Tcp(stream) => Parked::Tcp(stream.into_std()?),
            #[cfg(unix)]
            Socket::Unix(stream) => Parked::Unix(stream.into_std()?),
            Socket::Parked(parked) => parked,
        };
        *self = Socket::Parked(parked);
        Ok(())
    }

    /// Puts a parked socket back on the reactor (the socket stays non-blocking).
    fn unpark(&mut self) -> io::Result<()> {
        let Socket::Parked(parked) = self else {
            return Ok(());
        };
        *self = match std::mem::replace(parked, Parked::Lost) {
            Parked::Tcp(stream) => Socket::Tcp(TcpStream::from_std(stream)?),
            #[cfg(unix)]
            Parked::Unix(stream) => Socket::Unix(UnixStream::from_std(stream)?),
            Parked::Lost => {
                return Err(io::Error::other(
                    "the socket was lost moving it on or off the reactor",
                ));
            }
        };
        Ok(())
    }
}

/// A socket, possibly wrapped in TLS. The TLS state is boxed once per connection.
#[derive(Debug)]
pub(crate) enum Stream {
    /// No encryption.
    Plain(Socket),
    /// TLS over the socket.
    Tls(Box<TlsStream<Socket>>),
}

impl Stream {
    /// The server's end-entity certificate (DER), for SCRAM-SHA-256-PLUS channel binding.
    pub(crate) fn server_certificate(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => tls
                .get_ref()
                .1
                .peer_certificates()?
                .first()
                .map(AsRef::as_ref),
        }
    }

    /// Whether TLS is in use.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Whether the socket underneath is a Unix-domain socket.
    pub(crate) fn is_unix_socket(&self) -> bool {
        match self {
            Stream::Plain(socket) => socket.is_unix(),
            Stream::Tls(tls) => tls.get_ref().0.is_unix(),
        }
    }

    /// Takes the socket off the reactor until the next I/O ([`Socket::park`]).
    pub(crate) fn park(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.park(),
            Stream::Tls(tls) => tls.get_mut().0.park(),
        }
    }
}

macro_rules! delegate_socket {
    ($self:ident, $s:ident => $e:expr) => {{
        let socket = $self.get_mut();
        if let Err(error) = socket.unpark() {
            return Poll::Ready(Err(error));
        }
        match socket {
            Socket::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(unix)]
            Socket::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            Socket::Parked(_) => unreachable!("unparked above"),
        }
    }};
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate_socket!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate_socket!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_socket!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_socket!(self, s => s.poll_shutdown(cx))
    }
}

macro_rules! delegate_stream {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate_stream!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_shutdown(cx))
    }
}
