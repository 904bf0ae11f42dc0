//! `recv`'s reconnect settings (`--retry-max-elapsed`, `--no-retry`), its signals, and opening
//! a stream that waits out a walsender still holding the slot.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, Instant};

use pg_walstream_stream::{
    Error as StreamError, LogicalConfig, LogicalStream, PreparedStream, RetryPolicy,
};
use pg_walstream_transport::SqlState;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::{CliError, chain};

/// Parses `--retry-max-elapsed`: a number with a unit (`ms`, `s`, `m`, `h`; seconds without
/// one), more than zero, at most a week.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 5m, 1h, 500ms)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (ms, s, m or h)"
            ));
        }
    };
    if !(seconds > 0.0 && seconds <= 7.0 * 86_400.0) {
        return Err(format!(
            "{text:?} must be more than zero and at most a week"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// SIGINT and SIGTERM, installed once for the whole run.
pub(crate) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub(crate) fn install() -> Result<Self, CliError> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())
                .map_err(|e| CliError::failed("installing the SIGINT handler", &e))?,
            terminate: signal(SignalKind::terminate())
                .map_err(|e| CliError::failed("installing the SIGTERM handler", &e))?,
        })
    }

    /// Waits for either signal.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// A started stream and whether a connection on the way created the slot.
pub(crate) struct Opened {
    pub(crate) stream: LogicalStream,
    pub(crate) created_slot: bool,
}

/// Connects and starts a stream. `any_transient`: retry every transient failure (a restart in
/// the middle of a run), or only "slot active" (55006: at start-up, the walsender of a process
/// that just died may not have noticed yet; an unreachable server fails at once, as
/// `pg_recvlogical` does). Retries follow `policy`, one stderr line each. `Ok(None)`: a signal
/// arrived first.
///
/// # Errors
/// The last failure, when it is permanent or the policy gives up.
pub(crate) async fn open(
    config: &LogicalConfig,
    policy: &RetryPolicy,
    any_transient: bool,
    signals: &mut Signals,
) -> Result<Option<Opened>, StreamError> {
    let began = Instant::now();
    let mut created_slot = false;
    let mut attempt = 0u32;
    loop {
        let result = tokio::select! {
            () = signals.recv() => return Ok(None),
            result = async {
                let prepared = PreparedStream::connect(config.clone()).await?;
                created_slot |= prepared.created_slot().is_some();
                prepared.start().await
            } => result,
        };
        let error = match result {
            Ok(stream) => {
                return Ok(Some(Opened {
                    stream,
                    created_slot,
                }));
            }
            Err(error) => error,
        };
        attempt += 1;
        let retry = if any_transient {
            error.is_transient()
        } else {
            slot_in_use(&error)
        };
        if !retry || !policy.allows(attempt, began.elapsed()) {
            return Err(error);
        }
        let delay = policy.delay(attempt, random());
        eprintln!(
            "pg-walstream: {}; retrying in {:.1}s",
            chain(&error),
            delay.as_secs_f64()
        );
        tokio::select! {
            () = signals.recv() => return Ok(None),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Whether START_REPLICATION found the slot held by another walsender (55006).
fn slot_in_use(error: &StreamError) -> bool {
    match error {
        StreamError::Transport(e) => e.code() == Some(SqlState::OBJECT_IN_USE),
        _ => false,
    }
}

/// A random number for the backoff's jitter.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x5EED);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "0", "0s", "-1s", "5 parsecs", "s", "9999h", "1e3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
