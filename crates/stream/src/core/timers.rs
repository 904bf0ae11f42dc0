//! Status-update timer and read deadline.

use std::time::{Duration, Instant};

/// How long the server may stay silent before the connection is presumed dead.
///
/// Half-way through the deadline the stream sends a status update asking the server to reply
/// at once, so a healthy but idle server always answers in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadTimeout {
    /// Derived from the server's keepalive cadence: 3 × the longest gap seen between two
    /// keepalives, at least [`ReadTimeout::AUTO_MIN`]; [`ReadTimeout::AUTO_INITIAL`] until
    /// two keepalives have been seen.
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
}

#[derive(Debug)]
pub(crate) struct Timers {
    status_interval: Duration,
    next_status: Instant,
    read_timeout: ReadTimeout,
    last_received: Instant,
    last_keepalive: Option<Instant>,
    longest_keepalive_gap: Option<Duration>,
    reading: bool,
    ping_sent: bool,
}

impl Timers {
    pub(crate) fn new(now: Instant, status_interval: Duration, read_timeout: ReadTimeout) -> Self {
        Timers {
            status_interval,
            next_status: now + status_interval,
            read_timeout,
            last_received: now,
            last_keepalive: None,
            longest_keepalive_gap: None,
            reading: true,
            ping_sent: false,
        }
    }

    /// The deadline in force, `None` when disabled.
    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        match self.read_timeout {
            ReadTimeout::Fixed(d) => Some(d),
            ReadTimeout::Disabled => None,
            ReadTimeout::Auto => Some(match self.longest_keepalive_gap {
                Some(gap) => gap.saturating_mul(3).max(ReadTimeout::AUTO_MIN),
                None => ReadTimeout::AUTO_INITIAL,
            }),
        }
    }

    pub(crate) fn on_received(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
        self.ping_sent = false;
    }

    pub(crate) fn on_keepalive(&mut self, now: Instant) {
        if let Some(previous) = self.last_keepalive {
            let gap = now.saturating_duration_since(previous);
            self.longest_keepalive_gap =
                Some(self.longest_keepalive_gap.map_or(gap, |g| g.max(gap)));
        }
        self.last_keepalive = Some(now);
    }

    /// Reading paused (backpressure) or resumed: while paused, silence is expected.
    pub(crate) fn set_reading(&mut self, now: Instant, reading: bool) {
        if reading && !self.reading {
            self.last_received = self.last_received.max(now);
            self.ping_sent = false;
            // Keepalives were not read while paused: the gap says nothing about the server.
            self.last_keepalive = None;
        }
        self.reading = reading;
    }

    fn ping_at(&self) -> Option<Instant> {
        let timeout = self.read_timeout()?;
        (self.reading && !self.ping_sent).then(|| self.last_received + timeout / 2)
    }

    fn deadline(&self) -> Option<Instant> {
        let timeout = self.read_timeout()?;
        self.reading.then(|| self.last_received + timeout)
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
        self.next_status = now + self.status_interval;
        if pinged {
            self.ping_sent = true;
        }
    }

    /// How long the server has been silent, if that is past the deadline.
    pub(crate) fn expired(&self, now: Instant) -> Option<Duration> {
        let deadline = self.deadline()?;
        (now >= deadline).then(|| now.saturating_duration_since(self.last_received))
    }

    /// The earliest instant at which something is due.
    pub(crate) fn next_timeout(&self) -> Instant {
        let mut at = self.next_status;
        for t in [self.ping_at(), self.deadline()].into_iter().flatten() {
            at = at.min(t);
        }
        at
    }
}
