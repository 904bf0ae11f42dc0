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
    state: State,
}

#[derive(Clone)]
enum State {
    AwaitServerFirst,
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
            state: State::AwaitServerFirst,
        }
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
    /// # Errors
    /// [`AuthError::MalformedScramMessage`] for grammar violations,
    /// [`AuthError::NonceMismatch`] when the server nonce does not extend ours,
    /// [`AuthError::UnexpectedMessage`] when called out of order. After an error the exchange
    /// is dead.
    pub fn handle_server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
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

        let mut salted_password = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            &self.password,
            &first.salt,
            first.iterations,
            &mut salted_password,
        );
        let client_key = hmac(&salted_password, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted_password, b"Server Key");

        let mut binding_input = self.client_first[..self.gs2_header_len].to_vec();
        if let ScramBinding::TlsServerEndPoint(binding) = &self.binding {
            binding_input.extend_from_slice(binding.data());
        }
        let mut client_final = Vec::with_capacity(128);
        client_final.extend_from_slice(b"c=");
        client_final.extend_from_slice(BASE64.encode(&binding_input).as_bytes());
        client_final.extend_from_slice(b",r=");
        client_final.extend_from_slice(first.nonce);

        let bare = &self.client_first[self.gs2_header_len..];
        let mut auth_message =
            Vec::with_capacity(bare.len() + message.len() + client_final.len() + 2);
        auth_message.extend_from_slice(bare);
        auth_message.push(b',');
        auth_message.extend_from_slice(message);
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
