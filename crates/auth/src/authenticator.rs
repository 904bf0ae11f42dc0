//! The whole authentication phase as one state machine: policy checks plus the method
//! exchanges, driven by the server's `Authentication*` messages.

use std::fmt;

use crate::require_auth::RequestKind;
use crate::{
    AuthError, ChannelBinding, ChannelBindingMode, ClientNonce, DEFAULT_MAX_SCRAM_ITERATIONS,
    KeyDerivation, Mechanism, Password, RequireAuth, SaltedPassword, ScramBinding, ScramClient,
    md5_response, select_mechanism,
};

/// What the client knows before authenticating.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    user: String,
    password: Option<Password>,
    channel_binding: ChannelBindingMode,
    require_auth: RequireAuth,
    max_scram_iterations: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            user: String::new(),
            password: None,
            channel_binding: ChannelBindingMode::default(),
            require_auth: RequireAuth::default(),
            max_scram_iterations: DEFAULT_MAX_SCRAM_ITERATIONS,
        }
    }
}

impl AuthConfig {
    /// A configuration for `user` (the role in the startup message), without a password.
    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            ..Self::default()
        }
    }

    /// Sets the highest SCRAM iteration count accepted from the server (default
    /// [`DEFAULT_MAX_SCRAM_ITERATIONS`]); a higher one fails with
    /// [`AuthError::ScramIterationsTooHigh`] before any key derivation starts.
    #[must_use]
    pub fn max_scram_iterations(mut self, max: u32) -> Self {
        self.max_scram_iterations = max;
        self
    }

    /// Sets the password.
    #[must_use]
    pub fn password(mut self, password: impl Into<Password>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets `channel_binding` (default `prefer`).
    #[must_use]
    pub fn channel_binding(mut self, mode: ChannelBindingMode) -> Self {
        self.channel_binding = mode;
        self
    }

    /// Sets `require_auth` (default: anything).
    #[must_use]
    pub fn require_auth(mut self, require_auth: RequireAuth) -> Self {
        self.require_auth = require_auth;
        self
    }
}

/// The security of the connection the exchange runs over.
#[derive(Clone, PartialEq, Eq)]
pub enum ChannelSecurity {
    /// No TLS.
    Plaintext,
    /// TLS; the server's end-entity certificate in DER, as presented in the handshake
    /// (rustls: `peer_certificates()[0]`). Used for `tls-server-end-point` binding.
    Tls {
        /// DER bytes of the server's certificate.
        server_certificate_der: Vec<u8>,
    },
}

impl fmt::Debug for ChannelSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plaintext => f.write_str("Plaintext"),
            Self::Tls {
                server_certificate_der,
            } => f
                .debug_struct("Tls")
                .field("server_certificate_len", &server_certificate_der.len())
                .finish(),
        }
    }
}

/// An authentication request from the server (the `R` message), borrowed from the transport's
/// decoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRequest<'a> {
    /// AuthenticationOk (code 0).
    Ok,
    /// AuthenticationCleartextPassword (3).
    CleartextPassword,
    /// AuthenticationMD5Password (5).
    Md5Password {
        /// The salt.
        salt: [u8; 4],
    },
    /// AuthenticationSASL (10) with the offered mechanism names.
    Sasl {
        /// E.g. `["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]`.
        mechanisms: &'a [String],
    },
    /// AuthenticationSASLContinue (11).
    SaslContinue(&'a [u8]),
    /// AuthenticationSASLFinal (12).
    SaslFinal(&'a [u8]),
    /// Any other code: Kerberos V5 (2), SCM credentials (6), GSS (7), GSSContinue (8),
    /// SSPI (9), or unknown.
    Other(i32),
}

impl AuthRequest<'_> {
    fn kind(&self) -> RequestKind {
        match self {
            Self::Ok => RequestKind::Ok,
            Self::CleartextPassword => RequestKind::CleartextPassword,
            Self::Md5Password { .. } => RequestKind::Md5Password,
            Self::Sasl { .. } | Self::SaslContinue(_) | Self::SaslFinal(_) => RequestKind::Sasl,
            Self::Other(7) => RequestKind::Gss,
            Self::Other(8) => RequestKind::GssContinue,
            Self::Other(9) => RequestKind::Sspi,
            Self::Other(code) => RequestKind::Other(*code),
        }
    }
}

/// What to send back to the server.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthResponse {
    /// PasswordMessage (`p`) with these bytes (cleartext password or MD5 response), to be
    /// NUL-terminated by the encoder.
    Password(Vec<u8>),
    /// SASLInitialResponse (`p`) with the mechanism name and client-first-message.
    SaslInitialResponse {
        /// The chosen mechanism.
        mechanism: Mechanism,
        /// The client-first-message.
        data: Vec<u8>,
    },
    /// SASLResponse (`p`) with the client-final-message.
    SaslResponse(Vec<u8>),
}

impl fmt::Debug for AuthResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(<redacted>)"),
            Self::SaslInitialResponse { mechanism, data } => f
                .debug_struct("SaslInitialResponse")
                .field("mechanism", mechanism)
                .field("data", &String::from_utf8_lossy(data))
                .finish(),
            Self::SaslResponse(data) => f.debug_tuple("SaslResponse").field(&data.len()).finish(),
        }
    }
}

/// What [`Authenticator::step`] asks the caller to do next.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthStep {
    /// Send this message to the server, then wait for its next request.
    Send(AuthResponse),
    /// Nothing to send; wait for the server's next request (or, after AuthenticationOk,
    /// stop: [`Authenticator::is_authenticated`] is true).
    Wait,
    /// Run this CPU-bound key derivation (off the async threads, e.g. with
    /// `tokio::task::spawn_blocking`) and pass its result to
    /// [`Authenticator::finish_derivation`], which returns the message to send.
    Derive(KeyDerivation),
}

/// Client side of PostgreSQL's authentication phase. Sans-IO.
///
/// For each `Authentication*` message call [`Authenticator::handle`] and send the response
/// it returns, if any. It enforces `require_auth` and `channel_binding` (libpq's rules), and
/// refuses AuthenticationOk before a started SCRAM exchange verified the server's signature.
///
/// ```
/// use pg_walstream_auth::{AuthConfig, AuthRequest, AuthResponse, Authenticator, ChannelSecurity};
/// let config = AuthConfig::new("md5_user").password("md5_pass");
/// let mut auth = Authenticator::new(config, ChannelSecurity::Plaintext);
/// let response = auth.handle(AuthRequest::Md5Password { salt: [1, 2, 3, 4] })?;
/// assert_eq!(response, Some(AuthResponse::Password(b"md5c6ee6bd10a7adf513019b25f24df0925".to_vec())));
/// assert_eq!(auth.handle(AuthRequest::Ok)?, None);
/// assert!(auth.is_authenticated());
/// # Ok::<(), pg_walstream_auth::AuthError>(())
/// ```
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    security: ChannelSecurity,
    nonce: Option<ClientNonce>,
    scram: Option<ScramClient>,
    finished_exchange: bool,
    authenticated: bool,
    failed: bool,
}

impl Authenticator {
    /// Starts the authentication phase.
    pub fn new(config: AuthConfig, security: ChannelSecurity) -> Self {
        Self {
            config,
            security,
            nonce: None,
            scram: None,
            finished_exchange: false,
            authenticated: false,
            failed: false,
        }
    }

    /// Uses this client nonce instead of a random one (to replay recorded exchanges).
    #[must_use]
    pub fn with_nonce(mut self, nonce: ClientNonce) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Whether AuthenticationOk has been accepted.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the completed exchange used channel binding (SCRAM-SHA-256-PLUS).
    pub fn channel_bound(&self) -> bool {
        self.scram
            .as_ref()
            .is_some_and(|s| s.is_complete() && s.channel_bound())
    }

    /// Handles one authentication request; returns the message to send, if any.
    ///
    /// The SCRAM key derivation runs on the calling thread; async drivers use [`Self::step`].
    ///
    /// # Errors
    /// Policy failures ([`AuthError::RequireAuthFailed`],
    /// [`AuthError::ChannelBindingMethodRefused`], [`AuthError::ChannelBindingNotPerformed`]),
    /// [`AuthError::PasswordMissing`], [`AuthError::UnsupportedMethod`], mechanism selection
    /// errors (see [`select_mechanism`]), SCRAM errors (malformed messages, nonce or signature
    /// mismatch), [`AuthError::UnexpectedMessage`] for out-of-order messages.
    /// After an error the exchange is over: every later call fails with
    /// [`AuthError::UnexpectedMessage`].
    pub fn handle(&mut self, request: AuthRequest<'_>) -> Result<Option<AuthResponse>, AuthError> {
        match self.step(request)? {
            AuthStep::Send(response) => Ok(Some(response)),
            AuthStep::Wait => Ok(None),
            AuthStep::Derive(derivation) => self.finish_derivation(&derivation.derive()).map(Some),
        }
    }

    /// As [`Self::handle`], but hands the SCRAM key derivation (PBKDF2, proportional to the
    /// server's iteration count) back to the caller as [`AuthStep::Derive`] instead of
    /// running it.
    ///
    /// # Errors
    /// As [`Self::handle`], including [`AuthError::ScramIterationsTooHigh`].
    pub fn step(&mut self, request: AuthRequest<'_>) -> Result<AuthStep, AuthError> {
        if self.failed {
            return Err(AuthError::UnexpectedMessage(
                "authentication request after a failed exchange",
            ));
        }
        let result = self.step_inner(request);
        self.failed = result.is_err();
        result
    }

    /// Finishes an [`AuthStep::Derive`]: returns the SASLResponse to send.
    ///
    /// # Errors
    /// [`AuthError::UnexpectedMessage`] when no derivation was requested.
    pub fn finish_derivation(
        &mut self,
        salted: &SaltedPassword,
    ) -> Result<AuthResponse, AuthError> {
        if self.failed {
            return Err(AuthError::UnexpectedMessage(
                "key derivation result after a failed exchange",
            ));
        }
        let result = self
            .scram_in_progress("key derivation result without AuthenticationSASL")
            .and_then(|scram| scram.client_final(salted))
            .map(AuthResponse::SaslResponse);
        self.failed = result.is_err();
        result
    }

    fn step_inner(&mut self, request: AuthRequest<'_>) -> Result<AuthStep, AuthError> {
        if self.authenticated {
            return Err(AuthError::UnexpectedMessage(
                "authentication request after AuthenticationOk",
            ));
        }
        self.check_policy(&request)?;
        match request {
            AuthRequest::Ok => {
                if self.scram.as_ref().is_some_and(|s| !s.is_complete()) {
                    return Err(AuthError::UnexpectedMessage(
                        "AuthenticationOk before the SCRAM exchange completed (server signature not verified)",
                    ));
                }
                self.authenticated = true;
                Ok(AuthStep::Wait)
            }
            AuthRequest::CleartextPassword => {
                let password = self.password()?.as_bytes().to_vec();
                self.finished_exchange = true;
                Ok(AuthStep::Send(AuthResponse::Password(password)))
            }
            AuthRequest::Md5Password { salt } => {
                let password = self.password()?;
                let response = md5_response(self.config.user.as_bytes(), password.as_bytes(), salt);
                self.finished_exchange = true;
                Ok(AuthStep::Send(AuthResponse::Password(response.to_vec())))
            }
            AuthRequest::Sasl { mechanisms } => self.start_scram(mechanisms).map(AuthStep::Send),
            AuthRequest::SaslContinue(data) => {
                let scram = self
                    .scram_in_progress("AuthenticationSASLContinue without AuthenticationSASL")?;
                scram.server_first(data).map(AuthStep::Derive)
            }
            AuthRequest::SaslFinal(data) => {
                let scram =
                    self.scram_in_progress("AuthenticationSASLFinal without AuthenticationSASL")?;
                scram.handle_server_final(data)?;
                self.finished_exchange = true;
                Ok(AuthStep::Wait)
            }
            AuthRequest::Other(code) => Err(AuthError::UnsupportedMethod {
                code,
                name: match code {
                    2 => "Kerberos V5",
                    6 => "SCM credentials",
                    7 | 8 => "GSSAPI",
                    9 => "SSPI",
                    _ => "unknown",
                },
            }),
        }
    }

    /// libpq's `check_expected_areq`: `require_auth`, then `channel_binding=require`.
    fn check_policy(&self, request: &AuthRequest<'_>) -> Result<(), AuthError> {
        let kind = request.kind();
        self.config
            .require_auth
            .check(kind, self.finished_exchange)?;
        if self.config.channel_binding == ChannelBindingMode::Require {
            match kind {
                RequestKind::Sasl => {}
                RequestKind::Ok if self.channel_bound() => {}
                RequestKind::Ok => return Err(AuthError::ChannelBindingNotPerformed),
                RequestKind::CleartextPassword => {
                    return Err(AuthError::ChannelBindingMethodRefused {
                        method: "cleartext password",
                    });
                }
                RequestKind::Md5Password => {
                    return Err(AuthError::ChannelBindingMethodRefused {
                        method: "MD5 password",
                    });
                }
                _ => return Err(AuthError::ChannelBindingMethodRefused { method: "non-SASL" }),
            }
        }
        Ok(())
    }

    fn password(&self) -> Result<&Password, AuthError> {
        let password = self
            .config
            .password
            .as_ref()
            .ok_or(AuthError::PasswordMissing)?;
        if password.as_bytes().contains(&0) {
            return Err(AuthError::PasswordContainsNul);
        }
        Ok(password)
    }

    fn start_scram(&mut self, mechanisms: &[String]) -> Result<AuthResponse, AuthError> {
        if self.scram.is_some() {
            return Err(AuthError::UnexpectedMessage("a second AuthenticationSASL"));
        }
        let tls = matches!(self.security, ChannelSecurity::Tls { .. });
        let mechanism = select_mechanism(mechanisms, self.config.channel_binding, tls)?;
        let password = self.password()?.clone();
        let binding = match (&self.security, mechanism) {
            (
                ChannelSecurity::Tls {
                    server_certificate_der,
                },
                Mechanism::ScramSha256Plus,
            ) => ScramBinding::TlsServerEndPoint(ChannelBinding::tls_server_end_point(
                server_certificate_der,
            )?),
            (ChannelSecurity::Tls { .. }, _)
                if self.config.channel_binding != ChannelBindingMode::Disable =>
            {
                ScramBinding::SupportedNotUsed
            }
            _ => ScramBinding::NotSupported,
        };
        let nonce = match self.nonce.take() {
            Some(nonce) => nonce,
            None => ClientNonce::random()?,
        };
        let scram = ScramClient::new("", &password, binding, nonce)
            .with_max_iterations(self.config.max_scram_iterations);
        let data = scram.client_first_message().to_vec();
        let mechanism = scram.mechanism();
        self.scram = Some(scram);
        Ok(AuthResponse::SaslInitialResponse { mechanism, data })
    }

    fn scram_in_progress(&mut self, what: &'static str) -> Result<&mut ScramClient, AuthError> {
        self.scram
            .as_mut()
            .ok_or(AuthError::UnexpectedMessage(what))
    }
}

#[cfg(test)]
#[path = "authenticator_tests.rs"]
mod tests;
