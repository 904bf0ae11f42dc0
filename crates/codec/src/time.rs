//! PostgreSQL timestamps: microseconds since 2000-01-01 00:00:00 UTC.

/// Seconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
pub const POSTGRES_EPOCH_UNIX_SECONDS: i64 = 946_684_800;

/// A PostgreSQL `timestamptz` as sent on the replication protocol: microseconds since
/// 2000-01-01 00:00:00 UTC. `i64::MAX` / `i64::MIN` are PostgreSQL's `infinity` /
/// `-infinity`.
///
/// ```
/// use pg_walstream_codec::PgTimestamp;
/// let t = PgTimestamp::from_unix_micros(946_684_800_000_001).unwrap();
/// assert_eq!(t, PgTimestamp(1));
/// assert_eq!(t.to_unix_micros(), Some(946_684_800_000_001));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgTimestamp(pub i64);

const EPOCH_OFFSET_MICROS: i64 = POSTGRES_EPOCH_UNIX_SECONDS * 1_000_000;

impl PgTimestamp {
    /// The PostgreSQL epoch itself.
    pub const EPOCH: PgTimestamp = PgTimestamp(0);
    /// `infinity`.
    pub const INFINITY: PgTimestamp = PgTimestamp(i64::MAX);
    /// `-infinity`.
    pub const NEG_INFINITY: PgTimestamp = PgTimestamp(i64::MIN);

    /// Microseconds since 2000-01-01.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Whether this is `infinity` or `-infinity`.
    pub const fn is_infinite(self) -> bool {
        self.0 == i64::MAX || self.0 == i64::MIN
    }

    /// From microseconds since the Unix epoch; `None` if out of range.
    pub const fn from_unix_micros(micros: i64) -> Option<Self> {
        match micros.checked_sub(EPOCH_OFFSET_MICROS) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Microseconds since the Unix epoch; `None` for infinities or on overflow.
    pub const fn to_unix_micros(self) -> Option<i64> {
        if self.is_infinite() {
            return None;
        }
        self.0.checked_add(EPOCH_OFFSET_MICROS)
    }

    /// The corresponding [`std::time::SystemTime`]; `None` for infinities or values
    /// outside `SystemTime`'s range.
    ///
    /// ```
    /// use pg_walstream_codec::PgTimestamp;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let t = PgTimestamp(1_500_000);
    /// assert_eq!(t.to_system_time(), Some(UNIX_EPOCH + Duration::from_micros(946_684_801_500_000)));
    /// assert_eq!(PgTimestamp::from_system_time(t.to_system_time().unwrap()), Some(t));
    /// ```
    #[cfg(feature = "std")]
    pub fn to_system_time(self) -> Option<std::time::SystemTime> {
        use std::time::{Duration, UNIX_EPOCH};
        let micros = self.to_unix_micros()?;
        if micros >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_micros(micros.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_micros(micros.unsigned_abs()))
        }
    }

    /// From a [`std::time::SystemTime`] (truncated to microseconds); `None` if out of range.
    #[cfg(feature = "std")]
    pub fn from_system_time(time: std::time::SystemTime) -> Option<Self> {
        use std::time::UNIX_EPOCH;
        let micros = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).ok()?,
            Err(before) => {
                let d = before.duration();
                // Round towards negative infinity so sub-microsecond parts truncate consistently.
                let whole = i64::try_from(d.as_micros()).ok()?;
                let extra = i64::from(d.subsec_nanos() % 1000 != 0);
                whole.checked_add(extra)?.checked_neg()?
            }
        };
        Self::from_unix_micros(micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_conversion() {
        assert_eq!(PgTimestamp(0).to_unix_micros(), Some(946_684_800_000_000));
        assert_eq!(PgTimestamp::INFINITY.to_unix_micros(), None);
        assert_eq!(PgTimestamp::from_unix_micros(i64::MIN), None);
        assert_eq!(
            PgTimestamp::from_unix_micros(0),
            Some(PgTimestamp(-946_684_800_000_000))
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn system_time_before_unix_epoch() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = UNIX_EPOCH - Duration::from_micros(5);
        let pg = PgTimestamp::from_system_time(t).unwrap();
        assert_eq!(pg.to_unix_micros(), Some(-5));
        assert_eq!(pg.to_system_time(), Some(t));
        assert_eq!(PgTimestamp::NEG_INFINITY.to_system_time(), None);
    }
}
