//! A producer task reads the stream (it is `Send + 'static`, so it runs under
//! `tokio::spawn`) and hands events to a consumer over a bounded channel; the consumer reports
//! processed transactions through a clone of the stream's `Feedback` handle.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' \
//! PG_WALSTREAM_SLOT=example_slot PG_WALSTREAM_PUBLICATION=example_pub \
//!     cargo run -p example-tokio-spawn-streaming
//! ```
//!
//! The slot is created when missing. Streaming ends at `PG_WALSTREAM_STOP_LSN` (if set) or
//! with Ctrl-C: a `StopHandle` stops the stream gracefully, its final status update carrying
//! what the consumer acknowledged by then (events still in the channel are sent again to the
//! next stream on the slot).

use std::process::ExitCode;

use pg_walstream::prelude::*;
use tokio::sync::mpsc;

/// The stream's configuration from the environment.
fn config_from_env() -> Result<LogicalConfig, String> {
    let conninfo = std::env::var("PG_WALSTREAM_CONNINFO").map_err(|_| {
        "set PG_WALSTREAM_CONNINFO to a connection string, e.g. \
         PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app'"
            .to_owned()
    })?;
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let mut builder = LogicalConfig::builder()
        .conninfo(&conninfo)
        .slot(&var("PG_WALSTREAM_SLOT", "example_slot"))
        .publication(&var("PG_WALSTREAM_PUBLICATION", "example_pub"))
        .create_slot_if_missing(CreateSlotOptions::default());
    if let Ok(stop) = std::env::var("PG_WALSTREAM_STOP_LSN") {
        let lsn = stop
            .parse()
            .map_err(|_| format!("PG_WALSTREAM_STOP_LSN={stop:?} is not an LSN (X/Y)"))?;
        builder = builder.stop_at(lsn);
    }
    builder
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))
}

/// Reads the stream and forwards events until it ends or the consumer goes away.
async fn produce(mut stream: LogicalStream, tx: mpsc::Sender<Event>) -> Result<(), Error> {
    while let Some(event) = stream.next_event().await {
        if tx.send(event?).await.is_err() {
            break;
        }
    }
    stream.stop().await
}

/// Handles events; a transaction counts as processed once all its events were handled.
async fn consume(mut rx: mpsc::Receiver<Event>, feedback: Feedback) -> u64 {
    let mut changes = 0;
    while let Some(event) = rx.recv().await {
        let kind = match event.kind() {
            EventKind::Insert(c) => Some(("insert", c)),
            EventKind::Update(c) => Some(("update", c)),
            EventKind::Delete(c) => Some(("delete", c)),
            _ => None,
        };
        if let Some((kind, c)) = kind {
            changes += 1;
            println!("{kind} {}.{}", c.relation().schema(), c.relation().name());
        }
        feedback
            .ack(&event)
            .expect("the event came from the stream this feedback belongs to");
    }
    changes
}

async fn run(config: LogicalConfig) -> Result<(), Error> {
    let stream = LogicalStream::connect(config).await?;
    stream.stop_handle().stop_when(tokio::signal::ctrl_c());
    let feedback = stream.feedback().clone();
    let (tx, rx) = mpsc::channel(256);
    let producer = tokio::spawn(produce(stream, tx));
    let consumer = tokio::spawn(consume(rx, feedback));
    let produced = producer.await.map_err(|_| Error::TaskEnded)?;
    let changes = consumer.await.map_err(|_| Error::TaskEnded)?;
    println!("{changes} changes");
    produced
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match config_from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("tokio-spawn-streaming: {message}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tokio-spawn-streaming: {error}");
            ExitCode::FAILURE
        }
    }
}
