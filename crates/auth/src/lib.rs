//! Sans-IO PostgreSQL authentication exchanges.
//!
//! Cleartext, MD5 and SCRAM-SHA-256(-PLUS) as state machines: the caller feeds the server's
//! authentication messages in and sends the produced responses out. No I/O happens here and
//! no clock is read; the only system call is [`ClientNonce::random`] (the OS random number
//! generator), and tests inject their own nonce.
//!
//! ```text
//!   transport                          Authenticator
//!   ─────────                          ─────────────
//!   R AuthenticationSASL ───────────▶  handle(Sasl { mechanisms })
//!   p SASLInitialResponse ◀──────────  Some(SaslInitialResponse { mechanism, data })
//!   R AuthenticationSASLContinue ───▶  handle(SaslContinue(server_first))
//!   p SASLResponse ◀─────────────────  Some(SaslResponse(client_final))
//!   R AuthenticationSASLFinal ──────▶  handle(SaslFinal(server_final))   // signature checked
//!   R AuthenticationOk ─────────────▶  handle(Ok)                        // policy checked
//! ```
//!
//! [`Authenticator`] is the whole phase (with libpq's `require_auth` and `channel_binding`
//! rules); [`ScramClient`], [`md5_response`], [`select_mechanism`], [`RequireAuth`] and
//! [`ChannelBinding`] are the parts, usable on their own.
//!
//! # Channel binding
//! SCRAM-SHA-256-PLUS binds the exchange to the TLS connection with `tls-server-end-point`
//! (RFC 5929): the hash of the server's end-entity certificate in DER, hashed with its
//! signature algorithm's hash (SHA-256 for MD5/SHA-1). Pass the certificate's DER bytes in
//! [`ChannelSecurity::Tls`].
//!
//! # Why not the `scram` crate
//! `scram` 0.6 (read from its source): its client always sends the `n,,` GS2 header, so it
//! cannot do SCRAM-SHA-256-PLUS; it takes the password as `&str` (PostgreSQL passwords are
//! bytes) and applies no SASLprep; and it depends on `ring` 0.16, `rand` 0.8 and `base64` 0.13,
//! old releases nothing else in the workspace uses. The exchange is small, so it is implemented
//! here over RustCrypto's `sha2`, `hmac` and `pbkdf2` (the same family as the `md-5` crate used
//! for MD5; pure Rust, no C build, so the libpq backend does not pull in a second TLS crypto
//! library), `base64`, and `stringprep` for SASLprep.
//!
//! # Secrets
//! [`Password`], [`AuthResponse`] and [`AuthConfig`] redact the password in `Debug`; no
//! [`AuthError`] carries it.

mod authenticator;
mod channel_binding;
mod error;
mod md5_password;
mod mechanism;
mod password;
mod require_auth;
mod scram;

pub use authenticator::{
    AuthConfig, AuthRequest, AuthResponse, AuthStep, Authenticator, ChannelSecurity,
};
pub use channel_binding::{ChannelBinding, TLS_SERVER_END_POINT};
pub use error::{AuthError, ScramStage};
pub use md5_password::{MD5_RESPONSE_LEN, md5_response};
pub use mechanism::{ChannelBindingMode, select_mechanism};
pub use password::{Password, sasl_prepare};
pub use require_auth::{AuthMethod, RequestKind, RequireAuth};
pub use scram::{
    ClientNonce, DEFAULT_MAX_SCRAM_ITERATIONS, KeyDerivation, Mechanism, SaltedPassword,
    ScramBinding, ScramClient,
};
