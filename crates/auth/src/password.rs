//! The password as a redacted secret, and SASLprep as PostgreSQL applies it.

use std::borrow::Cow;
use std::fmt;

/// A password. Its `Debug` output is redacted, and it has no `Display`.
///
/// ```
/// use pg_walstream_auth::Password;
/// let pw = Password::from("s3cret");
/// assert_eq!(format!("{pw:?}"), "Password(<redacted>)");
/// assert_eq!(pw.as_bytes(), b"s3cret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    /// Wraps raw password bytes (PostgreSQL passwords are byte strings, usually UTF-8).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The password as SCRAM hashes it: SASLprep'd (RFC 4013) when that succeeds, the raw bytes
    /// otherwise — exactly PostgreSQL's rule (`pg_saslprep` failing means "use the password as
    /// is", so servers store verifiers the same way).
    pub fn sasl_prepared(&self) -> Cow<'_, [u8]> {
        sasl_prepare(&self.0)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl From<&[u8]> for Password {
    fn from(s: &[u8]) -> Self {
        Self(s.to_vec())
    }
}

impl From<Vec<u8>> for Password {
    fn from(s: Vec<u8>) -> Self {
        Self(s)
    }
}

/// SASLprep as PostgreSQL's `pg_saslprep` + `scram_build_secret` use it: pure ASCII is taken as
/// is; otherwise valid UTF-8 is normalized with RFC 4013; if the input is not UTF-8, or SASLprep
/// rejects it (prohibited or unassigned code points, bidi rules) or maps it to nothing, the raw
/// bytes are used.
pub fn sasl_prepare(password: &[u8]) -> Cow<'_, [u8]> {
    if password.is_ascii() {
        return Cow::Borrowed(password);
    }
    let Ok(text) = std::str::from_utf8(password) else {
        return Cow::Borrowed(password);
    };
    match stringprep::saslprep(text) {
        Ok(prepared) if !prepared.is_empty() => match prepared {
            Cow::Borrowed(_) => Cow::Borrowed(password),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        },
        _ => Cow::Borrowed(password),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_untouched_even_with_control_characters() {
        assert_eq!(&*sasl_prepare(b"pencil"), b"pencil");
        // RFC 4013 prohibits ASCII controls; PostgreSQL skips SASLprep for ASCII entirely.
        assert_eq!(&*sasl_prepare(b"a\x07b"), b"a\x07b");
    }

    #[test]
    fn non_ascii_is_normalized() {
        // U+00AD SOFT HYPHEN maps to nothing; U+00A0 NO-BREAK SPACE maps to a space.
        assert_eq!(&*sasl_prepare("I\u{00AD}X".as_bytes()), b"IX");
        assert_eq!(&*sasl_prepare("a\u{00A0}b".as_bytes()), b"a b");
        // NFKC: U+2168 ROMAN NUMERAL NINE becomes "IX".
        assert_eq!(&*sasl_prepare("\u{2168}".as_bytes()), b"IX");
    }

    #[test]
    fn failures_fall_back_to_raw_bytes() {
        // Not UTF-8.
        assert_eq!(&*sasl_prepare(b"\xff\xfe"), b"\xff\xfe");
        // Prohibited (U+0007 is ASCII; use a non-ASCII prohibited code point: U+2028).
        let raw = "x\u{2028}y".as_bytes();
        assert_eq!(&*sasl_prepare(raw), raw);
        // Maps to the empty string.
        let raw = "\u{00AD}".as_bytes();
        assert_eq!(&*sasl_prepare(raw), raw);
    }

    #[test]
    fn debug_is_redacted() {
        let pw = Password::from("hunter2");
        assert!(!format!("{pw:?}").contains("hunter2"));
        assert!(!format!("{pw:#?}").contains("hunter2"));
    }
}
