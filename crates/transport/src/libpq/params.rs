//! Turning a parsed [`Config`] into libpq connection keywords, so both backends connect from
//! the same configuration (and the same environment and password-file resolution).

use crate::conninfo::{Config, Replication, SslNegotiation, SslRootCert, Target};
use crate::error::{Result, TransportError};

/// The `(keyword, value)` pairs for `PQconnectStartParams`, given libpq version
/// `library_version` (settings that version cannot honour are errors, not silently dropped).
pub(crate) fn connection_params(
    config: &Config,
    library_version: u32,
) -> Result<Vec<(&'static str, String)>> {
    let needs = |feature: &str, major: u32| -> Result<()> {
        if library_version >= major * 10_000 {
            Ok(())
        } else {
            Err(TransportError::Config(format!(
                "{feature} needs libpq {major} or later; the linked libpq is {}",
                library_version / 10_000
            )))
        }
    };
    let mut params: Vec<(&'static str, String)> = Vec::new();
    let mut hosts = Vec::new();
    let mut hostaddrs = Vec::new();
    let mut ports = Vec::new();
    for host in &config.hosts {
        match &host.target {
            Target::Tcp { host, hostaddr } => {
                hosts.push(host.clone());
                hostaddrs.push(hostaddr.map(|addr| addr.to_string()).unwrap_or_default());
            }
            Target::Unix { dir } => {
                hosts.push(dir.display().to_string());
                hostaddrs.push(String::new());
            }
        }
        ports.push(host.port.to_string());
    }
    params.push(("host", hosts.join(",")));
    if hostaddrs.iter().any(|addr| !addr.is_empty()) {
        params.push(("hostaddr", hostaddrs.join(",")));
    }
    params.push(("port", ports.join(",")));
    params.push(("user", config.user.clone()));
    params.push(("dbname", config.dbname.clone()));
    if let Some(password) = &config.password {
        let text = String::from_utf8(password.as_bytes().to_vec()).map_err(|_| {
            TransportError::Config("the libpq backend needs a UTF-8 password".into())
        })?;
        params.push(("password", text));
    }
    if let Some(passfile) = &config.passfile {
        params.push(("passfile", passfile.display().to_string()));
    }
    match config.replication {
        Replication::Off => {}
        Replication::Physical => params.push(("replication", "true".into())),
        Replication::Database => params.push(("replication", "database".into())),
    }
    params.push(("sslmode", config.ssl_mode.as_str().into()));
    match &config.ssl_root_cert {
        SslRootCert::Default { .. } => {}
        SslRootCert::File(path) => params.push(("sslrootcert", path.display().to_string())),
        SslRootCert::System => {
            needs("sslrootcert=system", 16)?;
            params.push(("sslrootcert", "system".into()));
        }
    }
    if let Some(cert) = &config.ssl_cert {
        params.push(("sslcert", cert.display().to_string()));
    }
    if let Some(key) = &config.ssl_key {
        params.push(("sslkey", key.display().to_string()));
    }
    if config.ssl_negotiation == SslNegotiation::Direct {
        needs("sslnegotiation=direct", 17)?;
        params.push(("sslnegotiation", "direct".into()));
    }
    params.push(("channel_binding", config.channel_binding.as_str().into()));
    let require_auth = config.require_auth.to_string();
    if !require_auth.is_empty() {
        needs("require_auth", 16)?;
        params.push(("require_auth", require_auth));
    }
    if let Some(timeout) = config.connect_timeout {
        params.push(("connect_timeout", timeout.as_secs().max(1).to_string()));
    }
    params.push((
        "keepalives",
        if config.keepalives { "1" } else { "0" }.into(),
    ));
    if let Some(idle) = config.keepalives_idle {
        params.push(("keepalives_idle", idle.as_secs().to_string()));
    }
    if let Some(interval) = config.keepalives_interval {
        params.push(("keepalives_interval", interval.as_secs().to_string()));
    }
    if let Some(count) = config.keepalives_count {
        params.push(("keepalives_count", count.to_string()));
    }
    if let Some(name) = &config.application_name {
        params.push(("application_name", name.clone()));
    }
    if let Some(options) = &config.options {
        params.push(("options", options.clone()));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(conninfo: &str, version: u32) -> Result<Vec<(&'static str, String)>> {
        connection_params(&Config::parse(conninfo).expect("valid conninfo"), version)
    }

    fn get<'a>(params: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn renders_hosts_ports_and_replication() {
        let p = params(
            "host=a,/tmp/sock port=5433,5434 user=u dbname=d replication=database password=pw",
            150_000,
        )
        .unwrap();
        assert_eq!(get(&p, "host"), Some("a,/tmp/sock"));
        assert_eq!(get(&p, "port"), Some("5433,5434"));
        assert_eq!(get(&p, "replication"), Some("database"));
        assert_eq!(get(&p, "password"), Some("pw"));
        assert_eq!(get(&p, "hostaddr"), None);
    }

    #[test]
    fn settings_the_library_cannot_honour_are_errors() {
        let error = params(
            "host=a user=u sslnegotiation=direct sslmode=require",
            150_018,
        )
        .unwrap_err();
        assert!(error.to_string().contains("needs libpq 17"), "{error}");
        assert!(
            params(
                "host=a user=u sslnegotiation=direct sslmode=require",
                170_000
            )
            .is_ok()
        );
        assert!(params("host=a user=u require_auth=md5", 150_018).is_err());
    }
}
