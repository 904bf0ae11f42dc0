//! Slot health from `pg_replication_slots`, so a consumer can tell a lost or invalidated slot
//! before it starts streaming. Works over any connection that runs SQL (a normal one or
//! `replication=database`); columns that the server's version lacks are `None`.

use pg_walstream_codec::Lsn;
use pg_walstream_transport::Transport;

use crate::manage::SlotType;
use crate::name::SlotName;
use crate::result::{RowReader, one_result_set};
use crate::{ServerVersion, SlotError};

/// How much WAL a slot's `restart_lsn` still has (`pg_replication_slots.wal_status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WalStatus {
    /// Within `max_wal_size`.
    Reserved,
    /// Beyond `max_wal_size` but kept (by `wal_keep_size` or the slot limit).
    Extended,
    /// No longer reserved; will be lost at the next checkpoint.
    Unreserved,
    /// The WAL is gone: the slot is unusable.
    Lost,
    /// A value this library does not know.
    Other(String),
}

/// One row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHealth {
    /// Slot name.
    pub slot_name: String,
    /// Output plugin (logical slots).
    pub plugin: Option<String>,
    /// Physical or logical.
    pub slot_type: SlotType,
    /// Database of a logical slot.
    pub database: Option<String>,
    /// Whether the slot is temporary.
    pub temporary: bool,
    /// Whether a connection is using it now.
    pub active: bool,
    /// The walsender using it.
    pub active_pid: Option<u32>,
    /// Oldest WAL position the slot needs.
    pub restart_lsn: Option<Lsn>,
    /// Position up to which the consumer confirmed (logical slots).
    pub confirmed_flush_lsn: Option<Lsn>,
    /// WAL availability of `restart_lsn`.
    pub wal_status: Option<WalStatus>,
    /// Bytes that can still be written before the slot loses WAL (`None` when unlimited).
    pub safe_wal_size: Option<i64>,
    /// Whether the slot decodes prepared transactions at PREPARE.
    pub two_phase: Option<bool>,
    /// Whether the slot was invalidated by a recovery conflict (PostgreSQL 16+).
    pub conflicting: Option<bool>,
    /// Why the slot was invalidated (PostgreSQL 17+), e.g. `wal_removed`.
    pub invalidation_reason: Option<String>,
    /// Whether the slot is synchronised to standbys (PostgreSQL 17+).
    pub failover: Option<bool>,
    /// Whether the slot was synchronised from a primary (PostgreSQL 17+).
    pub synced: Option<bool>,
}

impl SlotHealth {
    /// Whether streaming from this slot can work: its WAL is not lost and it is not
    /// invalidated or conflicting.
    pub fn is_usable(&self) -> bool {
        self.wal_status != Some(WalStatus::Lost)
            && self.invalidation_reason.is_none()
            && self.conflicting != Some(true)
    }
}

fn select_for(version: ServerVersion) -> String {
    let mut columns = String::from(
        "slot_name, plugin, slot_type, database, temporary, active, active_pid, restart_lsn, \
         confirmed_flush_lsn, wal_status, safe_wal_size, two_phase",
    );
    if version.major >= 16 {
        columns.push_str(", conflicting");
    }
    if version.major >= 17 {
        columns.push_str(", invalidation_reason, failover, synced");
    }
    format!("SELECT {columns} FROM pg_catalog.pg_replication_slots")
}

/// The health of slot `name`, `None` when it does not exist.
///
/// # Errors
/// Server and connection errors; [`SlotError::BadResult`] for unexpected values.
pub async fn slot_health(
    connection: &mut impl Transport,
    name: &SlotName,
) -> Result<Option<SlotHealth>, SlotError> {
    let version = ServerVersion::of(connection)?;
    // Slot names are validated to [a-z0-9_], so the literal needs no escaping.
    let sql = format!(
        "{} WHERE slot_name = '{}'",
        select_for(version),
        name.as_str()
    );
    Ok(query(connection, &sql).await?.into_iter().next())
}

/// The health of every slot of the server, ordered by name.
///
/// # Errors
/// Server and connection errors; [`SlotError::BadResult`] for unexpected values.
pub async fn list_slots(connection: &mut impl Transport) -> Result<Vec<SlotHealth>, SlotError> {
    let version = ServerVersion::of(connection)?;
    query(
        connection,
        &format!("{} ORDER BY slot_name", select_for(version)),
    )
    .await
}

async fn query(connection: &mut impl Transport, sql: &str) -> Result<Vec<SlotHealth>, SlotError> {
    const COMMAND: &str = "pg_replication_slots";
    let set = one_result_set(connection, COMMAND, sql).await?;
    (0..set.rows().len())
        .map(|row| {
            let row = RowReader {
                set: &set,
                row,
                command: COMMAND,
            };
            Ok(SlotHealth {
                slot_name: row.required("slot_name")?.to_owned(),
                plugin: row.text("plugin")?.map(str::to_owned),
                slot_type: SlotType::parse(row.required("slot_type")?, COMMAND)?,
                database: row.text("database")?.map(str::to_owned),
                temporary: row.boolean("temporary")?.unwrap_or(false),
                active: row.boolean("active")?.unwrap_or(false),
                active_pid: row.parsed("active_pid")?,
                restart_lsn: row.parsed("restart_lsn")?,
                confirmed_flush_lsn: row.parsed("confirmed_flush_lsn")?,
                wal_status: row.text("wal_status")?.map(parse_wal_status),
                safe_wal_size: row.parsed("safe_wal_size")?,
                two_phase: row.boolean("two_phase")?,
                conflicting: row.boolean("conflicting")?,
                invalidation_reason: row.optional_text("invalidation_reason")?.map(str::to_owned),
                failover: row.boolean("failover")?,
                synced: row.boolean("synced")?,
            })
        })
        .collect()
}

fn parse_wal_status(text: &str) -> WalStatus {
    match text {
        "reserved" => WalStatus::Reserved,
        "extended" => WalStatus::Extended,
        "unreserved" => WalStatus::Unreserved,
        "lost" => WalStatus::Lost,
        other => WalStatus::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_only_columns_the_version_has() {
        let v14 = select_for(ServerVersion::from_num(140_023));
        assert!(
            v14.contains("wal_status") && !v14.contains("conflicting") && !v14.contains("failover")
        );
        let v16 = select_for(ServerVersion::from_num(160_014));
        assert!(v16.contains("conflicting") && !v16.contains("invalidation_reason"));
        let v17 = select_for(ServerVersion::from_num(170_010));
        assert!(v17.contains("invalidation_reason") && v17.contains("synced"));
    }

    #[test]
    fn lost_or_invalidated_slots_are_unusable() {
        let mut health = SlotHealth {
            slot_name: "s".into(),
            plugin: None,
            slot_type: SlotType::Logical,
            database: None,
            temporary: false,
            active: false,
            active_pid: None,
            restart_lsn: None,
            confirmed_flush_lsn: None,
            wal_status: Some(WalStatus::Reserved),
            safe_wal_size: None,
            two_phase: None,
            conflicting: None,
            invalidation_reason: None,
            failover: None,
            synced: None,
        };
        assert!(health.is_usable());
        health.wal_status = Some(WalStatus::Lost);
        assert!(!health.is_usable());
        health.wal_status = Some(WalStatus::Reserved);
        health.invalidation_reason = Some("wal_removed".into());
        assert!(!health.is_usable());
        assert_eq!(parse_wal_status("lost"), WalStatus::Lost);
        assert_eq!(parse_wal_status("new"), WalStatus::Other("new".into()));
    }
}
