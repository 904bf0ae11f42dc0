//! Server errors inside libpq's connection-failure messages.
//!
//! libpq reports a failed connection only as text. With verbose errors it formats a server
//! error as `SEVERITY:  SQLSTATE: message`, optionally followed by `DETAIL:  `, `HINT:  ` and
//! `LOCATION:  ` lines, often after a prefix such as `connection to server at "…" failed: `.
//! Recovering the fields keeps SQLSTATE-based decisions (wrong password, no pg_hba entry)
//! identical on both backends.

use crate::message::DbError;

const SEVERITIES: [&str; 3] = ["FATAL", "ERROR", "PANIC"];

/// The last server error in `message`, if it has one.
pub(crate) fn server_error(message: &str) -> Option<DbError> {
    let (start, severity) = SEVERITIES
        .iter()
        .filter_map(|severity| {
            message
                .rfind(&format!("{severity}:  "))
                .map(|at| (at, *severity))
        })
        .max_by_key(|(at, _)| *at)?;
    let rest = &message[start + severity.len() + 3..];
    let (code, rest) = rest.split_at_checked(5)?;
    if !code
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return None;
    }
    let rest = rest.strip_prefix(": ")?;
    let mut lines = rest.lines();
    let text = lines.next()?.trim_end();
    let mut fields: Vec<(u8, &str)> = vec![
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ];
    for line in lines {
        if let Some(detail) = line.strip_prefix("DETAIL:  ") {
            fields.push((b'D', detail.trim_end()));
        } else if let Some(hint) = line.strip_prefix("HINT:  ") {
            fields.push((b'H', hint.trim_end()));
        }
    }
    let mut body = Vec::new();
    for (code, value) in fields {
        body.push(code);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    DbError::parse(b'E', &body).ok()
}

#[cfg(test)]
mod tests {
    use super::server_error;
    use crate::SqlState;

    #[test]
    fn finds_the_server_error_after_libpqs_prefix() {
        let message = "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  28P01: password authentication failed for user \"u\"\nLOCATION:  auth_failed, auth.c:326";
        let error = server_error(message).expect("a server error");
        assert_eq!(error.code, SqlState::INVALID_PASSWORD);
        assert_eq!(
            error.message,
            "password authentication failed for user \"u\""
        );
    }

    #[test]
    fn keeps_detail_and_ignores_plain_client_errors() {
        let error = server_error("FATAL:  28000: no pg_hba.conf entry\nDETAIL:  why\n").unwrap();
        assert_eq!(error.detail.as_deref(), Some("why"));
        assert!(server_error("could not connect to server: Connection refused").is_none());
        assert!(server_error("FATAL:  short").is_none());
    }
}
