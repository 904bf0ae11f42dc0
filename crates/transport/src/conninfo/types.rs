//! The typed values of single settings.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use pg_walstream_auth::Password;

/// `sslmode`, with libpq's meaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS if the server insists.
    Allow,
    /// TLS first; plaintext if the server refuses TLS (libpq's default).
    #[default]
    Prefer,
    /// TLS only. The certificate is verified like `verify-ca` only when a root certificate
    /// file is available (explicit `sslrootcert`, or the default `~/.postgresql/root.crt`
    /// exists); otherwise it is not verified.
    Require,
    /// TLS, and the server certificate must chain to a trusted root.
    VerifyCa,
    /// As `verify-ca`, and the host name must match the certificate.
    VerifyFull,
}

impl SslMode {
    /// The setting's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// Whether the connection must use TLS (`require` and stronger).
    pub const fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `sslnegotiation`: how TLS starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SslNegotiation {
    /// SSLRequest first, then the TLS handshake (every server version).
    #[default]
    Postgres,
    /// TLS handshake straight away with ALPN `postgresql` (PostgreSQL 17+). Only allowed with
    /// `sslmode` `require` or stronger.
    Direct,
}

impl SslNegotiation {
    /// The setting's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Direct => "direct",
        }
    }
}

/// `replication`: what kind of walsender to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Replication {
    /// A normal backend (`false`, `off`, `no`, `0`, or unset).
    #[default]
    Off,
    /// Physical replication walsender (`true`, `on`, `yes`, `1`).
    Physical,
    /// Logical replication walsender connected to `dbname` (`database`).
    Database,
}

impl Replication {
    /// The value to send in the startup message, `None` for [`Replication::Off`] (omit it).
    pub const fn startup_value(self) -> Option<&'static str> {
        match self {
            Self::Off => None,
            Self::Physical => Some("true"),
            Self::Database => Some("database"),
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Self> {
        if value == "database" {
            return Some(Self::Database);
        }
        match value.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Some(Self::Physical),
            "false" | "off" | "no" | "0" => Some(Self::Off),
            _ => None,
        }
    }
}

/// `sslrootcert`: which certificate authorities verify the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SslRootCert {
    /// Not set: libpq uses `~/.postgresql/root.crt` *if it exists*. With `verify-ca` or
    /// `verify-full` a missing file is an error; with `require` an existing file turns on
    /// verification (like `verify-ca`); with `prefer`/`allow` it is used when present.
    /// `path` is `None` when no home directory is known.
    Default {
        /// `$HOME/.postgresql/root.crt`.
        path: Option<PathBuf>,
    },
    /// An explicit PEM file of trusted certificates.
    File(PathBuf),
    /// `system`: the platform's trust store (here: the bundled Mozilla roots of
    /// `webpki-roots`). Forces `sslmode=verify-full` unless sslmode is set explicitly, and
    /// then only `verify-full` is accepted.
    System,
}

/// Where a host's connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// TCP. `host` is the name used for TLS verification and `.pgpass` (may be empty when
    /// only `hostaddr` is given); `hostaddr`, when set, is dialed instead of resolving
    /// `host`.
    Tcp {
        /// Host name or address literal, as configured.
        host: String,
        /// A numeric address that skips name resolution.
        hostaddr: Option<IpAddr>,
    },
    /// A Unix-domain socket in this directory (hosts starting with `/`). TLS is never used
    /// on Unix sockets, whatever `sslmode` says (as libpq).
    Unix {
        /// The socket directory.
        dir: PathBuf,
    },
}

/// One host of the (possibly multi-host) configuration, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostConfig {
    /// Where to connect.
    pub target: Target,
    /// The port (also names the Unix socket file `.s.PGSQL.<port>`).
    pub port: u16,
    /// The password found for this host in the password file, when no password was given
    /// explicitly or in `PGPASSWORD`.
    pub passfile_password: Option<Password>,
}

impl HostConfig {
    /// The socket file for a Unix target: `<dir>/.s.PGSQL.<port>`.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.target {
            Target::Unix { dir } => Some(dir.join(format!(".s.PGSQL.{}", self.port))),
            Target::Tcp { .. } => None,
        }
    }

    /// The host name to verify the server certificate against (`verify-full`) and to send as
    /// SNI: the configured `host` of a TCP target, if not empty.
    pub fn server_name(&self) -> Option<&str> {
        match &self.target {
            Target::Tcp { host, .. } if !host.is_empty() => Some(host),
            _ => None,
        }
    }

    /// Whether this is a Unix-socket target.
    pub fn is_unix(&self) -> bool {
        matches!(self.target, Target::Unix { .. })
    }
}

impl fmt::Display for HostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Unix { dir } => write!(f, "{}/.s.PGSQL.{}", dir.display(), self.port),
            Target::Tcp {
                host,
                hostaddr: Some(addr),
            } if host.is_empty() => {
                write!(f, "{addr}:{}", self.port)
            }
            Target::Tcp {
                host,
                hostaddr: Some(addr),
            } => {
                write!(f, "{host} ({addr}):{}", self.port)
            }
            Target::Tcp {
                host,
                hostaddr: None,
            } => write!(f, "{host}:{}", self.port),
        }
    }
}
