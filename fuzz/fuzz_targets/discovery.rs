//! Any bytes as an issuer URL and its server metadata document, through reauth-ureq's discovery
//! checks (see `ureq_bodies::discovery`).
#![no_main]

// Each target uses one of the two bodies.
#[allow(dead_code)]
#[path = "../ureq_bodies.rs"]
mod ureq_bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ureq_bodies::discovery(data));
