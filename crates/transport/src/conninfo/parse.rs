//! The two connection-string syntaxes, turned into `(key, value)` pairs in order.
//!
//! Both follow libpq's `conninfo_parse` and `conninfo_uri_parse_options` byte for byte,
//! quirks included (e.g. `host= port=5` sets `host` to `port=5`, because blanks after `=` are
//! skipped). Keys are not validated here.

use super::ConnInfoError;

/// A parsed but not yet validated setting.
pub(crate) type Pair = (String, String);

/// URI prefixes libpq recognizes.
const URI_PREFIXES: [&str; 2] = ["postgresql://", "postgres://"];

/// Parses either syntax: a URI when it starts with `postgresql://` or `postgres://`.
pub(crate) fn parse_conninfo(input: &str) -> Result<Vec<Pair>, ConnInfoError> {
    match URI_PREFIXES.iter().find_map(|p| input.strip_prefix(p)) {
        Some(rest) => parse_uri(rest),
        None => parse_key_value(input),
    }
}

/// `key = value` pairs separated by whitespace; values may be single-quoted; a backslash
/// escapes the next character (in both quoted and unquoted values).
pub(crate) fn parse_key_value(input: &str) -> Result<Vec<Pair>, ConnInfoError> {
    let mut pairs = Vec::new();
    let mut chars = input.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| is_space(*c)).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || is_space(c) {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.next_if(|(_, c)| is_space(*c)).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(ConnInfoError::MissingEquals {
                key,
                position: start,
            });
        }
        while chars.next_if(|(_, c)| is_space(*c)).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(ConnInfoError::UnterminatedQuote { key }),
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((_, '\'')) => break,
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = chars.next() {
                match c {
                    c if is_space(c) => break,
                    '\\' => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    c => value.push(c),
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// C `isspace` in the "C" locale.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `[user[:password]@][netloc][:port][,...][/dbname][?param=value&...]` (after the scheme).
fn parse_uri(rest: &str) -> Result<Vec<Pair>, ConnInfoError> {
    let mut pairs = Vec::new();
    let mut p = rest;

    // Credentials: libpq looks for '@' before the first '/'.
    if let Some(at) = p.find(['@', '/']).filter(|&i| p.as_bytes()[i] == b'@') {
        let credentials = &p[..at];
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (credentials, None),
        };
        if !user.is_empty() {
            pairs.push(("user".to_owned(), percent_decode("user", user)?));
        }
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            pairs.push(("password".to_owned(), percent_decode("password", password)?));
        }
        p = &p[at + 1..];
    }

    // Hosts and ports.
    let mut hosts = String::new();
    let mut ports = String::new();
    let terminator = loop {
        let host;
        if let Some(after_bracket) = p.strip_prefix('[') {
            let close = after_bracket.find(']').ok_or(ConnInfoError::InvalidUri {
                reason: "end of string reached when looking for the matching \"]\" of an IPv6 host address",
            })?;
            host = &after_bracket[..close];
            if host.is_empty() {
                return Err(ConnInfoError::InvalidUri {
                    reason: "IPv6 host address may not be empty",
                });
            }
            p = &after_bracket[close + 1..];
            if !p.is_empty() && !p.starts_with([':', '/', '?', ',']) {
                return Err(ConnInfoError::InvalidUri {
                    reason: "unexpected character after an IPv6 host address (expected \":\", \"/\", \"?\" or \",\")",
                });
            }
        } else {
            let end = p.find([':', '/', '?', ',']).unwrap_or(p.len());
            host = &p[..end];
            p = &p[end..];
        }
        hosts.push_str(host);
        if let Some(after_colon) = p.strip_prefix(':') {
            let end = after_colon
                .find(['/', '?', ','])
                .unwrap_or(after_colon.len());
            ports.push_str(&after_colon[..end]);
            p = &after_colon[end..];
        }
        match p.chars().next() {
            Some(',') => {
                p = &p[1..];
                hosts.push(',');
                ports.push(',');
            }
            other => break other,
        }
    };
    if !hosts.is_empty() {
        pairs.push(("host".to_owned(), percent_decode("host", &hosts)?));
    }
    if !ports.is_empty() {
        pairs.push(("port".to_owned(), percent_decode("port", &ports)?));
    }

    // Database name.
    let mut query = None;
    if terminator == Some('/') {
        let after_slash = &p[1..];
        let (dbname, q) = match after_slash.split_once('?') {
            Some((dbname, q)) => (dbname, Some(q)),
            None => (after_slash, None),
        };
        // An empty dbname is not stored, so PGDATABASE still applies.
        if !dbname.is_empty() {
            pairs.push(("dbname".to_owned(), percent_decode("dbname", dbname)?));
        }
        query = q;
    } else if terminator == Some('?') {
        query = Some(&p[1..]);
    }

    if let Some(query) = query {
        parse_query(query, &mut pairs)?;
    }
    Ok(pairs)
}

/// `key=value&key=value`; both sides percent-decoded; `ssl=true` means `sslmode=require`
/// (libpq's JDBC compatibility).
fn parse_query(query: &str, pairs: &mut Vec<Pair>) -> Result<(), ConnInfoError> {
    if query.is_empty() {
        return Ok(());
    }
    let mut params = query.split('&').peekable();
    while let Some(param) = params.next() {
        // libpq tolerates one trailing '&' after a complete parameter.
        if param.is_empty() && params.peek().is_none() && query.len() > 1 {
            break;
        }
        let (key, value) = param.split_once('=').ok_or(ConnInfoError::InvalidUri {
            reason: "missing key/value separator \"=\" in a query parameter",
        })?;
        if value.contains('=') {
            return Err(ConnInfoError::InvalidUri {
                reason: "extra key/value separator \"=\" in a query parameter",
            });
        }
        let key = percent_decode("query parameter name", key)?;
        let value = percent_decode(&key, value)?;
        if key == "ssl" && value == "true" {
            pairs.push(("sslmode".to_owned(), "require".to_owned()));
        } else {
            pairs.push((key, value));
        }
    }
    Ok(())
}

/// `%XX` decoding as libpq's `conninfo_uri_decode`: `%00` and malformed escapes are errors,
/// `+` stays `+`. The decoded bytes must be UTF-8.
pub(crate) fn percent_decode(what: &str, input: &str) -> Result<String, ConnInfoError> {
    if !input.contains('%') {
        return Ok(input.to_owned());
    }
    let invalid = |reason| ConnInfoError::InvalidPercentEncoding {
        component: what.to_owned(),
        reason,
    };
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(invalid("\"%\" must be followed by two hexadecimal digits"));
            };
            let decoded = (hi * 16 + lo) as u8;
            if decoded == 0 {
                return Err(invalid("%00 is forbidden"));
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("the decoded bytes are not UTF-8"))
}
