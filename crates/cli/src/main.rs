//! The `pg-walstream` command-line tool.
//!
//! - `pg-walstream recv`: stream a logical replication slot (pgoutput) and print the decoded
//!   changes as JSON lines, per-transaction JSON, text, or a raw capture;
//! - `pg-walstream decode`: decode a capture offline (a raw capture, or psql output of
//!   `pg_logical_slot_peek_binary_changes`) into the same JSON;
//! - `pg-walstream receivewal`: stream physical WAL into segment files, following timeline
//!   switches and reconnecting, like `pg_receivewal`;
//! - `pg-walstream basebackup`: a base backup into a plain data directory or tar files, like
//!   `pg_basebackup` (-F p|t, -X fetch|stream|none, server/client compression, -T, -R, --verify);
//! - `pg-walstream verifybackup DIR`: check a plain backup against its manifest;
//! - `pg-walstream slot create|drop|list|show`: manage logical replication slots;
//! - `pg-walstream waldump`: decode physical WAL segment files offline, like pg_waldump.
//!
//! Exit codes: 0 success (also after SIGINT/SIGTERM or at `--endpos`), 1 the work failed
//! (connection, server, decoding, output), 2 invalid arguments. Errors are one line on
//! standard error.

mod ackfile;
mod basebackup;
mod basebackup_progress;
mod basebackup_wal;
mod capture;
mod connect;
mod decode;
mod destination;
mod error;
mod output;
mod receivewal;
mod recv;
mod recv_sink;
mod render;
mod retry;
mod slot;
mod spool;
mod verifybackup;
mod waldump;
mod waldump_output;
mod waldump_parallel;
mod waldump_scan;
mod waldump_segments;
mod waldump_timelines;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

use crate::error::{CliError, EXIT_OK, EXIT_USAGE, one_line};

/// Command-line arguments of `pg-walstream`.
#[derive(Debug, Parser)]
#[command(
    name = "pg-walstream",
    version,
    about = "PostgreSQL replication from the command line: stream logical changes or physical WAL, decode, manage slots",
    after_help = "EXIT CODES:\n  0  success (also after SIGINT/SIGTERM, or when --endpos was reached)\n  \
                  1  the work failed (connection, server, decoding or output error)\n  \
                  2  invalid arguments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Stream changes from a logical replication slot (pgoutput) and print them decoded.
    Recv(Box<recv::RecvArgs>),
    /// Stream physical WAL into a directory of segment files, like pg_receivewal.
    Receivewal(Box<receivewal::ReceiveWalArgs>),
    /// Decode captured pgoutput offline (raw capture or psql output) into the same JSON.
    Decode(decode::DecodeArgs),
    /// Take a base backup into a plain data directory or tar files, like pg_basebackup.
    Basebackup(Box<basebackup::BaseBackupArgs>),
    /// Check a plain base backup against its backup_manifest (sizes, checksums, the
    /// manifest's own checksum) and the WAL it needs, like pg_verifybackup.
    Verifybackup(verifybackup::VerifyArgs),
    /// Create, drop, list and inspect replication slots.
    Slot {
        #[command(subcommand)]
        command: slot::SlotCommand,
    },
    /// Decode WAL segment files offline, like pg_waldump (CRC-checked; --stats, --json).
    Waldump(Box<waldump::WaldumpArgs>),
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Decode(args) => decode::run(&args),
        Command::Recv(args) => with_runtime(recv::run(*args)),
        Command::Receivewal(args) => with_runtime(receivewal::run(*args)),
        Command::Slot { command } => with_runtime(slot::run(command)),
        // One thread receives and writes (as pg_basebackup does): no wake-ups across threads.
        Command::Basebackup(args) => with_current_thread_runtime(basebackup::run(*args)),
        Command::Verifybackup(args) => verifybackup::verify(&args.directory, !args.no_parse_wal),
        Command::Waldump(args) => waldump::run(&args),
    }
}

fn with_runtime(work: impl Future<Output = Result<(), CliError>>) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed("starting the async runtime", &e))?;
    runtime.block_on(work)
}

fn with_current_thread_runtime(
    work: impl Future<Output = Result<(), CliError>>,
) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed("starting the async runtime", &e))?;
    runtime.block_on(work)
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "pg-walstream: internal error{location}: {} (please report this)",
            one_line(&payload)
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return match error.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = error.print();
                    ExitCode::from(if error.use_stderr() {
                        EXIT_USAGE
                    } else {
                        EXIT_OK
                    })
                }
                _ => {
                    let text = error.render().to_string();
                    // clap's first paragraph says what is wrong; the rest is usage.
                    let first = text.split("\n\n").next().unwrap_or(&text);
                    eprintln!("pg-walstream: {} (see --help)", one_line(first));
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !error.is_quiet() {
                eprintln!("pg-walstream: error: {error}");
            }
            ExitCode::from(error.code())
        }
    }
}
