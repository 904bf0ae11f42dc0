//! The resolved configuration: explicit settings over environment variables over libpq's
//! defaults, plus the password file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use pg_walstream_auth::{ChannelBindingMode, DEFAULT_MAX_SCRAM_ITERATIONS, Password, RequireAuth};

use super::keys::{KEYS, Key};
use super::libpq_env;
use super::parse::parse_conninfo;
use super::pgpass::{PassfileQuery, find_password, read_passfile};
use super::{
    ConfigWarning, ConnInfoError, DEFAULT_PORT, DEFAULT_SOCKET_DIR, Environment, HostConfig,
    ProcessEnvironment, Replication, SslMode, SslNegotiation, SslRootCert, Target, ValueSource,
};

/// A connection configuration, resolved like libpq resolves one.
///
/// Build it with [`Config::parse`] (process environment) or [`Config::parse_with_env`].
/// `Debug` and `Display` never show the password.
///
/// ```
/// use pg_walstream_transport::conninfo::{Config, Replication, SslMode, Target};
/// let env = [("USER", "alice")];
/// let config = Config::parse_with_env(
///     "postgres://bob:s3cret@[::1]:5433,db2.example/app?replication=database&sslmode=require",
///     &env,
/// )?;
/// assert_eq!(config.user, "bob");
/// assert_eq!(config.dbname, "app");
/// assert_eq!(config.replication, Replication::Database);
/// assert_eq!(config.ssl_mode, SslMode::Require);
/// assert_eq!(config.hosts.len(), 2);
/// assert_eq!(config.hosts[0].target, Target::Tcp { host: "::1".into(), hostaddr: None });
/// assert_eq!((config.hosts[0].port, config.hosts[1].port), (5433, 5432));
/// assert!(!format!("{config} {config:?}").contains("s3cret"));
/// # Ok::<(), pg_walstream_transport::conninfo::ConnInfoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Hosts to try in order (at least one).
    pub hosts: Vec<HostConfig>,
    /// Role name (`user`, `PGUSER`, else the OS user from `USER`/`LOGNAME`).
    pub user: String,
    /// Password from `password` or `PGPASSWORD`. The password file's answer is per host:
    /// see [`Config::password_for`].
    pub password: Option<Password>,
    /// Database (`dbname`, `PGDATABASE`, else the user name).
    pub dbname: String,
    /// `replication`.
    pub replication: Replication,
    /// `sslmode` (default `prefer`; `verify-full` when `sslrootcert=system`).
    pub ssl_mode: SslMode,
    /// `sslrootcert`.
    pub ssl_root_cert: SslRootCert,
    /// Client certificate file: `sslcert`, else `~/.postgresql/postgresql.crt`. As in libpq,
    /// a file that does not exist means "no client certificate".
    pub ssl_cert: Option<PathBuf>,
    /// Client key file: `sslkey`, else `~/.postgresql/postgresql.key`.
    pub ssl_key: Option<PathBuf>,
    /// `sslnegotiation`.
    pub ssl_negotiation: SslNegotiation,
    /// `channel_binding`.
    pub channel_binding: ChannelBindingMode,
    /// `require_auth`.
    pub require_auth: RequireAuth,
    /// `connect_timeout` per host attempt; `None` waits forever (0 or negative). Values of
    /// 1 s are raised to 2 s, as libpq does.
    pub connect_timeout: Option<Duration>,
    /// `keepalives` (default on).
    pub keepalives: bool,
    /// `keepalives_idle`; `None` keeps the system default (unset or 0).
    pub keepalives_idle: Option<Duration>,
    /// `keepalives_interval`; `None` keeps the system default.
    pub keepalives_interval: Option<Duration>,
    /// `keepalives_count`; `None` keeps the system default.
    pub keepalives_count: Option<u32>,
    /// `application_name`, else `fallback_application_name`.
    pub application_name: Option<String>,
    /// `options`: command-line options sent to the server.
    pub options: Option<String>,
    /// The password file consulted (`passfile`, `PGPASSFILE`, else `~/.pgpass`).
    pub passfile: Option<PathBuf>,
    /// Session settings sent in the startup packet, from `PGDATESTYLE`, `PGTZ` and `PGGEQO`
    /// as libpq sends them (`("timezone", "UTC")`, ...; a value of `default` is skipped).
    pub session_settings: Vec<(String, String)>,
    /// The highest SCRAM iteration count accepted from the server (not a libpq setting;
    /// default [`DEFAULT_MAX_SCRAM_ITERATIONS`]). Set it on the parsed configuration to
    /// allow a server with a higher `scram_iterations`. Only the native backend enforces it:
    /// libpq has no such limit.
    pub max_scram_iterations: u32,
    /// The socket's receive buffer (`SO_RCVBUF`) in bytes; `None` (the default) keeps the
    /// operating system's, which Linux tunes automatically. Not a libpq setting: both
    /// backends set it on their socket (the native one before connecting, so the TCP window
    /// scale fits it; libpq's once connected). The kernel may round or cap it
    /// (`net.core.rmem_max`).
    pub recv_buffer_size: Option<usize>,
    /// The most bytes the native backend asks the socket for per read; `None` (the default)
    /// takes whatever its read buffer (64 KiB allocations) has room for. Not a libpq
    /// setting: libpq reads into its own buffer, 8–16 KiB at a time. A logical replication stream sets 16 KiB by
    /// default (`LogicalConfigBuilder::max_read_size` in `pg-walstream-stream`; see
    /// docs/BENCHMARKS.md on the walsender's cost). Values below 1 KiB count as 1 KiB.
    pub max_read_size: Option<usize>,
    /// Problems that were tolerated, e.g. an ignored password file.
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// Parses a connection string (URI or `key=value`) and resolves it against the process
    /// environment and the password file.
    ///
    /// # Errors
    /// Any [`ConnInfoError`]: syntax, unknown or unsupported keys, bad values, host/port
    /// count mismatches, conflicting TLS settings, no user name, environment variables of
    /// unsupported options ([`ConnInfoError::UnsupportedEnvironment`]).
    pub fn parse(conninfo: &str) -> Result<Self, ConnInfoError> {
        Self::parse_with_env(conninfo, &ProcessEnvironment)
    }

    /// As [`Config::parse`], with environment variables from `env`.
    ///
    /// # Errors
    /// As [`Config::parse`].
    pub fn parse_with_env<E: Environment + ?Sized>(
        conninfo: &str,
        env: &E,
    ) -> Result<Self, ConnInfoError> {
        let pairs = parse_conninfo(conninfo)?;
        Self::from_pairs_with_env(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), env)
    }

    /// Resolves settings given as `(key, value)` pairs (later pairs win), like
    /// `PQconnectdbParams`.
    ///
    /// # Errors
    /// As [`Config::parse`].
    pub fn from_pairs_with_env<'a, E: Environment + ?Sized>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        env: &E,
    ) -> Result<Self, ConnInfoError> {
        let mut raw = Raw::default();
        for (key, value) in pairs {
            let (key, value) = resolve_pair(key, value)?;
            raw.0.insert(key, (value, None));
        }
        let sslmode_given = raw.0.contains_key(&Key::SslMode) || env_set(env, "PGSSLMODE");
        for (key, _, var) in KEYS {
            if let Some(var) = var
                && !raw.0.contains_key(key)
                && let Some(value) = env.var(var)
            {
                raw.0.insert(*key, (value, Some(*var)));
            }
        }
        libpq_env::check_unsupported(env)?;
        build(&raw, sslmode_given, env)
    }

    /// The password to use for `host`: the explicit one (or `PGPASSWORD`), else the password
    /// file's.
    pub fn password_for<'a>(&'a self, host: &'a HostConfig) -> Option<&'a Password> {
        self.password.as_ref().or(host.passfile_password.as_ref())
    }
}

impl FromStr for Config {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Validates a key; maps libpq's legacy `requiressl` (`1…` → `sslmode=require`, anything
/// else → `sslmode=prefer`).
pub(crate) fn resolve_pair(key: &str, value: &str) -> Result<(Key, String), ConnInfoError> {
    if key == "requiressl" {
        let mode = if value.starts_with('1') {
            "require"
        } else {
            "prefer"
        };
        return Ok((Key::SslMode, mode.to_owned()));
    }
    Ok((Key::from_name(key)?, value.to_owned()))
}

fn env_set<E: Environment + ?Sized>(env: &E, name: &str) -> bool {
    env.var(name).is_some()
}

/// Settings after explicit values and environment; empty strings mean "default".
#[derive(Default)]
struct Raw(BTreeMap<Key, (String, Option<&'static str>)>);

impl Raw {
    fn get(&self, key: Key) -> Option<&str> {
        self.0
            .get(&key)
            .map(|(value, _)| value.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The environment variable a value came from.
    fn source(&self, key: Key) -> ValueSource {
        ValueSource(self.0.get(&key).and_then(|(_, var)| *var))
    }

    fn parse<T>(
        &self,
        key: Key,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConnInfoError> {
        self.get(key)
            .map(|v| {
                parse(v).ok_or_else(|| ConnInfoError::InvalidValue {
                    key: key.name(),
                    value: v.to_owned(),
                    expected,
                    source_var: self.source(key),
                })
            })
            .transpose()
    }

    fn int(&self, key: Key) -> Result<Option<i64>, ConnInfoError> {
        self.parse(key, "an integer", |v| {
            v.trim_matches(is_c_space).parse::<i64>().ok()
        })
    }

    fn seconds(&self, key: Key) -> Result<Option<Duration>, ConnInfoError> {
        Ok(self
            .int(key)?
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s.unsigned_abs())))
    }

    fn path(&self, key: Key) -> Option<PathBuf> {
        self.get(key).map(PathBuf::from)
    }
}

fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn build<E: Environment + ?Sized>(
    raw: &Raw,
    sslmode_given: bool,
    env: &E,
) -> Result<Config, ConnInfoError> {
    let home = env.var("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let user = match raw.get(Key::User) {
        Some(user) => user.to_owned(),
        None => env
            .var("USER")
            .or_else(|| env.var("LOGNAME"))
            .filter(|u| !u.is_empty())
            .ok_or(ConnInfoError::NoUser)?,
    };
    let dbname = raw.get(Key::Dbname).unwrap_or(&user).to_owned();
    let mut hosts = hosts(raw)?;

    let ssl_root_cert = match raw.get(Key::SslRootCert) {
        Some("system") => SslRootCert::System,
        Some(path) => SslRootCert::File(path.into()),
        None => SslRootCert::Default {
            path: home.as_ref().map(|h| h.join(".postgresql/root.crt")),
        },
    };
    let ssl_mode = match raw.parse(
        Key::SslMode,
        "disable, allow, prefer, require, verify-ca or verify-full",
        SslMode::parse,
    )? {
        Some(mode) => mode,
        None if sslmode_given => SslMode::Prefer,
        None if ssl_root_cert == SslRootCert::System => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if ssl_root_cert == SslRootCert::System && ssl_mode != SslMode::VerifyFull {
        return Err(ConnInfoError::WeakSslMode {
            sslmode: ssl_mode.as_str(),
            setting: "sslrootcert=system",
            use_instead: "\"verify-full\"",
        });
    }
    let ssl_negotiation = raw
        .parse(Key::SslNegotiation, "postgres or direct", |v| match v {
            "postgres" => Some(SslNegotiation::Postgres),
            "direct" => Some(SslNegotiation::Direct),
            _ => None,
        })?
        .unwrap_or_default();
    if ssl_negotiation == SslNegotiation::Direct && !ssl_mode.requires_tls() {
        return Err(ConnInfoError::WeakSslMode {
            sslmode: ssl_mode.as_str(),
            setting: "sslnegotiation=direct",
            use_instead: "\"require\", \"verify-ca\", or \"verify-full\"",
        });
    }

    let password = raw.get(Key::Password).map(Password::from);
    let passfile = raw
        .path(Key::Passfile)
        .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
    let mut warnings = Vec::new();
    if password.is_none()
        && let Some(path) = &passfile
    {
        match read_passfile(path) {
            Ok(Some(contents)) => {
                for host in &mut hosts {
                    let key = passfile_host(host);
                    let query = PassfileQuery {
                        host: &key,
                        port: host.port,
                        dbname: &dbname,
                        user: &user,
                    };
                    host.passfile_password = find_password(&contents, query);
                }
            }
            Ok(None) => {}
            Err(warning) => {
                tracing::warn!("{warning}; ignoring it");
                warnings.push(warning);
            }
        }
    }

    let connect_timeout = raw
        .int(Key::ConnectTimeout)?
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.max(2).unsigned_abs()));
    Ok(Config {
        hosts,
        password,
        dbname,
        replication: raw
            .parse(
                Key::Replication,
                "database, true/on/yes/1 or false/off/no/0",
                Replication::parse,
            )?
            .unwrap_or_default(),
        ssl_mode,
        ssl_root_cert,
        ssl_cert: raw
            .path(Key::SslCertFile)
            .or_else(|| home.as_ref().map(|h| h.join(".postgresql/postgresql.crt"))),
        ssl_key: raw
            .path(Key::SslKeyFile)
            .or_else(|| home.as_ref().map(|h| h.join(".postgresql/postgresql.key"))),
        ssl_negotiation,
        channel_binding: raw
            .parse(Key::ChannelBinding, "disable, prefer or require", |v| {
                v.parse().ok()
            })?
            .unwrap_or_default(),
        require_auth: raw
            .get(Key::RequireAuth)
            .map(RequireAuth::parse)
            .transpose()
            .map_err(ConnInfoError::RequireAuth)?
            .unwrap_or_default(),
        connect_timeout,
        keepalives: raw.int(Key::Keepalives)?.is_none_or(|v| v != 0),
        keepalives_idle: raw.seconds(Key::KeepalivesIdle)?,
        keepalives_interval: raw.seconds(Key::KeepalivesInterval)?,
        keepalives_count: raw
            .int(Key::KeepalivesCount)?
            .filter(|c| *c > 0)
            .map(|c| u32::try_from(c).unwrap_or(u32::MAX)),
        application_name: raw
            .get(Key::ApplicationName)
            .or_else(|| raw.get(Key::FallbackApplicationName))
            .map(str::to_owned),
        options: raw.get(Key::Options).map(str::to_owned),
        passfile,
        session_settings: libpq_env::session_settings(env),
        max_scram_iterations: DEFAULT_MAX_SCRAM_ITERATIONS,
        recv_buffer_size: None,
        max_read_size: None,
        warnings,
        user,
    })
}

/// The `.pgpass` host key: the host name, else the hostaddr.
fn passfile_host(host: &HostConfig) -> String {
    match &host.target {
        Target::Unix { dir } => dir.to_string_lossy().into_owned(),
        Target::Tcp { host, hostaddr } if host.is_empty() => {
            hostaddr.map(|a| a.to_string()).unwrap_or_default()
        }
        Target::Tcp { host, .. } => host.clone(),
    }
}

/// libpq's `connectOptions2` host/hostaddr/port list handling.
fn hosts(raw: &Raw) -> Result<Vec<HostConfig>, ConnInfoError> {
    let names: Option<Vec<&str>> = raw.get(Key::Host).map(|h| h.split(',').collect());
    let addrs: Option<Vec<&str>> = raw.get(Key::Hostaddr).map(|h| h.split(',').collect());
    let count = addrs.as_ref().or(names.as_ref()).map_or(1, Vec::len);
    if let (Some(names), Some(addrs)) = (&names, &addrs)
        && names.len() != addrs.len()
    {
        return Err(ConnInfoError::HostaddrCountMismatch {
            hosts: names.len(),
            hostaddrs: addrs.len(),
        });
    }
    let ports: Vec<u16> = match raw.get(Key::Port) {
        None => vec![DEFAULT_PORT; count],
        Some(list) => {
            let ports = list
                .split(',')
                .map(|port| parse_port(port, raw.source(Key::Port)))
                .collect::<Result<Vec<_>, _>>()?;
            match ports.as_slice() {
                [single] => vec![*single; count],
                _ if ports.len() == count => ports,
                _ => {
                    return Err(ConnInfoError::PortCountMismatch {
                        ports: ports.len(),
                        hosts: count,
                    });
                }
            }
        }
    };
    (0..count)
        .zip(ports)
        .map(|(i, port)| {
            let name = names.as_ref().and_then(|n| n.get(i)).copied().unwrap_or("");
            let addr = addrs.as_ref().and_then(|a| a.get(i)).copied().unwrap_or("");
            let target = if !addr.is_empty() {
                let hostaddr = addr
                    .parse::<IpAddr>()
                    .map_err(|_| ConnInfoError::InvalidValue {
                        key: "hostaddr",
                        value: addr.to_owned(),
                        expected: "a numeric IPv4 or IPv6 address",
                        source_var: raw.source(Key::Hostaddr),
                    })?;
                Target::Tcp {
                    host: name.to_owned(),
                    hostaddr: Some(hostaddr),
                }
            } else if name.is_empty() {
                Target::Unix {
                    dir: DEFAULT_SOCKET_DIR.into(),
                }
            } else if name.starts_with('/') {
                Target::Unix { dir: name.into() }
            } else {
                Target::Tcp {
                    host: name.to_owned(),
                    hostaddr: None,
                }
            };
            Ok(HostConfig {
                target,
                port,
                passfile_password: None,
            })
        })
        .collect()
}

fn parse_port(value: &str, source_var: ValueSource) -> Result<u16, ConnInfoError> {
    if value.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    value
        .trim_matches(is_c_space)
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ConnInfoError::InvalidValue {
            key: "port",
            value: value.to_owned(),
            expected: "a port number between 1 and 65535",
            source_var,
        })
}

impl fmt::Display for Config {
    /// A `key=value` rendering of the effective settings, password redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| match &h.target {
                Target::Unix { dir } => dir.display().to_string(),
                Target::Tcp { host, .. } => host.clone(),
            })
            .collect();
        let ports: Vec<String> = self.hosts.iter().map(|h| h.port.to_string()).collect();
        write!(
            f,
            "host={} port={}",
            quote(&hosts.join(",")),
            ports.join(",")
        )?;
        let addrs: Vec<String> = self
            .hosts
            .iter()
            .map(|h| match &h.target {
                Target::Tcp {
                    hostaddr: Some(a), ..
                } => a.to_string(),
                _ => String::new(),
            })
            .collect();
        if addrs.iter().any(|a| !a.is_empty()) {
            write!(f, " hostaddr={}", addrs.join(","))?;
        }
        write!(
            f,
            " user={} dbname={}",
            quote(&self.user),
            quote(&self.dbname)
        )?;
        if self.password.is_some() {
            f.write_str(" password=<redacted>")?;
        }
        if let Some(value) = self.replication.startup_value() {
            write!(f, " replication={value}")?;
        }
        write!(f, " sslmode={}", self.ssl_mode)?;
        if self.ssl_negotiation == SslNegotiation::Direct {
            f.write_str(" sslnegotiation=direct")?;
        }
        match &self.ssl_root_cert {
            SslRootCert::System => f.write_str(" sslrootcert=system")?,
            SslRootCert::File(path) => {
                write!(f, " sslrootcert={}", quote(&path.to_string_lossy()))?;
            }
            SslRootCert::Default { .. } => {}
        }
        write!(f, " channel_binding={}", self.channel_binding)?;
        if self.require_auth.is_set() {
            write!(f, " require_auth={}", quote(&self.require_auth.to_string()))?;
        }
        if let Some(timeout) = self.connect_timeout {
            write!(f, " connect_timeout={}", timeout.as_secs())?;
        }
        if let Some(name) = &self.application_name {
            write!(f, " application_name={}", quote(name))?;
        }
        if let Some(options) = &self.options {
            write!(f, " options={}", quote(options))?;
        }
        Ok(())
    }
}

/// Quotes a value for `key=value` syntax when needed.
pub(crate) fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| is_c_space(c) || c == '\'' || c == '\\') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}
