//! Any bytes as a sequence of every core input, with every spec invariant checked after each step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reauth_testkit::fuzz::coordinator(data));
