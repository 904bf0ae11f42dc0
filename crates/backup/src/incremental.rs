//! `UPLOAD_MANIFEST` (PostgreSQL 17+): the prior backup's manifest, sent over a CopyIn
//! stream before an incremental `BASE_BACKUP`, on the same connection.

use pg_walstream_transport::{Response, Transport};

use crate::driver::protocol;
use crate::error::Result;

/// The size of one CopyData message of the upload. The server parses the manifest as it
/// arrives (walsender.c, `HandleUploadManifestPacket`), so the chunk size is only a balance
/// between messages and buffering.
pub(crate) const UPLOAD_CHUNK: usize = 64 * 1024;

/// Sends `UPLOAD_MANIFEST`, then `manifest` as CopyData and CopyDone, and reads the command's
/// completion. The server keeps the manifest for the next `BASE_BACKUP ... INCREMENTAL` of
/// this session.
///
/// # Errors
/// The server's refusal (e.g. a manifest it cannot parse, or of another system) as
/// [`BackupError::Transport`](crate::BackupError::Transport); anything but a CopyIn stream
/// as [`BackupError::Protocol`](crate::BackupError::Protocol); I/O errors.
pub(crate) async fn upload_manifest<T: Transport>(
    connection: &mut T,
    manifest: &[u8],
) -> Result<()> {
    const DURING: &str = "uploading the prior backup's manifest";
    connection.send_query("UPLOAD_MANIFEST").await?;
    match connection.next_response().await? {
        Response::CopyIn => {}
        Response::Ready => return Err(protocol("the end of the command", DURING)),
        _ => return Err(protocol("a response other than CopyIn", DURING)),
    }
    for chunk in manifest.chunks(UPLOAD_CHUNK) {
        connection.write_copy_data(chunk)?;
        connection.flush().await?;
    }
    connection.send_copy_done().await?;
    loop {
        match connection.next_response().await? {
            Response::ResultSet(_) => {}
            Response::Ready => return Ok(()),
            _ => return Err(protocol("a COPY stream", DURING)),
        }
    }
}
