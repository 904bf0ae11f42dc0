//! Establishing a native session: socket, SSL negotiation or direct TLS, startup, auth.
//!
//! The order of attempts follows libpq's `sslmode` rules:
//! `disable` plain only; `allow` plain, then TLS if the server rejected the plain session;
//! `prefer` TLS (plain on the same socket if the server answers SSLRequest with "no"), then
//! plain if the server rejected the TLS session; `require`/`verify-*` TLS only.
//! Unix-domain sockets never use TLS, as in libpq.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use pg_walstream_auth::{AuthConfig, Password};

use super::auth;
use super::framed::{Framed, PRE_AUTH_MAX_FRAME_LEN};
use super::session::{NativeConnection, message_name};
use super::socket::{self, Keepalive};
use super::stream::{Socket, Stream};
use super::tls::{ALPN_POSTGRESQL, TlsSettings};
use crate::cancel::{CancelAddress, CancelToken};
use crate::conninfo::SslMode;
use crate::error::{Result, TransportError};
use crate::message::{BackendMessage, frontend};

/// One host entry of the connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A host name (resolved unless `hostaddr` is given) and port.
    Tcp {
        host: String,
        hostaddr: Option<IpAddr>,
        port: u16,
        password: Option<Password>,
    },
    /// A unix-domain socket file.
    #[cfg(unix)]
    Unix {
        path: PathBuf,
        password: Option<Password>,
    },
}

impl Host {
    fn password(&self) -> Option<&Password> {
        match self {
            Host::Tcp { password, .. } => password.as_ref(),
            #[cfg(unix)]
            Host::Unix { password, .. } => password.as_ref(),
        }
    }
}

/// Everything the native backend needs, resolved from the connection configuration.
#[derive(Debug)]
pub(crate) struct NativeOptions {
    pub(crate) hosts: Vec<Host>,
    pub(crate) ssl_mode: SslMode,
    pub(crate) direct_tls: bool,
    /// Checked once per connect, built when a server first accepts TLS; `None` when
    /// `sslmode=disable` or every host is a Unix-domain socket.
    pub(crate) tls: Option<TlsSettings>,
    /// StartupMessage parameters (user, database, replication, application_name, options).
    pub(crate) startup: Vec<(String, String)>,
    /// Everything but the password, which may differ per host (password file).
    pub(crate) auth: AuthConfig,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) keepalive: Keepalive,
    pub(crate) max_frame: usize,
    /// `SO_RCVBUF` for the socket (see [`Config::recv_buffer_size`](crate::conninfo::Config::recv_buffer_size)).
    pub(crate) recv_buffer_size: Option<usize>,
    /// The most bytes asked for per socket read (see [`Config::max_read_size`](crate::conninfo::Config::max_read_size)).
    pub(crate) max_read_size: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    Plain,
    Tls,
}

#[derive(Debug, Clone)]
enum Address {
    Tcp {
        addr: SocketAddr,
        host: String,
    },
    #[cfg(unix)]
    Unix(PathBuf),
}

impl Address {
    fn describe(&self) -> String {
        match self {
            Address::Tcp { addr, host } if host == &addr.ip().to_string() => addr.to_string(),
            Address::Tcp { addr, host } => format!("\"{host}\" ({addr})"),
            #[cfg(unix)]
            Address::Unix(path) => format!("socket \"{}\"", path.display()),
        }
    }
}

/// Connects to the first host that accepts the session; returns the last error otherwise.
pub(crate) async fn connect(options: &NativeOptions) -> Result<NativeConnection> {
    let mut last_error = None;
    for host in &options.hosts {
        let addresses = match resolve(host).await {
            Ok(a) => a,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        let auth = match host.password() {
            Some(password) => options.auth.clone().password(password.clone()),
            None => options.auth.clone(),
        };
        for address in addresses {
            match connect_address(&address, options, &auth).await {
                Ok(connection) => return Ok(connection),
                Err(e) => {
                    tracing::debug!(address = %address.describe(), error = %e, "connection attempt failed");
                    last_error = Some(e);
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| TransportError::Config("no host to connect to".into())))
}

async fn resolve(host: &Host) -> Result<Vec<Address>> {
    match host {
        #[cfg(unix)]
        Host::Unix { path, .. } => Ok(vec![Address::Unix(path.clone())]),
        Host::Tcp {
            host,
            hostaddr: Some(ip),
            port,
            ..
        } => {
            let host = if host.is_empty() {
                ip.to_string()
            } else {
                host.clone()
            };
            Ok(vec![Address::Tcp {
                addr: SocketAddr::new(*ip, *port),
                host,
            }])
        }
        Host::Tcp {
            host,
            hostaddr: None,
            port,
            ..
        } => {
            let found = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|source| TransportError::Connect {
                    address: format!("{host}:{port}"),
                    source,
                })?;
            Ok(found
                .map(|addr| Address::Tcp {
                    addr,
                    host: host.clone(),
                })
                .collect())
        }
    }
}

async fn connect_address(
    address: &Address,
    options: &NativeOptions,
    auth: &AuthConfig,
) -> Result<NativeConnection> {
    let methods: &[Encryption] = match (address, options.ssl_mode) {
        #[cfg(unix)]
        (Address::Unix(_), _) => &[Encryption::Plain],
        (_, SslMode::Disable) => &[Encryption::Plain],
        (_, SslMode::Allow) => &[Encryption::Plain, Encryption::Tls],
        (_, SslMode::Prefer) => &[Encryption::Tls, Encryption::Plain],
        (_, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => &[Encryption::Tls],
    };
    let mut last_error = None;
    for &method in methods {
        let attempt = attempt(address, method, options, auth);
        let outcome = match options.connect_timeout {
            None => attempt.await,
            Some(timeout) => tokio::time::timeout(timeout, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(Attempt::Final(TransportError::ConnectTimeout {
                        address: address.describe(),
                        timeout,
                    }))
                }),
        };
        match outcome {
            Ok(connection) => return Ok(connection),
            // Only a session the server itself rejected is retried with the other method.
            Err(Attempt::Retryable(e)) => last_error = Some(e),
            Err(Attempt::Final(e)) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| TransportError::Config("no encryption method to try".into())))
}

/// Why one attempt failed, and whether libpq would try the other encryption method.
enum Attempt {
    Retryable(TransportError),
    Final(TransportError),
}

impl From<TransportError> for Attempt {
    fn from(e: TransportError) -> Self {
        Attempt::Final(e)
    }
}

async fn attempt(
    address: &Address,
    method: Encryption,
    options: &NativeOptions,
    auth: &AuthConfig,
) -> Result<NativeConnection, Attempt> {
    let socket = match address {
        Address::Tcp { addr, .. } => {
            socket::connect_tcp(*addr, options.keepalive, options.recv_buffer_size).await?
        }
        #[cfg(unix)]
        Address::Unix(path) => socket::connect_unix(path, options.recv_buffer_size).await?,
    };
    // When `prefer` falls back to plain on the same socket, no second plain try follows.
    let mut retry_allowed = true;
    let stream = match method {
        Encryption::Plain => Stream::Plain(socket),
        Encryption::Tls => match negotiate_tls(socket, address, options).await? {
            Negotiated::Tls(stream) => stream,
            Negotiated::Refused(socket) if options.ssl_mode == SslMode::Prefer => {
                retry_allowed = false;
                Stream::Plain(socket)
            }
            Negotiated::Refused(_) => {
                return Err(Attempt::Final(TransportError::SslRefused {
                    address: address.describe(),
                }));
            }
        },
    };
    // Until the server has authenticated us, it is an unauthenticated peer: small messages only.
    let mut io = Framed::new(stream, PRE_AUTH_MAX_FRAME_LEN.min(options.max_frame));
    let params = options
        .startup
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    frontend::startup(&mut io.write_buf, params).map_err(TransportError::from)?;
    io.flush().await?;
    match startup(io, address, options, auth).await {
        Ok(connection) => Ok(connection),
        Err(e @ TransportError::Server(_)) if retry_allowed => Err(Attempt::Retryable(e)),
        Err(e) => Err(Attempt::Final(e)),
    }
}

enum Negotiated {
    Tls(Stream),
    Refused(Socket),
}

async fn negotiate_tls(
    mut socket: Socket,
    address: &Address,
    options: &NativeOptions,
) -> Result<Negotiated> {
    let Address::Tcp { host, .. } = address else {
        return Ok(Negotiated::Refused(socket));
    };
    let settings = options.tls.as_ref().ok_or(TransportError::Config(
        "TLS requested but no TLS settings were resolved".into(),
    ))?;
    if !options.direct_tls {
        let mut request = BytesMut::with_capacity(8);
        frontend::ssl_request(&mut request);
        socket
            .write_all(&request)
            .await
            .map_err(TransportError::io)?;
        socket.flush().await.map_err(TransportError::io)?;
        // Read exactly one byte from the socket itself: anything a man in the middle injects
        // after the answer goes into the TLS handshake and fails it (CVE-2021-23222).
        match socket.read_u8().await.map_err(TransportError::io)? {
            b'S' => {}
            b'N' => return Ok(Negotiated::Refused(socket)),
            _ => {
                return Err(TransportError::Unexpected {
                    got: "an invalid answer to SSLRequest",
                    during: "negotiating SSL",
                });
            }
        }
    }
    let config = settings.client_config()?;
    let server_name = ServerName::try_from(host.clone()).map_err(|_| {
        TransportError::Config(format!("host name \"{host}\" is not valid for TLS"))
    })?;
    let tls = TlsConnector::from(config)
        .connect(server_name, socket)
        .await
        .map_err(|e| tls_error(e, address, options.direct_tls))?;
    if options.direct_tls && tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
        return Err(TransportError::Tls {
            address: address.describe(),
            source: rustls::Error::General(
                "direct SSL connection was established without ALPN protocol negotiation".into(),
            ),
        });
    }
    Ok(Negotiated::Tls(Stream::Tls(Box::new(tls))))
}

fn tls_error(e: std::io::Error, address: &Address, direct: bool) -> TransportError {
    if let Some(source) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return TransportError::Tls {
            address: address.describe(),
            source: source.clone(),
        };
    }
    if direct {
        TransportError::DirectTlsRefused {
            address: address.describe(),
            source: e,
        }
    } else {
        TransportError::io(e)
    }
}

/// Authentication, then ParameterStatus/BackendKeyData up to ReadyForQuery.
async fn startup(
    mut io: Framed,
    address: &Address,
    options: &NativeOptions,
    auth: &AuthConfig,
) -> Result<NativeConnection> {
    auth::authenticate(&mut io, auth).await?;
    io.set_max_frame(options.max_frame);
    if let Some(bytes) = options.max_read_size {
        io.set_max_read(bytes);
    }
    let mut parameters = HashMap::new();
    let mut cancel = None;
    loop {
        match io.read_message().await? {
            BackendMessage::ParameterStatus { name, value } => {
                parameters.insert(name, value);
            }
            BackendMessage::BackendKeyData {
                process_id,
                secret_key,
            } => {
                let target = match address {
                    Address::Tcp { addr, .. } => CancelAddress::Tcp(*addr),
                    #[cfg(unix)]
                    Address::Unix(path) => CancelAddress::Unix(path.clone()),
                };
                cancel = Some(CancelToken::new(
                    target,
                    process_id,
                    secret_key,
                    options.connect_timeout,
                ));
            }
            BackendMessage::ReadyForQuery(_) => {
                return Ok(NativeConnection::new(io, parameters, cancel));
            }
            BackendMessage::ErrorResponse(e) => return Err(TransportError::server(e)),
            BackendMessage::NoticeResponse(n) => {
                tracing::info!(target: "pg_walstream::server", "{n}");
            }
            BackendMessage::NegotiateProtocolVersion { .. } => {}
            other => {
                return Err(TransportError::Unexpected {
                    got: message_name(&other),
                    during: "starting the session",
                });
            }
        }
    }
}

impl NativeConnection {
    /// Connects with the pure-Rust backend, trying each host of `config` in order.
    ///
    /// # Errors
    /// The last attempt's error: [`TransportError::Connect`],
    /// [`TransportError::ConnectTimeout`], TLS errors ([`TransportError::Tls`],
    /// [`TransportError::SslRefused`], [`TransportError::DirectTlsRefused`],
    /// [`TransportError::TlsFile`]), [`TransportError::Auth`] for client-side authentication
    /// failures, [`TransportError::Server`] when the server rejects the session.
    pub async fn connect(config: &crate::conninfo::Config) -> Result<Self> {
        connect(&NativeOptions::from_config(config)?).await
    }
}
