//! `private_key_jwt` (RFC 7523 §2.2): the refresh request carries a client assertion signed with
//! the client's key, and no secret. A small loopback server records what the client sends; the
//! assertion's signature and claims are then checked with jsonwebtoken and the public key.
//!
//! The keys under `tests/data` were made with openssl for these tests only (RSA 2048 in
//! PKCS#8, P-256 in PKCS#8, and an RSA 1024 key in PKCS#1 that ring refuses to sign with).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reauth_ureq::{Client, ClientAssertionKey, KeyError};

const RSA_KEY: &str = include_str!("data/rsa-test-key.pem");
const RSA_PUBLIC: &str = include_str!("data/rsa-test-key.pub.pem");
const EC_KEY: &str = include_str!("data/ec-test-key.pem");
const EC_PUBLIC: &str = include_str!("data/ec-test-key.pub.pem");
const RSA_1024: &str = include_str!("data/rsa1024-test-key.pem");

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

/// A loopback server that answers `POST /oauth/token` with a fresh token and anything else with
/// 200, recording every request.
fn recording_server() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let mut headers = HashMap::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
                }
                let len = headers.get("content-length").map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                let answer = if path == "/oauth/token" {
                    r#"{"access_token":"fresh-access","token_type":"Bearer","expires_in":3600}"#
                } else {
                    "ok"
                };
                log.lock().unwrap().push(Seen {
                    path,
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                writer.write_all(response.as_bytes()).unwrap();
            }
        }
    });
    (base, seen)
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":")))
        .collect()
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    jti: String,
    iat: u64,
    exp: u64,
}

/// Refreshes twice with `key` and checks both assertions against `public`.
fn refreshes_carry_signed_assertions(key: ClientAssertionKey, public: DecodingKey, alg: Algorithm) {
    let (base, seen) = recording_server();
    let token_url = format!("{base}/oauth/token");
    let client = Client::builder()
        .token_url(&token_url)
        .client_id("my-app")
        .client_secret("never-sent")
        .private_key_jwt(key)
        .build()
        .unwrap();
    // Expired at once: every request refreshes first.
    client.login("old-access", "the-refresh-token", Some(core::time::Duration::ZERO)).unwrap();
    assert_eq!(client.get(&format!("{base}/api")).unwrap().status(), 200);
    client.login("old-access", "the-refresh-token", Some(core::time::Duration::ZERO)).unwrap();
    assert_eq!(client.get(&format!("{base}/api")).unwrap().status(), 200);

    let seen = seen.lock().unwrap();
    let refreshes: Vec<_> = seen.iter().filter(|s| s.path == "/oauth/token").collect();
    assert_eq!(refreshes.len(), 2, "{seen:?}");
    let mut jtis = Vec::new();
    for refresh in refreshes {
        assert!(!refresh.headers.contains_key("authorization"), "no Basic with an assertion");
        assert!(!refresh.body.contains("never-sent"), "no secret with an assertion");
        let fields = form(&refresh.body);
        assert_eq!(fields["grant_type"], "refresh_token");
        assert_eq!(fields["refresh_token"], "the-refresh-token");
        assert_eq!(fields["client_id"], "my-app");
        assert_eq!(
            fields["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        let mut validation = Validation::new(alg);
        validation.set_audience(&[&token_url]);
        validation.set_issuer(&["my-app"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let token =
            jsonwebtoken::decode::<Claims>(&fields["client_assertion"], &public, &validation)
                .expect("a valid signature and claims");
        let claims = token.claims;
        assert_eq!((claims.iss.as_str(), claims.sub.as_str()), ("my-app", "my-app"));
        assert_eq!(claims.aud, token_url);
        assert_eq!(claims.exp - claims.iat, 60);
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(token.header.kid.as_deref(), Some("key-1"));
        jtis.push(claims.jti);
    }
    assert_ne!(jtis[0], jtis[1], "every assertion has its own jti");
}

#[test]
fn rs256_assertions_are_signed_and_claim_what_rfc_7523_asks() {
    let key = ClientAssertionKey::from_pem(RSA_KEY.as_bytes()).unwrap().key_id("key-1");
    assert_eq!(key.algorithm(), "RS256");
    let public = DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
    refreshes_carry_signed_assertions(key, public, Algorithm::RS256);
}

#[test]
fn es256_assertions_are_signed_and_claim_what_rfc_7523_asks() {
    let key = ClientAssertionKey::from_pem(EC_KEY.as_bytes()).unwrap().key_id("key-1");
    assert_eq!(key.algorithm(), "ES256");
    let public = DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap();
    refreshes_carry_signed_assertions(key, public, Algorithm::ES256);
}

#[test]
fn unusable_keys_are_refused_when_given() {
    assert!(matches!(
        ClientAssertionKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        ),
        Err(KeyError::Unsupported(_))
    ));
    assert!(matches!(ClientAssertionKey::from_pem(b"not a key"), Err(KeyError::Unsupported(_))));
    // ring refuses RSA keys under 2048 bits.
    let short = ClientAssertionKey::rs256_pem(RSA_1024.as_bytes());
    assert!(matches!(short, Err(KeyError::CannotSign(_))), "{short:?}");
    // The wrong algorithm for the key.
    assert!(ClientAssertionKey::es256_pem(RSA_KEY.as_bytes()).is_err());
    // Debug never shows the key.
    let key = ClientAssertionKey::from_pem(EC_KEY.as_bytes()).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains("ES256") && !shown.contains("PRIVATE"), "{shown}");
}

/// The mock issuer checks assertions the way a server does (signature with the registered public
/// key, `iss` = `sub` = client id, `aud` = its token endpoint, `exp`, a `jti` not seen before).
fn verifying_issuer(public: &str) -> reauth_testkit::issuer::MockIssuer {
    reauth_testkit::issuer::MockIssuer::start(reauth_testkit::issuer::IssuerConfig {
        client_id: Some("my-app".to_owned()),
        client_assertion_key: Some(public.to_owned()),
        device_interval: core::time::Duration::ZERO,
        device_answer: reauth_testkit::issuer::DeviceAnswer::ApproveAfter(1),
        ..reauth_testkit::issuer::IssuerConfig::default()
    })
    .unwrap()
}

#[test]
fn a_server_that_verifies_assertions_accepts_every_refresh_and_the_device_login() {
    for (key, public) in [(RSA_KEY, RSA_PUBLIC), (EC_KEY, EC_PUBLIC)] {
        let issuer = verifying_issuer(public);
        let key = ClientAssertionKey::from_pem(key.as_bytes()).unwrap();
        let client = Client::builder()
            .issuer(issuer.base_url())
            .client_id("my-app")
            .private_key_jwt(key.clone())
            .build()
            .unwrap();
        let tokens = issuer.login();
        client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
        for round in 0..3 {
            issuer.expire_all_now();
            let status = client.get(&issuer.api_url(&format!("r{round}"))).unwrap().status();
            assert_eq!(status, 200, "{}", key.algorithm());
        }
        assert_eq!(issuer.counters().refresh_successes, 3);
        let device =
            reauth_ureq::DeviceLogin::new(issuer.device_authorization_url(), issuer.token_url())
                .client_id("my-app")
                .private_key_jwt(key);
        client.login_with_device(&device, |_| {}).unwrap();
        assert_eq!(issuer.counters().device_approvals, 1);
    }
}

#[test]
fn a_server_refuses_an_assertion_signed_with_another_key_and_says_why() {
    let issuer = verifying_issuer(EC_PUBLIC);
    let wrong = ClientAssertionKey::from_pem(RSA_KEY.as_bytes()).unwrap();
    let client = Client::builder()
        .token_url(issuer.token_url())
        .client_id("my-app")
        .private_key_jwt(wrong)
        .build()
        .unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    issuer.expire_all_now();
    assert!(matches!(client.get(&issuer.api_url("x")), Err(reauth_ureq::Error::NeedsLogin)));
    let reason = client.last_refresh_error().unwrap();
    assert!(reason.is_configuration_error(), "{reason}");
    assert!(reason.to_string().contains("private_key_jwt"), "{reason}");
}
