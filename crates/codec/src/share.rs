//! Borrowed-to-owned conversion without copying.

use bytes::Bytes;

/// `sub` as a `Bytes` sharing `source` when `sub` lies inside it; otherwise a copy (never a
/// panic, whatever the caller passes).
pub(crate) fn share(source: &Bytes, sub: &[u8]) -> Bytes {
    let base = source.as_ptr() as usize;
    let start = sub.as_ptr() as usize;
    if sub.is_empty() {
        return Bytes::new();
    }
    if start >= base && start + sub.len() <= base + source.len() {
        source.slice_ref(sub)
    } else {
        Bytes::copy_from_slice(sub)
    }
}
