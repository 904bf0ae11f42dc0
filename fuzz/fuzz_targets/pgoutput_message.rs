//! Arbitrary bytes as one pgoutput message (first byte: protocol version and in-stream bit).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pg_walstream_codec::fuzzing::pgoutput_message(data));
