//! Throwaway real PostgreSQL servers (14–18) for pg-walstream's tests and benchmarks.
//!
//! Dev-only. A [`TestServer`] is a real server in a temporary directory: free loopback port,
//! private unix-socket directory, generated certificates (see [`CertPaths`]), `ssl=on`,
//! `wal_level=logical`, and one user per authentication method ([`AuthUser`]). When the
//! process runs as root the server runs as an unprivileged OS user (`postgres`, or
//! `pgwalstream`, created when missing). Servers stop and their directories disappear when
//! dropped, and also when the test process dies without dropping them.
//!
//! Most tests use the shared servers of the run:
//!
//! ```no_run
//! # async fn example() {
//! use pg_walstream_testkit::{AuthUser, servers, unique_name};
//! for server in servers() {
//!     let db = server.create_database("example").await;
//!     let admin = server.admin(&db).await;
//!     admin.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
//!     let slot = unique_name("slot");
//!     let conninfo = server.conninfo(AuthUser::Scram, &db);
//!     # let _ = (slot, conninfo);
//! }
//! # }
//! ```
//!
//! Faults for resilience tests: [`FaultProxy`] sits between a client and a server and cuts,
//! delays or blackholes connections; [`TestServer::terminate_walsender`] ends a slot's
//! walsender and [`TestServer::restart`] restarts a private server in place.
//!
//! Binaries are found by [`find_bindir`] and installed by [`ensure_installed`] (used by
//! `cargo xtask pg install`).

mod binaries;
mod certs;
mod error;
mod faults;
mod install;
mod layout;
mod os;
mod proxy;
mod reaper;
mod restore;
mod server;
mod shared;
mod standby;
mod users;

use std::sync::atomic::{AtomicU32, Ordering};

pub use binaries::{
    NPM_PACKAGES, cache_dir, client_tool, client_tool_of_version, client_tools_17_bindir,
    find_bindir, reports_major_version, server_major_version, wheel_bindir, workspace_root,
};
pub use certs::CertPaths;
pub use error::TestkitError;
pub use install::{InstallOutcome, ensure_installed};
pub use os::FALLBACK_SERVER_USER;
pub use proxy::FaultProxy;
pub use server::{TestServer, TestServerBuilder};
pub use shared::{
    DEFAULT_VERSION, SERVERS_ENV, VERSION_ENV, descriptor, read_descriptor, server, servers,
};
pub use users::{ADMIN_USER, AuthUser};

/// The PostgreSQL major versions pg-walstream supports and tests.
pub const SUPPORTED_VERSIONS: [u32; 5] = [14, 15, 16, 17, 18];

/// A name unique across the processes of a test run, usable unquoted as an SQL identifier
/// and as a slot name: `prefix` (lower-cased, non-alphanumerics as `_`), the process id and a
/// counter.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{clean}_{}_{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::unique_name;

    #[test]
    fn unique_names_are_distinct_and_identifier_safe() {
        let a = unique_name("My Slot");
        let b = unique_name("My Slot");
        assert_ne!(a, b);
        assert!(a.starts_with("my_slot_"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
