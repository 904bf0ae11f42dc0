//! Status-update timer and read deadline.

use std::time::{Duration, Instant};

/// How long the server may stay silent before the connection is presumed dead.
///
/// Half-way through the deadline the stream sends a status update asking the server to reply
/// at once, so a healthy but idle server always answers in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadTimeout {
    /// Derived from the server's keepalive cadence: 3 × the longest of the last
    /// [`ReadTimeout::AUTO_WINDOW`] silences that a keepalive ended (the time since the frame
    /// before it), at least [`ReadTimeout::AUTO_MIN`]; [`ReadTimeout::AUTO_INITIAL`] until
    /// two keepalives have been seen. While data flows the silences are short, so a long busy
    /// period does not stretch the deadline, and an old long silence ages out of the window.
    #[default]
    Auto,
    /// A fixed deadline.
    Fixed(Duration),
    /// Never time out (not recommended: a dead peer hangs the stream).
    Disabled,
}

impl ReadTimeout {
    /// The smallest automatic deadline.
    pub const AUTO_MIN: Duration = Duration::from_secs(10);
    /// The automatic deadline before the keepalive cadence is known (PostgreSQL's default
    /// `wal_sender_timeout`).
    pub const AUTO_INITIAL: Duration = Duration::from_secs(60);
    /// How many recent keepalive-ended silences the automatic deadline is derived from.
    pub const AUTO_WINDOW: usize = 8;

    /// The deadline in force given the longest keepalive-ended silence seen so far; `None`
    /// when disabled.
    pub(crate) fn resolve(self, longest_silence: Option<Duration>) -> Option<Duration> {
        match self {
            ReadTimeout::Fixed(d) => Some(d),
            ReadTimeout::Disabled => None,
            ReadTimeout::Auto => Some(match longest_silence {
                Some(gap) => gap.saturating_mul(3).max(ReadTimeout::AUTO_MIN),
                None => ReadTimeout::AUTO_INITIAL,
            }),
        }
    }
}

/// Read coalescing: after a read that brought fewer than [`below`](Self::below) bytes, the
/// driver waits up to [`budget`](Self::budget) before reading again, so the next read carries
/// what arrived meanwhile — hundreds of messages instead of a few. Fewer reads mean fewer
/// wake-ups and syscalls here, and a walsender whose sends find our window less often empty.
/// The wait is cut short by the stream's next timer (status update, liveness ping, read
/// deadline); it adds at most `budget` to the delivery latency of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadCoalescing {
    /// The longest wait; zero turns coalescing off (read again at once, as soon as data
    /// arrives).
    pub budget: Duration,
    /// Reads of at least this many bytes are followed by the next read at once.
    pub below: usize,
}

impl ReadCoalescing {
    /// The default budget: 1 ms.
    pub const DEFAULT_BUDGET: Duration = Duration::from_millis(1);
    /// The default budget over a Unix-domain socket: 400 µs ([`default_for`](Self::default_for)
    /// says why it is shorter). Waits under a millisecond use a timer of their own (a
    /// `timerfd` on Linux), since the runtime's timers tick in whole milliseconds.
    pub const DEFAULT_UNIX_BUDGET: Duration = Duration::from_micros(400);
    /// The default threshold: 4 KiB. libpq reads into at least 8 KiB of free buffer at a
    /// time and the native backend up to its `max_read_size` (16 KiB by default), so a read
    /// that found more waiting than it could take — its complete frames at least 8 KiB less
    /// one partial frame — is never followed by a wait.
    pub const DEFAULT_BELOW: usize = 4 * 1024;
    /// The largest budget a configuration accepts.
    pub const MAX_BUDGET: Duration = Duration::from_secs(1);

    /// Coalescing with `budget` (zero: off) and the default threshold.
    pub const fn new(budget: Duration) -> Self {
        ReadCoalescing {
            budget,
            below: Self::DEFAULT_BELOW,
        }
    }

    /// No coalescing.
    pub const fn off() -> Self {
        Self::new(Duration::ZERO)
    }

    /// The default for a connection: [`DEFAULT_BUDGET`](Self::DEFAULT_BUDGET) over TCP,
    /// [`DEFAULT_UNIX_BUDGET`](Self::DEFAULT_UNIX_BUDGET) over a Unix-domain socket
    /// (`unix_socket`).
    ///
    /// A Unix-domain stream socket queues only as much as the *sender's* `SO_SNDBUF` allows
    /// (Linux: 208 KiB of buffer memory by default, counted with each message's overhead),
    /// and the walsender sends each small message by itself: about a millisecond of them at
    /// full speed. A wait of a millisecond or more lets the walsender fill the queue and
    /// block; 400 µs halved the consumer's CPU without slowing the walsender
    /// (docs/BENCHMARKS.md). Over TCP the receive window (tuned up to megabytes) holds many
    /// milliseconds.
    ///
    /// ```
    /// use pg_walstream_stream::ReadCoalescing;
    ///
    /// assert_eq!(ReadCoalescing::default_for(false), ReadCoalescing::default());
    /// assert_eq!(
    ///     ReadCoalescing::default_for(true).budget,
    ///     ReadCoalescing::DEFAULT_UNIX_BUDGET
    /// );
    /// ```
    #[must_use]
    pub const fn default_for(unix_socket: bool) -> Self {
        if unix_socket {
            Self::new(Self::DEFAULT_UNIX_BUDGET)
        } else {
            Self::new(Self::DEFAULT_BUDGET)
        }
    }

    /// The budget cut to a tenth of the server's `wal_sender_timeout` (when it has one): a
    /// keepalive asking for a reply comes half-way through that timeout, so a wait this short
    /// can never hold the reply back long enough for the walsender to give up on us.
    #[must_use]
    pub fn within_sender_timeout(self, sender_timeout: Option<Duration>) -> Self {
        match sender_timeout {
            Some(timeout) if !timeout.is_zero() => ReadCoalescing {
                budget: self.budget.min(timeout / 10),
                ..self
            },
            _ => self,
        }
    }
}

/// A time setting as `SHOW` prints it (`60s`, `1min`, `500ms`, `0`; a bare number is in
/// milliseconds, the unit of `wal_sender_timeout`); `None` when it is not one.
pub(crate) fn parse_setting_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let micros_per_unit = match unit.trim() {
        "us" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "min" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return None,
    };
    number
        .checked_mul(micros_per_unit)
        .map(Duration::from_micros)
}

impl Default for ReadCoalescing {
    fn default() -> Self {
        Self::new(Self::DEFAULT_BUDGET)
    }
}

/// An instant `after` past `now`, saturating instead of panicking on absurd durations (the
/// builder rejects them; a core built directly must not panic either).
pub(crate) fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

#[derive(Debug)]
pub(crate) struct Timers {
    status_interval: Duration,
    next_status: Instant,
    read_timeout: ReadTimeout,
    last_received: Instant,
    /// Whether a keepalive was seen since the start (or since reading resumed).
    keepalive_seen: bool,
    /// The most recent silences that ended with a keepalive (ring, `silences_len` valid).
    silences: [Duration; ReadTimeout::AUTO_WINDOW],
    silences_len: usize,
    silences_next: usize,
    reading: bool,
    ping_sent: bool,
}

impl Timers {
    pub(crate) fn new(now: Instant, status_interval: Duration, read_timeout: ReadTimeout) -> Self {
        Timers {
            status_interval,
            next_status: later(now, status_interval),
            read_timeout,
            last_received: now,
            keepalive_seen: false,
            silences: [Duration::ZERO; ReadTimeout::AUTO_WINDOW],
            silences_len: 0,
            silences_next: 0,
            reading: true,
            ping_sent: false,
        }
    }

    /// The deadline in force, `None` when disabled.
    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
            .resolve(self.silences[..self.silences_len].iter().max().copied())
    }

    /// A frame arrived at `now`; returns when the frame before it had (the silence it ended
    /// is computed only for keepalives: most frames of a batch share one `now`).
    pub(crate) fn on_received(&mut self, now: Instant) -> Instant {
        let before = self.last_received;
        self.last_received = before.max(now);
        self.ping_sent = false;
        before
    }

    /// The frame that ended `silence` was a keepalive.
    pub(crate) fn on_keepalive(&mut self, silence: Duration) {
        if !self.keepalive_seen {
            // The first silence includes the stream's start-up: it says nothing about the
            // server's cadence.
            self.keepalive_seen = true;
            return;
        }
        self.silences[self.silences_next] = silence;
        self.silences_next = (self.silences_next + 1) % ReadTimeout::AUTO_WINDOW;
        self.silences_len = (self.silences_len + 1).min(ReadTimeout::AUTO_WINDOW);
    }

    /// Reading paused (backpressure) or resumed: while paused, silence is expected.
    pub(crate) fn set_reading(&mut self, now: Instant, reading: bool) {
        if reading && !self.reading {
            self.last_received = self.last_received.max(now);
            self.ping_sent = false;
            // Keepalives were not read while paused: the next silence says nothing about the
            // server.
            self.keepalive_seen = false;
        }
        self.reading = reading;
    }

    fn ping_at(&self) -> Option<Instant> {
        let timeout = self.read_timeout()?;
        (self.reading && !self.ping_sent).then(|| later(self.last_received, timeout / 2))
    }

    fn deadline(&self) -> Option<Instant> {
        let timeout = self.read_timeout()?;
        self.reading.then(|| later(self.last_received, timeout))
    }

    /// Whether a periodic status update is due.
    pub(crate) fn status_due(&self, now: Instant) -> bool {
        now >= self.next_status
    }

    /// Whether a status update asking for a reply should go out now (once per silence).
    pub(crate) fn ping_due(&self, now: Instant) -> bool {
        self.ping_at().is_some_and(|at| now >= at)
    }

    pub(crate) fn on_status_sent(&mut self, now: Instant, pinged: bool) {
        self.next_status = later(now, self.status_interval);
        if pinged {
            self.ping_sent = true;
        }
    }

    /// How long the server has been silent, if that is past the deadline.
    pub(crate) fn expired(&self, now: Instant) -> Option<Duration> {
        let deadline = self.deadline()?;
        (now >= deadline).then(|| now.saturating_duration_since(self.last_received))
    }

    /// The earliest instant at which something is due: with `status` the status timer, the
    /// liveness ping and the read deadline; without it (after CopyDone, when no status update
    /// may be sent any more) only the read deadline.
    pub(crate) fn next_timeout(&self, status: bool) -> Option<Instant> {
        let deadline = self.deadline();
        if !status {
            return deadline;
        }
        let mut at = self.next_status;
        for t in [self.ping_at(), deadline].into_iter().flatten() {
            at = at.min(t);
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ReadCoalescing, parse_setting_duration};

    #[test]
    fn settings_as_show_prints_them() {
        let ms = Duration::from_millis;
        assert_eq!(parse_setting_duration("60s"), Some(ms(60_000)));
        assert_eq!(parse_setting_duration("1min"), Some(ms(60_000)));
        assert_eq!(parse_setting_duration("1500ms"), Some(ms(1500)));
        assert_eq!(parse_setting_duration("2h"), Some(ms(7_200_000)));
        assert_eq!(parse_setting_duration("1d"), Some(ms(86_400_000)));
        assert_eq!(parse_setting_duration("250"), Some(ms(250)));
        assert_eq!(parse_setting_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "-1s", "1 fortnight", "99999999999999999999d"] {
            assert_eq!(parse_setting_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_budget_stays_within_a_tenth_of_the_sender_timeout() {
        let ms = Duration::from_millis;
        let big = ReadCoalescing::new(ReadCoalescing::MAX_BUDGET);
        assert_eq!(big.within_sender_timeout(Some(ms(1000))).budget, ms(100));
        assert_eq!(big.within_sender_timeout(Some(ms(60_000))).budget, ms(1000));
        // Disabled or unknown timeouts leave it alone.
        assert_eq!(big.within_sender_timeout(Some(Duration::ZERO)), big);
        assert_eq!(big.within_sender_timeout(None), big);
        let default = ReadCoalescing::default();
        assert_eq!(default.within_sender_timeout(Some(ms(1000))), default);
    }
}
