//! The application side of a stream's driver task, shared by the logical and physical
//! streams: once the event channel has closed, how the task ended decides the last item.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// A spawned driver task returning `R`, and whether the stream has reported its end.
#[derive(Debug)]
pub(crate) struct DriverTask<R> {
    handle: Option<JoinHandle<R>>,
    done: bool,
}

impl<R> DriverTask<R> {
    pub(crate) fn new(handle: JoinHandle<R>) -> Self {
        DriverTask {
            handle: Some(handle),
            done: false,
        }
    }

    /// Whether the end was reported: the stream yields nothing more.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// After the event channel closed: waits for the task, then ends the stream with `None`,
    /// with the error `late_error` finds in the task's result (one that came after the last
    /// event), or with [`Error::TaskEnded`] when the task panicked or was cancelled.
    pub(crate) fn poll_end<T>(
        &mut self,
        cx: &mut Context<'_>,
        late_error: impl FnOnce(R) -> Option<Error>,
    ) -> Poll<Option<Result<T>>> {
        let Some(handle) = self.handle.as_mut() else {
            self.done = true;
            return Poll::Ready(None);
        };
        let Poll::Ready(result) = Pin::new(handle).poll(cx) else {
            return Poll::Pending;
        };
        self.handle = None;
        self.done = true;
        Poll::Ready(match result {
            Ok(value) => late_error(value).map(Err),
            Err(_) => Some(Err(Error::TaskEnded)),
        })
    }
}
