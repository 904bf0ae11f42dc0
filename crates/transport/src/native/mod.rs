//! The pure-Rust backend: tokio sockets, rustls (aws-lc-rs), one large read buffer.

mod auth;
mod connect;
mod framed;
mod key_file;
mod options;
mod session;
mod socket;
mod stream;
mod tls;

pub use session::NativeConnection;
pub use socket::Keepalive;
