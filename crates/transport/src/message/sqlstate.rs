//! SQLSTATE codes as a typed value.

use core::fmt;

/// A five-character SQLSTATE error code as sent in an ErrorResponse or NoticeResponse.
///
/// Codes the project matches on have named constants; every other well-formed code is kept as
/// is, so a caller can still compare against codes this crate does not name.
///
/// ```
/// use pg_walstream_transport::SqlState;
/// let code = SqlState::from_code("42710").unwrap();
/// assert_eq!(code, SqlState::DUPLICATE_OBJECT);
/// assert_eq!(code.code(), "42710");
/// assert_eq!(code.class(), "42");
/// assert!(SqlState::from_code("4271").is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SqlState([u8; 5]);

macro_rules! sqlstates {
    ($($(#[$doc:meta])* $name:ident = $code:literal;)*) => {
        impl SqlState {
            $($(#[$doc])* pub const $name: SqlState = SqlState(*$code);)*

            /// The constant's name for codes this crate names (e.g. `"OBJECT_IN_USE"`).
            pub fn name(self) -> Option<&'static str> {
                match &self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

sqlstates! {
    /// `00000` successful_completion.
    SUCCESSFUL_COMPLETION = b"00000";
    /// `01000` warning.
    WARNING = b"01000";
    /// `08000` connection_exception.
    CONNECTION_EXCEPTION = b"08000";
    /// `08006` connection_failure.
    CONNECTION_FAILURE = b"08006";
    /// `08P01` protocol_violation.
    PROTOCOL_VIOLATION = b"08P01";
    /// `0A000` feature_not_supported.
    FEATURE_NOT_SUPPORTED = b"0A000";
    /// `22023` invalid_parameter_value.
    INVALID_PARAMETER_VALUE = b"22023";
    /// `22P02` invalid_text_representation (e.g. a bad value in `COPY FROM STDIN`).
    INVALID_TEXT_REPRESENTATION = b"22P02";
    /// `25001` active_sql_transaction.
    ACTIVE_SQL_TRANSACTION = b"25001";
    /// `28000` invalid_authorization_specification (also "no pg_hba.conf entry").
    INVALID_AUTHORIZATION_SPECIFICATION = b"28000";
    /// `28P01` invalid_password (password authentication failed).
    INVALID_PASSWORD = b"28P01";
    /// `3D000` invalid_catalog_name (database does not exist).
    INVALID_CATALOG_NAME = b"3D000";
    /// `42501` insufficient_privilege.
    INSUFFICIENT_PRIVILEGE = b"42501";
    /// `42601` syntax_error.
    SYNTAX_ERROR = b"42601";
    /// `42704` undefined_object (e.g. replication slot does not exist).
    UNDEFINED_OBJECT = b"42704";
    /// `42710` duplicate_object (e.g. replication slot already exists).
    DUPLICATE_OBJECT = b"42710";
    /// `42P01` undefined_table.
    UNDEFINED_TABLE = b"42P01";
    /// `53300` too_many_connections.
    TOO_MANY_CONNECTIONS = b"53300";
    /// `53400` configuration_limit_exceeded (e.g. all replication slots are in use).
    CONFIGURATION_LIMIT_EXCEEDED = b"53400";
    /// `55000` object_not_in_prerequisite_state (e.g. wal_level too low).
    OBJECT_NOT_IN_PREREQUISITE_STATE = b"55000";
    /// `55006` object_in_use (e.g. replication slot is active for another PID).
    OBJECT_IN_USE = b"55006";
    /// `57014` query_canceled.
    QUERY_CANCELED = b"57014";
    /// `57P01` admin_shutdown.
    ADMIN_SHUTDOWN = b"57P01";
    /// `57P02` crash_shutdown.
    CRASH_SHUTDOWN = b"57P02";
    /// `57P03` cannot_connect_now (server starting up or shutting down).
    CANNOT_CONNECT_NOW = b"57P03";
    /// `58P01` undefined_file.
    UNDEFINED_FILE = b"58P01";
    /// `XX000` internal_error.
    INTERNAL_ERROR = b"XX000";
}

impl SqlState {
    /// Parses a code: exactly five ASCII digits or upper-case letters.
    ///
    /// Returns `None` for anything else; unknown but well-formed codes are accepted.
    pub fn from_code(code: &str) -> Option<Self> {
        let bytes: [u8; 5] = code.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            .then_some(SqlState(bytes))
    }

    /// The five-character code.
    pub fn code(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `from_code`).
        core::str::from_utf8(&self.0).unwrap_or("?????")
    }

    /// The two-character class (e.g. `"57"` for operator intervention).
    pub fn class(&self) -> &str {
        self.code().get(..2).unwrap_or("??")
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "SqlState({name})"),
            None => write!(f, "SqlState({})", self.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SqlState;

    #[test]
    fn named_and_unknown_codes() {
        assert_eq!(SqlState::from_code("55006"), Some(SqlState::OBJECT_IN_USE));
        assert_eq!(SqlState::OBJECT_IN_USE.name(), Some("OBJECT_IN_USE"));
        let unknown = SqlState::from_code("ZZ999").expect("well-formed");
        assert_eq!(unknown.name(), None);
        assert_eq!(unknown.to_string(), "ZZ999");
        assert_eq!(format!("{unknown:?}"), "SqlState(ZZ999)");
        assert_eq!(
            format!("{:?}", SqlState::ADMIN_SHUTDOWN),
            "SqlState(ADMIN_SHUTDOWN)"
        );
    }

    #[test]
    fn malformed_codes_rejected() {
        for bad in ["", "4271", "427100", "4271a", "42 10", "é4271"] {
            assert_eq!(SqlState::from_code(bad), None, "{bad:?}");
        }
    }
}
