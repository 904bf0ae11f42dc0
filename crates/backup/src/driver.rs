//! The driver: runs `BASE_BACKUP` over a [`Transport`] and feeds [`StreamCore`].

use pg_walstream_codec::Lsn;
use pg_walstream_transport::{Response, ResultSet, Transport};

use crate::core::{BackupEvent, Position, Progress, StreamCore, Tablespace};
use crate::error::{BackupError, Result};
use crate::options::BackupOptions;
use crate::sink::ArchiveSink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InCopy,
    AfterCopy,
    Finished,
}

/// A running base backup: the start position and tablespaces are known, the archives follow
/// from [`next_event`](Self::next_event).
///
/// ```no_run
/// use pg_walstream_backup::{BackupEvent, BackupOptions, BaseBackup};
/// use pg_walstream_transport::{Connection, conninfo::Config};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config: Config = "host=db user=repl replication=true".parse()?;
/// let connection = Connection::connect(&config).await?;
/// let mut backup = BaseBackup::start(connection, &BackupOptions::default()).await?;
/// println!("starts at {} on timeline {}", backup.start_position().lsn, backup.start_position().timeline);
/// while let Some(event) = backup.next_event().await? {
///     if let BackupEvent::Data(chunk) = event {
///         let _ = chunk; // tar bytes of the current archive
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BaseBackup<T> {
    connection: T,
    core: StreamCore,
    start: Position,
    end: Option<Position>,
    server_version: u32,
    state: State,
}

impl<T: Transport> BaseBackup<T> {
    /// Sends `BASE_BACKUP` in the syntax of the connected server (a physical replication
    /// connection, `replication=true`) and reads up to the first archive. For an incremental
    /// backup ([`BackupOptions::incremental`]) the prior manifest is uploaded first
    /// (`UPLOAD_MANIFEST`).
    ///
    /// # Errors
    /// [`BackupError::Unsupported`] / [`BackupError::InvalidOption`] before anything is sent;
    /// the server's refusal (of the manifest or the backup) as [`BackupError::Transport`];
    /// malformed result sets.
    pub async fn start(mut connection: T, options: &BackupOptions) -> Result<Self> {
        let server_version = connection.server_version_num().ok_or_else(|| {
            BackupError::bad_result("startup", "the server reported no server_version")
        })?;
        let command = options.command(server_version)?;
        if let Some(manifest) = &options.incremental {
            crate::incremental::upload_manifest(&mut connection, manifest).await?;
        }
        connection.send_query(&command).await?;
        let mut start = None;
        let mut tablespaces = None;
        loop {
            match connection.next_response().await? {
                Response::ResultSet(set) if set.columns().is_empty() => {}
                Response::ResultSet(set) if start.is_none() => {
                    start = Some(parse_position(&set, "start position")?);
                }
                Response::ResultSet(set) if tablespaces.is_none() => {
                    tablespaces = Some(parse_tablespaces(&set)?);
                }
                Response::ResultSet(_) => {
                    return Err(protocol("a third result set", "before the archives"));
                }
                Response::CopyOut => break,
                Response::CopyBoth => return Err(protocol("CopyBoth", "starting a base backup")),
                Response::Ready => {
                    return Err(protocol("the end of the command", "before any archive"));
                }
                _ => return Err(protocol("an unknown response", "starting a base backup")),
            }
        }
        let (Some(start), Some(tablespaces)) = (start, tablespaces) else {
            return Err(protocol(
                "a CopyOut",
                "before the start position and tablespaces",
            ));
        };
        let mut core = StreamCore::new(
            server_version < 150_000,
            tablespaces,
            options.wants_manifest(),
        );
        core.handle_copy_start()?;
        Ok(BaseBackup {
            connection,
            core,
            start,
            end: None,
            server_version,
            state: State::InCopy,
        })
    }

    /// Where the backup starts (the checkpoint's redo position) and on which timeline.
    pub fn start_position(&self) -> Position {
        self.start
    }

    /// The end position, once [`BackupEvent::End`] was delivered.
    pub fn end(&self) -> Option<Position> {
        self.end
    }

    /// The tablespaces the server sends, the main data directory last.
    pub fn tablespaces(&self) -> &[Tablespace] {
        self.core.tablespaces()
    }

    /// The server's `server_version_num`.
    pub fn server_version(&self) -> u32 {
        self.server_version
    }

    /// The next event; `None` once the command is complete (after [`BackupEvent::End`]).
    ///
    /// # Errors
    /// Server errors (the backup failed; the session stays usable), protocol, decoding and
    /// I/O errors.
    pub async fn next_event(&mut self) -> Result<Option<BackupEvent>> {
        loop {
            if let Some(event) = self.core.poll_event() {
                if let BackupEvent::End(end) = event {
                    self.end = Some(end);
                }
                return Ok(Some(event));
            }
            match self.state {
                State::Finished => return Ok(None),
                State::InCopy => {
                    if let Some(payload) = self.connection.read_copy_data().await? {
                        self.core.handle_copy_data(payload)?;
                    } else {
                        self.core.handle_copy_end()?;
                        self.state = State::AfterCopy;
                    }
                }
                State::AfterCopy => match self.connection.next_response().await? {
                    Response::CopyOut => {
                        self.core.handle_copy_start()?;
                        self.state = State::InCopy;
                    }
                    Response::ResultSet(set) if set.columns().is_empty() => {}
                    Response::ResultSet(set) if self.end.is_none() => {
                        let end = parse_position(&set, "end position")?;
                        self.core.handle_end(end)?;
                        self.end = Some(end);
                    }
                    Response::ResultSet(_) => {
                        return Err(protocol("a result set", "after the end position"));
                    }
                    Response::Ready if self.end.is_some() => self.state = State::Finished,
                    Response::Ready => {
                        return Err(protocol(
                            "the end of the command",
                            "without an end position",
                        ));
                    }
                    _ => return Err(protocol("a CopyBoth", "in a base backup")),
                },
            }
        }
    }

    /// Runs the backup to its end, handing every event to `sink` and every progress report
    /// to `on_progress`; returns the end position.
    ///
    /// # Errors
    /// As [`next_event`](Self::next_event), and the sink's errors.
    pub async fn run_into<S: ArchiveSink>(
        &mut self,
        sink: &mut S,
        mut on_progress: impl FnMut(Progress) + Send,
    ) -> Result<Position> {
        while let Some(event) = self.next_event().await? {
            if let BackupEvent::Progress(progress) = &event {
                on_progress(*progress);
            }
            sink.handle(event).await?;
        }
        self.end
            .ok_or_else(|| protocol("the end of the command", "without an end position"))
    }

    /// The connection, e.g. to run further commands once the backup is complete.
    pub fn into_connection(self) -> T {
        self.connection
    }
}

pub(crate) fn protocol(got: &'static str, during: &'static str) -> BackupError {
    BackupError::Protocol { got, during }
}

fn parse_position(set: &ResultSet, what: &'static str) -> Result<Position> {
    let text = |column: &str| -> Result<&str> {
        set.get_str(0, column)
            .map_err(|e| BackupError::bad_result(what, e.to_string()))?
            .ok_or_else(|| BackupError::bad_result(what, format!("{column} is NULL")))
    };
    let lsn_text = text("recptr")?;
    let lsn: Lsn = lsn_text
        .parse()
        .map_err(|_| BackupError::bad_result(what, format!("recptr {lsn_text:?} is not an LSN")))?;
    let tli_text = text("tli")?;
    let timeline = tli_text.parse().map_err(|_| {
        BackupError::bad_result(what, format!("tli {tli_text:?} is not a timeline"))
    })?;
    Ok(Position { lsn, timeline })
}

fn parse_tablespaces(set: &ResultSet) -> Result<Vec<Tablespace>> {
    const WHAT: &str = "tablespace list";
    let bad = |reason: String| BackupError::bad_result(WHAT, reason);
    let mut tablespaces = Vec::with_capacity(set.rows().len());
    for row in 0..set.rows().len() {
        let value = |column: &str| set.get_str(row, column).map_err(|e| bad(e.to_string()));
        let oid = value("spcoid")?
            .map(|text| text.parse().map_err(|_| bad(format!("spcoid {text:?}"))))
            .transpose()?;
        let location = value("spclocation")?.map(str::to_owned);
        let size_kb = value("size")?
            .map(|text| text.parse().map_err(|_| bad(format!("size {text:?}"))))
            .transpose()?;
        if oid.is_some() != location.is_some() {
            return Err(bad(format!(
                "row {row} has only one of spcoid and spclocation"
            )));
        }
        tablespaces.push(Tablespace {
            oid,
            location,
            size_kb,
        });
    }
    if tablespaces.iter().filter(|t| t.oid.is_none()).count() != 1 {
        return Err(bad(
            "expected exactly one main data directory row".to_owned()
        ));
    }
    Ok(tablespaces)
}
