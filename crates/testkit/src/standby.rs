//! A streaming standby of a private test server: base backup, `standby.signal`,
//! `primary_conninfo` over a physical slot, and promotion.
//!
//! The base backup is taken with the server's own `pg_basebackup` when its binary directory
//! has one (Debian's 15); otherwise (the npm builds of 14, 16, 17 and 18 ship only the server)
//! the data directory is copied under a non-exclusive backup (`pg_backup_start` /
//! `pg_backup_stop` on 15+, `pg_start_backup(.., exclusive => false)` / `pg_stop_backup` on 14)
//! held open on one session, and the `backup_label` the server returns is written into the
//! copy. Either way the standby streams from a physical slot created on the primary before the
//! backup, so the WAL it needs is retained.

use std::path::{Path, PathBuf};

use crate::layout::conf_quote;
use crate::os::{ServerUser, chmod, run};
use crate::reaper::Reaper;
use crate::server::{append, quote};
use crate::users::ADMIN_USER;
use crate::{TestServer, TestkitError, unique_name};

/// Entries of the data directory a copied base backup leaves out (as `pg_basebackup` does):
/// the files themselves, or for directories their contents.
const SKIPPED_FILES: [&str; 5] = [
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "standby.signal",
];
const EMPTIED_DIRS: [&str; 8] = [
    "pg_wal",
    "pg_replslot",
    "pg_stat_tmp",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

impl TestServer {
    /// Creates and starts a streaming standby of this (private, running) server.
    ///
    /// A physical slot (its name is [`primary_slot_name`](Self::primary_slot_name) on the
    /// standby) is created on this server first; the standby replays over it with
    /// `hot_standby = on`, so it accepts read-only queries as soon as this returns. The
    /// standby's users and settings are the primary's (it is a copy); its port, socket
    /// directory and certificates are its own. Promote it with [`promote`](Self::promote).
    ///
    /// # Errors
    /// For a shared server; when the slot, the base backup or the start fails.
    pub fn start_standby_of(primary: &TestServer) -> Result<TestServer, TestkitError> {
        primary.require_owned("take a standby of")?;
        let user = ServerUser::get()?;
        let root = tempfile::Builder::new()
            .prefix(&format!("pg-walstream-{}-standby-", primary.version))
            .tempdir_in(primary.root.parent().unwrap_or(Path::new("/tmp")))
            .map_err(TestkitError::io(
                "creating a standby directory in",
                &primary.root,
            ))?
            .keep();
        let reaper = Reaper::spawn(&root)?;
        let mut standby = TestServer {
            version: primary.version,
            port: 0,
            root,
            bindir: primary.bindir.clone(),
            reaper: Some(reaper),
        };
        standby.create_layout(user)?;

        let slot = unique_name("standby");
        let admin = primary.admin_conninfo("postgres");
        let data = standby.data_dir();
        let pg_basebackup = primary.bindir.join("pg_basebackup");
        on_own_runtime(|runtime| {
            runtime.block_on(async {
                let client = connect(&admin).await?;
                client
                    .execute(
                        "SELECT pg_create_physical_replication_slot($1, true)",
                        &[&slot],
                    )
                    .await?;
                Ok(())
            })
        })?;
        if pg_basebackup.is_file() {
            let mut command = user.command(&pg_basebackup);
            command.arg("-D").arg(&data).args([
                "-d",
                &admin,
                "-X",
                "none",
                "-c",
                "fast",
                "--no-sync",
            ]);
            run(&mut command)?;
        } else {
            copy_under_backup(primary.version, &admin, &primary.data_dir(), &data, user)?;
        }

        let certs = standby.create_certs(user)?;
        let primary_conninfo = format!(
            "host={} port={} user={ADMIN_USER} application_name={slot}",
            quote(&primary.socket_dir().to_string_lossy()),
            primary.port
        );
        let conf = format!(
            "\n# pg-walstream-testkit standby\n\
             {}\
             primary_conninfo = {}\n\
             primary_slot_name = {}\n\
             hot_standby = on\n\
             wal_receiver_status_interval = '1s'\n",
            standby.paths_conf(&certs),
            conf_quote(&primary_conninfo),
            conf_quote(&slot),
        );
        append(&data.join("postgresql.conf"), &conf)?;
        let signal = data.join("standby.signal");
        std::fs::write(&signal, "").map_err(TestkitError::io("writing", &signal))?;
        user.give(&signal)?;
        standby.start_on_free_port(None)?;
        Ok(standby)
    }

    /// The name of the physical slot this standby streams from on its primary (read from its
    /// configuration); `None` for a server that is not a testkit standby.
    pub fn primary_slot_name(&self) -> Option<String> {
        let conf = std::fs::read_to_string(self.data_dir().join("postgresql.conf")).ok()?;
        conf.lines().rev().find_map(|line| {
            let value = line.strip_prefix("primary_slot_name = ")?;
            Some(value.trim().trim_matches('\'').to_owned())
        })
    }

    /// Promotes a standby (`pg_ctl promote -w`): when this returns it has left recovery and
    /// writes on a new timeline.
    ///
    /// # Errors
    /// When `pg_ctl promote` fails, or for a shared server.
    pub fn promote(&self) -> Result<(), TestkitError> {
        self.require_owned("promote")?;
        self.pg_ctl(&["promote", "-w", "-t", "60"]).map(drop)
    }

    /// Waits until this standby has replayed WAL up to `lsn` (text form, e.g. from
    /// `pg_current_wal_insert_lsn()` on the primary).
    ///
    /// # Panics
    /// If it has not after 60 s, or the server cannot be queried (this is a test helper).
    pub async fn wait_replayed(&self, lsn: &str) {
        let admin = self.admin("postgres").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let row = admin
                .query_one(
                    "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                    &[&lsn],
                )
                .await
                .unwrap_or_else(|error| panic!("PostgreSQL {}: replay LSN: {error}", self.version));
            if row.get::<_, bool>(0) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "PostgreSQL {}: standby did not replay {lsn} within 60 s",
                self.version
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Copies the data directory of a running server under a non-exclusive backup and writes the
/// returned `backup_label` into the copy.
fn copy_under_backup(
    version: u32,
    admin: &str,
    from: &Path,
    to: &Path,
    user: &ServerUser,
) -> Result<(), TestkitError> {
    let (start, stop) = if version >= 15 {
        (
            "SELECT pg_backup_start('pg-walstream-testkit', true)::text",
            "SELECT labelfile FROM pg_backup_stop(true)",
        )
    } else {
        (
            "SELECT pg_start_backup('pg-walstream-testkit', true, false)::text",
            "SELECT labelfile FROM pg_stop_backup(false, true)",
        )
    };
    let label = on_own_runtime(|runtime| {
        runtime.block_on(async {
            // One session holds the backup open from start to stop.
            let client = connect(admin).await?;
            client.query_one(start, &[]).await?;
            copy_tree(from, to, user, true)?;
            let row = client.query_one(stop, &[]).await?;
            Ok(row.get::<_, String>(0))
        })
    })?;
    let path = to.join("backup_label");
    std::fs::write(&path, label).map_err(TestkitError::io("writing", &path))?;
    user.give(&path)
}

/// Copies `from` into the existing directory `to`, giving everything to the server user.
/// Files that vanish while copying (the server is running) are skipped.
fn copy_tree(from: &Path, to: &Path, user: &ServerUser, top: bool) -> Result<(), TestkitError> {
    let entries = std::fs::read_dir(from).map_err(TestkitError::io("reading", from))?;
    for entry in entries {
        let entry = entry.map_err(TestkitError::io("reading", from))?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if top && SKIPPED_FILES.contains(&name_text.as_ref()) {
            continue;
        }
        let source = entry.path();
        let target: PathBuf = to.join(&name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            std::fs::create_dir(&target).map_err(TestkitError::io("creating", &target))?;
            chmod(&target, 0o700)?;
            user.give(&target)?;
            if top && EMPTIED_DIRS.contains(&name_text.as_ref()) {
                if name_text == "pg_wal" {
                    let status = target.join("archive_status");
                    std::fs::create_dir(&status).map_err(TestkitError::io("creating", &status))?;
                    user.give(&status)?;
                }
                continue;
            }
            copy_tree(&source, &target, user, false)?;
        } else if kind.is_file() {
            match std::fs::copy(&source, &target) {
                Ok(_) => user.give(&target)?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(TestkitError::io("copying", &source)(error)),
            }
        }
    }
    Ok(())
}

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, TestkitError> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs `work` on a current-thread runtime in a thread of its own (the caller may already be
/// inside a tokio runtime).
pub(crate) fn on_own_runtime<R: Send>(
    work: impl FnOnce(&tokio::runtime::Runtime) -> Result<R, TestkitError> + Send,
) -> Result<R, TestkitError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(TestkitError::io(
                        "starting a tokio runtime for",
                        "setup SQL",
                    ))?;
                work(&runtime)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
