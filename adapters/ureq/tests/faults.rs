//! The fault matrix of reauth-ureq against the loopback mock issuer: every fault of the
//! reliability issue that `tests/e2e.rs` does not already cover (503s, hangs, malformed JSON,
//! oversized tokens and `invalid_grant` are there).
//!
//! Every test checks the same three things: each request gets exactly one outcome (each thread's
//! call returns once, the client's counters add up, and the API answered 200 exactly as often as
//! the client handed a 200 back); no thread outlives a generous bound on its deadline; and the
//! refresh token survives unless the server really refused it (a later expiry is refreshed with
//! the token the client kept, and a fresh client restored from the store's copy works too).
//! Time bounds are upper limits on "did not hang", never performance assertions.

mod common;

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use reauth_core::oauth::ErrorCode;
use reauth_core::{Backoff, Config, State};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{
    Client, ClientBuilder, Error, FileStore, MemoryStore, QUEUE_CAPACITY, RefreshError, StoreError,
    StoredTokens, TokenStore,
};

use crate::common::quick_config;

fn builder(issuer: &MockIssuer) -> ClientBuilder {
    common::builder(issuer, "faults")
}

/// A client logged in with a fresh session of `issuer`; the issuer's counters start at 0.
fn logged_in(issuer: &MockIssuer, builder: ClientBuilder) -> Client {
    let client = common::logged_in(issuer, builder);
    issuer.reset_counters();
    client
}

/// What one thread's request came to.
#[derive(Debug)]
struct Outcome {
    /// The status, or the error.
    result: Result<u16, Error>,
    /// When the call returned.
    finished: Instant,
}

/// `threads` threads each GET `url` once, released together by a barrier.
fn storm(client: &Client, url: &str, threads: usize) -> Vec<Outcome> {
    let (client, url) = (client.clone(), url.to_owned());
    common::storm(threads, move |_| {
        let result = client.get(&url).map(|r| r.status().as_u16());
        Outcome { result, finished: Instant::now() }
    })
}

/// Every request got exactly one outcome: each call returned (the storm joined every thread),
/// the client counted each as succeeded or failed once, and the API answered 200 exactly as
/// often as the client returned a response (every response here is a 200 from `/api`).
fn assert_one_outcome_each(client: &Client, issuer: &MockIssuer, outcomes: &[Outcome]) {
    let stats = client.stats();
    assert_eq!(stats.requests, stats.succeeded + stats.failed, "{stats:?}");
    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count() as u64;
    let failed = outcomes.len() as u64 - ok;
    assert!(stats.succeeded >= ok && stats.failed >= failed, "{stats:?}");
    assert_eq!(issuer.counters().api_ok, stats.succeeded, "a 200 was lost or duplicated");
}

/// Every outcome came within `bound` of `started`.
fn assert_all_within(outcomes: &[Outcome], started: Instant, bound: Duration) {
    for outcome in outcomes {
        let took = outcome.finished - started;
        assert!(took < bound, "{outcome:?} took {took:?}, bound {bound:?}");
    }
}

/// The refresh token survived the fault: after another expiry the client refreshes with the
/// token it kept and succeeds, no refresh token was ever presented twice, and the store's copy
/// is the live one (a fresh client restored from it refreshes successfully).
fn assert_refresh_token_survived(issuer: &MockIssuer, client: &Client, store: &MemoryStore) {
    issuer.expire_all_now();
    let before = issuer.counters().refresh_successes;
    assert_eq!(client.get(&issuer.api_url("after")).unwrap().status(), 200);
    assert_eq!(issuer.counters().refresh_successes, before + 1);
    let saved = store.snapshot().expect("the store holds the tokens");
    let restored = builder(issuer)
        .store(MemoryStore::with_tokens(StoredTokens {
            version: 1,
            refresh_token: saved.refresh_token,
            access_token: None,
            expires_at: None,
        }))
        .build()
        .unwrap();
    assert_eq!(restored.get(&issuer.api_url("restored")).unwrap().status(), 200);
    assert_eq!(issuer.counters().reuse_attempts, 0);
}

/// `fault` served once on the token endpoint during a storm of 16 costs one retry and nothing
/// else: every request succeeds and the session survives.
fn transient_fault_costs_one_retry(fault: Fault) {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let client = logged_in(&issuer, builder(&issuer).store(store.clone()));
    issuer.expire_all_now();
    issuer.inject(fault.clone());
    let started = Instant::now();
    let outcomes = storm(&client, &issuer.api_url("x"), 16);
    assert!(outcomes.iter().all(|o| matches!(o.result, Ok(200))), "{fault:?}: {outcomes:?}");
    // The wait timeout is 30 s and the refresh timeout 30 s: nobody came near either.
    assert_all_within(&outcomes, started, Duration::from_secs(10));
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.refresh_successes), (2, 1), "{counters:?}");
    let stats = client.stats();
    assert_eq!((stats.refreshes_failed, stats.refreshes_succeeded), (1, 1), "{stats:?}");
    assert!(!client.needs_login());
    assert_one_outcome_each(&client, &issuer, &outcomes);
    assert_refresh_token_survived(&issuer, &client, &store);
}

#[test]
fn connection_reset_mid_body_costs_one_retry_and_no_request() {
    transient_fault_costs_one_retry(Fault::ResetMidBody { times: 1 });
}

#[test]
fn connection_closed_before_the_answer_costs_one_retry_and_no_request() {
    transient_fault_costs_one_retry(Fault::CloseBeforeAnswer { times: 1 });
}

#[test]
fn retry_after_of_a_429_holds_the_retry_back_until_the_hint() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let client = logged_in(&issuer, builder(&issuer).store(store.clone()));
    issuer.expire_all_now();
    issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 1 });
    let started = Instant::now();
    let outcomes = storm(&client, &issuer.api_url("busy"), 8);
    assert!(outcomes.iter().all(|o| matches!(o.result, Ok(200))), "{outcomes:?}");
    for outcome in &outcomes {
        // The 429 was served after `started`, and only the retry could bring the token that
        // every success needed: no success before the hint means no retry before it. The
        // coordinator's clock counts whole milliseconds, hence a few of slack.
        let took = outcome.finished - started;
        assert!(took >= Duration::from_millis(990), "retried before Retry-After: {took:?}");
    }
    assert_all_within(&outcomes, started, Duration::from_secs(10));
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.refresh_successes), (2, 1), "{counters:?}");
    assert!(client.last_refresh_error().is_none(), "a success clears the last error");
    assert_one_outcome_each(&client, &issuer, &outcomes);
    assert_refresh_token_survived(&issuer, &client, &store);
}

#[test]
fn retry_after_beyond_the_backoff_cap_is_cut_to_the_cap() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let backoff = Backoff { max: reauth_core::Duration::from_millis(200), ..Backoff::DEFAULT };
    let config = Config { backoff, ..quick_config() };
    let client = logged_in(&issuer, builder(&issuer).config(config).store(store.clone()));
    issuer.expire_all_now();
    issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 600 });
    let started = Instant::now();
    let outcomes = storm(&client, &issuer.api_url("busy"), 4);
    assert!(outcomes.iter().all(|o| matches!(o.result, Ok(200))), "{outcomes:?}");
    // Honouring the 600 s hint would have run into the 30 s wait timeout.
    assert_all_within(&outcomes, started, Duration::from_secs(10));
    assert_eq!(issuer.counters().refresh_calls, 2);
    assert_one_outcome_each(&client, &issuer, &outcomes);
    assert_refresh_token_survived(&issuer, &client, &store);
}

#[test]
fn token_answer_trickling_byte_by_byte_within_the_refresh_timeout_is_used() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let client = logged_in(
        &issuer,
        builder(&issuer).store(store.clone()).refresh_timeout(Duration::from_secs(10)),
    );
    issuer.expire_all_now();
    // About 350 bytes at 1 ms each: well inside the 10 s refresh timeout.
    issuer.inject(Fault::Trickle { times: 1, byte_delay: Duration::from_millis(1) });
    let started = Instant::now();
    let outcomes = storm(&client, &issuer.api_url("slow"), 8);
    assert!(outcomes.iter().all(|o| matches!(o.result, Ok(200))), "{outcomes:?}");
    assert_all_within(&outcomes, started, Duration::from_secs(20));
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.faults_served), (1, 1), "{counters:?}");
    assert_one_outcome_each(&client, &issuer, &outcomes);
    assert_refresh_token_survived(&issuer, &client, &store);
}

#[test]
fn token_answer_trickling_past_the_refresh_timeout_ends_every_request_promptly() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let refresh_timeout = Duration::from_millis(400);
    let client = logged_in(&issuer, builder(&issuer).refresh_timeout(refresh_timeout));
    issuer.expire_all_now();
    // About 350 bytes at 40 ms each: 14 s, far past the 400 ms refresh timeout.
    issuer.inject(Fault::Trickle { times: 1, byte_delay: Duration::from_millis(40) });
    let started = Instant::now();
    let outcomes = storm(&client, &issuer.api_url("slow"), 8);
    // The issuer rotated the refresh token before it started trickling; the answer that
    // carried the new one never arrived whole. The retry presents the old token, which the
    // issuer refuses as a reuse: the session is really lost, and every request says so.
    for outcome in &outcomes {
        assert!(matches!(outcome.result, Err(Error::NeedsLogin)), "{outcome:?}");
    }
    // Two refresh timeouts and a backoff take about 0.9 s; the trickle alone would take 14 s.
    // Half of that separates the two on a loaded machine too.
    assert_all_within(&outcomes, started, Duration::from_secs(7));
    assert!(client.needs_login());
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.reuse_attempts), (2, 1), "{counters:?}");
    assert_one_outcome_each(&client, &issuer, &outcomes);
}

#[test]
fn invalid_client_logs_out_and_rejects_every_waiting_thread_at_once() {
    let issuer = MockIssuer::start(IssuerConfig {
        latency: Duration::from_millis(100),
        ..IssuerConfig::default()
    })
    .unwrap();
    let wait_timeout = Duration::from_secs(20);
    let client = logged_in(&issuer, builder(&issuer).wait_timeout(wait_timeout));
    issuer.expire_all_now();
    issuer.inject(Fault::InvalidClient { times: 1 });
    let started = Instant::now();
    let outcomes = storm(&client, &issuer.api_url("x"), 16);
    for outcome in &outcomes {
        assert!(matches!(outcome.result, Err(Error::NeedsLogin)), "{outcome:?}");
    }
    // Released by the refusal, long before the 20 s wait deadline.
    assert_all_within(&outcomes, started, wait_timeout / 2);
    assert!(client.needs_login());
    assert!(
        matches!(
            client.last_refresh_error(),
            Some(RefreshError::Refused {
                status: Some(401),
                code: Some(ErrorCode::InvalidClient),
                ..
            })
        ),
        "{:?}",
        client.last_refresh_error()
    );
    assert_eq!(issuer.counters().refresh_calls, 1, "a refusal is not retried");
    assert_one_outcome_each(&client, &issuer, &outcomes);
}

#[test]
fn fresh_token_refused_on_the_replay_is_unauthorized_after_one_refresh() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let client = logged_in(&issuer, builder(&issuer).store(store.clone()));
    // From now on the issuer hands out tokens that are dead on arrival: valid for 1 ms (though
    // the answer says `expires_in: 1`) and delivered 20 ms after they were issued, so the replay
    // with the fresh token always gets a 401 again.
    issuer.set_token_lifetime(Duration::from_millis(1));
    issuer.set_latency(Duration::from_millis(20), Duration::ZERO);
    issuer.expire_all_now();
    let started = Instant::now();
    for round in 1..=3u64 {
        let result = client.get(&issuer.api_url("x"));
        assert!(matches!(result, Err(Error::Unauthorized)), "{result:?}");
        let counters = issuer.counters();
        // One refresh per request, each request sent twice: no refresh loop, no replay loop.
        assert_eq!(counters.refresh_calls, round, "{counters:?}");
        assert_eq!(counters.api_unauthorized, 2 * round, "{counters:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let stats = client.stats();
    assert_eq!((stats.rejected_unauthorized, stats.failed), (3, 3), "{stats:?}");
    // The refresh token was never refused: with sane lifetimes everything works again.
    issuer.set_token_lifetime(Duration::from_secs(60));
    issuer.set_latency(Duration::ZERO, Duration::ZERO);
    assert_refresh_token_survived(&issuer, &client, &store);
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("reauth-ureq-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn file_store_failing_mid_session_is_reported_and_requests_still_succeed() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let scratch = Scratch::new("store");
    let path = scratch.0.join("tokens.json");
    let reported = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&reported);
    let client = logged_in(
        &issuer,
        builder(&issuer).store(FileStore::new(&path)).lease_fallback(true).on_store_error(
            move |_| {
                r.fetch_add(1, Ordering::Relaxed);
            },
        ),
    );
    assert!(FileStore::new(&path).load().unwrap().is_some(), "the login was saved");
    // The directory is replaced by a regular file: every save now fails with ENOTDIR, also for
    // root (for whom a read-only directory is no obstacle).
    std::fs::remove_dir_all(&scratch.0).unwrap();
    std::fs::write(&scratch.0, b"not a directory").unwrap();
    issuer.expire_all_now();
    let started = Instant::now();
    let outcomes = storm(&client, &issuer.api_url("x"), 16);
    assert!(outcomes.iter().all(|o| matches!(o.result, Ok(200))), "{outcomes:?}");
    assert_all_within(&outcomes, started, Duration::from_secs(10));
    let stats = client.stats();
    assert_eq!((stats.store_errors, stats.refreshes_succeeded), (1, 1), "{stats:?}");
    assert_eq!(reported.load(Ordering::Relaxed), 1);
    assert_one_outcome_each(&client, &issuer, &outcomes);
    // The unsaved tokens are in memory and in use: the next expiry refreshes with them.
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("y")).unwrap().status(), 200);
    assert_eq!(client.stats().store_errors, 2);
    // Once the directory is back, the next refresh saves the live token again.
    std::fs::remove_file(&scratch.0).unwrap();
    std::fs::create_dir_all(&scratch.0).unwrap();
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("z")).unwrap().status(), 200);
    assert_eq!(client.stats().store_errors, 2);
    let restarted = builder(&issuer).store(FileStore::new(&path)).build().unwrap();
    issuer.expire_all_now();
    assert_eq!(restarted.get(&issuer.api_url("restarted")).unwrap().status(), 200);
    assert_eq!(issuer.counters().reuse_attempts, 0);
}

#[test]
fn storm_larger_than_the_queue_refuses_the_overflow_at_once_and_answers_the_rest() {
    const THREADS: usize = QUEUE_CAPACITY + 44;
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let client = logged_in(
        &issuer,
        builder(&issuer)
            .store(store.clone())
            .refresh_timeout(Duration::from_secs(10))
            .wait_timeout(Duration::from_secs(20)),
    );
    issuer.expire_all_now();
    // The first refresh call hangs for a while (then the connection closes and the retry
    // succeeds), so that the whole storm arrives while the refresh runs.
    issuer.inject(Fault::Hang { times: 1, duration: Duration::from_millis(1_500) });
    let first = {
        let (client, url) = (client.clone(), issuer.api_url("first"));
        thread::spawn(move || client.get(&url).map(|r| r.status().as_u16()))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(client.state(), State::Refreshing { .. }) {
        assert!(Instant::now() < deadline, "no refresh started: {:?}", client.state());
        thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    let mut outcomes = storm(&client, &issuer.api_url("storm"), THREADS);
    outcomes.push(Outcome { result: first.join().unwrap(), finished: Instant::now() });
    let full: Vec<_> =
        outcomes.iter().filter(|o| matches!(o.result, Err(Error::QueueFull))).collect();
    let ok: Vec<_> = outcomes.iter().filter(|o| matches!(o.result, Ok(200))).collect();
    assert_eq!(full.len() + ok.len(), THREADS + 1, "only 200 or QueueFull: {outcomes:?}");
    // The queue took exactly its capacity (the first request included) while the refresh hung.
    assert_eq!(ok.len(), QUEUE_CAPACITY, "{} ok, {} refused", ok.len(), full.len());
    // Refused at once: every refusal came before the refresh released the first waiter.
    let first_ok = ok.iter().map(|o| o.finished).min().unwrap();
    assert!(full.iter().all(|o| o.finished <= first_ok));
    assert_all_within(&outcomes, started, Duration::from_secs(20));
    assert_eq!(client.stats().rejected_queue_full, full.len() as u64);
    assert_one_outcome_each(&client, &issuer, &outcomes);
    assert_refresh_token_survived(&issuer, &client, &store);
}

#[test]
fn corrupt_or_truncated_shared_record_is_a_typed_error_never_a_panic_or_a_logout() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let scratch = Scratch::new("corrupt");
    let path = scratch.0.join("tokens.json");
    let client = logged_in(&issuer, builder(&issuer).store(FileStore::new(&path)));
    let saved = std::fs::read(&path).unwrap();
    // Another process's write was cut short (or the disk lied): half a record.
    std::fs::write(&path, &saved[..saved.len() / 2]).unwrap();
    issuer.expire_all_now();
    let error = client.get(&issuer.api_url("x")).unwrap_err();
    match &error {
        Error::RefreshUnavailable(Some(RefreshError::Store(e))) => {
            assert!(matches!(**e, StoreError::Corrupt { .. }), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("not a reauth token file"), "{error}");
    assert!(!client.needs_login(), "a damaged file never logs out");
    assert_eq!(issuer.counters().refresh_calls, 0, "no refresh without a readable record");
    // A new program cannot start from it either, with the same typed error.
    let restarted = builder(&issuer).store(FileStore::new(&path)).build();
    assert!(matches!(restarted, Err(Error::Store(StoreError::Corrupt { .. }))), "{restarted:?}");
    // A login writes over it, and everything works again.
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("y")).unwrap().status(), 200);
    assert!(FileStore::new(&path).load().unwrap().is_some_and(|r| r.version >= 2));
    // Garbage that is not even JSON: the same.
    std::fs::write(&path, b"\x00\xff garbage").unwrap();
    assert!(matches!(FileStore::new(&path).load(), Err(StoreError::Corrupt { .. })));
}
