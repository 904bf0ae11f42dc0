//! libpq-compatible connection strings.
//!
//! Two syntaxes, as libpq:
//! - URIs: `postgres[ql]://[user[:password]@][host][:port][,host[:port]...][/dbname][?key=value&...]`
//!   with percent-decoding, `[v6::addr]` brackets, several hosts, and any key as a query
//!   parameter (`ssl=true` means `sslmode=require`);
//! - `key = value` lists separated by whitespace; values may be `'single quoted'`; a
//!   backslash escapes the next character.
//!
//! Resolution order per setting: the string (later duplicates win) → the environment variable
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`,
//! `PGSSLCERT`, `PGSSLKEY`, `PGSSLNEGOTIATION`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`,
//! `PGPASSFILE`, `PGCHANNELBINDING`, `PGREQUIREAUTH`, `PGHOSTADDR`, `PGOPTIONS`) → libpq's
//! default. An explicitly empty value (`host=''`) blocks the environment variable and means
//! "the default". Then, if no password was given, the password file (`passfile`,
//! `PGPASSFILE`, `~/.pgpass`) is searched per host.
//!
//! Defaults: host = Unix socket in [`DEFAULT_SOCKET_DIR`], port [`DEFAULT_PORT`], user =
//! the OS user (`USER`, then `LOGNAME`), dbname = user, sslmode `prefer` (`verify-full` with
//! `sslrootcert=system`), channel_binding `prefer`, keepalives on, and the certificate files
//! under `~/.postgresql/` (see [`SslRootCert::Default`]).
//!
//! Unknown keys are errors that suggest the closest known key; libpq keys pg-walstream does
//! not implement (`target_session_attrs`, `sslcrl`, `service`, ...) are errors that say so,
//! and so are their environment variables (`PGSSLCRL`, `PGCLIENTENCODING=LATIN1`, ...) unless
//! the value means what pg-walstream does anyway (`PGCLIENTENCODING=UTF8`). `PGDATESTYLE`,
//! `PGTZ` and `PGGEQO`, which libpq sends as session settings, become
//! [`Config::session_settings`].
//!
//! ```
//! use pg_walstream_transport::conninfo::{Config, SslMode};
//! let env = [("USER", "alice"), ("PGSSLMODE", "require"), ("PGPORT", "6543")];
//! let config = Config::parse_with_env("host=db.internal port=5433 application_name='my app'", &env)?;
//! assert_eq!(config.user, "alice");            // from USER
//! assert_eq!(config.hosts[0].port, 5433);      // explicit beats PGPORT
//! assert_eq!(config.ssl_mode, SslMode::Require); // from PGSSLMODE
//! assert_eq!(config.application_name.as_deref(), Some("my app"));
//!
//! let err = Config::parse_with_env("hots=db", &env).unwrap_err();
//! assert_eq!(err.to_string(), "invalid connection option \"hots\" (did you mean \"host\"?)");
//! # Ok::<(), pg_walstream_transport::conninfo::ConnInfoError>(())
//! ```

mod config;
mod env;
mod error;
mod keys;
pub(crate) mod libpq_env;
mod parse;
mod pgpass;
mod types;

pub use config::Config;
pub use env::{EmptyEnvironment, Environment, ProcessEnvironment};
pub use error::{ConnInfoError, Suggestion, ValueSource};
pub use pgpass::ConfigWarning;
pub use types::{HostConfig, Replication, SslMode, SslNegotiation, SslRootCert, Target};

/// libpq's default port.
pub const DEFAULT_PORT: u16 = 5432;

/// libpq's default Unix-socket directory (upstream builds; Debian's libpq uses
/// `/var/run/postgresql` — pass `host=/var/run/postgresql` there). It is also the directory
/// that the password file's `localhost` matches.
pub const DEFAULT_SOCKET_DIR: &str = "/tmp";

#[cfg(test)]
mod tests;
