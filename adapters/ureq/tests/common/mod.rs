//! Set-up shared by the integration tests of reauth-ureq: a client builder pointed at the
//! loopback mock issuer with quick retries, a logged-in client, and a storm of threads released
//! together.
//!
//! Each test file compiles this module on its own, and not every file uses every helper: those
//! are marked `#[allow(dead_code)]`.

use std::sync::{Arc, Barrier};
use std::thread;

use reauth_core::{Backoff, Config};
use reauth_testkit::issuer::MockIssuer;
use reauth_ureq::{Client, ClientBuilder};

/// A config for tests: quick backoff (50 ms), so that retries do not stretch a test.
pub(crate) fn quick_config() -> Config {
    Config {
        backoff: Backoff { initial: reauth_core::Duration::from_millis(50), ..Backoff::DEFAULT },
        // Four attempts per episode (the default is two): several scenarios here run two or
        // three failures and a success in one episode.
        max_refresh_attempts: 4,
        ..Config::DEFAULT
    }
}

/// A builder for `issuer`'s token endpoint with `client_id` and [`quick_config`].
#[allow(dead_code)] // not used by discovery.rs
pub(crate) fn builder(issuer: &MockIssuer, client_id: &str) -> ClientBuilder {
    Client::builder().token_url(issuer.token_url()).client_id(client_id).config(quick_config())
}

/// A client logged in with a fresh session of `issuer`.
#[allow(dead_code)] // not used by secrets.rs
pub(crate) fn logged_in(issuer: &MockIssuer, builder: ClientBuilder) -> Client {
    let client = builder.build().unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    client
}

/// Runs `threads` threads that each call `f(i)` once, released together by a barrier.
#[allow(dead_code)] // not used by secrets.rs
pub(crate) fn storm<T: Send + 'static>(
    threads: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(threads));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (barrier, f) = (Arc::clone(&barrier), Arc::clone(&f));
            thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}
