//! The desktop defaults fail fast and retry (issue 11 item 7): with nothing configured but the
//! token endpoint, a hung token endpoint gets a second attempt, and every request waiting for it
//! ends with `RefreshUnavailable` (the episode ends before the wait deadline), not `Timeout`.
//! Asserted by attempt counts and error kinds, not by wall-clock time.

use core::time::Duration;

use reauth_core::{Config, State};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{Client, Error, RefreshError};

/// Runs `threads` threads that each call `f()` once, released together.
fn storm<T: Send + 'static>(threads: usize, f: impl Fn() -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let f = std::sync::Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn hung_token_endpoint_gets_two_attempts_and_every_waiting_request_gets_refresh_unavailable() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    // The defaults, untouched: only where the token endpoint is.
    let client = Client::builder().token_url(issuer.token_url()).build().unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    assert_eq!(Config::DESKTOP.max_refresh_attempts, 2);
    assert!(Config::DESKTOP.longest_episode() < Config::DESKTOP.wait_timeout);
    issuer.expire_all_now();
    issuer.reset_counters();
    // Longer than the 4 s refresh timeout: each attempt is cut off by the client.
    issuer.inject(Fault::Hang { times: 2, duration: Duration::from_secs(6) });
    let c = client.clone();
    let url = issuer.api_url("hung");
    let results = storm(8, move || c.get(&url).map(|r| r.status().as_u16()));
    for result in &results {
        assert!(matches!(result, Err(Error::RefreshUnavailable(_))), "{result:?}");
    }
    assert_eq!(issuer.counters().refresh_calls, 2, "a hung endpoint gets a second attempt");
    assert!(!client.needs_login(), "the refresh token is kept");
    assert!(matches!(client.state(), State::Idle { .. }), "{:?}", client.state());
    assert!(
        matches!(client.last_refresh_error(), Some(RefreshError::Transport(_))),
        "{:?}",
        client.last_refresh_error()
    );
    // The endpoint is back: once the cool-down (the next backoff delay, at most 2 s here) is
    // over, the next request refreshes and goes through. Until then requests are refused at once.
    let mut answered = None;
    for _ in 0..40 {
        match client.get(&issuer.api_url("back")) {
            Err(Error::RefreshUnavailable(_)) => std::thread::sleep(Duration::from_millis(100)),
            other => {
                answered = Some(other.map(|r| r.status().as_u16()));
                break;
            }
        }
    }
    assert!(matches!(answered, Some(Ok(200))), "{answered:?}");
    assert_eq!(issuer.counters().refresh_calls, 3);
}
