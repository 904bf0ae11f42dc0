//! Replication commands for PostgreSQL 14–18 over a replication connection.
//!
//! This crate will own the typed replication commands (`IDENTIFY_SYSTEM`, `SHOW`,
//! `TIMELINE_HISTORY`, `CREATE_REPLICATION_SLOT` in the PG14 keyword syntax and the PG15+ option
//! syntax, `READ_REPLICATION_SLOT`, `ALTER_REPLICATION_SLOT`, `DROP_REPLICATION_SLOT`) and their
//! results, working over the `Transport` abstraction of `pg-walstream-transport` so that both
//! backends get them. It is a thin placeholder until the slot issue lands: it exports nothing yet.
