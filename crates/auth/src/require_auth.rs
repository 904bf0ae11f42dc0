//! `require_auth`: which authentication methods the client accepts (libpq semantics).

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// An authentication method name as `require_auth` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `password`: cleartext password.
    Password,
    /// `md5`.
    Md5,
    /// `gss`: GSSAPI (not implemented by this crate, but accepted in the list as libpq does).
    Gss,
    /// `sspi` (not implemented by this crate).
    Sspi,
    /// `scram-sha-256` (with or without channel binding).
    ScramSha256,
    /// `oauth` (PostgreSQL 18's libpq; not implemented by this crate).
    OAuth,
}

impl AuthMethod {
    const ALL: [Self; 6] = [
        Self::Password,
        Self::Md5,
        Self::Gss,
        Self::Sspi,
        Self::ScramSha256,
        Self::OAuth,
    ];

    /// The name used in `require_auth`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Md5 => "md5",
            Self::Gss => "gss",
            Self::Sspi => "sspi",
            Self::ScramSha256 => "scram-sha-256",
            Self::OAuth => "oauth",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The kind of an authentication request, for [`RequireAuth::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestKind {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationCleartextPassword.
    CleartextPassword,
    /// AuthenticationMD5Password.
    Md5Password,
    /// AuthenticationGSS.
    Gss,
    /// AuthenticationGSSContinue.
    GssContinue,
    /// AuthenticationSSPI.
    Sspi,
    /// AuthenticationSASL / SASLContinue / SASLFinal.
    Sasl,
    /// Any other code (Kerberos V5, SCM credentials, unknown).
    Other(i32),
}

impl RequestKind {
    /// A human description, as used in error messages.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Ok => "server did not complete authentication",
            Self::CleartextPassword => "server requested a cleartext password",
            Self::Md5Password => "server requested a hashed password",
            Self::Gss | Self::GssContinue => "server requested GSSAPI authentication",
            Self::Sspi => "server requested SSPI authentication",
            Self::Sasl => "server requested SASL authentication",
            Self::Other(_) => "server requested an unknown authentication type",
        }
    }
}

/// A parsed `require_auth` setting.
///
/// A comma-separated list of `password`, `md5`, `gss`, `sspi`, `scram-sha-256`, `oauth` and
/// `none`; either all elements are negated with `!` (everything but these) or none is. `none`
/// allows servers that authenticate without a challenge (trust, cert); `!none` forbids them.
/// The default (empty) accepts anything.
///
/// ```
/// use pg_walstream_auth::{RequestKind, RequireAuth};
/// let r: RequireAuth = "scram-sha-256".parse()?;
/// assert!(r.check(RequestKind::Sasl, false).is_ok());
/// assert!(r.check(RequestKind::Md5Password, false).is_err());
/// assert!(r.check(RequestKind::Ok, false).is_err()); // trust: nothing was completed
/// assert!(r.check(RequestKind::Ok, true).is_ok());
/// let r: RequireAuth = "!password,!md5".parse()?;
/// assert!(r.check(RequestKind::CleartextPassword, false).is_err());
/// assert!(r.check(RequestKind::Ok, false).is_ok());
/// # Ok::<(), pg_walstream_auth::AuthError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAuth {
    spec: String,
    allowed: u8,
    auth_required: bool,
}

impl Default for RequireAuth {
    fn default() -> Self {
        Self {
            spec: String::new(),
            allowed: u8::MAX,
            auth_required: false,
        }
    }
}

impl RequireAuth {
    /// Parses a `require_auth` value. An empty string means "no requirement".
    ///
    /// # Errors
    /// [`AuthError::InvalidRequireAuth`] for an unknown method, a method listed twice, mixing
    /// negated and plain elements, or an empty element.
    pub fn parse(spec: &str) -> Result<Self, AuthError> {
        if spec.is_empty() {
            return Ok(Self::default());
        }
        let invalid = |value: &str, reason| AuthError::InvalidRequireAuth {
            value: value.to_owned(),
            reason,
        };
        let mut result = Self {
            spec: spec.to_owned(),
            allowed: 0,
            auth_required: true,
        };
        let mut negated = false;
        for (index, element) in spec.split(',').enumerate() {
            let method = if let Some(method) = element.strip_prefix('!') {
                if index == 0 {
                    result.allowed = u8::MAX;
                    result.auth_required = false;
                    negated = true;
                } else if !negated {
                    return Err(invalid(
                        element,
                        "negative methods cannot be mixed with non-negative ones",
                    ));
                }
                method
            } else {
                if negated {
                    return Err(invalid(
                        element,
                        "non-negative methods cannot be mixed with negative ones",
                    ));
                }
                element
            };
            if method.is_empty() {
                return Err(invalid(element, "empty method name"));
            }
            if method == "none" {
                // Positive "none" lifts the requirement; "!none" restores it.
                if result.auth_required == negated {
                    return Err(invalid(element, "specified more than once"));
                }
                result.auth_required = negated;
                continue;
            }
            let bit = AuthMethod::ALL
                .iter()
                .find(|m| m.name() == method)
                .ok_or_else(|| invalid(element, "unknown authentication method"))?
                .bit();
            let present = result.allowed & bit != 0;
            if present != negated {
                return Err(invalid(element, "specified more than once"));
            }
            result.allowed ^= bit;
        }
        Ok(result)
    }

    /// Whether `method` is allowed.
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.allowed & method.bit() != 0
    }

    /// Whether the server must run an authentication exchange (no trust/cert-only login).
    pub fn requires_exchange(&self) -> bool {
        self.auth_required
    }

    /// Whether any requirement is set.
    pub fn is_set(&self) -> bool {
        !self.spec.is_empty()
    }

    /// Checks one authentication request from the server.
    ///
    /// `completed` tells whether the client has finished an exchange (sent a password or MD5
    /// response, or verified a SCRAM server signature); it matters only for
    /// [`RequestKind::Ok`].
    ///
    /// # Errors
    /// [`AuthError::RequireAuthFailed`] naming the requirement and what the server did.
    pub fn check(&self, request: RequestKind, completed: bool) -> Result<(), AuthError> {
        if !self.is_set() {
            return Ok(());
        }
        let ok = match request {
            RequestKind::Ok => !self.auth_required || completed,
            RequestKind::CleartextPassword => self.allows(AuthMethod::Password),
            RequestKind::Md5Password => self.allows(AuthMethod::Md5),
            RequestKind::Gss => self.allows(AuthMethod::Gss),
            RequestKind::Sspi => self.allows(AuthMethod::Sspi),
            RequestKind::GssContinue => {
                self.allows(AuthMethod::Gss) || self.allows(AuthMethod::Sspi)
            }
            RequestKind::Sasl => self.allows(AuthMethod::ScramSha256),
            RequestKind::Other(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::RequireAuthFailed {
                requirement: self.spec.clone(),
                reason: request.description(),
            })
        }
    }
}

impl FromStr for RequireAuth {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for RequireAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(spec: &str) -> &'static str {
        match RequireAuth::parse(spec) {
            Err(AuthError::InvalidRequireAuth { reason, .. }) => reason,
            other => panic!("{spec}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn default_allows_everything() {
        let r = RequireAuth::default();
        for kind in [
            RequestKind::Ok,
            RequestKind::CleartextPassword,
            RequestKind::Other(2),
        ] {
            assert!(r.check(kind, false).is_ok());
        }
        assert_eq!(RequireAuth::parse("").unwrap(), r);
    }

    #[test]
    fn positive_list() {
        let r = RequireAuth::parse("password,md5").unwrap();
        assert!(r.check(RequestKind::CleartextPassword, false).is_ok());
        assert!(r.check(RequestKind::Md5Password, false).is_ok());
        assert!(r.check(RequestKind::Sasl, false).is_err());
        assert!(r.check(RequestKind::Gss, false).is_err());
        assert!(r.check(RequestKind::Other(6), false).is_err());
        assert!(r.check(RequestKind::Ok, false).is_err());
        assert!(r.check(RequestKind::Ok, true).is_ok());
        assert!(r.requires_exchange());
    }

    #[test]
    fn none_allows_trust() {
        let r = RequireAuth::parse("scram-sha-256,none").unwrap();
        assert!(r.check(RequestKind::Ok, false).is_ok());
        assert!(r.check(RequestKind::Md5Password, false).is_err());
        let r = RequireAuth::parse("none").unwrap();
        assert!(r.check(RequestKind::Ok, false).is_ok());
        assert!(r.check(RequestKind::Sasl, false).is_err());
    }

    #[test]
    fn negated_list() {
        let r = RequireAuth::parse("!password,!md5").unwrap();
        assert!(r.check(RequestKind::CleartextPassword, false).is_err());
        assert!(r.check(RequestKind::Md5Password, false).is_err());
        assert!(r.check(RequestKind::Sasl, false).is_ok());
        assert!(r.check(RequestKind::Ok, false).is_ok());
        let r = RequireAuth::parse("!none").unwrap();
        assert!(r.check(RequestKind::Ok, false).is_err());
        assert!(r.check(RequestKind::Ok, true).is_ok());
        assert!(r.check(RequestKind::CleartextPassword, false).is_ok());
    }

    #[test]
    fn gss_continue_follows_gss_or_sspi() {
        assert!(
            RequireAuth::parse("sspi")
                .unwrap()
                .check(RequestKind::GssContinue, false)
                .is_ok()
        );
        assert!(
            RequireAuth::parse("md5")
                .unwrap()
                .check(RequestKind::GssContinue, false)
                .is_err()
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            reason("password,!md5"),
            "negative methods cannot be mixed with non-negative ones"
        );
        assert_eq!(
            reason("!password,md5"),
            "non-negative methods cannot be mixed with negative ones"
        );
        assert_eq!(reason("md5,md5"), "specified more than once");
        assert_eq!(reason("!md5,!md5"), "specified more than once");
        assert_eq!(reason("none,none"), "specified more than once");
        assert_eq!(reason("!none,!none"), "specified more than once");
        assert_eq!(reason("scram"), "unknown authentication method");
        assert_eq!(reason("md5,,password"), "empty method name");
        assert_eq!(reason("!"), "empty method name");
        // Like libpq, elements are not trimmed.
        assert_eq!(reason("md5, password"), "unknown authentication method");
    }

    #[test]
    fn failure_message_names_requirement_and_reason() {
        let r = RequireAuth::parse("scram-sha-256").unwrap();
        let err = r.check(RequestKind::Md5Password, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "authentication method requirement \"scram-sha-256\" failed: server requested a hashed password"
        );
        assert_eq!(r.to_string(), "scram-sha-256");
    }
}
