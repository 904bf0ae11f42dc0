//! Logical replication streams with LSN feedback that is always right.
mod config;
mod core;
mod driver;
mod error;
mod events;
mod feedback;
mod metrics;
mod relation_cache;
mod stream;

pub use config::{
    ConfigError, CreateSlotOptions, LogicalConfig, LogicalConfigBuilder, OriginFilter, Streaming,
    max_protocol,
};
pub use core::{CoreOptions, LogicalCore, ReadTimeout};
pub use error::{Error, Result};
pub use events::{Change, Event, EventKind, OwnedTuples};
pub use feedback::Feedback;
pub use relation_cache::{RelationCache, RelationInfo};
pub use stream::{LogicalStream, PreparedStream, RawFrame, StreamInfo};
