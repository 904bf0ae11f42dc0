//! `pg-walstream receivewal`: stream physical WAL into a directory, like `pg_receivewal`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pg_walstream_codec::Lsn;
use pg_walstream_slot::{CreateSlot, SlotName, drop_replication_slot, identify_system, show};
use pg_walstream_stream::wal_writer::{
    Compression, SyncPolicy, WalWriter, WalWriterOptions, check_system_identifier, check_writable,
    find_resume_point,
};
use pg_walstream_stream::{
    Error as StreamError, PhysicalConfig, PhysicalStart, PhysicalStream, ReceiveEnd, ReceiveError,
    ReceiveProgress, parse_wal_segment_size, receive_wal,
};
use pg_walstream_transport::conninfo::{Config, Replication};
use pg_walstream_transport::{Backend, Connection, Transport as _};
use tokio::signal::unix::{SignalKind, signal};

use crate::connect::ConnectionArgs;
use crate::error::{CliError, chain};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// WAL messages (up to 128 KiB each, each keeping its read buffer alive) that may wait while
/// the writer fsyncs a segment: enough to keep reading meanwhile, few enough that memory stays
/// a few MB (the library's default of 256 held ~90 MB at a segment's fsync).
const CHANNEL_CAPACITY: usize = 16;

/// Arguments of `receivewal`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReceiveWalArgs {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// Directory to write WAL segments to (must exist and be writable).
    #[arg(short = 'D', long = "directory", value_name = "DIR")]
    pub(crate) directory: Option<PathBuf>,
    /// Physical replication slot to stream from.
    #[arg(short = 'S', long)]
    pub(crate) slot: Option<String>,
    /// Create the slot (physical, reserving WAL) and exit.
    #[arg(long, conflicts_with = "drop_slot")]
    pub(crate) create_slot: bool,
    /// Drop the slot and exit.
    #[arg(long)]
    pub(crate) drop_slot: bool,
    /// With --create-slot: no error if the slot exists.
    #[arg(long, requires = "create_slot")]
    pub(crate) if_not_exists: bool,
    /// Stop once WAL up to this position is written (exit code 0).
    #[arg(short = 'E', long, value_name = "LSN")]
    pub(crate) endpos: Option<String>,
    /// fsync written WAL before reporting it flushed, after every batch received.
    #[arg(long, conflicts_with = "no_sync")]
    pub(crate) synchronous: bool,
    /// Never fsync (for tests; the slot then follows unsynced files).
    #[arg(long)]
    pub(crate) no_sync: bool,
    /// Seconds between status updates sent to the server.
    #[arg(short = 's', long, value_name = "SECS", default_value_t = 10)]
    pub(crate) status_interval: u64,
    /// Compress segments: none, gzip[:LEVEL], lz4, zstd[:LEVEL].
    #[arg(long, value_name = "METHOD[:LEVEL]", default_value = "none")]
    pub(crate) compress: String,
    /// Do not reconnect after a failure: exit with code 1.
    #[arg(short = 'n', long)]
    pub(crate) no_loop: bool,
    /// Print progress (finished segments, timeline switches, reconnects) on standard error.
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,
}

/// `--compress` as the writer's [`Compression`].
fn parse_compression(text: &str) -> Result<Compression, CliError> {
    let (method, level) = match text.split_once(':') {
        Some((method, level)) => {
            let level = level.strip_prefix("level=").unwrap_or(level);
            let level: i32 = level
                .parse()
                .map_err(|_| CliError::usage(format!("invalid --compress level {level:?}")))?;
            (method, Some(level))
        }
        None => (text, None),
    };
    let compression = match (method, level) {
        ("none", None | Some(0)) => Compression::None,
        ("gzip", level) => {
            let level = level.unwrap_or(6);
            if !(1..=9).contains(&level) {
                return Err(CliError::usage("--compress gzip level must be 1 to 9"));
            }
            Compression::Gzip {
                level: level.unsigned_abs(),
            }
        }
        ("lz4", None) => Compression::Lz4,
        ("zstd", level) => {
            let level = level.unwrap_or(3);
            if !(1..=22).contains(&level) {
                return Err(CliError::usage("--compress zstd level must be 1 to 22"));
            }
            Compression::Zstd { level }
        }
        _ => {
            return Err(CliError::usage(format!(
                "invalid --compress {text:?}: expected none, gzip[:LEVEL], lz4 or zstd[:LEVEL]"
            )));
        }
    };
    Ok(compression)
}

/// What the arguments ask for, validated.
struct Plan {
    directory: PathBuf,
    slot: Option<SlotName>,
    endpos: Option<Lsn>,
    sync: SyncPolicy,
    compression: Compression,
    status_interval: Duration,
}

fn slot_name(args: &ReceiveWalArgs) -> Result<Option<SlotName>, CliError> {
    args.slot
        .as_deref()
        .map(|name| {
            SlotName::new(name)
                .map_err(|e| CliError::usage(format!("invalid --slot: {}", chain(&e))))
        })
        .transpose()
}

fn plan(args: &ReceiveWalArgs) -> Result<Plan, CliError> {
    let Some(directory) = args.directory.clone() else {
        return Err(CliError::usage("-D/--directory is required"));
    };
    let endpos = args
        .endpos
        .as_deref()
        .map(|text| {
            text.parse::<Lsn>()
                .map_err(|_| CliError::usage(format!("invalid --endpos {text:?}: expected X/Y")))
        })
        .transpose()?;
    if args.status_interval == 0 {
        return Err(CliError::usage(
            "--status-interval must be at least 1 second",
        ));
    }
    Ok(Plan {
        directory,
        slot: slot_name(args)?,
        endpos,
        sync: if args.synchronous {
            SyncPolicy::Synchronous
        } else if args.no_sync {
            SyncPolicy::Never
        } else {
            SyncPolicy::PerSegment
        },
        compression: parse_compression(&args.compress)?,
        status_interval: Duration::from_secs(args.status_interval),
    })
}

/// The connection settings (`replication=true`) and backend; usage errors for bad ones.
fn connection_settings(args: &ReceiveWalArgs) -> Result<(Config, Backend), CliError> {
    let mut config = args.connection.config()?;
    config.replication = Replication::Physical;
    Ok((config, args.connection.backend()?))
}

async fn connect((config, backend): &(Config, Backend)) -> Result<Connection, StreamError> {
    Ok(Connection::connect_with(config, *backend).await?)
}

/// Runs `receivewal`.
pub(crate) async fn run(args: ReceiveWalArgs) -> Result<(), CliError> {
    let settings = connection_settings(&args)?;
    if args.create_slot || args.drop_slot {
        return manage_slot(&args, &settings).await;
    }
    let plan = plan(&args)?;
    // Before connecting: a directory we cannot write to is a clear error, and nothing is sent.
    check_writable(&plan.directory).map_err(|e| {
        CliError::message(format!(
            "directory {} is not usable: {}",
            plan.directory.display(),
            chain(&e)
        ))
    })?;
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failed("installing the SIGINT handler", &e))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed("installing the SIGTERM handler", &e))?;
    let mut backoff = Duration::from_secs(1);
    let mut reconnect = false;
    loop {
        let attempt = async {
            let stop = async {
                tokio::select! {
                    _ = sigint.recv() => {}
                    _ = sigterm.recv() => {}
                }
            };
            stream_once(&args, &settings, &plan, reconnect, stop).await
        };
        match attempt.await {
            Ok(_) => return Ok(()),
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Retry(error)) if args.no_loop => return Err(error),
            Err(Failure::Retry(error)) => {
                eprintln!(
                    "pg-walstream: {error}; reconnecting in {}s",
                    backoff.as_secs()
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = sigint.recv() => return Ok(()),
                    _ = sigterm.recv() => return Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                reconnect = true;
            }
        }
    }
}

enum Failure {
    /// Retrying cannot help (bad input, permanent server errors, file errors).
    Fatal(CliError),
    /// A connection-level failure: reconnect unless --no-loop.
    Retry(CliError),
}

fn stream_failure(context: &str, error: &StreamError) -> Failure {
    let message = CliError::failed(context, error);
    if error.is_transient() {
        Failure::Retry(message)
    } else {
        Failure::Fatal(message)
    }
}

/// One connection: resume point, start, receive until the end position, a signal or an error.
/// `reconnect` after a failed one (counted in the stream's metrics).
async fn stream_once(
    args: &ReceiveWalArgs,
    settings: &(Config, Backend),
    plan: &Plan,
    reconnect: bool,
    stop: impl Future<Output = ()>,
) -> Result<ReceiveEnd, Failure> {
    let mut connection = connect(settings)
        .await
        .map_err(|e| stream_failure("could not connect", &e))?;
    let size_text = show(&mut connection, "wal_segment_size")
        .await
        .map_err(|e| stream_failure("reading wal_segment_size", &StreamError::Slot(e)))?;
    let segment_size = parse_wal_segment_size(&size_text).ok_or_else(|| {
        Failure::Fatal(CliError::message(format!(
            "unusable wal_segment_size {size_text:?}"
        )))
    })?;
    let file_error =
        |e: &dyn std::error::Error| Failure::Fatal(CliError::failed("WAL directory", e));
    // Files of another cluster in the directory: refuse before anything is written.
    let system = identify_system(&mut connection)
        .await
        .map_err(|e| stream_failure("IDENTIFY_SYSTEM", &StreamError::Slot(e)))?;
    check_system_identifier(&plan.directory, segment_size, system.system_id).map_err(|e| {
        Failure::Fatal(CliError::message(format!(
            "WAL directory {}: {}",
            plan.directory.display(),
            chain(&e)
        )))
    })?;
    let start =
        match find_resume_point(&plan.directory, segment_size).map_err(|e| file_error(&e))? {
            Some(point) => PhysicalStart::At {
                lsn: point.lsn,
                timeline: Some(point.timeline),
            },
            None => PhysicalStart::Auto,
        };
    if let (Some(end), PhysicalStart::At { lsn, .. }) = (plan.endpos, start)
        && lsn >= end
    {
        return Ok(ReceiveEnd::EndPos);
    }
    let mut builder = PhysicalConfig::builder()
        .start(start)
        .status_interval(plan.status_interval)
        .reconnect(reconnect)
        .channel_capacity(CHANNEL_CAPACITY);
    if let Some(slot) = &plan.slot {
        builder = builder.slot(slot.as_str());
    }
    let config = builder
        .build()
        .map_err(|e| Failure::Fatal(CliError::usage(chain(&e))))?;
    let stream = PhysicalStream::start(connection, config)
        .await
        .map_err(|e| stream_failure("starting replication", &e))?;
    if args.verbose {
        eprintln!(
            "pg-walstream: streaming from {} on timeline {} into {}",
            stream.info().start_lsn,
            stream.info().timeline,
            plan.directory.display()
        );
    }
    let mut options = WalWriterOptions::new(segment_size);
    options.compression = plan.compression;
    options.sync = plan.sync;
    let mut writer = WalWriter::new(&plan.directory, options).map_err(|e| file_error(&e))?;
    let seg_bytes = u64::from(segment_size.bytes());
    let mut last_segment_end = Lsn::INVALID;
    let verbose = args.verbose;
    let progress = |p: &ReceiveProgress| {
        if !verbose {
            return;
        }
        if let Some(timeline) = p.switched_to {
            eprintln!("pg-walstream: switched to timeline {timeline}");
        }
        let boundary = Lsn(p.written.0 - p.written.0 % seg_bytes);
        if boundary > last_segment_end && last_segment_end != Lsn::INVALID {
            eprintln!(
                "pg-walstream: finished segment at {boundary} (timeline {})",
                p.timeline
            );
        }
        last_segment_end = last_segment_end.max(boundary);
    };
    match receive_wal(stream, &mut writer, plan.endpos, stop, progress).await {
        Ok(end) => {
            if verbose {
                eprintln!("pg-walstream: stopped at {}", writer.written_lsn());
            }
            Ok(end)
        }
        Err(ReceiveError::Stream(error)) => Err(stream_failure("replication", &error)),
        Err(ReceiveError::Writer(error)) => Err(file_error(&error)),
        Err(other) => Err(Failure::Fatal(CliError::failed("replication", &other))),
    }
}

/// `--create-slot` / `--drop-slot`.
async fn manage_slot(args: &ReceiveWalArgs, settings: &(Config, Backend)) -> Result<(), CliError> {
    let Some(slot) = slot_name(args)? else {
        return Err(CliError::usage(
            "--create-slot and --drop-slot need -S/--slot",
        ));
    };
    let mut connection = connect(settings)
        .await
        .map_err(|e| CliError::failed("could not connect", &e))?;
    if args.drop_slot {
        drop_replication_slot(&mut connection, &slot, false)
            .await
            .map_err(|e| CliError::failed(format!("dropping slot {slot}"), &e))?;
        if args.verbose {
            eprintln!("pg-walstream: dropped slot {slot}");
        }
    } else {
        let create = CreateSlot::physical(slot.clone()).reserve_wal();
        let created = if args.if_not_exists {
            create.execute_if_not_exists(&mut connection).await
        } else {
            create.execute(&mut connection).await.map(Some)
        }
        .map_err(|e| CliError::failed(format!("creating slot {slot}"), &e))?;
        if args.verbose {
            match created {
                Some(_) => eprintln!("pg-walstream: created slot {slot}"),
                None => eprintln!("pg-walstream: slot {slot} already exists"),
            }
        }
    }
    let _ = connection.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_arguments() {
        assert_eq!(parse_compression("none").unwrap(), Compression::None);
        assert_eq!(
            parse_compression("gzip").unwrap(),
            Compression::Gzip { level: 6 }
        );
        assert_eq!(
            parse_compression("gzip:9").unwrap(),
            Compression::Gzip { level: 9 }
        );
        assert_eq!(
            parse_compression("zstd:level=5").unwrap(),
            Compression::Zstd { level: 5 }
        );
        assert_eq!(parse_compression("lz4").unwrap(), Compression::Lz4);
        for bad in ["gzip:0", "gzip:x", "lz4:3", "brotli", "zstd:30"] {
            assert!(parse_compression(bad).is_err(), "{bad}");
        }
    }
}
