//! The pure-Rust backend: tokio sockets, rustls (aws-lc-rs), one large read buffer.

mod auth;
// Until `conninfo::Config` lands, the connect path is reached only from tests.
#[allow(dead_code)]
mod connect;
mod framed;
mod session;
mod socket;
mod stream;
#[allow(dead_code)]
mod tls;

pub use session::NativeConnection;
pub use socket::Keepalive;
