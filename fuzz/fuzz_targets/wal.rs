//! Arbitrary bytes as physical WAL after a valid long page header: no panic, sticky errors.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pg_walstream_codec::fuzzing::wal(data));
