//! Test certificates: a CA, a server certificate for `localhost` and `127.0.0.1`, and a client
//! certificate for the `cert` user, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::TestkitError;

/// Paths of the PEM files of one server's certificates (all inside `dir`).
#[derive(Debug, Clone)]
pub struct CertPaths {
    dir: PathBuf,
}

impl CertPaths {
    /// The certificates kept in `dir` (created by [`generate`]).
    pub(crate) fn in_dir(dir: PathBuf) -> Self {
        CertPaths { dir }
    }

    /// The CA certificate that signed the server and client certificates.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server certificate (CN=localhost, SAN localhost and 127.0.0.1).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server's private key (owned by the server user, mode 0600).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The client certificate of the `cert` user.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// The client certificate's private key (mode 0600).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// A certificate for `localhost` signed by a different, untrusted CA (for wrong-CA tests).
    pub fn untrusted_ca_cert(&self) -> PathBuf {
        self.dir.join("untrusted-ca.crt")
    }
}

/// Generates the certificates into `dir`, the client one with common name `client_cn`.
pub(crate) fn generate(dir: &Path, client_cn: &str) -> Result<CertPaths, TestkitError> {
    let paths = CertPaths::in_dir(dir.to_path_buf());
    let ca = certificate_authority("pg-walstream test CA")?;
    let untrusted = certificate_authority("pg-walstream untrusted CA")?;

    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &ca)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, client_cn);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &ca)?;

    write(&paths.ca_cert(), &ca.pem(), 0o644)?;
    write(&paths.untrusted_ca_cert(), &untrusted.pem(), 0o644)?;
    write(&paths.server_cert(), &server_cert.pem(), 0o644)?;
    write(&paths.server_key(), &server_key.serialize_pem(), 0o600)?;
    write(&paths.client_cert(), &client_cert.pem(), 0o644)?;
    write(&paths.client_key(), &client_key.serialize_pem(), 0o600)?;
    Ok(paths)
}

fn certificate_authority(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, TestkitError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), TestkitError> {
    std::fs::write(path, contents).map_err(TestkitError::io("writing", path))?;
    crate::os::chmod(path, mode)
}
