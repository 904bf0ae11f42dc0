//! Opening TCP and unix-domain sockets with libpq's socket options.

use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpSocket;

use super::stream::Socket;
use crate::error::{Result, TransportError};

/// TCP keepalive settings (`keepalives`, `keepalives_idle`, `keepalives_interval`,
/// `keepalives_count`); unset durations keep the operating system's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Whether keepalives are enabled at all (libpq's default: yes).
    pub enabled: bool,
    /// Idle time before the first probe.
    pub idle: Option<Duration>,
    /// Time between probes.
    pub interval: Option<Duration>,
    /// Lost probes before the connection is considered dead.
    pub count: Option<u32>,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            enabled: true,
            idle: None,
            interval: None,
            count: None,
        }
    }
}

/// Connects TCP with `TCP_NODELAY` and keepalives, as libpq does, and with a receive buffer
/// of `recv_buffer` bytes when given (set before connecting, so the window scale fits it).
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    keepalive: Keepalive,
    recv_buffer: Option<usize>,
) -> Result<Socket> {
    let connect = async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(u32::try_from(size).unwrap_or(u32::MAX))?;
        }
        socket.connect(addr).await
    };
    let stream = connect.await.map_err(|source| TransportError::Connect {
        address: addr.to_string(),
        source,
    })?;
    let configure = || -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let sock = SockRef::from(&stream);
        if keepalive.enabled {
            let mut params = TcpKeepalive::new();
            if let Some(idle) = keepalive.idle {
                params = params.with_time(idle);
            }
            #[cfg(any(
                target_os = "linux",
                target_os = "macos",
                target_os = "freebsd",
                target_os = "windows"
            ))]
            if let Some(interval) = keepalive.interval {
                params = params.with_interval(interval);
            }
            #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
            if let Some(count) = keepalive.count {
                params = params.with_retries(count);
            }
            sock.set_tcp_keepalive(&params)?;
        } else {
            sock.set_keepalive(false)?;
        }
        Ok(())
    };
    configure().map_err(|source| TransportError::Connect {
        address: addr.to_string(),
        source,
    })?;
    Ok(Socket::Tcp(stream))
}

/// Connects to a unix-domain socket path (`<dir>/.s.PGSQL.<port>`), with a receive buffer
/// of `recv_buffer` bytes when given.
#[cfg(unix)]
pub(crate) async fn connect_unix(path: &Path, recv_buffer: Option<usize>) -> Result<Socket> {
    let error = |source| TransportError::Connect {
        address: path.display().to_string(),
        source,
    };
    let stream = tokio::net::UnixStream::connect(path).await.map_err(error)?;
    if let Some(size) = recv_buffer {
        SockRef::from(&stream)
            .set_recv_buffer_size(size)
            .map_err(error)?;
    }
    Ok(Socket::Unix(stream))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use socket2::SockRef;

    use super::{Keepalive, Socket, connect_tcp};

    #[tokio::test]
    async fn keepalive_and_nodelay_are_applied() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let settings = Keepalive {
            enabled: true,
            idle: Some(Duration::from_secs(61)),
            interval: Some(Duration::from_secs(7)),
            count: Some(4),
        };
        let Socket::Tcp(stream) = connect_tcp(addr, settings, None).await.expect("connect") else {
            panic!("expected TCP")
        };
        let sock = SockRef::from(&stream);
        assert!(stream.nodelay().expect("nodelay"));
        assert!(sock.keepalive().expect("keepalive"));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                sock.tcp_keepalive_time().expect("idle"),
                Duration::from_secs(61)
            );
            assert_eq!(
                sock.tcp_keepalive_interval().expect("interval"),
                Duration::from_secs(7)
            );
            assert_eq!(sock.tcp_keepalive_retries().expect("count"), 4);
        }
        let off = Keepalive {
            enabled: false,
            ..Keepalive::default()
        };
        let Socket::Tcp(stream) = connect_tcp(addr, off, Some(64 * 1024))
            .await
            .expect("connect")
        else {
            panic!("expected TCP")
        };
        assert!(!SockRef::from(&stream).keepalive().expect("keepalive"));
        // SO_RCVBUF as asked (Linux reports twice the value, for its bookkeeping).
        let rcvbuf = SockRef::from(&stream)
            .recv_buffer_size()
            .expect("SO_RCVBUF");
        assert!(rcvbuf >= 64 * 1024, "SO_RCVBUF {rcvbuf}");
    }

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("address")
        };
        let err = connect_tcp(addr, Keepalive::default(), None)
            .await
            .expect_err("nothing listens");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
