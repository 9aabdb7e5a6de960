//! Any bytes into the device authorization response parser and the device poller (RFC 8628).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reauth_testkit::fuzz::device(data));
