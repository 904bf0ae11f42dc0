use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use pg_walstream_auth::{AuthMethod, ChannelBindingMode, Password};

use super::TempDir;
use crate::conninfo::{
    Config, ConfigWarning, ConnInfoError, DEFAULT_SOCKET_DIR, EmptyEnvironment, Replication,
    SslMode, SslNegotiation, SslRootCert, Target,
};

const BASE_ENV: [(&str, &str); 1] = [("USER", "osuser")];

fn parse(conninfo: &str) -> Config {
    Config::parse_with_env(conninfo, &BASE_ENV).unwrap_or_else(|e| panic!("{conninfo}: {e}"))
}

fn parse_env(conninfo: &str, env: &[(&str, &str)]) -> Result<Config, ConnInfoError> {
    Config::parse_with_env(conninfo, env)
}

fn invalid_value(conninfo: &str) -> (&'static str, String) {
    match Config::parse_with_env(conninfo, &BASE_ENV) {
        Err(ConnInfoError::InvalidValue { key, value, .. }) => (key, value),
        other => panic!("{conninfo}: expected InvalidValue, got {other:?}"),
    }
}

fn tcp(host: &str) -> Target {
    Target::Tcp {
        host: host.to_owned(),
        hostaddr: None,
    }
}

#[test]
fn defaults_follow_libpq() {
    let c = parse("");
    assert_eq!(c.hosts.len(), 1);
    assert_eq!(
        c.hosts[0].target,
        Target::Unix {
            dir: DEFAULT_SOCKET_DIR.into()
        }
    );
    assert_eq!(c.hosts[0].port, 5432);
    assert_eq!(
        c.hosts[0].socket_path(),
        Some(PathBuf::from("/tmp/.s.PGSQL.5432"))
    );
    assert_eq!(c.user, "osuser");
    assert_eq!(c.dbname, "osuser");
    assert_eq!(c.password, None);
    assert_eq!(c.replication, Replication::Off);
    assert_eq!(c.ssl_mode, SslMode::Prefer);
    assert_eq!(c.ssl_root_cert, SslRootCert::Default { path: None });
    assert_eq!(c.ssl_negotiation, SslNegotiation::Postgres);
    assert_eq!(c.channel_binding, ChannelBindingMode::Prefer);
    assert!(!c.require_auth.is_set());
    assert_eq!(c.connect_timeout, None);
    assert!(c.keepalives);
    assert_eq!(
        (c.keepalives_idle, c.keepalives_interval, c.keepalives_count),
        (None, None, None)
    );
    assert_eq!(c.application_name, None);
    assert_eq!(c.options, None);
    assert_eq!(c.passfile, None);
    assert!(c.warnings.is_empty());
}

#[test]
fn home_based_defaults() {
    let c = parse_env("", &[("USER", "u"), ("HOME", "/home/u")]).unwrap();
    assert_eq!(
        c.ssl_root_cert,
        SslRootCert::Default {
            path: Some("/home/u/.postgresql/root.crt".into())
        }
    );
    assert_eq!(
        c.ssl_cert,
        Some("/home/u/.postgresql/postgresql.crt".into())
    );
    assert_eq!(c.ssl_key, Some("/home/u/.postgresql/postgresql.key".into()));
    assert_eq!(c.passfile, Some("/home/u/.pgpass".into()));
}

#[test]
fn every_key() {
    let c = parse(
        "host=db.example hostaddr=10.0.0.7 port=6000 user=alice password=pw dbname=app \
         replication=database sslmode=verify-full sslrootcert=/ca.pem sslcert=/c.crt sslkey=/c.key \
         sslnegotiation=direct channel_binding=require require_auth=scram-sha-256 \
         connect_timeout=10 keepalives=0 keepalives_idle=30 keepalives_interval=5 \
         keepalives_count=3 application_name=app1 options='-c work_mem=64kB' passfile=/pgpass",
    );
    assert_eq!(
        c.hosts[0].target,
        Target::Tcp {
            host: "db.example".into(),
            hostaddr: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)))
        }
    );
    assert_eq!(c.hosts[0].port, 6000);
    assert_eq!(c.hosts[0].server_name(), Some("db.example"));
    assert_eq!(c.user, "alice");
    assert_eq!(
        c.password.as_ref().map(Password::as_bytes),
        Some(&b"pw"[..])
    );
    assert_eq!(c.dbname, "app");
    assert_eq!(c.replication, Replication::Database);
    assert_eq!(c.ssl_mode, SslMode::VerifyFull);
    assert_eq!(c.ssl_root_cert, SslRootCert::File("/ca.pem".into()));
    assert_eq!(c.ssl_cert, Some("/c.crt".into()));
    assert_eq!(c.ssl_key, Some("/c.key".into()));
    assert_eq!(c.ssl_negotiation, SslNegotiation::Direct);
    assert_eq!(c.channel_binding, ChannelBindingMode::Require);
    assert!(c.require_auth.allows(AuthMethod::ScramSha256));
    assert!(!c.require_auth.allows(AuthMethod::Md5));
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(10)));
    assert!(!c.keepalives);
    assert_eq!(c.keepalives_idle, Some(Duration::from_secs(30)));
    assert_eq!(c.keepalives_interval, Some(Duration::from_secs(5)));
    assert_eq!(c.keepalives_count, Some(3));
    assert_eq!(c.application_name.as_deref(), Some("app1"));
    assert_eq!(c.options.as_deref(), Some("-c work_mem=64kB"));
    assert_eq!(c.passfile, Some("/pgpass".into()));
}

#[test]
fn every_key_as_uri_query_parameter() {
    let c = parse(
        "postgres://?host=h&port=1&user=u&password=p&dbname=d&replication=true&sslmode=require\
         &channel_binding=disable&connect_timeout=3&application_name=a%20b&options=-c%20x%3Dy",
    );
    assert_eq!((c.hosts[0].target.clone(), c.hosts[0].port), (tcp("h"), 1));
    assert_eq!((c.user.as_str(), c.dbname.as_str()), ("u", "d"));
    assert!(c.password.is_some());
    assert_eq!(c.replication, Replication::Physical);
    assert_eq!(c.ssl_mode, SslMode::Require);
    assert_eq!(c.channel_binding, ChannelBindingMode::Disable);
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
    assert_eq!(c.application_name.as_deref(), Some("a b"));
    assert_eq!(c.options.as_deref(), Some("-c x=y"));
}

#[test]
fn sslmode_values() {
    for (value, mode) in [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ] {
        let c = parse(&format!("sslmode={value}"));
        assert_eq!(c.ssl_mode, mode);
        assert_eq!(mode.to_string(), value);
    }
    assert_eq!(
        invalid_value("sslmode=verify_full"),
        ("sslmode", "verify_full".into())
    );
    assert_eq!(
        invalid_value("sslmode=REQUIRE"),
        ("sslmode", "REQUIRE".into())
    );
}

#[test]
fn replication_values() {
    for (value, expected) in [
        ("database", Replication::Database),
        ("true", Replication::Physical),
        ("on", Replication::Physical),
        ("yes", Replication::Physical),
        ("1", Replication::Physical),
        ("TRUE", Replication::Physical),
        ("false", Replication::Off),
        ("off", Replication::Off),
        ("no", Replication::Off),
        ("0", Replication::Off),
    ] {
        assert_eq!(
            parse(&format!("replication={value}")).replication,
            expected,
            "{value}"
        );
    }
    assert_eq!(invalid_value("replication=logical").0, "replication");
    assert_eq!(invalid_value("replication=Database").0, "replication");
    assert_eq!(Replication::Database.startup_value(), Some("database"));
    assert_eq!(Replication::Physical.startup_value(), Some("true"));
    assert_eq!(Replication::Off.startup_value(), None);
}

#[test]
fn channel_binding_sslnegotiation_and_require_auth_values() {
    for (value, mode) in [
        ("disable", ChannelBindingMode::Disable),
        ("prefer", ChannelBindingMode::Prefer),
        ("require", ChannelBindingMode::Require),
    ] {
        assert_eq!(
            parse(&format!("channel_binding={value}")).channel_binding,
            mode
        );
    }
    assert_eq!(invalid_value("channel_binding=on").0, "channel_binding");
    assert_eq!(
        parse("sslnegotiation=postgres").ssl_negotiation,
        SslNegotiation::Postgres
    );
    assert_eq!(invalid_value("sslnegotiation=tls").0, "sslnegotiation");
    let r = parse("require_auth=!password,!md5").require_auth;
    assert!(!r.allows(AuthMethod::Password) && r.allows(AuthMethod::ScramSha256));
    let err = Config::parse_with_env("require_auth=md5,!password", &BASE_ENV).unwrap_err();
    assert!(matches!(err, ConnInfoError::RequireAuth(_)));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn integer_settings() {
    assert_eq!(parse("connect_timeout=0").connect_timeout, None);
    assert_eq!(parse("connect_timeout=-5").connect_timeout, None);
    assert_eq!(
        parse("connect_timeout=1").connect_timeout,
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        parse("connect_timeout=' 7 '").connect_timeout,
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        invalid_value("connect_timeout=10s"),
        ("connect_timeout", "10s".into())
    );
    assert_eq!(invalid_value("connect_timeout=1.5").0, "connect_timeout");
    assert!(parse("keepalives=1").keepalives);
    assert!(parse("keepalives=2").keepalives);
    assert!(!parse("keepalives=0").keepalives);
    assert_eq!(invalid_value("keepalives=on").0, "keepalives");
    assert_eq!(parse("keepalives_idle=0").keepalives_idle, None);
    assert_eq!(invalid_value("keepalives_idle=x").0, "keepalives_idle");
    assert_eq!(
        invalid_value("keepalives_interval=x").0,
        "keepalives_interval"
    );
    assert_eq!(invalid_value("keepalives_count=x").0, "keepalives_count");
    assert_eq!(parse("keepalives_count=-1").keepalives_count, None);
}

#[test]
fn ports() {
    assert_eq!(parse("port=65535").hosts[0].port, 65535);
    for bad in ["0", "65536", "-1", "abc", "54 32"] {
        assert_eq!(
            invalid_value(&format!("port='{bad}'")),
            ("port", bad.to_owned())
        );
    }
}

#[test]
fn multiple_hosts_and_ports() {
    let c = parse("host=a,b,/sock port=1,2,3");
    let got: Vec<_> = c.hosts.iter().map(|h| (h.target.clone(), h.port)).collect();
    assert_eq!(
        got,
        vec![
            (tcp("a"), 1),
            (tcp("b"), 2),
            (
                Target::Unix {
                    dir: "/sock".into()
                },
                3
            )
        ]
    );
    assert_eq!(
        c.hosts[2].socket_path(),
        Some(PathBuf::from("/sock/.s.PGSQL.3"))
    );
    // One port for all hosts.
    let c = parse("host=a,b port=7");
    assert!(c.hosts.iter().all(|h| h.port == 7));
    // Empty elements take defaults.
    let c = parse("postgres://a,b:9,");
    let got: Vec<_> = c.hosts.iter().map(|h| (h.target.clone(), h.port)).collect();
    assert_eq!(
        got,
        vec![
            (tcp("a"), 5432),
            (tcp("b"), 9),
            (
                Target::Unix {
                    dir: DEFAULT_SOCKET_DIR.into()
                },
                5432
            )
        ]
    );
    assert!(matches!(
        Config::parse_with_env("host=a,b,c port=1,2", &BASE_ENV),
        Err(ConnInfoError::PortCountMismatch { ports: 2, hosts: 3 })
    ));
}

#[test]
fn hostaddr() {
    let c = parse("hostaddr=::1");
    assert_eq!(
        c.hosts[0].target,
        Target::Tcp {
            host: String::new(),
            hostaddr: Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        }
    );
    assert_eq!(c.hosts[0].server_name(), None);
    let c = parse("host=a,b hostaddr=127.0.0.1,127.0.0.2");
    assert_eq!(c.hosts.len(), 2);
    assert!(matches!(
        Config::parse_with_env("host=a hostaddr=127.0.0.1,127.0.0.2", &BASE_ENV),
        Err(ConnInfoError::HostaddrCountMismatch {
            hosts: 1,
            hostaddrs: 2
        })
    ));
    assert_eq!(
        invalid_value("hostaddr=localhost"),
        ("hostaddr", "localhost".into())
    );
    // hostaddr decides the number of hosts; an empty element falls back to host.
    let c = parse("host=a,/s hostaddr=10.0.0.1,");
    assert_eq!(c.hosts[1].target, Target::Unix { dir: "/s".into() });
}

#[test]
fn uri_hosts() {
    let c = parse("postgresql://[2001:db8::1]:5433,%2Fvar%2Frun%2Fpostgresql/db");
    assert_eq!(c.hosts[0].target, tcp("2001:db8::1"));
    assert_eq!(c.hosts[0].port, 5433);
    assert_eq!(
        c.hosts[1].target,
        Target::Unix {
            dir: "/var/run/postgresql".into()
        }
    );
    assert_eq!(c.hosts[1].port, 5432);
    assert_eq!(c.dbname, "db");
    let c = parse("postgresql:///db?host=/tmp/sockets&port=5999");
    assert_eq!(
        c.hosts[0].socket_path(),
        Some(PathBuf::from("/tmp/sockets/.s.PGSQL.5999"))
    );
}

#[test]
fn env_supplies_defaults_under_explicit_values() {
    let env = [
        ("USER", "osuser"),
        ("PGHOST", "envhost"),
        ("PGPORT", "6001"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", "envdb"),
        ("PGSSLMODE", "require"),
        ("PGSSLROOTCERT", "/env/ca.pem"),
        ("PGSSLCERT", "/env/c.crt"),
        ("PGSSLKEY", "/env/c.key"),
        ("PGAPPNAME", "envapp"),
        ("PGCONNECT_TIMEOUT", "9"),
        ("PGPASSFILE", "/env/pgpass"),
        ("PGCHANNELBINDING", "require"),
        ("PGREQUIREAUTH", "scram-sha-256"),
        ("PGOPTIONS", "-c a=b"),
    ];
    let c = parse_env("", &env).unwrap();
    assert_eq!(
        (c.hosts[0].target.clone(), c.hosts[0].port),
        (tcp("envhost"), 6001)
    );
    assert_eq!((c.user.as_str(), c.dbname.as_str()), ("envuser", "envdb"));
    assert_eq!(
        c.password.as_ref().map(Password::as_bytes),
        Some(&b"envpw"[..])
    );
    assert_eq!(c.ssl_mode, SslMode::Require);
    assert_eq!(c.ssl_root_cert, SslRootCert::File("/env/ca.pem".into()));
    assert_eq!(
        (c.ssl_cert.clone(), c.ssl_key.clone()),
        (Some("/env/c.crt".into()), Some("/env/c.key".into()))
    );
    assert_eq!(c.application_name.as_deref(), Some("envapp"));
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(9)));
    assert_eq!(c.passfile, Some("/env/pgpass".into()));
    assert_eq!(c.channel_binding, ChannelBindingMode::Require);
    assert!(c.require_auth.is_set());
    assert_eq!(c.options.as_deref(), Some("-c a=b"));

    let c = parse_env(
        "host=h port=1 user=u password=p dbname=d sslmode=disable sslrootcert=/ca sslcert=/c sslkey=/k \
         application_name=a connect_timeout=0 passfile=/p channel_binding=disable require_auth=md5 options=o",
        &env,
    )
    .unwrap();
    assert_eq!((c.hosts[0].target.clone(), c.hosts[0].port), (tcp("h"), 1));
    assert_eq!((c.user.as_str(), c.dbname.as_str()), ("u", "d"));
    assert_eq!(c.password.as_ref().map(Password::as_bytes), Some(&b"p"[..]));
    assert_eq!(c.ssl_mode, SslMode::Disable);
    assert_eq!(c.ssl_root_cert, SslRootCert::File("/ca".into()));
    assert_eq!(c.application_name.as_deref(), Some("a"));
    assert_eq!(c.connect_timeout, None);
    assert_eq!(c.channel_binding, ChannelBindingMode::Disable);
    assert!(
        c.require_auth.allows(AuthMethod::Md5) && !c.require_auth.allows(AuthMethod::ScramSha256)
    );
    assert_eq!(c.options.as_deref(), Some("o"));
}

#[test]
fn bad_environment_values_name_the_variable() {
    let err = parse_env("", &[("USER", "u"), ("PGSSLMODE", "strict")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid sslmode value \"strict\" (from PGSSLMODE): expected disable, allow, prefer, require, verify-ca or verify-full"
    );
    let err = parse_env("", &[("USER", "u"), ("PGPORT", "x")]).unwrap_err();
    assert!(err.to_string().contains("(from PGPORT)"), "{err}");
    let err = parse_env("", &[("USER", "u"), ("PGHOSTADDR", "h")]).unwrap_err();
    assert!(err.to_string().contains("(from PGHOSTADDR)"), "{err}");
    let err = parse_env("port=x", &[("USER", "u")]).unwrap_err();
    assert!(!err.to_string().contains("from"), "{err}");
}

#[test]
fn explicit_empty_value_blocks_the_environment() {
    let env = [
        ("USER", "u"),
        ("PGHOST", "envhost"),
        ("PGDATABASE", "envdb"),
    ];
    let c = parse_env("host='' dbname=''", &env).unwrap();
    assert_eq!(
        c.hosts[0].target,
        Target::Unix {
            dir: DEFAULT_SOCKET_DIR.into()
        }
    );
    assert_eq!(c.dbname, "u");
    // An empty URI dbname is not a setting, so PGDATABASE applies.
    assert_eq!(parse_env("postgres:///", &env).unwrap().dbname, "envdb");
}

#[test]
fn user_resolution() {
    assert_eq!(
        parse_env("", &[("LOGNAME", "logname")]).unwrap().user,
        "logname"
    );
    assert_eq!(
        parse_env("", &[("USER", "user"), ("LOGNAME", "logname")])
            .unwrap()
            .user,
        "user"
    );
    assert_eq!(
        parse_env("", &[("USER", "u"), ("PGUSER", "pguser")])
            .unwrap()
            .dbname,
        "pguser"
    );
    assert!(matches!(
        Config::parse_with_env("", &EmptyEnvironment),
        Err(ConnInfoError::NoUser)
    ));
    assert_eq!(
        Config::parse_with_env("user=x", &EmptyEnvironment)
            .unwrap()
            .dbname,
        "x"
    );
}

#[test]
fn injectable_environments() {
    let map: HashMap<String, String> = [("USER".to_owned(), "mapuser".to_owned())].into();
    assert_eq!(Config::parse_with_env("", &map).unwrap().user, "mapuser");
    let closure = |name: &str| (name == "PGUSER").then(|| "closure".to_owned());
    assert_eq!(
        Config::parse_with_env("", &closure).unwrap().user,
        "closure"
    );
}

#[test]
fn sslrootcert_system() {
    let c = parse("sslrootcert=system");
    assert_eq!(c.ssl_root_cert, SslRootCert::System);
    assert_eq!(c.ssl_mode, SslMode::VerifyFull);
    assert_eq!(
        parse("sslrootcert=system sslmode=verify-full").ssl_mode,
        SslMode::VerifyFull
    );
    for weak in ["disable", "allow", "prefer", "require", "verify-ca"] {
        let err = Config::parse_with_env(&format!("sslrootcert=system sslmode={weak}"), &BASE_ENV)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConnInfoError::WeakSslMode {
                    setting: "sslrootcert=system",
                    ..
                }
            ),
            "{weak}"
        );
    }
    // PGSSLMODE counts as explicit.
    let err = parse_env(
        "sslrootcert=system",
        &[("USER", "u"), ("PGSSLMODE", "require")],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "weak sslmode \"require\" may not be used with sslrootcert=system (use \"verify-full\")"
    );
}

#[test]
fn sslnegotiation_direct_needs_a_strong_sslmode() {
    for ok in ["require", "verify-ca", "verify-full"] {
        assert_eq!(
            parse(&format!("sslnegotiation=direct sslmode={ok}")).ssl_negotiation,
            SslNegotiation::Direct
        );
    }
    for weak in ["disable", "allow", "prefer"] {
        let err =
            Config::parse_with_env(&format!("sslnegotiation=direct sslmode={weak}"), &BASE_ENV)
                .unwrap_err();
        assert!(
            matches!(
                err,
                ConnInfoError::WeakSslMode {
                    setting: "sslnegotiation=direct",
                    ..
                }
            ),
            "{weak}"
        );
    }
    // Default sslmode (prefer) is too weak as well.
    assert!(Config::parse_with_env("sslnegotiation=direct", &BASE_ENV).is_err());
    assert_eq!(
        parse_env(
            "sslnegotiation=direct",
            &[("USER", "u"), ("PGSSLMODE", "require")]
        )
        .unwrap()
        .ssl_negotiation,
        SslNegotiation::Direct
    );
}

#[test]
fn application_name_fallback() {
    assert_eq!(
        parse("fallback_application_name=fb")
            .application_name
            .as_deref(),
        Some("fb")
    );
    assert_eq!(
        parse("fallback_application_name=fb application_name=an")
            .application_name
            .as_deref(),
        Some("an")
    );
    let env = [("USER", "u"), ("PGAPPNAME", "env")];
    assert_eq!(
        parse_env("fallback_application_name=fb", &env)
            .unwrap()
            .application_name
            .as_deref(),
        Some("env")
    );
}

#[test]
fn unknown_and_unsupported_keys() {
    let err = Config::parse_with_env("host=h sslmdoe=require", &BASE_ENV).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid connection option \"sslmdoe\" (did you mean \"sslmode\"?)"
    );
    let err = Config::parse_with_env("postgres://h?aplication_name=x", &BASE_ENV).unwrap_err();
    assert!(matches!(err, ConnInfoError::UnknownKey { ref key, .. } if key == "aplication_name"));
    let err = Config::parse_with_env("postgres://h?ssl=false", &BASE_ENV).unwrap_err();
    assert!(matches!(err, ConnInfoError::UnknownKey { ref key, .. } if key == "ssl"));
    let err = Config::parse_with_env("sslcrl=/x", &BASE_ENV).unwrap_err();
    assert!(matches!(err, ConnInfoError::UnsupportedKey { ref key } if key == "sslcrl"));
    // A typo'd password key never echoes its value.
    let err = Config::parse_with_env("passwrd=hunter2", &BASE_ENV).unwrap_err();
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    assert!(err.to_string().contains("\"password\""));
}

#[test]
fn later_settings_win() {
    let c = parse("postgres://h1:1/db1?host=h2&port=2&dbname=db2");
    assert_eq!((c.hosts[0].target.clone(), c.hosts[0].port), (tcp("h2"), 2));
    assert_eq!(c.dbname, "db2");
    assert_eq!(parse("user=a user=b").user, "b");
}

#[test]
fn secrets_are_redacted() {
    for conninfo in [
        "postgres://u:Sup3rS3cret@h/d",
        "host=h password=Sup3rS3cret",
        "host=h password='Sup3rS3cret' sslmode=require",
    ] {
        let c = parse(conninfo);
        let shown = format!("{c} {c:?} {c:#?} {:?}", c.hosts);
        assert!(!shown.contains("Sup3rS3cret"), "{shown}");
        assert!(c.to_string().contains("password=<redacted>"));
    }
    // Errors found after the password was read do not contain it either.
    let err = Config::parse_with_env("postgres://u:Sup3rS3cret@h:99999/d", &BASE_ENV).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("Sup3rS3cret"));
    assert_eq!(
        err.to_string(),
        "invalid port value \"99999\": expected a port number between 1 and 65535"
    );
}

#[test]
fn display_round_trips_the_effective_settings() {
    let c = parse(
        "host=a,b port=1,2 user='x y' dbname=d replication=database sslmode=require application_name='it\\'s'",
    );
    let shown = c.to_string();
    let again = Config::parse_with_env(&shown, &BASE_ENV).unwrap();
    assert_eq!(again.hosts, c.hosts);
    assert_eq!(again.application_name.as_deref(), Some("it's"));
    assert_eq!(
        (again.user, again.dbname, again.replication, again.ssl_mode),
        (c.user, c.dbname, c.replication, c.ssl_mode)
    );
}

fn write_pgpass(dir: &TempDir, contents: &str, mode: u32) -> PathBuf {
    let path = dir.path().join(".pgpass");
    std::fs::write(&path, contents).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    path
}

#[test]
fn pgpass_from_home_per_host() {
    let dir = TempDir::new("home");
    write_pgpass(
        &dir,
        "a:5432:d:u:pw-a\nb:6000:d:u:pw-b\nlocalhost:*:*:u:pw-local\n10.1.1.1:*:*:*:pw-addr\n",
        0o600,
    );
    let home = dir.path().to_str().unwrap();
    let env = [("USER", "u"), ("HOME", home)];
    let c = parse_env("host=a,b,,c port=5432,6000,5432,1 dbname=d", &env).unwrap();
    let got: Vec<_> = c
        .hosts
        .iter()
        .map(|h| {
            c.password_for(h)
                .map(|p| String::from_utf8(p.as_bytes().to_vec()).unwrap())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            Some("pw-a".to_owned()),
            Some("pw-b".to_owned()),
            Some("pw-local".to_owned()),
            None
        ]
    );
    assert!(c.password.is_none());
    // hostaddr is the key when host is empty.
    let c = parse_env("hostaddr=10.1.1.1", &env).unwrap();
    assert!(c.hosts[0].passfile_password.is_some());
    // The password file's value never shows.
    assert!(!format!("{c:?} {c}").contains("pw-addr"));
}

#[test]
fn pgpass_not_consulted_when_a_password_is_given() {
    let dir = TempDir::new("given");
    write_pgpass(&dir, "*:*:*:*:from-file\n", 0o600);
    let home = dir.path().to_str().unwrap();
    let c = parse_env("password=explicit", &[("USER", "u"), ("HOME", home)]).unwrap();
    assert!(c.hosts[0].passfile_password.is_none());
    assert_eq!(
        c.password_for(&c.hosts[0]).map(Password::as_bytes),
        Some(&b"explicit"[..])
    );
    let c = parse_env("", &[("USER", "u"), ("HOME", home), ("PGPASSWORD", "env")]).unwrap();
    assert_eq!(
        c.password_for(&c.hosts[0]).map(Password::as_bytes),
        Some(&b"env"[..])
    );
    // An explicitly empty password falls through to the file, as in libpq.
    let c = parse_env("password=''", &[("USER", "u"), ("HOME", home)]).unwrap();
    assert_eq!(
        c.password_for(&c.hosts[0]).map(Password::as_bytes),
        Some(&b"from-file"[..])
    );
}

#[test]
fn passfile_key_and_env_override_home() {
    let home = TempDir::new("h");
    write_pgpass(&home, "*:*:*:*:home\n", 0o600);
    let other = TempDir::new("o");
    let path = write_pgpass(&other, "*:*:*:*:other\n", 0o600);
    let path = path.to_str().unwrap();
    let env = [("USER", "u"), ("HOME", home.path().to_str().unwrap())];
    let c = parse_env(&format!("passfile={path}"), &env).unwrap();
    assert_eq!(
        c.hosts[0]
            .passfile_password
            .as_ref()
            .map(Password::as_bytes),
        Some(&b"other"[..])
    );
    let env = [
        ("USER", "u"),
        ("HOME", home.path().to_str().unwrap()),
        ("PGPASSFILE", path),
    ];
    let c = parse_env("", &env).unwrap();
    assert_eq!(
        c.hosts[0]
            .passfile_password
            .as_ref()
            .map(Password::as_bytes),
        Some(&b"other"[..])
    );
}

#[cfg(unix)]
#[test]
fn insecure_pgpass_is_ignored_with_a_warning() {
    let dir = TempDir::new("insecure");
    let path = write_pgpass(&dir, "*:*:*:*:leaky\n", 0o644);
    let c = parse_env("", &[("USER", "u"), ("HOME", dir.path().to_str().unwrap())]).unwrap();
    assert!(c.hosts[0].passfile_password.is_none());
    assert_eq!(
        c.warnings,
        vec![ConfigWarning::PassfileInsecurePermissions { path, mode: 0o644 }]
    );
}
