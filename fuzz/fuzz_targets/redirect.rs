//! Any bytes as a request head read by reauth-ureq's authorization code loopback listener, with
//! the verdict checked against an independent decoder (see `ureq_bodies::redirect`).
#![no_main]

// Each target uses one of the two bodies.
#[allow(dead_code)]
#[path = "../ureq_bodies.rs"]
mod ureq_bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ureq_bodies::redirect(data));
