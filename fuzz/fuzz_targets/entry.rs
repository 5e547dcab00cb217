#![no_main]

// Counts allocations so that `entry` can check decoding stays within its limit.
#[global_allocator]
static ALLOC: caje::fuzzing::CountingAllocator = caje::fuzzing::CountingAllocator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| caje::fuzzing::entry(data));
