//! A server started on a restored base backup (a data directory some backup tool wrote).

use std::path::Path;

use crate::certs;
use crate::os::{ServerUser, chmod};
use crate::reaper::Reaper;
use crate::server::append;
use crate::users::AuthUser;
use crate::{TestServer, TestkitError};

impl TestServer {
    /// Starts a new private server of `version` on the data directory `data`, a restored base
    /// backup of a testkit server. `data` is moved into the new server's directory (it must be
    /// on the same file system as the system temporary directory) and, with every tablespace
    /// its `pg_tblspc` links point to, given to the server user. The server gets its own port,
    /// socket directory and certificates; the backup's users and settings are kept. It
    /// recovers from the backup's `backup_label` and WAL before this returns.
    ///
    /// # Errors
    /// When `data` cannot be moved or the server does not start (its log attached).
    pub fn start_on_restored(version: u32, data: &Path) -> Result<TestServer, TestkitError> {
        let bindir = crate::binaries::find_bindir(version)?;
        let user = ServerUser::get()?;
        let base = std::env::temp_dir();
        let root = tempfile::Builder::new()
            .prefix(&format!("pg-walstream-{version}-restored-"))
            .tempdir_in(&base)
            .map_err(TestkitError::io("creating a server directory in", &base))?
            .keep();
        let reaper = Reaper::spawn(&root)?;
        let mut server = TestServer {
            version,
            port: 0,
            root,
            bindir,
            reaper: Some(reaper),
        };
        chmod(&server.root, 0o755)?;
        for (dir, mode) in [("sock", 0o755), ("certs", 0o755)] {
            let path = server.root.join(dir);
            std::fs::create_dir(&path).map_err(TestkitError::io("creating", &path))?;
            chmod(&path, mode)?;
            user.give(&path)?;
        }
        let log = server.log_path();
        std::fs::write(&log, "").map_err(TestkitError::io("creating", &log))?;
        user.give(&log)?;
        let target = server.data_dir();
        std::fs::rename(data, &target)
            .map_err(TestkitError::io("moving a restored backup to", &target))?;
        chmod(&target, 0o700)?;
        give_tree(user, &target)?;
        let tablespaces = target.join("pg_tblspc");
        if let Ok(links) = std::fs::read_dir(&tablespaces) {
            for link in links.flatten() {
                if let Ok(location) = std::fs::read_link(link.path()) {
                    give_tree(user, &location)?;
                }
            }
        }
        let certs = certs::generate(&server.root.join("certs"), AuthUser::Cert.name())?;
        user.give(&certs.server_key())?;
        let conf = format!(
            "\n# pg-walstream-testkit restored server\n\
             unix_socket_directories = '{}'\n\
             ssl_cert_file = '{}'\n\
             ssl_key_file = '{}'\n\
             ssl_ca_file = '{}'\n",
            server.socket_dir().display(),
            certs.server_cert().display(),
            certs.server_key().display(),
            certs.ca_cert().display(),
        );
        append(&target.join("postgresql.conf"), &conf)?;
        server.start_on_free_port(None)?;
        Ok(server)
    }
}

/// Gives `path` and everything below it (not following symlinks) to the server user.
fn give_tree(user: &ServerUser, path: &Path) -> Result<(), TestkitError> {
    let metadata = std::fs::symlink_metadata(path).map_err(TestkitError::io("reading", path))?;
    if metadata.is_symlink() {
        return Ok(());
    }
    user.give(path)?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path).map_err(TestkitError::io("reading", path))? {
            let entry = entry.map_err(TestkitError::io("reading", path))?;
            give_tree(user, &entry.path())?;
        }
    }
    Ok(())
}

impl TestServer {
    /// Creates the directory `name` in this private server's directory (outside its data
    /// directory), owned by the server user: e.g. a tablespace location. It is removed with
    /// the server.
    ///
    /// # Errors
    /// For a shared server, or when it cannot be created.
    pub fn create_server_dir(&self, name: &str) -> Result<std::path::PathBuf, TestkitError> {
        self.require_owned("create a directory in")?;
        let path = self.root.join(name);
        std::fs::create_dir(&path).map_err(TestkitError::io("creating", &path))?;
        chmod(&path, 0o700)?;
        ServerUser::get()?.give(&path)?;
        Ok(path)
    }
}
