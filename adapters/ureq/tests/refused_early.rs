//! A refused *early* refresh keeps the access token that is still valid (issue 11 item 6), the
//! refusal shows at once (state and `last_refresh_error`), and a restarted process reports
//! needs-login without a network call (issue 14 item 3).

use core::time::Duration;

use reauth_core::{Config, FailCause, State};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{Client, Error, FileStore, RefreshError};

#[test]
fn refused_early_refresh_keeps_the_valid_token_and_a_restart_needs_login_without_a_call() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let dir =
        std::env::temp_dir().join(format!("reauth-ureq-refused-early-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let _ = std::fs::remove_file(&path);
    let builder = || {
        Client::builder()
            .token_url(issuer.token_url())
            .config(Config::DESKTOP)
            .store(FileStore::new(&path))
    };
    let client = builder().build().unwrap();
    // An 8 s token: margin 2 s, so it is used until 6 s; the early window opens at 3 s.
    let tokens = issuer.login_with_lifetime(Duration::from_secs(8));
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    assert_eq!(client.get(&issuer.api_url("fresh")).unwrap().status(), 200);
    std::thread::sleep(Duration::from_millis(3_100));
    issuer.inject(Fault::InvalidGrant { times: 1 });
    // This request starts the early refresh, which is refused: the request itself still goes
    // out with the valid token.
    assert_eq!(client.get(&issuer.api_url("early")).unwrap().status(), 200);
    assert_eq!(issuer.counters().refresh_calls, 1);
    // The refusal is reported at once.
    assert!(matches!(client.state(), State::Refused { .. }), "{:?}", client.state());
    assert!(!client.needs_login());
    assert!(
        matches!(client.last_refresh_error(), Some(RefreshError::Refused { .. })),
        "{:?}",
        client.last_refresh_error()
    );
    // The token keeps working, and the refused refresh token is not presented again.
    assert_eq!(client.get(&issuer.api_url("still")).unwrap().status(), 200);
    assert_eq!(issuer.counters().refresh_calls, 1);
    // The dead refresh token is gone from the store at once: a restarted process needs a login
    // and says so without a network call, even while the old access token is valid.
    let restarted = builder().build().unwrap();
    assert!(restarted.needs_login());
    assert!(matches!(restarted.get(&issuer.api_url("restarted")), Err(Error::NeedsLogin)));
    // Once the token is stale, the running client needs a login too.
    std::thread::sleep(Duration::from_millis(3_000));
    assert!(matches!(client.get(&issuer.api_url("stale")), Err(Error::NeedsLogin)));
    assert_eq!(client.state(), State::Failed { cause: FailCause::Refused });
    assert_eq!(issuer.counters().refresh_calls, 1, "no call after the refusal");
    std::fs::remove_dir_all(&dir).unwrap();
}
