//! Any bytes into the OAuth2 token/error response parsers and the body-code expiry rule.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reauth_testkit::fuzz::token_response(data));
