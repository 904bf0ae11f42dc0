//! A throwaway PostgreSQL server: initdb into a temporary directory, generated certificates,
//! test users, a free loopback port, and guaranteed cleanup.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::binaries::find_bindir;
use crate::certs::CertPaths;
use crate::os::{ServerUser, run, tail};
use crate::reaper::Reaper;
use crate::users::{ADMIN_USER, AuthUser, create_users_sql, pg_hba_conf};
use crate::{TestkitError, unique_name};

/// How many times a start is retried with a new port when the chosen one is taken.
const PORT_ATTEMPTS: usize = 5;

/// A running PostgreSQL server for tests.
///
/// Owned servers (from [`TestServer::start`] or [`TestServerBuilder::start`]) stop and delete
/// their directory when dropped; a reaper process does the same if the test process dies
/// without dropping them (panic with abort, `SIGKILL`, statics never dropped). Servers from
/// [`servers`](crate::servers) may be shared with other test processes: don't change their
/// global settings; isolate with [`create_database`](Self::create_database) and
/// [`unique_name`].
#[derive(Debug)]
pub struct TestServer {
    pub(crate) version: u32,
    pub(crate) port: u16,
    pub(crate) root: PathBuf,
    pub(crate) bindir: PathBuf,
    pub(crate) reaper: Option<Reaper>,
}

/// Settings for a private server; see [`TestServer::builder`].
#[derive(Debug, Clone)]
pub struct TestServerBuilder {
    version: u32,
    settings: Vec<(String, String)>,
    base_dir: Option<PathBuf>,
    preferred_port: Option<u16>,
    initdb_args: Vec<String>,
}

impl TestServerBuilder {
    /// Passes an extra argument to `initdb`, e.g. `--wal-segsize=1` for 1 MiB WAL segments
    /// (so tests cross many segments cheaply).
    #[must_use]
    pub fn initdb_arg(mut self, arg: &str) -> Self {
        self.initdb_args.push(arg.to_owned());
        self
    }

    /// Adds a `postgresql.conf` setting (written after the defaults, so it overrides them).
    /// The value is written as given: quote strings yourself (`"'2s'"` or `"2s"` both work
    /// for units).
    #[must_use]
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Creates the server's directory under `dir` instead of the system temporary directory.
    #[must_use]
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Tries `port` first; if it is taken, the start is retried on free ports.
    #[must_use]
    pub fn preferred_port(mut self, port: u16) -> Self {
        self.preferred_port = Some(port);
        self
    }

    /// Initialises and starts the server.
    ///
    /// # Errors
    /// Missing binaries, an unusable directory, or a server that fails to start, with the
    /// server log attached.
    pub fn start(self) -> Result<TestServer, TestkitError> {
        let bindir = find_bindir(self.version)?;
        let user = ServerUser::get()?;
        if !user.can_traverse(&bindir.join("postgres")) {
            return Err(TestkitError::StartFailed {
                version: self.version,
                reason: format!(
                    "the server user cannot reach {}; move the binaries or set PG_WALSTREAM_PG_CACHE \
                     to a directory every user can traverse",
                    bindir.display()
                ),
                log: String::new(),
            });
        }
        let base = self.base_dir.clone().unwrap_or_else(std::env::temp_dir);
        let root = tempfile::Builder::new()
            .prefix(&format!("pg-walstream-{}-", self.version))
            .tempdir_in(&base)
            .map_err(TestkitError::io("creating a server directory in", &base))?
            .keep();
        let reaper = Reaper::spawn(&root)?;
        let mut server = TestServer {
            version: self.version,
            port: 0,
            root,
            bindir,
            reaper: Some(reaper),
        };
        server.initialise(user, &self.settings, &self.initdb_args)?;
        server.start_on_free_port(self.preferred_port)?;
        server.create_users()?;
        Ok(server)
    }
}

impl TestServer {
    /// Starts a private server of major version `version` with the default test settings.
    ///
    /// # Errors
    /// See [`TestServerBuilder::start`].
    pub fn start(version: u32) -> Result<TestServer, TestkitError> {
        Self::builder(version).start()
    }

    /// A builder for a private server with extra settings.
    pub fn builder(version: u32) -> TestServerBuilder {
        TestServerBuilder {
            version,
            settings: Vec::new(),
            base_dir: None,
            preferred_port: None,
            initdb_args: Vec::new(),
        }
    }

    /// The server's major version (14–18).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The TCP port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The loopback address the server listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The directory of the server's unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("sock")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The directory holding everything of this server (removed when it stops).
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// The directory of the server binaries.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The server log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The generated certificates.
    pub fn certs(&self) -> CertPaths {
        CertPaths::in_dir(self.root.join("certs"))
    }

    /// The CA certificate that signed the server certificate.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.certs().ca_cert()
    }

    /// The client certificate and key of [`AuthUser::Cert`].
    pub fn client_cert_paths(&self) -> (PathBuf, PathBuf) {
        let certs = self.certs();
        (certs.client_cert(), certs.client_key())
    }

    /// The process id of the postmaster, read from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The role name of `user`.
    pub fn user_name(&self, user: AuthUser) -> &'static str {
        user.name()
    }

    /// The password of `user` (empty for users that log in without one).
    pub fn password(&self, user: AuthUser) -> &'static str {
        user.password().unwrap_or("")
    }

    /// A libpq `key=value` connection string for the superuser over the unix socket.
    pub fn admin_conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={ADMIN_USER} dbname={}",
            quote(&self.socket_dir().to_string_lossy()),
            self.port,
            quote(dbname)
        )
    }

    /// A libpq `key=value` connection string that logs `user` in to `dbname` over TCP.
    ///
    /// Users that need TLS ([`AuthUser::SslOnly`], [`AuthUser::Cert`]) get `host=localhost`,
    /// `sslmode=verify-full` and the generated CA; the cert user also its client certificate.
    /// The others get `host=127.0.0.1` and libpq's default sslmode. Append more `key=value`
    /// pairs to adjust (later keys override earlier ones).
    pub fn conninfo(&self, user: AuthUser, dbname: &str) -> String {
        let host = if user.requires_tls() {
            "localhost"
        } else {
            self.host()
        };
        let mut conninfo = format!(
            "host={host} port={} user={} dbname={}",
            self.port,
            user.name(),
            quote(dbname)
        );
        if let Some(password) = user.password() {
            let _ = write!(conninfo, " password={}", quote(password));
        }
        if user.requires_tls() {
            let _ = write!(
                conninfo,
                " sslmode=verify-full sslrootcert={}",
                quote(&self.ca_cert_path().to_string_lossy())
            );
        }
        if user == AuthUser::Cert {
            let (cert, key) = self.client_cert_paths();
            let _ = write!(
                conninfo,
                " sslcert={} sslkey={}",
                quote(&cert.to_string_lossy()),
                quote(&key.to_string_lossy())
            );
        }
        conninfo
    }

    /// A superuser SQL client connected to `dbname`. Its connection task runs on the current
    /// tokio runtime.
    ///
    /// # Panics
    /// If the server cannot be reached (this is a test helper).
    pub async fn admin(&self, dbname: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.admin_conninfo(dbname), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|error| {
                    panic!(
                        "PostgreSQL {}: admin connection to {dbname}: {error}",
                        self.version
                    )
                });
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Creates a database with a unique name starting with `prefix` and returns the name.
    ///
    /// # Panics
    /// If the statement fails (this is a test helper).
    pub async fn create_database(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        let admin = self.admin("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL {}: CREATE DATABASE {name}: {error}",
                    self.version
                )
            });
        name
    }

    /// Whether this handle owns the server (stops it on drop) rather than sharing one.
    pub fn is_owned(&self) -> bool {
        self.reaper.is_some()
    }

    /// Stops the server (fast shutdown) without deleting it; [`start_again`](Self::start_again)
    /// brings it back on the same port. Only for owned servers.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails, or for a shared server.
    pub fn stop_server(&self) -> Result<(), TestkitError> {
        self.stop_server_with("fast")
    }

    /// [`stop_server`](Self::stop_server) with a `pg_ctl` shutdown mode (`fast`, `immediate`).
    pub(crate) fn stop_server_with(&self, mode: &str) -> Result<(), TestkitError> {
        self.require_owned("stop")?;
        self.pg_ctl(&["stop", "-m", mode, "-w", "-t", "60"])
            .map(drop)
    }

    /// Starts a server stopped by [`stop_server`](Self::stop_server) again.
    ///
    /// # Errors
    /// When `pg_ctl start` fails, or for a shared server.
    pub fn start_again(&self) -> Result<(), TestkitError> {
        self.require_owned("start")?;
        self.pg_ctl_start(self.port)
            .map_err(|error| self.start_failed(&error.to_string()))
    }

    /// Appends `name = value` to `postgresql.conf` (takes effect on restart or reload).
    ///
    /// # Errors
    /// When the file cannot be written, or for a shared server.
    pub fn add_setting(&self, name: &str, value: &str) -> Result<(), TestkitError> {
        self.require_owned("reconfigure")?;
        append(
            &self.data_dir().join("postgresql.conf"),
            &format!("{name} = {value}\n"),
        )
    }

    /// Stops the server and deletes its directory (what dropping does, but explicit).
    pub fn stop(mut self) {
        self.shutdown();
    }

    pub(crate) fn require_owned(&self, action: &str) -> Result<(), TestkitError> {
        if self.is_owned() {
            Ok(())
        } else {
            Err(TestkitError::StartFailed {
                version: self.version,
                reason: format!("refusing to {action} a shared server; start a private one"),
                log: String::new(),
            })
        }
    }

    fn initialise(
        &mut self,
        user: &ServerUser,
        settings: &[(String, String)],
        initdb_args: &[String],
    ) -> Result<(), TestkitError> {
        self.create_layout(user)?;

        let mut initdb = user.command(&self.bindir.join("initdb"));
        initdb.arg("-D").arg(self.data_dir()).args([
            "-U",
            ADMIN_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        initdb.args(initdb_args);
        run(&mut initdb)?;

        let certs = self.create_certs(user)?;

        let mut conf = format!(
            "\n# pg-walstream-testkit\n\
             listen_addresses = '127.0.0.1'\n\
             {}\
             wal_level = logical\n\
             max_replication_slots = 200\n\
             max_wal_senders = 60\n\
             max_prepared_transactions = 10\n\
             logical_decoding_work_mem = '64kB'\n\
             max_connections = 200\n\
             shared_buffers = '32MB'\n\
             fsync = off\n\
             ssl = on\n",
            self.paths_conf(&certs),
        );
        for (name, value) in settings {
            let _ = writeln!(conf, "{name} = {value}");
        }
        append(&self.data_dir().join("postgresql.conf"), &conf)?;
        let hba = self.data_dir().join("pg_hba.conf");
        std::fs::write(&hba, pg_hba_conf()).map_err(TestkitError::io("writing", &hba))
    }

    pub(crate) fn start_on_free_port(
        &mut self,
        preferred: Option<u16>,
    ) -> Result<(), TestkitError> {
        let mut last_error = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let port = match preferred {
                Some(port) if attempt == 0 => port,
                _ => {
                    free_port().map_err(TestkitError::io("finding a free port on", "127.0.0.1"))?
                }
            };
            match self.pg_ctl_start(port) {
                Ok(()) => {
                    self.port = port;
                    return Ok(());
                }
                Err(error) => {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        return Err(self.start_failed(&error.to_string()));
                    }
                    last_error = format!("port {port} was taken");
                }
            }
        }
        Err(self.start_failed(&format!(
            "no free port after {PORT_ATTEMPTS} attempts ({last_error})"
        )))
    }

    fn pg_ctl_start(&self, port: u16) -> Result<(), TestkitError> {
        let log = self.log_path();
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &log.to_string_lossy(),
            "-o",
            &format!("-p {port}"),
        ])
        .map(drop)
    }

    pub(crate) fn pg_ctl(&self, args: &[&str]) -> Result<std::process::Output, TestkitError> {
        let user = ServerUser::get()?;
        let mut command = user.command(&self.bindir.join("pg_ctl"));
        command.arg("-D").arg(self.data_dir()).args(args);
        run(&mut command)
    }

    fn start_failed(&self, reason: &str) -> TestkitError {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        TestkitError::StartFailed {
            version: self.version,
            reason: reason.to_owned(),
            log: tail(&log, 30),
        }
    }

    fn create_users(&self) -> Result<(), TestkitError> {
        let conninfo = self.admin_conninfo("postgres");
        // A thread of its own: the caller may already be inside a tokio runtime.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(TestkitError::io(
                            "starting a tokio runtime for",
                            "setup SQL",
                        ))?;
                    runtime.block_on(async {
                        let (client, connection) =
                            tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
                        let driver = tokio::spawn(connection);
                        client.batch_execute(&create_users_sql()).await?;
                        drop(client);
                        let _ = driver.await;
                        Ok(())
                    })
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn shutdown(&mut self) {
        if let Some(reaper) = self.reaper.take() {
            if self.postmaster_pid().is_some() {
                let _ = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
            }
            reaper.finish();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Asks the kernel for a free port on 127.0.0.1. Another process may take it before the
/// server binds it; starting retries with a new port in that case.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

pub(crate) fn append(path: &Path, text: &str) -> Result<(), TestkitError> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(TestkitError::io("opening", path))?;
    file.write_all(text.as_bytes())
        .map_err(TestkitError::io("writing", path))
}

/// Quotes a conninfo value when it needs it (libpq `key='value'` syntax).
pub(crate) fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\', '=']) {
        return value.to_owned();
    }
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_conninfo_values_only_when_needed() {
        assert_eq!(quote("/tmp/x"), "/tmp/x");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it\\'s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a\\b"), "'a\\\\b'");
    }
}
