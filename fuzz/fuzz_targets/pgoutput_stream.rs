//! Arbitrary length-prefixed pgoutput messages through a stateful PgOutputDecoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pg_walstream_codec::fuzzing::pgoutput_stream(data));
