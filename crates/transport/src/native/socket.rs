//! Opening TCP and unix-domain sockets with libpq's socket options.

use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

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

/// Connects TCP with `TCP_NODELAY` and keepalives, as libpq does.
pub(crate) async fn connect_tcp(addr: SocketAddr, keepalive: Keepalive) -> Result<Socket> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| TransportError::Connect {
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

/// Connects to a unix-domain socket path (`<dir>/.s.PGSQL.<port>`).
#[cfg(unix)]
pub(crate) async fn connect_unix(path: &Path) -> Result<Socket> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|source| TransportError::Connect {
            address: path.display().to_string(),
            source,
        })?;
    Ok(Socket::Unix(stream))
}
