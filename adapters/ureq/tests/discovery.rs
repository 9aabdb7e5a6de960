//! Discovery against the mock issuer's metadata: RFC 8414 at the root and with a path (the
//! well-known part inserted), the fall-back to OpenID discovery, an `issuer` that does not
//! match refused, the auth method taken from the metadata, over HTTPS with a private CA.

mod common;

use reauth_core::oauth::ClientAuth;
use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_testkit::tls::TestPki;
use reauth_ureq::{Client, DiscoveryError, Error, ServerMetadata};

fn confidential(method: ClientAuth) -> MockIssuer {
    MockIssuer::start(IssuerConfig {
        client_id: Some("app".to_owned()),
        client_secret: Some("s3cret".to_owned()),
        client_auth: method,
        ..IssuerConfig::default()
    })
    .unwrap()
}

#[test]
fn metadata_at_the_root_names_the_endpoints_and_methods() {
    let issuer = confidential(ClientAuth::Post);
    let metadata = ServerMetadata::discover(&issuer.base_url()).unwrap();
    assert_eq!(metadata.issuer, issuer.base_url());
    assert_eq!(metadata.token_endpoint, issuer.token_url());
    assert_eq!(
        metadata.device_authorization_endpoint.as_deref(),
        Some(issuer.device_authorization_url().as_str())
    );
    assert_eq!(
        metadata.authorization_endpoint.as_deref(),
        Some(format!("{}/oauth/authorize", issuer.base_url()).as_str())
    );
    assert_eq!(metadata.token_endpoint_auth_methods_supported, ["client_secret_post"]);
}

#[test]
fn an_issuer_with_a_path_is_found_by_rfc8414_path_insertion() {
    let issuer = confidential(ClientAuth::Basic);
    let tenant = format!("{}/tenant", issuer.base_url());
    let metadata = ServerMetadata::discover(&tenant).unwrap();
    assert_eq!(metadata.issuer, tenant);
}

#[test]
fn openid_discovery_is_the_fall_back() {
    let issuer = confidential(ClientAuth::Basic);
    let oidc_only = format!("{}/oidc-only", issuer.base_url());
    let metadata = ServerMetadata::discover(&oidc_only).unwrap();
    assert_eq!(metadata.issuer, oidc_only);
    assert_eq!(metadata.token_endpoint, issuer.token_url());
}

#[test]
fn metadata_naming_another_issuer_is_refused() {
    let issuer = confidential(ClientAuth::Basic);
    let asked = format!("{}/wrong-issuer", issuer.base_url());
    match ServerMetadata::discover(&asked) {
        Err(DiscoveryError::IssuerMismatch { expected, found }) => {
            assert_eq!(expected, asked);
            assert_eq!(found, format!("{}/someone-else", issuer.base_url()));
        }
        other => panic!("expected IssuerMismatch, got {other:?}"),
    }
}

#[test]
fn no_metadata_lists_every_url_tried() {
    let issuer = confidential(ClientAuth::Basic);
    let nowhere = format!("{}/nowhere", issuer.base_url());
    let Err(DiscoveryError::NotFound(tried)) = ServerMetadata::discover(&nowhere) else {
        panic!("expected NotFound")
    };
    let urls: Vec<_> = tried.iter().map(|(url, status)| (url.as_str(), *status)).collect();
    let base = issuer.base_url();
    assert_eq!(
        urls,
        [
            (format!("{base}/.well-known/oauth-authorization-server/nowhere").as_str(), 404),
            (format!("{base}/nowhere/.well-known/openid-configuration").as_str(), 404),
        ]
    );
}

/// A server registered for `client_secret_post` (the mock refuses Basic for it, as Authlib
/// does): a client built from the issuer alone picks the method the metadata lists, and its
/// refresh works.
#[test]
fn a_client_built_from_the_issuer_uses_its_token_endpoint_and_listed_method() {
    let issuer = confidential(ClientAuth::Post);
    let builder = Client::builder()
        .issuer(issuer.base_url())
        .client_id("app")
        .client_secret("s3cret")
        .config(common::quick_config());
    let client = common::logged_in(&issuer, builder);
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    assert_eq!(issuer.counters().refresh_successes, 1);
    // An explicit method wins over the metadata.
    let builder = Client::builder()
        .issuer(issuer.base_url())
        .client_id("app")
        .client_secret("s3cret")
        .client_auth(ClientAuth::Basic)
        .config(common::quick_config());
    let client = common::logged_in(&issuer, builder);
    issuer.expire_all_now();
    assert!(matches!(client.get(&issuer.api_url("x")), Err(Error::NeedsLogin)));
}

#[test]
fn discovery_over_https_uses_the_builders_roots() {
    let pki = TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let builder = Client::builder()
        .issuer(issuer.base_url())
        .root_certificates_pem(pki.ca_pem())
        .config(common::quick_config());
    let client = common::logged_in(&issuer, builder);
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    // Without the CA the fetch itself fails, typed.
    let built = Client::builder().issuer(issuer.base_url()).build();
    assert!(matches!(built, Err(Error::Discovery(DiscoveryError::Tls(_)))), "{built:?}");
}

#[test]
fn a_failed_discovery_fails_the_build_with_the_reason() {
    let issuer = confidential(ClientAuth::Basic);
    let built = Client::builder().issuer(format!("{}/wrong-issuer", issuer.base_url())).build();
    let Err(Error::Discovery(DiscoveryError::IssuerMismatch { .. })) = built else {
        panic!("{built:?}")
    };
    let built = Client::builder().issuer("http://as.example.invalid").build();
    assert!(matches!(built, Err(Error::Discovery(DiscoveryError::InvalidIssuer(_)))), "{built:?}");
}
