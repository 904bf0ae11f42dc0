//! Transaction ids and object ids.

use core::fmt;

/// A PostgreSQL 32-bit transaction id (`TransactionId`).
///
/// ```
/// use pg_walstream_codec::Xid;
/// assert_eq!(Xid(742).to_string(), "742");
/// assert!(!Xid::INVALID.is_valid());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Xid(pub u32);

impl Xid {
    /// `InvalidTransactionId` (0).
    pub const INVALID: Xid = Xid(0);

    /// Whether this is a valid (non-zero) transaction id.
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u32> for Xid {
    fn from(v: u32) -> Self {
        Self(v)
    }
}

/// A PostgreSQL object id (`Oid`): relations, types, …
///
/// ```
/// use pg_walstream_codec::Oid;
/// assert_eq!(Oid(16384).to_string(), "16384");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Oid(pub u32);

impl Oid {
    /// `InvalidOid` (0).
    pub const INVALID: Oid = Oid(0);
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u32> for Oid {
    fn from(v: u32) -> Self {
        Self(v)
    }
}
