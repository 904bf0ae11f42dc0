//! Reconnect and resume: after a transient failure the driver task dials again with the
//! stream's [`RetryPolicy`], checks that it reached the same server, and resumes at the larger
//! of what the application reported and what the slot confirmed — so a final status update
//! that never reached the server causes no replay, and nothing is skipped.
//!
//! The resume position is read when the new connection is about to start replicating. Events
//! of the old connection may still be on their way to the application then; what it reports
//! *after* that point is not in `resume_lsn`, so the server sends those transactions once
//! more. The stream drops them before the application sees them (`replay.rs`: a plain
//! transaction whose commit record starts before the processed position at the time it is
//! taken from the stream, as the server itself skips), so the delivery contract — a
//! transaction whose Commit `end_lsn` is at or before the processed position is never
//! delivered again — holds for reports made at any time. Streamed and two-phase transactions
//! are not filtered this way (their commit position is known only at their end): after a
//! `Reconnected` they may come again whole, as the contract allows for unreported ones.
//!
//! Only streams whose connection the library made itself can reconnect
//! ([`LogicalStream::connect`](crate::LogicalStream::connect),
//! [`PreparedStream::connect`](crate::PreparedStream::connect)); on a transport the
//! application supplied, the first failure ends the stream.

use std::future::Future;
use std::hash::{BuildHasher as _, Hasher as _};
use std::pin::Pin;
use std::time::Instant;

use pg_walstream_codec::Lsn;
use pg_walstream_slot::SystemIdentity;
use pg_walstream_transport::{Connection, Transport};

use crate::config::LogicalConfig;
use crate::core::{CoreOptions, LogicalCore};
use crate::driver::{Outlet, SessionEnd, drive};
use crate::error::{Error, Result};
use crate::events::{Event, Reconnected};
use crate::feedback::Feedback;
use crate::retry::RetryPolicy;
use crate::stream::PreparedStream;

/// A future of a new session (boxed: built once per reconnect attempt, never per event).
type SessionFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<(T, LogicalCore, Lsn)>> + Send + 'a>>;

/// Something that can open a new session of a stream: connect, check, `START_REPLICATION`.
pub(crate) trait Redial<T>: Send {
    /// One attempt: the new transport, its core (sharing the stream's `Feedback`) and the
    /// position it resumed at.
    fn redial(&mut self) -> SessionFuture<'_, T>;
}

/// A stream's way back after a transient failure.
pub(crate) struct Reconnector<T> {
    redial: Box<dyn Redial<T>>,
    policy: RetryPolicy,
    feedback: Feedback,
    version: pg_walstream_codec::pgoutput::ProtocolVersion,
}

impl<T> std::fmt::Debug for Reconnector<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnector")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Reconnector<T> {
    pub(crate) fn new(
        redial: Box<dyn Redial<T>>,
        policy: RetryPolicy,
        feedback: Feedback,
        version: pg_walstream_codec::pgoutput::ProtocolVersion,
    ) -> Self {
        Reconnector {
            redial,
            policy,
            feedback,
            version,
        }
    }

    /// Whether the policy allows reconnecting at all (transient errors only, see `drive`).
    fn enabled(&self) -> bool {
        self.policy.allows(1, std::time::Duration::ZERO)
    }

    /// Dials until a session starts, the policy gives up (`Err(Some(last error))`), a
    /// permanent error comes back (`Err(Some(it))`), or the application stops (`Err(None)`).
    async fn reconnect(
        &mut self,
        failure: Error,
        outlet: &mut Outlet,
    ) -> std::result::Result<(T, LogicalCore), Option<Error>> {
        let began = Instant::now();
        let mut last = failure;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if !self.policy.allows(attempt, began.elapsed()) {
                tracing::error!(error = %last, attempts = attempt - 1, "giving up reconnecting");
                return Err(Some(last));
            }
            let delay = self.policy.delay(attempt, random());
            tracing::warn!(error = %last, attempt, ?delay, "replication connection lost; reconnecting");
            tokio::select! {
                biased;
                () = outlet.stopped() => return Err(None),
                () = tokio::time::sleep(delay) => {}
            }
            self.feedback.record_reconnect_attempt();
            let outcome = tokio::select! {
                biased;
                () = outlet.stopped() => return Err(None),
                outcome = self.redial.redial() => outcome,
            };
            match outcome {
                Ok((transport, mut core, resume_lsn)) => {
                    let info = Reconnected {
                        attempt,
                        resume_lsn,
                        downtime: began.elapsed(),
                    };
                    tracing::info!(attempt, %resume_lsn, downtime = ?info.downtime, "replication stream reconnected");
                    outlet.metrics.on_reconnect();
                    self.feedback.record_reconnect();
                    core.push_front_event(Event::reconnected(
                        info,
                        self.version,
                        self.feedback.stream_id(),
                    ));
                    return Ok((transport, core));
                }
                Err(error) if error.is_transient() => last = error,
                Err(error) => {
                    tracing::error!(%error, attempt, "reconnecting failed permanently");
                    return Err(Some(error));
                }
            }
        }
    }
}

/// Runs a stream: sessions one after another, reconnecting after transient failures when a
/// [`Reconnector`] is given. Returns the error that ended the stream when the channel could no
/// longer carry it (after the stop LSN).
pub(crate) async fn run<T: Transport>(
    transport: T,
    core: LogicalCore,
    mut outlet: Outlet,
    mut reconnector: Option<Reconnector<T>>,
) -> Option<Error> {
    let mut session = (transport, core);
    loop {
        let (mut transport, mut core) = session;
        let reconnect = reconnector.as_ref().is_some_and(Reconnector::enabled);
        let end = drive(&mut transport, &mut core, &mut outlet, reconnect).await;
        match end {
            SessionEnd::Over => {
                if core.ended_cleanly() {
                    // The server follows its CopyDone with the command's end; say goodbye.
                    let _ = transport.close().await;
                }
                return outlet.take_late_error();
            }
            SessionEnd::Failed(error) => {
                // Close the broken connection first, so the server sees it go.
                drop(transport);
                let Some(reconnector) = reconnector.as_mut() else {
                    return outlet.deliver_error(error);
                };
                match reconnector.reconnect(error, &mut outlet).await {
                    Ok(next) => session = next,
                    Err(Some(error)) => return outlet.deliver_error(error),
                    Err(None) => return None,
                }
            }
        }
    }
}

/// A random number for the backoff's jitter (std's per-instance random hash keys; no
/// cryptographic quality needed).
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x5EED);
    hasher.finish()
}

/// Redials a stream the library connected itself: same connection settings and backend, the
/// slot must still exist (never recreated: a new slot would start at a new position), the
/// server must have the first connection's system identifier and timeline.
pub(crate) struct ConnectionRedial {
    config: LogicalConfig,
    first: SystemIdentity,
    options: CoreOptions,
    feedback: Feedback,
    floor: Lsn,
}

impl ConnectionRedial {
    /// `config` is the stream's configuration, `first` IDENTIFY_SYSTEM's first answer,
    /// `options` the core's options (their floor is the first start's).
    pub(crate) fn new(
        mut config: LogicalConfig,
        first: SystemIdentity,
        options: CoreOptions,
        feedback: Feedback,
    ) -> Self {
        config.create_slot = None;
        config.pin_protocol(options.version);
        ConnectionRedial {
            floor: options.floor,
            config,
            first,
            options,
            feedback,
        }
    }

    async fn once(&mut self) -> Result<(Connection, LogicalCore, Lsn)> {
        let prepared = PreparedStream::connect_without_reconnect(self.config.clone()).await?;
        let system = prepared.system();
        if system.system_id != self.first.system_id || system.timeline != self.first.timeline {
            return Err(Error::ServerChanged {
                expected_system_id: self.first.system_id,
                expected_timeline: self.first.timeline,
                found_system_id: system.system_id,
                found_timeline: system.timeline,
            });
        }
        let resume = self
            .feedback
            .processed_lsn()
            .max(prepared.resume_lsn())
            .max(self.floor);
        let command = self
            .config
            .start_replication_command(self.options.version, resume);
        tracing::debug!(%command, "resuming replication");
        let mut transport = prepared.into_transport();
        transport.copy_both(&command).await?;
        let mut options = self.options;
        options.floor = resume;
        self.floor = resume;
        let core = LogicalCore::new(options, self.feedback.clone(), Instant::now());
        Ok((transport, core, resume))
    }
}

impl Redial<Connection> for ConnectionRedial {
    fn redial(&mut self) -> SessionFuture<'_, Connection> {
        Box::pin(self.once())
    }
}
