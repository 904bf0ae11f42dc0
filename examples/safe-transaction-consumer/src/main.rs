//! The production pattern: whole transactions from the assembler (spilling to a temporary file
//! past 16 MiB), applied concurrently to a downstream table that stores each transaction's data
//! and its `end_lsn` in one row (so one the server sends again after a crash or a reconnect is
//! a no-op), acknowledged in commit order with `OrderedFeedback` (the slot never passes a
//! transaction that is not applied, even when a later one finishes first). The stream
//! reconnects by itself after transient failures; a crash or SIGKILL at any point loses
//! nothing: restart it.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' \
//! PG_WALSTREAM_TARGET='host=localhost user=app dbname=app' \
//!     cargo run -p example-safe-transaction-consumer
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use futures::StreamExt as _;
use pg_walstream::stream::OrderedFeedback;
use pg_walstream::stream::assembler::{Assemble, Assembled, AssemblerConfig, Transaction};
use pg_walstream::stream::{CreateSlotOptions, Error, EventKind, LogicalConfig, LogicalStream};
use tokio::sync::Semaphore;

/// Transactions applied at the same time.
const WORKERS: u32 = 4;
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS walstream_applied \
                      (end_lsn pg_lsn PRIMARY KEY, xid bigint NOT NULL, changes text NOT NULL)";
const APPLY: &str = "INSERT INTO walstream_applied VALUES ($1::text::pg_lsn, $2, $3) \
                     ON CONFLICT (end_lsn) DO NOTHING";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One line per change: `insert public.t id='1' v='x'` (text-format values).
fn describe(transaction: Transaction) -> Result<String, Error> {
    let mut text = String::new();
    for event in transaction.into_events()? {
        let event = event?;
        let (kind, change) = match event.kind() {
            EventKind::Insert(c) => ("insert", c),
            EventKind::Update(c) => ("update", c),
            EventKind::Delete(c) => ("delete", c),
            _ => continue,
        };
        let (relation, row) = (change.relation(), change.new_row().or(change.old_row()));
        let _ = write!(text, "{kind} {}.{}", relation.schema(), relation.name());
        for (column, value) in row.into_iter().flatten() {
            if let Some(Ok(value)) = value.as_str() {
                let _ = write!(text, " {}='{value}'", column.name);
            }
        }
        text.push('\n');
    }
    Ok(text)
}

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(source) = std::env::var("PG_WALSTREAM_CONNINFO") else {
        eprintln!("safe-transaction-consumer: set PG_WALSTREAM_CONNINFO to a connection string");
        return ExitCode::from(2);
    };
    if let Err(e) = run(&source).await {
        eprintln!("safe-transaction-consumer: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run(source: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let target = env("PG_WALSTREAM_TARGET", source);
    let (client, connection) = tokio_postgres::connect(&target, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(SCHEMA).await?;
    let client = Arc::new(client);
    let mut config = LogicalConfig::builder()
        .conninfo(source)
        .slot(&env("PG_WALSTREAM_SLOT", "example_slot"))
        .publication(&env("PG_WALSTREAM_PUBLICATION", "example_pub"))
        .create_slot_if_missing(CreateSlotOptions::default());
    if let Ok(stop) = std::env::var("PG_WALSTREAM_STOP_LSN") {
        config = config.stop_at(stop.parse().map_err(|_| format!("bad LSN {stop:?}"))?);
    }
    let stream = LogicalStream::connect(config.build()?).await?;
    let acks = OrderedFeedback::new(stream.feedback().clone());
    let limits = AssemblerConfig {
        memory_limit: 16 << 20,
        ..AssemblerConfig::default()
    };
    let mut transactions = Assemble::new(stream, limits);
    let workers = Arc::new(Semaphore::new(WORKERS as usize));
    while let Some(item) = transactions.next().await {
        match item? {
            Assembled::Transaction(transaction) => {
                // Tickets are taken in commit order, before any worker can finish.
                let ticket = acks.ticket(transaction.ack_lsn()).await;
                let xid = i64::from(transaction.xid().0);
                let changes = describe(transaction)?;
                print!("{changes}");
                let (client, permit) = (client.clone(), workers.clone().acquire_owned().await?);
                tokio::spawn(async move {
                    let end = ticket.end_lsn().to_string();
                    if let Err(e) = client.execute(APPLY, &[&end, &xid, &changes]).await {
                        // Not applied, so never acknowledged: a restart gets it again.
                        eprintln!("safe-transaction-consumer: applying {end}: {e}");
                        std::process::exit(1);
                    }
                    drop((ticket.complete(), permit));
                });
            }
            Assembled::Reconnected(_) => eprintln!("safe-transaction-consumer: reconnected"),
            other => {
                if let Some(lsn) = other.ack_lsn() {
                    let _ = acks.ticket(lsn).await.complete();
                }
            }
        }
    }
    drop(workers.acquire_many(WORKERS).await?); // every worker is done
    transactions.into_inner().stop().await?;
    Ok(())
}
