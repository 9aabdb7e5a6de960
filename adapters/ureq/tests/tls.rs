//! TLS against the mock issuer served over HTTPS with a CA made at test time: a private CA given
//! as PEM (bytes or a file) is trusted by both the API and the token endpoint; an untrusted or
//! misnamed certificate is a typed, permanent error that ends the refresh episode at once
//! without backoff retries; plain http off loopback is refused before anything is sent.

mod common;

use std::path::PathBuf;

use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_testkit::tls::TestPki;
use reauth_ureq::{Client, Error, FileStore, RefreshError, TlsProblem, TokenStore};

fn tls_issuer(pki: &TestPki) -> MockIssuer {
    MockIssuer::start_tls(IssuerConfig::default(), pki).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reauth-ureq-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_private_ca_given_as_pem_is_trusted_by_the_api_and_the_token_endpoint() {
    let pki = TestPki::generate().unwrap();
    let issuer = tls_issuer(&pki);
    assert!(issuer.token_url().starts_with("https://"));
    let client = common::logged_in(
        &issuer,
        common::builder(&issuer, "app").root_certificates_pem(pki.ca_pem()),
    );
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    // Across an expiry: the refresh goes over TLS too.
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    assert_eq!(issuer.counters().refresh_successes, 1);
    assert_eq!(client.stats().refreshes_succeeded, 1);
}

#[test]
fn a_private_ca_read_from_a_file_is_trusted() {
    let pki = TestPki::generate().unwrap();
    let files = pki.write_to(&scratch("file")).unwrap();
    let issuer = tls_issuer(&pki);
    let client = common::logged_in(
        &issuer,
        common::builder(&issuer, "app").root_certificates_file(&files.ca),
    );
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    assert_eq!(issuer.counters().refresh_successes, 1);
}

#[test]
fn an_api_with_an_untrusted_certificate_fails_with_unknown_issuer() {
    let pki = TestPki::generate().unwrap();
    let issuer = tls_issuer(&pki);
    // The default roots (Mozilla's) do not know a CA made a moment ago.
    let client = common::logged_in(&issuer, common::builder(&issuer, "app"));
    match client.get(&issuer.api_url("x")) {
        Err(Error::Tls(e)) => {
            assert_eq!(e.problem(), TlsProblem::UnknownIssuer);
            let message = e.to_string();
            assert!(message.contains("UnknownIssuer"), "{message}");
            assert!(message.contains("root_certificates_pem"), "{message}");
        }
        other => panic!("expected Error::Tls, got {other:?}"),
    }
    // Another CA given as the root does not help either.
    let other = TestPki::generate().unwrap();
    let client = common::logged_in(
        &issuer,
        common::builder(&issuer, "app").root_certificates_pem(other.ca_pem()),
    );
    let Err(Error::Tls(e)) = client.get(&issuer.api_url("x")) else { panic!("not a TLS error") };
    assert_eq!(e.problem(), TlsProblem::UnknownIssuer);
}

#[test]
fn a_certificate_for_another_name_fails_with_not_valid_for_name() {
    let pki = TestPki::generate_for(&["auth.example.com"]).unwrap();
    let issuer = tls_issuer(&pki);
    let client = common::logged_in(
        &issuer,
        common::builder(&issuer, "app").root_certificates_pem(pki.ca_pem()),
    );
    let Err(Error::Tls(e)) = client.get(&issuer.api_url("x")) else { panic!("not a TLS error") };
    assert_eq!(e.problem(), TlsProblem::NotValidForName);
}

/// The API on plain loopback http, the token endpoint on https with a certificate the client
/// does not trust: the refresh fails once, at once, without backoff retries, and says why; the
/// stored refresh token is kept for when the settings are fixed.
#[test]
fn an_untrusted_token_endpoint_ends_the_episode_at_once_and_keeps_the_stored_token() {
    let api = MockIssuer::start(IssuerConfig::default()).unwrap();
    let pki = TestPki::generate().unwrap();
    let token_endpoint = tls_issuer(&pki);
    let path = scratch("untrusted-endpoint").join("tokens.json");
    let client = Client::builder()
        .token_url(token_endpoint.token_url())
        .client_id("app")
        .config(common::quick_config())
        .store(FileStore::new(&path))
        .build()
        .unwrap();
    let tokens = api.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    api.expire_all_now();
    let result = client.get(&api.api_url("x"));
    assert!(matches!(result, Err(Error::NeedsLogin)), "{result:?}");
    match client.last_refresh_error() {
        Some(RefreshError::Tls(e)) => assert_eq!(e.problem(), TlsProblem::UnknownIssuer),
        other => panic!("expected RefreshError::Tls, got {other:?}"),
    }
    let reason = client.last_refresh_error().unwrap();
    assert!(reason.is_configuration_error());
    assert!(reason.to_string().contains("UnknownIssuer"), "{reason}");
    let stats = client.stats();
    assert_eq!(stats.refreshes_started, 1, "{stats:?}");
    assert_eq!(stats.refreshes_failed, 1, "{stats:?}");
    // Nothing reached the token endpoint's HTTP layer: the handshake failed first.
    assert_eq!(token_endpoint.counters().refresh_calls, 0);
    let saved = FileStore::new(&path).load().unwrap().expect("the record is kept");
    assert_eq!(saved.refresh_token.as_str(), tokens.refresh_token);
}

#[test]
fn a_plain_http_token_endpoint_off_loopback_is_refused_at_build() {
    let built = Client::builder().token_url("http://auth.example.com/oauth/token?x=1").build();
    match built {
        Err(Error::InsecureUrl { what, origin }) => {
            assert_eq!(what, "the token endpoint");
            assert_eq!(origin, "http://auth.example.com");
        }
        other => panic!("expected InsecureUrl, got {other:?}"),
    }
    let allowed = Client::builder()
        .token_url("http://auth.example.com/oauth/token")
        .allow_insecure_http(true)
        .build();
    assert!(allowed.is_ok(), "{allowed:?}");
    for loopback in ["http://127.0.0.1:1/t", "http://localhost:1/t", "http://[::1]:1/t"] {
        let built = Client::builder().token_url(loopback).build();
        assert!(built.is_ok(), "{loopback}: {built:?}");
    }
}

#[test]
fn a_request_over_plain_http_off_loopback_fails_before_it_is_sent() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let client = common::logged_in(&issuer, common::builder(&issuer, "app"));
    // `.invalid` never resolves (RFC 6761); the error comes before any lookup.
    match client.get("http://api.example.invalid/me") {
        Err(Error::InsecureUrl { what, origin }) => {
            assert_eq!(what, "the request");
            assert_eq!(origin, "http://api.example.invalid");
        }
        other => panic!("expected InsecureUrl, got {other:?}"),
    }
    assert_eq!(client.stats().transport_errors, 0);
}

#[test]
fn unusable_root_certificates_are_a_typed_error_at_build() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let built =
        common::builder(&issuer, "app").root_certificates_pem("no certificate here").build();
    assert!(matches!(built, Err(Error::RootCertificates(_))), "{built:?}");
    let missing = scratch("missing").join("ca.pem");
    let built = common::builder(&issuer, "app").root_certificates_file(&missing).build();
    let Err(Error::RootCertificates(message)) = built else { panic!("{built:?}") };
    assert!(message.contains("ca.pem"), "{message}");
}

/// The platform verifier trusts what the operating system trusts, which is not a CA made a
/// moment ago: it reports the same typed error.
#[test]
fn the_platform_verifier_does_not_trust_a_ca_made_at_test_time() {
    let pki = TestPki::generate().unwrap();
    let issuer = tls_issuer(&pki);
    let client =
        common::logged_in(&issuer, common::builder(&issuer, "app").platform_verifier(true));
    let Err(Error::Tls(e)) = client.get(&issuer.api_url("x")) else { panic!("not a TLS error") };
    assert_eq!(e.problem(), TlsProblem::UnknownIssuer, "{e}");
    let both = common::builder(&issuer, "app")
        .platform_verifier(true)
        .root_certificates_pem(pki.ca_pem())
        .build();
    assert!(matches!(both, Err(Error::Config(_))), "{both:?}");
}

#[test]
fn the_device_login_follows_the_same_tls_rules() {
    use reauth_testkit::issuer::DeviceAnswer;
    use reauth_ureq::{DeviceError, DeviceLogin};
    let pki = TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(
        IssuerConfig {
            device_interval: core::time::Duration::ZERO,
            device_answer: DeviceAnswer::ApproveAfter(1),
            ..IssuerConfig::default()
        },
        &pki,
    )
    .unwrap();
    let login = || DeviceLogin::new(issuer.device_authorization_url(), issuer.token_url());
    let tokens = login().root_certificates_pem(pki.ca_pem()).run(|_| {}).unwrap();
    assert!(tokens.rotates_refresh_token());
    match login().run(|_| {}) {
        Err(DeviceError::Tls(e)) => assert_eq!(e.problem(), TlsProblem::UnknownIssuer),
        other => panic!("expected DeviceError::Tls, got {other:?}"),
    }
    // Run through a client, a login with no TLS settings of its own uses the client's: the
    // private CA is given once.
    let client = common::builder(&issuer, "app").root_certificates_pem(pki.ca_pem()).build();
    let client = client.unwrap();
    client.login_with_device(&login(), |_| {}).unwrap();
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    let insecure = DeviceLogin::new("http://auth.example.invalid/device", issuer.token_url());
    match insecure.run(|_| {}) {
        Err(DeviceError::Settings(Error::InsecureUrl { what, .. })) => {
            assert_eq!(what, "the device endpoint");
        }
        other => panic!("expected InsecureUrl, got {other:?}"),
    }
}
