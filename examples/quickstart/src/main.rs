//! The README's ten-line example: print every row change of publication `app_pub` (slot
//! `app_slot`, which must exist) and acknowledge what was printed. Ctrl-C to stop.
//!
//! ```text
//! PG_WALSTREAM_CONNINFO='host=localhost user=repl dbname=app' cargo run -p example-quickstart
//! ```

use pg_walstream::stream::{EventKind, LogicalConfig, LogicalStream};

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
    while let Some(event) = stream.next_event().await {
        let event = event?;
        if let EventKind::Insert(row) | EventKind::Update(row) | EventKind::Delete(row) =
            event.kind()
        {
            println!("{}: {:?}", row.relation().name, row.to_owned_tuples().new);
        }
        stream.feedback().ack(&event)?; // processed: the slot may release WAL up to here
    }
    Ok(())
}
