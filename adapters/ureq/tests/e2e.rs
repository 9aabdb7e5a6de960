//! End-to-end tests of reauth-ureq against the loopback mock issuer: real sockets on 127.0.0.1,
//! every loop bounded in count and time. Timing bounds here are generous upper limits on "did not
//! hang until a later deadline", never performance assertions.

mod common;

use core::time::Duration;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use reauth_core::oauth::TokenResponseError;
use reauth_core::{Config, FailCause, State, TokenError};
use reauth_testkit::issuer::{ExpiryStyle, Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{
    Client, ClientBuilder, Error, Expiry, FileStore, MemoryStore, NewTokens, RefreshError,
    StoredTokens, TokenStore,
};
use zeroize::Zeroizing;

use crate::common::{logged_in, quick_config, storm};

fn builder(issuer: &MockIssuer) -> ClientBuilder {
    common::builder(issuer, "e2e")
}

fn body(response: http::Response<ureq::Body>) -> String {
    response.into_body().read_to_string().unwrap()
}

#[test]
fn storm_of_64_threads_after_expiry_makes_exactly_one_refresh() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = logged_in(&issuer, builder(&issuer));
    issuer.expire_all_now();
    issuer.reset_counters();
    let c = client.clone();
    let url = issuer.api_url("storm");
    let results = storm(64, move |_| c.get(&url).map(|r| r.status().as_u16()));
    for result in &results {
        assert_eq!(result.as_ref().unwrap(), &200);
    }
    let counters = issuer.counters();
    assert_eq!(counters.refresh_calls, 1, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0);
    assert_eq!(counters.refresh_token_seen_on_api, 0);
    assert_eq!(counters.access_token_seen_on_token_endpoint, 0);
    assert_eq!(counters.refreshes_per_access_token_max, 1);
    let stats = client.stats();
    assert_eq!((stats.refreshes_started, stats.succeeded, stats.failed), (1, 64, 0), "{stats:?}");
    assert!(stats.invalid_token_challenges >= 1);
}

#[test]
fn staggered_requests_with_short_lifetime_never_refresh_a_token_twice() {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_millis(300),
        latency_jitter: Duration::from_millis(200),
        seed: 7,
        ..IssuerConfig::default()
    })
    .unwrap();
    // The issuer advertises whole seconds (`expires_in: 1` for a 300 ms token), so a replay
    // with a token the client rightly believes fresh can still meet a 401: allow a second replay
    // so that such a request parks for the next refresh instead of failing.
    let config = Config { replay_limit: 2, ..quick_config() };
    let client = logged_in(&issuer, builder(&issuer).config(config));
    let url = issuer.api_url("staggered");
    let c = client.clone();
    let outcomes = storm(8, move |i| {
        let started = Instant::now();
        let (mut ok, mut failed) = (0u32, Vec::new());
        // Bounded twice: by count and by time.
        for n in 0..400u64 {
            if started.elapsed() >= Duration::from_secs(2) {
                break;
            }
            match c.get(&url) {
                Ok(r) if r.status() == 200 => ok += 1,
                Ok(r) => failed.push(format!("status {}", r.status())),
                Err(e) => failed.push(e.to_string()),
            }
            thread::sleep(Duration::from_millis((n * 7 + i as u64 * 13) % 40));
        }
        (ok, failed)
    });
    let ok: u32 = outcomes.iter().map(|(ok, _)| ok).sum();
    let failed: Vec<_> = outcomes.into_iter().flat_map(|(_, f)| f).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok > 8);
    let counters = issuer.counters();
    assert!(counters.refresh_successes >= 2, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0, "{counters:?}");
    assert!(counters.refreshes_per_access_token_max <= 1, "{counters:?}");
    assert_eq!(client.stats().failed, 0);
}

#[test]
fn refused_refresh_rejects_every_waiting_thread_promptly() {
    let issuer = MockIssuer::start(IssuerConfig {
        latency: Duration::from_millis(100),
        ..IssuerConfig::default()
    })
    .unwrap();
    let client = logged_in(&issuer, builder(&issuer).wait_timeout(Duration::from_secs(20)));
    issuer.expire_all_now();
    issuer.inject(Fault::InvalidGrant { times: 1 });
    let c = client.clone();
    let url = issuer.api_url("refused");
    let results = storm(16, move |_| {
        let started = Instant::now();
        (c.get(&url).map(|r| r.status()), started.elapsed())
    });
    for (result, elapsed) in results {
        assert!(matches!(result, Err(Error::NeedsLogin)), "{result:?}");
        // Well before the 20 s wait deadline: the refusal released everyone at once.
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    }
    assert!(client.needs_login());
    assert_eq!(issuer.counters().refresh_calls, 1);
    assert!(matches!(client.get(&issuer.api_url("after")), Err(Error::NeedsLogin)));
    // A new login brings the client back.
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    assert_eq!(client.get(&issuer.api_url("again")).unwrap().status(), 200);
}

#[test]
fn two_503s_then_success_loses_no_request_and_stays_logged_in() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = logged_in(&issuer, builder(&issuer));
    issuer.expire_all_now();
    issuer.reset_counters();
    issuer.inject(Fault::ServiceUnavailable { times: 2 });
    let c = client.clone();
    let url = issuer.api_url("flaky");
    let results = storm(16, move |_| c.get(&url).map(|r| r.status().as_u16()));
    assert!(results.iter().all(|r| matches!(r, Ok(200))), "{results:?}");
    assert!(!client.needs_login());
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.refresh_successes), (3, 1), "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0);
    let stats = client.stats();
    assert_eq!((stats.refreshes_failed, stats.refreshes_succeeded), (2, 1), "{stats:?}");
}

#[test]
fn hanging_token_endpoint_times_out_waiting_requests() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = logged_in(
        &issuer,
        builder(&issuer)
            .wait_timeout(Duration::from_millis(400))
            .refresh_timeout(Duration::from_secs(2)),
    );
    issuer.expire_all_now();
    issuer.inject(Fault::Hang { times: 1, duration: Duration::from_secs(3) });
    let c = client.clone();
    let url = issuer.api_url("hang");
    let results = storm(8, move |_| {
        let result = c.get(&url).map(|r| r.status());
        // Whether the refresh had ended (its 2 s timeout) by the time this thread got its answer.
        let stats = c.stats();
        (result, stats.refreshes_failed + stats.refreshes_succeeded)
    });
    let mut after_the_refresh = 0;
    for (result, refreshes_ended) in results {
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        // The thread that performs the refresh is held by the refresh call (2 s timeout), not by
        // its wait deadline; every other thread leaves at its 400 ms deadline, while the refresh
        // is still hanging. An order of events, not a wall-clock bound: the hang lasts 3 s.
        if refreshes_ended > 0 {
            after_the_refresh += 1;
        }
    }
    assert!(after_the_refresh <= 1, "only the refreshing thread may wait for the refresh");
    assert!(!client.needs_login(), "a hang must not log the user out");
}

#[test]
fn hanging_token_endpoint_is_presented_the_token_at_most_max_attempts_times() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let config = Config { max_refresh_attempts: 2, max_unanswered: 2, ..quick_config() };
    let client = logged_in(
        &issuer,
        builder(&issuer)
            .config(config)
            .refresh_timeout(Duration::from_millis(300))
            .wait_timeout(Duration::from_secs(10)),
    );
    issuer.expire_all_now();
    issuer.inject(Fault::Hang { times: 2, duration: Duration::from_secs(2) });
    let c = client.clone();
    let url = issuer.api_url("hang");
    let results = storm(4, move |_| c.get(&url).map(|r| r.status()));
    for result in results {
        // Each timed-out call may have rotated the token on the server: after two of them the
        // client stops presenting it rather than risk the server's reuse detection. NeedsLogin,
        // not Timeout: the episode ended before the 10 s wait deadline (no wall-clock check,
        // which a loaded machine would make flaky).
        assert!(matches!(result, Err(Error::NeedsLogin)), "{result:?}");
    }
    assert_eq!(client.state(), State::Failed { cause: FailCause::Unanswered });
    assert!(matches!(client.last_refresh_error(), Some(RefreshError::Transport(_))));
    // No third presentation, whatever is asked.
    assert!(matches!(client.get(&issuer.api_url("later")), Err(Error::NeedsLogin)));
    assert_eq!(issuer.counters().refresh_calls, 2);
}

#[test]
fn malformed_token_response_is_a_clear_error() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let config = Config { max_refresh_attempts: 1, max_unanswered: 1, ..quick_config() };
    let client = logged_in(&issuer, builder(&issuer).config(config));
    issuer.expire_all_now();
    issuer.inject(Fault::MalformedJson { times: 1 });
    // A 200 whose body cannot be used may have rotated the token: with one attempt allowed it
    // is not presented again, and the reason is kept.
    let error = client.get(&issuer.api_url("x")).unwrap_err();
    assert!(matches!(error, Error::NeedsLogin), "{error:?}");
    let reason = client.last_refresh_error().expect("the reason is kept");
    assert!(
        matches!(reason, RefreshError::InvalidResponse(TokenResponseError::Json(_))),
        "{reason:?}"
    );
    assert!(reason.to_string().contains("not valid OAuth2 JSON"), "{reason}");
    assert_eq!(client.state(), State::Failed { cause: FailCause::Unanswered });
}

#[test]
fn one_lost_answer_is_retried_within_the_attempts() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let config = Config { max_refresh_attempts: 2, ..quick_config() };
    let client = logged_in(&issuer, builder(&issuer).config(config));
    issuer.expire_all_now();
    issuer.inject(Fault::MalformedJson { times: 1 });
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.reuse_attempts), (2, 0), "{counters:?}");
}

#[test]
fn oversized_token_response_is_a_clear_error() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let config = Config { max_refresh_attempts: 1, max_unanswered: 1, ..quick_config() };
    let client = logged_in(&issuer, builder(&issuer).config(config));
    issuer.expire_all_now();
    issuer.inject(Fault::OversizedToken { times: 1, len: 9_000 });
    let error = client.get(&issuer.api_url("x")).unwrap_err();
    assert!(matches!(error, Error::NeedsLogin), "{error:?}");
    let reason = client.last_refresh_error().expect("the reason is kept");
    let expected = TokenError::TooLong { len: 9_000, capacity: 8_192 };
    match &reason {
        RefreshError::InvalidResponse(TokenResponseError::Token(e)) => assert_eq!(*e, expected),
        other => panic!("{other:?}"),
    }
    assert!(
        reason.to_string().contains("9000 bytes does not fit its 8192-byte buffer"),
        "{reason}"
    );
}

#[test]
fn classic_409_api_with_body_code_rule_and_custom_refresh_exchange() {
    let issuer = MockIssuer::start(IssuerConfig {
        expiry_style: ExpiryStyle::Classic409,
        ..IssuerConfig::default()
    })
    .unwrap();
    let refresh_url = issuer.classic_refresh_url();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .build()
        .into();
    // The API's own refresh endpoint: {"refreshToken"} in, {"token","refreshToken","ttl"} out.
    let exchange = move |refresh_token: &str| -> Result<NewTokens, RefreshError> {
        let mut response = agent
            .post(&refresh_url)
            .send_json(serde_json::json!({ "refreshToken": refresh_token }))
            .map_err(|e| RefreshError::Transport(Arc::new(e)))?;
        let status = response.status().as_u16();
        if status == 401 {
            return Err(RefreshError::refused(Some(status)));
        }
        if status != 200 {
            return Err(RefreshError::Other(format!("HTTP {status}")));
        }
        let json: serde_json::Value =
            response.body_mut().read_json().map_err(|e| RefreshError::Transport(Arc::new(e)))?;
        let field = |name: &str| json[name].as_str().map(str::to_owned).map(Zeroizing::new);
        let (Some(token), refresh) = (field("token"), field("refreshToken")) else {
            return Err(RefreshError::Other("no token in the answer".into()));
        };
        let ttl = json["ttl"].as_u64().map(Duration::from_secs);
        NewTokens::new(&token, refresh.as_deref().map(String::as_str), ttl)
            .map_err(|e| RefreshError::Other(e.to_string()))
    };
    let client = logged_in(
        &issuer,
        Client::builder()
            .refresh_with(exchange)
            .expiry(Expiry::body_code_only("code", &[409]))
            .config(quick_config()),
    );
    issuer.expire_all_now();
    issuer.reset_counters();
    let c = client.clone();
    let url = issuer.api_url("classic");
    let bodies = storm(8, move |_| c.get(&url).map(body));
    for b in &bodies {
        let b = b.as_ref().unwrap();
        assert!(b.contains(r#""ok":true"#), "the judged body is handed back whole: {b}");
    }
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.reuse_attempts), (1, 0), "{counters:?}");
    assert!(client.stats().expired_responses >= 1);
}

#[test]
fn restarted_client_resumes_from_the_file_store() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("reauth-ureq-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let _ = std::fs::remove_file(&path);
    {
        let first = logged_in(&issuer, builder(&issuer).store(FileStore::new(&path)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        issuer.expire_all_now();
        assert_eq!(first.get(&issuer.api_url("one")).unwrap().status(), 200);
        assert_eq!(first.stats().refreshes_succeeded, 1);
    }
    // The rotated refresh token was saved: a new process picks it up.
    let saved = FileStore::new(&path).load().unwrap().unwrap();
    assert!(saved.access_token.is_some() && saved.expires_at.is_some());
    let second = builder(&issuer).store(FileStore::new(&path)).build().unwrap();
    assert!(!second.needs_login());
    assert_eq!(second.get(&issuer.api_url("two")).unwrap().status(), 200);
    assert_eq!(second.stats().refreshes_started, 0, "the saved access token was still valid");
    // With the access token gone stale, the restarted client refreshes with the saved token.
    issuer.expire_all_now();
    let third = builder(&issuer).store(FileStore::new(&path)).build().unwrap();
    assert_eq!(third.get(&issuer.api_url("three")).unwrap().status(), 200);
    // A refresh token alone (no access token) resumes through a restore.
    let only_refresh = FileStore::new(dir.join("refresh-only.json"));
    let latest = FileStore::new(&path).load().unwrap().unwrap();
    only_refresh
        .save(&StoredTokens {
            version: 1,
            refresh_token: latest.refresh_token.clone(),
            access_token: None,
            expires_at: None,
        })
        .unwrap();
    drop(third);
    let fourth = builder(&issuer).store(only_refresh).build().unwrap();
    assert!(!fourth.needs_login());
    assert_eq!(fourth.get(&issuer.api_url("four")).unwrap().status(), 200);
    assert_eq!(issuer.counters().reuse_attempts, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn store_failure_is_reported_and_the_tokens_stay_in_memory() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let missing = std::env::temp_dir().join("reauth-ureq-no-such-dir-4711/tokens.json");
    let reported = Arc::new(core::sync::atomic::AtomicUsize::new(0));
    let r = Arc::clone(&reported);
    let client = builder(&issuer)
        .store(FileStore::new(missing))
        .lease_fallback(true)
        .on_store_error(move |_| {
            r.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let tokens = issuer.login();
    let result = client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in));
    assert!(matches!(result, Err(Error::Store(_))), "{result:?}");
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    assert_eq!(client.stats().store_errors, 2);
    assert_eq!(reported.load(core::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn redirect_to_another_origin_does_not_carry_the_token() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let other = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = logged_in(&issuer, builder(&issuer));
    let url = issuer.api_url(&format!("redirect?to={}", other.echo_auth_url()));
    let echoed = body(client.get(&url).unwrap());
    assert_eq!(echoed, r#"{"authorization":null}"#);
    assert_eq!(other.counters().foreign_authorization_seen, 0);
    // The same host on the same port is the same origin: the token goes along.
    let same = issuer.api_url(&format!("redirect?to={}", issuer.api_url("target")));
    let response = client.get(&same).unwrap();
    assert_eq!(response.status(), 200);
    assert!(body(response).contains(r#""path":"/api/target""#));
    // A 401 from the other origin is not taken for an expired token of ours.
    let foreign_api = issuer.api_url(&format!("redirect?to={}", other.api_url("x")));
    assert_eq!(client.get(&foreign_api).unwrap().status(), 401);
    assert_eq!(client.stats().refreshes_started, 0);
    assert_eq!(issuer.counters().refresh_calls, 0);
}

#[test]
fn request_built_from_the_token_is_built_again_with_the_new_token_after_expiry() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = logged_in(&issuer, builder(&issuer));
    issuer.expire_all_now();
    let url = issuer.api_url("built");
    let seen = std::sync::Mutex::new(Vec::new());
    let response = client
        .send_with(|token| {
            seen.lock().unwrap().push(token.to_owned());
            http::Request::get(&url).header("Authorization", format!("Bearer {token}")).body(vec![])
        })
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 2, "built once for the expired token, once for the new one");
    assert_ne!(seen[0], seen[1]);
    assert_eq!(issuer.counters().refresh_calls, 1);
    let failed = client.send_with(|_| http::Request::get("not a uri").body(vec![]));
    assert!(matches!(failed, Err(Error::InvalidRequest(_))), "{failed:?}");
}

#[test]
fn request_built_from_the_token_never_follows_a_redirect_to_another_origin() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let other = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = logged_in(&issuer, builder(&issuer));
    let url = issuer.api_url(&format!("redirect?to={}", other.echo_auth_url()));
    let response = client
        .send_with(|token| http::Request::get(&url).header("X-Auth-Token", token).body(vec![]))
        .unwrap();
    assert_eq!(response.status(), 302, "the redirect comes back instead of being followed");
    assert_eq!(other.counters().requests_total, 0);
    // Within the origin it is followed, with the request as built.
    let same = issuer.api_url(&format!("redirect?to={}", issuer.api_url("target")));
    let response = client
        .send_with(|token| {
            http::Request::get(&same)
                .header("Authorization", format!("Bearer {token}"))
                .body(vec![])
        })
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn request_still_refused_after_a_fresh_token_is_unauthorized_not_a_loop() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    // A rule that calls every 404 "expired": the request is refused even with a fresh token.
    let client = logged_in(
        &issuer,
        builder(&issuer).expiry(Expiry::default().predicate(|view| view.status == 404)),
    );
    let result = client.get(&format!("{}/nowhere", issuer.base_url()));
    assert!(matches!(result, Err(Error::Unauthorized)), "{result:?}");
    assert_eq!(client.stats().refreshes_started, 1);
}

#[test]
fn no_public_type_shows_a_token() {
    const SENTINEL: &str = "SENTINEL-7f3a";
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let builder = builder(&issuer).client_secret(SENTINEL).store(store.clone());
    let builder_debug = format!("{builder:?}");
    let client = builder.build().unwrap();
    client.login(SENTINEL, SENTINEL, Some(Duration::from_secs(60))).unwrap();
    let tokens = NewTokens::new(SENTINEL, Some(SENTINEL), None).unwrap();
    let stored = store.snapshot().unwrap();
    assert_eq!(*stored.refresh_token, SENTINEL);
    // The sentinel is not a token the issuer knows: the request is refused, refreshed with
    // the sentinel refresh token, which is refused too.
    let error = client.get(&issuer.api_url("x")).unwrap_err();
    let shown = [
        builder_debug,
        format!("{client:?}"),
        format!("{tokens:?}"),
        format!("{stored:?}"),
        format!("{store:?}"),
        format!("{error:?} {error}"),
        format!("{:?}", client.last_refresh_error()),
        format!("{:?}", client.stats()),
        format!("{:?}", client.state()),
        format!(
            "{:?} {}",
            Error::RefreshUnavailable(client.last_refresh_error()),
            Error::NeedsLogin
        ),
    ];
    for text in shown {
        assert!(!text.contains(SENTINEL), "{text}");
    }
    assert!(matches!(error, Error::NeedsLogin), "{error:?}");
    assert_eq!(issuer.counters().refresh_token_seen_on_api, 0);
}

/// A store whose `save` is slow and remembers when it finished.
#[derive(Default)]
struct SlowStore {
    inner: MemoryStore,
    saved_at: std::sync::Mutex<Vec<Instant>>,
}

impl TokenStore for SlowStore {
    fn load(&self) -> Result<Option<StoredTokens>, reauth_ureq::StoreError> {
        self.inner.load()
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), reauth_ureq::StoreError> {
        thread::sleep(Duration::from_millis(150));
        self.inner.save(tokens)?;
        self.saved_at.lock().unwrap().push(Instant::now());
        Ok(())
    }

    fn clear(&self, version: Option<u64>) -> Result<(), reauth_ureq::StoreError> {
        self.inner.clear(version)
    }

    fn try_lease(&self, lease: &reauth_ureq::Lease) -> Result<bool, reauth_ureq::StoreError> {
        self.inner.try_lease(lease)
    }

    fn release(&self, lease: &reauth_ureq::Lease) -> Result<(), reauth_ureq::StoreError> {
        self.inner.release(lease)
    }
}

#[test]
fn rotated_refresh_token_is_saved_before_waiting_requests_are_released() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = Arc::new(SlowStore::default());
    let client = logged_in(&issuer, builder(&issuer).store(Arc::clone(&store)));
    issuer.expire_all_now();
    let c = client.clone();
    let url = issuer.api_url("ordered");
    let finished = storm(8, move |_| {
        let response = c.get(&url).unwrap();
        assert_eq!(response.status(), 200);
        Instant::now()
    });
    let saves = store.saved_at.lock().unwrap().clone();
    assert_eq!(saves.len(), 2, "the login and the refresh");
    let refresh_saved = saves[1];
    assert!(finished.iter().all(|&done| done >= refresh_saved));
    let latest = store.inner.snapshot().unwrap();
    // The store holds the rotated token: presenting it works (it was never used before).
    assert_eq!(issuer.counters().reuse_attempts, 0);
    assert!(latest.access_token.is_some());
}

#[test]
fn client_is_clone_send_and_sync() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn boxable<T: core::error::Error + Send + Sync + 'static>() {}
    shareable::<Client>();
    shareable::<RefreshError>();
    boxable::<Error>();
}

#[test]
fn exhausted_episode_cools_down_instead_of_hammering_the_token_endpoint() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    // The cool-down after two failures is the next backoff delay: 4 s base, 2-4 s with jitter,
    // long enough that the requests below certainly fall inside it.
    let backoff = reauth_core::Backoff {
        initial: reauth_core::Duration::from_millis(1_000),
        max: reauth_core::Duration::from_secs(10),
        seed: 3,
    };
    let config = Config { max_refresh_attempts: 2, backoff, ..quick_config() };
    let client = logged_in(&issuer, builder(&issuer).config(config));
    issuer.expire_all_now();
    issuer.inject(Fault::ServiceUnavailable { times: 100 });
    assert!(matches!(client.get(&issuer.api_url("a")), Err(Error::RefreshUnavailable(Some(_)))));
    assert_eq!(issuer.counters().refresh_calls, 2);
    let State::Idle { retry_at, .. } = client.state() else { panic!("{:?}", client.state()) };
    assert!(retry_at > reauth_core::Instant::ZERO, "a cool-down holds");
    // Meanwhile every request is turned away at once, with the reason, and the endpoint hears
    // nothing.
    for _ in 0..20 {
        let result = client.get(&issuer.api_url("b"));
        assert!(
            matches!(
                result,
                Err(Error::RefreshUnavailable(Some(RefreshError::Unavailable { status: 503, .. })))
            ),
            "{result:?}"
        );
    }
    assert_eq!(issuer.counters().refresh_calls, 2, "no call during the cool-down");
    assert!(!client.needs_login(), "503s never log out");
}

#[test]
fn every_refresh_opens_its_own_connection_so_a_server_closed_idle_one_is_never_reused() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    // No other client: the only connections the issuer sees are the refresh calls'.
    let client = logged_in(&issuer, builder(&issuer));
    let token_only = |n| {
        issuer.expire_all_now();
        let before = issuer.counters().connections_accepted;
        // The API call itself is pooled; the refresh gets one connection of its own.
        assert_eq!(client.get(&issuer.api_url(n)).unwrap().status(), 200);
        issuer.counters().connections_accepted - before
    };
    let first = token_only("a");
    for round in ["b", "c", "d"] {
        assert_eq!(token_only(round), first, "round {round}: one new connection per refresh");
    }
    assert_eq!(issuer.counters().refresh_calls, 4);
}

#[test]
fn a_server_that_revokes_the_old_access_token_on_rotation_costs_no_request_a_403() {
    // Requests keep going out with the old token during an early refresh; once the refresh
    // lands, the server answers them with a bare 403. Each is replayed with the new token.
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_millis(1_000),
        revoke_access_on_refresh: true,
        latency_jitter: Duration::from_millis(3),
        ..IssuerConfig::default()
    })
    .unwrap();
    let client = logged_in(&issuer, builder(&issuer));
    let deadline = Instant::now() + Duration::from_millis(2_500);
    let c = client.clone();
    let url = issuer.api_url("revoked");
    let statuses = storm(16, move |_| {
        let mut other = Vec::new();
        for _ in 0..100_000 {
            if Instant::now() >= deadline {
                break;
            }
            match c.get(&url) {
                Ok(r) if r.status() == 200 => {}
                Ok(r) => other.push(r.status().as_u16()),
                Err(e) => panic!("{e:?}"),
            }
        }
        other
    });
    let not_ok: Vec<u16> = statuses.into_iter().flatten().collect();
    assert!(
        not_ok.is_empty(),
        "{} requests answered {:?}; {:?}; {:?}",
        not_ok.len(),
        &not_ok[..not_ok.len().min(5)],
        client.stats(),
        issuer.counters()
    );
    let counters = issuer.counters();
    assert!(counters.refresh_successes >= 2, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0);
    // The server did answer 403s: the client replayed them.
    assert!(client.stats().stale_replays > 0, "{:?}", client.stats());
}
