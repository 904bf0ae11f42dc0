//! Replication commands for PostgreSQL 14–18 over any [`Transport`](pg_walstream_transport::Transport).
//!
//! - [`identify_system`], [`show`], [`timeline_history`];
//! - [`CreateSlot`] (`CREATE_REPLICATION_SLOT` in the PG14 keyword syntax or the PG15+ option
//!   list, chosen from the connected server's version), [`read_replication_slot`] (15+),
//!   [`AlterSlot`] (17+; `two_phase` 18+), [`drop_replication_slot`];
//! - slot health from `pg_replication_slots` ([`slot_health`], [`list_slots`]);
//! - publications ([`Publication`], [`alter_publication_tables`], [`drop_publication`]).
//!
//! Options the connected server cannot do fail with [`SlotError::Unsupported`] *before*
//! anything is sent. Server errors that callers branch on (already exists, does not exist, in
//! use, insufficient privilege) are variants of [`SlotError`] decided by SQLSTATE, so
//! `create if not exists` and `drop if exists` are race-free. Every identifier is validated
//! ([`SlotName`]) or quoted.

mod create;
mod error;
mod health;
mod identify;
mod manage;
mod name;
mod publication;
mod result;
mod version;

pub use create::{CreateSlot, CreatedSlot, SnapshotAction};
pub use error::SlotError;
pub use health::{SlotHealth, WalStatus, list_slots, slot_health};
pub use identify::{
    SystemIdentity, TimelineHistory, TimelineHistoryEntry, identify_system, parse_timeline_history,
    show, timeline_history,
};
pub use manage::{
    AlterSlot, SlotPosition, SlotType, drop_replication_slot, drop_replication_slot_if_exists,
    read_replication_slot,
};
pub use name::{
    MAX_NAME_LEN, SlotName, quote_identifier, quote_literal, quote_replication_identifier,
};
pub use publication::{
    AlterTables, Operation, Publication, PublicationTarget, PublishedTable,
    alter_publication_tables, drop_publication,
};
pub use version::ServerVersion;
