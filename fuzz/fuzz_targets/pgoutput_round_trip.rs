//! Messages generated from the bytes: encode, decode, compare.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pg_walstream_codec::fuzzing::pgoutput_round_trip(data));
