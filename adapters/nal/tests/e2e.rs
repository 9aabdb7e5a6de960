//! End-to-end tests: reauth-nal over `std-embedded-nal` (non-blocking std sockets) against the
//! real loopback mock issuer, driven by a single-threaded poll loop that is bounded in steps
//! (1e6 polls) and wall time (10 s), sleeping 1 ms whenever a round brought no event.
//!
//! The suite (`suite/e2e.rs`) runs once per stack personality (`common::personality`),
//! each under its profile of `reauth_nal::stack`: std-embedded-nal as is, smoltcp-nal's
//! `Ok(0)` = "no data yet" and `Finished` error, w5500's `NotConnected` that loses unread bytes
//! after a close, and an AT-command modem that blocks and never reports the end of a stream.

mod common;

macro_rules! suite {
    ($($personality:ident: $stack:ty),* $(,)?) => {$(
        mod $personality {
            type Stack = $stack;
            include!("suite/e2e.rs");
        }
    )*};
}

suite! {
    std_nal: std_embedded_nal::Stack,
    smoltcp_nal: crate::common::Smoltcp,
    w5500: crate::common::W5500,
    at_modem: crate::common::AtModem,
}
