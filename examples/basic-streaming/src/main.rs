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
//! (`SELECT pg_logical_emit_message(false, 'example', 'stop')`), or with Ctrl-C — each time
//! with a final status update carrying the last acknowledgement.

use std::fmt::Write as _;
use std::future::ready;
use std::process::ExitCode;

use futures::StreamExt as _;
use pg_walstream::prelude::*;

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

/// `insert public.t id='1' v='x'`: a change and its new row (or old row, or old key).
fn describe(kind: &str, change: &Change) -> String {
    let relation = change.relation();
    let mut line = format!("{kind} {}.{}", relation.schema(), relation.name());
    for (column, value) in change
        .new_row()
        .or_else(|| change.old_row())
        .into_iter()
        .flatten()
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
    let mut stream = LogicalStream::connect(config).await?;
    // Ctrl-C: the loop ends once the final status update went out.
    stream.stop_handle().stop_when(tokio::signal::ctrl_c());
    let feedback = stream.feedback().clone();
    let mut events = (&mut stream).take_while(|item| ready(!is_stop_message(item)));
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
    // The final status update, with the last acknowledgement (at once after Ctrl-C).
    stream.stop().await
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
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("basic-streaming: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_walstream::stream::testing::{TestEvents, column, null, text, unchanged_toast};

    /// The handler, unit-tested without a server: events from the `testing` feature.
    #[test]
    fn describes_rows_by_column_name() {
        let mut events = TestEvents::new();
        let t = events.relation("public", "t", &[column("id", 23).key(), column("v", 25)]);
        let insert = events.insert(&t, &[text("1"), text("x")]);
        let update = events.update(&t, &[text("1"), unchanged_toast()]);
        let delete = events.delete(&t, &[text("1"), null()]);
        let line = |event: &Event, kind| match event.kind() {
            EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) => describe(kind, c),
            _ => unreachable!(),
        };
        assert_eq!(line(&insert, "insert"), "insert public.t id='1' v='x'");
        assert_eq!(
            line(&update, "update"),
            "update public.t id='1' v=<unchanged>"
        );
        // An old key holds the key columns only.
        assert_eq!(line(&delete, "delete"), "delete public.t id='1'");
        let commit = {
            let mut events = TestEvents::new();
            events.begin();
            events.commit()
        };
        assert!(
            events.feedback().ack(&commit).is_err(),
            "another stream's event"
        );
    }
}
