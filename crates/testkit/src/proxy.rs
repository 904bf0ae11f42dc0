//! A loopback TCP proxy that injects network faults between a client and a server.
//!
//! The client connects to the proxy's port ([`FaultProxy::conninfo`]); every accepted
//! connection gets its own connection to the upstream address and two pumps copy bytes in
//! each direction. The controls act on the pumps:
//!
//! - [`cut_all`](FaultProxy::cut_all): every open connection is reset now (both sockets
//!   closed with `SO_LINGER` 0, so both peers see a reset). New connections are accepted.
//! - [`cut_after_server_bytes`](FaultProxy::cut_after_server_bytes): the connection that
//!   carries the next `n` bytes from the server forwards exactly those `n`, then the client
//!   sees end-of-file and the server a reset — with `n` chosen freely, in the middle of a
//!   protocol message.
//! - [`set_delay`](FaultProxy::set_delay): every chunk is held for a while before it is
//!   forwarded, in both directions, order kept.
//! - [`blackhole`](FaultProxy::blackhole): nothing is forwarded any more, in either direction,
//!   but every socket stays open, as with a dead network path or a hung host. Bytes are held,
//!   not dropped.
//! - [`resume`](FaultProxy::resume): back to normal (held bytes flow again, no delay, no
//!   pending cut).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{AuthUser, TestServer, TestkitError};

/// Size of one forwarded chunk at most.
const CHUNK: usize = 16 * 1024;

/// A fault-injecting TCP proxy on `127.0.0.1`.
///
/// The client connects to the proxy's port ([`conninfo`](Self::conninfo)); each accepted
/// connection gets its own connection to the upstream address. Controls:
/// [`cut_all`](Self::cut_all) (reset every open connection now),
/// [`cut_after_server_bytes`](Self::cut_after_server_bytes) (mid-message cut),
/// [`set_delay`](Self::set_delay), [`blackhole`](Self::blackhole) (forward nothing, keep the
/// sockets open) and [`resume`](Self::resume).
///
/// Its tasks run on the tokio runtime that started it; dropping it resets every connection
/// and stops accepting.
///
/// ```no_run
/// # async fn example() {
/// use pg_walstream_testkit::{AuthUser, FaultProxy, servers};
/// let server = &servers()[0];
/// let proxy = FaultProxy::for_server(server).await.unwrap();
/// let conninfo = proxy.conninfo(server, AuthUser::Scram, "postgres");
/// // ... connect with `conninfo`, then:
/// proxy.cut_all();
/// # let _ = conninfo;
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    control: Arc<Control>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct Control {
    upstream: SocketAddr,
    flow: watch::Sender<Flow>,
    /// Incremented by `cut_all`; a connection is reset when it changes.
    cuts: watch::Sender<u64>,
    /// Bytes from the server still to forward before a cut, if one is armed.
    budget: Mutex<Option<u64>>,
    accepted: AtomicU64,
    reset: AtomicU64,
    from_server: AtomicU64,
    from_client: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flow {
    blackhole: bool,
    delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    FromClient,
    FromServer,
}

/// How one pump ended.
enum PumpEnd {
    /// The source closed its side cleanly; the destination's write side was shut down.
    Eof,
    /// An I/O error or a cut: reset the connection.
    Reset,
    /// An armed byte budget ran out: the client gets exactly those bytes, then end-of-file.
    Budget,
}

/// How a connection ends.
enum Ending {
    Clean,
    Reset,
    Budget,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy, TestkitError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(TestkitError::io("binding a proxy port on", "127.0.0.1"))?;
        let address = listener.local_addr().map_err(TestkitError::io(
            "reading the proxy address of",
            "127.0.0.1",
        ))?;
        let control = Arc::new(Control {
            upstream,
            flow: watch::Sender::new(Flow::default()),
            cuts: watch::Sender::new(0),
            budget: Mutex::new(None),
            accepted: AtomicU64::new(0),
            reset: AtomicU64::new(0),
            from_server: AtomicU64::new(0),
            from_client: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&control)));
        Ok(FaultProxy {
            address,
            control,
            accept,
        })
    }

    /// Starts a proxy in front of `server`'s TCP port. The proxy keeps forwarding to that port
    /// across a server restart ([`TestServer::restart`]).
    ///
    /// # Errors
    /// See [`start`](Self::start).
    pub async fn for_server(server: &TestServer) -> Result<FaultProxy, TestkitError> {
        let upstream = SocketAddr::from(([127, 0, 0, 1], server.port()));
        Self::start(upstream).await
    }

    /// The proxy's listening address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The proxy's port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// [`TestServer::conninfo`] with the port replaced by the proxy's, so the client goes
    /// through the proxy.
    pub fn conninfo(&self, server: &TestServer, user: AuthUser, dbname: &str) -> String {
        // Replaced rather than appended: some clients (tokio-postgres) read a repeated `port`
        // as a list of ports.
        server.conninfo(user, dbname).replacen(
            &format!(" port={} ", server.port()),
            &format!(" port={} ", self.port()),
            1,
        )
    }

    /// Resets every open connection now. Connections accepted later are not affected.
    pub fn cut_all(&self) {
        self.control.cuts.send_modify(|generation| *generation += 1);
    }

    /// Arms a cut: the connection that carries the next `bytes` bytes from the server (counted
    /// over all connections from now) forwards exactly that many, then closes: the client reads
    /// end-of-file after them, the server sees a reset. Replaces
    /// a cut armed before; `0` resets the next connection that receives anything from the
    /// server.
    pub fn cut_after_server_bytes(&self, bytes: u64) {
        *self
            .control
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(bytes);
    }

    /// Holds every chunk for `delay` before forwarding it (both directions; `ZERO` for none).
    pub fn set_delay(&self, delay: Duration) {
        self.control.flow.send_modify(|flow| flow.delay = delay);
    }

    /// Stops forwarding in both directions while keeping every socket open; new connections
    /// are accepted but carry nothing. Bytes already read are held until [`resume`](Self::resume).
    pub fn blackhole(&self) {
        self.control.flow.send_modify(|flow| flow.blackhole = true);
    }

    /// Back to normal: forwarding resumes (held bytes first), no delay, no armed cut.
    pub fn resume(&self) {
        *self
            .control
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.control.flow.send_replace(Flow::default());
    }

    /// How many client connections the proxy has accepted.
    pub fn connections_accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::Acquire)
    }

    /// How many connections the proxy has reset (by a cut or after an I/O error).
    pub fn connections_reset(&self) -> u64 {
        self.control.reset.load(Ordering::Acquire)
    }

    /// Bytes forwarded from the server to clients so far.
    pub fn bytes_from_server(&self) -> u64 {
        self.control.from_server.load(Ordering::Acquire)
    }

    /// Bytes forwarded from clients to the server so far.
    pub fn bytes_from_client(&self) -> u64 {
        self.control.from_client.load(Ordering::Acquire)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, control: Arc<Control>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or similar: keep serving the open connections.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        control.accepted.fetch_add(1, Ordering::AcqRel);
        // Subscribe before spawning so a cut issued right after accept reaches it.
        let cuts = control.cuts.subscribe();
        tokio::spawn(serve(client, Arc::clone(&control), cuts));
    }
}

async fn serve(mut client: TcpStream, control: Arc<Control>, mut cuts: watch::Receiver<u64>) {
    let _ = client.set_nodelay(true);
    let mut server = tokio::select! {
        connected = TcpStream::connect(control.upstream) => {
            let Ok(server) = connected else {
                reset(&client, None, &control);
                return;
            };
            server
        }
        _ = cuts.changed() => {
            reset(&client, None, &control);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let ending = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, Direction::FromClient, &control);
        let down = pump(server_read, client_write, Direction::FromServer, &control);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                end = &mut up, if !up_done => match end {
                    PumpEnd::Eof => up_done = true,
                    PumpEnd::Reset | PumpEnd::Budget => break Ending::Reset,
                },
                end = &mut down, if !down_done => match end {
                    PumpEnd::Eof => down_done = true,
                    PumpEnd::Reset => break Ending::Reset,
                    PumpEnd::Budget => break Ending::Budget,
                },
                _ = cuts.changed() => break Ending::Reset,
            }
            if up_done && down_done {
                break Ending::Clean;
            }
        }
    };
    match ending {
        Ending::Clean => {}
        Ending::Reset => reset(&client, Some(&server), &control),
        Ending::Budget => {
            // The server side goes at once; the client side has its bytes and a FIN queued
            // behind them. Keep its socket until the client closes it (or a cut comes): closing
            // with unread input would send a reset that could discard the bytes in flight.
            let _ = server.set_zero_linger();
            drop(server);
            control.reset.fetch_add(1, Ordering::AcqRel);
            let mut sink = [0u8; 1024];
            loop {
                tokio::select! {
                    read = client.read(&mut sink) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    },
                    _ = cuts.changed() => {
                        let _ = client.set_zero_linger();
                        break;
                    }
                }
            }
        }
    }
}

/// Makes the sockets close with a reset (`SO_LINGER` 0) when they are dropped.
fn reset(client: &TcpStream, server: Option<&TcpStream>, control: &Control) {
    let _ = client.set_zero_linger();
    if let Some(server) = server {
        let _ = server.set_zero_linger();
    }
    control.reset.fetch_add(1, Ordering::AcqRel);
}

async fn pump(
    mut source: tokio::net::tcp::ReadHalf<'_>,
    mut sink: tokio::net::tcp::WriteHalf<'_>,
    direction: Direction,
    control: &Control,
) -> PumpEnd {
    let mut flow = control.flow.subscribe();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        if flowing(&mut flow).await.is_none() {
            return PumpEnd::Reset;
        }
        let n = match source.read(&mut buffer).await {
            Ok(0) => {
                let _ = sink.shutdown().await;
                return PumpEnd::Eof;
            }
            Ok(n) => n,
            Err(_) => return PumpEnd::Reset,
        };
        // Hold the chunk while blackholed; then apply the delay in force.
        let Some(delay) = flowing(&mut flow).await else {
            return PumpEnd::Reset;
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let (len, cut) = match direction {
            Direction::FromClient => (n, false),
            Direction::FromServer => take_budget(control, n),
        };
        if sink.write_all(&buffer[..len]).await.is_err() {
            return PumpEnd::Reset;
        }
        let counter = match direction {
            Direction::FromClient => &control.from_client,
            Direction::FromServer => &control.from_server,
        };
        counter.fetch_add(len as u64, Ordering::AcqRel);
        if cut {
            let _ = sink.shutdown().await;
            return PumpEnd::Budget;
        }
    }
}

/// How much of an `n`-byte chunk from the server to forward, and whether to reset after it.
fn take_budget(control: &Control, n: usize) -> (usize, bool) {
    let mut budget = control
        .budget
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match *budget {
        Some(left) if left <= n as u64 => {
            *budget = None;
            (left as usize, true)
        }
        Some(left) => {
            *budget = Some(left - n as u64);
            (n, false)
        }
        None => (n, false),
    }
}

/// Waits while the proxy is blackholed; returns the delay in force, or `None` when the proxy
/// is gone.
async fn flowing(flow: &mut watch::Receiver<Flow>) -> Option<Duration> {
    let flow = flow.wait_for(|flow| !flow.blackhole).await.ok()?;
    Some(flow.delay)
}
