//! Captured pgoutput streams read by `decode` (and the raw format `recv` writes).

pub(crate) mod psql;
pub(crate) mod raw;
