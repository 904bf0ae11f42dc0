//! Arbitrary bytes as pglz-compressed data: no panic, no out-of-bounds access.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pg_walstream_codec::fuzzing::pglz(data));
