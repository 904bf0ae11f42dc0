//! Names used in replication commands, validated and quoted so that no input can change the
//! command's meaning.
//!
//! The replication command grammar (like SQL) accepts double-quoted identifiers, with `""` for a
//! quote inside; we quote every identifier we send, so even names equal to keywords
//! (`logical`, `temporary`) are safe, and reject what cannot be quoted (NUL, over-long names).

use core::fmt;

use crate::SlotError;

/// PostgreSQL's `NAMEDATALEN - 1`: the longest identifier in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// A replication slot name: 1–63 characters of `a-z`, `0-9` and `_`, as the server requires
/// (`ReplicationSlotValidateName`). Checked here so a bad name fails before anything is sent.
///
/// ```
/// use pg_walstream_slot::SlotName;
/// assert!(SlotName::new("orders_cdc").is_ok());
/// assert!(SlotName::new("Orders").is_err());
/// assert!(SlotName::new("x\"; DROP").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotName(String);

impl SlotName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`SlotError::InvalidName`] when it is empty, longer than 63 bytes, or has a character
    /// other than lower-case ASCII letters, digits and `_`.
    pub fn new(name: impl Into<String>) -> Result<Self, SlotError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("it is longer than 63 bytes")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            Some("slot names may contain only lower-case letters, digits and underscores")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(SlotError::InvalidName {
                kind: "slot",
                name,
                reason,
            }),
            None => Ok(SlotName(name)),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted identifier for a command.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for SlotName {
    type Err = SlotError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SlotName::new(s)
    }
}

impl AsRef<str> for SlotName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Quotes `name` as an identifier (`"..."`, inner quotes doubled).
///
/// # Errors
/// [`SlotError::InvalidName`] for an empty name, a NUL byte, or more than 63 bytes.
pub fn quote_identifier(kind: &'static str, name: &str) -> Result<String, SlotError> {
    let invalid = |reason| SlotError::InvalidName {
        kind,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 63 bytes"));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Quotes `name` for a *replication* command (`SHOW`, plugin names). The replication command
/// scanner has no escape for `"` inside a quoted identifier, so such names are rejected
/// rather than quoted.
///
/// # Errors
/// As [`quote_identifier`], and for names containing `"`.
pub fn quote_replication_identifier(kind: &'static str, name: &str) -> Result<String, SlotError> {
    if name.contains('"') {
        return Err(SlotError::InvalidName {
            kind,
            name: name.to_owned(),
            reason: "replication commands cannot quote a name containing a double quote",
        });
    }
    quote_identifier(kind, name)
}

/// Quotes `value` as a string literal that means the same whatever
/// `standard_conforming_strings` is: the escape-string form `E'...'` with `\` and `'` escaped.
///
/// # Errors
/// [`SlotError::InvalidName`] when it contains a NUL byte (which no literal can carry).
pub fn quote_literal(kind: &'static str, value: &str) -> Result<String, SlotError> {
    if value.contains('\0') {
        return Err(SlotError::InvalidName {
            kind,
            name: value.to_owned(),
            reason: "it contains a NUL byte",
        });
    }
    Ok(format!(
        "E'{}'",
        value.replace('\\', "\\\\").replace('\'', "''")
    ))
}

impl fmt::Display for QuotedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

/// Already-quoted items joined with `, `.
pub(crate) struct QuotedList<'a>(pub(crate) &'a [String]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_follow_the_servers_rules() {
        assert_eq!(SlotName::new("a_1").unwrap().quoted(), "\"a_1\"");
        assert!(
            SlotName::new("logical").is_ok(),
            "keywords are fine: they are quoted"
        );
        for bad in ["", "A", "a-b", "a b", "a\"b", "a\0", "é", &"x".repeat(64)] {
            assert!(
                matches!(
                    SlotName::new(bad),
                    Err(SlotError::InvalidName { kind: "slot", .. })
                ),
                "{bad:?}"
            );
        }
        assert!(SlotName::new("x".repeat(63)).is_ok());
    }

    #[test]
    fn identifiers_are_quoted_and_nul_rejected() {
        assert_eq!(
            quote_identifier("plugin", "pgoutput").unwrap(),
            "\"pgoutput\""
        );
        assert_eq!(
            quote_identifier("publication", "a\"b").unwrap(),
            "\"a\"\"b\""
        );
        assert_eq!(
            quote_identifier("publication", "a'b\\c").unwrap(),
            "\"a'b\\c\""
        );
        assert!(quote_identifier("publication", "a\0b").is_err());
        assert!(quote_identifier("publication", "").is_err());
    }

    #[test]
    fn replication_identifiers_reject_double_quotes() {
        assert_eq!(
            quote_replication_identifier("setting", "wal_level").unwrap(),
            "\"wal_level\""
        );
        assert!(quote_replication_identifier("setting", "x\"; DROP").is_err());
    }

    #[test]
    fn literals_survive_standard_conforming_strings_off() {
        assert_eq!(quote_literal("value", "it's").unwrap(), "E'it''s'");
        assert_eq!(quote_literal("value", "a\\'b").unwrap(), "E'a\\\\''b'");
        assert!(quote_literal("value", "\0").is_err());
    }
}
