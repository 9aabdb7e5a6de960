//! The fault matrix of reauth-nal against the loopback mock issuer, over `std-embedded-nal`
//! (non-blocking std sockets) in a single-threaded poll loop: every fault of the reliability
//! issue that `tests/e2e.rs` does not already cover (503s, a hang, malformed JSON, an oversized
//! token and `invalid_grant` are there).
//!
//! Every test checks the same three things: each request gets exactly one outcome (one
//! `Response` or `Failed` event, and every slot is free again at the end); the poll loop ends
//! within a generous bound on the deadlines in play (each loop is bounded in rounds and in wall
//! time, sleeping 1 ms when a round brought nothing); and the refresh token survives unless the
//! server really refused it (a later expiry is refreshed with the token the client kept, and a
//! rebooted device restored from the persisted copy works too). Time bounds are upper limits on
//! "did not hang", never performance assertions.
//!
//! The suite (`suite/faults.rs`) runs once per stack personality (`common::personality`),
//! each under its profile of `reauth_nal::stack`: std-embedded-nal as is, smoltcp-nal's
//! `Ok(0)` = "no data yet" and `Finished` error, w5500's `NotConnected` that loses unread bytes
//! after a close, and an AT-command modem that blocks and never reports the end of a stream.

mod common;

macro_rules! suite {
    ($($personality:ident: $stack:ty),* $(,)?) => {$(
        mod $personality {
            type Stack = $stack;
            include!("suite/faults.rs");
        }
    )*};
}

suite! {
    std_nal: std_embedded_nal::Stack,
    smoltcp_nal: crate::common::Smoltcp,
    w5500: crate::common::W5500,
    at_modem: crate::common::AtModem,
}
