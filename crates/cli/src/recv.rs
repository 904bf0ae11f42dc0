//! `pg-walstream recv`: stream a logical slot and print the decoded changes.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use pg_walstream_codec::Lsn;
use pg_walstream_codec::pgoutput::ProtocolVersion;
use pg_walstream_slot::{SlotName, drop_replication_slot_if_exists};
use pg_walstream_stream::{
    CreateSlotOptions, Error as StreamError, EventKind, Feedback, LogicalConfig, LogicalStream,
    OriginFilter, Reconnected, RetryPolicy, Streaming,
};
use pg_walstream_transport::{Connection, Transport as _};

use crate::ackfile;
use crate::capture::raw::{FLAG_BINARY, RawHeader, RawReader, write_header};
use crate::connect::{ConnectionArgs, advance_statement};
use crate::error::{CliError, chain};
use crate::output::{Destination, EventWriter, Format};
use crate::recv_sink::{HandleError, OpenStreams, Sink, open_record};
use crate::render::Renderer;
use crate::retry::{Signals, open, parse_duration};

/// `--streaming`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StreamingArg {
    /// Large transactions arrive at commit.
    Off,
    /// Large transactions arrive in blocks while running (PostgreSQL 14+).
    On,
    /// In blocks, for parallel apply (PostgreSQL 16+).
    Parallel,
}

/// `--origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OriginArg {
    /// Only changes without a replication origin.
    None,
    /// All changes.
    Any,
}

/// Arguments of `recv`.
#[derive(Debug, Args)]
#[command(
    after_help = "OUTPUT (--format json): one JSON object per pgoutput message, with \
    \"kind\" (begin, commit, relation, type, insert, update, delete, truncate, message, origin, \
    stream_start, stream_stop, stream_commit, stream_abort, begin_prepare, prepare, \
    commit_prepared, rollback_prepared, stream_prepare) and the message's fields. LSNs are \
    \"X/Y\" strings, times RFC 3339 UTC. Row values (\"new\", \"old\", \"old_key\") are arrays of \
    {\"name\", \"type_oid\", \"type\", VALUE} where VALUE is exactly one of: \"text\": the \
    server's text form (text mode); \"text_hex\": a text value that is not UTF-8, in hex; \
    \"binary_hex\": the binary send/recv form in hex (--binary); \"null\": true; \
    \"unchanged_toast\": true (an unchanged TOASTed value the server did not send - never \
    null).\n\n\
--format jsonl-tx prints one {\"kind\":\"transaction\",\"xid\",\"events\":[...],\"end_lsn\"} \
    per committed (or prepared) transaction, written as it arrives (a streamed transaction is \
    held in an unnamed temporary file in $TMPDIR, not in memory, until its Stream Commit); \
    --format text one readable line per event; \
    --format raw the undecoded frames (see `pg-walstream decode --help`).\n\n\
Acknowledgement: a transaction is reported to the server (slot confirmed_flush_lsn) only \
    after its output was flushed, and, when the output is a file (-o FILE, or standard output \
    redirected to a regular file), synced to disk (syncs are batched: at most once a second). \
    A pipe or terminal is only flushed: what its reader does with the bytes afterwards is its \
    own business. With --streaming and --format json, text or raw, nothing after a streamed \
    transaction's first block is acknowledged until it ends (committed, prepared or rolled \
    back): a new connection sends it again from its first change. SIGINT/SIGTERM flush, acknowledge and stop gracefully (exit 0).\n\n\
Resuming (-o FILE): FILE.ack records how many bytes of FILE are acknowledged and the last \
    position acknowledged; it is replaced (written, synced, renamed) after each sync and before \
    the server is told. On exit, and when recv opens FILE again (after a crash or SIGKILL), \
    FILE is cut back to that many bytes, dropping any half line, half frame or unacknowledged \
    transaction, and streaming starts after the recorded position (if FILE.ack names the same \
    slot and it is later than --start), so every transaction is in FILE exactly once. Keep \
    FILE and FILE.ack together; without FILE.ack, FILE is appended to as it is. Standard \
    output is never cut back: use -o FILE to resume cleanly.\n\n\
Reconnecting: when the connection fails while streaming (reset, walsender terminated, server \
    restart, read timeout), recv reconnects with exponential backoff (200 ms doubling up to \
    30 s, jittered) until --retry-max-elapsed has passed, checks it reached the same server \
    (system identifier and timeline), resumes after the last acknowledged transaction and \
    prints one line on standard error per reconnect. With -o FILE, FILE is first cut back to \
    what FILE.ack names, so the transactions the server sends again are in FILE once. \
    Authentication failures, a missing or invalidated slot and another server are never \
    retried (exit 1). At start-up only a slot still held by a previous walsender (SQLSTATE \
    55006) is waited for: a server that cannot be reached fails at once. --no-retry (and \
    --temporary, whose slot ends with its connection) turn reconnecting off."
)]
pub(crate) struct RecvArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The logical replication slot.
    #[arg(short = 'S', long, value_name = "SLOT")]
    slot: String,
    /// A publication to stream (repeatable; at least one).
    #[arg(
        short = 'P',
        long = "publication",
        value_name = "NAME",
        required = true
    )]
    publications: Vec<String>,
    /// Create the slot before streaming (an error if it exists, unless --if-not-exists).
    #[arg(long)]
    create_slot: bool,
    /// With --create-slot: use the slot if it exists already.
    #[arg(long, requires = "create_slot")]
    if_not_exists: bool,
    /// With --create-slot: a temporary slot, dropped when the connection ends.
    #[arg(long, requires = "create_slot")]
    temporary: bool,
    /// Drop the slot after streaming ends (at --endpos or on SIGINT/SIGTERM).
    #[arg(long)]
    drop_slot: bool,
    /// Start streaming at this LSN (X/Y) instead of the slot's confirmed position (with -o
    /// FILE: or after the position FILE.ack records, whichever is later).
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    start: Option<Lsn>,
    /// Stop after the transaction that reaches this LSN (X/Y), and exit 0.
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    endpos: Option<Lsn>,
    /// pgoutput protocol version (1-4); default: the highest the server supports.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4))]
    proto: Option<u32>,
    /// Ask for column values in binary format (printed as hex, "binary_hex").
    #[arg(long)]
    binary: bool,
    /// Streaming of large in-progress transactions.
    #[arg(long, value_enum, default_value = "off")]
    streaming: StreamingArg,
    /// Decode prepared transactions at PREPARE TRANSACTION (PostgreSQL 15+).
    #[arg(long)]
    two_phase: bool,
    /// Include logical decoding messages (pg_logical_emit_message).
    #[arg(long)]
    messages: bool,
    /// Filter changes by replication origin (PostgreSQL 16+).
    #[arg(long, value_enum)]
    origin: Option<OriginArg>,
    /// Seconds between status updates to the server (may be fractional).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    status_interval: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Append to FILE (created if missing) instead of writing to standard output (`-`),
    /// keeping FILE.ack beside it to resume exactly (see below); a raw capture is continued
    /// only if it was made with the same protocol version and mode.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// After a connection failure, stop reconnecting once this long has passed without a
    /// connection (e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    retry_max_elapsed: Duration,
    /// Do not reconnect: the first connection failure ends recv (exit 1).
    #[arg(long, conflicts_with = "retry_max_elapsed")]
    no_retry: bool,
}

fn parse_lsn(text: &str) -> Result<Lsn, String> {
    text.parse().map_err(|_| {
        format!("{text:?} is not an LSN (expected X/Y in hexadecimal, e.g. 0/16B3748)")
    })
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds < 86_400.0) {
        return Err(format!(
            "{text} must be more than 0 and less than 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl RecvArgs {
    /// How the stream reconnects: exponential backoff with jitter (200 ms doubling up to 30 s)
    /// within `--retry-max-elapsed` of a failure; never with `--no-retry` or a temporary slot
    /// (which ends with its connection).
    fn retry_policy(&self) -> RetryPolicy {
        if self.no_retry || self.temporary {
            RetryPolicy::never()
        } else {
            RetryPolicy::default().max_elapsed(self.retry_max_elapsed)
        }
    }

    /// The stream's configuration; `resume_after` (from FILE.ack, or the last position
    /// acknowledged) overrides an earlier `--start`. `first`: the run's first stream (the only
    /// one that may create the slot).
    fn config(&self, resume_after: Option<Lsn>, first: bool) -> Result<LogicalConfig, CliError> {
        let mut builder = LogicalConfig::builder()
            .retry(self.retry_policy())
            .connection_config(self.connection.config()?)
            .backend(self.connection.backend()?)
            .slot(&self.slot)
            .streaming(match self.streaming {
                StreamingArg::Off => Streaming::Off,
                StreamingArg::On => Streaming::On,
                StreamingArg::Parallel => Streaming::Parallel,
            })
            .binary(self.binary)
            .messages(self.messages)
            .two_phase(self.two_phase)
            .status_interval(self.status_interval);
        for publication in &self.publications {
            builder = builder.publication(publication);
        }
        if let Some(proto) = self.proto {
            let version = ProtocolVersion::try_from(proto)
                .map_err(|e| CliError::usage(format!("--proto: {e}")))?;
            builder = builder.proto_version(version);
        }
        if let Some(origin) = self.origin {
            builder = builder.origin(match origin {
                OriginArg::None => OriginFilter::None,
                OriginArg::Any => OriginFilter::Any,
            });
        }
        if let Some(start) = self.start.max(resume_after) {
            builder = builder.start_lsn(start);
        }
        if let Some(end) = self.endpos {
            builder = builder.stop_at(end);
        }
        if self.create_slot && first {
            builder = builder.create_slot_if_missing(CreateSlotOptions {
                temporary: self.temporary,
                export_snapshot: false,
                failover: false,
            });
        }
        builder.build().map_err(|e| CliError::usage(chain(&e)))
    }
}

/// Errors that come from a bad request rather than a failure are usage errors (exit 2).
fn stream_failure(context: &str, error: &StreamError, slot: &str) -> CliError {
    match error {
        StreamError::Config(_) => CliError::usage(format!("{context}: {}", chain(error))),
        StreamError::SlotNotFound { .. } => CliError::message(format!(
            "replication slot {slot:?} does not exist (use --create-slot to create it)"
        )),
        _ => CliError::failed(context, error),
    }
}

/// What ended the receive loop.
enum End {
    /// The stream ended by itself (--endpos reached).
    Finished,
    /// SIGINT or SIGTERM.
    Signal,
    /// The reader of standard output went away.
    BrokenPipe,
    /// The stream reconnected at a position before one already acknowledged: start anew.
    Restart,
}

/// Runs `recv`.
///
/// # Errors
/// Usage errors (exit 2), connection, server, decoding and output errors (exit 1).
pub(crate) async fn run(args: RecvArgs) -> Result<(), CliError> {
    let policy = args.retry_policy();
    let slot = args.config(None, true)?.slot().as_str().to_owned();
    let mut signals = Signals::install()?;
    let mut out = Destination::append(args.output.as_deref())
        .map_err(|e| CliError::failed("opening the output", &e))?;
    let mut tracking = match args.output.as_deref() {
        Some(path) if out.is_file() => Some(open_record(&mut out, path, &slot)?),
        _ => None,
    };
    let recorded = tracking.as_ref().and_then(|t| t.record.lsn);
    let config = args.config(recorded, true)?;
    let Some(opened) = open(&config, &policy, false, &mut signals)
        .await
        .map_err(|e| stream_failure("starting replication", &e, &slot))?
    else {
        return Ok(());
    };
    let mut stream = Some(opened.stream);
    if args.create_slot && !args.if_not_exists && !opened.created_slot {
        return Err(CliError::message(format!(
            "replication slot {slot:?} already exists (add --if-not-exists to use it)"
        )));
    }
    let proto = stream
        .as_ref()
        .map_or(ProtocolVersion::V1, |s| s.info().proto_version);
    if args.format == Format::Raw {
        start_raw_capture(&mut out, args.output.as_deref(), proto, args.binary)?;
    }
    if let Some(tracking) = &mut tracking {
        // The header (if any) is durable and FILE.ack names what FILE holds now, before
        // anything else is written.
        out.flush_durable()
            .and_then(|()| {
                tracking.record.offset = out.position();
                ackfile::write(&tracking.path, &tracking.record)
            })
            .map_err(|e| CliError::writing(&e))?;
    }
    let mut sink = Sink {
        out,
        writer: EventWriter::new(args.format),
        renderer: Renderer::new(),
        format: args.format,
        pending_ack: None,
        reported: recorded,
        tracking,
        streams: OpenStreams::default(),
    };
    let mut sync_timer = tokio::time::interval(Duration::from_secs(1));
    let outcome: Result<End, CliError> = loop {
        let Some(current) = stream.as_mut() else {
            break Ok(End::Signal);
        };
        match pump(current, &mut sink, &mut signals, &mut sync_timer, &slot).await {
            Ok(End::Restart) => {
                // The stream resumed before a position this process already acknowledged
                // (it was reported while the old connection's last events were handled):
                // start again after it, so nothing acknowledged is written twice.
                if let Some(old) = stream.take() {
                    let _ = old.stop().await;
                }
                let config = args.config(sink.reported, false)?;
                match open(&config, &policy, true, &mut signals).await {
                    Ok(Some(opened)) => stream = Some(opened.stream),
                    Ok(None) => break Ok(End::Signal),
                    Err(e) => break Err(stream_failure("reconnecting", &e, &slot)),
                }
            }
            other => break other,
        }
    };
    // Acknowledge what is durable, whatever ended the loop, and drop what is not.
    let synced = match sink.sync() {
        Ok(ack) => {
            if let (Some(lsn), Some(stream)) = (ack, &stream) {
                stream.feedback().processed(lsn);
            }
            sink.finish().map_err(|e| CliError::writing(&e))
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::writing(&e)),
    };
    let Some(stream) = stream else {
        outcome?;
        return synced;
    };
    let feedback = stream.feedback().clone();
    let stopped = stream.stop().await;
    let end = outcome?;
    synced?;
    if let Err(e) = stopped
        && !matches!(end, End::BrokenPipe)
    {
        return Err(stream_failure("stopping replication", &e, &slot));
    }
    let processed = feedback.processed_lsn();
    let needs_advance = processed > feedback.confirmed_flush_lsn() && !args.temporary;
    if needs_advance || args.drop_slot {
        finish_slot(&args, &slot, needs_advance.then_some(processed)).await?;
    }
    Ok(())
}

/// Moves events from `stream` to `sink` until the stream ends, a signal arrives, the output
/// fails, or a reconnect needs a new stream ([`End::Restart`]).
async fn pump(
    stream: &mut LogicalStream,
    sink: &mut Sink,
    signals: &mut Signals,
    sync_timer: &mut tokio::time::Interval,
    slot: &str,
) -> Result<End, CliError> {
    let feedback = stream.feedback().clone();
    // While the stream is reconnecting, nothing is acknowledged: the new connection resumes
    // at what was acknowledged when it dialled, and what is written meanwhile is cut back
    // at its `Reconnected` event.
    let mut attempts_seen = feedback.reconnect_attempts();
    loop {
        let steady = feedback.reconnect_attempts() == attempts_seen;
        tokio::select! {
            () = signals.recv() => return Ok(End::Signal),
            _ = sync_timer.tick(), if sink.pending_ack.is_some() && steady => match sink.sync() {
                Ok(ack) => if let Some(lsn) = ack { feedback.processed(lsn) },
                Err(e) => return Err(CliError::writing(&e)),
            },
            item = stream.next_event() => match item {
                None => return Ok(End::Finished),
                Some(Err(e)) => return Err(stream_failure("replication failed", &e, slot)),
                Some(Ok(event)) => {
                    if let EventKind::Reconnected(reconnected) = event.kind() {
                        attempts_seen = feedback.reconnect_attempts();
                        if on_reconnect(reconnected, sink, &feedback)? {
                            return Ok(End::Restart);
                        }
                        continue;
                    }
                    match sink.handle(&event) {
                        Ok(Some(lsn)) => feedback.processed(lsn),
                        Ok(None) => {}
                        Err(HandleError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                            return Ok(End::BrokenPipe);
                        }
                        Err(HandleError::Io(e)) => return Err(CliError::writing(&e)),
                        Err(HandleError::Render(e)) => {
                            return Err(CliError::failed(
                                format!("event at {}", event.wal_start()),
                                &e,
                            ));
                        }
                    }
                }
            },
        }
    }
}

/// The stream reconnected by itself: drop what was written of unacknowledged units, say so on
/// stderr, and go on — or (`true`) ask for a new stream when it resumed before what was
/// acknowledged.
fn on_reconnect(
    reconnected: &Reconnected,
    sink: &mut Sink,
    feedback: &Feedback,
) -> Result<bool, CliError> {
    if let Some(lsn) = sink.rewind().map_err(|e| CliError::writing(&e))? {
        feedback.processed(lsn);
    }
    let restart = sink
        .reported
        .is_some_and(|lsn| reconnected.resume_lsn < lsn);
    eprintln!(
        "pg-walstream: replication connection lost; reconnected after {:.1}s (attempt {}), \
         resuming at {}",
        reconnected.downtime.as_secs_f64(),
        reconnected.attempt,
        sink.reported
            .filter(|_| restart)
            .unwrap_or(reconnected.resume_lsn)
    );
    Ok(restart)
}

/// Writes the raw capture header, or, when appending to an existing capture, checks that it
/// was made with the same protocol version and mode.
fn start_raw_capture(
    out: &mut Destination,
    path: Option<&Path>,
    proto: ProtocolVersion,
    binary: bool,
) -> Result<(), CliError> {
    let header = RawHeader {
        proto,
        flags: if binary { FLAG_BINARY } else { 0 },
    };
    let existing = out
        .existing_len()
        .map_err(|e| CliError::failed("reading the output file", &e))?;
    match path {
        Some(path) if existing > 0 => {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::failed(format!("reading {}", path.display()), &e))?;
            let found = RawReader::new(io::BufReader::new(file))
                .map_err(|e| CliError::failed(format!("appending to {}", path.display()), &e))?
                .header();
            if found == header {
                Ok(())
            } else {
                Err(CliError::usage(format!(
                    "{} is a raw capture made with protocol version {} and flags {}; this \
                     stream uses version {} and flags {}: write to another file",
                    path.display(),
                    found.proto.as_u32(),
                    found.flags,
                    proto.as_u32(),
                    header.flags
                )))
            }
        }
        _ => write_header(out.writer(), header).map_err(|e| CliError::writing(&e)),
    }
}

/// After the stream ended: confirm `advance_to` (the stream stopped at --endpos before the
/// last transaction's report could be sent) and/or drop the slot.
async fn finish_slot(args: &RecvArgs, slot: &str, advance_to: Option<Lsn>) -> Result<(), CliError> {
    let mut connection = args.connection.connect().await?;
    if let Some(lsn) = advance_to
        && !args.drop_slot
    {
        let statement = advance_statement(slot, &lsn.to_string())?;
        retry_while_active(&mut connection, slot, &statement)
            .await
            .map_err(|e| CliError::failed(format!("confirming {lsn} for slot {slot:?}"), &e))?;
    }
    if args.drop_slot && !args.temporary {
        let name = SlotName::new(slot).map_err(|e| CliError::usage(chain(&e)))?;
        drop_replication_slot_if_exists(&mut connection, &name, true)
            .await
            .map_err(|e| CliError::failed(format!("dropping slot {slot:?}"), &e))?;
    }
    let _ = connection.close().await;
    Ok(())
}

/// How long the walsender of a stream that just ended may keep holding its slot: it exits
/// right after our Terminate, normally within milliseconds, but on a loaded machine it can
/// take seconds. Generous, as giving up fails the whole run.
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(120);

/// Runs `statement` on `slot`; while the walsender that just ended still holds the slot
/// (SQLSTATE 55006), waits until `pg_replication_slots` shows it released, then retries —
/// for at most [`SLOT_RELEASE_WAIT`].
async fn retry_while_active(
    connection: &mut Connection,
    slot: &str,
    statement: &str,
) -> Result<(), pg_walstream_transport::TransportError> {
    let deadline = std::time::Instant::now() + SLOT_RELEASE_WAIT;
    let active = format!(
        "SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
        pg_walstream_slot::quote_literal("slot", slot)
            .map_err(|e| pg_walstream_transport::TransportError::Config(chain(&e)))?
    );
    loop {
        match connection.simple_query(statement).await {
            Ok(_) => return Ok(()),
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.code() == Some(pg_walstream_transport::SqlState::OBJECT_IN_USE) =>
            {
                // The condition: the slot is no longer active (or gone).
                while std::time::Instant::now() < deadline {
                    let sets = connection.simple_query(&active).await?;
                    let held = sets
                        .first()
                        .and_then(|set| set.get_str(0, "active").ok().flatten())
                        == Some("t");
                    if !held {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(e) => return Err(e),
        }
    }
}
