//! libpq's rule for the client key file's permissions (`initialize_SSL` in
//! `fe-secure-openssl.c`): the file must be a regular file, and must not be accessible by
//! group or others — except that a file owned by root may be group-readable (mode 0640 or
//! less), so that system-wide keys (e.g. managed by a `ssl-cert` group) can be used.

use std::path::Path;

use crate::error::{Result, TransportError};

/// Whether libpq would refuse a key file with `mode` owned by `owner`, read by a process
/// whose effective user is `euid`. Files of other owners are not checked (as in libpq: the
/// open fails later if they are unreadable).
pub(crate) fn refuses(mode: u32, owner: u32, euid: u32) -> bool {
    const GROUP_ALL: u32 = 0o070;
    const OTHER_ALL: u32 = 0o007;
    const GROUP_WRITE_EXEC: u32 = 0o030;
    (owner == euid && mode & (GROUP_ALL | OTHER_ALL) != 0)
        || (owner == 0 && mode & (GROUP_WRITE_EXEC | OTHER_ALL) != 0)
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
        if refuses(mode, metadata.uid(), effective_uid()) {
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

/// The process's effective user id, without `unsafe` (std has no `geteuid`): Linux makes
/// `/proc/self` owned by the process's effective user. Where it does not exist, no user
/// matches, and only the rule for root-owned files applies.
#[cfg(unix)]
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::refuses;

    #[test]
    fn libpqs_rule() {
        const ME: u32 = 1000;
        // Owned by the current (non-root) user: nothing for group or others.
        assert!(!refuses(0o600, ME, ME));
        assert!(!refuses(0o400, ME, ME));
        assert!(refuses(0o640, ME, ME));
        assert!(refuses(0o604, ME, ME));
        assert!(refuses(0o610, ME, ME));
        // Owned by root, read by another user: group may read, nothing else.
        assert!(!refuses(0o640, 0, ME));
        assert!(!refuses(0o600, 0, ME));
        assert!(refuses(0o660, 0, ME));
        assert!(refuses(0o644, 0, ME));
        assert!(refuses(0o650, 0, ME));
        // Read by root itself: the owner rule applies first, so even 0640 is refused.
        assert!(refuses(0o640, 0, 0));
        assert!(!refuses(0o600, 0, 0));
        // Someone else's file: not checked here.
        assert!(!refuses(0o644, 1234, ME));
    }
}
