//! Any bytes, delivered in pieces of any size into a buffer of any size, into reauth-nal's HTTP
//! response reader; the body is checked against the wire (see `reauth_testkit::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reauth_testkit::fuzz::http_response(data));
