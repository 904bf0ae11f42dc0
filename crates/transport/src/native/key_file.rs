//! libpq's rule for the client key file's permissions (`initialize_SSL` in
//! `fe-secure-openssl.c`): the file must be a regular file without access for group or
//! others — except that a file owned by root may be group-readable (mode 0640 or less), so
//! that system-wide keys (e.g. shared through an `ssl-cert` group) can be used. As in libpq
//! the rule looks at the file's owner only, not at who is reading.

use std::path::Path;

use crate::error::{Result, TransportError};

/// Whether libpq refuses a key file with permission bits `mode` owned by user `owner`.
pub(crate) fn refuses(mode: u32, owner: u32) -> bool {
    const GROUP_ALL: u32 = 0o070;
    const OTHER_ALL: u32 = 0o007;
    const GROUP_WRITE_EXEC: u32 = 0o030;
    let forbidden = if owner == 0 {
        GROUP_WRITE_EXEC | OTHER_ALL
    } else {
        GROUP_ALL | OTHER_ALL
    };
    mode & forbidden != 0
}

/// Checks the client key file at `path` as libpq does, before it is read.
///
/// # Errors
/// [`TransportError::KeyFilePermissions`] for a key readable by group or others,
/// [`TransportError::TlsFile`] when the file cannot be examined or is not a regular file.
pub(crate) fn check(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let what = "private key file";
        let metadata = std::fs::metadata(path).map_err(|e| TransportError::TlsFile {
            what,
            path: path.display().to_string(),
            source: e.into(),
        })?;
        if !metadata.is_file() {
            return Err(TransportError::TlsFile {
                what,
                path: path.display().to_string(),
                source: "not a regular file".into(),
            });
        }
        let mode = metadata.mode() & 0o7777;
        if refuses(mode, metadata.uid()) {
            return Err(TransportError::KeyFilePermissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::refuses;

    #[test]
    fn libpqs_rule() {
        const USER: u32 = 1000;
        // Owned by a user: nothing for group or others.
        assert!(!refuses(0o600, USER));
        assert!(!refuses(0o400, USER));
        assert!(refuses(0o640, USER));
        assert!(refuses(0o604, USER));
        assert!(refuses(0o610, USER));
        // Owned by root: group may read, nothing else.
        assert!(!refuses(0o640, 0));
        assert!(!refuses(0o600, 0));
        assert!(!refuses(0o440, 0));
        assert!(refuses(0o660, 0));
        assert!(refuses(0o644, 0));
        assert!(refuses(0o650, 0));
        assert!(refuses(0o641, 0));
    }
}
