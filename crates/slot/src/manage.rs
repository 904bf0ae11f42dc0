//! `READ_REPLICATION_SLOT`, `ALTER_REPLICATION_SLOT` and `DROP_REPLICATION_SLOT`.

use pg_walstream_codec::Lsn;
use pg_walstream_transport::Transport;

use crate::name::SlotName;
use crate::result::{RowReader, one_result_set};
use crate::{ServerVersion, SlotError};

/// The kind of a replication slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotType {
    /// A physical slot.
    Physical,
    /// A logical slot.
    Logical,
}

impl SlotType {
    pub(crate) fn parse(text: &str, command: &'static str) -> Result<Self, SlotError> {
        match text {
            "physical" => Ok(SlotType::Physical),
            "logical" => Ok(SlotType::Logical),
            other => Err(SlotError::bad_result(
                command,
                format!("unknown slot type {other:?}"),
            )),
        }
    }
}

/// What `READ_REPLICATION_SLOT` reports about an existing slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPosition {
    /// Physical or logical.
    pub slot_type: SlotType,
    /// The oldest WAL position the slot still needs, if WAL is reserved.
    pub restart_lsn: Option<Lsn>,
    /// The timeline of `restart_lsn`.
    pub restart_tli: Option<u32>,
}

/// Runs `READ_REPLICATION_SLOT name` (PostgreSQL 15+); `None` when no such slot exists.
///
/// The server answers this for physical slots only; for a logical slot it reports
/// `FEATURE_NOT_SUPPORTED` (use [`slot_health`](crate::slot_health) for those).
///
/// # Errors
/// [`SlotError::Unsupported`] before sending on PostgreSQL 14; server (including a logical
/// slot) and connection errors.
pub async fn read_replication_slot(
    connection: &mut impl Transport,
    name: &SlotName,
) -> Result<Option<SlotPosition>, SlotError> {
    const COMMAND: &str = "READ_REPLICATION_SLOT";
    ServerVersion::of(connection)?.require("READ_REPLICATION_SLOT", 15)?;
    let set = one_result_set(
        connection,
        COMMAND,
        &format!("READ_REPLICATION_SLOT {}", name.quoted()),
    )
    .await?;
    let row = RowReader::single(&set, COMMAND)?;
    let Some(slot_type) = row.text("slot_type")? else {
        return Ok(None);
    };
    Ok(Some(SlotPosition {
        slot_type: SlotType::parse(slot_type, COMMAND)?,
        restart_lsn: row.parsed("restart_lsn")?,
        restart_tli: row.parsed("restart_tli")?,
    }))
}

/// Changes to apply with `ALTER_REPLICATION_SLOT`; unset fields stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlterSlot {
    /// Enable or disable failover synchronisation (PostgreSQL 17+).
    pub failover: Option<bool>,
    /// Enable or disable two-phase decoding (PostgreSQL 18+).
    pub two_phase: Option<bool>,
}

impl AlterSlot {
    /// The command text for a server of version `version`.
    ///
    /// # Errors
    /// [`SlotError::Unsupported`] for options the version lacks; [`SlotError::InvalidOptions`]
    /// when nothing would change.
    pub fn command(&self, name: &SlotName, version: ServerVersion) -> Result<String, SlotError> {
        version.require("ALTER_REPLICATION_SLOT", 17)?;
        let mut options = Vec::new();
        if let Some(failover) = self.failover {
            options.push(format!("FAILOVER {failover}"));
        }
        if let Some(two_phase) = self.two_phase {
            version.require("altering two_phase", 18)?;
            options.push(format!("TWO_PHASE {two_phase}"));
        }
        if options.is_empty() {
            return Err(SlotError::InvalidOptions(
                "ALTER_REPLICATION_SLOT needs at least one option",
            ));
        }
        Ok(format!(
            "ALTER_REPLICATION_SLOT {} ({})",
            name.quoted(),
            options.join(", ")
        ))
    }

    /// Applies the changes to slot `name`.
    ///
    /// # Errors
    /// Preflight errors (see [`command`](Self::command)); [`SlotError::DoesNotExist`],
    /// [`SlotError::InUse`] and other server and connection errors.
    pub async fn execute(
        &self,
        connection: &mut impl Transport,
        name: &SlotName,
    ) -> Result<(), SlotError> {
        let command = self.command(name, ServerVersion::of(connection)?)?;
        connection.simple_query(&command).await?;
        Ok(())
    }
}

/// Runs `DROP_REPLICATION_SLOT name [WAIT]`.
///
/// Without `wait`, dropping a slot that another connection is using fails with
/// [`SlotError::InUse`]; with `wait`, the command blocks until that connection releases it.
///
/// # Errors
/// [`SlotError::DoesNotExist`], [`SlotError::InUse`], other server and connection errors.
pub async fn drop_replication_slot(
    connection: &mut impl Transport,
    name: &SlotName,
    wait: bool,
) -> Result<(), SlotError> {
    let wait = if wait { " WAIT" } else { "" };
    connection
        .simple_query(&format!("DROP_REPLICATION_SLOT {}{wait}", name.quoted()))
        .await?;
    Ok(())
}

/// Like [`drop_replication_slot`], but a missing slot is not an error: returns whether a slot
/// was dropped (decided by SQLSTATE 42704).
///
/// # Errors
/// As [`drop_replication_slot`], except a missing slot.
pub async fn drop_replication_slot_if_exists(
    connection: &mut impl Transport,
    name: &SlotName,
    wait: bool,
) -> Result<bool, SlotError> {
    match drop_replication_slot(connection, name, wait).await {
        Ok(()) => Ok(true),
        Err(SlotError::DoesNotExist(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alter_needs_17_and_two_phase_needs_18() {
        let name = SlotName::new("s").unwrap();
        let failover = AlterSlot {
            failover: Some(true),
            two_phase: None,
        };
        assert_eq!(
            failover
                .command(&name, ServerVersion::from_num(170_010))
                .unwrap(),
            r#"ALTER_REPLICATION_SLOT "s" (FAILOVER true)"#
        );
        assert!(matches!(
            failover.command(&name, ServerVersion::from_num(160_014)),
            Err(SlotError::Unsupported { needs: 17, .. })
        ));
        let both = AlterSlot {
            failover: Some(false),
            two_phase: Some(true),
        };
        assert!(matches!(
            both.command(&name, ServerVersion::from_num(170_010)),
            Err(SlotError::Unsupported { needs: 18, .. })
        ));
        assert_eq!(
            both.command(&name, ServerVersion::from_num(180_004))
                .unwrap(),
            r#"ALTER_REPLICATION_SLOT "s" (FAILOVER false, TWO_PHASE true)"#
        );
        assert!(matches!(
            AlterSlot::default().command(&name, ServerVersion::from_num(180_004)),
            Err(SlotError::InvalidOptions(_))
        ));
    }
}
