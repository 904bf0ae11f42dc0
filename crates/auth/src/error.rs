//! The one error type of this crate.

use std::fmt;

/// Which SCRAM message a [`AuthError::MalformedScramMessage`] was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScramStage {
    /// The server-first-message (AuthenticationSASLContinue).
    ServerFirst,
    /// The server-final-message (AuthenticationSASLFinal).
    ServerFinal,
}

impl fmt::Display for ScramStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ServerFirst => "server-first-message",
            Self::ServerFinal => "server-final-message",
        })
    }
}

/// Why an authentication exchange failed.
///
/// No variant ever carries the password, so `Debug` and `Display` are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The server asked for a password and none was configured.
    #[error("the server requested password authentication but no password was supplied")]
    PasswordMissing,
    /// The password contains a NUL byte, which the protocol cannot carry.
    #[error("the password contains a NUL byte, which PostgreSQL's protocol cannot carry")]
    PasswordContainsNul,
    /// The server asked for a method this crate does not implement (GSS, SSPI, Kerberos, ...).
    #[error("the server requested authentication method {code} ({name}), which is not supported")]
    UnsupportedMethod {
        /// The AuthenticationRequest code.
        code: i32,
        /// A human name for it.
        name: &'static str,
    },
    /// None of the SASL mechanisms the server offered is implemented here.
    #[error("none of the server's SASL authentication mechanisms ({offered}) are supported")]
    NoSupportedSaslMechanism {
        /// The mechanisms the server offered, comma separated.
        offered: String,
    },
    /// The server offered SCRAM-SHA-256-PLUS on a connection without TLS (SSL stripped by a
    /// proxy?); continuing would only fail later, as libpq also refuses.
    #[error("the server offered SCRAM-SHA-256-PLUS authentication over a non-TLS connection")]
    PlusWithoutTls,
    /// `channel_binding=require` but the server did not offer SCRAM-SHA-256-PLUS (or the
    /// connection has no TLS).
    #[error(
        "channel binding is required, but the server did not offer an authentication method that supports channel binding"
    )]
    ChannelBindingNotOffered,
    /// `channel_binding=require` and the server asked for a non-SASL method (password, MD5,
    /// ...), which could leak the password to an unauthenticated server.
    #[error("channel binding is required, but the server requested {method} authentication")]
    ChannelBindingMethodRefused {
        /// The method the server asked for.
        method: &'static str,
    },
    /// `channel_binding=require` and the server reported success without channel binding.
    #[error(
        "channel binding is required, but the server authenticated the client without channel binding"
    )]
    ChannelBindingNotPerformed,
    /// `require_auth` rejected what the server did.
    #[error("authentication method requirement \"{requirement}\" failed: {reason}")]
    RequireAuthFailed {
        /// The `require_auth` setting, as written.
        requirement: String,
        /// What the server did instead.
        reason: &'static str,
    },
    /// The `require_auth` value could not be parsed.
    #[error("invalid require_auth value \"{value}\": {reason}")]
    InvalidRequireAuth {
        /// The offending list element (or the whole value).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `channel_binding` value is not `disable`, `prefer` or `require`.
    #[error("invalid channel_binding value \"{value}\": expected disable, prefer or require")]
    InvalidChannelBindingMode {
        /// The offending value.
        value: String,
    },
    /// A SCRAM message from the server does not follow RFC 5802's grammar.
    #[error("malformed SCRAM {stage}: {reason}")]
    MalformedScramMessage {
        /// Which message.
        stage: ScramStage,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server nonce does not extend the client nonce: a replayed or forged exchange.
    #[error(
        "invalid SCRAM server-first-message: the server nonce does not start with the client nonce"
    )]
    NonceMismatch,
    /// The server asked for more SCRAM iterations than the configured maximum: the key
    /// derivation would keep a CPU busy for as long as the server likes.
    #[error(
        "the server asked for {iterations} SCRAM iterations, more than the allowed maximum of {max}"
    )]
    ScramIterationsTooHigh {
        /// The count in the server-first-message.
        iterations: u32,
        /// The configured maximum.
        max: u32,
    },
    /// The server reported a SCRAM error (`e=` attribute).
    #[error("the server rejected the SCRAM exchange: {0}")]
    ServerError(String),
    /// The server's signature does not match: the server does not know the password (or the
    /// channel binding differs).
    #[error(
        "the server's SCRAM signature does not match: the server could not prove it knows the password"
    )]
    ServerSignatureMismatch,
    /// The server reported success before the SCRAM exchange completed (its signature was never
    /// verified), or another authentication message arrived out of order.
    #[error("unexpected authentication message from the server: {0}")]
    UnexpectedMessage(&'static str),
    /// The server certificate is not parseable DER (needed for channel binding).
    #[error(
        "cannot compute tls-server-end-point channel binding: malformed server certificate ({0})"
    )]
    MalformedCertificate(&'static str),
    /// The server certificate's signature algorithm has no hash that RFC 5929 can use.
    #[error(
        "cannot compute tls-server-end-point channel binding: unsupported certificate signature algorithm {oid}"
    )]
    UnsupportedCertificateSignature {
        /// The algorithm's object identifier, dotted.
        oid: String,
    },
    /// A caller-supplied client nonce is empty or contains characters SCRAM forbids.
    #[error("invalid SCRAM client nonce: {0}")]
    InvalidNonce(&'static str),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Randomness(String),
}
