//! Set-up shared by the integration tests of reauth-nal against the loopback mock issuer: a
//! token store standing in for flash, the quick-retry coordinator config, the client config
//! and OAuth2 exchange for the issuer, and a bounded poll loop.
//!
//! Each test file compiles this module on its own, and not every file uses every helper: those
//! are marked `#[allow(dead_code)]`.

use core::time::Duration as StdDuration;
use std::string::{String, ToString};
use std::time::Instant as StdInstant;

use reauth_core::{Backoff, Config, Duration, Generation, Instant};
use reauth_nal::stack::{self, SmoltcpNal};
use reauth_nal::{
    Client, ClientConfig, Endpoint, Event, OAuth2, RefreshExchange, Timeouts, TokenStore, Transport,
};
use reauth_testkit::issuer::MockIssuer;
use std_embedded_nal::Stack;

/// The stack personalities, shared with the unit tests of `src/`.
#[path = "../../src/personality.rs"]
#[allow(dead_code)] // each test file uses some of them
mod personality;

/// smoltcp-nal's reading of `receive`, over real sockets, under its profile.
#[allow(dead_code)]
pub(crate) type Smoltcp = SmoltcpNal<personality::SmoltcpLike<Stack>>;
/// w5500's reading of `receive`, over real sockets, under its profile.
#[allow(dead_code)]
pub(crate) type W5500 = stack::W5500<personality::W5500Like<Stack>>;
/// An AT-command modem's reading of `receive` and blocking calls, over real sockets, under its
/// profile.
#[allow(dead_code)]
pub(crate) type AtModem = stack::AtModem<personality::AtLike<Stack>>;

/// A stack personality as the suites need it: made fresh, with the timeouts it runs under.
pub(crate) trait Personality: Transport + Default {
    /// The timeouts of the suites' configuration for this stack.
    fn timeouts(timeouts: Timeouts) -> Timeouts {
        timeouts
    }
}

impl Personality for Stack {}
impl Personality for Smoltcp {}
impl Personality for W5500 {}

/// A stack that never reports the end of a stream only learns of a server's close from a
/// timeout: short ones keep the fault suite quick (they are still far above the loopback's
/// latency).
impl Personality for AtModem {
    fn timeouts(timeouts: Timeouts) -> Timeouts {
        Timeouts { response: Duration::from_secs(2), idle: Duration::from_secs(1), ..timeouts }
    }
}

/// [`config`] with the timeouts `N` runs under.
#[allow(dead_code)]
pub(crate) fn config_for<'a, N: Personality>(
    host: &'a str,
    issuer: &MockIssuer,
) -> ClientConfig<'a> {
    let config = config(host, issuer);
    ClientConfig { timeouts: N::timeouts(config.timeouts), ..config }
}

/// A flash page that keeps every refresh token saved to it, and fails on demand like a worn-out
/// page.
#[derive(Debug, Default)]
pub(crate) struct Flash {
    /// Every refresh token saved, oldest first.
    pub(crate) saved: Vec<String>,
    /// When set, every save fails with [`FlashError`] and keeps nothing.
    pub(crate) failing: bool,
    /// How many times the stored token was erased.
    pub(crate) cleared: u32,
}

/// The failure of a [`Flash`] save.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FlashError;

impl TokenStore for Flash {
    type Error = FlashError;

    fn save(&mut self, refresh_token: &str, _generation: Generation) -> Result<(), FlashError> {
        if self.failing {
            return Err(FlashError);
        }
        self.saved.push(refresh_token.to_string());
        Ok(())
    }

    fn clear(&mut self) -> Result<(), FlashError> {
        self.saved.clear();
        self.cleared += 1;
        Ok(())
    }
}

/// The coordinator with retries quick enough for a test (20 ms initial backoff).
pub(crate) fn quick() -> Config {
    Config {
        backoff: Backoff { initial: Duration::from_millis(20), ..Backoff::DEFAULT },
        // Four attempts per episode (the default is two): the scenarios here run three failures
        // and a success in one episode.
        max_refresh_attempts: 4,
        ..Config::DEFAULT
    }
}

/// API and token endpoint both at `issuer`, named `host`, with the [`quick`] coordinator.
#[allow(dead_code)] // not used by secrets.rs, whose API endpoint may be elsewhere
pub(crate) fn config<'a>(host: &'a str, issuer: &MockIssuer) -> ClientConfig<'a> {
    let endpoint = Endpoint { addr: issuer.addr(), host };
    ClientConfig { coordinator: quick(), ..ClientConfig::new(endpoint, endpoint) }
}

/// The OAuth2 exchange at the issuer's token path, without client credentials.
#[allow(dead_code)] // not used by secrets.rs, which sends a client secret
pub(crate) fn oauth() -> OAuth2<'static> {
    OAuth2 { path: "/oauth/token", ..OAuth2::default() }
}

/// A client over real sockets with the [`Flash`] store and the tests' buffer sizes.
#[allow(dead_code)] // not used by every test file
pub(crate) type StackClient<'a, X, const K: usize> =
    Client<'a, Stack, Flash, X, K, 1024, 4096, 512, 256>;

/// What [`drive`] hands to its observer.
#[allow(dead_code)]
pub(crate) type StackEvent = Event<<Stack as Transport>::Error, FlashError>;

/// Polls until `n` requests have an outcome (bounded: 10 s, 1e6 rounds, 1,000 events a round),
/// showing every event to `seen` before an answered slot is released; sleeps 1 ms after a
/// round that brought nothing.
#[allow(dead_code)]
pub(crate) fn drive<X: RefreshExchange, const K: usize>(
    client: &mut StackClient<'_, X, K>,
    start: StdInstant,
    n: usize,
    mut seen: impl FnMut(&StackClient<'_, X, K>, &StackEvent),
) {
    let mut net = Stack;
    let deadline = StdInstant::now() + StdDuration::from_secs(10);
    let mut finished = 0;
    for _ in 0..1_000_000 {
        if finished == n {
            return;
        }
        assert!(StdInstant::now() < deadline, "only {finished} of {n} requests finished");
        let now = Instant::from_millis(start.elapsed().as_millis() as u64);
        let mut any = false;
        for _ in 0..1_000 {
            let Some(event) = client.poll(&mut net, now) else {
                break;
            };
            any = true;
            seen(client, &event);
            match event {
                Event::Response { id, .. } => {
                    assert!(client.release(id));
                    finished += 1;
                }
                Event::Failed { .. } => finished += 1,
                _ => {}
            }
        }
        if !any {
            std::thread::sleep(StdDuration::from_millis(1));
        }
    }
    panic!("poll loop ran 1e6 rounds");
}
