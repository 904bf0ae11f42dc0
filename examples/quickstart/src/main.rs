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
    let stop = stream.stop_handle();
    tokio::spawn(async move { tokio::signal::ctrl_c().await.map(|()| stop.stop()) }); // final ack goes out
    while let Some(event) = stream.next_event().await {
        let event = event?;
        if let EventKind::Insert(c) | EventKind::Update(c) | EventKind::Delete(c) = event.kind() {
            let row = c
                .new_row()
                .or_else(|| c.old_row())
                .ok_or("a change has a row")?;
            println!(
                "{}: id {:?}",
                c.relation().name(),
                row.get("id").and_then(|v| v.as_str())
            );
        }
        stream.feedback().ack(&event)?; // processed: the slot may release WAL up to here
    }
    Ok(())
}
