//! CancelRequest: stopping a running query from another task.

use std::net::SocketAddr;
#[cfg(unix)]
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Result, TransportError};
use crate::message::frontend;

/// Where the session's server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CancelAddress {
    /// The TCP address the session is connected to.
    Tcp(SocketAddr),
    /// The unix socket path the session is connected to.
    #[cfg(unix)]
    Unix(PathBuf),
}

/// Cancels whatever the session it came from is running (BackendKeyData + address).
///
/// Cheap to clone and `Send`; use it from another task while the connection is busy. The
/// request goes over a new, unencrypted connection to the same address, as libpq's
/// `PQcancel` does; the server does not apply authentication to cancel requests.
#[derive(Clone)]
pub struct CancelToken {
    address: CancelAddress,
    process_id: i32,
    secret_key: Bytes,
    connect_timeout: Option<Duration>,
}

impl core::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CancelToken")
            .field("address", &self.address)
            .field("process_id", &self.process_id)
            .finish_non_exhaustive()
    }
}

impl CancelToken {
    pub(crate) fn new(
        address: CancelAddress,
        process_id: i32,
        secret_key: Bytes,
        connect_timeout: Option<Duration>,
    ) -> Self {
        CancelToken {
            address,
            process_id,
            secret_key,
            connect_timeout,
        }
    }

    /// The backend process id of the session.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// Sends the CancelRequest and waits until the server closed the cancel connection.
    ///
    /// Success means the request was delivered; whether anything was running is not reported.
    ///
    /// # Errors
    /// [`TransportError::Connect`], [`TransportError::ConnectTimeout`] or I/O errors.
    pub async fn cancel(&self) -> Result<()> {
        let mut buf = BytesMut::with_capacity(16);
        frontend::cancel_request(&mut buf, self.process_id, &self.secret_key)?;
        let work = async {
            match &self.address {
                CancelAddress::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|source| TransportError::Connect {
                            address: addr.to_string(),
                            source,
                        })?;
                    send_and_wait(stream, &buf).await
                }
                #[cfg(unix)]
                CancelAddress::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|source| TransportError::Connect {
                            address: path.display().to_string(),
                            source,
                        })?;
                    send_and_wait(stream, &buf).await
                }
            }
        };
        match self.connect_timeout {
            None => work.await,
            Some(timeout) => tokio::time::timeout(timeout, work).await.map_err(|_| {
                TransportError::ConnectTimeout {
                    address: match &self.address {
                        CancelAddress::Tcp(a) => a.to_string(),
                        #[cfg(unix)]
                        CancelAddress::Unix(p) => p.display().to_string(),
                    },
                    timeout,
                }
            })?,
        }
    }
}

async fn send_and_wait<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<()> {
    stream
        .write_all(request)
        .await
        .map_err(TransportError::io)?;
    stream.flush().await.map_err(TransportError::io)?;
    // The server closes the connection after reading the request; waiting for that makes a
    // following query on the cancelled session see the cancellation.
    let mut sink = [0u8; 64];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}
