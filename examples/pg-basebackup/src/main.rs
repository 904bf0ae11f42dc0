//! A base backup extracted into a plain data directory, with progress on standard error and
//! the result checked against its manifest: `pg_basebackup -D DIR -X fetch -P` in ~50 lines.
//!
//! `PG_WALSTREAM_CONNINFO` is a connection string of a user with the REPLICATION attribute;
//! the first argument is the target directory (created; must be empty).

use std::process::ExitCode;

use pg_walstream::backup::{
    BackupOptions, BaseBackup, Checkpoint, Manifest, PlainSink, Progress, verify_dir,
};
use pg_walstream::transport::Connection;
use pg_walstream::transport::conninfo::{Config, Replication};

#[tokio::main]
async fn main() -> ExitCode {
    let (Ok(conninfo), Some(dir)) = (
        std::env::var("PG_WALSTREAM_CONNINFO"),
        std::env::args().nth(1),
    ) else {
        eprintln!("usage: set PG_WALSTREAM_CONNINFO and give the target directory");
        return ExitCode::from(2);
    };
    match backup(&conninfo, &dir).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pg-basebackup example: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn backup(conninfo: &str, dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut config: Config = conninfo.parse()?;
    config.replication = Replication::Physical;
    let connection = Connection::connect(&config).await?;
    let options = BackupOptions {
        checkpoint: Checkpoint::Fast,
        wal: true, // -X fetch: the WAL the backup needs, in pg_wal
        progress: true,
        ..BackupOptions::default()
    };
    let mut backup = BaseBackup::start(connection, &options).await?;
    let start = backup.start_position();
    eprintln!(
        "backup starts at {} on timeline {}",
        start.lsn, start.timeline
    );
    let mut sink = PlainSink::new(dir);
    let mut shown = None;
    let show = |p: Progress| {
        let total = p.total.unwrap_or(p.done).max(1);
        let percent = p.done * 100 / total;
        if shown.replace(percent) != Some(percent) {
            eprintln!("{} of {} kB ({percent}%)", p.done / 1024, total / 1024);
        }
    };
    let end = backup.run_into(&mut sink, show).await?;
    eprintln!("backup ends at {}", end.lsn);
    let report = verify_dir(dir.as_ref(), &Manifest::read_from_dir(dir.as_ref())?)?;
    println!(
        "{} files match backup_manifest: {}",
        report.checked,
        report.is_ok()
    );
    Ok(())
}
