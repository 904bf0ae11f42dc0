//! The connection keys pg-walstream understands, their environment variables, and the libpq
//! keys it knowingly rejects.

use super::ConnInfoError;
use super::error::Suggestion;

/// A supported key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Host,
    Hostaddr,
    Port,
    User,
    Password,
    Dbname,
    Replication,
    SslMode,
    SslRootCert,
    SslCertFile,
    SslKeyFile,
    SslNegotiation,
    ChannelBinding,
    RequireAuth,
    ConnectTimeout,
    Keepalives,
    KeepalivesIdle,
    KeepalivesInterval,
    KeepalivesCount,
    ApplicationName,
    FallbackApplicationName,
    Options,
    Passfile,
}

/// Every supported key: (key, name, environment variable).
pub(crate) const KEYS: &[(Key, &str, Option<&str>)] = &[
    (Key::Host, "host", Some("PGHOST")),
    (Key::Hostaddr, "hostaddr", Some("PGHOSTADDR")),
    (Key::Port, "port", Some("PGPORT")),
    (Key::User, "user", Some("PGUSER")),
    (Key::Password, "password", Some("PGPASSWORD")),
    (Key::Dbname, "dbname", Some("PGDATABASE")),
    (Key::Replication, "replication", None),
    (Key::SslMode, "sslmode", Some("PGSSLMODE")),
    (Key::SslRootCert, "sslrootcert", Some("PGSSLROOTCERT")),
    (Key::SslCertFile, "sslcert", Some("PGSSLCERT")),
    (Key::SslKeyFile, "sslkey", Some("PGSSLKEY")),
    (
        Key::SslNegotiation,
        "sslnegotiation",
        Some("PGSSLNEGOTIATION"),
    ),
    (
        Key::ChannelBinding,
        "channel_binding",
        Some("PGCHANNELBINDING"),
    ),
    (Key::RequireAuth, "require_auth", Some("PGREQUIREAUTH")),
    (
        Key::ConnectTimeout,
        "connect_timeout",
        Some("PGCONNECT_TIMEOUT"),
    ),
    (Key::Keepalives, "keepalives", None),
    (Key::KeepalivesIdle, "keepalives_idle", None),
    (Key::KeepalivesInterval, "keepalives_interval", None),
    (Key::KeepalivesCount, "keepalives_count", None),
    (Key::ApplicationName, "application_name", Some("PGAPPNAME")),
    (
        Key::FallbackApplicationName,
        "fallback_application_name",
        None,
    ),
    (Key::Options, "options", Some("PGOPTIONS")),
    (Key::Passfile, "passfile", Some("PGPASSFILE")),
];

/// Keys libpq accepts that pg-walstream does not implement: an error that says so, rather
/// than "unknown key" or silently ignoring a security setting.
const UNSUPPORTED_LIBPQ_KEYS: &[&str] = &[
    "service",
    "client_encoding",
    "load_balance_hosts",
    "target_session_attrs",
    "tcp_user_timeout",
    "sslpassword",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "requirepeer",
    "gssencmode",
    "gsslib",
    "gssdelegation",
    "krbsrvname",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

impl Key {
    /// The key's name in connection strings.
    pub(crate) fn name(self) -> &'static str {
        KEYS.iter()
            .find(|(k, _, _)| *k == self)
            .map_or("", |(_, name, _)| name)
    }

    /// Looks a key up by name.
    ///
    /// # Errors
    /// [`ConnInfoError::UnsupportedKey`] for libpq keys not implemented here,
    /// [`ConnInfoError::UnknownKey`] (with the closest known key) for anything else.
    pub(crate) fn from_name(name: &str) -> Result<Self, ConnInfoError> {
        if let Some((key, _, _)) = KEYS.iter().find(|(_, n, _)| *n == name) {
            return Ok(*key);
        }
        if UNSUPPORTED_LIBPQ_KEYS.contains(&name) {
            return Err(ConnInfoError::UnsupportedKey {
                key: name.to_owned(),
            });
        }
        Err(ConnInfoError::UnknownKey {
            key: name.to_owned(),
            suggestion: Suggestion(suggest(name)),
        })
    }
}

/// The known key closest to `name`, if it is within a third of its length in edit distance
/// (at least 1, at most 3), or the typed name is a prefix/suffix-free variant like `db_name`.
fn suggest(name: &str) -> Option<&'static str> {
    let lowered = name.to_ascii_lowercase().replace('-', "_");
    let budget = (lowered.len() / 3).clamp(1, 3);
    KEYS.iter()
        .map(|(_, known, _)| (*known, edit_distance(&lowered, known)))
        .filter(|(_, d)| *d <= budget)
        .min_by_key(|(_, d)| *d)
        .map(|(known, _)| known)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        table[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        table[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[at(i - 1, j)] + 1)
                .min(table[at(i, j - 1)] + 1)
                .min(table[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[at(i - 2, j - 2)] + 1);
            }
            table[at(i, j)] = best;
        }
    }
    table[at(a.len(), b.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_by_name() {
        for (key, name, _) in KEYS {
            assert_eq!(Key::from_name(name).unwrap(), *key);
            assert_eq!(key.name(), *name);
        }
    }

    #[test]
    fn typos_get_suggestions() {
        for (typo, expected) in [
            ("hots", "host"),
            ("prot", "port"),
            ("usr", "user"),
            ("pasword", "password"),
            ("db_name", "dbname"),
            ("sslmdoe", "sslmode"),
            ("SSLMODE", "sslmode"),
            ("channel-binding", "channel_binding"),
            ("aplication_name", "application_name"),
            ("keepalive", "keepalives"),
            ("replicaton", "replication"),
        ] {
            match Key::from_name(typo) {
                Err(ConnInfoError::UnknownKey { key, suggestion }) => {
                    assert_eq!(key, typo);
                    assert_eq!(suggestion.0, Some(expected), "{typo}");
                }
                other => panic!("{typo}: {other:?}"),
            }
        }
    }

    #[test]
    fn far_keys_get_no_suggestion() {
        let Err(err) = Key::from_name("colour") else {
            panic!("accepted")
        };
        assert_eq!(err.to_string(), "invalid connection option \"colour\"");
        let Err(err) = Key::from_name("sslmdoe") else {
            panic!("accepted")
        };
        assert_eq!(
            err.to_string(),
            "invalid connection option \"sslmdoe\" (did you mean \"sslmode\"?)"
        );
    }

    #[test]
    fn unsupported_libpq_keys_are_named_as_such() {
        let Err(err) = Key::from_name("target_session_attrs") else {
            panic!("accepted")
        };
        assert!(
            matches!(err, ConnInfoError::UnsupportedKey { ref key } if key == "target_session_attrs")
        );
        assert!(err.to_string().contains("not supported"));
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
