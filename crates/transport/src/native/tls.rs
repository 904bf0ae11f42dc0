//! rustls client configuration with libpq's certificate verification levels.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{Result, TransportError};

/// ALPN protocol name PostgreSQL 17+ requires for direct TLS (and accepts after SSLRequest).
pub(crate) const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// How much of the server's certificate is checked (libpq's sslmode levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Encrypt only (`allow`, `prefer`, `require` without a root certificate file).
    None,
    /// Check the chain up to a trusted root, not the host name (`verify-ca`, and `require`
    /// when a root certificate file exists).
    Chain,
    /// Check the chain and that the certificate matches the host name (`verify-full`).
    Full,
}

/// Where trusted roots come from.
#[derive(Debug, Clone)]
pub(crate) enum Roots {
    /// A PEM file with one or more CA certificates.
    File(PathBuf),
    /// The Mozilla root program (`sslrootcert=system`), via webpki-roots.
    System,
}

/// What a connection's TLS client configuration is made of, checked when the connection
/// options are resolved; the configuration itself is built when a server first accepts TLS.
///
/// Like libpq, which reads certificate and key files only once the server has answered `S`,
/// a connection that never uses TLS (`sslmode=prefer` against a server without SSL, or
/// `allow` when plain works) never builds one: no files read, no crypto provider set up, and
/// none of rustls' code paged in. That was half a megabyte of a small consumer's resident
/// memory (docs/BENCHMARKS.md). Errors reading or parsing the files come from that first use.
#[derive(Debug)]
pub(crate) struct TlsSettings {
    verify: Verify,
    roots: Option<Roots>,
    /// Client certificate and private key files.
    client_cert: Option<(PathBuf, PathBuf)>,
    built: OnceLock<Arc<ClientConfig>>,
}

impl TlsSettings {
    pub(crate) fn new(
        verify: Verify,
        roots: Option<Roots>,
        client_cert: Option<(PathBuf, PathBuf)>,
    ) -> Self {
        TlsSettings {
            verify,
            roots,
            client_cert,
            built: OnceLock::new(),
        }
    }

    /// The client configuration, built on the first call and shared by later ones.
    ///
    /// # Errors
    /// As [`build`]; a failed build is tried again on the next call.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = self.built.get() {
            return Ok(Arc::clone(config));
        }
        let client = self
            .client_cert
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()));
        let config = build(self.verify, self.roots.as_ref(), client)?;
        Ok(Arc::clone(self.built.get_or_init(|| config)))
    }

    /// Whether the configuration has been built (for tests).
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.built.get().is_some()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn file_error(
    what: &'static str,
    path: &Path,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> TransportError {
    TransportError::TlsFile {
        what,
        path: path.display().to_string(),
        source: e.into(),
    }
}

fn load_roots(roots: &Roots) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::File(path) => {
            let what = "root certificate file";
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| file_error(what, path, e))?
            {
                let cert = cert.map_err(|e| file_error(what, path, e))?;
                store.add(cert).map_err(|e| file_error(what, path, e))?;
            }
            if store.is_empty() {
                return Err(file_error(what, path, "no certificates found"));
            }
        }
    }
    Ok(store)
}

/// Builds the client configuration for one connection policy.
///
/// # Errors
/// [`TransportError::TlsFile`] when a certificate or key file cannot be read or parsed,
/// [`TransportError::TlsConfig`] when rustls rejects the combination.
fn build(
    verify: Verify,
    roots: Option<&Roots>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TransportError::TlsConfig)?;
    let builder = match (verify, roots) {
        (Verify::None, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
        (Verify::Chain | Verify::Full, None) => {
            return Err(TransportError::Config(
                "certificate verification needs root certificates (sslrootcert)".into(),
            ));
        }
        (Verify::Chain | Verify::Full, Some(roots)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(load_roots(roots)?), provider)
                    .build()
                    .map_err(|e| {
                        TransportError::TlsConfig(rustls::Error::General(e.to_string()))
                    })?;
            if verify == Verify::Full {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
            }
        }
    };
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let what = "client certificate file";
            let certs = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| file_error(what, cert_path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error(what, cert_path, e))?;
            if certs.is_empty() {
                return Err(file_error(what, cert_path, "no certificates found"));
            }
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|e| file_error("private key file", key_path, e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(TransportError::TlsConfig)?
        }
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any certificate but still checks handshake signatures (libpq's `require`).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Full chain verification that ignores only a host-name mismatch (libpq's `verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_build_once_on_first_use() {
        let settings = TlsSettings::new(Verify::None, None, None);
        assert!(!settings.is_built());
        let first = settings.client_config().expect("no files to read");
        assert!(settings.is_built());
        let second = settings.client_config().expect("built");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.alpn_protocols, vec![ALPN_POSTGRESQL.to_vec()]);
    }

    #[test]
    fn an_unreadable_root_file_fails_every_build_and_nothing_is_kept() {
        let path = std::env::temp_dir().join(format!("pgws-roots-{}.crt", std::process::id()));
        std::fs::write(&path, "not a certificate\n").expect("write");
        let settings = TlsSettings::new(Verify::Chain, Some(Roots::File(path.clone())), None);
        for _ in 0..2 {
            let err = settings
                .client_config()
                .expect_err("no certificate in the file");
            assert!(
                matches!(&err, TransportError::TlsFile { what: "root certificate file", path: p, .. }
                    if *p == path.display().to_string()),
                "{err:?}"
            );
            assert!(!settings.is_built());
        }
        std::fs::remove_file(&path).expect("remove");
    }
}
