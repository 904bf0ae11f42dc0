//! Our parser against libpq's own `PQconninfoParse`, recorded in `libpq15_conninfo_parse.txt`.

use std::collections::BTreeMap;

use crate::conninfo::config::resolve_pair;
use crate::conninfo::parse::parse_conninfo;

const RECORDED: &str = include_str!("libpq15_conninfo_parse.txt");

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('s') => out.push(' '),
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                other => panic!("bad escape {other:?} in {s}"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Our result in libpq's shape: the last value per key, or `None` for an error.
fn ours(input: &str) -> Option<BTreeMap<String, String>> {
    let pairs = parse_conninfo(input).ok()?;
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        let (key, value) = resolve_pair(&key, &value).ok()?;
        map.insert(key.name().to_owned(), value);
    }
    Some(map)
}

#[test]
fn parses_exactly_like_libpq() {
    let mut checked = 0;
    for line in RECORDED
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (input, expected) = line.split_once(" =>").expect("record has \" =>\"");
        let input = unescape(input);
        let expected = expected.trim_start();
        let expected: Option<BTreeMap<String, String>> = if expected == "ERROR" {
            None
        } else {
            Some(
                expected
                    .split(' ')
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        let (k, v) = t.split_once('=').expect("key=value");
                        (k.to_owned(), unescape(v))
                    })
                    .collect(),
            )
        };
        assert_eq!(ours(&input), expected, "input: {input:?}");
        checked += 1;
    }
    assert!(checked > 60, "only {checked} records");
}
