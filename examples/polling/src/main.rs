//! Poll a logical replication stream with `next_event().await`, acknowledge each transaction
//! after handling it, and stop gracefully.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' \
//! PG_WALSTREAM_SLOT=example_slot PG_WALSTREAM_PUBLICATION=example_pub \
//!     cargo run -p example-polling
//! ```
//!
//! The slot is created when missing. Streaming ends at `PG_WALSTREAM_STOP_LSN` (if set) or
//! with Ctrl-C, which stops gracefully: a final status update tells the server what was
//! processed, so a restart resumes after the last acknowledged transaction.

use std::process::ExitCode;

use pg_walstream::stream::{CreateSlotOptions, Error, EventKind, LogicalConfig, LogicalStream};

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

async fn run(config: LogicalConfig) -> Result<(), Error> {
    let mut stream = LogicalStream::connect(config).await?;
    println!(
        "streaming from {} with pgoutput protocol version {}",
        stream.info().start_lsn,
        stream.info().proto_version.as_u32()
    );
    let mut changes_in_transaction = 0usize;
    loop {
        let next = tokio::select! {
            next = stream.next_event() => next,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = next else { break };
        let event = event?;
        match event.kind() {
            EventKind::Begin(begin) => {
                changes_in_transaction = 0;
                println!("begin xid {}", begin.xid);
            }
            EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) => {
                changes_in_transaction += 1;
                let kind = match event.kind() {
                    EventKind::Insert(_) => "insert",
                    EventKind::Update(_) => "update",
                    _ => "delete",
                };
                println!("{kind} {}.{}", c.relation().namespace, c.relation().name);
            }
            EventKind::Truncate(t) => {
                for relation in &t.relations {
                    println!("truncate {}.{}", relation.namespace, relation.name);
                }
            }
            EventKind::Commit(commit) => {
                println!(
                    "commit at {} ({changes_in_transaction} changes)",
                    commit.end_lsn
                );
                // Handled: report it, so the slot may release the WAL before it.
                stream.feedback().processed(commit.end_lsn);
            }
            _ => {}
        }
    }
    // Graceful stop: a final status update with the last report, then CopyDone.
    stream.stop().await
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
