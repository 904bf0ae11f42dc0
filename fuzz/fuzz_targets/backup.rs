//! Arbitrary bytes as BASE_BACKUP CopyData payloads (n, d, p, m): no panic; what decodes re-encodes identically.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pg_walstream_codec::fuzzing::backup(data));
