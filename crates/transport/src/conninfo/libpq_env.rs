//! libpq's other environment variables: those of settings pg-walstream does not implement,
//! and those libpq sends to the server as session settings.
//!
//! libpq reads a variable for every connection option it has (`PGCLIENTENCODING`,
//! `PGGSSENCMODE`, `PGSSLCRL`, ...) and sends `PGDATESTYLE`, `PGTZ` and `PGGEQO` as settings
//! in the startup packet. A user who sets one expects an effect; ignoring it silently would,
//! for some, drop a security property (`PGSSLCRL`, `PGREQUIREPEER`, `PGGSSENCMODE=require`).
//! So a variable of an unsupported option is accepted only with a value that means what
//! pg-walstream does anyway (`PGCLIENTENCODING=UTF8`, `PGGSSENCMODE=disable`, ...), and is an
//! error otherwise; the session settings become part of the [`Config`](super::Config), sent
//! by both backends.

use super::{ConnInfoError, Environment};

/// An option pg-walstream does not implement, the variable libpq reads for it, and whether a
/// value means what pg-walstream does regardless.
struct UnsupportedVariable {
    var: &'static str,
    key: &'static str,
    /// The accepted values, for the error message.
    accepted: &'static str,
    matches: fn(&str) -> bool,
}

fn one_of(value: &str, accepted: &[&str]) -> bool {
    accepted
        .iter()
        .any(|a| a.eq_ignore_ascii_case(value.trim()))
}

/// PostgreSQL's encoding-name matching: case and punctuation do not count (`utf-8`, `UTF8`,
/// `unicode` are all UTF8).
fn is_utf8_name(value: &str) -> bool {
    let cleaned: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    cleaned == "utf8" || cleaned == "unicode"
}

const UNSUPPORTED_VARIABLES: &[UnsupportedVariable] = &[
    UnsupportedVariable {
        var: "PGCLIENTENCODING",
        key: "client_encoding",
        accepted: "UTF8 (both backends always use UTF8)",
        matches: is_utf8_name,
    },
    UnsupportedVariable {
        var: "PGGSSENCMODE",
        key: "gssencmode",
        accepted: "disable or prefer (GSSAPI encryption is never used)",
        matches: |v| one_of(v, &["disable", "prefer"]),
    },
    UnsupportedVariable {
        var: "PGSSLCOMPRESSION",
        key: "sslcompression",
        accepted: "0 or 1 (TLS compression is never used)",
        matches: |v| one_of(v, &["0", "1"]),
    },
    UnsupportedVariable {
        var: "PGSSLSNI",
        key: "sslsni",
        accepted: "1 (SNI is always sent for host names)",
        matches: |v| one_of(v, &["1"]),
    },
    UnsupportedVariable {
        var: "PGTARGETSESSIONATTRS",
        key: "target_session_attrs",
        accepted: "any",
        matches: |v| one_of(v, &["any"]),
    },
    UnsupportedVariable {
        var: "PGLOADBALANCEHOSTS",
        key: "load_balance_hosts",
        accepted: "disable (hosts are tried in order)",
        matches: |v| one_of(v, &["disable"]),
    },
    UnsupportedVariable {
        var: "PGSSLCERTMODE",
        key: "sslcertmode",
        accepted: "allow (a client certificate is sent when its file exists)",
        matches: |v| one_of(v, &["allow"]),
    },
    UnsupportedVariable {
        var: "PGGSSDELEGATION",
        key: "gssdelegation",
        accepted: "0",
        matches: |v| one_of(v, &["0"]),
    },
    UnsupportedVariable {
        var: "PGSSLMINPROTOCOLVERSION",
        key: "ssl_min_protocol_version",
        accepted: "TLSv1, TLSv1.1 or TLSv1.2 (TLS 1.2 is always the minimum)",
        matches: |v| one_of(v, &["TLSv1", "TLSv1.1", "TLSv1.2"]),
    },
    UnsupportedVariable {
        var: "PGSSLMAXPROTOCOLVERSION",
        key: "ssl_max_protocol_version",
        accepted: "TLSv1.3 (TLS 1.3 is always allowed)",
        matches: |v| one_of(v, &["TLSv1.3"]),
    },
    UnsupportedVariable {
        var: "PGMINPROTOCOLVERSION",
        key: "min_protocol_version",
        accepted: "3.0",
        matches: |v| one_of(v, &["3.0"]),
    },
    UnsupportedVariable {
        var: "PGMAXPROTOCOLVERSION",
        key: "max_protocol_version",
        accepted: "3.0",
        matches: |v| one_of(v, &["3.0"]),
    },
    UnsupportedVariable {
        var: "PGSSLCRL",
        key: "sslcrl",
        accepted: "nothing (certificate revocation lists are not supported)",
        matches: |_| false,
    },
    UnsupportedVariable {
        var: "PGSSLCRLDIR",
        key: "sslcrldir",
        accepted: "nothing (certificate revocation lists are not supported)",
        matches: |_| false,
    },
    UnsupportedVariable {
        var: "PGREQUIREPEER",
        key: "requirepeer",
        accepted: "nothing (requirepeer is not supported)",
        matches: |_| false,
    },
    UnsupportedVariable {
        var: "PGSERVICE",
        key: "service",
        accepted: "nothing (service files are not supported)",
        matches: |_| false,
    },
];

/// Fails on the first variable of an unsupported option whose value pg-walstream cannot
/// honour. Empty values count as unset.
pub(crate) fn check_unsupported<E: Environment + ?Sized>(env: &E) -> Result<(), ConnInfoError> {
    for variable in UNSUPPORTED_VARIABLES {
        if let Some(value) = env.var(variable.var).filter(|v| !v.is_empty())
            && !(variable.matches)(&value)
        {
            return Err(ConnInfoError::UnsupportedEnvironment {
                var: variable.var,
                key: variable.key,
                value,
                accepted: variable.accepted,
            });
        }
    }
    Ok(())
}

/// The variables libpq turns into session settings in the startup packet
/// (`EnvironmentOptions` in libpq's `fe-connect.c`), with the setting each one sets.
pub(crate) const SESSION_SETTING_VARIABLES: [(&str, &str); 3] = [
    ("PGDATESTYLE", "datestyle"),
    ("PGTZ", "timezone"),
    ("PGGEQO", "geqo"),
];

/// The session settings libpq would send for `env`: every set variable of
/// [`SESSION_SETTING_VARIABLES`] whose value is not `default` (any case), as libpq does.
pub(crate) fn session_settings<E: Environment + ?Sized>(env: &E) -> Vec<(String, String)> {
    SESSION_SETTING_VARIABLES
        .iter()
        .filter_map(|(var, setting)| {
            env.var(var)
                .filter(|value| !value.eq_ignore_ascii_case("default"))
                .map(|value| ((*setting).to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutral_values_pass_and_others_are_named() {
        let ok = [
            ("PGCLIENTENCODING", "utf-8"),
            ("PGGSSENCMODE", "disable"),
            ("PGSSLSNI", "1"),
            ("PGSSLCRL", ""),
            ("PGTARGETSESSIONATTRS", "ANY"),
        ];
        check_unsupported(&ok).unwrap();
        for (var, value) in [
            ("PGCLIENTENCODING", "LATIN1"),
            ("PGGSSENCMODE", "require"),
            ("PGSSLCRL", "/etc/root.crl"),
            ("PGTARGETSESSIONATTRS", "read-write"),
            ("PGSSLMINPROTOCOLVERSION", "TLSv1.3"),
            ("PGSERVICE", "prod"),
        ] {
            let error = check_unsupported(&[(var, value)]).unwrap_err();
            assert!(
                matches!(&error, ConnInfoError::UnsupportedEnvironment { var: v, value: x, .. } if *v == var && x == value),
                "{error:?}"
            );
            assert!(error.to_string().contains(var), "{error}");
        }
    }

    #[test]
    fn session_settings_follow_libpq() {
        let env = [
            ("PGTZ", "UTC"),
            ("PGDATESTYLE", "DEFAULT"),
            ("PGGEQO", "off"),
        ];
        assert_eq!(
            session_settings(&env),
            [
                ("timezone".to_owned(), "UTC".to_owned()),
                ("geqo".to_owned(), "off".to_owned())
            ]
        );
    }
}
