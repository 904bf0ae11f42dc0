//! The `pg-walstream` command-line tool.
//!
//! Subcommands (`recv`, `decode`, `slot`, and later `receivewal`, `basebackup`, `waldump`) are
//! added by the issues that build the library parts they drive.

use clap::Parser;

/// Command-line arguments of `pg-walstream`.
#[derive(Debug, Parser)]
#[command(
    name = "pg-walstream",
    version,
    about = "PostgreSQL replication from the command line"
)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
