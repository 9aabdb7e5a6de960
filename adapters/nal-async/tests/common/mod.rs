//! What the host tests share: tokio's clock and loopback TCP as the client's clock and stack, a
//! recording token store, and a client logged in to a mock issuer.
// Each test file uses a part of it.
#![allow(dead_code)]

use core::future::Future;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration as StdDuration;
use std::rc::Rc;

use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use embedded_nal_async::{AddrType, Dns, TcpConnect};
use reauth_core::{Duration, Generation, Instant};
use reauth_nal_async::{
    Client, ClientConfig, Clock, Endpoint, Error, OAuth2, Request, Tcp, TcpError, TokenStore,
    Transport,
};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};

/// tokio's clock, in milliseconds since the test started.
#[derive(Clone, Copy)]
pub(crate) struct TokioClock(pub(crate) tokio::time::Instant);

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        // `Instant::MAX` ("never") is a day away, far beyond any test.
        let at = at.millis().min(86_400_000);
        tokio::time::sleep_until(self.0 + StdDuration::from_millis(at))
    }
}

/// The host's TCP through tokio.
pub(crate) struct Loopback;

impl TcpConnect for Loopback {
    type Error = std::io::Error;
    type Connection<'a> = FromTokio<tokio::net::TcpStream>;

    async fn connect<'a>(
        &'a self,
        remote: SocketAddr,
    ) -> Result<Self::Connection<'a>, Self::Error> {
        tokio::net::TcpStream::connect(remote).await.map(FromTokio::new)
    }
}

/// Names are addresses here; anything else does not resolve.
pub(crate) struct Literal;

impl Dns for Literal {
    type Error = ();

    async fn get_host_by_name(&self, host: &str, _: AddrType) -> Result<IpAddr, ()> {
        host.parse().map_err(|_| ())
    }

    async fn get_host_by_address(&self, _: IpAddr, _: &mut [u8]) -> Result<usize, ()> {
        Err(())
    }
}

/// Flash that records every save, and can be told to fail.
#[derive(Default)]
pub(crate) struct Flash {
    pub(crate) saved: Vec<(String, Generation)>,
    pub(crate) cleared: bool,
    /// Every save fails (a worn-out flash page).
    pub(crate) broken: bool,
}

impl TokenStore for Flash {
    type Error = &'static str;

    fn save(&mut self, refresh_token: &str, generation: Generation) -> Result<(), &'static str> {
        if self.broken {
            return Err("flash write failed");
        }
        self.saved.push((refresh_token.to_owned(), generation));
        Ok(())
    }

    fn clear(&mut self) -> Result<(), &'static str> {
        self.cleared = true;
        Ok(())
    }
}

pub(crate) const N: usize = 16;
pub(crate) type TestClient =
    Client<'static, NoopRawMutex, Flash, OAuth2<'static>, TokioClock, N, 512, 256>;
pub(crate) type NetError = TcpError<std::io::Error>;

pub(crate) fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A client of `issuer`, logged in with a fresh session.
pub(crate) fn logged_in(issuer: &MockIssuer, lifetime: Option<StdDuration>) -> Rc<TestClient> {
    let host = leak(issuer.addr().to_string());
    logged_in_as(issuer, lifetime, host, false)
}

/// [`logged_in`], the server called `name` (its `Host` header and TLS name), HTTPS required
/// if `https`.
pub(crate) fn logged_in_as(
    issuer: &MockIssuer,
    lifetime: Option<StdDuration>,
    name: &'static str,
    https: bool,
) -> Rc<TestClient> {
    let addr = issuer.addr();
    let endpoint = Endpoint { name, port: addr.port(), addr: Some(addr.ip()), host: name };
    let mut config = ClientConfig::new(endpoint, endpoint);
    config.https = https;
    config.timeouts.response = Duration::from_millis(1500);
    config.coordinator.refresh_timeout = Duration::from_secs(5);
    config.coordinator.backoff.initial = Duration::from_millis(50);
    // Four attempts per episode (the default is two): the fault tests run two or three failures
    // and a success in one episode.
    config.coordinator.max_refresh_attempts = 4;
    config.coordinator.backoff.max = Duration::from_secs(2);
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    let clock = TokioClock(tokio::time::Instant::now());
    let client = TestClient::new(config, exchange, Flash::default(), clock);
    let tokens = issuer.login();
    let lifetime = lifetime.map(|d| Duration::from_millis(d.as_millis() as u64));
    client.login(&tokens.access_token, &tokens.refresh_token, lifetime).unwrap();
    Rc::new(client)
}

pub(crate) fn net() -> Tcp<'static, Loopback, Literal> {
    Tcp::new(&Loopback, &Literal)
}

/// One request: its status, or its error shown as text (checked for tokens by the caller).
pub(crate) async fn get(client: &TestClient, path: &str) -> Result<u16, Error<NetError>> {
    get_over(client, &net(), path).await
}

/// [`get`] over `transport`.
pub(crate) async fn get_over<T: Transport<Error = NetError>>(
    client: &TestClient,
    transport: &T,
    path: &str,
) -> Result<u16, Error<NetError>> {
    let mut buf = [0u8; 2048];
    client.send(transport, &Request::get(path), &mut buf).await.map(|r| r.status())
}

/// `tasks` tasks, each sending `per_task` requests one after another, `pause` apart.
pub(crate) async fn storm(
    client: &Rc<TestClient>,
    tasks: usize,
    per_task: usize,
    pause: StdDuration,
) -> Vec<Result<u16, Error<NetError>>> {
    storm_over(client, &LOOPBACK, tasks, per_task, pause).await
}

/// The host's TCP as a `'static` transport, which tasks can share.
pub(crate) static LOOPBACK: Tcp<'static, Loopback, Literal> = Tcp::new(&Loopback, &Literal);

/// [`storm`] over `transport`.
pub(crate) async fn storm_over<T: Transport<Error = NetError> + Sync>(
    client: &Rc<TestClient>,
    transport: &'static T,
    tasks: usize,
    per_task: usize,
    pause: StdDuration,
) -> Vec<Result<u16, Error<NetError>>> {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let client = client.clone();
        handles.push(tokio::task::spawn_local(async move {
            let mut results = Vec::new();
            for _ in 0..per_task {
                results.push(get_over(&client, transport, "/api/items").await);
                tokio::time::sleep(pause).await;
            }
            results
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    all
}

pub(crate) fn run<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio::task::LocalSet::new().block_on(&rt, f)
}

/// The scenarios every stack personality runs (`tests/host.rs` over loopback TCP,
/// `tests/modem.rs` over a modem's manners), each against a fresh issuer.
pub(crate) mod scenario {
    use super::*;

    /// 12 tasks sending 40 requests each, 60 ms apart, across 1 s tokens: no failure, one
    /// refresh call per episode, no reuse, no token refreshed twice, no token where it does not
    /// belong, and every rotated refresh token saved before use.
    pub(crate) fn many_tasks_across_expiries<T: Transport<Error = NetError> + Sync>(
        transport: &'static T,
    ) {
        let issuer = MockIssuer::start(IssuerConfig {
            token_lifetime: StdDuration::from_secs(1),
            ..IssuerConfig::default()
        })
        .unwrap();
        run(async {
            let client = logged_in(&issuer, Some(StdDuration::from_secs(1)));
            let results =
                storm_over(&client, transport, 12, 40, StdDuration::from_millis(60)).await;
            let failed: Vec<_> = results.iter().filter(|r| !matches!(r, Ok(200))).collect();
            assert!(failed.is_empty(), "{failed:?}");
            let counters = issuer.counters();
            let stats = client.stats();
            assert!(stats.refreshes >= 2, "{stats:?}");
            assert_eq!(counters.refresh_calls, stats.refresh_calls);
            assert_eq!(stats.refresh_calls, stats.refreshes);
            assert_eq!(counters.reuse_attempts, 0);
            assert!(counters.refreshes_per_access_token_max <= 1, "{counters:?}");
            assert_eq!(counters.refresh_token_seen_on_api, 0);
            assert_eq!(counters.access_token_seen_on_token_endpoint, 0);
            let saved = client.with_store(|f| f.saved.len());
            assert_eq!(saved as u64, 1 + stats.refreshes);
        });
    }

    /// `N` tasks at once on an expired token, the issuer answering in 100 ms: every one parks
    /// behind one refresh and is answered.
    pub(crate) fn storm_on_an_expired_token<T: Transport<Error = NetError> + Sync>(
        transport: &'static T,
    ) {
        let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
        issuer.set_latency(StdDuration::from_millis(100), StdDuration::ZERO);
        run(async {
            let client = logged_in(&issuer, None);
            issuer.expire_all_now();
            let results = storm_over(&client, transport, N, 1, StdDuration::ZERO).await;
            assert!(results.iter().all(|r| matches!(r, Ok(200))), "{results:?}");
            assert_eq!(issuer.counters().refresh_calls, 1);
            assert_eq!(client.stats().refreshes, 1);
            assert_eq!(issuer.counters().reuse_attempts, 0);
        });
    }

    /// `fault` served to the first refresh costs one retry, and the request succeeds.
    pub(crate) fn one_retry_after<T: Transport<Error = NetError>>(transport: &T, fault: Fault) {
        let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
        run(async {
            let client = logged_in(&issuer, None);
            issuer.expire_all_now();
            issuer.inject(fault.clone());
            let result = get_over(&client, transport, "/api/x").await;
            assert!(matches!(result, Ok(200)), "{fault:?}: {result:?}");
            let stats = client.stats();
            assert_eq!((stats.refresh_failures, stats.refreshes), (1, 1), "{fault:?}");
            assert_eq!(issuer.counters().reuse_attempts, 0, "{fault:?}");
        });
    }
}
