//! Poll a logical replication stream with `next_event().await`, acknowledge each transaction
//! after handling it, react to schema changes, and stop gracefully.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' \
//! PG_WALSTREAM_SLOT=example_slot PG_WALSTREAM_PUBLICATION=example_pub \
//!     cargo run -p example-polling
//! ```
//!
//! The slot is created when missing. Streaming ends at `PG_WALSTREAM_STOP_LSN` (if set) or
//! with Ctrl-C or SIGTERM, which stop gracefully: a final status update tells the server what
//! was processed, so a restart resumes after the last acknowledged transaction.

use std::process::ExitCode;

use pg_walstream::prelude::*;
use tokio::signal::unix::{SignalKind, signal};

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

async fn run(config: LogicalConfig) -> Result<(), Box<dyn std::error::Error>> {
    let mut stream = LogicalStream::connect(config).await?;
    println!(
        "streaming from {} with pgoutput protocol version {}",
        stream.info().start_lsn,
        stream.info().proto_version.as_u32()
    );
    // SIGTERM or Ctrl-C: the loop below ends once the final status update went out.
    let mut sigterm = signal(SignalKind::terminate())?;
    let stop = stream.stop_handle();
    stop.stop_when(async move { sigterm.recv().await });
    stop.stop_when(tokio::signal::ctrl_c());
    while let Some(event) = stream.next_event().await {
        let event = event?;
        match event.kind() {
            EventKind::Begin(begin) => println!("begin xid {}", begin.xid),
            EventKind::Relation(relation) => {
                for column in relation.added_columns() {
                    println!("column {column} added to {}", relation.relation().name());
                }
            }
            EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) => {
                let kind = match event.kind() {
                    EventKind::Insert(_) => "insert",
                    EventKind::Update(_) => "update",
                    _ => "delete",
                };
                println!("{kind} {}.{}", c.relation().schema(), c.relation().name());
            }
            EventKind::Truncate(t) => {
                for relation in &t.relations {
                    println!("truncate {}.{}", relation.schema(), relation.name());
                }
            }
            EventKind::Commit(commit) => {
                println!("commit at {}", commit.end_lsn);
                // Handled: report it, so the slot may release the WAL before it.
                stream.feedback().processed(commit.end_lsn);
            }
            _ => {}
        }
    }
    // Ended at the stop LSN or by a signal: stopped gracefully (returns the error, if any).
    Ok(stream.stop().await?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match config_from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("polling: {message}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("polling: {error}");
            ExitCode::FAILURE
        }
    }
}
