// The e2e suite, included once per stack personality by `tests/e2e.rs`, where
// `Stack` names the personality.

use core::time::Duration as StdDuration;
use std::string::{String, ToString};
use std::time::Instant as StdInstant;

use reauth_core::expiry::{BodyCode, ExpiryRule};
use reauth_core::{Duration, Generation, Instant, RefreshFailure, Rejection, RequestId, TokenSet};
use reauth_nal::{
    AnswerError, Client, ClientConfig, Error, Event, RefreshExchange, Refreshed, Request, Timeouts,
    Unusable,
};
use reauth_testkit::issuer::{ExpiryStyle, Fault, IssuerConfig, MockIssuer};

use crate::common::{Flash, FlashError, oauth};

/// The common client configuration, with this personality's timeouts.
fn config<'a>(host: &'a str, issuer: &MockIssuer) -> ClientConfig<'a> {
    crate::common::config_for::<Stack>(host, issuer)
}

const K: usize = 4;
type TestClient<'a, X> = Client<'a, Stack, Flash, X, K, 1024, 4096, 512, 256>;
type NetError = <Stack as reauth_nal::Transport>::Error;
type Ev = Event<NetError, FlashError>;

/// A client logged in with a fresh session of `issuer`.
fn logged_in<'a, X: RefreshExchange>(
    issuer: &MockIssuer,
    config: ClientConfig<'a>,
    exchange: X,
) -> TestClient<'a, X> {
    let mut client = Client::new(config, exchange, Flash::default());
    let tokens = issuer.login();
    let lifetime = Duration::from_millis(tokens.expires_in.as_millis() as u64);
    client
        .login(Instant::ZERO, &tokens.access_token, &tokens.refresh_token, Some(lifetime))
        .unwrap();
    client
}

/// Drives the client until `done` holds, recording events. Answered responses are recorded
/// with their body and released at once.
struct Run {
    start: StdInstant,
    events: Vec<Ev>,
    bodies: Vec<(RequestId, u16, String)>,
}

impl Run {
    fn new() -> Self {
        Self { start: StdInstant::now(), events: Vec::new(), bodies: Vec::new() }
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    fn until<X: RefreshExchange>(
        &mut self,
        client: &mut TestClient<'_, X>,
        net: &mut Stack,
        mut done: impl FnMut(&Self) -> bool,
    ) {
        let deadline = StdInstant::now() + StdDuration::from_secs(10);
        for _ in 0..1_000_000 {
            if done(self) {
                return;
            }
            assert!(StdInstant::now() < deadline, "timed out; events so far: {:?}", self.events);
            let mut any = false;
            while let Some(event) = client.poll(net, self.now()) {
                any = true;
                if let Event::Response { id, status } = event {
                    let body = String::from_utf8_lossy(client.response(id).unwrap().body());
                    self.bodies.push((id, status, body.into_owned()));
                    assert!(client.release(id));
                }
                self.events.push(event);
            }
            if !any {
                std::thread::sleep(StdDuration::from_millis(1));
            }
        }
        panic!("poll loop ran 1e6 times; events so far: {:?}", self.events);
    }

    fn finished(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Response { .. } | Event::Failed { .. }))
            .count()
    }

    fn failure(&self, id: RequestId) -> &Error<NetError> {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::Failed { id: failed, error } if *failed == id => Some(error),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no failure for {id:?}: {:?}", self.events))
    }
}

/// On a new run, submits `K` GETs of `path` and polls until each has an outcome.
fn run_k<X: RefreshExchange>(client: &mut TestClient<'_, X>, path: &str) -> (Run, Vec<RequestId>) {
    let mut net = Stack::default();
    let mut run = Run::new();
    let ids = (0..K).map(|_| client.submit(Instant::ZERO, &Request::get(path)).unwrap()).collect();
    run.until(client, &mut net, |r| r.finished() == K);
    (run, ids)
}

#[test]
fn slots_keep_their_connections_across_rounds_and_an_expiry() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
    for round in 0..5 {
        if round == 2 {
            issuer.expire_all_now();
        }
        let (run, _) = run_k(&mut client, "/api/data");
        assert!(run.bodies.iter().all(|(_, status, _)| *status == 200), "{:?}", run.bodies);
    }
    let counters = issuer.counters();
    assert_eq!(counters.api_ok, 5 * K as u64, "{counters:?}");
    assert_eq!(counters.refresh_calls, 1, "{counters:?}");
    // One connection per slot for all 24 API requests (the 4 refused ones and their replays
    // included), and the refresh on its own; on a stack that never reports the end of a
    // stream, one per request (a kept connection the server closed would look quiet there).
    let api_connections = match <Stack as reauth_nal::Transport>::STREAM_END {
        reauth_nal::stack::StreamEnd::NeverReported => 6 * K as u64,
        _ => K as u64,
    };
    assert_eq!(counters.connections_accepted, api_connections + 1, "{counters:?}");
}

#[test]
fn k_requests_in_flight_across_an_expiry_give_one_refresh_and_k_replays() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
    issuer.expire_all_now();
    let (run, _) = run_k(&mut client, "/api/data");
    assert!(
        run.bodies
            .iter()
            .all(|(_, status, body)| *status == 200 && body.contains("\"generation\":2")),
        "{:?}",
        run.bodies
    );
    let counters = issuer.counters();
    assert_eq!(counters.refresh_calls, 1, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0);
    assert_eq!(counters.api_unauthorized, K as u64, "each request was refused once");
    assert_eq!(counters.api_ok, K as u64, "and replayed once");
    assert_eq!(counters.refresh_token_seen_on_api, 0);
    assert_eq!(counters.access_token_seen_on_token_endpoint, 0);
    assert_eq!(client.store().saved.len(), 2, "login and rotated tokens persisted");
    assert!(
        run.events.iter().any(|e| matches!(e, Event::Refreshed { generation: Generation(2), .. }))
    );
}

#[test]
fn refused_refresh_rejects_every_request_and_needs_login() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
    issuer.expire_all_now();
    issuer.inject(Fault::InvalidGrant { times: 1 });
    let (run, ids) = run_k(&mut client, "/api/data");
    for id in ids {
        assert!(matches!(run.failure(id), Error::Rejected(Rejection::NeedsLogin)));
    }
    assert!(client.needs_login());
    assert_eq!(issuer.counters().refresh_calls, 1);
    assert!(run.events.iter().any(|e| matches!(
        e,
        Event::RefreshFailed {
            failure: RefreshFailure::Refused,
            error: Error::Refresh(AnswerError::Refused {
                status: 400,
                code: Some(reauth_core::oauth::ErrorCode::InvalidGrant)
            })
        }
    )));
    // The dead refresh token is erased from flash: a rebooted device finds none and knows it
    // must log in, without a network call.
    assert_eq!(client.store().cleared, 1);
    assert!(client.store().saved.is_empty());
}

#[test]
fn transient_503s_are_retried_and_no_request_is_lost() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
    issuer.expire_all_now();
    issuer.inject(Fault::ServiceUnavailable { times: 2 });
    let (run, _) = run_k(&mut client, "/api/data");
    assert!(
        run.bodies.len() == K && run.bodies.iter().all(|(_, s, _)| *s == 200),
        "{:?}",
        run.events
    );
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.refresh_successes), (3, 1));
    assert_eq!(counters.reuse_attempts, 0);
    let transient = run
        .events
        .iter()
        .filter(|e| {
            matches!(e, Event::RefreshFailed { failure: RefreshFailure::Transient { .. }, .. })
        })
        .count();
    assert_eq!(transient, 2);
    assert!(!client.needs_login());
}

#[test]
fn hanging_token_endpoint_times_out_and_the_retry_succeeds() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let timeouts = Timeouts { response: Duration::from_millis(300), ..Timeouts::DEFAULT };
    let config = ClientConfig { timeouts, ..config(&host, &issuer) };
    let mut client = logged_in(&issuer, config, oauth());
    issuer.expire_all_now();
    issuer.inject(Fault::Hang { times: 1, duration: StdDuration::from_secs(5) });
    let mut net = Stack::default();
    let mut run = Run::new();
    client.submit(Instant::ZERO, &Request::get("/api/x")).unwrap();
    run.until(&mut client, &mut net, |r| r.finished() == 1);
    assert_eq!(run.bodies.len(), 1, "{:?}", run.events);
    assert!(run.events.iter().any(|e| matches!(
        e,
        Event::RefreshFailed { error: Error::Timeout(reauth_nal::TimeoutKind::Response), .. }
    )));
    assert_eq!(issuer.counters().refresh_successes, 1);
}

#[test]
fn malformed_and_oversized_token_responses_are_clear_errors() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
    issuer.expire_all_now();
    issuer.inject(Fault::MalformedJson { times: 1 });
    issuer.inject(Fault::OversizedToken { times: 1, len: 600 });
    let mut net = Stack::default();
    let mut run = Run::new();
    let id = client.submit(Instant::ZERO, &Request::get("/api/x")).unwrap();
    run.until(&mut client, &mut net, |r| r.finished() == 1);
    let reasons: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RefreshFailed { error: Error::Refresh(reason), failure } => {
                // A success that cannot be used may still have rotated the token on the server.
                if !matches!(reason, AnswerError::Status(_) | AnswerError::Refused { .. }) {
                    assert_eq!(*failure, RefreshFailure::Lost);
                }
                Some(*reason)
            }
            _ => None,
        })
        .collect();
    assert!(matches!(reasons[0], AnswerError::TokenResponse(_)), "{reasons:?}");
    assert!(
        matches!(
            reasons[1],
            AnswerError::Token(reauth_core::TokenError::TooLong { len: 600, capacity: 512 })
        ),
        "{reasons:?}"
    );
    // The oversized answer consumed the refresh token on the server (rotation), so the retry
    // is refused as a reuse: the device must log in again, and says so.
    assert!(matches!(run.failure(id), Error::Rejected(Rejection::NeedsLogin)));
    assert!(client.needs_login());
}

#[test]
fn classic_409_api_is_detected_by_its_body_code() {
    const RULE: ExpiryRule<'static> = ExpiryRule::STATUS_401.body_code(BodyCode { field: "code", values: &[409] });
    let issuer = MockIssuer::start(IssuerConfig {
        expiry_style: ExpiryStyle::Classic409,
        ..IssuerConfig::default()
    })
    .unwrap();
    let host = issuer.addr().to_string();
    let config = ClientConfig { expiry: RULE, ..config(&host, &issuer) };
    let mut client = logged_in(&issuer, config, oauth());
    issuer.expire_all_now();
    let (run, _) = run_k(&mut client, "/api/data");
    assert!(
        run.bodies.iter().all(|(_, s, b)| *s == 200 && b.contains("\"ok\":true")),
        "{:?}",
        run.bodies
    );
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.api_unauthorized), (1, K as u64));
}

/// The classic JSON refresh endpoint: `{"refreshToken":"..."}` in,
/// `{"token":"...","refreshToken":"...","ttl":N}` out.
struct ClassicRefresh;

impl RefreshExchange for ClassicRefresh {
    fn path(&self) -> &str {
        "/auth/refresh"
    }

    fn content_type(&self) -> &str {
        "application/json"
    }

    fn write_body(&self, refresh_token: &str, out: &mut [u8]) -> Result<usize, usize> {
        let body = format!(r#"{{"refreshToken":"{refresh_token}"}}"#);
        let dst = out.get_mut(..body.len()).ok_or(body.len())?;
        dst.copy_from_slice(body.as_bytes());
        Ok(body.len())
    }

    fn read_answer<const A: usize, const R: usize>(
        &self,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        tokens: &mut TokenSet<A, R>,
        generation: Generation,
    ) -> Result<Refreshed, Unusable> {
        let transient = RefreshFailure::Transient { retry_after };
        if status == 401 {
            return Err(Unusable {
                failure: RefreshFailure::Refused,
                error: AnswerError::Status(401),
            });
        }
        if status != 200 {
            return Err(Unusable { failure: transient, error: AnswerError::Status(status) });
        }
        let body = core::str::from_utf8(body).unwrap_or_default();
        let field = |name: &str| {
            let start = body.find(&format!(r#""{name}":"#))? + name.len() + 3;
            let rest = &body[start..];
            match rest.strip_prefix('"') {
                Some(s) => s.split('"').next(),
                None => rest.split([',', '}']).next(),
            }
        };
        let invalid = Unusable { failure: transient, error: AnswerError::Invalid };
        let (access, refresh) = field("token").zip(field("refreshToken")).ok_or(invalid)?;
        let ttl = field("ttl").and_then(|t| t.parse::<u64>().ok()).map(Duration::from_secs);
        tokens
            .install(generation, access, Some(refresh))
            .map_err(|e| Unusable { failure: transient, error: AnswerError::Token(e) })?;
        Ok(Refreshed { lifetime: ttl, rotated: true })
    }
}

#[test]
fn custom_refresh_exchange_against_the_classic_endpoint() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut client = logged_in(&issuer, config(&host, &issuer), ClassicRefresh);
    issuer.expire_all_now();
    let (run, _) = run_k(&mut client, "/api/data");
    assert!(run.bodies.iter().all(|(_, s, _)| *s == 200), "{:?}", run.events);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.reuse_attempts), (1, 0));
}

#[test]
fn chunked_responses_are_decoded_and_oversized_ones_are_typed_errors() {
    for chunked_api in [false, true] {
        let issuer =
            MockIssuer::start(IssuerConfig { chunked_api, ..IssuerConfig::default() }).unwrap();
        let host = issuer.addr().to_string();
        let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
        let mut net = Stack::default();
        let mut run = Run::new();
        let small = client.submit(Instant::ZERO, &Request::get("/api/hello")).unwrap();
        let fits = client.submit(Instant::ZERO, &Request::get("/api/big?bytes=3000")).unwrap();
        let big = client.submit(Instant::ZERO, &Request::get("/api/big?bytes=10000")).unwrap();
        run.until(&mut client, &mut net, |r| r.finished() == 3);
        let body = |id| run.bodies.iter().find(|(got, ..)| *got == id).map(|(_, _, b)| b.clone());
        assert!(body(small).unwrap().contains("\"path\":\"/api/hello\""));
        assert_eq!(body(fits).unwrap().len(), 3000, "chunked: {chunked_api}");
        assert!(
            matches!(run.failure(big), Error::ResponseTooLarge { capacity: 4096 }),
            "chunked: {chunked_api}: {:?}",
            run.events
        );
    }
}

#[test]
fn a_rebooted_device_resumes_from_the_persisted_refresh_token() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut net = Stack::default();
    let stored = {
        let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
        issuer.expire_all_now();
        let mut run = Run::new();
        client.submit(Instant::ZERO, &Request::get("/api/x")).unwrap();
        run.until(&mut client, &mut net, |r| r.finished() == 1);
        client.store().saved.last().unwrap().clone()
    };
    // "Reboot": a new client knows only what was persisted.
    let mut client: TestClient<'_, _> =
        Client::new(config(&host, &issuer), oauth(), Flash::default());
    client.restore(Instant::ZERO, &stored).unwrap();
    let mut run = Run::new();
    client.submit(Instant::ZERO, &Request::get("/api/y")).unwrap();
    run.until(&mut client, &mut net, |r| r.finished() == 1);
    assert_eq!(run.bodies[0].1, 200, "{:?}", run.events);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_successes, counters.reuse_attempts), (2, 0));
}

#[test]
fn short_lived_tokens_are_refreshed_ahead_of_expiry_without_a_single_401() {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: StdDuration::from_secs(2),
        ..IssuerConfig::default()
    })
    .unwrap();
    let host = issuer.addr().to_string();
    let mut client = logged_in(&issuer, config(&host, &issuer), oauth());
    let mut net = Stack::default();
    let run = Run::new();
    // Keep two requests in flight for 2.5 s: the 2 s token (refreshed ahead after 0.75 s) turns
    // over at least twice, and no request ever meets an expired token.
    let mut done = 0;
    let mut inflight = 0;
    for _ in 0..1_000_000 {
        let elapsed = run.start.elapsed();
        assert!(elapsed < StdDuration::from_secs(10));
        let traffic = elapsed < StdDuration::from_millis(2_500);
        if !traffic && inflight == 0 {
            break;
        }
        let now = run.now();
        let mut any = false;
        while let Some(event) = client.poll(&mut net, now) {
            any = true;
            match event {
                Event::Response { id, status } => {
                    assert_eq!(status, 200);
                    client.release(id);
                    done += 1;
                    inflight -= 1;
                }
                Event::Failed { error, .. } => panic!("{error:?}"),
                _ => {}
            }
        }
        if traffic && inflight < 2 {
            client.submit(now, &Request::get("/api/tick")).unwrap();
            inflight += 1;
        } else if !any {
            std::thread::sleep(StdDuration::from_millis(1));
        }
    }
    let counters = issuer.counters();
    assert!(done > 10, "only {done} requests");
    assert_eq!(counters.api_unauthorized, 0, "{counters:?}");
    assert!(counters.refresh_successes >= 2, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0);
    assert!(counters.refreshes_per_access_token_max <= 1, "{counters:?}");
}
