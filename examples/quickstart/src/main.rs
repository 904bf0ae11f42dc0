//! The README's example: print the `id` of every row change of publication `app_pub`
//! (slot `app_slot`, which must exist) and acknowledge what was printed. Ctrl-C stops
//! gracefully: the final status update carries the last acknowledgement.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' cargo run -p example-quickstart
//! ```

use pg_walstream::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conninfo =
        std::env::var("PG_WALSTREAM_CONNINFO").map_err(|_| "set PG_WALSTREAM_CONNINFO")?;
    let config = LogicalConfig::builder()
        .conninfo(&conninfo)
        .slot("app_slot")
        .publication("app_pub")
        .build()?;
    let mut stream = LogicalStream::connect(config).await?;
    stream.stop_handle().stop_when(tokio::signal::ctrl_c()); // the loop ends after the final ack
    while let Some(event) = stream.next_event().await {
        let event = event?;
        if let EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) = event.kind() {
            let row = c.new_row().or_else(|| c.old_row());
            let id = row.and_then(|row| row.get("id")?.as_str());
            println!("{}: id {id:?}", c.relation().name());
        }
        stream.feedback().ack(&event)?; // processed: the slot may release WAL up to here
    }
    Ok(())
}
