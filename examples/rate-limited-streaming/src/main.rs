//! Consume a logical replication stream at a bounded rate with `tokio_stream`'s `throttle`.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' \
//! PG_WALSTREAM_SLOT=example_slot PG_WALSTREAM_PUBLICATION=example_pub \
//! PG_WALSTREAM_EVENTS_PER_SECOND=50 \
//!     cargo run -p example-rate-limited-streaming
//! ```
//!
//! A slow consumer is safe: while events wait, the stream stops reading from the server
//! (bounded memory) but keeps sending status updates on its own task, so the server does not
//! time the connection out. The slot is created when missing; streaming ends at
//! `PG_WALSTREAM_STOP_LSN` (if set) or with Ctrl-C, after a final status update.

use std::process::ExitCode;
use std::time::Duration;

use pg_walstream::prelude::*;
use tokio_stream::StreamExt as _;

/// The stream's configuration and the rate from the environment.
fn config_from_env() -> Result<(LogicalConfig, u32), String> {
    let conninfo = std::env::var("PG_WALSTREAM_CONNINFO").map_err(|_| {
        "set PG_WALSTREAM_CONNINFO to a connection string, e.g. \
         PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app'"
            .to_owned()
    })?;
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let rate = var("PG_WALSTREAM_EVENTS_PER_SECOND", "100");
    let rate: u32 = rate.parse().ok().filter(|r| *r > 0).ok_or_else(|| {
        format!("PG_WALSTREAM_EVENTS_PER_SECOND={rate:?} is not a positive number")
    })?;
    let mut builder = LogicalConfig::builder()
        .conninfo(&conninfo)
        .slot(&var("PG_WALSTREAM_SLOT", "example_slot"))
        .publication(&var("PG_WALSTREAM_PUBLICATION", "example_pub"))
        // At most this many events wait in memory for the throttled consumer.
        .channel_capacity(64)
        .create_slot_if_missing(CreateSlotOptions::default());
    if let Ok(stop) = std::env::var("PG_WALSTREAM_STOP_LSN") {
        let lsn = stop
            .parse()
            .map_err(|_| format!("PG_WALSTREAM_STOP_LSN={stop:?} is not an LSN (X/Y)"))?;
        builder = builder.stop_at(lsn);
    }
    let config = builder
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    Ok((config, rate))
}

async fn run(config: LogicalConfig, per_second: u32) -> Result<(), Error> {
    let mut stream = LogicalStream::connect(config).await?;
    // Ctrl-C: the loop ends once the final status update went out.
    stream.stop_handle().stop_when(tokio::signal::ctrl_c());
    let feedback = stream.feedback().clone();
    let events = (&mut stream).throttle(Duration::from_secs(1) / per_second);
    tokio::pin!(events);
    let mut count = 0u64;
    while let Some(event) = events.next().await {
        let event = event?;
        count += 1;
        let kind = match event.kind() {
            EventKind::Insert(c) => Some(("insert", c)),
            EventKind::Update(c) => Some(("update", c)),
            EventKind::Delete(c) => Some(("delete", c)),
            _ => None,
        };
        if let Some((kind, c)) = kind {
            println!("{kind} {}.{}", c.relation().schema(), c.relation().name());
        }
        feedback.ack(&event)?;
    }
    println!("{count} events at most {per_second} per second");
    stream.stop().await
}

#[tokio::main]
async fn main() -> ExitCode {
    let (config, rate) = match config_from_env() {
        Ok(values) => values,
        Err(message) => {
            eprintln!("rate-limited-streaming: {message}");
            return ExitCode::from(2);
        }
    };
    match run(config, rate).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rate-limited-streaming: {error}");
            ExitCode::FAILURE
        }
    }
}
