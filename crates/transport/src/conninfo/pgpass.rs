//! The password file (`~/.pgpass`, `passfile`, `PGPASSFILE`) with libpq's rules.
//!
//! Lines are `hostname:port:database:username:password`; `#` starts a comment line; `*`
//! alone matches anything; `\:` and `\\` escape; the first matching line wins. `localhost`
//! matches an empty host and the default Unix-socket directory. A file that is not a plain
//! file, or that group or others can access, is ignored with a warning.

use std::fmt;
use std::path::{Path, PathBuf};

use pg_walstream_auth::Password;

use super::DEFAULT_SOCKET_DIR;

/// Something worth telling the user that did not stop the configuration from resolving.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// The password file is not a regular file; it was ignored.
    PassfileNotPlainFile {
        /// The file.
        path: PathBuf,
    },
    /// The password file has group or world permissions; it was ignored (as libpq does).
    PassfileInsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PassfileNotPlainFile { path } => {
                write!(
                    f,
                    "password file \"{}\" is not a plain file",
                    path.display()
                )
            }
            Self::PassfileInsecurePermissions { path, mode } => write!(
                f,
                "password file \"{}\" has group or world access (mode {mode:04o}); permissions should be u=rw (0600) or less",
                path.display()
            ),
        }
    }
}

/// What the lookup keys on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassfileQuery<'a> {
    /// Host name, socket directory or hostaddr, as configured (may be empty).
    pub(crate) host: &'a str,
    /// Port number.
    pub(crate) port: u16,
    /// Database name.
    pub(crate) dbname: &'a str,
    /// Role name.
    pub(crate) user: &'a str,
}

/// Reads the password file if it exists and is private. `Ok(None)` when it cannot be opened
/// (libpq ignores that silently), `Err(warning)` when it is ignored for safety.
pub(crate) fn read_passfile(path: &Path) -> Result<Option<Vec<u8>>, ConfigWarning> {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !metadata.is_file() {
        return Err(ConfigWarning::PassfileNotPlainFile {
            path: path.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(ConfigWarning::PassfileInsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(std::fs::read(path).ok())
}

/// The password of the first line matching `query`.
pub(crate) fn find_password(contents: &[u8], query: PassfileQuery<'_>) -> Option<Password> {
    let host = if query.host.is_empty() || query.host == DEFAULT_SOCKET_DIR {
        "localhost"
    } else {
        query.host
    };
    let port = query.port.to_string();
    for line in contents.split(|b| *b == b'\n') {
        let line = strip_crlf(line);
        if line.is_empty() || line.first() == Some(&b'#') {
            continue;
        }
        let rest = Some(line)
            .and_then(|l| match_field(l, host.as_bytes()))
            .and_then(|l| match_field(l, port.as_bytes()))
            .and_then(|l| match_field(l, query.dbname.as_bytes()))
            .and_then(|l| match_field(l, query.user.as_bytes()));
        if let Some(rest) = rest {
            return Some(Password::new(unescape_password(rest)));
        }
    }
    None
}

fn strip_crlf(mut line: &[u8]) -> &[u8] {
    while let Some((last, init)) = line.split_last() {
        if *last == b'\n' || *last == b'\r' {
            line = init;
        } else {
            break;
        }
    }
    line
}

/// Matches one `:`-terminated field against `token`; returns what follows the colon.
fn match_field<'a>(field: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if let Some(rest) = field.strip_prefix(b"*:") {
        return Some(rest);
    }
    let mut token = token.iter();
    let mut i = 0;
    while let Some(&byte) = field.get(i) {
        let (byte, escaped) = if byte == b'\\' {
            i += 1;
            match field.get(i) {
                Some(&next) => (next, true),
                None => return None,
            }
        } else {
            (byte, false)
        };
        if byte == b':' && !escaped {
            return token.next().is_none().then(|| &field[i + 1..]);
        }
        if token.next() != Some(&byte) {
            return None;
        }
        i += 1;
    }
    None
}

/// The password runs to the first unescaped `:` (or the end); backslashes escape.
fn unescape_password(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b':' => break,
            b'\\' => match bytes.next() {
                Some(&next) => out.push(next),
                None => out.push(b'\\'),
            },
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
#[path = "pgpass_tests.rs"]
mod tests;
