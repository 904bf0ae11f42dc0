//! [`Assemble`]: the assembler as a `Stream` adapter over a stream of events.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{Assembled, AssemblerConfig, TransactionAssembler};
use crate::error::Result;
use crate::events::Event;

/// A `Stream` of [`Assembled`] items over any `Stream` of events — a
/// [`LogicalStream`](crate::LogicalStream), or one already filtered or mapped with stream
/// combinators — and usable with combinators itself.
///
/// Errors of the inner stream pass through; an event out of place or a failing spill file
/// yields the assembler's error. The inner stream ending ends this one (transactions still
/// open are dropped: they were never decided).
///
/// ```no_run
/// use futures::StreamExt as _;
/// use pg_walstream_stream::assembler::{Assemble, Assembled, AssemblerConfig};
/// use pg_walstream_stream::{LogicalConfig, LogicalStream, OrderedFeedback};
///
/// # async fn run(config: LogicalConfig) -> Result<(), pg_walstream_stream::Error> {
/// let stream = LogicalStream::connect(config).await?;
/// let acks = OrderedFeedback::new(stream.feedback().clone());
/// let mut transactions = Assemble::new(stream, AssemblerConfig::default());
/// while let Some(item) = transactions.next().await {
///     if let Assembled::Transaction(transaction) = item? {
///         let ticket = acks.ticket(transaction.ack_lsn()).await;
///         for event in transaction.into_events()? {
///             let _event = event?; // apply it
///         }
///         let _ = ticket.complete();
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Assemble<S> {
    inner: S,
    assembler: TransactionAssembler,
}

impl<S> Assemble<S> {
    /// Assembles the events of `inner` with `config`.
    pub fn new(inner: S, config: AssemblerConfig) -> Self {
        Assemble {
            inner,
            assembler: TransactionAssembler::new(config),
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The assembler (e.g. to [`reset`](TransactionAssembler::reset) it for a stream restarted
    /// by other means; reconnects announced by the stream it handles itself).
    pub fn assembler_mut(&mut self) -> &mut TransactionAssembler {
        &mut self.assembler
    }

    /// Takes the adapter apart.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Stream for Assemble<S>
where
    S: Stream<Item = Result<Event>> + Unpin,
{
    type Item = Result<Assembled>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.assembler.poll() {
                return Poll::Ready(Some(Ok(item)));
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(Some(Ok(event))) => {
                    if let Err(error) = this.assembler.push(event) {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
            }
        }
    }
}
