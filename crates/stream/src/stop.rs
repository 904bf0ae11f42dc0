//! [`StopHandle`]: stopping a [`LogicalStream`] from another task or a signal handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;

use tokio::sync::{oneshot, watch};

#[cfg(doc)]
use crate::{Feedback, LogicalStream};

/// Stops a [`LogicalStream`] from anywhere — another task, a signal handler — without owning
/// it. Cheap to clone; every clone stops the same stream, and stopping twice does nothing
/// more.
///
/// [`stop`](Self::stop) takes effect at the stream's next poll: that
/// [`next_event`](LogicalStream::next_event) (or `futures::Stream` poll) sends the final status
/// update — carrying every position reported through [`Feedback`] before it — and CopyDone,
/// waits for the server to end the stream, and returns `None` (or the error that ended it). A
/// loop `while let Some(event) = stream.next_event().await` therefore ends after the
/// acknowledgement of the last event it handled reached the server. A stream that is
/// waiting for data wakes up at once.
///
/// ```no_run
/// # async fn run(mut stream: pg_walstream_stream::LogicalStream) -> Result<(), pg_walstream_stream::Error> {
/// let stop = stream.stop_handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     stop.stop();
/// });
/// while let Some(event) = stream.next_event().await {
///     let event = event?;
///     // ... handle it, then:
///     stream.feedback().ack(&event)?;
/// }
/// // Stopped: the final status update carried the last acknowledgement.
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StopHandle {
    shared: Arc<StopShared>,
}

#[derive(Debug)]
struct StopShared {
    requested: AtomicBool,
    /// The task polling the stream, woken by a stop request.
    waker: Mutex<Option<Waker>>,
    /// Tells the driver task to stop (taken once).
    driver: Mutex<Option<oneshot::Sender<()>>>,
    /// Set once the stream is dropped: ends the tasks of [`StopHandle::stop_when`].
    ended: watch::Sender<bool>,
}

impl StopHandle {
    pub(crate) fn new(driver: oneshot::Sender<()>) -> Self {
        StopHandle {
            shared: Arc::new(StopShared {
                requested: AtomicBool::new(false),
                waker: Mutex::new(None),
                driver: Mutex::new(Some(driver)),
                ended: watch::Sender::new(false),
            }),
        }
    }

    /// Asks the stream to stop gracefully (see [`StopHandle`]). Never blocks; safe to call
    /// any number of times, from any thread.
    pub fn stop(&self) {
        self.shared.requested.store(true, Ordering::Release);
        let waker = self
            .shared
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Stops the stream once `signal` completes — `tokio::signal::ctrl_c()`, a SIGTERM
    /// stream's `recv()`, a shutdown token — by spawning a task on the current tokio runtime
    /// that awaits it. The task ends with the stream too (when it is dropped), so nothing is
    /// left waiting on the signal.
    ///
    /// ```no_run
    /// # async fn run(mut stream: pg_walstream_stream::LogicalStream) -> Result<(), pg_walstream_stream::Error> {
    /// stream.stop_handle().stop_when(tokio::signal::ctrl_c());
    /// while let Some(event) = stream.next_event().await {
    ///     let event = event?;
    ///     stream.feedback().ack(&event)?;
    /// }
    /// // Ctrl-C: the loop ended after the final status update went out.
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn`); a stream only exists inside one.
    pub fn stop_when<F>(&self, signal: F)
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        let handle = self.clone();
        let mut ended = self.shared.ended.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = signal => handle.stop(),
                _ = ended.wait_for(|ended| *ended) => {}
            }
        });
    }

    /// Whether a stop was asked for.
    pub fn is_stop_requested(&self) -> bool {
        self.shared.requested.load(Ordering::Acquire)
    }

    /// Remembers the task to wake on a stop request.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self
            .shared
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut() {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Tells the driver task to stop (once).
    pub(crate) fn signal_driver(&self) {
        let sender = self
            .shared
            .driver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

impl StopHandle {
    /// The stream was dropped: ends the tasks of [`stop_when`](Self::stop_when).
    pub(crate) fn mark_ended(&self) {
        self.shared.ended.send_replace(true);
    }
}
