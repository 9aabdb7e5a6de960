//! Scenario tests of the core state machine in the simulation harness: each drives a virtual world
//! (clock, token endpoint, API) and relies on the harness to check every spec invariant after
//! every step; the assertions here are about the behaviour the test is named after.

use reauth_core::{
    Action, Admission, Config, Duration, Generation, Instant, Outcome, RefreshFailure,
    RefreshResultError, Rejection, RequestId, State, Ticket, Verdict,
};
use reauth_testkit::sim::{Checked, Finished, Reply, Sim};

const SECOND: Duration = Duration::from_secs(1);

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// The defaults, with four attempts per episode (these scenarios were written for the earlier
/// default, and four shows a growing backoff better) and a fixed jitter seed.
fn config() -> Config {
    Config {
        max_refresh_attempts: 4,
        backoff: reauth_core::Backoff { seed: 7, ..Config::DEFAULT.backoff },
        ..Config::DEFAULT
    }
}

#[test]
fn storm_right_after_expiry_makes_one_refresh_and_replays_every_request() {
    let mut sim = Sim::<64>::logged_in(config(), Duration::from_secs(60));
    sim.run_until(at(60_000));
    let ids = sim.send(64);
    sim.run_to_quiet();
    assert_eq!(sim.refresh_calls, 1);
    assert_eq!(sim.core.stats.parked, 64);
    assert_eq!(sim.core.stats.released, 64);
    for id in ids {
        assert_eq!(sim.finished[&id], Finished::Ok(Generation(2)), "{id}");
    }
}

#[test]
fn storm_of_401s_for_one_token_makes_one_refresh() {
    // The server revokes the token early: every request is sent and answered 401.
    let mut sim = Sim::<64>::logged_in(config(), Duration::from_secs(3600));
    sim.expire_all();
    let ids = sim.send(40);
    sim.run_to_quiet();
    assert_eq!(sim.refresh_calls, 1);
    assert_eq!(sim.unauthorized[&Generation(1)], 40);
    assert!(ids.iter().all(|id| sim.finished[id] == Finished::Ok(Generation(2))));
}

#[test]
fn stale_401_is_replayed_with_the_current_token_without_a_refresh() {
    let mut core = Checked::<8>::new(config());
    core.login(at(0), Some(Duration::from_secs(3600)));
    let Ok(Admission::Send(old)) = core.request(at(1), RequestId(1)) else { panic!() };
    let Ok(Admission::Send(a)) = core.request(at(1), RequestId(2)) else { panic!() };
    // Request 2 learns of the expiry first and causes the one refresh.
    assert_eq!(core.response(at(5), a, Verdict::Expired), Outcome::Parked);
    let [Action::Refresh(refresh)] = core.take_actions()[..] else { panic!() };
    core.refresh_success(at(9), refresh, Some(Duration::from_secs(3600))).unwrap();
    assert_eq!(
        core.take_actions(),
        [Action::Send(Ticket { id: RequestId(2), generation: Generation(2), replays: 1 })]
    );
    // Request 1 was sent with generation 1 and its 401 arrives after the refresh: replay at once.
    let replay = core.response(at(12), old, Verdict::Expired);
    assert_eq!(
        replay,
        Outcome::Replay(Ticket { id: RequestId(1), generation: Generation(2), replays: 0 })
    );
    assert!(core.take_actions().is_empty(), "no second refresh");
    assert_eq!(core.stats.refreshes, 1);
}

#[test]
fn refused_refresh_rejects_every_parked_request_at_once_and_needs_login() {
    let mut sim = Sim::<16>::logged_in(config(), Duration::from_secs(60));
    sim.script.push_back(Reply::Refused);
    sim.run_until(at(60_000));
    let ids = sim.send(10);
    sim.run_until(at(60_000) + sim.refresh_latency);
    assert!(ids.iter().all(|id| sim.finished[id] == Finished::Rejected(Rejection::NeedsLogin)));
    assert!(sim.core.coordinator().needs_login());
    assert_eq!(sim.core.coordinator().parked_len(), 0);
    // Later requests are refused at once, and no refresh starts by itself.
    let later = sim.send(3);
    sim.run_until(at(200_000));
    assert!(later.iter().all(|id| sim.finished[id] == Finished::Rejected(Rejection::NeedsLogin)));
    assert_eq!(sim.refresh_calls, 1);
}

#[test]
fn refused_early_refresh_keeps_the_valid_token_until_it_turns_stale() {
    let mut sim = Sim::<16>::logged_in(config(), Duration::from_secs(3600));
    sim.script.push_back(Reply::Refused);
    // 3530 s: in the early window (refresh_at 3530 s, stale_at 3590 s).
    sim.run_until(at(3_530_000));
    let first = sim.send(3);
    sim.run_until(at(3_530_000) + sim.refresh_latency);
    // The refusal is reported at once, through the state ...
    let c = sim.core.coordinator();
    assert!(matches!(c.state(), State::Refused { .. }), "{:?}", c.state());
    assert!(c.is_refused() && !c.needs_login() && c.has_usable_token());
    // ... and the still valid access token keeps working, without another refresh call.
    let later = sim.send(4);
    sim.run_until(at(3_589_000));
    let more = sim.send(2);
    sim.run_until(at(3_589_999));
    for id in first.iter().chain(&later).chain(&more) {
        assert_eq!(sim.finished[id], Finished::Ok(Generation(1)), "{id}");
    }
    assert_eq!(sim.refresh_calls, 1);
    // When it turns stale, the credentials are gone: on the coordinator's timer, no input.
    assert_eq!(sim.core.coordinator().poll_timeout(), Some(at(3_590_000)));
    sim.run_until(at(3_590_000));
    assert_eq!(
        *sim.core.coordinator().state(),
        State::Failed { cause: reauth_core::FailCause::Refused }
    );
    let after = sim.send(2);
    sim.run_to_quiet();
    assert!(after.iter().all(|id| sim.finished[id] == Finished::Rejected(Rejection::NeedsLogin)));
    assert_eq!(sim.refresh_calls, 1, "the refused refresh token is never presented again");
}

#[test]
fn refused_early_refresh_ends_when_the_server_refuses_the_kept_token() {
    let mut core = Checked::<8>::new(config());
    core.login(at(0), Some(Duration::from_secs(3600)));
    let Ok(Admission::Send(first)) = core.request(at(3_530_000), RequestId(1)) else { panic!() };
    let [Action::Refresh(id)] = core.take_actions()[..] else { panic!() };
    core.refresh_failure(at(3_530_100), id, RefreshFailure::Refused).unwrap();
    assert!(matches!(core.coordinator().state(), State::Refused { .. }));
    // The server revoked the access token with the session: the 401 ends it.
    let Ok(Admission::Send(second)) = core.request(at(3_530_200), RequestId(2)) else { panic!() };
    let rejected = core.response(at(3_530_300), first, Verdict::Expired);
    assert_eq!(
        rejected,
        Outcome::Rejected(reauth_core::Rejected {
            id: RequestId(1),
            reason: Rejection::NeedsLogin
        })
    );
    assert!(core.coordinator().needs_login());
    let outcome = core.response(at(3_530_400), second, Verdict::Expired);
    assert!(matches!(outcome, Outcome::Rejected(r) if r.reason == Rejection::NeedsLogin));
    assert!(core.take_actions().is_empty(), "no refresh with the refused token");
}

#[test]
fn refused_refresh_of_a_stale_token_needs_login_at_once() {
    let cfg = Config { refresh_timeout: Duration::from_secs(120), ..config() };
    let mut core = Checked::<8>::new(cfg);
    core.login(at(0), Some(Duration::from_secs(3600)));
    // 3530 s: the early refresh starts; it is refused only after the token turned stale.
    let Ok(Admission::Send(_)) = core.request(at(3_530_000), RequestId(1)) else { panic!() };
    let [Action::Refresh(id)] = core.take_actions()[..] else { panic!() };
    assert_eq!(core.request(at(3_590_000), RequestId(2)), Ok(Admission::Parked));
    core.refresh_failure(at(3_590_010), id, RefreshFailure::Refused).unwrap();
    assert!(core.coordinator().needs_login());
    let actions = core.take_actions();
    assert!(matches!(actions[..], [Action::Reject(r)] if r.reason == Rejection::NeedsLogin));
}

#[test]
fn transient_failures_back_off_then_succeed_without_logout() {
    let mut sim = Sim::<16>::logged_in(config(), Duration::from_secs(60));
    sim.script.extend([Reply::Transient(None), Reply::Transient(None)]);
    sim.run_until(at(60_000));
    let ids = sim.send(5);
    sim.run_to_quiet();
    assert_eq!(sim.refresh_calls, 3);
    assert!(ids.iter().all(|id| sim.finished[id] == Finished::Ok(Generation(2))));
    assert!(!sim.core.coordinator().needs_login());
    // Two backoffs of at most 500 ms and 1000 ms plus three refresh latencies.
    assert!(sim.now <= at(60_000 + 500 + 1_000 + 3 * 50 + 20 + 1));
    assert!(sim.now >= at(60_000 + 250 + 500 + 3 * 50));
}

#[test]
fn retry_after_hint_replaces_the_backoff_within_the_cap() {
    let mut sim = Sim::<16>::logged_in(config(), Duration::from_secs(60));
    sim.script.push_back(Reply::Transient(Some(Duration::from_secs(5))));
    sim.run_until(at(60_000));
    sim.send(1);
    sim.run_until(at(60_000 + 50 + 4_999));
    assert_eq!(sim.refresh_calls, 1, "the retry waits for Retry-After");
    sim.run_until(at(60_000 + 50 + 5_000));
    assert_eq!(sim.refresh_calls, 2);
}

#[test]
fn exhausted_attempts_reject_parked_requests_but_keep_the_credentials() {
    let cfg = config();
    let mut sim = Sim::<16>::logged_in(cfg, Duration::from_secs(60));
    sim.script.extend([Reply::Transient(Some(Duration::ZERO)); 4]);
    sim.run_until(at(60_000));
    let ids = sim.send(3);
    sim.run_until(at(70_000));
    assert_eq!(sim.refresh_calls, u64::from(cfg.max_refresh_attempts));
    assert!(
        ids.iter().all(|id| sim.finished[id] == Finished::Rejected(Rejection::RefreshUnavailable))
    );
    assert!(!sim.core.coordinator().needs_login(), "transient failures never log out");
    // The next request starts a new episode, which succeeds.
    let later = sim.send(1);
    sim.run_to_quiet();
    assert_eq!(sim.finished[&later[0]], Finished::Ok(Generation(2)));
}

#[test]
fn refresh_timeout_then_late_success_installs_the_token() {
    let cfg = config();
    let mut sim = Sim::<16>::logged_in(cfg, Duration::from_secs(60));
    // The first attempt answers 5 s after the 30 s timeout; the retry is refused as a reuse.
    sim.script
        .extend([Reply::Late(Duration::from_secs(35), Some(Duration::from_secs(60))), Reply::Hang]);
    sim.run_until(at(60_000));
    let ids = sim.send(2);
    sim.run_until(at(60_000 + 30_000));
    assert!(matches!(sim.core.coordinator().state(), State::Refreshing { .. }));
    sim.run_until(at(60_000 + 35_000));
    assert_eq!(sim.core.coordinator().generation(), Generation(2), "late success installed");
    let later = sim.send(1);
    sim.run_until(at(60_000 + 36_000));
    // The wait deadline (75 s) had not passed: the late success released the requests.
    assert!(ids.iter().all(|id| sim.finished[id] == Finished::Ok(Generation(2))));
    assert_eq!(sim.finished[&later[0]], Finished::Ok(Generation(2)));
}

#[test]
fn late_success_while_a_retry_is_in_flight_is_used_and_the_retry_refusal_does_not_log_out() {
    let cfg = Config { refresh_timeout: SECOND, wait_timeout: Duration::from_secs(60), ..config() };
    let mut core = Checked::<8>::new(cfg);
    core.login(at(0), Some(Duration::from_secs(100)));
    let Ok(Admission::Send(t)) = core.request(at(1), RequestId(1)) else { panic!() };
    assert_eq!(core.response(at(2), t, Verdict::Expired), Outcome::Parked);
    let [Action::Refresh(first)] = core.take_actions()[..] else { panic!() };
    core.timeout(at(1_002)); // first attempt times out, backoff of at most 500 ms
    core.timeout(at(1_600));
    let [Action::Refresh(second)] = core.take_actions()[..] else { panic!() };
    assert_ne!(first, second);
    // The first attempt's success arrives late: used at once, parked request released.
    let generation = core.refresh_success(at(1_700), first, Some(Duration::from_secs(100)));
    assert_eq!(generation, Ok(Generation(2)));
    assert!(matches!(core.take_actions()[..], [Action::Send(Ticket { id: RequestId(1), .. })]));
    // The second attempt presented the rotated refresh token again and is refused: no logout.
    core.refresh_failure(at(1_800), second, RefreshFailure::Refused).unwrap();
    assert!(!core.coordinator().needs_login());
    assert!(matches!(core.coordinator().state(), State::Idle { .. }));
}

#[test]
fn failure_reported_for_a_timed_out_attempt_is_ignored() {
    let cfg = Config { refresh_timeout: SECOND, ..config() };
    let mut core = Checked::<8>::new(cfg);
    core.login(at(0), Some(Duration::from_secs(100)));
    core.restore(at(1));
    let _ = core.request(at(2), RequestId(1));
    let [Action::Refresh(first)] = core.take_actions()[..] else { panic!() };
    core.timeout(at(1_100));
    assert_eq!(
        core.refresh_failure(at(1_200), first, RefreshFailure::Refused),
        Err(RefreshResultError::NotCurrent)
    );
    assert!(!core.coordinator().needs_login());
}

#[test]
fn full_queue_refuses_at_once_and_hands_the_id_back() {
    let mut sim = Sim::<4>::logged_in(config(), Duration::from_secs(60));
    sim.run_until(at(60_000));
    let ids = sim.send(6);
    assert_eq!(sim.finished[&ids[4]], Finished::Rejected(Rejection::QueueFull));
    assert_eq!(sim.finished[&ids[5]], Finished::Rejected(Rejection::QueueFull));
    sim.run_to_quiet();
    assert!(ids[..4].iter().all(|id| sim.finished[id] == Finished::Ok(Generation(2))));
}

#[test]
fn replay_limit_stops_a_401_loop() {
    let mut core = Checked::<8>::new(config());
    core.login(at(0), Some(Duration::from_secs(3600)));
    let Ok(Admission::Send(t)) = core.request(at(1), RequestId(1)) else { panic!() };
    assert_eq!(core.response(at(2), t, Verdict::Expired), Outcome::Parked);
    let [Action::Refresh(r)] = core.take_actions()[..] else { panic!() };
    core.refresh_success(at(3), r, Some(Duration::from_secs(3600))).unwrap();
    let [Action::Send(replay)] = core.take_actions()[..] else { panic!() };
    assert_eq!(replay.replays, 1);
    // The server refuses the fresh token too (say, a permissions bug): give up, no refresh.
    let outcome = core.response(at(4), replay, Verdict::Expired);
    assert!(
        matches!(outcome, Outcome::Rejected(r) if r.reason == Rejection::Unauthorized),
        "{outcome:?}"
    );
    assert_eq!(core.stats.refreshes, 1);
    assert!(core.take_actions().is_empty());
}

#[test]
fn early_window_lets_requests_through_while_one_refresh_runs() {
    let mut sim = Sim::<16>::logged_in(config(), Duration::from_secs(3600));
    sim.refresh_latency = Duration::from_secs(2);
    // 3530 s: past refresh_at (3600 - 10 - 60), before stale_at (3590).
    sim.run_until(at(3_530_000));
    let ids = sim.send(5);
    assert_eq!(sim.core.stats.sent, 5, "nobody waits in the early window");
    assert_eq!(sim.core.stats.parked, 0);
    sim.run_to_quiet();
    assert_eq!(sim.refresh_calls, 1);
    assert!(ids.iter().all(|id| sim.finished[id] == Finished::Ok(Generation(1))));
    assert_eq!(sim.core.coordinator().generation(), Generation(2));
}

#[test]
fn short_lived_tokens_do_not_refresh_in_a_loop() {
    let mut sim = Sim::<16>::logged_in(config(), Duration::from_millis(300));
    let mut t = 0;
    while t < 3_000 {
        sim.send(1);
        t += 25;
        sim.run_until(at(t));
    }
    sim.run_to_quiet();
    // A 300 ms token refreshes after 3/8 of its life at the earliest: at most ~3000/112 times.
    assert!(sim.refresh_calls <= 3_000 / 112 + 1, "{} refreshes", sim.refresh_calls);
    assert_eq!(sim.count(Finished::Rejected(Rejection::Timeout)), 0);
    assert!(sim.finished.values().all(|f| matches!(f, Finished::Ok(_))));
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut core = Checked::<8>::new(config());
    core.login(at(100_000), Some(Duration::from_secs(60)));
    core.timeout(at(500));
    assert_eq!(core.coordinator().now(), at(100_000));
    // Still within the token's life, measured from the latest time seen.
    assert!(matches!(core.request(at(0), RequestId(1)), Ok(Admission::Send(_))));
    let _ = core.request(at(160_000), RequestId(2));
    assert_eq!(core.coordinator().parked_len(), 1);
    core.timeout(at(1));
    assert_eq!(core.coordinator().poll_timeout().map(|t| t >= at(160_000)), Some(true));
}

#[test]
fn extreme_instants_do_not_overflow() {
    let mut core = Checked::<8>::new(config());
    core.login(Instant::MAX, Some(Duration::MAX));
    let _ = core.request(Instant::MAX, RequestId(1));
    core.timeout(Instant::MAX);
    core.logout(Instant::ZERO);
    core.login(Instant::ZERO, Some(Duration::ZERO));
    let _ = core.request(Instant::ZERO, RequestId(2));
    assert!(core.coordinator().poll_timeout().is_some());
}

#[test]
fn wait_deadline_rejects_a_parked_request_with_timeout() {
    let cfg = Config { wait_timeout: Duration::from_secs(5), ..config() };
    let mut sim = Sim::<16>::logged_in(cfg, Duration::from_secs(60));
    sim.script.push_back(Reply::Hang);
    sim.run_until(at(60_000));
    let ids = sim.send(2);
    sim.run_until(at(64_999));
    assert!(sim.finished.is_empty());
    sim.run_until(at(65_000));
    assert!(ids.iter().all(|id| sim.finished[id] == Finished::Rejected(Rejection::Timeout)));
}

#[test]
fn logout_rejects_parked_requests_and_a_late_refresh_is_not_installed() {
    let mut core = Checked::<8>::new(config());
    core.login(at(0), Some(Duration::from_secs(10)));
    let _ = core.request(at(20_000), RequestId(1));
    let [Action::Refresh(r)] = core.take_actions()[..] else { panic!() };
    core.logout(at(20_001));
    assert!(matches!(
        core.take_actions()[..],
        [Action::Reject(rej)] if rej.reason == Rejection::NeedsLogin
    ));
    assert_eq!(core.refresh_success(at(20_002), r, None), Err(RefreshResultError::Superseded));
    assert!(core.coordinator().needs_login());
}

#[test]
fn restored_refresh_token_refreshes_on_the_first_request() {
    let mut core = Checked::<8>::new(config());
    assert!(core.request(at(0), RequestId(1)).is_err(), "never logged in");
    core.restore(at(1));
    assert_eq!(core.request(at(2), RequestId(2)), Ok(Admission::Parked));
    let [Action::Refresh(r)] = core.take_actions()[..] else { panic!() };
    assert_eq!(core.refresh_success(at(3), r, None), Ok(Generation(1)));
    assert_eq!(
        core.take_actions(),
        [Action::Send(Ticket { id: RequestId(2), generation: Generation(1), replays: 0 })]
    );
}

#[test]
fn cancelled_request_gets_no_action() {
    let mut core = Checked::<8>::new(config());
    core.restore(at(0));
    let _ = core.request(at(1), RequestId(1));
    let _ = core.request(at(1), RequestId(2));
    let [Action::Refresh(r)] = core.take_actions()[..] else { panic!() };
    assert!(core.cancel(at(2), RequestId(1)));
    core.refresh_success(at(3), r, None).unwrap();
    assert!(matches!(core.take_actions()[..], [Action::Send(Ticket { id: RequestId(2), .. })]));
}

#[test]
fn duplicate_parked_id_is_refused() {
    let mut core = Checked::<8>::new(config());
    core.restore(at(0));
    assert_eq!(core.request(at(1), RequestId(1)), Ok(Admission::Parked));
    let again = core.request(at(1), RequestId(1));
    assert!(matches!(again, Err(r) if r.reason == Rejection::DuplicateRequest));
    assert_eq!(core.coordinator().parked_len(), 1);
}

#[test]
fn exhausted_episode_cools_down_before_the_next_one_and_rejects_at_once_meanwhile() {
    let cfg = config();
    let mut core = Checked::<8>::new(cfg);
    core.restore(at(0));
    assert_eq!(core.request(at(0), RequestId(1)), Ok(Admission::Parked));
    let mut now = 0;
    for attempt in 1..=cfg.max_refresh_attempts {
        let [Action::Refresh(id)] = core.take_actions()[..] else { panic!("attempt {attempt}") };
        core.refresh_failure(at(now), id, RefreshFailure::Transient { retry_after: None }).unwrap();
        if attempt < cfg.max_refresh_attempts {
            let State::Refreshing { phase: reauth_core::Phase::Backoff { retry_at }, .. } =
                *core.coordinator().state()
            else {
                panic!("backing off after attempt {attempt}")
            };
            now = retry_at.millis();
            core.timeout(at(now));
        }
    }
    let State::Idle { retry_at, .. } = *core.coordinator().state() else { panic!() };
    // The cool-down is the backoff that would have come next: 4 s base after 4 failures, jittered.
    assert!(retry_at.millis() >= now + 2_000 && retry_at.millis() <= now + 4_000, "{retry_at:?}");
    assert!(matches!(
        core.take_actions()[..],
        [Action::Reject(r)] if r.reason == Rejection::RefreshUnavailable
    ));
    // Meanwhile: rejected at once, no refresh.
    let early = core.request(at(now + 1_000), RequestId(2));
    assert_eq!(early.map_err(|r| r.reason), Err(Rejection::RefreshUnavailable));
    assert!(core.take_actions().is_empty());
    assert_eq!(core.stats.refreshes, u64::from(cfg.max_refresh_attempts));
    // After it: a new episode, whose backoff goes on from where the last one left off.
    assert_eq!(core.request(retry_at, RequestId(3)), Ok(Admission::Parked));
    let [Action::Refresh(id)] = core.take_actions()[..] else { panic!("a new episode") };
    core.refresh_failure(retry_at, id, RefreshFailure::Transient { retry_after: None }).unwrap();
    let State::Refreshing { phase: reauth_core::Phase::Backoff { retry_at: next }, .. } =
        *core.coordinator().state()
    else {
        panic!()
    };
    let delay = next.millis() - retry_at.millis();
    assert!(delay >= 4_000, "the backoff keeps growing across episodes: {delay} ms");
}

#[test]
fn lost_answers_present_one_refresh_token_at_most_max_unanswered_times() {
    let cfg = config();
    let mut sim = Sim::<16>::logged_in(cfg, Duration::from_secs(60));
    sim.script.extend([Reply::Lost; 10]);
    sim.run_until(at(60_000));
    let ids = sim.send(3);
    sim.run_until(at(600_000));
    // Ask again and again: the token is presented no more.
    for _ in 0..5 {
        sim.send(1);
        sim.run_until(sim.now + Duration::from_secs(60));
    }
    assert_eq!(sim.refresh_calls, u64::from(cfg.max_unanswered));
    assert_eq!(
        *sim.core.coordinator().state(),
        State::Failed { cause: reauth_core::FailCause::Unanswered }
    );
    assert!(ids.iter().all(|id| sim.finished[id] == Finished::Rejected(Rejection::NeedsLogin)));
}

#[test]
fn hung_token_endpoint_counts_as_unanswered() {
    let cfg = Config { refresh_timeout: SECOND, wait_timeout: Duration::from_secs(60), ..config() };
    let mut sim = Sim::<16>::logged_in(cfg, Duration::from_secs(60));
    sim.script.extend([Reply::Hang; 10]);
    sim.run_until(at(60_000));
    sim.send(2);
    sim.run_until(at(600_000));
    assert_eq!(sim.refresh_calls, u64::from(cfg.max_unanswered));
    assert!(sim.core.coordinator().needs_login());
}

/// Issue 11 item 7: with either set of defaults, a hung token endpoint gets a second attempt and
/// every request waiting for it ends with `RefreshUnavailable`, not `Timeout` (virtual time: the
/// harness counts attempts and outcomes, nothing is timed).
#[test]
fn hung_token_endpoint_with_the_defaults_gets_two_attempts_then_refresh_unavailable() {
    for defaults in [Config::DESKTOP, Config::DEFAULT] {
        let mut sim = Sim::<16>::logged_in(defaults, Duration::from_secs(600));
        sim.script.extend([Reply::Hang; 10]);
        sim.run_until(at(600_000));
        // Requests park over the whole episode: at its start, and late in it.
        let mut ids = sim.send(3);
        sim.run_until(sim.now + defaults.refresh_timeout);
        ids.extend(sim.send(2));
        sim.run_until(at(600_000) + defaults.longest_episode());
        assert_eq!(sim.refresh_calls, 2, "{defaults:?}");
        for id in &ids {
            assert_eq!(
                sim.finished.get(id),
                Some(&Finished::Rejected(Rejection::RefreshUnavailable)),
                "{id} with {defaults:?}"
            );
        }
        assert!(!sim.core.coordinator().needs_login(), "the refresh token is kept");
        // The next episode after the cool-down gets two more; then the token has been presented
        // `max_unanswered` times without an answer and is presented no more.
        for _ in 0..3 {
            sim.run_until(sim.now + Duration::from_secs(60));
            sim.send(1);
            sim.run_until(sim.now + defaults.longest_episode());
        }
        assert_eq!(sim.refresh_calls, u64::from(defaults.max_unanswered), "{defaults:?}");
        assert!(sim.core.coordinator().needs_login());
    }
}

#[test]
fn adoption_releases_parked_requests_and_supersedes_the_refresh_in_flight() {
    let mut core = Checked::<8>::new(config());
    core.login(at(0), Some(Duration::from_secs(60)));
    assert_eq!(core.request(at(60_000), RequestId(1)), Ok(Admission::Parked));
    let [Action::Refresh(id)] = core.take_actions()[..] else { panic!() };
    // Another process refreshed meanwhile; its record is adopted.
    let generation = core.adopt(at(60_100), Some(Duration::from_secs(60)));
    assert_eq!(generation, Generation(2));
    assert_eq!(
        core.take_actions(),
        [Action::Send(Ticket { id: RequestId(1), generation, replays: 0 })]
    );
    // Our own attempt stays the one on the wire; its refusal (a reuse) does not log out.
    assert_eq!(core.coordinator().refresh_in_flight(), Some(id));
    core.refresh_failure(at(60_200), id, RefreshFailure::Refused).unwrap();
    assert!(!core.coordinator().needs_login());
    assert!(core.take_actions().is_empty(), "no second refresh");
}

#[test]
fn adoption_leaves_failed_and_ends_a_cool_down() {
    let mut core = Checked::<8>::new(config());
    core.restore(at(0));
    assert_eq!(core.request(at(0), RequestId(1)), Ok(Admission::Parked));
    let [Action::Refresh(id)] = core.take_actions()[..] else { panic!() };
    core.refresh_failure(at(10), id, RefreshFailure::Refused).unwrap();
    assert!(core.coordinator().needs_login());
    core.take_actions();
    core.adopt(at(20), None);
    assert!(!core.coordinator().needs_login());
    assert!(matches!(core.request(at(30), RequestId(2)), Ok(Admission::Send(_))));
}

#[test]
fn a_403_while_a_refresh_is_on_the_wire_waits_for_the_new_token_and_a_stale_403_is_replayed() {
    let mut core = Checked::<8>::new(config());
    core.login(at(0), Some(Duration::from_secs(100)));
    let Ok(Admission::Send(old)) = core.request(at(1), RequestId(1)) else { panic!() };
    // The early window: the next request starts the refresh and still goes out.
    let Ok(Admission::Send(early)) = core.request(at(70_000), RequestId(2)) else { panic!() };
    let [Action::Refresh(refresh)] = core.take_actions()[..] else { panic!() };
    // The server rotated and revoked the old access token before our refresh landed.
    assert_eq!(core.response(at(70_010), early, Verdict::Forbidden), Outcome::Parked);
    core.refresh_success(at(70_020), refresh, Some(Duration::from_secs(100))).unwrap();
    assert_eq!(
        core.take_actions(),
        [Action::Send(Ticket { id: RequestId(2), generation: Generation(2), replays: 1 })]
    );
    // A 403 for the old token after the refresh: replayed at once, for free.
    assert_eq!(
        core.response(at(70_030), old, Verdict::Forbidden),
        Outcome::Replay(Ticket { id: RequestId(1), generation: Generation(2), replays: 0 })
    );
    // A 403 for the current token with nothing in flight is the application's answer.
    let Ok(Admission::Send(current)) = core.request(at(70_040), RequestId(3)) else { panic!() };
    assert_eq!(core.response(at(70_050), current, Verdict::Forbidden), Outcome::Done);
    assert_eq!(core.stats.refreshes, 1);
}
