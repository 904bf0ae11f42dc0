//! ErrorResponse / NoticeResponse bodies as typed values.

use core::fmt;

use super::{MessageError, SqlState};

/// How serious a server-reported condition is (the non-localized `V` field, or `S`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Severity {
    /// `ERROR`: the current command failed.
    Error,
    /// `FATAL`: the session is over.
    Fatal,
    /// `PANIC`: the server is restarting.
    Panic,
    /// `WARNING` (notice).
    Warning,
    /// `NOTICE` (notice).
    Notice,
    /// `DEBUG` (notice).
    Debug,
    /// `INFO` (notice).
    Info,
    /// `LOG` (notice).
    Log,
    /// A severity this crate does not know (kept verbatim).
    Other(String),
}

impl Severity {
    fn parse(text: &str) -> Self {
        match text {
            "ERROR" => Severity::Error,
            "FATAL" => Severity::Fatal,
            "PANIC" => Severity::Panic,
            "WARNING" => Severity::Warning,
            "NOTICE" => Severity::Notice,
            "DEBUG" => Severity::Debug,
            "INFO" => Severity::Info,
            "LOG" => Severity::Log,
            other => Severity::Other(other.to_owned()),
        }
    }

    /// The severity as PostgreSQL spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Panic => "PANIC",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Log => "LOG",
            Severity::Other(s) => s,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error or notice reported by the server, with every field PostgreSQL documents.
///
/// `Display` prints `SEVERITY: message` followed by `DETAIL:` and `HINT:` lines, like psql.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// Severity (`V`, falling back to the localized `S`).
    pub severity: Severity,
    /// The SQLSTATE code (`C`).
    pub code: SqlState,
    /// Primary message (`M`).
    pub message: String,
    /// Optional secondary message (`D`).
    pub detail: Option<String>,
    /// Optional suggestion (`H`).
    pub hint: Option<String>,
    /// 1-based character position in the query string (`P`).
    pub position: Option<u32>,
    /// Position in an internally generated query (`p`).
    pub internal_position: Option<u32>,
    /// The internally generated query (`q`).
    pub internal_query: Option<String>,
    /// Context / call stack (`W`).
    pub where_: Option<String>,
    /// Schema name (`s`).
    pub schema: Option<String>,
    /// Table name (`t`).
    pub table: Option<String>,
    /// Column name (`c`).
    pub column: Option<String>,
    /// Data type name (`d`).
    pub datatype: Option<String>,
    /// Constraint name (`n`).
    pub constraint: Option<String>,
    /// Server source file (`F`).
    pub file: Option<String>,
    /// Server source line (`L`).
    pub line: Option<u32>,
    /// Server source routine (`R`).
    pub routine: Option<String>,
}

impl DbError {
    /// Parses the body (after tag and length) of an ErrorResponse or NoticeResponse.
    ///
    /// # Errors
    /// [`MessageError::Malformed`] when a field is not NUL-terminated, the mandatory
    /// severity/code/message fields are missing, or a code or number is not well formed.
    pub fn parse(tag: u8, mut body: &[u8]) -> Result<Self, MessageError> {
        let malformed = |what| MessageError::Malformed { tag, what };
        let mut severity_localized = None;
        let mut severity = None;
        let mut code = None;
        let mut message = None;
        let mut err = DbError {
            severity: Severity::Error,
            code: SqlState::INTERNAL_ERROR,
            message: String::new(),
            detail: None,
            hint: None,
            position: None,
            internal_position: None,
            internal_query: None,
            where_: None,
            schema: None,
            table: None,
            column: None,
            datatype: None,
            constraint: None,
            file: None,
            line: None,
            routine: None,
        };
        loop {
            let Some((&field, rest)) = body.split_first() else {
                return Err(malformed("missing terminating NUL"));
            };
            if field == 0 {
                if !rest.is_empty() {
                    return Err(malformed("bytes after terminating NUL"));
                }
                break;
            }
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(malformed("field value not NUL-terminated"))?;
            let value = String::from_utf8_lossy(&rest[..end]).into_owned();
            body = &rest[end + 1..];
            let number = |v: &str| v.parse::<u32>().map_err(|_| malformed("non-numeric field"));
            match field {
                b'S' => severity_localized = Some(value),
                b'V' => severity = Some(value),
                b'C' => {
                    code = Some(SqlState::from_code(&value).ok_or(malformed("bad SQLSTATE"))?);
                }
                b'M' => message = Some(value),
                b'D' => err.detail = Some(value),
                b'H' => err.hint = Some(value),
                b'P' => err.position = Some(number(&value)?),
                b'p' => err.internal_position = Some(number(&value)?),
                b'q' => err.internal_query = Some(value),
                b'W' => err.where_ = Some(value),
                b's' => err.schema = Some(value),
                b't' => err.table = Some(value),
                b'c' => err.column = Some(value),
                b'd' => err.datatype = Some(value),
                b'n' => err.constraint = Some(value),
                b'F' => err.file = Some(value),
                b'L' => err.line = Some(number(&value)?),
                b'R' => err.routine = Some(value),
                // The protocol says unrecognized field types must be ignored.
                _ => {}
            }
        }
        err.severity = Severity::parse(
            &severity
                .or(severity_localized)
                .ok_or(malformed("missing severity"))?,
        );
        err.code = code.ok_or(malformed("missing SQLSTATE"))?;
        err.message = message.ok_or(malformed("missing message"))?;
        Ok(err)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, "\nDETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nHINT: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Body of a real ErrorResponse (PG 17, `CREATE_REPLICATION_SLOT` on an existing slot).
    const DUPLICATE_SLOT: &[u8] = b"SERROR\0VERROR\0C42710\0Mreplication slot \"s\" already exists\0Fslot.c\0L375\0RReplicationSlotCreate\0\0";

    #[test]
    fn parses_real_error() {
        let e = DbError::parse(b'E', DUPLICATE_SLOT).expect("parses");
        assert_eq!(e.severity, Severity::Error);
        assert_eq!(e.code, SqlState::DUPLICATE_OBJECT);
        assert_eq!(e.message, "replication slot \"s\" already exists");
        assert_eq!(e.file.as_deref(), Some("slot.c"));
        assert_eq!(e.line, Some(375));
        assert_eq!(e.routine.as_deref(), Some("ReplicationSlotCreate"));
        assert_eq!(
            e.to_string(),
            "ERROR: replication slot \"s\" already exists"
        );
    }

    #[test]
    fn display_with_detail_and_hint_and_position() {
        let body =
            b"SFEHLER\0VERROR\0C42601\0Msyntax error\0Dsome detail\0Hsome hint\0P7\0Zfuture\0\0";
        let e = DbError::parse(b'E', body).expect("parses");
        assert_eq!(e.position, Some(7));
        assert_eq!(
            e.to_string(),
            "ERROR: syntax error\nDETAIL: some detail\nHINT: some hint"
        );
    }

    #[test]
    fn localized_severity_used_without_v() {
        let e = DbError::parse(b'N', b"SNOTICE\0C00000\0Mhello\0\0").expect("parses");
        assert_eq!(e.severity, Severity::Notice);
        let other = DbError::parse(b'N', b"SHINWEIS\0C00000\0Mhello\0\0").expect("parses");
        assert_eq!(other.severity, Severity::Other("HINWEIS".into()));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"SERROR",
            b"SERROR\0C42710\0Mmsg\0",
            b"SERROR\0C42710\0Mmsg\0\0x",
            b"SERROR\0Cxx\0Mmsg\0\0",
            b"SERROR\0Mmsg\0\0",
            b"C42710\0Mmsg\0\0",
            b"SERROR\0C42710\0\0",
            b"SERROR\0C42710\0Mm\0Pabc\0\0",
        ];
        for case in cases {
            assert!(
                matches!(
                    DbError::parse(b'E', case),
                    Err(MessageError::Malformed { tag: b'E', .. })
                ),
                "{case:?}"
            );
        }
    }
}
