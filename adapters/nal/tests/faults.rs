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

/// A stack that loses every answer (each `receive` says the peer closed) against the real
/// issuer, which rotates the refresh token on each presentation it reads and counts every
/// presentation of a used one.
mod lost_answers {
    use core::net::SocketAddr;
    use core::time::Duration as StdDuration;
    use std::string::ToString;
    use std::time::Instant as StdInstant;

    use reauth_core::{Duration, Instant};
    use reauth_nal::embedded_nal::{TcpClientStack, nb};
    use reauth_nal::{Client, Event, OAuth2, Request};
    use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
    use std_embedded_nal::Stack;

    use crate::common::{Flash, config, oauth};

    type TcpSocket = <Stack as TcpClientStack>::TcpSocket;
    type TcpError = <Stack as TcpClientStack>::Error;

    /// Sends for real; every answer is lost.
    #[derive(Default)]
    struct Deaf(Stack);

    impl TcpClientStack for Deaf {
        type TcpSocket = TcpSocket;
        type Error = TcpError;

        fn socket(&mut self) -> Result<TcpSocket, TcpError> {
            self.0.socket()
        }
        fn connect(&mut self, s: &mut TcpSocket, to: SocketAddr) -> nb::Result<(), TcpError> {
            self.0.connect(s, to)
        }
        fn send(&mut self, s: &mut TcpSocket, data: &[u8]) -> nb::Result<usize, TcpError> {
            self.0.send(s, data)
        }
        fn receive(&mut self, _: &mut TcpSocket, _: &mut [u8]) -> nb::Result<usize, TcpError> {
            Ok(0)
        }
        fn close(&mut self, s: TcpSocket) -> Result<(), TcpError> {
            self.0.close(s)
        }
    }

    #[test]
    fn a_stack_that_loses_every_answer_presents_one_refresh_token_at_most_max_attempts_times() {
        let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
        let host = issuer.addr().to_string();
        let config = config(&host, &issuer);
        let max = u64::from(config.coordinator.max_refresh_attempts);
        let mut client: Client<'_, Deaf, Flash, OAuth2<'static>, 2, 1024, 4096, 512, 256> =
            Client::new(config, oauth(), Flash::default());
        let tokens = issuer.login();
        // Known to expire at once: the first request starts a refresh.
        let lifetime = Some(Duration::from_millis(1));
        client.login(Instant::ZERO, &tokens.access_token, &tokens.refresh_token, lifetime).unwrap();
        issuer.reset_counters();
        let mut net = Deaf::default();
        let start = StdInstant::now();
        let deadline = start + StdDuration::from_secs(10);
        // Requests keep coming for a while, well past the backoffs of several episodes.
        let mut submitted = 0;
        while StdInstant::now() < deadline && !client.needs_login() {
            let now = Instant::from_millis(start.elapsed().as_millis() as u64 + 10);
            if client.free_slots() > 0 && client.submit(now, &Request::get("/api/x")).is_ok() {
                submitted += 1;
            }
            while let Some(event) = client.poll(&mut net, now) {
                if let Event::Response { id, .. } = event {
                    client.release(id);
                }
            }
            std::thread::sleep(StdDuration::from_millis(1));
        }
        assert!(client.needs_login(), "the client gave up on the token ({submitted} requests)");
        // The last presentation may still be on its way to the issuer: the stack "lost" its
        // answer the moment it was sent. Wait until every connection's request has been read.
        let counters = issuer.counters_when(StdDuration::from_secs(5), |c| {
            c.connections_accepted >= max && c.requests_total >= c.connections_accepted
        });
        assert_eq!(counters.refresh_calls, max, "{counters:?}");
        assert_eq!(counters.reuse_attempts, max - 1, "{counters:?}");
        assert_eq!(counters.refresh_successes, 1, "the first presentation rotated: {counters:?}");
    }
}
