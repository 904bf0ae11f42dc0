//! Errors of connection-string parsing and resolution.

use std::fmt;

use pg_walstream_auth::AuthError;

/// A suggestion for a mistyped key, shown as `(did you mean "…"?)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suggestion(pub Option<&'static str>);

impl fmt::Display for Suggestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(f, " (did you mean \"{key}\"?)"),
            None => Ok(()),
        }
    }
}

/// Where a bad value came from, shown as ` (from PGSSLMODE)` for environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSource(pub Option<&'static str>);

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(var) => write!(f, " (from {var})"),
            None => Ok(()),
        }
    }
}

/// Why a connection string (or the environment) could not be turned into a
/// [`Config`](super::Config). Messages name the offending key; none contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInfoError {
    /// `key=value` syntax: a key without `=`.
    #[error("missing \"=\" after \"{key}\" at byte {position} of the connection string")]
    MissingEquals {
        /// The key as read.
        key: String,
        /// Byte offset where the key starts.
        position: usize,
    },
    /// `key=value` syntax: a quoted value without its closing quote.
    #[error("unterminated quoted value for \"{key}\" in the connection string")]
    UnterminatedQuote {
        /// The key whose value is unterminated.
        key: String,
    },
    /// A malformed `postgres://` URI.
    #[error("invalid connection URI: {reason}")]
    InvalidUri {
        /// What is wrong.
        reason: &'static str,
    },
    /// A bad `%XX` escape in a URI component.
    #[error("invalid percent-encoding in the URI's {component}: {reason}")]
    InvalidPercentEncoding {
        /// Which component (`host`, `user`, a parameter name, ...).
        component: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key libpq does not know either (probably a typo).
    #[error("invalid connection option \"{key}\"{suggestion}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The closest known key, if one is close.
        suggestion: Suggestion,
    },
    /// An environment variable libpq would apply sets an option pg-walstream does not
    /// implement, to a value that means something else than what pg-walstream does.
    #[error(
        "environment variable {var}=\"{value}\" sets {key}, which pg-walstream does not support; accepted: {accepted}. Unset it"
    )]
    UnsupportedEnvironment {
        /// The variable.
        var: &'static str,
        /// The libpq option it sets.
        key: &'static str,
        /// Its value (never a password: no password variable is checked here).
        value: String,
        /// What would be accepted.
        accepted: &'static str,
    },
    /// A key libpq knows but pg-walstream does not implement.
    #[error("connection option \"{key}\" is not supported by pg-walstream")]
    UnsupportedKey {
        /// The key.
        key: String,
    },
    /// A value that does not parse for its key.
    #[error("invalid {key} value \"{value}\"{source_var}: expected {expected}")]
    InvalidValue {
        /// The key the value is for.
        key: &'static str,
        /// The value as written (never a password: passwords are not validated).
        value: String,
        /// What would be valid.
        expected: &'static str,
        /// The environment variable it came from, if not from the connection string.
        source_var: ValueSource,
    },
    /// `require_auth` failed to parse.
    #[error("invalid require_auth value")]
    RequireAuth(#[source] AuthError),
    /// More than one port but not one per host.
    #[error("could not match {ports} port numbers to {hosts} hosts")]
    PortCountMismatch {
        /// Number of ports given.
        ports: usize,
        /// Number of hosts.
        hosts: usize,
    },
    /// `host` and `hostaddr` lists of different lengths.
    #[error("could not match {hosts} host names to {hostaddrs} hostaddr values")]
    HostaddrCountMismatch {
        /// Number of host names.
        hosts: usize,
        /// Number of hostaddr values.
        hostaddrs: usize,
    },
    /// An sslmode too weak for another setting (`sslrootcert=system`, `sslnegotiation=direct`).
    #[error("weak sslmode \"{sslmode}\" may not be used with {setting} (use {use_instead})")]
    WeakSslMode {
        /// The sslmode in effect.
        sslmode: &'static str,
        /// The setting that needs a stronger one.
        setting: &'static str,
        /// What to use.
        use_instead: &'static str,
    },
    /// No `user` given and none could be found in the environment (`USER`, `LOGNAME`).
    #[error("could not determine the user name: set user= or PGUSER")]
    NoUser,
}
