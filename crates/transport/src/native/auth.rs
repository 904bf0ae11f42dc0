//! Drives `pg-walstream-auth`'s sans-IO [`Authenticator`] over the native stream.
//!
//! The authenticator applies libpq's policy (`require_auth`, `channel_binding`, the SCRAM
//! server signature check); this module only moves messages and supplies the server's
//! certificate for `tls-server-end-point` channel binding.

use pg_walstream_auth::{
    AuthConfig, AuthRequest, AuthResponse, AuthStep, Authenticator, ChannelSecurity, KeyDerivation,
    SaltedPassword,
};

use super::framed::Framed;
use super::session::message_name;
use crate::error::{Result, TransportError};
use crate::message::{Authentication, BackendMessage, frontend};

/// Runs the authentication exchange up to AuthenticationOk.
pub(crate) async fn authenticate(io: &mut Framed, config: &AuthConfig) -> Result<()> {
    let security = match io.stream.server_certificate() {
        Some(der) => ChannelSecurity::Tls {
            server_certificate_der: der.to_vec(),
        },
        None if io.stream.is_tls() => ChannelSecurity::Tls {
            server_certificate_der: Vec::new(),
        },
        None => ChannelSecurity::Plaintext,
    };
    let mut authenticator = Authenticator::new(config.clone(), security);
    loop {
        let request = match io.read_message().await? {
            BackendMessage::Authentication(request) => request,
            BackendMessage::ErrorResponse(e) => return Err(TransportError::server(e)),
            BackendMessage::NoticeResponse(n) => {
                tracing::info!(target: "pg_walstream::server", "{n}");
                continue;
            }
            BackendMessage::NegotiateProtocolVersion { .. } => continue,
            other => {
                return Err(TransportError::Unexpected {
                    got: message_name(&other),
                    during: "authenticating",
                });
            }
        };
        let request = match &request {
            Authentication::Ok => AuthRequest::Ok,
            Authentication::CleartextPassword => AuthRequest::CleartextPassword,
            Authentication::Md5Password { salt } => AuthRequest::Md5Password { salt: *salt },
            Authentication::Sasl { mechanisms } => AuthRequest::Sasl { mechanisms },
            Authentication::SaslContinue(data) => AuthRequest::SaslContinue(data),
            Authentication::SaslFinal(data) => AuthRequest::SaslFinal(data),
            Authentication::Unsupported(code) => AuthRequest::Other(*code),
        };
        let response = match authenticator.step(request)? {
            AuthStep::Send(response) => response,
            AuthStep::Derive(derivation) => {
                let salted = derive_off_runtime(derivation).await?;
                authenticator.finish_derivation(&salted)?
            }
            _ if authenticator.is_authenticated() => return Ok(()),
            _ => continue,
        };
        match response {
            AuthResponse::Password(password) => {
                frontend::password(&mut io.write_buf, &password)?;
            }
            AuthResponse::SaslInitialResponse { mechanism, data } => {
                frontend::sasl_initial_response(&mut io.write_buf, mechanism.name(), &data)?;
            }
            AuthResponse::SaslResponse(data) => {
                frontend::sasl_response(&mut io.write_buf, &data)?;
            }
            _ => {
                return Err(TransportError::Unexpected {
                    got: "an unknown authentication response",
                    during: "authenticating",
                });
            }
        }
        io.flush().await?;
    }
}

/// Runs the SCRAM key derivation (PBKDF2, as many rounds as the server asked for, up to the
/// configured maximum) on tokio's blocking pool, so it never stalls the async worker threads
/// and `connect_timeout` keeps working while it runs.
async fn derive_off_runtime(derivation: KeyDerivation) -> Result<SaltedPassword> {
    tokio::task::spawn_blocking(move || derivation.derive())
        .await
        .map_err(|e| TransportError::io(std::io::Error::other(e)))
}
