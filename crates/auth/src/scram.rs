//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) as a client state machine.
//!
//! ```text
//!   ScramClient::new ──client_first_message()──▶ SASLInitialResponse
//!   AuthenticationSASLContinue ──handle_server_first()──▶ SASLResponse (client-final)
//!   AuthenticationSASLFinal ──handle_server_final()──▶ server signature verified
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::{AuthError, ChannelBinding, Password, ScramStage};

type HmacSha256 = Hmac<Sha256>;

/// Number of random bytes in a generated nonce (libpq uses 18, giving 24 base64 characters).
const NONCE_RANDOM_BYTES: usize = 18;

/// The highest SCRAM iteration count accepted by default (see
/// [`ScramClient::with_max_iterations`]).
///
/// The server chooses the count, and the client must run PBKDF2 that many times before it
/// can answer; nothing in the protocol bounds it, so a hostile server (or a man in the
/// middle under `sslmode=prefer`/`require`, before the server has proven anything) can send
/// `i=4294967295` and keep a CPU busy for hours. libpq has no limit. PostgreSQL's default is
/// 4096, and `scram_iterations` (PostgreSQL 16+) lets administrators raise it; 1 000 000
/// leaves room for the strongest published guidance (OWASP's 600 000 for PBKDF2-HMAC-SHA256)
/// while bounding the work a hostile peer can demand to about half a second of one core in an
/// optimised build (measured: 1 000 000 iterations in 0.48 s on a busy 2-core machine; an
/// unoptimised debug build is about 30 times slower).
pub const DEFAULT_MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// The SASL mechanism names PostgreSQL offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS` (with `tls-server-end-point` channel binding).
    ScramSha256Plus,
}

impl Mechanism {
    /// The name as it appears on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The client nonce of a SCRAM exchange.
///
/// Production code uses [`ClientNonce::random`]; tests replay recorded exchanges with
/// [`ClientNonce::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNonce(String);

impl ClientNonce {
    /// 18 bytes from the operating system's random number generator, base64-encoded (as libpq).
    ///
    /// # Errors
    /// [`AuthError::Randomness`] when the OS generator fails.
    pub fn random() -> Result<Self, AuthError> {
        let mut bytes = [0u8; NONCE_RANDOM_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| AuthError::Randomness(e.to_string()))?;
        Ok(Self::from_random_bytes(&bytes))
    }

    /// A nonce made from caller-supplied random bytes (base64-encoded). Supply at least 18.
    pub fn from_random_bytes(bytes: &[u8]) -> Self {
        Self(BASE64.encode(bytes))
    }

    /// A nonce used exactly as given, e.g. to replay a recorded exchange.
    ///
    /// # Errors
    /// [`AuthError::InvalidNonce`] when it is empty or has a character outside printable ASCII
    /// or a comma (RFC 5802 `printable`).
    pub fn new(nonce: &str) -> Result<Self, AuthError> {
        if nonce.is_empty() {
            return Err(AuthError::InvalidNonce("empty"));
        }
        if !nonce.bytes().all(is_printable) {
            return Err(AuthError::InvalidNonce(
                "only printable ASCII other than ',' is allowed",
            ));
        }
        Ok(Self(nonce.to_owned()))
    }

    /// The nonce text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the client says about channel binding in its GS2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramBinding {
    /// `n`: the client does not support channel binding (no TLS, or `channel_binding=disable`).
    NotSupported,
    /// `y`: the client supports channel binding but the server did not offer
    /// SCRAM-SHA-256-PLUS. A server that did offer it rejects this (downgrade protection).
    SupportedNotUsed,
    /// `p=tls-server-end-point`: SCRAM-SHA-256-PLUS with this binding data.
    TlsServerEndPoint(ChannelBinding),
}

/// Client side of one SCRAM-SHA-256(-PLUS) exchange. Sans-IO: feed it the server's SASL
/// messages and send what it returns.
///
/// ```
/// use pg_walstream_auth::{ClientNonce, Password, ScramBinding, ScramClient};
/// // RFC 7677 §3 test vector.
/// let mut scram = ScramClient::new(
///     "user",
///     &Password::from("pencil"),
///     ScramBinding::NotSupported,
///     ClientNonce::new("rOprNGfwEbeRWgbNEkqO")?,
/// );
/// assert_eq!(scram.client_first_message(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
/// let client_final = scram.handle_server_first(
///     b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
/// )?;
/// assert_eq!(
///     client_final,
///     b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
///       p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
/// );
/// scram.handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")?;
/// assert!(scram.is_complete());
/// # Ok::<(), pg_walstream_auth::AuthError>(())
/// ```
#[derive(Clone)]
pub struct ScramClient {
    password: Vec<u8>,
    binding: ScramBinding,
    nonce: ClientNonce,
    client_first: Vec<u8>,
    gs2_header_len: usize,
    max_iterations: u32,
    state: State,
}

#[derive(Clone)]
enum State {
    AwaitServerFirst,
    /// The server-first-message was accepted; the salted password is being derived.
    Deriving {
        server_first: Vec<u8>,
        server_nonce: Vec<u8>,
    },
    AwaitServerFinal {
        server_key: [u8; 32],
        auth_message: Vec<u8>,
    },
    Complete,
    Failed,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::AwaitServerFirst => "await-server-first",
            State::Deriving { .. } => "deriving-key",
            State::AwaitServerFinal { .. } => "await-server-final",
            State::Complete => "complete",
            State::Failed => "failed",
        };
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism())
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Starts an exchange.
    ///
    /// `username` goes into the `n=` attribute. PostgreSQL ignores it (the role comes from the
    /// startup message) and libpq sends it empty; pass `""` unless replaying a vector.
    /// The password is SASLprep'd as PostgreSQL does ([`Password::sasl_prepared`]).
    pub fn new(
        username: &str,
        password: &Password,
        binding: ScramBinding,
        nonce: ClientNonce,
    ) -> Self {
        let gs2_header: &str = match &binding {
            ScramBinding::NotSupported => "n,,",
            ScramBinding::SupportedNotUsed => "y,,",
            ScramBinding::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        };
        let mut client_first = Vec::with_capacity(gs2_header.len() + username.len() + 32);
        client_first.extend_from_slice(gs2_header.as_bytes());
        client_first.extend_from_slice(b"n=");
        for byte in username.bytes() {
            match byte {
                b',' => client_first.extend_from_slice(b"=2C"),
                b'=' => client_first.extend_from_slice(b"=3D"),
                other => client_first.push(other),
            }
        }
        client_first.extend_from_slice(b",r=");
        client_first.extend_from_slice(nonce.as_str().as_bytes());
        Self {
            password: password.sasl_prepared().into_owned(),
            binding,
            nonce,
            client_first,
            gs2_header_len: gs2_header.len(),
            max_iterations: DEFAULT_MAX_SCRAM_ITERATIONS,
            state: State::AwaitServerFirst,
        }
    }

    /// Refuses a server-first-message whose iteration count is above `max` (default
    /// [`DEFAULT_MAX_SCRAM_ITERATIONS`]) with [`AuthError::ScramIterationsTooHigh`].
    #[must_use]
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> Mechanism {
        match self.binding {
            ScramBinding::TlsServerEndPoint(_) => Mechanism::ScramSha256Plus,
            _ => Mechanism::ScramSha256,
        }
    }

    /// The client-first-message, the payload of SASLInitialResponse.
    pub fn client_first_message(&self) -> &[u8] {
        &self.client_first
    }

    /// Whether the server's signature has been verified.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Whether this exchange used channel binding (SCRAM-SHA-256-PLUS).
    pub fn channel_bound(&self) -> bool {
        matches!(self.binding, ScramBinding::TlsServerEndPoint(_))
    }

    /// Handles the server-first-message (AuthenticationSASLContinue) and returns the
    /// client-final-message to send in a SASLResponse.
    ///
    /// This runs the key derivation (PBKDF2 with the server's iteration count) on the calling
    /// thread. An async driver should call [`Self::server_first`], run
    /// [`KeyDerivation::derive`] on a blocking thread, and finish with
    /// [`Self::client_final`]; this method is exactly those three steps.
    ///
    /// # Errors
    /// As [`Self::server_first`].
    pub fn handle_server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let derivation = self.server_first(message)?;
        let salted = derivation.derive();
        self.client_final(&salted)
    }

    /// Checks the server-first-message (AuthenticationSASLContinue) and returns the key
    /// derivation it asks for. Cheap: the expensive part is [`KeyDerivation::derive`], which
    /// the caller runs where CPU-bound work belongs, then passes to [`Self::client_final`].
    ///
    /// # Errors
    /// [`AuthError::MalformedScramMessage`] for grammar violations,
    /// [`AuthError::NonceMismatch`] when the server nonce does not extend ours,
    /// [`AuthError::ScramIterationsTooHigh`] when the iteration count is above the maximum,
    /// [`AuthError::UnexpectedMessage`] when called out of order. After an error the exchange
    /// is dead.
    pub fn server_first(&mut self, message: &[u8]) -> Result<KeyDerivation, AuthError> {
        if !matches!(self.state, State::AwaitServerFirst) {
            self.state = State::Failed;
            return Err(AuthError::UnexpectedMessage(
                "SCRAM server-first-message out of order",
            ));
        }
        self.state = State::Failed;
        let first = ServerFirst::parse(message)?;
        if first.nonce.len() <= self.nonce.0.len()
            || !first.nonce.starts_with(self.nonce.0.as_bytes())
        {
            return Err(AuthError::NonceMismatch);
        }
        if first.iterations > self.max_iterations {
            return Err(AuthError::ScramIterationsTooHigh {
                iterations: first.iterations,
                max: self.max_iterations,
            });
        }
        let derivation = KeyDerivation {
            password: self.password.clone(),
            salt: first.salt,
            iterations: first.iterations,
        };
        self.state = State::Deriving {
            server_first: message.to_vec(),
            server_nonce: first.nonce.to_vec(),
        };
        Ok(derivation)
    }

    /// Builds the client-final-message (the payload of SASLResponse) from the salted
    /// password that [`Self::server_first`]'s derivation produced.
    ///
    /// # Errors
    /// [`AuthError::UnexpectedMessage`] unless [`Self::server_first`] succeeded just before.
    pub fn client_final(&mut self, salted: &SaltedPassword) -> Result<Vec<u8>, AuthError> {
        let State::Deriving {
            server_first,
            server_nonce,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(AuthError::UnexpectedMessage(
                "SCRAM client-final-message without a server-first-message",
            ));
        };
        let client_key = hmac(&salted.0, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted.0, b"Server Key");

        let mut binding_input = self.client_first[..self.gs2_header_len].to_vec();
        if let ScramBinding::TlsServerEndPoint(binding) = &self.binding {
            binding_input.extend_from_slice(binding.data());
        }
        let mut client_final = Vec::with_capacity(128);
        client_final.extend_from_slice(b"c=");
        client_final.extend_from_slice(BASE64.encode(&binding_input).as_bytes());
        client_final.extend_from_slice(b",r=");
        client_final.extend_from_slice(&server_nonce);

        let bare = &self.client_first[self.gs2_header_len..];
        let mut auth_message =
            Vec::with_capacity(bare.len() + server_first.len() + client_final.len() + 2);
        auth_message.extend_from_slice(bare);
        auth_message.push(b',');
        auth_message.extend_from_slice(&server_first);
        auth_message.push(b',');
        auth_message.extend_from_slice(&client_final);

        let client_signature = hmac(&stored_key, &auth_message);
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        client_final.extend_from_slice(b",p=");
        client_final.extend_from_slice(BASE64.encode(proof).as_bytes());

        self.state = State::AwaitServerFinal {
            server_key,
            auth_message,
        };
        Ok(client_final)
    }

    /// Handles the server-final-message (AuthenticationSASLFinal) and verifies the server's
    /// signature. Only after this succeeds has the server proven it knows the password.
    ///
    /// # Errors
    /// [`AuthError::ServerError`] for an `e=` message,
    /// [`AuthError::ServerSignatureMismatch`] when the signature is wrong,
    /// [`AuthError::MalformedScramMessage`] for grammar violations,
    /// [`AuthError::UnexpectedMessage`] when called out of order.
    pub fn handle_server_final(&mut self, message: &[u8]) -> Result<(), AuthError> {
        let State::AwaitServerFinal {
            server_key,
            auth_message,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(AuthError::UnexpectedMessage(
                "SCRAM server-final-message out of order",
            ));
        };
        let malformed = |reason| AuthError::MalformedScramMessage {
            stage: ScramStage::ServerFinal,
            reason,
        };
        if let Some(error) = message.strip_prefix(b"e=") {
            let text = String::from_utf8_lossy(error);
            return Err(AuthError::ServerError(
                text.split(',').next().unwrap_or("").to_owned(),
            ));
        }
        let encoded = message
            .strip_prefix(b"v=")
            .ok_or_else(|| malformed("expected a verifier (v=) attribute"))?;
        if encoded.contains(&b',') {
            return Err(malformed("garbage after the verifier"));
        }
        let signature = BASE64
            .decode(encoded)
            .map_err(|_| malformed("the verifier is not valid base64"))?;
        if signature.len() != 32 {
            return Err(malformed("the verifier has the wrong length"));
        }
        let mut mac = new_hmac(&server_key);
        mac.update(&auth_message);
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::ServerSignatureMismatch)?;
        self.state = State::Complete;
        Ok(())
    }
}

/// The expensive step of a SCRAM exchange: PBKDF2-HMAC-SHA-256 of the password with the
/// server's salt and iteration count. `Send + 'static`, so a driver can run it on a blocking
/// thread (e.g. `tokio::task::spawn_blocking`); it does no I/O. `Debug` hides the password.
#[derive(Clone)]
pub struct KeyDerivation {
    password: Vec<u8>,
    salt: Vec<u8>,
    iterations: u32,
}

impl fmt::Debug for KeyDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDerivation")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

impl KeyDerivation {
    /// The iteration count the server asked for (already checked against the maximum).
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Runs PBKDF2: CPU-bound, proportional to [`Self::iterations`].
    pub fn derive(self) -> SaltedPassword {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &self.salt, self.iterations, &mut salted);
        SaltedPassword(salted)
    }
}

/// The result of [`KeyDerivation::derive`] (RFC 5802 `SaltedPassword`); `Debug` hides it.
#[derive(Clone)]
pub struct SaltedPassword([u8; 32]);

impl fmt::Debug for SaltedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SaltedPassword(<redacted>)")
    }
}

/// The parsed server-first-message.
struct ServerFirst<'a> {
    nonce: &'a [u8],
    salt: Vec<u8>,
    iterations: u32,
}

impl<'a> ServerFirst<'a> {
    fn parse(message: &'a [u8]) -> Result<Self, AuthError> {
        let malformed = |reason| AuthError::MalformedScramMessage {
            stage: ScramStage::ServerFirst,
            reason,
        };
        if message.starts_with(b"m=") {
            return Err(malformed("mandatory extension (m=) is not supported"));
        }
        let mut attributes = message.split(|b| *b == b',');
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix(b"r="))
            .ok_or_else(|| malformed("expected a nonce (r=) attribute"))?;
        if nonce.is_empty() || !nonce.iter().copied().all(is_printable) {
            return Err(malformed("the nonce is empty or not printable"));
        }
        let salt = attributes
            .next()
            .and_then(|a| a.strip_prefix(b"s="))
            .ok_or_else(|| malformed("expected a salt (s=) attribute"))?;
        let salt = BASE64
            .decode(salt)
            .map_err(|_| malformed("the salt is not valid base64"))?;
        if salt.is_empty() {
            return Err(malformed("the salt is empty"));
        }
        let iterations = attributes
            .next()
            .and_then(|a| a.strip_prefix(b"i="))
            .ok_or_else(|| malformed("expected an iteration count (i=) attribute"))?;
        let iterations = std::str::from_utf8(iterations)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|i| *i > 0)
            .ok_or_else(|| malformed("the iteration count is not a positive integer"))?;
        if attributes.next().is_some() {
            return Err(malformed("garbage after the iteration count"));
        }
        Ok(Self {
            nonce,
            salt,
            iterations,
        })
    }
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E.
fn is_printable(byte: u8) -> bool {
    (0x21..=0x7e).contains(&byte) && byte != b','
}

fn new_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = new_hmac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
