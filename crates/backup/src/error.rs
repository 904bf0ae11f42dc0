//! The backup crate's error type.

use std::path::PathBuf;

use pg_walstream_codec::DecodeError;
use pg_walstream_transport::TransportError;

/// Why a base backup (or its verification) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// An option the connected server cannot do; nothing was sent.
    #[error("{option} needs PostgreSQL {needs} or later; server is {server}")]
    Unsupported {
        /// The option, as `BASE_BACKUP` names it (e.g. `COMPRESSION`).
        option: &'static str,
        /// The first major version that has it.
        needs: u32,
        /// The connected server's version.
        server: String,
    },
    /// An option value that no server accepts (e.g. a gzip level of 12).
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The session failed (connection, server error, protocol).
    #[error("base backup")]
    Transport(#[from] TransportError),
    /// A CopyData message of the backup stream could not be decoded.
    #[error("base backup stream")]
    Decode(#[from] DecodeError),
    /// The server answered something the protocol does not allow at this point.
    #[error("unexpected {got} {during}")]
    Protocol {
        /// What arrived.
        got: &'static str,
        /// Where in the backup.
        during: &'static str,
    },
    /// A result set (start/end position, tablespace list) has the wrong shape or values.
    #[error("bad {what} result: {reason}")]
    BadResult {
        /// Which result set.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. `"creating"`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An archive could not be read or written (tar, decompression) by a sink.
    #[error("archive {archive}: {reason}")]
    Archive {
        /// The archive's name.
        archive: String,
        /// What went wrong.
        reason: String,
        /// The cause, if any.
        #[source]
        source: Option<std::io::Error>,
    },
    /// A backup manifest is malformed.
    #[error("backup manifest: {0}")]
    Manifest(String),
}

impl BackupError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BackupError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn bad_result(what: &'static str, reason: impl Into<String>) -> Self {
        BackupError::BadResult {
            what,
            reason: reason.into(),
        }
    }
}

/// `Result` with [`BackupError`].
pub type Result<T, E = BackupError> = std::result::Result<T, E>;
