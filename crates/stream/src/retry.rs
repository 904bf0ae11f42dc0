//! When and how often a stream reconnects after a transient failure: [`RetryPolicy`].
//!
//! The policy is pure arithmetic (attempt number, elapsed time and a random number in; a
//! delay or "give up" out), so it is tested without a clock; the driver supplies time and
//! randomness.

use std::time::Duration;

/// Exponential backoff with full jitter for reconnecting a stream after a *transient* failure
/// (see [`Error::classify`](crate::Error::classify)); permanent failures are never retried.
///
/// Attempt `n` (1-based) waits a random time between zero and
/// `min(max_delay, initial_delay × multiplier^(n-1))` ("full jitter", so many consumers
/// restarting together do not hammer the server in step). The budget is per outage: it
/// restarts after a successful reconnect.
///
/// ```
/// use std::time::Duration;
/// use pg_walstream_stream::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .initial_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(5))
///     .max_attempts(10);
/// // Without jitter the delays are the exponential ceiling itself.
/// let fixed = policy.clone().jitter(false);
/// assert_eq!(fixed.delay(1, 0), Duration::from_millis(100));
/// assert_eq!(fixed.delay(3, 0), Duration::from_millis(400));
/// assert_eq!(fixed.delay(20, 0), Duration::from_secs(5));
/// assert!(policy.allows(10, Duration::ZERO));
/// assert!(!policy.allows(11, Duration::ZERO));
/// assert!(!RetryPolicy::never().allows(1, Duration::ZERO));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    jitter: bool,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 200 ms initial delay, doubling up to 30 s, full jitter, any number of attempts within
    /// 5 minutes of the failure.
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: true,
            max_attempts: None,
            max_elapsed: Some(Duration::from_secs(300)),
        }
    }
}

impl RetryPolicy {
    /// Never reconnect: the first failure ends the stream (the behaviour of a stream on a
    /// transport the application supplied).
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: Some(0),
            ..RetryPolicy::default()
        }
    }

    /// The ceiling of the first attempt's delay.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The largest delay between attempts.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How much the ceiling grows per attempt (values below 1 are taken as 1).
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Whether delays are drawn uniformly below the ceiling (default) or are the ceiling.
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// At most this many attempts per outage.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// No new attempt after this long since the failure.
    #[must_use]
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = Some(elapsed);
        self
    }

    /// No limit on the time spent reconnecting (only [`max_attempts`](Self::max_attempts)
    /// bounds it, if set).
    #[must_use]
    pub fn unlimited_elapsed(mut self) -> Self {
        self.max_elapsed = None;
        self
    }

    /// Whether attempt `attempt` (1-based) may start `elapsed` after the failure.
    pub fn allows(&self, attempt: u32, elapsed: Duration) -> bool {
        self.max_attempts.is_none_or(|max| attempt <= max)
            && self.max_elapsed.is_none_or(|max| elapsed < max)
    }

    /// The delay before attempt `attempt` (1-based); `random` is any uniformly distributed
    /// 64-bit number (ignored without jitter).
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.multiplier.max(1.0).powi(exponent);
        let ceiling = self.initial_delay.as_secs_f64() * factor;
        let ceiling = if ceiling.is_finite() {
            Duration::from_secs_f64(ceiling.min(self.max_delay.as_secs_f64()))
        } else {
            self.max_delay
        }
        .min(self.max_delay);
        if !self.jitter {
            return ceiling;
        }
        // Uniform in [0, ceiling]: the top 53 bits as a fraction.
        // Exact: both values fit in f64's 53-bit mantissa.
        #[allow(clippy::cast_precision_loss)]
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::RetryPolicy;
    use std::time::Duration;

    #[test]
    fn delays_grow_to_the_cap_and_jitter_stays_below_the_ceiling() {
        let policy = RetryPolicy::default();
        let fixed = policy.clone().jitter(false);
        let ceilings: Vec<_> = (1..=10).map(|n| fixed.delay(n, 0)).collect();
        assert_eq!(ceilings[0], Duration::from_millis(200));
        assert_eq!(ceilings[1], Duration::from_millis(400));
        assert!(ceilings.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(ceilings[9], Duration::from_secs(30));
        assert_eq!(fixed.delay(u32::MAX, 0), Duration::from_secs(30));
        for (n, random) in [(1, 0), (1, u64::MAX), (5, 1 << 63), (40, 12345)] {
            let d = policy.delay(n, random);
            assert!(d <= fixed.delay(n, 0), "attempt {n}: {d:?}");
        }
        assert_eq!(policy.delay(3, 0), Duration::ZERO);
        assert!(policy.delay(3, u64::MAX) > Duration::from_millis(790));
    }

    #[test]
    fn budgets_by_attempts_and_elapsed_time() {
        let policy = RetryPolicy::default();
        assert!(policy.allows(1_000, Duration::from_secs(299)));
        assert!(!policy.allows(1, Duration::from_secs(300)));
        let policy = policy.unlimited_elapsed().max_attempts(3);
        assert!(policy.allows(3, Duration::from_secs(1 << 30)));
        assert!(!policy.allows(4, Duration::ZERO));
        assert!(!RetryPolicy::never().allows(1, Duration::ZERO));
    }
}
