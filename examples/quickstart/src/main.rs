//! The README's ten-line example: print the `id` of every row change of publication `app_pub`
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
    let stop = stream.stop_handle(); // Ctrl-C: the loop ends after the final acknowledgement
    tokio::spawn(async move { tokio::signal::ctrl_c().await.map(|()| stop.stop()) });
    while let Some(event) = stream.next_event().await {
        let event = event?;
        if let EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) = event.kind() {
            let id = c.new_row().or_else(|| c.old_row()).and_then(|row| row.get("id"));
            println!("{}: id {:?}", c.relation().name(), id.and_then(|v| v.as_str()));
        }
        stream.feedback().ack(&event)?; // processed: the slot may release WAL up to here
    }
    Ok(())
}
