//! A one-shot timer finer than the runtime's: tokio's timers tick in whole milliseconds, so a
//! read-coalescing wait of a few hundred microseconds would last a millisecond or more. On
//! Linux this is a `timerfd` on the runtime's reactor (one `timerfd_settime` to arm, one
//! `read` when it fires); elsewhere it falls back to a tokio sleep.

use std::time::Duration;

/// Waits shorter than this use a [`FineTimer`]; longer ones the runtime's own timer, whose
/// rounding up to the next tick then matters little.
pub(crate) const FINE_BELOW: Duration = Duration::from_millis(1);

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::time::Duration;

    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use tokio::net::unix::pipe;

    /// A non-blocking monotonic `timerfd` on the runtime's reactor. It is registered through
    /// tokio's pipe receiver, which only waits for readability and calls `read(2)` — what a
    /// timerfd needs (an 8-byte count of expirations) — and needs no `unsafe`, unlike
    /// `AsyncFd` registration.
    #[derive(Debug)]
    pub(crate) struct FineTimer {
        fd: pipe::Receiver,
    }

    impl FineTimer {
        pub(crate) fn new() -> io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            Ok(FineTimer {
                fd: pipe::Receiver::from_owned_fd_unchecked(fd)?,
            })
        }

        /// Fires once, `after` from now (a zero wait fires at once: the kernel takes a zero
        /// expiry as "disarm", so it becomes one nanosecond). Re-arming replaces the previous
        /// expiry and discards an expiry not yet waited for.
        pub(crate) fn arm(&mut self, after: Duration) -> io::Result<()> {
            let after = after.max(Duration::from_nanos(1));
            let value = Timespec::try_from(after)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timer out of range"))?;
            let spec = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            };
            timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
            Ok(())
        }

        /// Resolves when the armed expiry has passed (never, if none is armed).
        pub(crate) async fn fired(&mut self) -> io::Result<()> {
            let mut expirations = [0u8; 8];
            loop {
                self.fd.readable().await?;
                match self.fd.try_read(&mut expirations) {
                    Ok(_) => return Ok(()),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::pin::Pin;
    use std::time::Duration;

    use tokio::time::{Instant, Sleep};

    /// The runtime's sleep: no finer than its tick.
    #[derive(Debug)]
    pub(crate) struct FineTimer {
        sleep: Pin<Box<Sleep>>,
        armed: bool,
    }

    impl FineTimer {
        pub(crate) fn new() -> io::Result<Self> {
            Ok(FineTimer {
                sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
                armed: false,
            })
        }

        pub(crate) fn arm(&mut self, after: Duration) -> io::Result<()> {
            self.sleep.as_mut().reset(Instant::now() + after);
            self.armed = true;
            Ok(())
        }

        pub(crate) async fn fired(&mut self) -> io::Result<()> {
            if !self.armed {
                std::future::pending::<()>().await;
            }
            self.sleep.as_mut().await;
            self.armed = false;
            Ok(())
        }
    }
}

pub(crate) use imp::FineTimer;

/// The driver's waits shorter than [`FINE_BELOW`]: a [`FineTimer`] made on the first one
/// (if the system refuses it, those waits stay on the runtime's timer, logged once).
#[derive(Debug, Default)]
pub(crate) struct ShortWait {
    timer: Option<FineTimer>,
    refused: bool,
    /// Whether a wait is armed and not yet over.
    pub(crate) armed: bool,
}

impl ShortWait {
    /// Arms a wait of `wait` if it is short and a timer is available; returns whether it did
    /// (if not, the caller waits on its own timer).
    pub(crate) fn arm(&mut self, wait: Duration) -> bool {
        self.armed = false;
        if wait >= FINE_BELOW || self.refused {
            return false;
        }
        if self.timer.is_none() {
            match FineTimer::new() {
                Ok(timer) => self.timer = Some(timer),
                Err(error) => {
                    tracing::debug!(%error, "no fine timer; short waits use the runtime's timer");
                    self.refused = true;
                    return false;
                }
            }
        }
        self.armed = self
            .timer
            .as_mut()
            .is_some_and(|timer| timer.arm(wait).is_ok());
        self.armed
    }

    /// Resolves when the armed wait is over (a failing timer ends it at once and is given
    /// up: later waits use the caller's timer).
    pub(crate) async fn over(&mut self) {
        let failed = match self.timer.as_mut() {
            Some(timer) => timer.fired().await.is_err(),
            None => false,
        };
        if failed {
            self.timer = None;
            self.refused = true;
        }
        self.armed = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{FINE_BELOW, FineTimer, ShortWait};

    #[tokio::test]
    async fn fires_after_the_wait_and_not_before() {
        let mut timer = FineTimer::new().unwrap();
        for wait in [
            Duration::ZERO,
            Duration::from_micros(300),
            Duration::from_millis(3),
        ] {
            let started = Instant::now();
            timer.arm(wait).unwrap();
            tokio::time::timeout(Duration::from_secs(10), timer.fired())
                .await
                .expect("the timer fires")
                .unwrap();
            assert!(started.elapsed() >= wait, "fired before {wait:?}");
        }
    }

    #[tokio::test]
    async fn only_waits_under_a_millisecond_take_the_fine_timer() {
        let mut wait = ShortWait::default();
        assert!(
            !wait.arm(FINE_BELOW),
            "a 1 ms wait stays on the runtime's timer"
        );
        assert!(!wait.armed);
        let started = Instant::now();
        assert!(wait.arm(Duration::from_micros(300)));
        wait.over().await;
        assert!(started.elapsed() >= Duration::from_micros(300));
        assert!(!wait.armed, "a wait that is over is disarmed");
    }

    #[tokio::test]
    async fn re_arming_replaces_the_expiry() {
        let mut timer = FineTimer::new().unwrap();
        timer.arm(Duration::from_micros(100)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        // The first expiry has passed unread; the new one must be waited for in full.
        let started = Instant::now();
        timer.arm(Duration::from_millis(20)).unwrap();
        timer.fired().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
