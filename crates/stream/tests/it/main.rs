//! The logical stream against real servers, every version of the run.

mod alloc_free;
mod assembler;
mod assembler_large;
mod batches;
mod chaos;
mod columns;
mod crash_report;
mod events;
mod faults;
mod feedback;
mod liveness;
mod permanent;
mod physical;
mod reconnect;
mod resume;
mod slow_consumer;
mod start;
mod stop;
mod support;
