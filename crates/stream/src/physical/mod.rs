//! Physical replication: raw WAL from `START_REPLICATION [SLOT s] PHYSICAL lsn TIMELINE tli`
//! on a `replication=true` connection, following timeline switches.
//!
//! [`PhysicalStream`] delivers [`PhysicalEvent`]s: [`WalData`] (zero-copy WAL bytes with their
//! start/end positions, timeline and the server's send time) and [`TimelineSwitch`] when the
//! server ends a timeline — the stream then fetches `TIMELINE_HISTORY` and restarts on the
//! next timeline at the segment start of the switch point, as `pg_receivewal` does, so no byte
//! is lost and each segment file of each timeline can be written whole. Keepalives are
//! handled inside.
//!
//! **Feedback.** The application reports written, flushed and applied positions separately
//! through [`PhysicalFeedback`]; status updates carry them (each capped at what was received)
//! every status interval, at once when the server asks, on request, and as a liveness ping
//! half-way through the read deadline. The physical slot's `restart_lsn` follows the flush
//! position. Hot standby feedback (`h`, xmin and catalog_xmin with epochs) is set on the same
//! handle and repeated on its own interval; turning it off sends invalid xmins once, which
//! releases what the server held.
//!
//! **Start.** [`PhysicalStart::Auto`] starts at the slot's `restart_lsn`
//! (`READ_REPLICATION_SLOT`, PostgreSQL 15+) or the server's current position, at a segment
//! start; an explicit start without a slot must be segment-aligned. Combine with
//! [`wal_writer::find_resume_point`](crate::wal_writer::find_resume_point) to resume from
//! files on disk.
//!
//! [`PhysicalCore`] is the sans-IO state machine, tested with fake time; the driver task moves
//! bytes between it and any [`Transport`](pg_walstream_transport::Transport).

mod config;
mod core;
mod driver;
mod events;
mod feedback;
mod metrics;
mod receive;
mod stream;

pub use config::{PhysicalConfig, PhysicalConfigBuilder, PhysicalStart, parse_wal_segment_size};
pub use core::{PhysicalCore, PhysicalOptions};
pub use events::{PhysicalEvent, TimelineSwitch, WalData};
pub use feedback::{HotStandbyXmin, PhysicalFeedback};
pub use receive::{ReceiveEnd, ReceiveError, ReceiveProgress, receive_wal};
pub use stream::{PhysicalInfo, PhysicalStream};

#[cfg(test)]
mod tests;
