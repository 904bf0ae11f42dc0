//! Arbitrary bytes as replication CopyData payloads (w, k, r, h): no panic; what decodes re-encodes identically.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pg_walstream_codec::fuzzing::replication(data));
