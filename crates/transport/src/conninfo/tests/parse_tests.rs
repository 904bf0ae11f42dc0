use crate::conninfo::ConnInfoError;
use crate::conninfo::config::quote;
use crate::conninfo::parse::{parse_conninfo, parse_key_value, percent_decode};

fn pairs(input: &str) -> Vec<(String, String)> {
    parse_conninfo(input).unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn key_value_basics_and_whitespace() {
    assert_eq!(pairs(""), kv(&[]));
    assert_eq!(pairs("   \t\n "), kv(&[]));
    assert_eq!(pairs("host=h port=5"), kv(&[("host", "h"), ("port", "5")]));
    assert_eq!(
        pairs("  host = h\tport\n=\n5  "),
        kv(&[("host", "h"), ("port", "5")])
    );
    assert_eq!(pairs("host=h host=g"), kv(&[("host", "h"), ("host", "g")]));
    assert_eq!(pairs("host="), kv(&[("host", "")]));
}

#[test]
fn key_value_blank_after_equals_is_skipped_like_libpq() {
    // libpq skips blanks after '=', so the next word becomes the value.
    assert_eq!(pairs("host= port=5"), kv(&[("host", "port=5")]));
}

#[test]
fn key_value_quoting_and_escapes() {
    assert_eq!(pairs("password='a b'"), kv(&[("password", "a b")]));
    assert_eq!(pairs("password=''"), kv(&[("password", "")]));
    assert_eq!(pairs(r"password='it\'s'"), kv(&[("password", "it's")]));
    assert_eq!(
        pairs(r"password='back\\slash'"),
        kv(&[("password", r"back\slash")])
    );
    assert_eq!(
        pairs(r"password=un\ quoted\'x"),
        kv(&[("password", "un quoted'x")])
    );
    assert_eq!(
        pairs(r"options='-c search_path=a,b' user=u"),
        kv(&[("options", "-c search_path=a,b"), ("user", "u")])
    );
    // A quote in the middle of an unquoted value is literal.
    assert_eq!(pairs("a=b'c"), kv(&[("a", "b'c")]));
    // After a closing quote the next key may follow directly.
    assert_eq!(pairs("a='x'b=y"), kv(&[("a", "x"), ("b", "y")]));
    // Unicode survives.
    assert_eq!(
        pairs("application_name='żółw 🐢'"),
        kv(&[("application_name", "żółw 🐢")])
    );
    // A trailing backslash escapes nothing.
    assert_eq!(pairs("a=b\\"), kv(&[("a", "b")]));
}

#[test]
fn key_value_syntax_errors() {
    match parse_key_value("host=h dbname") {
        Err(ConnInfoError::MissingEquals { key, position }) => {
            assert_eq!((key.as_str(), position), ("dbname", 7));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(parse_key_value("host h"), Err(ConnInfoError::MissingEquals { ref key, .. }) if key == "host")
    );
    match parse_key_value("password='secret") {
        Err(err @ ConnInfoError::UnterminatedQuote { .. }) => {
            assert!(!err.to_string().contains("secret"));
            assert!(err.to_string().contains("password"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn uri_full() {
    assert_eq!(
        pairs("postgresql://user:pw@host:5433/db?sslmode=require&application_name=x"),
        kv(&[
            ("user", "user"),
            ("password", "pw"),
            ("host", "host"),
            ("port", "5433"),
            ("dbname", "db"),
            ("sslmode", "require"),
            ("application_name", "x"),
        ])
    );
    assert_eq!(pairs("postgres://h"), kv(&[("host", "h")]));
}

#[test]
fn uri_minimal_forms() {
    assert_eq!(pairs("postgres://"), kv(&[]));
    assert_eq!(pairs("postgresql:///"), kv(&[]));
    assert_eq!(pairs("postgresql:///db"), kv(&[("dbname", "db")]));
    assert_eq!(pairs("postgresql://?host=/tmp"), kv(&[("host", "/tmp")]));
    assert_eq!(pairs("postgresql://h/?"), kv(&[("host", "h")]));
    assert_eq!(
        pairs("postgresql://h:/d"),
        kv(&[("host", "h"), ("dbname", "d")])
    );
    assert_eq!(pairs("postgresql://u@"), kv(&[("user", "u")]));
    assert_eq!(
        pairs("postgresql://:pw@h"),
        kv(&[("password", "pw"), ("host", "h")])
    );
    assert_eq!(
        pairs("postgresql://u:@h"),
        kv(&[("user", "u"), ("host", "h")])
    );
}

#[test]
fn uri_percent_decoding() {
    assert_eq!(
        pairs("postgres://us%40er:p%3Aw%2F%25@%2Fvar%2Frun%2Fpostgresql/my%20db"),
        kv(&[
            ("user", "us@er"),
            ("password", "p:w/%"),
            ("host", "/var/run/postgresql"),
            ("dbname", "my db")
        ])
    );
    // '+' is not a space.
    assert_eq!(pairs("postgres:///a+b"), kv(&[("dbname", "a+b")]));
    assert_eq!(
        pairs("postgres://h?application_name=a%26b%3Dc"),
        kv(&[("host", "h"), ("application_name", "a&b=c")])
    );
    assert_eq!(pairs("postgres:///%C5%BC"), kv(&[("dbname", "ż")]));
    for bad in ["%", "%4", "%zz", "%00", "%ff"] {
        assert!(
            matches!(
                percent_decode("dbname", bad),
                Err(ConnInfoError::InvalidPercentEncoding { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn uri_ipv6_and_multiple_hosts() {
    assert_eq!(
        pairs("postgres://[::1]:5433/d"),
        kv(&[("host", "::1"), ("port", "5433"), ("dbname", "d")])
    );
    assert_eq!(pairs("postgres://[fe80::1]"), kv(&[("host", "fe80::1")]));
    assert_eq!(
        pairs("postgres://h1:1,h2,[::1]:3/d"),
        kv(&[("host", "h1,h2,::1"), ("port", "1,,3"), ("dbname", "d")])
    );
    assert_eq!(
        pairs("postgres://h1,h2"),
        kv(&[("host", "h1,h2"), ("port", ",")])
    );
    assert_eq!(
        pairs("postgres://[::1],h?x=1").first(),
        Some(&("host".to_owned(), "::1,h".to_owned()))
    );
}

#[test]
fn uri_structure_errors() {
    for bad in [
        "postgres://[::1",
        "postgres://[]:5432",
        "postgres://[::1]x",
        "postgres://h?sslmode",
        "postgres://h?a=b=c",
        "postgres://h?&",
        "postgres://h?a=1&&b=2",
    ] {
        assert!(
            matches!(parse_conninfo(bad), Err(ConnInfoError::InvalidUri { .. })),
            "{bad}: {:?}",
            parse_conninfo(bad)
        );
    }
}

#[test]
fn uri_query_parameters() {
    assert_eq!(
        pairs("postgres://h?ssl=true"),
        kv(&[("host", "h"), ("sslmode", "require")])
    );
    assert_eq!(
        pairs("postgres://h?ssl=false"),
        kv(&[("host", "h"), ("ssl", "false")])
    );
    assert_eq!(
        pairs("postgres://h?host=g&port=1"),
        kv(&[("host", "h"), ("host", "g"), ("port", "1")])
    );
    assert_eq!(pairs("postgres://h?"), kv(&[("host", "h")]));
    assert_eq!(pairs("postgres://h?a=1&"), kv(&[("host", "h"), ("a", "1")]));
    assert_eq!(
        pairs("postgres://h/d?a%62c=1"),
        kv(&[("host", "h"), ("dbname", "d"), ("abc", "1")])
    );
}

#[test]
fn uri_credentials_are_found_like_libpq() {
    // libpq looks for '@' before the first '/', so '?' and ':' may appear in the password.
    assert_eq!(
        pairs("postgres://u:p?w@h"),
        kv(&[("user", "u"), ("password", "p?w"), ("host", "h")])
    );
    assert_eq!(
        pairs("postgres://u:a:b@h"),
        kv(&[("user", "u"), ("password", "a:b"), ("host", "h")])
    );
    // An '@' after the path is part of the path.
    assert_eq!(
        pairs("postgres://h/d@x"),
        kv(&[("host", "h"), ("dbname", "d@x")])
    );
}

#[test]
fn non_uri_prefixes_are_key_value() {
    assert!(matches!(
        parse_conninfo("postgre://h"),
        Err(ConnInfoError::MissingEquals { .. })
    ));
    assert!(matches!(
        parse_conninfo("POSTGRES://h"),
        Err(ConnInfoError::MissingEquals { .. })
    ));
}

/// Every string of up to four characters from an alphabet of the characters that matter to
/// the syntax survives `quote` and the parser unchanged.
#[test]
fn quoting_round_trips_exhaustively() {
    const ALPHABET: [char; 7] = ['a', ' ', '\'', '\\', '=', '\t', 'é'];
    let mut values = vec![String::new()];
    let mut frontier = vec![String::new()];
    for _ in 0..4 {
        frontier = frontier
            .iter()
            .flat_map(|prefix| ALPHABET.iter().map(move |c| format!("{prefix}{c}")))
            .collect();
        values.extend(frontier.iter().cloned());
    }
    assert_eq!(values.len(), 1 + 7 + 49 + 343 + 2401);
    for value in &values {
        let input = format!("options={} user=u", quote(value));
        assert_eq!(
            pairs(&input),
            kv(&[("options", value), ("user", "u")]),
            "{input:?}"
        );
    }
}

/// Percent-encoding every byte value 1..=127 (and a multi-byte character) decodes back.
#[test]
fn percent_decoding_round_trips() {
    for byte in 1u8..=127 {
        let encoded = format!("%{byte:02X}x%{byte:02x}");
        let expected = format!("{}x{}", byte as char, byte as char);
        assert_eq!(percent_decode("dbname", &encoded).unwrap(), expected);
    }
    assert_eq!(percent_decode("dbname", "%E2%82%AC").unwrap(), "€");
    assert!(percent_decode("dbname", "%E2%82").is_err());
}
