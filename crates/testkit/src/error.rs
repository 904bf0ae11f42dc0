//! The testkit's error type: every way preparing a throwaway server can fail, with a message
//! that says what to do about it.

use std::path::PathBuf;

/// Why a test server could not be installed, located, started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A PostgreSQL major version outside the supported range was requested.
    #[error("PostgreSQL {0} is not supported: pg-walstream tests run against versions 14 to 18")]
    UnsupportedVersion(u32),
    /// No server binaries of the version were found in any of the searched places.
    #[error(
        "no PostgreSQL {version} server binaries found (looked in: {searched}); \
         run `cargo xtask pg install --versions {version}` or set PG_WALSTREAM_PG{version}_BINDIR"
    )]
    BinariesNotFound {
        /// The requested major version.
        version: u32,
        /// The places that were searched, comma separated.
        searched: String,
    },
    /// An installer needed a tool that is missing.
    #[error("cannot install PostgreSQL {version}: {tool} is not available ({hint})")]
    MissingTool {
        /// The version being installed.
        version: u32,
        /// The missing program.
        tool: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
    /// A command the testkit ran failed.
    #[error("`{command}` failed ({status}): {output}")]
    CommandFailed {
        /// The command line, for the reader.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its output.
        output: String,
    },
    /// A command could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "creating the data directory".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server process did not come up.
    #[error("PostgreSQL {version} did not start: {reason}\n--- server log ---\n{log}")]
    StartFailed {
        /// The server's major version.
        version: u32,
        /// A short reason.
        reason: String,
        /// The tail of the server log.
        log: String,
    },
    /// Generating the test certificates failed.
    #[error("generating test certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// A SQL statement run to prepare the server failed.
    #[error("preparing the server with SQL: {0}")]
    Sql(#[from] tokio_postgres::Error),
    /// The descriptor of shared servers handed over by `cargo xtask test` is malformed.
    #[error("bad shared-server descriptor {}: {reason}", path.display())]
    BadDescriptor {
        /// The descriptor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl TestkitError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
