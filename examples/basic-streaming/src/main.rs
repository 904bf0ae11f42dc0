//! Stream a publication's row changes with `futures::Stream` combinators.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' \
//! PG_WALSTREAM_SLOT=example_slot PG_WALSTREAM_PUBLICATION=example_pub \
//!     cargo run -p example-basic-streaming
//! ```
//!
//! The slot is created when missing. Streaming ends at `PG_WALSTREAM_STOP_LSN` (if set), at a
//! logical message with prefix `example` and content `stop`
//! (`SELECT pg_logical_emit_message(false, 'example', 'stop')`), or with Ctrl-C.

use std::fmt::Write as _;
use std::future::ready;
use std::process::ExitCode;

use futures::StreamExt as _;
use pg_walstream::codec::pgoutput::{Column, TupleData};
use pg_walstream::stream::{
    Change, CreateSlotOptions, Error, Event, EventKind, LogicalConfig, LogicalStream,
};

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
        .messages(true)
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

/// `insert public.t id=1 v='x'`: a change and its new (or old) row.
fn describe(kind: &str, change: &Change) -> String {
    let relation = change.relation();
    let mut line = format!("{kind} {}.{}", relation.namespace, relation.name);
    let tuple = change
        .new_tuple()
        .or_else(|| change.old_tuple().map(|old| *old.tuple()));
    for (column, value) in relation
        .columns
        .iter()
        .zip(tuple.iter().flat_map(TupleData::columns))
    {
        let shown = match value {
            Column::Null => "NULL".to_owned(),
            Column::UnchangedToast => "<unchanged>".to_owned(),
            Column::Text(text) => format!("'{}'", String::from_utf8_lossy(text)),
            Column::Binary(bytes) => format!("<{} bytes>", bytes.len()),
        };
        let _ = write!(line, " {}={shown}", column.name);
    }
    line
}

fn is_stop_message(item: &Result<Event, Error>) -> bool {
    matches!(item, Ok(event) if matches!(
        event.kind(),
        EventKind::Message(m) if m.prefix == "example" && &m.content[..] == b"stop"
    ))
}

async fn run(config: LogicalConfig) -> Result<(), Error> {
    let stream = LogicalStream::connect(config).await?;
    let feedback = stream.feedback().clone();
    let events = stream
        // Schema messages are bookkeeping; the stream already resolved them into changes.
        .filter(|item| {
            ready(!matches!(item, Ok(e) if matches!(e.kind(), EventKind::Relation(_) | EventKind::Type(_))))
        })
        .take_while(|item| ready(!is_stop_message(item)));
    futures::pin_mut!(events);
    while let Some(item) = events.next().await {
        let event = item?;
        match event.kind() {
            EventKind::Insert(change) => println!("{}", describe("insert", change)),
            EventKind::Update(change) => println!("{}", describe("update", change)),
            EventKind::Delete(change) => println!("{}", describe("delete", change)),
            _ => {}
        }
        // Printed lines are "processed": acknowledge commits (and non-transactional messages).
        feedback.ack(&event)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match config_from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("basic-streaming: {message}");
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        result = run(config) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("basic-streaming: {error}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
