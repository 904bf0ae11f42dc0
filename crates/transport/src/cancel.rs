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
    inner: CancelInner,
}

/// How a token cancels: a CancelRequest of our own, or libpq's `PQcancel`.
#[derive(Clone)]
enum CancelInner {
    Native {
        address: CancelAddress,
        process_id: i32,
        secret_key: Bytes,
        connect_timeout: Option<Duration>,
    },
    #[cfg(feature = "libpq")]
    Libpq {
        process_id: i32,
        handle: std::sync::Arc<crate::libpq::RawCancel>,
    },
}

impl core::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.inner {
            CancelInner::Native {
                address,
                process_id,
                ..
            } => f
                .debug_struct("CancelToken")
                .field("address", address)
                .field("process_id", process_id)
                .finish_non_exhaustive(),
            #[cfg(feature = "libpq")]
            CancelInner::Libpq { process_id, .. } => f
                .debug_struct("CancelToken")
                .field("backend", &"libpq")
                .field("process_id", process_id)
                .finish_non_exhaustive(),
        }
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
            inner: CancelInner::Native {
                address,
                process_id,
                secret_key,
                connect_timeout,
            },
        }
    }

    /// A token that cancels through libpq's `PQcancel`.
    #[cfg(feature = "libpq")]
    pub(crate) fn libpq(process_id: i32, handle: std::sync::Arc<crate::libpq::RawCancel>) -> Self {
        CancelToken {
            inner: CancelInner::Libpq { process_id, handle },
        }
    }

    /// The backend process id of the session.
    pub fn process_id(&self) -> i32 {
        match &self.inner {
            CancelInner::Native { process_id, .. } => *process_id,
            #[cfg(feature = "libpq")]
            CancelInner::Libpq { process_id, .. } => *process_id,
        }
    }

    /// Sends the CancelRequest and waits until the server closed the cancel connection.
    ///
    /// Success means the request was delivered; whether anything was running is not reported.
    ///
    /// # Errors
    /// [`TransportError::Connect`], [`TransportError::ConnectTimeout`] or I/O errors.
    pub async fn cancel(&self) -> Result<()> {
        let (address, process_id, secret_key, connect_timeout) = match &self.inner {
            CancelInner::Native {
                address,
                process_id,
                secret_key,
                connect_timeout,
            } => (address, *process_id, secret_key, *connect_timeout),
            #[cfg(feature = "libpq")]
            CancelInner::Libpq { handle, .. } => {
                let handle = std::sync::Arc::clone(handle);
                // PQcancel blocks: run it where blocking is allowed.
                return tokio::task::spawn_blocking(move || handle.cancel())
                    .await
                    .map_err(|_| TransportError::Libpq("the cancel task failed".into()))?
                    .map_err(TransportError::Libpq);
            }
        };
        let mut buf = BytesMut::with_capacity(16);
        frontend::cancel_request(&mut buf, process_id, secret_key)?;
        let work = async {
            match address {
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
        match connect_timeout {
            None => work.await,
            Some(timeout) => tokio::time::timeout(timeout, work).await.map_err(|_| {
                TransportError::ConnectTimeout {
                    address: match address {
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
