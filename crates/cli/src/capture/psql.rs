//! Captures of `SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes(…)` (or
//! `…_get_binary_changes`) saved by psql.
//!
//! Accepted, one row per line:
//! - CSV: `\copy (SELECT lsn, xid, data FROM …) TO 'file' CSV [HEADER]`;
//! - tab-separated: `\copy (…) TO 'file'` (COPY text format, bytea written as `\\x…`), or
//!   `psql -At -F $'\t' -c 'SELECT …'`;
//! - psql's unaligned default `|` separator (`psql -A`), with its header and `(N rows)` footer.
//!
//! An empty `xid` (SQL NULL: a non-transactional logical message) means "no xid".
//! `data` must be bytea in hex output format (`\x…`, PostgreSQL's default `bytea_output`).
//! Empty lines, a `lsn,xid,data` header and a `(N rows)` footer are skipped; any other line
//! that does not parse is an error naming its line number.

use std::io::BufRead;

use bytes::Bytes;
use pg_walstream_codec::Lsn;

/// One row of the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PsqlRow {
    /// Line number (1-based) in the file.
    pub(crate) line: usize,
    /// The `lsn` column.
    pub(crate) lsn: Lsn,
    /// The `xid` column; `None` when it is empty (SQL NULL), as it is for a
    /// non-transactional logical message, which belongs to no transaction.
    pub(crate) xid: Option<u32>,
    /// The `data` column: one pgoutput message.
    pub(crate) data: Bytes,
}

/// A line that is not a row of the capture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PsqlError {
    /// The line does not have the three columns lsn, xid, data.
    #[error("line {line}: {reason}")]
    BadLine {
        /// Line number (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Reading failed.
    #[error("reading the capture failed")]
    Io(#[from] std::io::Error),
}

fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

fn is_footer(line: &str) -> bool {
    let Some(inner) = line.strip_prefix('(').and_then(|l| l.strip_suffix(')')) else {
        return false;
    };
    let mut parts = inner.split(' ');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(n), Some("row" | "rows"), None) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    )
}

/// Parses one line; `Ok(None)` for lines that are skipped.
fn parse_line(number: usize, line: &str) -> Result<Option<PsqlRow>, PsqlError> {
    let bad = |reason: String| PsqlError::BadLine {
        line: number,
        reason,
    };
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || is_footer(line.trim()) {
        return Ok(None);
    }
    let separator = ['\t', ',', '|']
        .into_iter()
        .find(|s| line.contains(*s))
        .ok_or_else(|| bad("expected three columns lsn, xid, data".to_owned()))?;
    let fields: Vec<&str> = line.split(separator).map(unquote).collect();
    let [lsn, xid, data] = fields.as_slice() else {
        return Err(bad(format!(
            "expected three columns lsn, xid, data; found {}",
            fields.len()
        )));
    };
    if lsn.eq_ignore_ascii_case("lsn")
        && xid.eq_ignore_ascii_case("xid")
        && data.eq_ignore_ascii_case("data")
    {
        return Ok(None);
    }
    let lsn: Lsn = lsn
        .parse()
        .map_err(|_| bad(format!("invalid LSN {lsn:?} in the first column")))?;
    let xid: Option<u32> = if xid.is_empty() {
        None
    } else {
        Some(
            xid.parse()
                .map_err(|_| bad(format!("invalid xid {xid:?} in the second column")))?,
        )
    };
    let hex = data
        .strip_prefix("\\\\x")
        .or_else(|| data.strip_prefix("\\x"))
        .ok_or_else(|| {
            bad("the data column is not bytea in hex format (expected \\x…)".to_owned())
        })?;
    let bytes = parse_hex(hex).ok_or_else(|| {
        bad("the data column has an odd number of or invalid hex digits".to_owned())
    })?;
    Ok(Some(PsqlRow {
        line: number,
        lsn,
        xid,
        data: Bytes::from(bytes),
    }))
}

/// Reads every row of a capture.
///
/// # Errors
/// [`PsqlError::BadLine`] for the first line that does not parse; I/O errors.
pub(crate) fn read_rows(input: impl BufRead) -> Result<Vec<PsqlRow>, PsqlError> {
    let mut rows = Vec::new();
    for (index, line) in input.lines().enumerate() {
        if let Some(row) = parse_line(index + 1, &line?)? {
            rows.push(row);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Result<Vec<PsqlRow>, PsqlError> {
        read_rows(text.as_bytes())
    }

    #[test]
    fn csv_tsv_copy_text_and_unaligned_forms_parse_alike() {
        let forms = [
            "lsn,xid,data\n0/16B3748,744,\\x42ff\n\"0/16B37A0\",745,\"\\x43\"\n",
            "0/16B3748\t744\t\\x42FF\n0/16B37A0\t745\t\\x43\n",
            "0/16B3748\t744\t\\\\x42ff\n0/16B37A0\t745\t\\\\x43\n",
            "lsn|xid|data\n0/16B3748|744|\\x42ff\n0/16B37A0|745|\\x43\n(2 rows)\n\n",
        ];
        for form in forms {
            let parsed = rows(form).unwrap();
            assert_eq!(parsed.len(), 2, "{form:?}");
            assert_eq!(parsed[0].lsn, Lsn(0x16B_3748), "{form:?}");
            assert_eq!(parsed[0].xid, Some(744));
            assert_eq!(&parsed[0].data[..], b"\x42\xff");
            assert_eq!(&parsed[1].data[..], b"\x43");
        }
    }

    #[test]
    fn an_empty_xid_is_no_xid() {
        // What psql prints for the NULL xid of a non-transactional logical message.
        let forms = [
            "0/16B3748,,\\x4d\n",
            "\"0/16B3748\",\"\",\"\\x4d\"\n",
            "0/16B3748\t\t\\x4d\n",
            "lsn|xid|data\n0/16B3748||\\x4d\n(1 row)\n",
        ];
        for form in forms {
            let parsed = rows(form).unwrap_or_else(|e| panic!("{form:?}: {e}"));
            assert_eq!(parsed.len(), 1, "{form:?}");
            assert_eq!(parsed[0].xid, None, "{form:?}");
            assert_eq!(&parsed[0].data[..], b"\x4d");
        }
        // Text is still not an xid.
        assert!(rows("0/1,x,\\x42\n").is_err());
    }

    #[test]
    fn bad_lines_name_their_number() {
        let cases = [
            ("0/1,1,\\x42\nnonsense\n", 2, "three columns"),
            ("0/1,1,\\x4\n", 1, "hex"),
            ("0/1,1,\\xzz\n", 1, "hex"),
            ("0/1,x,\\x42\n", 1, "xid"),
            ("zz,1,\\x42\n", 1, "LSN"),
            ("0/1,1,42\n", 1, "bytea"),
            ("0/1,1,\\x42,7\n", 1, "found 4"),
        ];
        for (text, line, needle) in cases {
            let error = rows(text).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, PsqlError::BadLine { line: l, .. } if l == line),
                "{text:?}: {message}"
            );
            assert!(message.contains(needle), "{text:?}: {message}");
        }
        assert!(is_footer("(1 row)"));
        assert!(!is_footer("(x rows)"));
    }
}
