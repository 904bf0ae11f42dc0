//! `BASE_BACKUP` client for PostgreSQL 14–18.
//!
//! This crate will own the base-backup command builder (legacy PG14 syntax and the PG15+ option
//! list), the archive stream (`n`/`d`/`p`/`m` CopyData messages on 15+, one raw tar CopyOut per
//! tablespace on 14), progress reporting, server-side compression, backup manifests and tar
//! extraction. It exports nothing yet.
