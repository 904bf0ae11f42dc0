//! What a primary and a standby set up alike: the directories of a server's root (`data`,
//! `sock`, `certs`) and its log, owned by the server user, its certificates, and the
//! `postgresql.conf` lines naming its socket directory and certificate files.

use crate::TestServer;
use crate::TestkitError;
use crate::certs::{self, CertPaths};
use crate::os::{ServerUser, chmod};
use crate::users::AuthUser;

impl TestServer {
    /// Creates the server's directories and empty log file under its root.
    pub(crate) fn create_layout(&self, user: &ServerUser) -> Result<(), TestkitError> {
        chmod(&self.root, 0o755)?;
        for (dir, mode) in [("data", 0o700), ("sock", 0o755), ("certs", 0o755)] {
            let path = self.root.join(dir);
            std::fs::create_dir(&path).map_err(TestkitError::io("creating", &path))?;
            chmod(&path, mode)?;
            user.give(&path)?;
        }
        let log = self.log_path();
        std::fs::write(&log, "").map_err(TestkitError::io("creating", &log))?;
        user.give(&log)
    }

    /// Generates the server's certificates (server key readable by the server user only).
    pub(crate) fn create_certs(&self, user: &ServerUser) -> Result<CertPaths, TestkitError> {
        let certs = certs::generate(&self.root.join("certs"), AuthUser::Cert.name())?;
        user.give(&certs.server_key())?;
        Ok(certs)
    }

    /// `unix_socket_directories` and the `ssl_*_file` settings of this server.
    pub(crate) fn paths_conf(&self, certs: &CertPaths) -> String {
        format!(
            "unix_socket_directories = {}\n\
             ssl_cert_file = {}\n\
             ssl_key_file = {}\n\
             ssl_ca_file = {}\n",
            conf_quote(&self.socket_dir().to_string_lossy()),
            conf_quote(&certs.server_cert().to_string_lossy()),
            conf_quote(&certs.server_key().to_string_lossy()),
            conf_quote(&certs.ca_cert().to_string_lossy()),
        )
    }
}

/// A `postgresql.conf` string literal.
pub(crate) fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
