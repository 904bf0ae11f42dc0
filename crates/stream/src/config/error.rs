//! What can be wrong with a stream's configuration.

use pg_walstream_slot::ServerVersion;
use pg_walstream_transport::Backend;
use pg_walstream_transport::conninfo::ConnInfoError;

/// A configuration that cannot work; detected before connecting (or, for version-dependent
/// options, before anything is sent to the server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No slot name was given or it is not a valid slot name.
    #[error("invalid slot name")]
    SlotName(#[source] pg_walstream_slot::SlotError),
    /// No publication was given.
    #[error("at least one publication name is required")]
    NoPublication,
    /// A publication name cannot be sent (empty, NUL byte, longer than 63 bytes).
    #[error("invalid publication name {name:?}: {reason}")]
    PublicationName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An option needs a newer server.
    #[error("{feature} needs PostgreSQL {needs}; server is {server}")]
    Unsupported {
        /// The option.
        feature: &'static str,
        /// First major version that has it.
        needs: u32,
        /// The server's version.
        server: ServerVersion,
    },
    /// The requested protocol version is newer than the server supports.
    #[error("pgoutput protocol version {requested} needs PostgreSQL {needs}; server is {server}")]
    ProtocolTooNew {
        /// Requested version.
        requested: u32,
        /// First major version that supports it.
        needs: u32,
        /// The server's version.
        server: ServerVersion,
    },
    /// An option needs a newer protocol version than the one requested.
    #[error(
        "{feature} needs pgoutput protocol version {needs}, but version {requested} was requested"
    )]
    ProtocolTooOld {
        /// The option.
        feature: &'static str,
        /// The version it needs.
        needs: u32,
        /// The requested version.
        requested: u32,
    },
    /// A value out of range (zero status interval, zero channel capacity, ...).
    #[error("invalid {what}: {reason}")]
    InvalidValue {
        /// Which setting.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The connection string does not parse.
    #[error("invalid connection string")]
    ConnInfo(#[source] ConnInfoError),
    /// A connection is required but none was configured.
    #[error("no connection configured (use conninfo or connection_config)")]
    NoConnection,
    /// The chosen transport backend is not compiled in (`Backend::Libpq` needs the `libpq`
    /// cargo feature).
    ///
    /// ```
    /// use pg_walstream_stream::{ConfigError, LogicalConfig};
    /// use pg_walstream_transport::Backend;
    /// let built = LogicalConfig::builder()
    ///     .conninfo("host=localhost user=repl")
    ///     .slot("s")
    ///     .publication("p")
    ///     .backend(Backend::Libpq)
    ///     .build();
    /// assert_eq!(
    ///     matches!(built, Err(ConfigError::BackendUnavailable { .. })),
    ///     !Backend::Libpq.is_available()
    /// );
    /// ```
    #[error("the {backend:?} backend is not available in this build (enable the `libpq` feature)")]
    BackendUnavailable {
        /// The backend.
        backend: Backend,
    },
}
