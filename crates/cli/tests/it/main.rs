//! The `pg-walstream` binary against real servers (every version of the run).

mod basebackup;
mod decode;
mod demo;
mod errors;
mod examples;
mod receivewal;
mod reconnect;
mod recv;
mod resume;
mod same_file;
mod signals;
mod spool;
mod streamed;
mod support;
mod waldump;
mod waldump_parallel;
mod waldump_timeline;
