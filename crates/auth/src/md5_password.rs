//! MD5 password authentication (`AuthenticationMD5Password`).

use ::md5::{Digest, Md5};

/// Length of an MD5 response: `"md5"` + 32 hex digits.
pub const MD5_RESPONSE_LEN: usize = 35;

/// The PasswordMessage payload answering `AuthenticationMD5Password`:
/// `"md5" + hex(md5(hex(md5(password + user)) + salt))`.
///
/// `user` is the role name sent in the startup message (PostgreSQL salts its stored hash with
/// it). The result has no trailing NUL; the message encoder adds it.
///
/// ```
/// let r = pg_walstream_auth::md5_response(b"md5_user", b"md5_pass", [1, 2, 3, 4]);
/// assert_eq!(&r, b"md5c6ee6bd10a7adf513019b25f24df0925");
/// ```
pub fn md5_response(user: &[u8], password: &[u8], salt: [u8; 4]) -> [u8; MD5_RESPONSE_LEN] {
    let mut inner = Md5::new();
    inner.update(password);
    inner.update(user);
    let inner_hex = hex32(&inner.finalize());

    let mut outer = Md5::new();
    outer.update(inner_hex);
    outer.update(salt);
    let outer_hex = hex32(&outer.finalize());

    let mut out = [0u8; MD5_RESPONSE_LEN];
    out[..3].copy_from_slice(b"md5");
    out[3..].copy_from_slice(&outer_hex);
    out
}

/// Lower-case hex of a 16-byte digest.
fn hex32(digest: &[u8]) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_hash_matches_what_postgresql_stores() {
        // `SET password_encryption='md5'; CREATE ROLE md5_user PASSWORD 'md5_pass';`
        // on PostgreSQL 15 stores rolpassword = md5e473002ecaa9bfd0c982506b1bc2fe0b.
        let mut inner = Md5::new();
        inner.update(b"md5_pass");
        inner.update(b"md5_user");
        assert_eq!(
            &hex32(&inner.finalize()),
            b"e473002ecaa9bfd0c982506b1bc2fe0b"
        );
    }

    #[test]
    fn known_response() {
        // Computed independently with Python's hashlib.
        assert_eq!(
            &md5_response(b"md5_user", b"md5_pass", [1, 2, 3, 4]),
            b"md5c6ee6bd10a7adf513019b25f24df0925"
        );
    }

    #[test]
    fn salt_and_user_change_the_response() {
        let base = md5_response(b"u", b"p", [0; 4]);
        assert_ne!(base, md5_response(b"u", b"p", [0, 0, 0, 1]));
        assert_ne!(base, md5_response(b"v", b"p", [0; 4]));
        assert!(base.starts_with(b"md5"));
        assert!(base[3..].iter().all(u8::is_ascii_hexdigit));
    }
}
