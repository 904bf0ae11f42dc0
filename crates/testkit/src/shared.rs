//! Servers shared by all tests of a run.
//!
//! `cargo xtask test` starts one server per requested version, writes a descriptor file and
//! passes its path in [`SERVERS_ENV`]; every test process reads it and connects to those
//! servers. Without it (plain `cargo test`), the first call to [`servers`] starts one server
//! of the default version ([`VERSION_ENV`], else [`DEFAULT_VERSION`]) for the process; it is
//! stopped by the reaper when the process exits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{TestServer, TestkitError};

/// Environment variable with the path of the shared-server descriptor.
pub const SERVERS_ENV: &str = "PG_WALSTREAM_TEST_SERVERS";
/// Environment variable choosing the version plain `cargo test` starts.
pub const VERSION_ENV: &str = "PG_WALSTREAM_TEST_VERSION";
/// The version plain `cargo test` starts: the one Debian ships on these machines.
pub const DEFAULT_VERSION: u32 = 15;

/// The servers of this test run, one per version, in ascending version order.
///
/// # Panics
/// When the servers cannot be started or the descriptor is bad: tests cannot run then, and
/// the message says why.
pub fn servers() -> &'static [TestServer] {
    static SERVERS: OnceLock<Vec<TestServer>> = OnceLock::new();
    SERVERS.get_or_init(|| match load() {
        Ok(servers) => servers,
        Err(error) => panic!("pg-walstream-testkit: {error}"),
    })
}

/// The shared server of major version `version`, if this run has one.
pub fn server(version: u32) -> Option<&'static TestServer> {
    servers().iter().find(|server| server.version() == version)
}

fn load() -> Result<Vec<TestServer>, TestkitError> {
    if let Some(path) = std::env::var_os(SERVERS_ENV) {
        return read_descriptor(Path::new(&path));
    }
    let version = match std::env::var(VERSION_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| TestkitError::BadDescriptor {
                path: PathBuf::from(VERSION_ENV),
                reason: format!("{text:?} is not a PostgreSQL major version"),
            })?,
        Err(_) => DEFAULT_VERSION,
    };
    Ok(vec![TestServer::start(version)?])
}

/// The descriptor text of `servers`: one line per server, `key=value` fields separated by tabs.
pub fn descriptor(servers: &[TestServer]) -> String {
    let mut text = String::new();
    for server in servers {
        let _ = writeln!(
            text,
            "version={}\tport={}\troot={}\tbindir={}",
            server.version,
            server.port,
            server.root.display(),
            server.bindir.display()
        );
    }
    text
}

/// Reads a descriptor written from [`descriptor`]; the servers are not owned (not stopped on
/// drop).
///
/// # Errors
/// When the file is unreadable or a line is malformed.
pub fn read_descriptor(path: &Path) -> Result<Vec<TestServer>, TestkitError> {
    let text = std::fs::read_to_string(path).map_err(TestkitError::io("reading", path))?;
    let bad = |reason: String| TestkitError::BadDescriptor {
        path: path.to_path_buf(),
        reason,
    };
    let mut servers = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let field = |key: &str| {
            line.split('\t')
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| bad(format!("line {line:?} has no {key}")))
        };
        servers.push(TestServer {
            version: field("version")?
                .parse()
                .map_err(|_| bad(format!("bad version in {line:?}")))?,
            port: field("port")?
                .parse()
                .map_err(|_| bad(format!("bad port in {line:?}")))?,
            root: PathBuf::from(field("root")?),
            bindir: PathBuf::from(field("bindir")?),
            reaper: None,
        });
    }
    if servers.is_empty() {
        return Err(bad("it lists no servers".into()));
    }
    servers.sort_by_key(TestServer::version);
    Ok(servers)
}
