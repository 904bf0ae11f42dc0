//! Turning a parsed [`Config`] into libpq connection keywords, so both backends connect from
//! the same configuration (and the same environment and password-file resolution).
//!
//! libpq fills every option the caller leaves out from its environment variable, and an empty
//! value counts as left out (`conninfo_add_defaults` in `fe-connect.c`): there is no switch to
//! turn the environment off. So every option is given explicitly — the configuration's
//! value, or for options pg-walstream does not implement the value that means what the
//! native backend does (`client_encoding=UTF8`, `gssencmode=disable`, ...).
//! [`check_environment`] then refuses a connection for which libpq would still take
//! something from the process environment that the configuration does not contain.

use crate::conninfo::libpq_env::session_settings;
use crate::conninfo::{
    Config, ProcessEnvironment, Replication, SslNegotiation, SslRootCert, Target,
};
use crate::error::{Result, TransportError};

/// Options the configuration does not carry, with the value that means what the native
/// backend does. Each is passed when the linked libpq has it (every one has an environment
/// variable, so an option libpq lacks cannot be taken from the environment either).
const NEUTRAL_OPTIONS: &[(&str, &str)] = &[
    // Result values and messages are handed out as UTF-8 text.
    ("client_encoding", "UTF8"),
    // The native backend never uses GSSAPI encryption.
    ("gssencmode", "disable"),
    ("krbsrvname", "postgres"),
    ("sslcompression", "0"),
    ("target_session_attrs", "any"),
    ("ssl_min_protocol_version", "TLSv1.2"),
    ("sslsni", "1"),
    ("load_balance_hosts", "disable"),
    ("sslcertmode", "allow"),
    ("gssdelegation", "0"),
    ("min_protocol_version", "3.0"),
    ("max_protocol_version", "3.0"),
];

/// The `(keyword, value)` pairs for `PQconnectStartParams`, given libpq version
/// `library_version` (settings that version cannot honour are errors, not silently dropped)
/// and its options with environment variables, `options` (`PQconndefaults`).
pub(crate) fn connection_params(
    config: &Config,
    library_version: u32,
    options: &[(String, String)],
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
        // The file the configuration resolved (from HOME), not libpq's own lookup.
        SslRootCert::Default { path: Some(path) } | SslRootCert::File(path) => {
            params.push(("sslrootcert", path.display().to_string()));
        }
        SslRootCert::Default { path: None } => {}
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
    } else if library_version >= 170_000 {
        params.push(("sslnegotiation", "postgres".into()));
    }
    params.push(("channel_binding", config.channel_binding.as_str().into()));
    let require_auth = config.require_auth.to_string();
    if !require_auth.is_empty() {
        needs("require_auth", 16)?;
        params.push(("require_auth", require_auth));
    }
    // 0 is libpq's "wait forever", which `None` means.
    let timeout = config.connect_timeout.map_or(0, |t| t.as_secs().max(1));
    params.push(("connect_timeout", timeout.to_string()));
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
    for (keyword, value) in NEUTRAL_OPTIONS {
        if *keyword == "client_encoding" || options.iter().any(|(known, _)| known == keyword) {
            params.push((keyword, (*value).to_owned()));
        }
    }
    Ok(params)
}

/// Refuses what libpq would still take from the process environment although the
/// configuration does not contain it: a variable of an option `params` leaves out (e.g.
/// `PGSSLCRL`, which no value can neutralise, or `PGPASSWORD` when the configuration was
/// resolved from another environment), and session settings (`PGTZ`, ...) other than the
/// configuration's. `options` are libpq's `(keyword, variable)` pairs (`PQconndefaults`).
pub(crate) fn check_environment(
    config: &Config,
    params: &[(&'static str, String)],
    options: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    for (keyword, var) in options {
        if params.iter().any(|(k, _)| k == keyword) {
            continue;
        }
        if env(var).is_some_and(|value| !value.is_empty()) {
            return Err(TransportError::Config(format!(
                "environment variable {var} is set, and libpq would apply it as {keyword}, which the connection configuration does not contain; unset it, or resolve the configuration from this environment"
            )));
        }
    }
    let lookup = |name: &str| env(name);
    let sent_by_libpq = session_settings(&lookup);
    if sent_by_libpq != config.session_settings {
        return Err(TransportError::Config(format!(
            "libpq would send the session settings {sent_by_libpq:?} (from PGDATESTYLE, PGTZ, PGGEQO in the process environment), but the connection configuration has {:?}",
            config.session_settings
        )));
    }
    Ok(())
}

/// [`check_environment`] against the process environment.
pub(crate) fn check_process_environment(
    config: &Config,
    params: &[(&'static str, String)],
    options: &[(String, String)],
) -> Result<()> {
    use crate::conninfo::Environment as _;
    check_environment(config, params, options, &|name| {
        ProcessEnvironment.var(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options (with variables) of a libpq 15 built with GSSAPI, as `PQconndefaults` lists
    /// them, in part.
    fn libpq15_options() -> Vec<(String, String)> {
        [
            ("client_encoding", "PGCLIENTENCODING"),
            ("gssencmode", "PGGSSENCMODE"),
            ("krbsrvname", "PGKRBSRVNAME"),
            ("target_session_attrs", "PGTARGETSESSIONATTRS"),
            ("sslsni", "PGSSLSNI"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn params(conninfo: &str, version: u32) -> Result<Vec<(&'static str, String)>> {
        let mut options = libpq15_options();
        if version >= 180_000 {
            options.push(("load_balance_hosts".into(), "PGLOADBALANCEHOSTS".into()));
            options.push(("max_protocol_version".into(), "PGMAXPROTOCOLVERSION".into()));
        }
        connection_params(
            &Config::parse(conninfo).expect("valid conninfo"),
            version,
            &options,
        )
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
    fn unsupported_options_get_explicit_neutral_values() {
        let p = params("host=a user=u", 150_018).unwrap();
        assert_eq!(get(&p, "client_encoding"), Some("UTF8"));
        assert_eq!(get(&p, "gssencmode"), Some("disable"));
        assert_eq!(get(&p, "target_session_attrs"), Some("any"));
        assert_eq!(get(&p, "connect_timeout"), Some("0"));
        assert_eq!(get(&p, "krbsrvname"), Some("postgres"));
        assert_eq!(get(&p, "sslnegotiation"), None, "not in libpq 15");
        assert_eq!(get(&p, "load_balance_hosts"), None, "not in libpq 15");
        let p = params("host=a user=u", 180_000).unwrap();
        assert_eq!(get(&p, "load_balance_hosts"), Some("disable"));
        assert_eq!(get(&p, "max_protocol_version"), Some("3.0"));
        assert_eq!(get(&p, "sslnegotiation"), Some("postgres"));
    }

    #[test]
    fn the_environment_check_names_what_libpq_would_take() {
        let config = Config::parse_with_env("host=a user=u", &[("HOME", "/h")]).unwrap();
        let p = connection_params(&config, 150_018, &libpq15_options()).unwrap();
        let options = [
            ("sslcrl".to_owned(), "PGSSLCRL".to_owned()),
            ("client_encoding".to_owned(), "PGCLIENTENCODING".to_owned()),
            ("password".to_owned(), "PGPASSWORD".to_owned()),
        ];
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        check_environment(
            &config,
            &p,
            &options,
            &env(&[("PGCLIENTENCODING", "LATIN1")]),
        )
        .expect("neutralised by an explicit keyword");
        for var in ["PGSSLCRL", "PGPASSWORD"] {
            let vars: &'static [(&'static str, &'static str)] = if var == "PGSSLCRL" {
                &[("PGSSLCRL", "/x")]
            } else {
                &[("PGPASSWORD", "pw")]
            };
            let error = check_environment(&config, &p, &options, &env(vars)).unwrap_err();
            assert!(error.to_string().contains(var), "{error}");
            assert!(!error.to_string().contains("pw\""), "{error}");
        }
        let error = check_environment(&config, &p, &options, &env(&[("PGTZ", "UTC")])).unwrap_err();
        assert!(error.to_string().contains("timezone"), "{error}");
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
