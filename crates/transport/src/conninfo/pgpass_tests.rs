use super::*;
use crate::conninfo::tests::TempDir;

fn query<'a>(host: &'a str, port: u16, dbname: &'a str, user: &'a str) -> PassfileQuery<'a> {
    PassfileQuery {
        host,
        port,
        dbname,
        user,
    }
}

fn find(contents: &str, q: PassfileQuery<'_>) -> Option<String> {
    find_password(contents.as_bytes(), q).map(|p| String::from_utf8(p.as_bytes().to_vec()).unwrap())
}

#[test]
fn exact_and_wildcard_fields() {
    let file = "db.example:5432:app:alice:exact\n*:*:*:alice:any-host\n*:*:*:*:fallback\n";
    assert_eq!(
        find(file, query("db.example", 5432, "app", "alice")).as_deref(),
        Some("exact")
    );
    assert_eq!(
        find(file, query("db.example", 5433, "app", "alice")).as_deref(),
        Some("any-host")
    );
    assert_eq!(
        find(file, query("other", 5432, "app", "alice")).as_deref(),
        Some("any-host")
    );
    assert_eq!(
        find(file, query("other", 1, "x", "bob")).as_deref(),
        Some("fallback")
    );
}

#[test]
fn first_match_wins() {
    let file = "*:*:*:alice:first\n*:*:*:alice:second\n";
    assert_eq!(
        find(file, query("h", 5432, "d", "alice")).as_deref(),
        Some("first")
    );
}

#[test]
fn no_match() {
    let file = "h:5432:d:alice:pw\n";
    assert_eq!(find(file, query("h", 5432, "d", "bob")), None);
    assert_eq!(find(file, query("h", 5433, "d", "alice")), None);
    assert_eq!(find(file, query("hh", 5432, "d", "alice")), None);
    assert_eq!(find(file, query("", 5432, "d", "alice")), None);
    // A prefix of a field is not a match, nor is a longer value.
    assert_eq!(
        find("h:5432:db:alice:pw\n", query("h", 5432, "d", "alice")),
        None
    );
    assert_eq!(
        find("h:5432:d:alice:pw\n", query("h", 5432, "db", "alice")),
        None
    );
    // Too few fields.
    assert_eq!(
        find("h:5432:d:alice\n", query("h", 5432, "d", "alice")),
        None
    );
}

#[test]
fn escapes_in_fields_and_password() {
    let file = r"we\:ird\\host:5432:d:u:p\:a\\ss:ignored";
    assert_eq!(
        find(file, query(r"we:ird\host", 5432, "d", "u")).as_deref(),
        Some(r"p:a\ss")
    );
    // "*" inside a longer field is literal.
    assert_eq!(find("a*:5432:d:u:pw", query("ab", 5432, "d", "u")), None);
    assert_eq!(
        find("a*:5432:d:u:pw", query("a*", 5432, "d", "u")).as_deref(),
        Some("pw")
    );
    // An escaped star is a literal star, not a wildcard.
    assert_eq!(find(r"\*:5432:d:u:pw", query("h", 5432, "d", "u")), None);
    // Trailing backslash in the password is kept.
    assert_eq!(
        find("h:5432:d:u:pw\\", query("h", 5432, "d", "u")).as_deref(),
        Some("pw\\")
    );
    // Empty password.
    assert_eq!(
        find("h:5432:d:u:", query("h", 5432, "d", "u")).as_deref(),
        Some("")
    );
}

#[test]
fn comments_blank_lines_and_crlf() {
    let file = "# h:5432:d:u:commented\n\n\r\nh:5432:d:u:pw\r\n";
    assert_eq!(
        find(file, query("h", 5432, "d", "u")).as_deref(),
        Some("pw")
    );
    // Only a leading '#' is a comment.
    assert_eq!(
        find(" #h:5432:d:u:x\n", query(" #h", 5432, "d", "u")).as_deref(),
        Some("x")
    );
}

#[test]
fn localhost_matches_empty_host_and_default_socket_dir_only() {
    let file = "localhost:5432:d:u:local\n";
    assert_eq!(
        find(file, query("", 5432, "d", "u")).as_deref(),
        Some("local")
    );
    assert_eq!(
        find(file, query(DEFAULT_SOCKET_DIR, 5432, "d", "u")).as_deref(),
        Some("local")
    );
    assert_eq!(
        find(file, query("localhost", 5432, "d", "u")).as_deref(),
        Some("local")
    );
    assert_eq!(
        find(file, query("/var/run/postgresql", 5432, "d", "u")),
        None
    );
    let file = "/var/run/postgresql:5432:d:u:sock\n";
    assert_eq!(
        find(file, query("/var/run/postgresql", 5432, "d", "u")).as_deref(),
        Some("sock")
    );
}

#[cfg(unix)]
#[test]
fn permissions_and_file_kinds() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("pgpass-perm");
    let path = dir.path().join("pgpass");
    std::fs::write(&path, "*:*:*:*:pw\n").unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        read_passfile(&path).unwrap().as_deref(),
        Some(&b"*:*:*:*:pw\n"[..])
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(read_passfile(&path).unwrap().is_some());

    for mode in [0o640, 0o604, 0o644, 0o660, 0o610] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let warning = read_passfile(&path).unwrap_err();
        assert_eq!(
            warning,
            ConfigWarning::PassfileInsecurePermissions {
                path: path.clone(),
                mode
            }
        );
        assert!(warning.to_string().contains("group or world access"));
    }

    assert_eq!(
        read_passfile(dir.path()).unwrap_err(),
        ConfigWarning::PassfileNotPlainFile {
            path: dir.path().to_owned()
        }
    );
    assert_eq!(read_passfile(&dir.path().join("missing")).unwrap(), None);
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some(other) => out.push(other),
            None => panic!("dangling escape in {s}"),
        }
    }
    out
}

/// Lookups recorded with libpq's own `PQpass()` (see the fixture's header).
#[test]
fn matches_libpq_recorded_lookups() {
    let file =
        include_str!("tests/libpq15_pgpass_file.txt").replace("@SOCKDIR@", DEFAULT_SOCKET_DIR);
    let mut checked = 0;
    for line in include_str!("tests/libpq15_pgpass_lookups.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let (query_text, expected) = line.split_once(" => PW").expect("record");
        let fields: Vec<String> = query_text.split(' ').map(unescape).collect();
        let host = match fields[0].as_str() {
            "-" => String::new(),
            "@SOCKDIR@" => DEFAULT_SOCKET_DIR.to_owned(),
            "@OTHERDIR@" => "/some/other/socket/dir".to_owned(),
            other => other.to_owned(),
        };
        let port: u16 = fields[1].parse().unwrap();
        let got = find(&file, query(&host, port, &fields[2], &fields[3])).unwrap_or_default();
        assert_eq!(got, unescape(expected.trim_start()), "{line}");
        checked += 1;
    }
    assert_eq!(checked, 17);
}
