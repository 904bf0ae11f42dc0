//! Connection arguments shared by the subcommands that talk to a server.

use clap::{Args, ValueEnum};
use pg_walstream_slot::quote_literal;
use pg_walstream_transport::conninfo::{Config, Replication};
use pg_walstream_transport::{Backend, Connection};

use crate::error::{CliError, chain};

/// Which transport backend to use (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendArg {
    /// The pure-Rust backend (tokio + rustls).
    Native,
    /// libpq's non-blocking API (needs a build with the `libpq` feature).
    Libpq,
}

/// `--dbname` and `--backend`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectionArgs {
    /// Database name or connection string (libpq key=value or postgresql:// URI); PG*
    /// environment variables and ~/.pgpass apply as in libpq. The replication mode is added
    /// (replication=database; replication=true for receivewal).
    #[arg(short = 'd', long = "dbname", value_name = "CONNINFO")]
    pub(crate) dbname: Option<String>,
    /// Transport backend.
    #[arg(long, value_enum, default_value = "native")]
    pub(crate) backend: BackendArg,
}

impl ConnectionArgs {
    /// The backend, checked to be part of this build.
    ///
    /// # Errors
    /// A usage error for `libpq` in a build without it.
    pub(crate) fn backend(&self) -> Result<Backend, CliError> {
        match self.backend {
            BackendArg::Native => Ok(Backend::Native),
            BackendArg::Libpq if Backend::Libpq.is_available() => Ok(Backend::Libpq),
            BackendArg::Libpq => Err(CliError::usage(
                "--backend libpq is not available: this pg-walstream was built without the \
                 `libpq` feature",
            )),
        }
    }

    /// The parsed connection configuration with `replication=database`.
    ///
    /// # Errors
    /// A usage error when the connection string does not parse.
    pub(crate) fn config(&self) -> Result<Config, CliError> {
        let mut config = Config::parse(&conninfo_text(self.dbname.as_deref().unwrap_or_default()))
            .map_err(|e| CliError::usage(format!("invalid --dbname: {}", chain(&e))))?;
        config.replication = Replication::Database;
        Ok(config)
    }

    /// Opens a `replication=database` connection.
    ///
    /// # Errors
    /// Usage errors as [`config`](Self::config); connection failures.
    pub(crate) async fn connect(&self) -> Result<Connection, CliError> {
        let config = self.config()?;
        let backend = self.backend()?;
        Connection::connect_with(&config, backend)
            .await
            .map_err(|e| CliError::failed("could not connect", &e))
    }
}

/// Like libpq's `dbname`: a value that is not a connection string is a database name.
fn conninfo_text(dbname: &str) -> String {
    let text = dbname.trim();
    if text.is_empty()
        || text.contains('=')
        || text.starts_with("postgres://")
        || text.starts_with("postgresql://")
    {
        text.to_owned()
    } else {
        format!(
            "dbname='{}'",
            text.replace('\\', "\\\\").replace('\'', "\\'")
        )
    }
}

/// `SELECT pg_replication_slot_advance('slot', 'lsn')`, the statement that confirms a
/// position for a slot no walsender is using.
///
/// # Errors
/// A name with a NUL byte.
pub(crate) fn advance_statement(slot: &str, lsn: &str) -> Result<String, CliError> {
    let slot = quote_literal("slot", slot).map_err(|e| CliError::usage(chain(&e)))?;
    Ok(format!(
        "SELECT pg_catalog.pg_replication_slot_advance({slot}, '{lsn}'::pg_lsn)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dbname: &str) -> ConnectionArgs {
        ConnectionArgs {
            dbname: Some(dbname.to_owned()),
            backend: BackendArg::Native,
        }
    }

    #[test]
    fn dbname_accepts_names_conninfo_and_uris() {
        assert_eq!(conninfo_text("my 'db'"), r"dbname='my \'db\''");
        let plain = args(&format!("user=u {}", conninfo_text("my 'db'")))
            .config()
            .unwrap();
        assert_eq!(plain.replication, Replication::Database);
        assert_eq!(plain.dbname, "my 'db'");
        let kv = args("host=h port=5433 user=u dbname=app").config().unwrap();
        assert_eq!(kv.dbname, "app");
        let uri = args("postgresql://u@h:5433/app").config().unwrap();
        assert_eq!(uri.dbname, "app");
        let bad = args("host=h user=u port=notaport").config().unwrap_err();
        assert!(bad.to_string().starts_with("invalid --dbname"), "{bad}");
    }
}
