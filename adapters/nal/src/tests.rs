//! Scenario tests of the client on the in-memory stack of [`crate::mock`]: every slot state
//! (parked, connecting, sending, receiving, answered, failed), the refresh exchange, and the
//! partial-I/O paths, on a virtual clock.

use core::net::SocketAddr;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use embedded_nal::TcpErrorKind;
use reauth_core::expiry::{BodyCode, ExpiryRule};
use reauth_core::{Duration, Generation, Instant, RefreshFailure, Rejection, RequestId};

use crate::mock::{MockError, MockNet, Script, http, token_response};
use crate::{
    AnswerError, Client, ClientConfig, Endpoint, Error, Event, OAuth2, Request, Stage, SubmitError,
    TimeoutKind, Timeouts, TokenStore,
};
use reauth_core::oauth::ErrorCode;

const API: &str = "10.0.0.1:80";
const AUTH: &str = "10.0.0.2:80";

/// Records saved refresh tokens; fails on demand.
#[derive(Debug, Default)]
struct MemStore {
    saved: Vec<String>,
    fail: bool,
    /// How many times the stored token was erased.
    cleared: u32,
}

#[derive(Debug, PartialEq, Eq)]
struct FlashFull;

impl TokenStore for MemStore {
    type Error = FlashFull;
    fn save(&mut self, refresh_token: &str, _generation: Generation) -> Result<(), FlashFull> {
        if self.fail {
            return Err(FlashFull);
        }
        self.saved.push(refresh_token.to_string());
        Ok(())
    }

    fn clear(&mut self) -> Result<(), FlashFull> {
        self.cleared += 1;
        Ok(())
    }
}

type TestClient = crate::client_type!(MockNet, MemStore, OAuth2<'static>,
    slots: 3, request: 384, response: 256, access: 48, refresh: 48);
type Ev = Event<MockError, FlashFull>;

fn api() -> SocketAddr {
    API.parse().unwrap()
}

fn auth() -> SocketAddr {
    AUTH.parse().unwrap()
}

/// One connection per request (no keep-alive), so that each scripted answer has its own
/// connection; the keep-alive tests turn it on.
fn config() -> ClientConfig<'static> {
    let config = ClientConfig::new(
        Endpoint { addr: api(), host: "api.test" },
        Endpoint { addr: auth(), host: "auth.test" },
    );
    ClientConfig { timeouts: Timeouts { keep_alive: Duration::ZERO, ..config.timeouts }, ..config }
}

fn client_with(config: ClientConfig<'static>) -> TestClient {
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    Client::new(config, exchange, MemStore::default())
}

/// A client logged in with `at1` / `rt1`, valid for an hour.
fn logged_in() -> TestClient {
    logged_in_with(config())
}

/// [`logged_in`] with `config`.
fn logged_in_with(config: ClientConfig<'static>) -> TestClient {
    let mut client = client_with(config);
    client.login(t(0), "at1", "rt1", Some(Duration::from_secs(3600))).unwrap();
    client
}

/// [`config`] with four attempts per episode, for scenarios longer than the default two.
fn four_attempts() -> ClientConfig<'static> {
    let config = config();
    let coordinator = reauth_core::Config { max_refresh_attempts: 4, ..config.coordinator };
    ClientConfig { coordinator, ..config }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Polls at `now` until `poll` says `None` (bounded), returning the events.
fn drain(client: &mut TestClient, net: &mut MockNet, now: Instant) -> Vec<Ev> {
    let mut events = Vec::new();
    for _ in 0..1_000 {
        match client.poll(net, now) {
            Some(event) => events.push(event),
            None => return events,
        }
    }
    panic!("poll never ran dry: {events:?}");
}

/// Polls with the clock moving `step_ms` per round until `done` holds for the events so far
/// (bounded in rounds); returns the events and the final time.
fn run(
    client: &mut TestClient,
    net: &mut MockNet,
    start: u64,
    step_ms: u64,
    mut done: impl FnMut(&[Ev]) -> bool,
) -> (Vec<Ev>, u64) {
    let mut events = Vec::new();
    let mut now = start;
    for _ in 0..10_000 {
        events.extend(drain(client, net, t(now)));
        if done(&events) {
            return (events, now);
        }
        now += step_ms;
    }
    panic!("scenario did not finish: {events:?}");
}

fn responses(events: &[Ev]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Response { .. })).count()
}

fn finished(events: &[Ev]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Response { .. } | Event::Failed { .. })).count()
}

fn failure(events: &[Ev], id: RequestId) -> &Error<MockError> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Failed { id: failed, error } if *failed == id => Some(error),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no failure for {id:?}: {events:?}"))
}

fn body(client: &TestClient, id: RequestId) -> String {
    String::from_utf8(client.response(id).unwrap().body().to_vec()).unwrap()
}

#[test]
fn request_goes_out_with_the_bearer_token_through_short_writes_and_reads() {
    let mut net = MockNet::default();
    net.script(
        api(),
        Script {
            connect_blocks: 3,
            send_max: 7,
            recv_max: 5,
            stutter: true,
            ..Script::answer(&http(200, "hello world"))
        },
    );
    let mut client = logged_in();
    let id = client
        .submit(
            t(0),
            &Request {
                headers: &[("Content-Type", "text/plain")],
                ..Request::post("/api/echo", b"ping")
            },
        )
        .unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| finished(e) == 1);
    assert!(matches!(events[..], [Event::Response { id: got, status: 200 }] if got == id));
    assert_eq!(body(&client, id), "hello world");
    assert_eq!(
        net.requests_to(api()),
        vec![
            "POST /api/echo HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\
             Content-Length: 4\r\nContent-Type: text/plain\r\nAuthorization: Bearer at1\r\n\r\n\
             ping"
        ]
    );
    assert_eq!(net.open_sockets(), 0, "the connection is closed once answered");
    assert_eq!(client.free_slots(), 2);
    assert!(client.release(id));
    assert!(client.response(id).is_none());
    assert_eq!(client.free_slots(), 3);
}

#[test]
fn k_expired_answers_give_one_refresh_and_k_replays_with_the_new_token() {
    let mut net = MockNet::default();
    for _ in 0..3 {
        net.script(api(), Script::answer(&http(401, "")));
    }
    net.script(
        auth(),
        Script { send_max: 11, recv_max: 9, ..Script::answer(&token_response("at2", "rt2", 600)) },
    );
    for i in 0..3 {
        net.script(api(), Script::answer(&http(200, &format!("ok{i}"))));
    }
    let mut client = logged_in();
    let ids: Vec<_> =
        (0..3).map(|_| client.submit(t(0), &Request::get("/api/data")).unwrap()).collect();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| responses(e) == 3);
    let token_requests = net.requests_to(auth());
    assert_eq!(token_requests.len(), 1, "exactly one refresh");
    assert!(token_requests[0].starts_with("POST /oauth/token HTTP/1.1\r\nHost: auth.test\r\n"));
    assert!(token_requests[0].contains("Content-Type: application/x-www-form-urlencoded\r\n"));
    assert!(token_requests[0].ends_with("\r\n\r\ngrant_type=refresh_token&refresh_token=rt1"));
    let api_requests = net.requests_to(api());
    assert_eq!(api_requests.len(), 6);
    assert!(api_requests[..3].iter().all(|r| r.contains("Authorization: Bearer at1\r\n")));
    assert!(api_requests[3..].iter().all(|r| r.contains("Authorization: Bearer at2\r\n")));
    assert!(events.iter().any(|e| matches!(e, Event::Refreshed { generation: Generation(2), .. })));
    assert_eq!(client.store().saved, ["rt1", "rt2"], "login and rotated tokens persisted");
    let mut bodies: Vec<_> = ids.iter().map(|&id| body(&client, id)).collect();
    bodies.sort();
    assert_eq!(bodies, ["ok0", "ok1", "ok2"]);
    assert_eq!(client.generation(), Generation(2));
    assert_eq!(net.open_sockets(), 0);
}

#[test]
fn refused_refresh_rejects_every_parked_request_and_needs_login() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    net.script(api(), Script::answer(&http(401, "")));
    net.script(auth(), Script::answer(&http(400, r#"{"error":"invalid_grant"}"#)));
    let mut client = logged_in();
    let a = client.submit(t(0), &Request::get("/api/a")).unwrap();
    let b = client.submit(t(0), &Request::get("/api/b")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| finished(e) == 2);
    for id in [a, b] {
        assert!(matches!(failure(&events, id), Error::Rejected(Rejection::NeedsLogin)));
    }
    assert!(events.iter().any(|e| matches!(
        e,
        Event::RefreshFailed { failure: RefreshFailure::Refused, error: Error::Refresh(_) }
    )));
    assert!(client.needs_login());
    assert_eq!(
        client.submit(t(5), &Request::get("/api/c")),
        Err(SubmitError::Rejected(Rejection::NeedsLogin))
    );
    assert_eq!(client.free_slots(), 3);
}

/// Issue 11 item 2 and issue 14 item 6 for reauth-nal: a refusal carries the OAuth error code;
/// a refusal of the client (its credentials, its authentication method, a wrong token path) is
/// a configuration error, and the refresh token it did not use stays in the store.
#[test]
fn refusals_carry_the_oauth_code_and_a_client_set_up_wrong_keeps_its_refresh_token() {
    let cases: [(u16, &str, Option<ErrorCode>, bool); 6] = [
        (
            400,
            r#"{"error":"invalid_grant","error_description":"Token \"x\" revoked\n"}"#,
            Some(ErrorCode::InvalidGrant),
            false,
        ),
        (401, "", None, false),
        (401, r#"{"error":"invalid_client"}"#, Some(ErrorCode::InvalidClient), true),
        (400, r#"{"error":"unauthorized_client"}"#, Some(ErrorCode::UnauthorizedClient), true),
        (404, "Not Found", None, true),
        (405, "", None, true),
    ];
    for (status, body, code, misconfigured) in cases {
        let mut net = MockNet::default();
        net.script(api(), Script::answer(&http(401, "")));
        net.script(auth(), Script::answer(&http(status, body)));
        let mut client = logged_in();
        let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
        let (events, _) = run(&mut client, &mut net, 0, 50, |e| finished(e) == 1);
        let error = events.iter().find_map(|e| match e {
            Event::RefreshFailed { failure: RefreshFailure::Refused, error: Error::Refresh(e) } => {
                Some(*e)
            }
            _ => None,
        });
        assert_eq!(error, Some(AnswerError::Refused { status, code }), "{status} {body}");
        let error = error.unwrap();
        assert_eq!(error.is_configuration_error(), misconfigured, "{status} {body}");
        let shown = error.to_string();
        assert!(shown.contains(&status.to_string()), "{shown}");
        if let Some(code) = code {
            assert!(shown.contains(code.as_str()), "{shown}");
        }
        assert_eq!(shown.contains("set up wrong"), misconfigured, "{shown}");
        // The server's own words, bounded and sanitised.
        let described = (code == Some(ErrorCode::InvalidGrant)).then_some("Token ?x? revoked?");
        assert_eq!(client.refusal_description(), described, "{status} {body}");
        assert!(matches!(failure(&events, id), Error::Rejected(Rejection::NeedsLogin)));
        assert!(client.needs_login());
        // Only a refused refresh token is dead; a client set up wrong did not use it.
        assert_eq!(client.store().cleared, u32::from(!misconfigured), "{status} {body}");
        assert_eq!(net.requests_to(auth()).len(), 1, "no retry of a refusal");
    }
}

/// Issue 11 item 6 for reauth-nal: an early refresh refused while the access token is still
/// valid keeps the token working until it turns stale; the refusal is reported at once, the
/// dead refresh token is erased at once, and it is never presented again.
#[test]
fn a_refused_early_refresh_keeps_the_access_token_until_it_turns_stale() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(200, "early")));
    net.script(auth(), Script::answer(&http(400, r#"{"error":"invalid_grant"}"#)));
    net.script(api(), Script::answer(&http(200, "still")));
    let mut client = logged_in();
    // An hour-long token: the early window starts at 3530 s, it turns stale at 3590 s.
    let early = client.submit(t(3_530_000), &Request::get("/api/early")).unwrap();
    let (events, now) = run(&mut client, &mut net, 3_530_000, 50, |e| {
        e.iter().any(|e| matches!(e, Event::RefreshFailed { .. })) && responses(e) == 1
    });
    assert!(events.iter().any(|e| matches!(
        e,
        Event::RefreshFailed {
            failure: RefreshFailure::Refused,
            error: Error::Refresh(AnswerError::Refused {
                status: 400,
                code: Some(ErrorCode::InvalidGrant)
            })
        }
    )));
    assert_eq!(body(&client, early), "early");
    client.release(early);
    assert!(matches!(client.coordinator().state(), reauth_core::State::Refused { .. }));
    assert!(client.coordinator().is_refused() && !client.needs_login());
    assert_eq!(client.store().cleared, 1, "the dead refresh token is erased at once");
    // The access token still works, without another refresh call.
    let still = client.submit(t(now + 1), &Request::get("/api/still")).unwrap();
    let (events, _) = run(&mut client, &mut net, now + 1, 50, |e| responses(e) == 1);
    assert_eq!(body(&client, still), "still", "{events:?}");
    client.release(still);
    assert!(net.requests_to(api()).iter().all(|r| r.contains("Bearer at1")));
    // Stale: needs login, and the client's timer said when.
    assert_eq!(client.poll_timeout(), Some(t(3_590_000)));
    let (_, _) = run(&mut client, &mut net, 3_590_000, 50, |_| true);
    assert!(client.needs_login());
    let later = client.submit(t(3_590_001), &Request::get("/api/late"));
    assert_eq!(later, Err(SubmitError::Rejected(Rejection::NeedsLogin)));
    assert_eq!(net.requests_to(auth()).len(), 1, "the refused token is never presented again");
}

/// Issue 11 item 1 for reauth-nal: `client_secret_basic` by default when a secret is given (id
/// and secret form-encoded, then base64), `client_secret_post` and public clients on request,
/// `scope` in the body each time.
#[test]
fn client_authentication_methods_and_scope_on_the_wire() {
    use reauth_core::oauth::{ClientAuth, RefreshParams};
    let params = RefreshParams {
        client_id: Some("dev:42"),
        client_secret: Some("p@ss word"),
        scope: Some("read write"),
    };
    let cases = [
        // base64("dev%3A42:p%40ss%20word"): a space in a Basic credential is %20 (reauth-core's
        // write_basic_authorization says why).
        (ClientAuth::Basic, Some("Authorization: Basic ZGV2JTNBNDI6cCU0MHNzJTIwd29yZA==\r\n"), ""),
        (ClientAuth::Post, None, "&client_id=dev%3A42&client_secret=p%40ss+word"),
        (ClientAuth::None, None, "&client_id=dev%3A42"),
    ];
    for (method, header, credentials) in cases {
        let mut net = MockNet::default();
        net.script(api(), Script::answer(&http(401, "")));
        net.script(auth(), Script::answer(&token_response("at2", "rt2", 600)));
        net.script(api(), Script::answer(&http(200, "ok")));
        let exchange = OAuth2 { path: "/oauth/token", params, auth: method };
        let mut client: TestClient = Client::new(config(), exchange, MemStore::default());
        client.login(t(0), "at1", "rt1", Some(Duration::from_secs(3600))).unwrap();
        client.submit(t(0), &Request::get("/api/x")).unwrap();
        let (events, _) = run(&mut client, &mut net, 0, 50, |e| responses(e) == 1);
        let sent = net.requests_to(auth());
        let [request] = &sent[..] else { panic!("{events:?}") };
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        match header {
            Some(line) => assert!(request.contains(line), "{request}"),
            None => assert!(!head.contains("Authorization"), "{request}"),
        }
        let expected =
            format!("grant_type=refresh_token&refresh_token=rt1{credentials}&scope=read+write");
        assert_eq!(body, expected, "{method:?}");
        // The secret travels in one form only, and never as plain text.
        assert!(!request.contains("p@ss"), "{request}");
        assert_eq!(request.contains("p%40ss"), method == ClientAuth::Post, "{request}");
    }
}

#[test]
fn a_refresh_is_lost_once_its_request_went_out_and_transient_only_before_or_on_408_429_5xx() {
    let token = token_response("at2", "rt2", 600);
    let cases: [(Script, Option<RefreshFailure>); 8] = [
        (Script { refuse: true, ..Script::default() }, None),
        (Script::answer(&http(503, "")), None),
        (Script::answer(&http(429, "")), None),
        (Script::answer(&http(408, "")), None),
        (Script { reset_after: Some(0), ..Script::answer(&token) }, Some(RefreshFailure::Lost)),
        (Script { close_after: Some(40), ..Script::answer(&token) }, Some(RefreshFailure::Lost)),
        (Script::answer(&http(200, "{not json")), Some(RefreshFailure::Lost)),
        // A code outside RFC 6749 §5.2: whether the grant went through is unknown.
        (
            Script::answer(&http(400, r#"{"error":"temporarily_unavailable"}"#)),
            Some(RefreshFailure::Lost),
        ),
    ];
    for (script, expected) in cases {
        let mut net = MockNet::default();
        net.script(api(), Script::answer(&http(401, "")));
        net.script(auth(), script.clone());
        net.script(auth(), Script::answer(&token));
        net.script(api(), Script::answer(&http(200, "ok")));
        let mut client = logged_in();
        client.submit(t(0), &Request::get("/api/x")).unwrap();
        let (events, _) = run(&mut client, &mut net, 0, 50, |e| finished(e) == 1);
        let failure = events.iter().find_map(|e| match e {
            Event::RefreshFailed { failure, .. } => Some(*failure),
            _ => None,
        });
        let expected = expected.unwrap_or(RefreshFailure::Transient { retry_after: None });
        match failure {
            Some(RefreshFailure::Transient { .. })
                if matches!(expected, RefreshFailure::Transient { .. }) => {}
            other => assert_eq!(other, Some(expected), "{script:?}: {events:?}"),
        }
        assert_eq!(responses(&events), 1, "{script:?}: the retry succeeds: {events:?}");
    }
}

#[test]
fn a_token_endpoint_that_never_answers_sees_one_refresh_token_at_most_max_attempts_times() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    for _ in 0..20 {
        net.script(auth(), Script { reset_after: Some(10), ..Script::answer(&http(200, "{}")) });
    }
    let mut client = logged_in_with(four_attempts());
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 50, |e| finished(e) == 1);
    let attempts = usize::from(client.config().coordinator.max_unanswered);
    let presented = net.requests_to(auth());
    assert_eq!(presented.len(), attempts, "{events:?}");
    assert!(presented.iter().all(|r| r.ends_with("refresh_token=rt1")));
    assert!(matches!(failure(&events, id), Error::Rejected(Rejection::NeedsLogin)));
    assert!(client.needs_login());
    // Later requests present nothing more.
    let later = client.submit(t(100_000), &Request::get("/api/y"));
    assert!(later.is_err() || net.requests_to(auth()).len() == attempts);
}

#[test]
fn transient_refresh_failures_back_off_and_retry() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    net.script(auth(), Script::answer(&http(503, "")));
    net.script(auth(), Script { refuse: true, ..Script::default() });
    net.script(auth(), Script::answer(&token_response("at2", "rt2", 600)));
    net.script(api(), Script::answer(&http(200, "finally")));
    let mut client = logged_in_with(four_attempts());
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 50, |e| responses(e) == 1);
    let transient = |e: &&Ev| {
        matches!(e, Event::RefreshFailed { failure: RefreshFailure::Transient { .. }, .. })
    };
    assert_eq!(events.iter().filter(transient).count(), 2, "{events:?}");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::RefreshFailed { error: Error::Transport { stage: Stage::Connect, .. }, .. }
    )));
    assert_eq!(net.requests_to(auth()).len(), 2, "the refused connect sent nothing");
    assert_eq!(body(&client, id), "finally");
}

#[test]
fn every_attempt_failing_transiently_rejects_with_refresh_unavailable() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    for _ in 0..4 {
        net.script(auth(), Script::answer(&http(503, "")));
    }
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 100, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Rejected(Rejection::RefreshUnavailable)));
    assert_eq!(net.requests_to(auth()).len(), 2, "max_refresh_attempts");
    assert!(!client.needs_login(), "transient failures never log out");
}

#[test]
fn a_request_parked_longer_than_the_wait_timeout_is_rejected_with_timeout() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    for _ in 0..4 {
        net.script(auth(), Script { silent: true, ..Script::default() });
    }
    // Shorter than an episode (the default is longer, so that requests hear its outcome).
    let mut config = config();
    config.coordinator.wait_timeout = Duration::from_secs(10);
    let mut client = logged_in_with(config);
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, end) = run(&mut client, &mut net, 0, 500, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Rejected(Rejection::Timeout)), "{events:?}");
    assert_eq!(end, 10_000, "the wait timeout");
}

#[test]
fn persistence_failure_is_reported_and_the_new_tokens_are_used_anyway() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    net.script(auth(), Script::answer(&token_response("at2", "rt2", 600)));
    net.script(api(), Script::answer(&http(200, "ok")));
    let mut client = logged_in();
    client.store_mut().fail = true;
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| responses(e) == 1);
    let persist =
        events.iter().position(|e| matches!(e, Event::PersistFailed { error: FlashFull }));
    let refreshed = events.iter().position(|e| matches!(e, Event::Refreshed { .. }));
    assert!(persist.unwrap() < refreshed.unwrap(), "{events:?}");
    assert!(net.requests_to(api())[1].contains("Bearer at2"));
    assert_eq!(body(&client, id), "ok");
}

#[test]
fn a_stale_expired_answer_is_replayed_without_a_second_refresh() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    // The second request connects slowly: the refresh caused by the first ends meanwhile, and
    // its own 401 (for the old token) arrives afterwards.
    net.script(api(), Script { connect_blocks: 40, ..Script::answer(&http(401, "")) });
    net.script(auth(), Script::answer(&token_response("at2", "rt2", 600)));
    net.script(api(), Script::answer(&http(200, "a")));
    net.script(api(), Script::answer(&http(200, "b")));
    let mut client = logged_in();
    let a = client.submit(t(0), &Request::get("/api/a")).unwrap();
    let b = client.submit(t(0), &Request::get("/api/b")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| responses(e) == 2);
    assert_eq!(net.requests_to(auth()).len(), 1, "{events:?}");
    let b_requests: Vec<_> =
        net.requests_to(api()).into_iter().filter(|r| r.contains("/api/b")).collect();
    assert_eq!(b_requests.len(), 2);
    assert!(b_requests[0].contains("Bearer at1") && b_requests[1].contains("Bearer at2"));
    assert!(
        events_order_ok(&net),
        "b's first request went out after the refresh: {:?}",
        net.requests
    );
    assert_eq!((body(&client, a), body(&client, b)), ("a".into(), "b".into()));
}

/// True if the token request came before b's first (stale) request completed.
fn events_order_ok(net: &MockNet) -> bool {
    let refresh = net.requests.iter().position(|(to, _)| *to == auth());
    let stale_b = net.requests.iter().position(|(_, r)| {
        let r = String::from_utf8_lossy(r);
        r.contains("/api/b") && r.contains("Bearer at1")
    });
    refresh < stale_b
}

#[test]
fn a_request_still_refused_after_its_replay_is_unauthorized() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    net.script(auth(), Script::answer(&token_response("at2", "rt2", 600)));
    net.script(api(), Script::answer(&http(401, "")));
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Rejected(Rejection::Unauthorized)));
    assert_eq!(net.requests_to(auth()).len(), 1);
}

#[test]
fn classic_body_code_409_counts_as_expiry() {
    const RULE: ExpiryRule<'static> =
        ExpiryRule::STATUS_401.body_code(BodyCode { field: "code", values: &[409] });
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(200, r#"{"code":409,"message":"token expired"}"#)));
    net.script(auth(), Script::answer(&token_response("at2", "rt2", 600)));
    net.script(api(), Script::answer(&http(200, r#"{"code":0,"data":1}"#)));
    let mut client = client_with(ClientConfig { expiry: RULE, ..config() });
    client.login(t(0), "at1", "rt1", None).unwrap();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    run(&mut client, &mut net, 0, 1, |e| responses(e) == 1);
    assert_eq!(net.requests_to(auth()).len(), 1);
    assert_eq!(body(&client, id), r#"{"code":0,"data":1}"#);
}

#[test]
fn restored_refresh_token_refreshes_before_the_first_request() {
    let mut net = MockNet::default();
    net.script(auth(), Script::answer(&token_response("at2", "rt2", 600)));
    net.script(api(), Script::answer(&http(200, "hi")));
    let mut client = client_with(config());
    client.restore(t(0), "rt-from-flash").unwrap();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    assert_eq!(client.poll_timeout(), Some(t(0)), "the refresh is ready to start");
    run(&mut client, &mut net, 0, 1, |e| responses(e) == 1);
    assert!(net.requests_to(auth())[0].ends_with("refresh_token=rt-from-flash"));
    assert_eq!(net.requests_to(api()).len(), 1, "the request waited for the token");
    assert_eq!(body(&client, id), "hi");
}

#[test]
fn chunked_and_close_delimited_bodies_are_read() {
    let mut net = MockNet::default();
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    net.script(api(), Script { recv_max: 4, ..Script::answer(chunked) });
    net.script(
        api(),
        Script { recv_max: 3, ..Script::answer(b"HTTP/1.1 200 OK\r\n\r\nto the end") },
    );
    let mut client = logged_in();
    let a = client.submit(t(0), &Request::get("/api/a")).unwrap();
    let b = client.submit(t(0), &Request::get("/api/b")).unwrap();
    run(&mut client, &mut net, 0, 1, |e| responses(e) == 2);
    assert_eq!(body(&client, a), "abcde");
    assert_eq!(body(&client, b), "to the end");
}

#[test]
fn responses_larger_than_the_buffer_are_errors() {
    let mut net = MockNet::default();
    let big = "x".repeat(300);
    net.script(api(), Script::answer(&http(200, &big)));
    net.script(api(), Script::answer(format!("HTTP/1.1 200 OK\r\n\r\n{big}").as_bytes()));
    let chunked =
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n12c\r\n{big}\r\n0\r\n\r\n");
    net.script(api(), Script { recv_max: 50, ..Script::answer(chunked.as_bytes()) });
    let mut client = logged_in();
    let ids: Vec<_> =
        (0..3).map(|_| client.submit(t(0), &Request::get("/api/big")).unwrap()).collect();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| finished(e) == 3);
    for id in ids {
        assert!(
            matches!(failure(&events, id), Error::ResponseTooLarge { capacity: 256 }),
            "{events:?}"
        );
    }
    assert_eq!(net.open_sockets(), 0);
    assert_eq!(client.free_slots(), 3);
}

#[test]
fn connections_dropped_mid_body_are_errors() {
    let mut net = MockNet::default();
    let response = http(200, "0123456789");
    net.script(
        api(),
        Script { close_after: Some(response.len() - 4), ..Script::answer(&response) },
    );
    net.script(
        api(),
        Script { reset_after: Some(response.len() - 4), ..Script::answer(&response) },
    );
    net.script(api(), Script { refuse: true, ..Script::default() });
    let mut client = logged_in();
    let ids: Vec<_> =
        (0..3).map(|_| client.submit(t(0), &Request::get("/api/x")).unwrap()).collect();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| finished(e) == 3);
    assert!(matches!(failure(&events, ids[0]), Error::ConnectionClosed));
    let reset = failure(&events, ids[1]);
    assert!(matches!(reset, Error::Transport { stage: Stage::Receive, .. }));
    assert_eq!(reset.transport_kind(), Some(TcpErrorKind::PipeClosed));
    assert!(matches!(failure(&events, ids[2]), Error::Transport { stage: Stage::Connect, .. }));
    assert_eq!(net.open_sockets(), 0);
}

#[test]
fn connect_and_response_timeouts_fire_on_the_callers_clock() {
    let mut net = MockNet::default();
    net.script(api(), Script { connect_blocks: u32::MAX, ..Script::default() });
    net.script(api(), Script { silent: true, ..Script::default() });
    let mut client = logged_in();
    let ids: Vec<_> =
        (0..2).map(|_| client.submit(t(0), &Request::get("/api/x")).unwrap()).collect();
    let (events, end) = run(&mut client, &mut net, 0, 500, |e| finished(e) == 2);
    assert!(matches!(failure(&events, ids[0]), Error::Timeout(TimeoutKind::Connect)));
    assert!(matches!(failure(&events, ids[1]), Error::Timeout(TimeoutKind::Response)));
    assert_eq!(end, 15_000, "the later (response) deadline is 15 s after the send at 0 ms");
    assert_eq!(net.open_sockets(), 0);
}

#[test]
fn a_head_trickling_in_does_not_extend_the_response_deadline() {
    let mut net = MockNet::default();
    // One byte of the head per poll, a poll per second: the head would take 30 s and more.
    let response = http(200, "0123456789");
    net.script(
        api(),
        Script { recv_max: 1, stutter: true, stall_after: Some(30), ..Script::answer(&response) },
    );
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, end) = run(&mut client, &mut net, 0, 1_000, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Timeout(TimeoutKind::Response)), "{events:?}");
    assert!((15_000..=17_000).contains(&end), "15 s after the request went out, not {end} ms");
}

#[test]
fn a_stalled_body_hits_the_idle_timeout() {
    let mut net = MockNet::default();
    // The head and part of the body arrive; the rest never does, and the peer stays open.
    let response = http(200, "0123456789");
    let stall = response.len() - 3;
    net.script(api(), Script { stall_after: Some(stall), ..Script::answer(&response) });
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, end) = run(&mut client, &mut net, 0, 250, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Timeout(TimeoutKind::Idle)), "{events:?}");
    assert_eq!(end, 10_000);
}

#[test]
fn a_server_trickling_endless_trailers_hits_the_total_timeout() {
    let mut net = MockNet::default();
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n";
    net.script(api(), Script { endless: b"X-Trailer: 1\r\n".to_vec(), ..Script::answer(head) });
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, end) = run(&mut client, &mut net, 0, 1_000, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Timeout(TimeoutKind::Total)), "{events:?}");
    assert_eq!(end, 60_000);
    assert_eq!(net.open_sockets(), 0);
}

#[test]
fn submit_refuses_what_cannot_be_sent() {
    let mut client = client_with(config());
    assert_eq!(
        client.submit(t(0), &Request::get("/api/x")),
        Err(SubmitError::Rejected(Rejection::NeedsLogin))
    );
    client.login(t(0), "at1", "rt1", None).unwrap();
    assert_eq!(client.submit(t(0), &Request::get("/a b")), Err(SubmitError::InvalidRequest));
    let body = [b'x'; 300];
    assert!(matches!(
        client.submit(t(0), &Request::post("/api/x", &body)),
        Err(SubmitError::RequestTooLarge { capacity: 384, .. })
    ));
    for _ in 0..3 {
        client.submit(t(0), &Request::get("/api/x")).unwrap();
    }
    assert_eq!(client.submit(t(0), &Request::get("/api/x")), Err(SubmitError::Busy));
}

#[test]
fn cancel_closes_the_connection_and_frees_the_slot() {
    let mut net = MockNet::default();
    net.script(api(), Script { silent: true, ..Script::default() });
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    assert!(drain(&mut client, &mut net, t(0)).is_empty());
    assert_eq!(net.open_sockets(), 1);
    assert!(client.cancel(&mut net, t(1), id));
    assert_eq!(net.open_sockets(), 0);
    assert_eq!(client.free_slots(), 3);
    assert!(!client.cancel(&mut net, t(1), id));
    assert!(drain(&mut client, &mut net, t(2)).is_empty());
}

#[test]
fn logout_rejects_parked_requests() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    net.script(auth(), Script { silent: true, ..Script::default() });
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    drain(&mut client, &mut net, t(0));
    drain(&mut client, &mut net, t(1));
    assert_eq!(client.coordinator().parked_len(), 1);
    client.logout(t(2)).unwrap();
    let events = drain(&mut client, &mut net, t(3));
    assert!(matches!(failure(&events, id), Error::Rejected(Rejection::NeedsLogin)));
}

#[test]
fn poll_timeout_tracks_the_earliest_deadline() {
    let mut net = MockNet::default();
    net.script(api(), Script { silent: true, ..Script::default() });
    let mut client = logged_in();
    assert_eq!(client.poll_timeout(), None, "nothing waits");
    client.submit(t(100), &Request::get("/api/x")).unwrap();
    assert_eq!(client.poll_timeout(), Some(Instant::ZERO), "a request is ready to start");
    assert!(drain(&mut client, &mut net, t(100)).is_empty());
    assert_eq!(client.poll_timeout(), Some(t(100 + 15_000)), "the response deadline");
}

#[test]
fn tokens_never_show_in_debug_output() {
    let mut net = MockNet::default();
    net.script(api(), Script::answer(&http(401, "")));
    net.script(auth(), Script::answer(&token_response("SECRET-AT2", "SECRET-RT2", 600)));
    net.script(api(), Script::answer(&http(200, "ok")));
    let mut client = client_with(config());
    client.login(t(0), "SECRET-AT1", "SECRET-RT1", None).unwrap();
    client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| responses(e) == 1);
    let shown = format!("{client:?} {events:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[test]
fn random_network_behaviour_gives_every_request_exactly_one_outcome() {
    let answers = [
        http(200, "ok"),
        http(401, ""),
        http(200, r#"{"code":409}"#),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
        token_response("at-next", "rt-next", 1),
        http(503, ""),
        http(400, r#"{"error":"invalid_grant"}"#),
        b"HTTP/1.1 2".to_vec(),
        b"garbage\r\n\r\n".to_vec(),
    ];
    let mut state = 0x1234_5678_9ABC_DEF1_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut answered, mut failed, mut refreshed) = (0, 0, 0);
    for _ in 0..300 {
        let mut net = MockNet::default();
        for remote in [api(), auth()] {
            for _ in 0..12 {
                let pick = |n: u64, m: usize| (n % m as u64) as usize;
                let response = answers[pick(next(), answers.len())].clone();
                let len = response.len();
                let script = Script {
                    connect_blocks: pick(next(), 3) as u32,
                    refuse: next() % 17 == 0,
                    send_max: pick(next(), 40),
                    recv_max: pick(next(), 12),
                    stutter: next() % 2 == 0,
                    close_after: (next() % 9 == 0).then(|| pick(next(), len + 1)),
                    reset_after: (next() % 11 == 0).then(|| pick(next(), len + 1)),
                    silent: next() % 23 == 0,
                    stall_after: (next() % 19 == 0).then(|| pick(next(), len + 1)),
                    endless: Vec::new(),
                    keep_open: next() % 2 == 0,
                    gone: next() % 29 == 0,
                    response,
                };
                net.script(remote, script);
            }
        }
        let rule = ExpiryRule::STATUS_401.body_code(BodyCode { field: "code", values: &[409] });
        // Half the rounds keep connections, so that reuse meets every fault too.
        let keep_alive = Duration::from_secs(if next() % 2 == 0 { 4 } else { 0 });
        let timeouts = Timeouts { keep_alive, ..Timeouts::DEFAULT };
        let mut client = client_with(ClientConfig { expiry: rule, timeouts, ..config() });
        client.login(t(0), "at1", "rt1", Some(Duration::from_secs(2))).unwrap();
        let ids: Vec<_> =
            (0..3).map(|_| client.submit(t(0), &Request::get("/api/x")).unwrap()).collect();
        let (events, _) = run(&mut client, &mut net, 0, 100, |e| finished(e) == 3);
        answered += responses(&events);
        failed += finished(&events) - responses(&events);
        refreshed += events.iter().filter(|e| matches!(e, Event::Refreshed { .. })).count();
        for id in ids {
            let names = |e: &&Ev| match e {
                Event::Response { id: i, .. } | Event::Failed { id: i, .. } => *i == id,
                _ => false,
            };
            let outcomes = events.iter().filter(names).count();
            assert_eq!(outcomes, 1, "{id:?}: {events:?}");
            client.release(id);
        }
        assert_eq!(client.free_slots(), 3);
        // Let a refresh still on the wire finish (or time out) before counting sockets.
        for round in 0..100 {
            if net.open_sockets() == 0 {
                break;
            }
            drain(&mut client, &mut net, t(400_000 + round * 1_000));
        }
        assert_eq!(net.open_sockets(), 0);
    }
    // The mix really exercised both outcomes and the refresh path.
    assert!(answered > 100 && failed > 100 && refreshed > 10, "{answered} {failed} {refreshed}");
}

/// A client logged in like [`logged_in`], keeping connections for 4 s.
fn keeping_connections() -> TestClient {
    let mut client = client_with(ClientConfig::new(
        Endpoint { addr: api(), host: "api.test" },
        Endpoint { addr: auth(), host: "auth.test" },
    ));
    assert_eq!(client.config().timeouts.keep_alive, Duration::from_secs(4));
    client.login(t(0), "at1", "rt1", Some(Duration::from_secs(3600))).unwrap();
    client
}

/// Submits `request` at `at` ms, polls until it has an outcome, and returns the events and the
/// body of its answer (its slot released).
fn exchange(
    client: &mut TestClient,
    net: &mut MockNet,
    at: u64,
    request: &Request<'_>,
) -> (Vec<Ev>, String) {
    let id = client.submit(t(at), request).unwrap();
    let (events, _) = run(client, net, at, 1, |e| finished(e) == 1);
    let answer = body(client, id);
    assert!(client.release(id));
    (events, answer)
}

#[test]
fn a_slot_keeps_its_connection_for_the_next_request() {
    let mut net = MockNet::default();
    for body in ["one", "two", "three"] {
        net.script(api(), Script { keep_open: true, ..Script::answer(&http(200, body)) });
    }
    let mut client = keeping_connections();
    for (at, expected) in [(0, "one"), (1_000, "two"), (3_900, "three")] {
        assert_eq!(exchange(&mut client, &mut net, at, &Request::get("/api/x")).1, expected);
    }
    assert_eq!(net.sockets_opened(), 1, "one connection for three requests");
    assert_eq!(net.open_sockets(), 1, "kept for the next one");
    let requests = net.requests_to(api());
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| !r.contains("Connection")), "{requests:?}");
    // Idle past `keep_alive`: closed at the next poll, without a request.
    drain(&mut client, &mut net, t(3_900 + 4_000));
    assert_eq!(net.open_sockets(), 0);
}

/// Two GETs from one slot, where the server has closed the kept connection between them as
/// `closed` scripts it: the second must still be answered (by the next connection), with no
/// failure. Returns the stack, to count the requests that went.
fn second_get_after_the_server_closed(closed: Script) -> MockNet {
    let mut net = MockNet::default();
    net.script(api(), Script { keep_open: true, ..Script::answer(&http(200, "one")) });
    net.script(api(), closed);
    net.script(api(), Script::answer(&http(200, "two")));
    let mut client = keeping_connections();
    exchange(&mut client, &mut net, 0, &Request::get("/api/x"));
    let (events, answer) = exchange(&mut client, &mut net, 500, &Request::get("/api/x"));
    assert_eq!(answer, "two");
    assert!(!events.iter().any(|e| matches!(e, Event::Failed { .. })), "{events:?}");
    assert_eq!(net.sockets_opened(), 2);
    net
}

#[test]
fn a_kept_connection_the_server_closed_is_replaced_and_the_request_goes_again() {
    // The server closes the idle connection just as the next request arrives (after the
    // client's check that it was still open): that request reads the end at once.
    let closing = Script { close_after: Some(0), ..Script::answer(&http(200, "lost")) };
    let net = second_get_after_the_server_closed(closing);
    assert_eq!(net.requests_to(api()).len(), 3, "the second request went twice");
}

#[test]
fn a_kept_connection_whose_server_is_slow_does_not_get_the_request_twice() {
    let mut net = MockNet::default();
    net.script(api(), Script { keep_open: true, ..Script::answer(&http(200, "one")) });
    // The next request on the kept connection is read and never answered.
    net.script(api(), Script { silent: true, ..Script::default() });
    let mut client = keeping_connections();
    exchange(&mut client, &mut net, 0, &Request::get("/api/x"));
    let id = client.submit(t(500), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 500, 100, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Timeout(TimeoutKind::Response)), "{events:?}");
    assert_eq!(net.requests_to(api()).len(), 2, "the second request went once");
    assert_eq!(net.sockets_opened(), 1);
}

#[test]
fn the_response_timeout_holds_while_a_head_trickles_in() {
    let timeouts = Timeouts { response: Duration::from_millis(3), ..config().timeouts };
    let mut client = client_with(ClientConfig { timeouts, ..config() });
    client.login(t(0), "at1", "rt1", Some(Duration::from_secs(3600))).unwrap();
    let mut net = MockNet::default();
    // A head of about 230 bytes, one byte per receive: every poll makes progress.
    let head =
        format!("HTTP/1.1 200 OK\r\nX-Slow: {}\r\nContent-Length: 0\r\n\r\n", "a".repeat(190));
    net.script(api(), Script { recv_max: 1, ..Script::answer(head.as_bytes()) });
    let id = client.submit(t(0), &Request::get("/api/slow")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| finished(e) == 1);
    assert!(matches!(failure(&events, id), Error::Timeout(TimeoutKind::Response)), "{events:?}");
}

#[test]
fn a_flood_of_interim_responses_fails_the_request() {
    let mut net = MockNet::default();
    let mut flood = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(20);
    flood.extend_from_slice(&http(200, "late"));
    net.script(api(), Script::answer(&flood));
    let mut client = logged_in();
    let id = client.submit(t(0), &Request::get("/api/x")).unwrap();
    let (events, _) = run(&mut client, &mut net, 0, 1, |e| finished(e) == 1);
    let error = failure(&events, id);
    assert!(matches!(error, Error::Http(crate::HttpError::TooManyInterimResponses)), "{error:?}");
    assert_eq!(net.open_sockets(), 0);
}

#[test]
fn a_kept_connection_found_closed_before_sending_is_replaced_without_a_resend() {
    let net = second_get_after_the_server_closed(Script { gone: true, ..Script::default() });
    assert_eq!(net.requests_to(api()).len(), 2, "each request went once");
}

#[test]
fn connections_are_not_kept_for_a_post_a_close_or_http_1_0() {
    let mut net = MockNet::default();
    let closing =
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 3\r\n\r\none";
    net.script(api(), Script::answer(closing));
    net.script(api(), Script::answer(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\ntwo"));
    net.script(api(), Script::answer(&http(200, "three")));
    let mut client = keeping_connections();
    let requests = [Request::get("/a"), Request::get("/b"), Request::post("/c", b"{}")];
    for (at, (request, expected)) in requests.iter().zip(["one", "two", "three"]).enumerate() {
        assert_eq!(exchange(&mut client, &mut net, at as u64 * 10, request).1, expected);
        assert_eq!(net.open_sockets(), 0, "{request:?}: the connection was kept");
    }
    let sent = net.requests_to(api());
    assert!(!sent[0].contains("Connection"), "a GET asks to keep it");
    assert!(sent[2].contains("\r\nConnection: close\r\n"), "a POST asks to close it");
}

/// The personalities of [`crate::personality`] over the mock, each under its stack profile.
mod personalities {
    use super::*;
    use crate::Transport;
    use crate::personality::{AtLike, SmoltcpLike, W5500Like};
    use crate::stack::{AtModem, SmoltcpNal, StreamEnd, W5500};

    type PClient<T> = Client<'static, T, MemStore, OAuth2<'static>, 3, 384, 256, 48, 48>;
    type PEv<T> = Event<<T as Transport>::Error, FlashFull>;

    /// A stack personality over [`MockNet`], as the client sees it.
    trait Personality: Transport + Sized {
        fn wrap(mock: MockNet) -> Self;
        fn mock(&self) -> &MockNet;
    }

    impl Personality for MockNet {
        fn wrap(mock: MockNet) -> Self {
            mock
        }
        fn mock(&self) -> &MockNet {
            self
        }
    }

    impl Personality for SmoltcpNal<SmoltcpLike<MockNet>> {
        fn wrap(mock: MockNet) -> Self {
            Self(SmoltcpLike(mock))
        }
        fn mock(&self) -> &MockNet {
            &self.0.0
        }
    }

    impl Personality for W5500<W5500Like<MockNet>> {
        fn wrap(mock: MockNet) -> Self {
            Self(W5500Like(mock))
        }
        fn mock(&self) -> &MockNet {
            &self.0.0
        }
    }

    impl Personality for AtModem<AtLike<MockNet>> {
        fn wrap(mock: MockNet) -> Self {
            Self(AtLike(mock))
        }
        fn mock(&self) -> &MockNet {
            &self.0.0
        }
    }

    /// Polls with the clock moving 1 ms per round until `n` requests finished (bounded).
    fn run_until<T: Transport>(client: &mut PClient<T>, net: &mut T, n: usize) -> Vec<PEv<T>> {
        let mut events = Vec::new();
        for now in 0..100_000 {
            for _ in 0..1_000 {
                match client.poll(net, t(now)) {
                    Some(event) => events.push(event),
                    None => break,
                }
            }
            let done = events
                .iter()
                .filter(|e| matches!(e, Event::Response { .. } | Event::Failed { .. }))
                .count();
            if done == n {
                return events;
            }
        }
        panic!("scenario did not finish: {events:?}");
    }

    fn logged_in<T: Transport>() -> PClient<T> {
        let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
        let mut client = Client::new(config(), exchange, MemStore::default());
        client.login(t(0), "at1", "rt1", Some(Duration::from_secs(3600))).unwrap();
        client
    }

    fn net_with<T: Personality>(scripts: Vec<(SocketAddr, Script)>) -> T {
        let mut mock = MockNet::default();
        mock.http11 = true;
        for (to, script) in scripts {
            mock.script(to, script);
        }
        T::wrap(mock)
    }

    fn expiry_is_refreshed_once_through_short_reads_and_writes<T: Personality>() {
        let scripts = vec![
            (api(), Script { stutter: true, recv_max: 5, ..Script::answer(&http(401, "")) }),
            (
                auth(),
                Script {
                    send_max: 11,
                    recv_max: 9,
                    stutter: true,
                    ..Script::answer(&token_response("at2", "rt2", 600))
                },
            ),
            (api(), Script { connect_blocks: 3, recv_max: 4, ..Script::answer(&http(200, "ok")) }),
        ];
        let mut net: T = net_with(scripts);
        let mut client = logged_in::<T>();
        let id = client.submit(t(0), &Request::get("/api/data")).unwrap();
        let events = run_until(&mut client, &mut net, 1);
        assert!(matches!(events.last(), Some(Event::Response { status: 200, .. })), "{events:?}");
        assert_eq!(client.response(id).unwrap().body(), b"ok");
        assert_eq!(net.mock().requests_to(auth()).len(), 1, "one refresh");
        let asks_close = !matches!(T::STREAM_END, StreamEnd::LosesUnread);
        for request in net.mock().requests_to(api()).iter().chain(&net.mock().requests_to(auth())) {
            assert_eq!(request.contains("\r\nConnection: close\r\n"), asks_close, "{request}");
        }
        assert_eq!(net.mock().open_sockets(), 0);
        assert_eq!(client.store().saved, ["rt1", "rt2"]);
    }

    fn a_close_delimited_body_is_read_where_the_stack_reports_the_end<T: Personality>() {
        let answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello";
        let mut net: T = net_with(vec![(api(), Script::answer(answer))]);
        let mut client = logged_in::<T>();
        let id = client.submit(t(0), &Request::get("/api/stream")).unwrap();
        let events = run_until(&mut client, &mut net, 1);
        if matches!(T::STREAM_END, StreamEnd::Reported) {
            assert_eq!(client.response(id).unwrap().body(), b"hello", "{events:?}");
        } else {
            let error = events.iter().find_map(|e| match e {
                Event::Failed { error, .. } => Some(error),
                _ => None,
            });
            assert!(matches!(error, Some(Error::Http(crate::HttpError::CloseDelimited))));
        }
        assert_eq!(net.mock().open_sockets(), 0);
    }

    /// The server closes in the middle of the body: every profile fails the request, none
    /// hands out a truncated body; a stack that never reports the end fails at the idle
    /// timeout.
    fn an_answer_cut_short_is_an_error_never_a_short_body<T: Personality>() {
        let answer = http(200, "0123456789");
        let cut = answer.len() - 4;
        let script = Script { close_after: Some(cut), ..Script::answer(&answer) };
        let mut net: T = net_with(vec![(api(), script)]);
        let mut client = logged_in::<T>();
        client.submit(t(0), &Request::get("/api/cut")).unwrap();
        let events = run_until(&mut client, &mut net, 1);
        let error = events
            .iter()
            .find_map(|e| match e {
                Event::Failed { error, .. } => Some(error),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{events:?}"));
        match T::STREAM_END {
            StreamEnd::Reported => assert!(matches!(error, Error::ConnectionClosed), "{error:?}"),
            StreamEnd::LosesUnread => {
                assert!(matches!(error, Error::Transport { stage: Stage::Receive, .. }))
            }
            _ => assert!(matches!(error, Error::Timeout(TimeoutKind::Idle)), "{error:?}"),
        }
        assert_eq!(net.mock().open_sockets(), 0);
    }

    macro_rules! for_every_personality {
        ($($name:ident: $net:ty),* $(,)?) => {$(
            mod $name {
                use super::*;
                #[test]
                fn expiry_is_refreshed_once_through_short_reads_and_writes() {
                    super::expiry_is_refreshed_once_through_short_reads_and_writes::<$net>();
                }
                #[test]
                fn a_close_delimited_body_is_read_where_the_stack_reports_the_end() {
                    super::a_close_delimited_body_is_read_where_the_stack_reports_the_end::<$net>();
                }
                #[test]
                fn an_answer_cut_short_is_an_error_never_a_short_body() {
                    super::an_answer_cut_short_is_an_error_never_a_short_body::<$net>();
                }
            }
        )*};
    }

    for_every_personality! {
        std_nal: MockNet,
        smoltcp_nal: SmoltcpNal<SmoltcpLike<MockNet>>,
        w5500: W5500<W5500Like<MockNet>>,
        at_modem: AtModem<AtLike<MockNet>>,
    }

    #[test]
    fn bare_w5500_loses_an_answer_its_server_closes_behind() {
        // What the W5500 profile avoids by never asking the server to close: a server that
        // closes right after its answer, before the client read it, takes the answer along.
        let mut mock = MockNet::default();
        mock.script(api(), Script::answer(&http(200, "gone")));
        let mut net = W5500(W5500Like(mock));
        let mut client = logged_in::<W5500<W5500Like<MockNet>>>();
        client.submit(t(0), &Request::get("/api/x")).unwrap();
        let events = run_until(&mut client, &mut net, 1);
        assert!(
            matches!(events[..], [Event::Failed { error: Error::Transport { .. }, .. }]),
            "{events:?}"
        );
    }
}
