//! Checks of settings that the logical and physical stream configurations share.

use std::time::Duration;

use super::ConfigError;
use crate::core::ReadTimeout;

/// The longest status interval or fixed read deadline accepted: PostgreSQL's own upper bound
/// for `wal_receiver_status_interval` (`INT_MAX` / 1000 seconds, about 24.8 days).
pub const MAX_INTERVAL: Duration = Duration::from_secs(i32::MAX as u64 / 1000);

/// An interval (status updates, hot standby feedback): above zero, at most [`MAX_INTERVAL`].
pub(crate) fn interval(what: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::InvalidValue {
            what,
            reason: "must be greater than zero",
        });
    }
    if value > MAX_INTERVAL {
        return Err(ConfigError::InvalidValue {
            what,
            reason: "must be at most 2147483 seconds (PostgreSQL's own limit)",
        });
    }
    Ok(())
}

/// A read deadline: a fixed one above zero and at most [`MAX_INTERVAL`].
pub(crate) fn read_timeout(timeout: ReadTimeout) -> Result<(), ConfigError> {
    if matches!(timeout, ReadTimeout::Fixed(d) if d > MAX_INTERVAL) {
        return Err(ConfigError::InvalidValue {
            what: "read timeout",
            reason: "must be at most 2147483 seconds (use ReadTimeout::Disabled to disable it)",
        });
    }
    if timeout == ReadTimeout::Fixed(Duration::ZERO) {
        return Err(ConfigError::InvalidValue {
            what: "read timeout",
            reason: "must be greater than zero (use ReadTimeout::Disabled to disable it)",
        });
    }
    Ok(())
}

/// A count that must be at least 1 (channel capacity, channel bytes).
pub(crate) fn at_least_one(what: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::InvalidValue {
            what,
            reason: "must be at least 1",
        });
    }
    Ok(())
}
