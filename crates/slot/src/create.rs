//! `CREATE_REPLICATION_SLOT` in the syntax the connected server speaks: the PG14 keyword form
//! or the PG15+ option list.

use core::fmt::Write as _;

use pg_walstream_codec::Lsn;
use pg_walstream_transport::Transport;

use crate::name::{SlotName, quote_replication_identifier};
use crate::result::{RowReader, one_result_set};
use crate::{ServerVersion, SlotError};

/// What happens to the snapshot a new logical slot creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotAction {
    /// Export it; its name is valid for `SET TRANSACTION SNAPSHOT` until the connection runs
    /// its next command (e.g. `START_REPLICATION`).
    Export,
    /// Use it in the current transaction of this connection (which must have begun with
    /// `BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ`).
    Use,
    /// Neither export nor use it.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SlotKind {
    Logical { plugin: String },
    Physical,
}

/// A `CREATE_REPLICATION_SLOT` command.
///
/// ```
/// use pg_walstream_slot::{CreateSlot, ServerVersion, SlotName, SnapshotAction};
/// let create = CreateSlot::logical(SlotName::new("cdc").unwrap())
///     .two_phase()
///     .snapshot(SnapshotAction::Export);
/// assert_eq!(
///     create.command(ServerVersion::from_num(170_010)).unwrap(),
///     r#"CREATE_REPLICATION_SLOT "cdc" LOGICAL "pgoutput" (TWO_PHASE, SNAPSHOT 'export')"#
/// );
/// let error = create.command(ServerVersion::from_num(140_023)).unwrap_err();
/// assert_eq!(error.to_string(), "two-phase slots needs PostgreSQL 15; server is 14.23");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSlot {
    name: SlotName,
    kind: SlotKind,
    temporary: bool,
    two_phase: bool,
    reserve_wal: bool,
    failover: bool,
    snapshot: Option<SnapshotAction>,
}

/// What the server reports about a slot it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    /// The slot's name.
    pub slot_name: String,
    /// The LSN from which the slot's changes start (for physical slots without reserved WAL
    /// the server reports none).
    pub consistent_point: Option<Lsn>,
    /// The exported snapshot's name ([`SnapshotAction::Export`] only).
    pub snapshot_name: Option<String>,
    /// The output plugin (logical slots).
    pub output_plugin: Option<String>,
}

impl CreateSlot {
    /// A logical slot using the `pgoutput` plugin.
    pub fn logical(name: SlotName) -> Self {
        Self::new(
            name,
            SlotKind::Logical {
                plugin: "pgoutput".to_owned(),
            },
        )
    }

    /// A physical slot.
    pub fn physical(name: SlotName) -> Self {
        Self::new(name, SlotKind::Physical)
    }

    fn new(name: SlotName, kind: SlotKind) -> Self {
        CreateSlot {
            name,
            kind,
            temporary: false,
            two_phase: false,
            reserve_wal: false,
            failover: false,
            snapshot: None,
        }
    }

    /// Uses output plugin `plugin` instead of `pgoutput` (logical slots; ignored for physical).
    #[must_use]
    pub fn plugin(mut self, plugin: &str) -> Self {
        if let SlotKind::Logical { plugin: current } = &mut self.kind {
            plugin.clone_into(current);
        }
        self
    }

    /// A temporary slot: dropped when the connection ends or on error.
    #[must_use]
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Decode prepared transactions at PREPARE time (logical, PostgreSQL 15+).
    #[must_use]
    pub fn two_phase(mut self) -> Self {
        self.two_phase = true;
        self
    }

    /// Reserve WAL immediately (physical slots).
    #[must_use]
    pub fn reserve_wal(mut self) -> Self {
        self.reserve_wal = true;
        self
    }

    /// Synchronise the slot to standbys for failover (logical, PostgreSQL 17+).
    #[must_use]
    pub fn failover(mut self) -> Self {
        self.failover = true;
        self
    }

    /// What to do with the slot's initial snapshot (logical slots).
    #[must_use]
    pub fn snapshot(mut self, action: SnapshotAction) -> Self {
        self.snapshot = Some(action);
        self
    }

    /// The slot's name.
    pub fn name(&self) -> &SlotName {
        &self.name
    }

    /// The command text for a server of version `version`.
    ///
    /// # Errors
    /// [`SlotError::Unsupported`] for an option the version lacks; [`SlotError::InvalidOptions`]
    /// for options that do not apply to the slot kind; [`SlotError::InvalidName`] for a plugin
    /// name that cannot be quoted.
    pub fn command(&self, version: ServerVersion) -> Result<String, SlotError> {
        self.check(version)?;
        let mut command = format!("CREATE_REPLICATION_SLOT {}", self.name.quoted());
        if self.temporary {
            command.push_str(" TEMPORARY");
        }
        match &self.kind {
            SlotKind::Physical => command.push_str(" PHYSICAL"),
            SlotKind::Logical { plugin } => {
                let _ = write!(
                    command,
                    " LOGICAL {}",
                    quote_replication_identifier("plugin", plugin)?
                );
            }
        }
        if version.major < 15 {
            if self.reserve_wal {
                command.push_str(" RESERVE_WAL");
            }
            match self.snapshot {
                Some(SnapshotAction::Export) => command.push_str(" EXPORT_SNAPSHOT"),
                Some(SnapshotAction::Use) => command.push_str(" USE_SNAPSHOT"),
                Some(SnapshotAction::Nothing) => command.push_str(" NOEXPORT_SNAPSHOT"),
                None => {}
            }
            return Ok(command);
        }
        let mut options: Vec<&str> = Vec::new();
        if self.two_phase {
            options.push("TWO_PHASE");
        }
        if self.reserve_wal {
            options.push("RESERVE_WAL");
        }
        match self.snapshot {
            Some(SnapshotAction::Export) => options.push("SNAPSHOT 'export'"),
            Some(SnapshotAction::Use) => options.push("SNAPSHOT 'use'"),
            Some(SnapshotAction::Nothing) => options.push("SNAPSHOT 'nothing'"),
            None => {}
        }
        if self.failover {
            options.push("FAILOVER");
        }
        if !options.is_empty() {
            let _ = write!(command, " ({})", options.join(", "));
        }
        Ok(command)
    }

    fn check(&self, version: ServerVersion) -> Result<(), SlotError> {
        match self.kind {
            SlotKind::Physical => {
                if self.two_phase {
                    return Err(SlotError::InvalidOptions(
                        "two_phase applies to logical slots only",
                    ));
                }
                if self.snapshot.is_some() {
                    return Err(SlotError::InvalidOptions(
                        "snapshot actions apply to logical slots only",
                    ));
                }
                if self.failover {
                    return Err(SlotError::InvalidOptions(
                        "failover applies to logical slots only",
                    ));
                }
            }
            SlotKind::Logical { .. } => {
                if self.reserve_wal {
                    return Err(SlotError::InvalidOptions(
                        "reserve_wal applies to physical slots only",
                    ));
                }
                if self.failover && self.temporary {
                    return Err(SlotError::InvalidOptions(
                        "failover slots cannot be temporary",
                    ));
                }
            }
        }
        if self.two_phase {
            version.require("two-phase slots", 15)?;
        }
        if self.failover {
            version.require("failover slots", 17)?;
        }
        Ok(())
    }

    /// Creates the slot.
    ///
    /// # Errors
    /// Preflight errors (see [`command`](Self::command)) before anything is sent;
    /// [`SlotError::AlreadyExists`] when a slot of that name exists; other server and
    /// connection errors.
    pub async fn execute(&self, connection: &mut impl Transport) -> Result<CreatedSlot, SlotError> {
        const COMMAND: &str = "CREATE_REPLICATION_SLOT";
        let command = self.command(ServerVersion::of(connection)?)?;
        let set = one_result_set(connection, COMMAND, &command).await?;
        let row = RowReader::single(&set, COMMAND)?;
        Ok(CreatedSlot {
            slot_name: row.required("slot_name")?.to_owned(),
            consistent_point: row.parsed("consistent_point")?,
            snapshot_name: row.text("snapshot_name")?.map(str::to_owned),
            output_plugin: row.text("output_plugin")?.map(str::to_owned),
        })
    }

    /// Creates the slot unless one of that name exists; `Ok(None)` when it did. Decided by
    /// SQLSTATE 42710 (duplicate object), so there is no check-then-create race.
    ///
    /// # Errors
    /// As [`execute`](Self::execute), except an existing slot.
    pub async fn execute_if_not_exists(
        &self,
        connection: &mut impl Transport,
    ) -> Result<Option<CreatedSlot>, SlotError> {
        match self.execute(connection).await {
            Ok(created) => Ok(Some(created)),
            Err(SlotError::AlreadyExists(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> SlotName {
        SlotName::new("s").unwrap()
    }

    const V14: ServerVersion = ServerVersion {
        major: 14,
        minor: 23,
    };
    const V15: ServerVersion = ServerVersion {
        major: 15,
        minor: 18,
    };
    const V17: ServerVersion = ServerVersion {
        major: 17,
        minor: 10,
    };

    #[test]
    fn pg14_uses_the_keyword_syntax() {
        let logical = CreateSlot::logical(name())
            .temporary()
            .snapshot(SnapshotAction::Nothing);
        assert_eq!(
            logical.command(V14).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s" TEMPORARY LOGICAL "pgoutput" NOEXPORT_SNAPSHOT"#
        );
        let physical = CreateSlot::physical(name()).reserve_wal();
        assert_eq!(
            physical.command(V14).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s" PHYSICAL RESERVE_WAL"#
        );
        let export = CreateSlot::logical(name()).snapshot(SnapshotAction::Export);
        assert!(export.command(V14).unwrap().ends_with(" EXPORT_SNAPSHOT"));
        let using = CreateSlot::logical(name()).snapshot(SnapshotAction::Use);
        assert!(using.command(V14).unwrap().ends_with(" USE_SNAPSHOT"));
    }

    #[test]
    fn pg15_and_later_use_the_option_list() {
        let physical = CreateSlot::physical(name()).reserve_wal();
        assert_eq!(
            physical.command(V15).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s" PHYSICAL (RESERVE_WAL)"#
        );
        let plain = CreateSlot::logical(name());
        assert_eq!(
            plain.command(V15).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s" LOGICAL "pgoutput""#
        );
        let all = CreateSlot::logical(name())
            .two_phase()
            .failover()
            .snapshot(SnapshotAction::Use);
        assert_eq!(
            all.command(V17).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s" LOGICAL "pgoutput" (TWO_PHASE, SNAPSHOT 'use', FAILOVER)"#
        );
    }

    #[test]
    fn unsupported_and_contradictory_options_fail_before_sending() {
        assert!(matches!(
            CreateSlot::logical(name()).two_phase().command(V14),
            Err(SlotError::Unsupported { needs: 15, .. })
        ));
        assert!(matches!(
            CreateSlot::logical(name()).failover().command(V15),
            Err(SlotError::Unsupported { needs: 17, .. })
        ));
        assert!(matches!(
            CreateSlot::physical(name()).two_phase().command(V17),
            Err(SlotError::InvalidOptions(_))
        ));
        assert!(matches!(
            CreateSlot::physical(name())
                .snapshot(SnapshotAction::Export)
                .command(V17),
            Err(SlotError::InvalidOptions(_))
        ));
        assert!(matches!(
            CreateSlot::logical(name()).reserve_wal().command(V17),
            Err(SlotError::InvalidOptions(_))
        ));
        assert!(matches!(
            CreateSlot::logical(name())
                .failover()
                .temporary()
                .command(V17),
            Err(SlotError::InvalidOptions(_))
        ));
        assert!(matches!(
            CreateSlot::logical(name()).plugin("a\0b").command(V17),
            Err(SlotError::InvalidName { .. })
        ));
    }

    #[test]
    fn plugin_names_are_quoted() {
        let odd = CreateSlot::logical(name()).plugin("my plugin");
        assert_eq!(
            odd.command(V17).unwrap(),
            r#"CREATE_REPLICATION_SLOT "s" LOGICAL "my plugin""#
        );
        let hostile = CreateSlot::logical(name()).plugin("x\" PHYSICAL");
        assert!(matches!(
            hostile.command(V17),
            Err(SlotError::InvalidName { .. })
        ));
    }
}
