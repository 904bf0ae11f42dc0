//! Server-side faults: terminating a slot's walsender and restarting the server in place.

use std::time::Duration;

use crate::{TestServer, TestkitError};

/// How long `pg_terminate_backend` waits for the walsender to exit, in milliseconds.
const TERMINATE_WAIT_MS: i64 = 10_000;

impl TestServer {
    /// Restarts the server (fast shutdown, then start) on the same port with the same data
    /// directory: every connection is closed with 57P01, a client sees the server refuse
    /// connections (57P03 or connection refused) until it is back. Only for owned servers.
    ///
    /// A logical walsender finishes a fast shutdown only once its client has confirmed (flush)
    /// everything sent, or after `wal_sender_timeout`: a consumer that does not acknowledge
    /// makes this wait that long (and fail after 60 s). [`crash_restart`](Self::crash_restart)
    /// does not wait.
    ///
    /// Blocks the calling thread while `pg_ctl` runs (about a second); in a single-threaded
    /// runtime other tasks (such as a [`FaultProxy`](crate::FaultProxy)) pause meanwhile.
    ///
    /// # Errors
    /// When `pg_ctl` fails, or for a shared server.
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.stop_server()?;
        self.start_again()
    }

    /// Restarts the server after an immediate shutdown (as after a crash: every process is
    /// killed at once, the start runs crash recovery), on the same port and data directory.
    /// Only for owned servers.
    ///
    /// # Errors
    /// When `pg_ctl` fails, or for a shared server.
    pub fn crash_restart(&self) -> Result<(), TestkitError> {
        self.stop_server_with("immediate")?;
        self.start_again()
    }

    /// Stops the server with an immediate shutdown (as a crash: no shutdown checkpoint, no
    /// waiting for walsenders' clients), leaving it stopped until
    /// [`start_again`](Self::start_again). Only for owned servers.
    ///
    /// # Errors
    /// When `pg_ctl` fails, or for a shared server.
    pub fn crash_stop(&self) -> Result<(), TestkitError> {
        self.stop_server_with("immediate")
    }

    /// The process id of the walsender holding `slot` (`pg_replication_slots.active_pid`), if
    /// one does.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn slot_active_pid(&self, slot: &str) -> Result<Option<i32>, TestkitError> {
        let admin = self.admin("postgres").await;
        let row = admin
            .query_opt(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?;
        Ok(row.and_then(|row| row.get::<_, Option<i32>>(0)))
    }

    /// Waits up to `timeout` for a walsender to hold `slot`, polling every 20 ms, and returns
    /// its process id (`None` when none did in time).
    ///
    /// # Errors
    /// When a query fails.
    pub async fn wait_for_walsender(
        &self,
        slot: &str,
        timeout: Duration,
    ) -> Result<Option<i32>, TestkitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pid) = self.slot_active_pid(slot).await? {
                return Ok(Some(pid));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Terminates the walsender holding `slot` with `pg_terminate_backend` (its client gets
    /// FATAL 57P01) and waits until that process has exited, so the slot is free again when
    /// this returns. Returns the terminated process id, `None` when no walsender held the
    /// slot. Works on shared servers too (it only touches that slot's connection).
    ///
    /// # Errors
    /// When a query fails.
    pub async fn terminate_walsender(&self, slot: &str) -> Result<Option<i32>, TestkitError> {
        let Some(pid) = self.slot_active_pid(slot).await? else {
            return Ok(None);
        };
        let admin = self.admin("postgres").await;
        // The two-argument form (PostgreSQL 14+) waits for the process to exit.
        admin
            .execute(
                "SELECT pg_terminate_backend($1, $2)",
                &[&pid, &TERMINATE_WAIT_MS],
            )
            .await?;
        Ok(Some(pid))
    }
}
