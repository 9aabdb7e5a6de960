//! Client authentication at the token endpoint (RFC 6749 §2.3): HTTP Basic by default when a
//! secret is given (`client_secret_basic`, which every server must support), the secret in the
//! body on request (`client_secret_post`), and public clients. The mock issuer enforces the
//! registered method the way Authlib does: the other one is `401 invalid_client`.

mod common;

use reauth_core::oauth::{ClientAuth, ErrorCode};
use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_ureq::{Client, ClientBuilder, Error, RefreshError};

/// An issuer that knows client `app` with secret `s3cr et:+` (characters that §2.3.1's
/// form-encoding must carry) registered for `method`.
fn issuer(method: ClientAuth) -> MockIssuer {
    MockIssuer::start(IssuerConfig {
        client_id: Some("my app".to_owned()),
        client_secret: Some("s3cr et:+".to_owned()),
        client_auth: method,
        ..IssuerConfig::default()
    })
    .unwrap()
}

fn client(issuer: &MockIssuer, builder: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Client {
    let base = common::builder(issuer, "my app");
    let client = builder(base).build().unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    client
}

fn refresh(issuer: &MockIssuer, client: &Client) -> Result<u16, Error> {
    issuer.expire_all_now();
    client.get(&issuer.api_url("x")).map(|r| r.status().as_u16())
}

#[test]
fn a_secret_goes_in_http_basic_by_default() {
    let issuer = issuer(ClientAuth::Basic);
    let client = client(&issuer, |b| b.client_secret("s3cr et:+"));
    assert_eq!(refresh(&issuer, &client).unwrap(), 200);
    assert_eq!(issuer.counters().refresh_successes, 1);
}

#[test]
fn client_secret_post_puts_it_in_the_body_when_asked() {
    let issuer = issuer(ClientAuth::Post);
    let client = client(&issuer, |b| b.client_secret("s3cr et:+").client_auth(ClientAuth::Post));
    assert_eq!(refresh(&issuer, &client).unwrap(), 200);
}

#[test]
fn the_wrong_method_is_refused_as_invalid_client_and_says_so() {
    // A server registered for Basic refuses the body secret (Authlib's default).
    let issuer = issuer(ClientAuth::Basic);
    let client = client(&issuer, |b| b.client_secret("s3cr et:+").client_auth(ClientAuth::Post));
    assert!(matches!(refresh(&issuer, &client), Err(Error::NeedsLogin)));
    let reason = client.last_refresh_error().unwrap();
    assert!(
        matches!(
            reason,
            RefreshError::Refused { status: Some(401), code: Some(ErrorCode::InvalidClient), .. }
        ),
        "{reason:?}"
    );
    // The server's reason travels with it, and the message says what to fix.
    let shown = reason.to_string();
    assert!(
        shown.contains("invalid_client: The client cannot authenticate with methods"),
        "{shown}"
    );
    assert!(shown.contains("the client is set up wrong"), "{shown}");
    // And a wrong secret in the right place.
    let issuer = self::issuer(ClientAuth::Basic);
    let wrong = self::client(&issuer, |b| b.client_secret("wrong"));
    assert!(matches!(refresh(&issuer, &wrong), Err(Error::NeedsLogin)));
}

#[test]
fn a_public_client_sends_only_its_id() {
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("my app".to_owned()),
        ..IssuerConfig::default()
    })
    .unwrap();
    let client = client(&issuer, |b| b);
    assert_eq!(refresh(&issuer, &client).unwrap(), 200);
}
