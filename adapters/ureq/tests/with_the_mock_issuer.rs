//! How to test your own client code against the mock issuer, as an application would: add
//! `reauth-testkit` as a dev-dependency (a path or git dependency until it is published), start
//! a `MockIssuer` on 127.0.0.1 in the test, log in once, and drive your code. The issuer's
//! counters say what happened on its side: refresh calls, reuse of a refresh token, 401s.
//!
//! The same server runs standalone for tests in other languages or processes:
//! `cargo run --release -p reauth-cli -- issuer --port 8080 --token-lifetime 1000` prints its
//! URLs and a login.

use core::time::Duration;

use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{Client, Error};

/// Your application's code: fetches a resource with whatever client it is given.
fn fetch_profile(client: &Client, base: &str) -> Result<String, Error> {
    let mut response = client.get(&format!("{base}/api/profile"))?;
    Ok(response.body_mut().read_to_string()?)
}

#[test]
fn my_app_survives_token_expiry_and_a_flaky_token_endpoint() {
    // Short tokens, rotation, and a reused refresh token revokes the session: strict, like the
    // servers users meet.
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_millis(300),
        revoke_on_reuse: true,
        ..IssuerConfig::default()
    })
    .unwrap();
    let client = Client::builder().token_url(issuer.token_url()).build().unwrap();
    let login = issuer.login();
    client.login(&login.access_token, &login.refresh_token, Some(login.expires_in)).unwrap();

    for round in 0..5 {
        if round == 2 {
            // The token endpoint fails once: retried with backoff, nobody logged out. (The
            // defaults make two attempts per expiry: a second failure in a row would answer
            // this request with `RefreshUnavailable`, the refresh token kept.)
            issuer.inject(Fault::ServiceUnavailable { times: 1 });
        }
        let body = fetch_profile(&client, &issuer.base_url()).unwrap();
        assert!(body.contains("/api/profile"), "{body}");
        std::thread::sleep(Duration::from_millis(350));
    }

    let seen = issuer.counters();
    assert_eq!(seen.reuse_attempts, 0, "{seen:?}");
    assert!(seen.refresh_successes >= 4, "one refresh per expiry: {seen:?}");
    assert_eq!(seen.refresh_token_seen_on_api, 0, "the refresh token only goes to /oauth/token");
}

#[test]
fn a_login_flow_of_your_own_installs_its_token_response_body() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = Client::builder().token_url(issuer.token_url()).build().unwrap();
    let login = issuer.login();
    // What your authorization-code exchange got back, escapes included.
    let body = format!(
        r#"{{"access_token":"{}","token_type":"bearer","expires_in":"3600","refresh_token":"{}","id_token":{{"x":1}}}}"#,
        login.access_token.replace('.', "\\u002e"),
        login.refresh_token
    );
    client.login_from_token_response(body.as_bytes()).unwrap();
    assert!(fetch_profile(&client, &issuer.base_url()).unwrap().contains("/api/profile"));
    // Unusable bodies are typed errors and change nothing.
    assert!(matches!(
        client.login_from_token_response(br#"{"access_token":"a","token_type":"Bearer"}"#),
        Err(Error::Token(reauth_core::TokenError::Empty))
    ));
    assert!(matches!(client.login_from_token_response(b"{"), Err(Error::TokenResponse(_))));
    assert!(fetch_profile(&client, &issuer.base_url()).is_ok(), "still logged in");
}
