//! `cargo xtask codegen …`: sources generated from PostgreSQL and checked into the
//! repository. Each generator is one module; this file only dispatches.
//!
//! Generators never reach the network: they read throwaway servers of the installed
//! versions (`cargo xtask pg install` fetches missing ones) or files given on the command
//! line (`rmgr` needs PostgreSQL source trees: `--pg-source VERSION=DIR`). Run one again after a PostgreSQL release and commit the result; `--check` fails if
//! the checked-in file differs from what would be generated.

mod pg_type_dat;
mod rmgr;
mod rmgr_source;
mod types;

use clap::Subcommand;

/// `cargo xtask codegen …`.
#[derive(Debug, Subcommand)]
pub(crate) enum CodegenCommand {
    /// The built-in type catalogue (crates/codec/src/types/catalog.rs) from `pg_type` of
    /// servers of every supported version.
    Types(types::TypesArgs),
    /// The WAL decoder's resource managers and record-type names
    /// (crates/codec/src/wal/rmgr_table.rs) from PostgreSQL source trees of 14–18.
    Rmgr(rmgr::RmgrArgs),
}

pub(crate) fn run(command: CodegenCommand) -> Result<(), String> {
    match command {
        CodegenCommand::Types(args) => types::run(&args),
        CodegenCommand::Rmgr(args) => rmgr::run(&args),
    }
}
