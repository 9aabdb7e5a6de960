// The faults suite, included once per stack personality by `tests/faults.rs`, where
// `Stack` names the personality.

use core::time::Duration as StdDuration;
use std::string::{String, ToString};
use std::time::Instant as StdInstant;

use reauth_core::{Backoff, Config, Duration, Generation, Instant, RefreshFailure, Rejection};
use reauth_core::{RequestId, State};
use reauth_nal::{
    AnswerError, Client, ClientConfig, Error, Event, LoginError, OAuth2, Request, SubmitError,
    TimeoutKind, Timeouts, Transport,
};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};

use crate::common::{Flash, FlashError, oauth, quick};

/// Request slots of the test client.
/// The common client configuration, with this personality's timeouts.
fn config<'a>(host: &'a str, issuer: &MockIssuer) -> ClientConfig<'a> {
    crate::common::config_for::<Stack>(host, issuer)
}

const K: usize = 4;
type TestClient<'a> = Client<'a, Stack, Flash, OAuth2<'static>, K, 1024, 4096, 512, 256>;
type NetError = <Stack as Transport>::Error;
type Ev = Event<NetError, FlashError>;

fn lifetime(d: StdDuration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap())
}

/// A client logged in at `now` with a fresh session of `issuer`; the issuer's counters start
/// at 0.
fn logged_in<'a>(issuer: &MockIssuer, config: ClientConfig<'a>, now: Instant) -> TestClient<'a> {
    let mut client = Client::new(config, oauth(), Flash::default());
    let tokens = issuer.login();
    let lifetime = lifetime(tokens.expires_in);
    client.login(now, &tokens.access_token, &tokens.refresh_token, Some(lifetime)).unwrap();
    issuer.reset_counters();
    client
}

/// One poll loop's clock and record.
struct Run {
    start: StdInstant,
    /// Added to the milliseconds since `start`, so a run can begin late on the client's clock.
    offset: u64,
    /// On every other round, read the clock this much behind: time going backwards.
    backwards: u64,
    /// Every event, with the client's time when it was handed out: the latest `now` it was
    /// fed, since it clamps time that goes backwards.
    events: Vec<(Instant, Ev)>,
    /// Every answered response: id, status, body (the slot is released at once).
    bodies: Vec<(RequestId, u16, String)>,
}

impl Run {
    fn new() -> Self {
        Self::starting_at(0)
    }

    fn starting_at(offset: u64) -> Self {
        Self {
            start: StdInstant::now(),
            offset,
            backwards: 0,
            events: Vec::new(),
            bodies: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.offset + self.start.elapsed().as_millis() as u64)
    }

    /// Polls until `done` holds, at most `bound` of wall time and 1e6 rounds. Checks on the way
    /// that the client's clock never goes backwards, whatever it is fed.
    fn until(
        &mut self,
        client: &mut TestClient<'_>,
        net: &mut Stack,
        bound: StdDuration,
        mut done: impl FnMut(&Self) -> bool,
    ) {
        let deadline = StdInstant::now() + bound;
        let mut latest = client.coordinator().now();
        let mut clock = latest;
        for round in 0..1_000_000u64 {
            if done(self) {
                return;
            }
            assert!(StdInstant::now() < deadline, "not done in {bound:?}: {:?}", self.events);
            let real = self.now();
            let now = if round % 2 == 1 {
                Instant::from_millis(real.millis().saturating_sub(self.backwards))
            } else {
                real
            };
            clock = clock.max(now);
            let mut any = false;
            for _ in 0..1_000 {
                let Some(event) = client.poll(net, now) else {
                    break;
                };
                any = true;
                if let Event::Response { id, status } = event {
                    let body = String::from_utf8_lossy(client.response(id).unwrap().body());
                    self.bodies.push((id, status, body.into_owned()));
                    assert!(client.release(id));
                }
                self.events.push((clock, event));
            }
            let seen = client.coordinator().now();
            assert!(seen >= latest, "the client's clock went back from {latest:?} to {seen:?}");
            latest = seen;
            if !any {
                std::thread::sleep(StdDuration::from_millis(1));
            }
        }
        panic!("poll loop ran 1e6 rounds; events so far: {:?}", self.events);
    }

    /// How many outcomes (`Response` or `Failed`) name `id`.
    fn outcomes(&self, id: RequestId) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| match e {
                Event::Response { id: got, .. } | Event::Failed { id: got, .. } => *got == id,
                _ => false,
            })
            .count()
    }

    fn all_finished(&self, ids: &[RequestId]) -> bool {
        ids.iter().all(|&id| self.outcomes(id) > 0)
    }

    /// Every request got exactly one outcome, no outcome names another request, and every
    /// slot is free again.
    fn assert_one_outcome_each(&self, client: &TestClient<'_>, ids: &[RequestId]) {
        for &id in ids {
            assert_eq!(self.outcomes(id), 1, "{id:?}: {:?}", self.events);
        }
        let total: usize = self
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Response { .. } | Event::Failed { .. }))
            .count();
        assert_eq!(total, ids.len(), "{:?}", self.events);
        assert_eq!(client.free_slots(), K, "a slot is stuck");
    }

    fn status(&self, id: RequestId) -> Option<u16> {
        self.bodies.iter().find(|(got, ..)| *got == id).map(|(_, status, _)| *status)
    }

    fn failure(&self, id: RequestId) -> &Error<NetError> {
        self.events
            .iter()
            .find_map(|(_, e)| match e {
                Event::Failed { id: failed, error } if *failed == id => Some(error),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no failure for {id:?}: {:?}", self.events))
    }

    /// The instants and failures of the `RefreshFailed` events.
    fn refresh_failures(&self) -> Vec<(Instant, RefreshFailure, &Error<NetError>)> {
        self.events
            .iter()
            .filter_map(|(at, e)| match e {
                Event::RefreshFailed { failure, error } => Some((*at, *failure, error)),
                _ => None,
            })
            .collect()
    }

    /// The instants of the `Refreshed` events.
    fn refreshes(&self) -> Vec<Instant> {
        self.events
            .iter()
            .filter_map(|(at, e)| matches!(e, Event::Refreshed { .. }).then_some(*at))
            .collect()
    }
}

fn submit_k(client: &mut TestClient<'_>, now: Instant, path: &str) -> Vec<RequestId> {
    (0..K).map(|_| client.submit(now, &Request::get(path)).unwrap()).collect()
}

/// Submits `K` GETs of `path` at `run`'s time and polls until each has an outcome, for at most
/// `bound` of wall time.
fn submit_k_and_finish(
    client: &mut TestClient<'_>,
    run: &mut Run,
    path: &str,
    bound: StdDuration,
) -> Vec<RequestId> {
    let mut net = Stack::default();
    let ids = submit_k(client, run.now(), path);
    run.until(client, &mut net, bound, |r| r.all_finished(&ids));
    ids
}

/// The refresh token survived: after another expiry the client refreshes with the token it
/// kept and succeeds, no refresh token was presented twice, and the flash holds the live one
/// (a rebooted device restores it and refreshes successfully).
fn assert_refresh_token_survived(
    issuer: &MockIssuer,
    client: &mut TestClient<'_>,
    run: &mut Run,
    config: ClientConfig<'_>,
) {
    let mut net = Stack::default();
    issuer.expire_all_now();
    let before = issuer.counters().refresh_successes;
    let id = client.submit(run.now(), &Request::get("/api/after")).unwrap();
    run.until(client, &mut net, StdDuration::from_secs(10), |r| r.outcomes(id) > 0);
    assert_eq!(run.status(id), Some(200), "{:?}", run.events);
    assert_eq!(issuer.counters().refresh_successes, before + 1);
    let saved = client.store().saved.last().expect("a persisted token").clone();
    let mut rebooted: TestClient<'_> = Client::new(config, oauth(), Flash::default());
    let mut reboot = Run::new();
    rebooted.restore(reboot.now(), &saved).unwrap();
    let id = rebooted.submit(reboot.now(), &Request::get("/api/rebooted")).unwrap();
    reboot.until(&mut rebooted, &mut net, StdDuration::from_secs(10), |r| r.outcomes(id) > 0);
    assert_eq!(reboot.status(id), Some(200), "{:?}", reboot.events);
    assert_eq!(issuer.counters().reuse_attempts, 0);
}

/// `fault` served once on the token endpoint while `K` requests wait costs one retry and
/// nothing else. The request went out and its answer was lost, so the failure is
/// [`RefreshFailure::Lost`] (the server might have rotated the token), not merely transient.
fn lost_answer_costs_one_retry(fault: Fault) {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config(&host, &issuer), run.now());
    issuer.expire_all_now();
    issuer.inject(fault.clone());
    // The response deadline is 15 s; a retry 20 to 40 ms later.
    let ids = submit_k_and_finish(&mut client, &mut run, "/api/x", StdDuration::from_secs(10));
    assert!(ids.iter().all(|&id| run.status(id) == Some(200)), "{fault:?}: {:?}", run.events);
    let failures = run.refresh_failures();
    assert_eq!(failures.len(), 1, "{:?}", run.events);
    assert_eq!(failures[0].1, RefreshFailure::Lost, "{:?}", run.events);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.refresh_successes), (2, 1), "{counters:?}");
    run.assert_one_outcome_each(&client, &ids);
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config(&host, &issuer));
}

#[test]
fn connection_reset_mid_body_costs_one_retry_and_no_request() {
    lost_answer_costs_one_retry(Fault::ResetMidBody { times: 1 });
}

#[test]
fn connection_closed_before_the_answer_costs_one_retry_and_no_request() {
    lost_answer_costs_one_retry(Fault::CloseBeforeAnswer { times: 1 });
}

#[test]
fn retry_after_of_a_429_holds_the_retry_back_until_the_hint() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config(&host, &issuer), run.now());
    issuer.expire_all_now();
    issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 1 });
    let ids = submit_k_and_finish(&mut client, &mut run, "/api/busy", StdDuration::from_secs(10));
    assert!(ids.iter().all(|&id| run.status(id) == Some(200)), "{:?}", run.events);
    let failures = run.refresh_failures();
    let [(failed_at, failure, error)] = failures[..] else {
        panic!("{:?}", run.events);
    };
    let hint = Duration::from_secs(1);
    assert_eq!(failure, RefreshFailure::Transient { retry_after: Some(hint) });
    assert!(matches!(error, Error::Refresh(AnswerError::Status(429))), "{error:?}");
    // The retry could not start before the hint on the client's own clock, and its success is
    // reported after it.
    let refreshed_at = run.refreshes()[0];
    assert!(refreshed_at >= failed_at.saturating_add(hint), "{failed_at:?} {refreshed_at:?}");
    assert_eq!(issuer.counters().refresh_calls, 2);
    run.assert_one_outcome_each(&client, &ids);
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config(&host, &issuer));
}

#[test]
fn retry_after_beyond_the_backoff_cap_is_cut_to_the_cap() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let backoff = Backoff { max: Duration::from_millis(200), ..quick().backoff };
    let coordinator = Config { backoff, ..quick() };
    let config = ClientConfig { coordinator, ..config(&host, &issuer) };
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config, run.now());
    issuer.expire_all_now();
    issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 600 });
    // Honouring the 600 s hint would have run into the 30 s wait timeout.
    let ids = submit_k_and_finish(&mut client, &mut run, "/api/busy", StdDuration::from_secs(10));
    assert!(ids.iter().all(|&id| run.status(id) == Some(200)), "{:?}", run.events);
    let (failed_at, refreshed_at) = (run.refresh_failures()[0].0, run.refreshes()[0]);
    assert!(refreshed_at >= failed_at.saturating_add(backoff.max), "the cap is a delay too");
    assert_eq!(issuer.counters().refresh_calls, 2);
    run.assert_one_outcome_each(&client, &ids);
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config);
}

#[test]
fn token_answer_trickling_byte_by_byte_within_the_timeouts_is_used() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config(&host, &issuer), run.now());
    issuer.expire_all_now();
    // About 350 bytes 1 ms apart: each gap far below the 10 s idle timeout, the whole far below
    // the 60 s total.
    issuer.inject(Fault::Trickle { times: 1, byte_delay: StdDuration::from_millis(1) });
    let ids = submit_k_and_finish(&mut client, &mut run, "/api/slow", StdDuration::from_secs(20));
    assert!(ids.iter().all(|&id| run.status(id) == Some(200)), "{:?}", run.events);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.faults_served), (1, 1), "{counters:?}");
    assert!(run.refresh_failures().is_empty(), "{:?}", run.events);
    run.assert_one_outcome_each(&client, &ids);
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config(&host, &issuer));
}

#[test]
fn token_answer_trickling_past_the_total_timeout_ends_every_request_promptly() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let total = Duration::from_millis(400);
    let timeouts = Timeouts { total, ..Timeouts::DEFAULT };
    let config = ClientConfig { timeouts, ..config(&host, &issuer) };
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config, run.now());
    issuer.expire_all_now();
    // About 350 bytes 10 ms apart: 3.5 s, far past the 400 ms total timeout.
    issuer.inject(Fault::Trickle { times: 1, byte_delay: StdDuration::from_millis(10) });
    // Two exchanges of at most 400 ms and a backoff, doubled; the trickle alone takes 3.5 s.
    let ids =
        submit_k_and_finish(&mut client, &mut run, "/api/slow", StdDuration::from_millis(2_000));
    // The issuer rotated the refresh token before it started trickling, and the answer that
    // carried the new one never arrived whole. The retry presents the old token, which the
    // issuer refuses as a reuse: the session is really lost, and every request says so.
    for &id in &ids {
        assert!(matches!(run.failure(id), Error::Rejected(Rejection::NeedsLogin)));
    }
    let failures = run.refresh_failures();
    assert!(
        matches!(
            failures[..],
            [
                (_, RefreshFailure::Lost, Error::Timeout(TimeoutKind::Total)),
                (
                    _,
                    RefreshFailure::Refused,
                    Error::Refresh(AnswerError::Refused {
                        status: 400,
                        code: Some(reauth_core::oauth::ErrorCode::InvalidGrant)
                    })
                ),
            ]
        ),
        "{failures:?}"
    );
    assert!(client.needs_login());
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.reuse_attempts), (2, 1), "{counters:?}");
    run.assert_one_outcome_each(&client, &ids);
}

#[test]
fn invalid_client_logs_out_and_rejects_every_waiting_request_at_once() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config(&host, &issuer), run.now());
    issuer.expire_all_now();
    issuer.inject(Fault::InvalidClient { times: 1 });
    // Released by the refusal, long before the 30 s wait deadline.
    let ids = submit_k_and_finish(&mut client, &mut run, "/api/x", StdDuration::from_secs(10));
    for &id in &ids {
        assert!(matches!(run.failure(id), Error::Rejected(Rejection::NeedsLogin)));
    }
    let failures = run.refresh_failures();
    assert!(
        matches!(
            failures[..],
            [(
                _,
                RefreshFailure::Refused,
                Error::Refresh(
                    error @ AnswerError::Refused {
                        status: 401,
                        code: Some(reauth_core::oauth::ErrorCode::InvalidClient)
                    }
                )
            )] if error.is_configuration_error()
        ),
        "{failures:?}"
    );
    assert!(client.needs_login());
    assert_eq!(issuer.counters().refresh_calls, 1, "a refusal is not retried");
    assert!(matches!(
        client.submit(run.now(), &Request::get("/api/later")),
        Err(SubmitError::Rejected(Rejection::NeedsLogin))
    ));
    run.assert_one_outcome_each(&client, &ids);
}

#[test]
fn fresh_token_refused_on_the_replay_is_unauthorized_after_one_refresh() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config(&host, &issuer), run.now());
    // From now on the issuer hands out tokens that are dead on arrival: valid for 1 ms (though
    // the answer says `expires_in: 1`) and delivered 20 ms after they were issued, so the replay
    // with the fresh token always gets a 401 again.
    issuer.set_token_lifetime(StdDuration::from_millis(1));
    issuer.set_latency(StdDuration::from_millis(20), StdDuration::ZERO);
    issuer.expire_all_now();
    let mut net = Stack::default();
    let mut ids = Vec::new();
    for round in 1..=3u64 {
        let id = client.submit(run.now(), &Request::get("/api/x")).unwrap();
        ids.push(id);
        run.until(&mut client, &mut net, StdDuration::from_secs(10), |r| r.outcomes(id) > 0);
        assert!(matches!(run.failure(id), Error::Rejected(Rejection::Unauthorized)));
        let counters = issuer.counters();
        // One refresh per request, each request sent twice: no refresh loop, no replay loop.
        assert_eq!(counters.refresh_calls, round, "{counters:?}");
        assert_eq!(counters.api_unauthorized, 2 * round, "{counters:?}");
    }
    run.assert_one_outcome_each(&client, &ids);
    // The refresh token was never refused: with sane lifetimes everything works again.
    issuer.set_token_lifetime(StdDuration::from_secs(60));
    issuer.set_latency(StdDuration::ZERO, StdDuration::ZERO);
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config(&host, &issuer));
}

#[test]
fn failing_persistence_hook_is_reported_and_requests_still_succeed() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut run = Run::new();
    let mut client: TestClient<'_> =
        Client::new(config(&host, &issuer), oauth(), Flash { failing: true, ..Flash::default() });
    let tokens = issuer.login();
    let login = client.login(
        run.now(),
        &tokens.access_token,
        &tokens.refresh_token,
        Some(lifetime(tokens.expires_in)),
    );
    assert_eq!(login, Err(LoginError::Persist(FlashError)));
    assert_eq!(client.generation(), Generation(1), "installed all the same");
    issuer.reset_counters();
    let mut ids = Vec::new();
    // Two expiries in a row with the flash failing: the second refresh presents the rotated
    // token that only memory holds.
    for episode in 1..=2 {
        issuer.expire_all_now();
        let batch =
            submit_k_and_finish(&mut client, &mut run, "/api/x", StdDuration::from_secs(10));
        assert!(batch.iter().all(|&id| run.status(id) == Some(200)), "{:?}", run.events);
        ids.extend(batch);
        let persist_failed: Vec<_> = run
            .events
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| matches!(e, Event::PersistFailed { error: FlashError }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(persist_failed.len(), episode, "{:?}", run.events);
    }
    assert!(client.store().saved.is_empty());
    let counters = issuer.counters();
    assert_eq!((counters.refresh_successes, counters.reuse_attempts), (2, 0), "{counters:?}");
    run.assert_one_outcome_each(&client, &ids);
    // The flash works again: the next refresh persists the live token.
    client.store_mut().failing = false;
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config(&host, &issuer));
}

#[test]
fn time_going_backwards_neither_fires_deadlines_early_nor_stalls_requests() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let response = Duration::from_millis(300);
    let timeouts = Timeouts { response, ..Timeouts::DEFAULT };
    let config = ClientConfig { timeouts, ..config(&host, &issuer) };
    // The device has been up for 100 s; every other reading of its clock is 5 s behind.
    let mut run = Run::starting_at(100_000);
    run.backwards = 5_000;
    let mut client = logged_in(&issuer, config, run.now());
    issuer.expire_all_now();
    // The first refresh hangs: its response deadline must fire 300 ms later on the latest
    // time seen, neither early (a backwards reading does not move it) nor never.
    issuer.inject(Fault::Hang { times: 1, duration: StdDuration::from_secs(5) });
    let mut net = Stack::default();
    // Submitted at time zero, long before the login as far as the clock is concerned.
    let ids = submit_k(&mut client, Instant::ZERO, "/api/x");
    run.until(&mut client, &mut net, StdDuration::from_secs(10), |r| r.all_finished(&ids));
    assert!(ids.iter().all(|&id| run.status(id) == Some(200)), "{:?}", run.events);
    let failures = run.refresh_failures();
    assert!(
        matches!(failures[..], [(_, _, Error::Timeout(TimeoutKind::Response))]),
        "{failures:?}"
    );
    // Not early: the refresh started at 100 s at the earliest, and its deadline came 300 ms
    // later on the client's clock, however far back the readings in between went.
    let timed_out_at = failures[0].0;
    assert!(timed_out_at >= Instant::from_millis(100_000).saturating_add(response));
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.refresh_successes), (2, 1), "{counters:?}");
    run.assert_one_outcome_each(&client, &ids);
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config);
}

#[test]
fn storm_larger_than_the_slots_is_refused_at_submit_and_the_rest_answered() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let mut run = Run::new();
    let mut client = logged_in(&issuer, config(&host, &issuer), run.now());
    issuer.expire_all_now();
    let mut net = Stack::default();
    // Three times as many requests as slots: the coordinator's queue holds `K`, one per slot,
    // so the overflow is refused by `submit` itself, at once, without taking a slot.
    let results: Vec<_> =
        (0..3 * K).map(|_| client.submit(run.now(), &Request::get("/api/storm"))).collect();
    let ids: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(ids.len(), K);
    assert!(results[K..].iter().all(|r| *r == Err(SubmitError::Busy)), "{results:?}");
    assert_eq!(client.free_slots(), 0);
    run.until(&mut client, &mut net, StdDuration::from_secs(10), |r| r.all_finished(&ids));
    assert!(ids.iter().all(|&id| run.status(id) == Some(200)), "{:?}", run.events);
    assert_eq!(issuer.counters().refresh_calls, 1);
    run.assert_one_outcome_each(&client, &ids);
    assert!(matches!(client.coordinator().state(), State::Idle { .. }));
    assert_refresh_token_survived(&issuer, &mut client, &mut run, config(&host, &issuer));
}
