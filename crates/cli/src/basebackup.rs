//! `pg-walstream basebackup`: a base backup into a plain data directory or tar files, like
//! `pg_basebackup`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use pg_walstream_backup::{
    ArchiveSink, BackupError, BackupOptions, BaseBackup, Checkpoint, ChecksumAlgorithm,
    Compression, CompressionMethod, DiscardSink, ManifestOption, PlainSink, TablespaceMapping,
    TarSink, Target, conninfo_value, prepare_empty_dir, recovery_conf_lines, write_standby_config,
    write_wal_archive,
};
use pg_walstream_transport::conninfo::{Config, Replication, Target as HostTarget};
use pg_walstream_transport::{Connection, Transport};

use crate::basebackup_progress::ProgressPrinter;
use crate::connect::ConnectionArgs;
use crate::error::{CliError, chain};

/// `-F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// A plain data directory (the archives are extracted).
    #[value(name = "plain", alias = "p")]
    Plain,
    /// Tar files as the server sends them, and `backup_manifest`.
    #[value(name = "tar", alias = "t")]
    Tar,
}

/// `-X`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WalMethodArg {
    /// No WAL: the backup needs a WAL archive to be restored.
    None,
    /// The WAL the backup needs, in the main archive (fetched at the end).
    Fetch,
    /// WAL over a second connection with a temporary slot while the backup runs (into
    /// `pg_wal/`, or `pg_wal.tar` beside the tar files).
    Stream,
}

/// `-c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckpointArg {
    /// An immediate checkpoint.
    Fast,
    /// The next spread checkpoint.
    Spread,
}

/// Arguments of `basebackup`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BaseBackupArgs {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// Directory to write to: the data directory (plain) or the tar files (tar). Created if
    /// missing; must be empty.
    #[arg(short = 'D', long = "pgdata", value_name = "DIR")]
    pub(crate) pgdata: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'F', long, value_enum, default_value = "plain")]
    pub(crate) format: FormatArg,
    /// How to include the WAL the backup needs.
    #[arg(short = 'X', long = "wal-method", value_enum, default_value = "fetch")]
    pub(crate) wal_method: WalMethodArg,
    /// Checkpoint mode.
    #[arg(short = 'c', long, value_enum, default_value = "spread")]
    pub(crate) checkpoint: CheckpointArg,
    /// Compress: [{client|server}-]METHOD[:DETAIL] with METHOD gzip, lz4, zstd or none, and
    /// DETAIL a level or level=N,workers=N,long. Without a prefix: on this client (tar only).
    #[arg(short = 'Z', long, value_name = "SPEC")]
    pub(crate) compress: Option<String>,
    /// Compress the tar files with gzip here (same as --compress client-gzip).
    #[arg(short = 'z', long, conflicts_with = "compress")]
    pub(crate) gzip: bool,
    /// Where the server puts the backup: client, server:/PATH or blackhole (15+).
    #[arg(short = 't', long, default_value = "client")]
    pub(crate) target: String,
    /// Relocate a tablespace: OLDDIR=NEWDIR (plain format; repeatable).
    #[arg(short = 'T', long = "tablespace-mapping", value_name = "OLDDIR=NEWDIR")]
    pub(crate) tablespace_mapping: Vec<String>,
    /// Write standby.signal and primary_conninfo into postgresql.auto.conf (with -F tar: into
    /// the main archive).
    #[arg(short = 'R', long = "write-recovery-conf")]
    pub(crate) write_recovery_conf: bool,
    /// With -R: the primary_slot_name to write.
    #[arg(short = 'S', long)]
    pub(crate) slot: Option<String>,
    /// Maximum transfer rate in kB/s (32 to 1048576; suffix k or M).
    #[arg(short = 'r', long = "max-rate", value_name = "RATE")]
    pub(crate) max_rate: Option<String>,
    /// The backup label.
    #[arg(short = 'l', long, default_value = "pg-walstream basebackup")]
    pub(crate) label: String,
    /// Show progress on standard error.
    #[arg(short = 'P', long)]
    pub(crate) progress: bool,
    /// Print the start and end positions and what was written.
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,
    /// Keep what was written when the backup fails.
    #[arg(short = 'n', long)]
    pub(crate) no_clean: bool,
    /// Do not fsync what was written.
    #[arg(short = 'N', long)]
    pub(crate) no_sync: bool,
    /// Ask for no backup manifest.
    #[arg(long)]
    pub(crate) no_manifest: bool,
    /// Hex-encode every path in the manifest.
    #[arg(long)]
    pub(crate) manifest_force_encode: bool,
    /// Manifest checksum algorithm: NONE, CRC32C, SHA224, SHA256, SHA384, SHA512.
    #[arg(long, value_name = "ALGORITHM")]
    pub(crate) manifest_checksums: Option<String>,
    /// Do not verify data checksums on the server.
    #[arg(long)]
    pub(crate) no_verify_checksums: bool,
    /// An incremental backup on top of the backup whose backup_manifest is FILE (17+; the
    /// server needs summarize_wal = on). Combine the backups with pg_combinebackup.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub(crate) incremental: Option<PathBuf>,
    /// After a plain backup, verify every file against the manifest and (unless -X none) the
    /// WAL it needs, like pg_verifybackup.
    #[arg(long)]
    pub(crate) verify: bool,
}

/// Where compression happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Client,
    Server,
}

/// `--compress`: `None` for none.
fn parse_compress(text: &str) -> Result<Option<(Place, Compression)>, CliError> {
    let usage = |reason: String| CliError::usage(format!("invalid --compress {text:?}: {reason}"));
    let (place, rest) = if let Some(rest) = text.strip_prefix("server-") {
        (Place::Server, rest)
    } else if let Some(rest) = text.strip_prefix("client-") {
        (Place::Client, rest)
    } else {
        (Place::Client, text)
    };
    let (method, detail) = rest.split_once(':').unwrap_or((rest, ""));
    if method == "none" {
        return Ok(None);
    }
    let method: CompressionMethod = method.parse().map_err(|e: BackupError| usage(chain(&e)))?;
    let mut compression = Compression::new(method);
    for item in detail.split(',').filter(|d| !d.is_empty()) {
        let (key, value) = match item.split_once('=') {
            Some(pair) => pair,
            None if item == "long" => ("long", "on"),
            None => ("level", item),
        };
        let number = |value: &str| {
            value
                .parse::<i32>()
                .map_err(|_| usage(format!("{key} {value:?} is not a number")))
        };
        match (key, value) {
            ("long", value) => compression.long = matches!(value, "on" | "true" | "1"),
            ("level", value) => compression.level = Some(number(value)?),
            ("workers", value) => compression.workers = Some(number(value)?.max(0).unsigned_abs()),
            (key, _) => return Err(usage(format!("unknown detail {key:?}"))),
        }
    }
    compression.validate().map_err(|e| usage(chain(&e)))?;
    if place == Place::Client && compression.workers.is_some() {
        return Err(usage(
            "workers applies to server-side compression only".to_owned(),
        ));
    }
    Ok(Some((place, compression)))
}

/// `--max-rate`: kB/s, suffix `k` or `M`.
fn parse_rate(text: &str) -> Result<u32, CliError> {
    let (number, factor) = match text.strip_suffix('M') {
        Some(number) => (number, 1024),
        None => (text.strip_suffix('k').unwrap_or(text), 1),
    };
    number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|rate| (32..=1_048_576).contains(rate))
        .ok_or_else(|| {
            CliError::usage(format!(
                "invalid --max-rate {text:?}: expected 32 to 1048576 kB/s (suffix k or M)"
            ))
        })
}

fn parse_target(text: &str) -> Result<Target, CliError> {
    match text {
        "client" => Ok(Target::Client),
        "blackhole" => Ok(Target::Blackhole),
        other => match other.strip_prefix("server:") {
            Some(path) if !path.is_empty() => Ok(Target::Server(path.to_owned())),
            _ => Err(CliError::usage(format!(
                "invalid --target {other:?}: expected client, server:/PATH or blackhole"
            ))),
        },
    }
}

/// What the arguments ask for, validated (usage errors, exit code 2).
struct Plan {
    options: BackupOptions,
    dir: Option<PathBuf>,
    client_compression: Option<Compression>,
    mappings: Vec<TablespaceMapping>,
}

fn plan(args: &BaseBackupArgs) -> Result<Plan, CliError> {
    let target = parse_target(&args.target)?;
    let to_client = target == Target::Client;
    let dir = match (&args.pgdata, to_client) {
        (Some(dir), true) => Some(dir.clone()),
        (None, true) => return Err(CliError::usage("no target directory specified: use -D DIR")),
        (Some(_), false) => {
            return Err(CliError::usage(
                "-D cannot be used with --target server or blackhole",
            ));
        }
        (None, false) => None,
    };
    let plain = args.format == FormatArg::Plain;
    if args.wal_method == WalMethodArg::Stream && !to_client {
        return Err(CliError::usage(
            "-X stream needs --target client: the WAL is written where the backup is",
        ));
    }
    let compress = if args.gzip {
        Some((Place::Client, Compression::new(CompressionMethod::Gzip)))
    } else {
        args.compress
            .as_deref()
            .map(parse_compress)
            .transpose()?
            .flatten()
    };
    let (server_compression, client_compression) = match compress {
        Some((Place::Server, c)) => (Some(c), None),
        Some((Place::Client, _)) if plain => {
            return Err(CliError::usage(
                "client-side compression needs -F tar: a plain backup is extracted, not stored",
            ));
        }
        Some((Place::Client, c)) => (None, Some(c)),
        None => (None, None),
    };
    if !plain && !args.tablespace_mapping.is_empty() {
        return Err(CliError::usage("-T works only with -F plain"));
    }
    if args.verify && !plain {
        return Err(CliError::usage("--verify works only with -F plain"));
    }
    if args.verify && args.no_manifest {
        return Err(CliError::usage(
            "--verify needs a manifest: drop --no-manifest",
        ));
    }
    if args.incremental.is_some() && args.no_manifest {
        return Err(CliError::usage(
            "--incremental needs a manifest: drop --no-manifest",
        ));
    }
    let incremental = args
        .incremental
        .as_deref()
        .map(|file| {
            std::fs::read(file).map(bytes::Bytes::from).map_err(|e| {
                CliError::failed(
                    format!("could not read the prior manifest \"{}\"", file.display()),
                    &e,
                )
            })
        })
        .transpose()?;
    let mappings = args
        .tablespace_mapping
        .iter()
        .map(|m| {
            m.parse()
                .map_err(|e: BackupError| CliError::usage(chain(&e)))
        })
        .collect::<Result<_, _>>()?;
    let manifest_checksums = args
        .manifest_checksums
        .as_deref()
        .map(|a| {
            a.parse::<ChecksumAlgorithm>()
                .map_err(|e| CliError::usage(chain(&e)))
        })
        .transpose()?;
    let options = BackupOptions {
        label: args.label.clone(),
        target,
        progress: args.progress,
        checkpoint: match args.checkpoint {
            CheckpointArg::Fast => Checkpoint::Fast,
            CheckpointArg::Spread => Checkpoint::Spread,
        },
        wal: args.wal_method == WalMethodArg::Fetch && to_client,
        compression: server_compression,
        max_rate: args.max_rate.as_deref().map(parse_rate).transpose()?,
        verify_checksums: !args.no_verify_checksums,
        manifest: if args.no_manifest {
            ManifestOption::No
        } else if args.manifest_force_encode {
            ManifestOption::ForceEncode
        } else {
            ManifestOption::Yes
        },
        manifest_checksums,
        incremental,
        ..BackupOptions::default()
    };
    Ok(Plan {
        options,
        dir,
        client_compression,
        mappings,
    })
}

/// What this run created, removed again on failure (unless `--no-clean`).
#[derive(Debug, Default)]
struct Created {
    /// The directory, and whether it existed (empty) before.
    dir: Option<(PathBuf, bool)>,
    tablespaces: Vec<PathBuf>,
}

impl Created {
    fn clean(&self) {
        let empty = |dir: &Path| {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                }
            }
        };
        for tablespace in &self.tablespaces {
            empty(tablespace);
        }
        match &self.dir {
            Some((dir, true)) => empty(dir),
            Some((dir, false)) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            None => {}
        }
    }
}

/// Checks that `dir` is missing or empty; `true` when it exists.
fn check_dir(dir: &Path) -> Result<bool, CliError> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(true),
        Ok(false) => Err(CliError::message(format!(
            "directory \"{}\" exists but is not empty",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::failed(
            format!("could not access directory \"{}\"", dir.display()),
            &e,
        )),
    }
}

/// `primary_conninfo` for `-R`: how this backup connected, without the replication mode.
fn primary_conninfo(config: &Config) -> String {
    let mut parts = vec![format!("user={}", conninfo_value(&config.user))];
    if let Some(password) = &config.password {
        let text = String::from_utf8_lossy(password.as_bytes());
        parts.push(format!("password={}", conninfo_value(&text)));
    }
    let hosts: Vec<String> = config
        .hosts
        .iter()
        .map(|h| match &h.target {
            HostTarget::Unix { dir } => dir.display().to_string(),
            HostTarget::Tcp { host, .. } => host.clone(),
        })
        .collect();
    let ports: Vec<String> = config.hosts.iter().map(|h| h.port.to_string()).collect();
    parts.push(format!("host={}", conninfo_value(&hosts.join(","))));
    parts.push(format!("port={}", ports.join(",")));
    parts.push(format!("sslmode={}", config.ssl_mode.as_str()));
    parts.join(" ")
}

async fn take<S: ArchiveSink>(
    backup: &mut BaseBackup<Connection>,
    sink: &mut S,
    printer: &mut Option<ProgressPrinter>,
) -> Result<(), BackupError> {
    backup
        .run_into(sink, |progress| {
            if let Some(printer) = printer.as_mut() {
                printer.show(progress);
            }
        })
        .await
        .map(drop)
}

/// `-X stream -F tar`: the streamed WAL as `pg_wal.tar` (compressed like the other tar files
/// when compressed here), as pg_basebackup writes it.
async fn wal_archive(
    streamer: crate::basebackup_wal::Streamer,
    end: pg_walstream_codec::Lsn,
    dir: &Path,
    compression: Option<Compression>,
    sync: bool,
) -> Result<(), CliError> {
    let staging = dir.join(".pg_wal.tmp");
    streamer.finish(end, &staging).await?;
    let name = format!(
        "pg_wal.tar{}",
        compression.map_or("", |c| c.method.suffix())
    );
    let written = write_wal_archive(&staging, &dir.join(name), compression.as_ref(), sync);
    let _ = std::fs::remove_dir_all(&staging);
    written.map_err(|e| CliError::failed("writing pg_wal.tar", &e))
}

/// Runs `basebackup`.
pub(crate) async fn run(args: BaseBackupArgs) -> Result<(), CliError> {
    let plan = plan(&args)?;
    let mut config = args.connection.config()?;
    config.replication = Replication::Physical;
    let backend = args.connection.backend()?;
    let existed = plan.dir.as_deref().map(check_dir).transpose()?;
    let prepared = if args.wal_method == WalMethodArg::Stream {
        Some(crate::basebackup_wal::prepare(&config, backend).await?)
    } else {
        None
    };
    let connection = Connection::connect_with(&config, backend)
        .await
        .map_err(|e| CliError::failed("could not connect", &e))?;
    let mut backup = BaseBackup::start(connection, &plan.options)
        .await
        .map_err(|e| CliError::failed("could not start the base backup", &e))?;
    if args.verbose {
        let start = backup.start_position();
        eprintln!(
            "basebackup: starts at {} on timeline {}",
            start.lsn, start.timeline
        );
    }
    let mut streamer = match (prepared, &plan.dir) {
        (Some(prepared), Some(dir)) => {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let stream_dir = dir.with_file_name(format!(".{name}.wal-stream"));
            Some(prepared.start(backup.start_position(), stream_dir, !args.no_sync)?)
        }
        _ => None,
    };
    let mut created = Created::default();
    if let (Some(dir), Some(existed)) = (&plan.dir, existed) {
        created.dir = Some((dir.clone(), existed));
    }
    let mut printer: Option<ProgressPrinter> = args
        .progress
        .then(|| ProgressPrinter::new(std::io::stderr().is_terminal()));
    let outcome = match (&plan.dir, args.format) {
        (None, _) => take(&mut backup, &mut DiscardSink::default(), &mut printer).await,
        (Some(dir), FormatArg::Plain) => {
            let mut sink = PlainSink::new(dir)
                .mappings(plan.mappings.clone())
                .sync(!args.no_sync);
            let outcome = take(&mut backup, &mut sink, &mut printer).await;
            created.tablespaces = sink.tablespace_dirs().to_vec();
            outcome
        }
        (Some(dir), FormatArg::Tar) => match prepare_empty_dir(dir) {
            Ok(()) => {
                let mut sink = TarSink::new(dir).sync(!args.no_sync);
                if let Some(compression) = plan.client_compression {
                    sink = sink.compress(compression);
                }
                if args.write_recovery_conf {
                    sink = sink.recovery(recovery_conf_lines(
                        &primary_conninfo(&config),
                        args.slot.as_deref(),
                    ));
                }
                take(&mut backup, &mut sink, &mut printer).await
            }
            Err(e) => Err(e),
        },
    };
    if let Some(printer) = printer.as_mut()
        && outcome.is_ok()
    {
        printer.finish();
    }
    let end = backup.end();
    let finish = async {
        outcome.map_err(|e| CliError::failed("base backup failed", &e))?;
        let Some(dir) = &plan.dir else { return Ok(()) };
        if let (Some(streamer), Some(end)) = (streamer.take(), end) {
            if args.format == FormatArg::Plain {
                streamer.finish(end.lsn, &dir.join("pg_wal")).await?;
            } else {
                wal_archive(
                    streamer,
                    end.lsn,
                    dir,
                    plan.client_compression,
                    !args.no_sync,
                )
                .await?;
            }
        }
        if args.write_recovery_conf && args.format == FormatArg::Plain {
            write_standby_config(dir, &primary_conninfo(&config), args.slot.as_deref())
                .map_err(|e| CliError::failed("writing the recovery configuration", &e))?;
        }
        Ok(())
    };
    let finished: Result<(), CliError> = finish.await;
    if let Some(streamer) = streamer {
        streamer.abandon();
    }
    if let Err(error) = finished {
        if !args.no_clean {
            created.clean();
            return Err(error);
        }
        return Err(match &created.dir {
            Some((dir, _)) => error.with_note(&format!("{} kept (--no-clean)", dir.display())),
            None => error,
        });
    }
    if let Some(end) = backup.end()
        && args.verbose
    {
        eprintln!(
            "basebackup: ends at {} on timeline {}",
            end.lsn, end.timeline
        );
    }
    drop(backup.into_connection().close().await);
    if args.verify
        && let Some(dir) = &plan.dir
    {
        crate::verifybackup::verify(dir, args.wal_method != WalMethodArg::None)?;
        if args.verbose {
            eprintln!(
                "basebackup: verified {} against its manifest",
                dir.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_specs() {
        let (place, c) = parse_compress("server-zstd:level=5,workers=2,long")
            .unwrap()
            .unwrap();
        assert_eq!(place, Place::Server);
        assert_eq!(
            (c.method, c.level, c.workers, c.long),
            (CompressionMethod::Zstd, Some(5), Some(2), true)
        );
        let (place, c) = parse_compress("gzip:9").unwrap().unwrap();
        assert_eq!((place, c.level), (Place::Client, Some(9)));
        assert_eq!(
            parse_compress("client-lz4").unwrap().unwrap().0,
            Place::Client
        );
        assert!(parse_compress("none").unwrap().is_none());
        for bad in [
            "brotli",
            "gzip:12",
            "lz4:workers=2",
            "zstd:speed=1",
            "client-zstd:workers=2",
        ] {
            assert!(parse_compress(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_and_targets() {
        assert_eq!(parse_rate("100").unwrap(), 100);
        assert_eq!(parse_rate("100k").unwrap(), 100);
        assert_eq!(parse_rate("2M").unwrap(), 2048);
        assert!(parse_rate("10").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(
            parse_target("server:/srv").unwrap(),
            Target::Server("/srv".into())
        );
        assert!(parse_target("server:").is_err());
        assert!(parse_target("s3").is_err());
    }
}
