//! `pg-walstream slot create|drop|list|show`.

use clap::{Args, Subcommand, ValueEnum};
use pg_walstream_slot::{
    CreateSlot, SlotError, SlotHealth, SlotName, SlotType, WalStatus, drop_replication_slot,
    drop_replication_slot_if_exists, list_slots, slot_health,
};
use pg_walstream_transport::Transport as _;
use serde_json::{Map, Value, json};

use crate::connect::ConnectionArgs;
use crate::error::{CliError, chain};

/// Output of `slot list` / `slot show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SlotFormat {
    /// Aligned `key: value` lines.
    Text,
    /// One JSON object per slot (JSON lines).
    Json,
}

/// The slot subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SlotCommand {
    /// Create a logical replication slot (pgoutput) and print its consistent point.
    Create(CreateArgs),
    /// Drop a replication slot.
    Drop(DropArgs),
    /// List every replication slot with its health (pg_replication_slots).
    List(ListArgs),
    /// Show one slot's health; exits 1 when it does not exist.
    Show(ShowArgs),
}

/// Arguments of `slot create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Slot name (a-z, 0-9, _; at most 63 characters).
    #[arg(value_name = "SLOT")]
    name: String,
    /// Decode prepared transactions at PREPARE TRANSACTION (PostgreSQL 15+).
    #[arg(long)]
    two_phase: bool,
    /// Succeed without doing anything when the slot exists.
    #[arg(long)]
    if_not_exists: bool,
}

/// Arguments of `slot drop`.
#[derive(Debug, Args)]
pub(crate) struct DropArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Slot name.
    #[arg(value_name = "SLOT")]
    name: String,
    /// Succeed when the slot does not exist.
    #[arg(long)]
    if_exists: bool,
    /// Wait until a connection using the slot releases it (instead of failing).
    #[arg(long)]
    wait: bool,
}

/// Arguments of `slot list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: SlotFormat,
}

/// Arguments of `slot show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Slot name.
    #[arg(value_name = "SLOT")]
    name: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: SlotFormat,
}

fn slot_name(name: &str) -> Result<SlotName, CliError> {
    SlotName::new(name).map_err(|e| CliError::usage(chain(&e)))
}

fn opt<T: ToString>(value: Option<T>) -> Value {
    value.map_or(Value::Null, |v| Value::from(v.to_string()))
}

fn wal_status(status: Option<&WalStatus>) -> Value {
    match status {
        None => Value::Null,
        Some(WalStatus::Reserved) => Value::from("reserved"),
        Some(WalStatus::Extended) => Value::from("extended"),
        Some(WalStatus::Unreserved) => Value::from("unreserved"),
        Some(WalStatus::Lost) => Value::from("lost"),
        Some(WalStatus::Other(other)) => Value::from(other.as_str()),
        Some(other) => Value::from(format!("{other:?}").to_lowercase()),
    }
}

/// A slot's health as a JSON object (`null` for columns the server version lacks).
fn health_json(slot: &SlotHealth) -> Value {
    let slot_type = match slot.slot_type {
        SlotType::Logical => "logical",
        SlotType::Physical => "physical",
    };
    let mut map = Map::new();
    for (key, value) in [
        ("slot_name", Value::from(slot.slot_name.as_str())),
        ("slot_type", Value::from(slot_type)),
        ("plugin", opt(slot.plugin.as_deref())),
        ("database", opt(slot.database.as_deref())),
        ("temporary", Value::from(slot.temporary)),
        ("active", Value::from(slot.active)),
        (
            "active_pid",
            slot.active_pid.map_or(Value::Null, Value::from),
        ),
        ("restart_lsn", opt(slot.restart_lsn)),
        ("confirmed_flush_lsn", opt(slot.confirmed_flush_lsn)),
        ("wal_status", wal_status(slot.wal_status.as_ref())),
        (
            "safe_wal_size",
            slot.safe_wal_size.map_or(Value::Null, Value::from),
        ),
        ("two_phase", slot.two_phase.map_or(Value::Null, Value::from)),
        (
            "conflicting",
            slot.conflicting.map_or(Value::Null, Value::from),
        ),
        (
            "invalidation_reason",
            opt(slot.invalidation_reason.as_deref()),
        ),
        ("failover", slot.failover.map_or(Value::Null, Value::from)),
        ("synced", slot.synced.map_or(Value::Null, Value::from)),
        ("usable", Value::from(slot.is_usable())),
    ] {
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

fn print_health(slots: &[SlotHealth], format: SlotFormat) {
    for (index, slot) in slots.iter().enumerate() {
        let value = health_json(slot);
        match format {
            SlotFormat::Json => println!("{value}"),
            SlotFormat::Text => {
                if index > 0 {
                    println!();
                }
                if let Some(map) = value.as_object() {
                    for (key, value) in map {
                        let shown = match value {
                            Value::Null => "-".to_owned(),
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        println!("{key:<20} {shown}");
                    }
                }
            }
        }
    }
}

fn slot_failure(what: &str, name: &str, error: &SlotError) -> CliError {
    CliError::failed(format!("{what} slot {name:?}"), error)
}

/// Runs a slot subcommand.
///
/// # Errors
/// Usage errors, connection and server errors; `show` of a missing slot.
pub(crate) async fn run(command: SlotCommand) -> Result<(), CliError> {
    match command {
        SlotCommand::Create(args) => {
            let name = slot_name(&args.name)?;
            let mut connection = args.connection.connect().await?;
            let mut create = CreateSlot::logical(name.clone());
            if args.two_phase {
                create = create.two_phase();
            }
            let created = if args.if_not_exists {
                create.execute_if_not_exists(&mut connection).await
            } else {
                create.execute(&mut connection).await.map(Some)
            }
            .map_err(|e| slot_failure("creating", name.as_str(), &e))?;
            let _ = connection.close().await;
            let line = match created {
                Some(slot) => json!({
                    "slot_name": slot.slot_name,
                    "created": true,
                    "consistent_point": opt(slot.consistent_point),
                    "output_plugin": opt(slot.output_plugin.as_deref()),
                }),
                None => json!({"slot_name": name.as_str(), "created": false}),
            };
            println!("{line}");
            Ok(())
        }
        SlotCommand::Drop(args) => {
            let name = slot_name(&args.name)?;
            let mut connection = args.connection.connect().await?;
            let dropped = if args.if_exists {
                drop_replication_slot_if_exists(&mut connection, &name, args.wait).await
            } else {
                drop_replication_slot(&mut connection, &name, args.wait)
                    .await
                    .map(|()| true)
            }
            .map_err(|e| slot_failure("dropping", name.as_str(), &e))?;
            let _ = connection.close().await;
            println!(
                "{}",
                json!({"slot_name": name.as_str(), "dropped": dropped})
            );
            Ok(())
        }
        SlotCommand::List(args) => {
            let mut connection = args.connection.connect().await?;
            let slots = list_slots(&mut connection)
                .await
                .map_err(|e| CliError::failed("listing slots", &e))?;
            let _ = connection.close().await;
            print_health(&slots, args.format);
            Ok(())
        }
        SlotCommand::Show(args) => {
            let name = slot_name(&args.name)?;
            let mut connection = args.connection.connect().await?;
            let health = slot_health(&mut connection, &name)
                .await
                .map_err(|e| slot_failure("reading", name.as_str(), &e))?;
            let _ = connection.close().await;
            let Some(health) = health else {
                return Err(CliError::message(format!(
                    "replication slot {:?} does not exist",
                    name.as_str()
                )));
            };
            print_health(&[health], args.format);
            Ok(())
        }
    }
}
