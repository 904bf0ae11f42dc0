//! `cargo xtask`: the project's automation, so that a fresh machine needs two commands.
//!
//! - `cargo xtask pg install [--versions 14,15,16,17,18]`: fetch missing server binaries.
//! - `cargo xtask pg start --version N`: run a throwaway server and print how to connect.
//! - `cargo xtask test [--versions …] [-- ARGS]`: install what is missing, start one server per
//!   version, run every test of the workspace against them, stop them and check nothing leaked.
//! - `cargo xtask ci`: format check, clippy, docs, no_std build, then `test` on all versions
//!   and the heavy chaos run.
//! - `cargo xtask chaos [--rows N] [--versions 16,17]`: the reconnect chaos test with N rows.
//! - `cargo xtask codegen types [--check]`: regenerate the codec's built-in type catalogue
//!   from `pg_type` of throwaway servers 14–18.
//! - `cargo xtask codegen rmgr --pg-source 14=DIR … [--check]`: regenerate the WAL decoder's
//!   resource-manager and record-type tables from PostgreSQL 14–18 source trees.
//! - `cargo xtask fuzz [--time SECS] [TARGET]`: run the cargo-fuzz targets on stable.
//! - `cargo xtask demo [--pg-version N]`: stream a workload's changes from a throwaway server.
//! - `cargo xtask bench [--rows N] [--runs N] [--live]`: our consumer vs pg_recvlogical and
//!   upstream pg_walstream, side by side (docs/BENCHMARKS.md); `--scenarios waldump`:
//!   `pg-walstream waldump --stats` vs pg_waldump on the same ≥ 500 MiB of WAL.

mod bench;
mod ci;
mod client_tools_17;
mod codegen;
mod demo;
mod deps;
mod fuzz;
mod pg;
mod process;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line arguments of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "pg-walstream project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

/// What `cargo xtask` can do.
#[derive(Debug, Subcommand)]
enum Task {
    /// Manage PostgreSQL server binaries and throwaway servers.
    Pg {
        #[command(subcommand)]
        command: pg::PgCommand,
    },
    /// Run the whole workspace's tests against real servers of each requested version.
    Test(test::TestArgs),
    /// Everything CI checks: fmt, clippy, docs, no_std build, tests on all versions.
    Ci,
    /// The reconnect chaos test (faults, restarts, consumer kills) with many rows.
    Chaos(ChaosArgs),
    /// Stream changes from a throwaway local server to the terminal.
    Demo(demo::DemoArgs),
    /// Benchmark our logical consumer against pg_recvlogical and upstream pg_walstream.
    Bench(bench::BenchArgs),
    /// Run the cargo-fuzz targets of fuzz/ for a bounded time each.
    Fuzz(fuzz::FuzzArgs),
    /// Regenerate checked-in sources from PostgreSQL (the built-in type catalogue).
    Codegen {
        #[command(subcommand)]
        command: codegen::CodegenCommand,
    },
}

/// Arguments of `cargo xtask chaos`.
#[derive(Debug, clap::Args)]
struct ChaosArgs {
    /// Rows the writer commits.
    #[arg(long, default_value_t = test::HEAVY_CHAOS_ROWS)]
    rows: u64,
    /// Comma-separated PostgreSQL major versions.
    #[arg(long, value_delimiter = ',', default_values_t = test::HEAVY_CHAOS_VERSIONS)]
    versions: Vec<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Pg { command } => pg::run(command),
        Task::Test(args) => test::run(&args),
        Task::Ci => ci::run(),
        Task::Chaos(args) => test::run_chaos(&args.versions, args.rows),
        Task::Fuzz(args) => fuzz::run_fuzz(&args),
        Task::Demo(args) => demo::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Codegen { command } => codegen::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
