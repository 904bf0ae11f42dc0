//! Scalar renderings: LSNs, timestamps, hex, and row columns.
//!
//! A column is an object with `name`, `type_oid`, `type` (when the name is known) and exactly
//! one value key:
//!
//! - `"text": "..."`: the server's text form (text mode), valid UTF-8;
//! - `"text_hex": "..."`: a text-mode value that is not valid UTF-8 (server encoding other than
//!   UTF-8), as lower-case hex of its bytes;
//! - `"binary_hex": "..."`: a binary-mode value (the type's send/recv format), lower-case hex;
//! - `"null": true`: SQL NULL;
//! - `"unchanged_toast": true`: an unchanged TOASTed value that the server did not send. This
//!   is never rendered as NULL.
//!
//! An old key (`old_key`) lists the key columns only: the server sends the other columns of a
//! key tuple as NULL placeholders, which are not values of the row.

use std::fmt::Write as _;

use pg_walstream_codec::pgoutput::{Column, TupleData};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp};
use serde_json::{Map, Value};

use super::RelationDesc;

/// `X/Y`.
pub(crate) fn lsn(value: Lsn) -> Value {
    Value::from(value.to_string())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `("<key>", text)` when `bytes` is UTF-8, else `("<key>_hex", hex)`.
pub(crate) fn text_or_hex(key: &str, bytes: &[u8]) -> (String, Value) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (key.to_owned(), Value::from(text)),
        Err(_) => (format!("{key}_hex"), Value::from(hex(bytes))),
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 in UTC with microseconds, or `"infinity"` / `"-infinity"`.
pub(crate) fn format_timestamp(value: PgTimestamp) -> String {
    if value == PgTimestamp::INFINITY {
        return "infinity".to_owned();
    }
    if value == PgTimestamp::NEG_INFINITY {
        return "-infinity".to_owned();
    }
    let Some(micros) = value.to_unix_micros() else {
        // Unreachable for finite values within i64 after the epoch shift; keep the raw value.
        return format!("pg:{}", value.0);
    };
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// See [`format_timestamp`].
pub(crate) fn timestamp(value: PgTimestamp) -> Value {
    Value::from(format_timestamp(value))
}

/// One column object (see the module docs).
fn column(name: &str, type_oid: Oid, type_name: Option<&str>, value: Column<'_>) -> Value {
    let mut map = Map::new();
    map.insert("name".to_owned(), Value::from(name));
    map.insert("type_oid".to_owned(), Value::from(type_oid.0));
    if let Some(type_name) = type_name {
        map.insert("type".to_owned(), Value::from(type_name));
    }
    match value {
        Column::Text(bytes) => {
            let (key, value) = text_or_hex("text", bytes);
            map.insert(key, value);
        }
        Column::Binary(bytes) => {
            map.insert("binary_hex".to_owned(), Value::from(hex(bytes)));
        }
        Column::Null => {
            map.insert("null".to_owned(), Value::Bool(true));
        }
        Column::UnchangedToast => {
            map.insert("unchanged_toast".to_owned(), Value::Bool(true));
        }
    }
    Value::Object(map)
}

/// The columns of `tuple` named after `relation` (the caller checked the column count),
/// those whose index `include` accepts.
pub(crate) fn render_tuple<'r>(
    relation: &RelationDesc,
    tuple: &TupleData<'_>,
    include: impl Fn(usize) -> bool,
    type_name: impl Fn(Oid) -> Option<&'r str>,
) -> Value {
    let columns = tuple
        .columns()
        .zip(&relation.columns)
        .enumerate()
        .filter(|(i, _)| include(*i))
        .map(|(_, (value, (name, oid)))| column(name, *oid, type_name(*oid), value))
        .collect();
    Value::Array(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(
            format_timestamp(PgTimestamp(0)),
            "2000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            format_timestamp(PgTimestamp(-1)),
            "1999-12-31T23:59:59.999999Z"
        );
        // 2024-02-29T12:34:56.789012Z, a leap day.
        let unix = 1_709_210_096_789_012_i64;
        let t = PgTimestamp::from_unix_micros(unix).unwrap();
        assert_eq!(format_timestamp(t), "2024-02-29T12:34:56.789012Z");
        assert_eq!(format_timestamp(PgTimestamp::INFINITY), "infinity");
        assert_eq!(format_timestamp(PgTimestamp::NEG_INFINITY), "-infinity");
    }

    #[test]
    fn text_that_is_not_utf8_becomes_hex() {
        assert_eq!(
            text_or_hex("text", b"caf\xc3\xa9"),
            ("text".to_owned(), Value::from("café"))
        );
        assert_eq!(
            text_or_hex("text", b"caf\xe9"),
            ("text_hex".to_owned(), Value::from("636166e9"))
        );
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
