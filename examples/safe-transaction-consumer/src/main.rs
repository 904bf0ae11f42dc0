//! The production pattern: whole transactions from the assembler, applied by concurrent
//! workers to a downstream PostgreSQL table keyed by each transaction's `end_lsn` (so applying
//! one twice is a no-op), acknowledged in commit order with `OrderedFeedback`; the stream
//! reconnects by itself after transient failures.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' \
//! PG_WALSTREAM_TARGET='host=localhost user=app dbname=app' \
//!     cargo run -p example-safe-transaction-consumer
//! ```
//!
//! Restart-safe: the slot never moves past a transaction that is not applied downstream (a
//! worker finishing transaction 2 before transaction 1 does not acknowledge 2), so after a
//! crash the server sends again only transactions that may already be applied; the
//! `end_lsn` key drops those. Nothing is lost and nothing is applied twice.

use std::fmt::Write as _;
use std::process::ExitCode;

use futures::StreamExt as _;
use pg_walstream::stream::assembler::{Assemble, Assembled, AssemblerConfig, Transaction};
use pg_walstream::stream::{
    CreateSlotOptions, Error, EventKind, LogicalConfig, LogicalStream, OrderedFeedback, Ticket,
};
use tokio::sync::mpsc;

const WORKERS: usize = 2;
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS walstream_applied \
                      (end_lsn pg_lsn PRIMARY KEY, xid bigint NOT NULL, changes text NOT NULL)";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn config(conninfo: &str) -> Result<LogicalConfig, String> {
    let mut builder = LogicalConfig::builder()
        .conninfo(conninfo)
        .slot(&env("PG_WALSTREAM_SLOT", "example_slot"))
        .publication(&env("PG_WALSTREAM_PUBLICATION", "example_pub"))
        .create_slot_if_missing(CreateSlotOptions::default());
    if let Ok(stop) = std::env::var("PG_WALSTREAM_STOP_LSN") {
        builder = builder.stop_at(stop.parse().map_err(|_| format!("bad LSN {stop:?}"))?);
    }
    builder
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))
}

/// `insert public.t id='1' v='x'` per change, one line each.
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
        let relation = change.relation();
        let _ = write!(text, "{kind} {}.{}", relation.schema(), relation.name());
        let Some(row) = change.new_row().or_else(|| change.old_row()) else {
            continue;
        };
        for (column, value) in row {
            // Text-format values only (NULL and unchanged TOAST have none).
            if let Some(value) = value.as_str() {
                let value = value.unwrap_or("<invalid UTF-8>");
                let _ = write!(text, " {}='{value}'", column.name);
            }
        }
        text.push('\n');
    }
    Ok(text)
}

/// Applies transactions in its own downstream transaction, then completes their tickets.
async fn worker(client: tokio_postgres::Client, mut jobs: mpsc::Receiver<(Ticket, u32, String)>) {
    while let Some((ticket, xid, changes)) = jobs.recv().await {
        let statement = "INSERT INTO walstream_applied VALUES ($1::text::pg_lsn, $2, $3) \
                         ON CONFLICT (end_lsn) DO NOTHING";
        let end = ticket.end_lsn().to_string();
        match client
            .execute(statement, &[&end, &i64::from(xid), &changes])
            .await
        {
            Ok(_) => drop(ticket.complete()),
            // Not acknowledged: the server sends it again after a restart.
            Err(e) => eprintln!("safe-transaction-consumer: applying {end}: {e}"),
        }
    }
}

async fn run(source: &str, target: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(target, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("target: {e}"))?;
    tokio::spawn(connection);
    client
        .batch_execute(SCHEMA)
        .await
        .map_err(|e| format!("target: {e}"))?;
    let mut queues = vec![];
    let mut workers = vec![];
    for _ in 0..WORKERS {
        let (client, connection) = tokio_postgres::connect(target, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("target: {e}"))?;
        tokio::spawn(connection);
        let (tx, rx) = mpsc::channel(16);
        queues.push(tx);
        workers.push(tokio::spawn(worker(client, rx)));
    }
    let stream = LogicalStream::connect(config(source)?)
        .await
        .map_err(|e| e.to_string())?;
    let acks = OrderedFeedback::new(stream.feedback().clone());
    // At most 16 MiB of open transactions in memory; larger ones spill to a temporary file.
    let limits = AssemblerConfig {
        memory_limit: 16 << 20,
        ..AssemblerConfig::default()
    };
    let mut transactions = Assemble::new(stream, limits);
    let mut next = 0;
    while let Some(item) = transactions.next().await {
        match item.map_err(|e| e.to_string())? {
            Assembled::Transaction(transaction) => {
                // Tickets are taken in commit order, before any worker can finish.
                let ticket = acks.ticket(transaction.ack_lsn()).await;
                let xid = transaction.xid().0;
                let changes = describe(transaction).map_err(|e| e.to_string())?;
                print!("{changes}");
                queues[next % WORKERS]
                    .send((ticket, xid, changes))
                    .await
                    .map_err(|e| e.to_string())?;
                next += 1;
            }
            Assembled::Reconnected(_) => eprintln!("safe-transaction-consumer: reconnected"),
            other => {
                if let Some(lsn) = other.ack_lsn() {
                    let _ = acks.ticket(lsn).await.complete();
                }
            }
        }
    }
    drop(queues);
    for worker in workers {
        let _ = worker.await;
    }
    transactions
        .into_inner()
        .stop()
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(source) = std::env::var("PG_WALSTREAM_CONNINFO") else {
        eprintln!("safe-transaction-consumer: set PG_WALSTREAM_CONNINFO to a connection string");
        return ExitCode::from(2);
    };
    let target = env("PG_WALSTREAM_TARGET", &source);
    tokio::select! {
        result = run(&source, &target) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("safe-transaction-consumer: {message}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
