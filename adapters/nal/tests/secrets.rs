//! Where tokens may and may not go, for reauth-nal against the loopback mock issuer: never into
//! `Debug`, `Display` or an error chain, the refresh token only to the token endpoint and the
//! access token only to the API.
//!
//! The unit test `tokens_never_show_in_debug_output` (src/tests.rs) already formats the client
//! and its events on the in-memory stack; this file does it on real sockets with the issuer's
//! own tokens, through every token-endpoint fault, with every error's `source()` chain and the
//! configuration types that hold the client secret. Wiping of the token buffers on overwrite and
//! drop is the core's (`reauth_core::Token` derives `ZeroizeOnDrop` and `Token::set` zeroizes
//! before writing); the client's own request and answer buffers are zeroized when done with
//! (`Slot::free`, `Refresher::advance` and `Refresher::wipe_answer`).

mod common;

use core::cell::RefCell;
use core::time::Duration as StdDuration;
use std::rc::Rc;
use std::string::{String, ToString};
use std::time::Instant as StdInstant;

use reauth_core::oauth::RefreshParams;
use reauth_core::{Duration, Generation, Instant, Rejection, TokenSet};
use reauth_nal::{
    Client, ClientConfig, Endpoint, Event, LoginError, OAuth2, RefreshExchange, Refreshed, Request,
    SubmitError, Unusable,
};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_testkit::secrets::{assert_hidden, error_chain};
use std_embedded_nal::Stack;

use crate::common::{Flash, FlashError, StackClient, quick};

/// Marks a secret the test installed itself; it must never be shown.
const SENTINEL: &str = "SENTINEL-c0ffee";

const K: usize = 4;
type TestClient<'a> = StackClient<'a, Spy, K>;

/// The OAuth2 exchange, noting every access token it installs: the test must know the tokens
/// a refresh brought to search for them (the flash sees only refresh tokens).
struct Spy {
    inner: OAuth2<'static>,
    installed: Rc<RefCell<Vec<String>>>,
}

impl RefreshExchange for Spy {
    fn path(&self) -> &str {
        self.inner.path()
    }

    fn content_type(&self) -> &str {
        self.inner.content_type()
    }

    fn write_body(&self, refresh_token: &str, out: &mut [u8]) -> Result<usize, usize> {
        self.inner.write_body(refresh_token, out)
    }

    fn read_answer<const A: usize, const R: usize>(
        &self,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        tokens: &mut TokenSet<A, R>,
        generation: Generation,
    ) -> Result<Refreshed, Unusable> {
        let read = self.inner.read_answer(status, body, retry_after, tokens, generation);
        if read.is_ok()
            && let Some(access) = tokens.access()
        {
            self.installed.borrow_mut().push(access.to_string());
        }
        read
    }
}

/// An OAuth2 exchange with the sentinel as client secret, as a confidential client has one.
fn oauth() -> OAuth2<'static> {
    let params =
        RefreshParams { client_id: Some("secrets"), client_secret: Some(SENTINEL), scope: None };
    OAuth2 { path: "/oauth/token", params, ..OAuth2::default() }
}

fn config<'a>(host: &'a str, api: core::net::SocketAddr, issuer: &MockIssuer) -> ClientConfig<'a> {
    let token = Endpoint { addr: issuer.addr(), host };
    ClientConfig { coordinator: quick(), ..ClientConfig::new(Endpoint { addr: api, host }, token) }
}

/// Polls until `n` requests have an outcome (see [`common::drive`]), formatting every event,
/// every error chain, every response and the client on the way into `shown`.
fn drive(client: &mut TestClient<'_>, start: StdInstant, n: usize, shown: &mut Vec<String>) {
    common::drive(client, start, n, |client, event| {
        shown.push(format!("{event:?}"));
        match event {
            Event::Response { id, .. } => shown.push(format!("{:?}", client.response(*id))),
            Event::Failed { error, .. } | Event::RefreshFailed { error, .. } => {
                shown.push(error_chain(error));
            }
            _ => {}
        }
        shown.push(format!("{client:?}"));
    });
}

#[test]
fn no_public_type_shows_tokens_installed_by_a_real_refresh_or_any_error_chain() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let installed = Rc::new(RefCell::new(Vec::new()));
    let spy = || Spy { inner: oauth(), installed: Rc::clone(&installed) };
    let config = config(&host, issuer.addr(), &issuer);
    let start = StdInstant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let mut shown = vec![format!("{config:?}"), format!("{:?}", oauth())];
    let mut secrets = vec![SENTINEL.to_string()];

    // A login with the issuer's tokens, and a refresh that rotates them.
    let mut one_attempt = config;
    one_attempt.coordinator.max_refresh_attempts = 1;
    let mut client: TestClient<'_> = Client::new(one_attempt, spy(), Flash::default());
    let login = issuer.login();
    client.login(now(), &login.access_token, &login.refresh_token, None).unwrap();
    secrets.extend([login.access_token, login.refresh_token]);
    issuer.expire_all_now();
    for _ in 0..K {
        client.submit(now(), &Request::get("/api/x")).unwrap();
    }
    drive(&mut client, start, K, &mut shown);
    assert_eq!(installed.borrow().len(), 1, "one refresh installed a token");

    // Every fault of the token endpoint, each on a fresh session, as events and errors.
    let faults = [
        Fault::ServiceUnavailable { times: 1 },
        Fault::TooManyRequests { times: 1, retry_after_secs: 0 },
        Fault::CloseBeforeAnswer { times: 1 },
        Fault::ResetMidBody { times: 1 },
        Fault::MalformedJson { times: 1 },
        // Rotates on the server, then carries a 600-byte access token the client refuses.
        Fault::OversizedToken { times: 1, len: 600 },
        Fault::InvalidClient { times: 1 },
        Fault::InvalidGrant { times: 1 },
    ];
    let faults_len = faults.len();
    for fault in faults {
        let tokens = issuer.login();
        client.login(now(), &tokens.access_token, &tokens.refresh_token, None).unwrap();
        secrets.extend([tokens.access_token, tokens.refresh_token]);
        issuer.expire_all_now();
        issuer.inject(fault);
        client.submit(now(), &Request::get("/api/x")).unwrap();
        drive(&mut client, start, 1, &mut shown);
    }
    // The sentinel as tokens: refused by the API, refused by the token endpoint.
    client.login(now(), SENTINEL, SENTINEL, None).unwrap();
    client.submit(now(), &Request::get("/api/x")).unwrap();
    drive(&mut client, start, 1, &mut shown);
    assert!(client.needs_login());
    let refused = client.submit(now(), &Request::get("/api/x")).unwrap_err();
    assert_eq!(refused, SubmitError::Rejected(Rejection::NeedsLogin));
    shown.push(error_chain(&refused));
    // Unusable tokens, a store failure and a transport failure.
    let too_long = SENTINEL.repeat(100);
    for (access, refresh) in [(too_long.as_str(), SENTINEL), ("SENTINEL-c0ffee\r\nX: y", SENTINEL)]
    {
        let error = client.login(now(), access, refresh, None).unwrap_err();
        assert!(matches!(error, LoginError::Token(_)), "{error:?}");
        shown.push(error_chain(&error));
    }
    shown.push(error_chain(&LoginError::Persist(FlashError)));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let mut unreachable: TestClient<'_> = Client::new(
        ClientConfig { api: Endpoint { addr: nowhere, host: &host }, ..config },
        spy(),
        Flash::default(),
    );
    unreachable.login(now(), SENTINEL, SENTINEL, None).unwrap();
    unreachable.submit(now(), &Request::get("/api/x")).unwrap();
    let before = shown.len();
    drive(&mut unreachable, start, 1, &mut shown);
    assert!(shown[before..].iter().any(|s| s.starts_with("Transport")), "{:?}", &shown[before..]);

    secrets.extend(installed.borrow().iter().cloned());
    secrets.extend(client.store().saved.iter().cloned());
    assert_hidden(&shown, &secrets);
    // The search had material: an error chain for every fault and for the sentinel's refusal.
    let refresh_failures = shown.iter().filter(|s| s.starts_with("RefreshFailed")).count();
    assert!(refresh_failures > faults_len, "{shown:?}");
}

/// A server that quotes the refused refresh token in its `error_description` (Spring Security
/// OAuth's `Invalid refresh token: <token>`): the client keeps the description withheld.
#[test]
fn a_refusal_that_quotes_the_refresh_token_is_withheld() {
    let issuer =
        MockIssuer::start(IssuerConfig { quote_refused_token: true, ..IssuerConfig::default() })
            .unwrap();
    let host = issuer.addr().to_string();
    let spy = Spy { inner: oauth(), installed: Rc::new(RefCell::new(Vec::new())) };
    let start = StdInstant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let mut client: TestClient<'_> =
        Client::new(config(&host, issuer.addr(), &issuer), spy, Flash::default());
    let tokens = issuer.login();
    client.login(now(), &tokens.access_token, &tokens.refresh_token, None).unwrap();
    issuer.revoke_session();
    issuer.expire_all_now();
    client.submit(now(), &Request::get("/api/x")).unwrap();
    let mut shown = Vec::new();
    drive(&mut client, start, 1, &mut shown);
    assert!(client.needs_login());
    assert_eq!(client.refusal_description(), Some(reauth_core::oauth::DESCRIPTION_WITHHELD));
    assert_hidden(&shown, &[&tokens.refresh_token, &tokens.access_token]);
}

#[test]
fn realistic_workload_never_sends_a_token_to_the_wrong_endpoint() {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: StdDuration::from_secs(1),
        latency_jitter: StdDuration::from_millis(10),
        seed: 5,
        ..IssuerConfig::default()
    })
    .unwrap();
    let host = issuer.addr().to_string();
    let installed = Rc::new(RefCell::new(Vec::new()));
    let exchange = Spy { inner: oauth(), installed: Rc::clone(&installed) };
    // The expiry at 800 ms also kills a token a refresh is bringing at that moment, so a
    // request replayed with it meets a 401 again: a second replay parks it for the next refresh
    // instead of failing it (`Unauthorized` is right for it, but not what this test is about).
    let mut config = config(&host, issuer.addr(), &issuer);
    config.coordinator.replay_limit = 2;
    let mut client: TestClient<'_> = Client::new(config, exchange, Flash::default());
    let start = StdInstant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let tokens = issuer.login();
    let lifetime = Duration::from_millis(tokens.expires_in.as_millis() as u64);
    client.login(now(), &tokens.access_token, &tokens.refresh_token, Some(lifetime)).unwrap();
    let mut net = Stack;
    let (mut submitted, mut answered, mut failed) = (0u32, 0u32, Vec::new());
    let (mut faults_injected, mut expired) = (false, false);
    // `K` requests at once from the start (a storm), kept in flight for 1.5 s of staggered
    // traffic across proactive refreshes, transient faults at 400 ms and an expiry of every
    // token at 800 ms. Bounded by rounds and by time.
    for round in 0..1_000_000u64 {
        let elapsed = start.elapsed();
        assert!(elapsed < StdDuration::from_secs(10), "{submitted} {answered} {failed:?}");
        let traffic = elapsed < StdDuration::from_millis(1_500);
        if !traffic && client.free_slots() == K {
            break;
        }
        if !faults_injected && elapsed >= StdDuration::from_millis(400) {
            issuer.inject(Fault::ServiceUnavailable { times: 1 });
            issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 0 });
            faults_injected = true;
        }
        if !expired && elapsed >= StdDuration::from_millis(800) {
            issuer.expire_all_now();
            expired = true;
        }
        let mut any = false;
        for _ in 0..1_000 {
            let Some(event) = client.poll(&mut net, now()) else {
                break;
            };
            any = true;
            match event {
                Event::Response { id, status } => {
                    if status != 200 {
                        failed.push(format!("status {status}"));
                    }
                    client.release(id);
                    answered += 1;
                }
                Event::Failed { error, .. } => failed.push(format!("{error:?}")),
                _ => {}
            }
        }
        while traffic && client.free_slots() > 0 {
            let body = format!(r#"{{"n":{round}}}"#);
            let request = if submitted % 3 == 0 {
                Request {
                    headers: &[("Content-Type", "application/json")],
                    ..Request::post("/api/post", body.as_bytes())
                }
            } else {
                Request::get("/api/get")
            };
            client.submit(now(), &request).unwrap();
            submitted += 1;
        }
        if !any {
            std::thread::sleep(StdDuration::from_millis(1));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
    let counters = issuer.counters();
    // The workload did what it is meant to: many requests, several refreshes, some retried.
    assert!(answered > 50 && counters.refresh_successes >= 3, "{answered} {counters:?}");
    assert!(counters.faults_served >= 1 && counters.expiry_episodes >= 1, "{counters:?}");
    assert_eq!(counters.refresh_token_seen_on_api, 0, "{counters:?}");
    assert_eq!(counters.access_token_seen_on_token_endpoint, 0, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0, "{counters:?}");
    assert!(installed.borrow().len() >= 3);
}
