//! Turning a [`Config`] into what the native backend dials, once per connect.

use std::path::Path;

use pg_walstream_auth::AuthConfig;

use super::connect::{Host, NativeOptions};
use super::socket::Keepalive;
use super::tls::{Roots, TlsSettings, Verify};
use crate::conninfo::{Config, SslMode, SslNegotiation, SslRootCert, Target};
use crate::error::{Result, TransportError};
use crate::message::backend::DEFAULT_MAX_FRAME_LEN;

/// libpq's hint when a verifying sslmode has no root certificate file.
const NO_ROOT_HINT: &str = "either provide the file, use the system's trusted roots with sslrootcert=system, \
                            or change sslmode to disable server certificate verification";

impl NativeOptions {
    /// Resolves the configuration: hosts and per-host passwords, the TLS settings (checked
    /// now with libpq's rules for root and client certificate files, built on first use),
    /// startup parameters and socket options.
    pub(crate) fn from_config(config: &Config) -> Result<Self> {
        let hosts = config
            .hosts
            .iter()
            .map(|h| {
                let password = config.password_for(h).cloned();
                match &h.target {
                    #[cfg(unix)]
                    Target::Unix { .. } => Ok(Host::Unix {
                        path: h
                            .socket_path()
                            .ok_or(TransportError::Config("unix socket without a path".into()))?,
                        password,
                    }),
                    #[cfg(not(unix))]
                    Target::Unix { .. } => Err(TransportError::Config(
                        "unix sockets are not supported on this platform".into(),
                    )),
                    Target::Tcp { host, hostaddr } => Ok(Host::Tcp {
                        host: host.clone(),
                        hostaddr: *hostaddr,
                        port: h.port,
                        password,
                    }),
                }
            })
            .collect::<Result<Vec<_>>>()?;

        let mut startup = vec![("user".to_owned(), config.user.clone())];
        if !config.dbname.is_empty() {
            startup.push(("database".to_owned(), config.dbname.clone()));
        }
        if let Some(replication) = config.replication.startup_value() {
            startup.push(("replication".to_owned(), replication.to_owned()));
        }
        if let Some(name) = &config.application_name {
            startup.push(("application_name".to_owned(), name.clone()));
        }
        if let Some(options) = &config.options {
            startup.push(("options".to_owned(), options.clone()));
        }
        for (name, value) in &config.session_settings {
            startup.push((name.clone(), value.clone()));
        }
        // Result values and messages are handed out as UTF-8 text.
        startup.push(("client_encoding".to_owned(), "UTF8".to_owned()));

        Ok(NativeOptions {
            hosts,
            ssl_mode: config.ssl_mode,
            direct_tls: config.ssl_negotiation == SslNegotiation::Direct,
            tls: tls_settings(config)?,
            startup,
            auth: AuthConfig::new(config.user.clone())
                .max_scram_iterations(config.max_scram_iterations)
                .channel_binding(config.channel_binding)
                .require_auth(config.require_auth.clone()),
            connect_timeout: config.connect_timeout,
            keepalive: Keepalive {
                enabled: config.keepalives,
                idle: config.keepalives_idle,
                interval: config.keepalives_interval,
                count: config.keepalives_count,
            },
            max_frame: DEFAULT_MAX_FRAME_LEN,
            recv_buffer_size: config.recv_buffer_size,
            max_read_size: config.max_read_size,
        })
    }
}

/// libpq (`initialize_SSL`): an existing root certificate file always turns on chain
/// verification; `verify-ca`/`verify-full` without one is an error; `verify-full` also checks
/// the host name. A client certificate is sent when its file exists.
fn tls_settings(config: &Config) -> Result<Option<TlsSettings>> {
    if config.ssl_mode == SslMode::Disable
        || config
            .hosts
            .iter()
            .all(crate::conninfo::HostConfig::is_unix)
    {
        return Ok(None);
    }
    let verifying = matches!(config.ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull);
    let roots = match &config.ssl_root_cert {
        SslRootCert::System => Some(Roots::System),
        SslRootCert::File(path) | SslRootCert::Default { path: Some(path) } => {
            root_file(path, verifying)?
        }
        SslRootCert::Default { path: None } if verifying => {
            return Err(TransportError::Config(format!(
                "could not get home directory to locate root certificate file; {NO_ROOT_HINT}"
            )));
        }
        SslRootCert::Default { path: None } => None,
    };
    let verify = match (config.ssl_mode, &roots) {
        (SslMode::VerifyFull, _) | (_, Some(Roots::System)) => Verify::Full,
        (_, Some(Roots::File(_))) => Verify::Chain,
        (_, None) => Verify::None,
    };
    let client = match (&config.ssl_cert, &config.ssl_key) {
        (Some(cert), Some(key)) if cert.exists() => {
            super::key_file::check(key)?;
            Some((cert.clone(), key.clone()))
        }
        (Some(cert), None) if cert.exists() => {
            return Err(TransportError::Config(format!(
                "client certificate \"{}\" given without sslkey",
                cert.display()
            )));
        }
        _ => None,
    };
    Ok(Some(TlsSettings::new(verify, roots, client)))
}

fn root_file(path: &Path, verifying: bool) -> Result<Option<Roots>> {
    if path.exists() {
        Ok(Some(Roots::File(path.to_path_buf())))
    } else if verifying {
        Err(TransportError::Config(format!(
            "root certificate file \"{}\" does not exist; {NO_ROOT_HINT}",
            path.display()
        )))
    } else {
        Ok(None)
    }
}
