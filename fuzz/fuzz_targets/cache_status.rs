#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caje::fuzzing::cache_status(data));
