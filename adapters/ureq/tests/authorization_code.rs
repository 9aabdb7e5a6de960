//! The authorization code grant with PKCE and a loopback redirect end to end against the loopback
//! mock issuer, with a test thread as the user's browser: logged in (a fresh file store then
//! serves a second client), the state checked, a stolen code worthless without the verifier, a
//! denial and a timeout as typed errors, confidential clients, TLS with a private CA and plain
//! http refused off loopback.

mod common;

use core::time::Duration;
use std::io::Write;
use std::net::TcpStream;
use std::thread::{self, JoinHandle};

use reauth_testkit::issuer::{AuthorizeAnswer, ClientAuth, IssuerConfig, MockIssuer};
use reauth_testkit::tls::TestPki;
use reauth_ureq::reauth_core::oauth::ErrorCode;
use reauth_ureq::ureq::Agent;
use reauth_ureq::ureq::tls::TlsConfig;
use reauth_ureq::{
    AuthorizationCodeError, AuthorizationCodeLogin, AuthorizationPrompt, Error, FileStore,
    TlsProblem, challenge_s256,
};

/// An agent that hands every status back and follows no redirect: the browser's steps are the
/// test's to take. It trusts any certificate: the browser is not what is under test, the
/// login's own TLS settings are.
fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(TlsConfig::builder().disable_verification(true).build())
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// GET `url`: status, `Location`, body.
fn get(url: &str) -> (u16, Option<String>, String) {
    let mut response = agent().get(url).call().unwrap();
    let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    let body = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), location, body)
}

/// What the browser did.
struct Visit {
    /// Status and body of the loopback's answer to the redirect.
    status: u16,
    page: String,
    /// Status of the unrelated `/favicon.ico` request on the loopback.
    favicon: u16,
}

/// The user's browser, on a thread: opens a spare connection to the loopback (as browsers do),
/// asks it for `/favicon.ico`, visits the authorization URL, and follows its redirect after
/// `tamper` had its way with it.
fn browser(
    prompt: &AuthorizationPrompt,
    tamper: impl FnOnce(String) -> String + Send + 'static,
) -> JoinHandle<Visit> {
    let (url, redirect_uri) = (prompt.url.clone(), prompt.redirect_uri.clone());
    thread::spawn(move || {
        let origin = redirect_uri.trim_end_matches("/callback").to_owned();
        let spare = TcpStream::connect(origin.trim_start_matches("http://")).unwrap();
        let (favicon, ..) = get(&format!("{origin}/favicon.ico"));
        let (status, location, _) = get(&url);
        assert_eq!(status, 302);
        let location = location.unwrap();
        assert!(location.starts_with(&redirect_uri), "{location}");
        let (status, _, page) = get(&tamper(location));
        drop(spare);
        Visit { status, page, favicon }
    })
}

fn issuer(config: IssuerConfig) -> MockIssuer {
    MockIssuer::start(IssuerConfig { client_id: Some("desktop".into()), ..config }).unwrap()
}

fn login(issuer: &MockIssuer) -> AuthorizationCodeLogin {
    AuthorizationCodeLogin::new(issuer.authorization_url(), issuer.token_url(), "desktop")
        .scope("api")
        .wait_timeout(Duration::from_secs(30))
        .call_timeout(Duration::from_secs(5))
}

fn temp_store(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("reauth-pkce-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("tokens.json")
}

#[test]
fn browser_login_fills_a_fresh_store_that_a_second_client_uses() {
    let issuer = issuer(IssuerConfig::default());
    let path = temp_store("fresh");
    let _ = std::fs::remove_file(&path);
    let client = common::builder(&issuer, "desktop").store(FileStore::new(&path)).build().unwrap();
    assert!(client.needs_login());
    let mut visit = None;
    client
        .login_with_authorization_code(&login(&issuer), |prompt| {
            assert!(prompt.redirect_uri.starts_with("http://127.0.0.1:"), "{prompt:?}");
            assert!(prompt.url.contains("code_challenge_method=S256"), "{prompt:?}");
            visit = Some(browser(prompt, |location| location));
        })
        .unwrap();
    let visit = visit.unwrap().join().unwrap();
    assert_eq!((visit.status, visit.favicon), (200, 404));
    assert!(visit.page.contains("Logged in"), "{}", visit.page);
    assert!(!client.needs_login());
    assert_eq!(client.get(&issuer.api_url("me")).unwrap().status(), 200);
    let c = issuer.counters();
    assert_eq!((c.authorizations, c.code_redemptions, c.code_refusals), (1, 1, 0));

    // A second program on the same store is logged in, and its session refreshes.
    let second = common::builder(&issuer, "desktop").store(FileStore::new(&path)).build().unwrap();
    assert!(!second.needs_login());
    issuer.expire_all_now();
    assert_eq!(second.get(&issuer.api_url("again")).unwrap().status(), 200);
    assert_eq!(issuer.counters().reuse_attempts, 0);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn run_hands_back_the_tokens_without_a_client() {
    let issuer = issuer(IssuerConfig::default());
    let mut visit = None;
    let tokens = login(&issuer).run(|prompt| visit = Some(browser(prompt, |l| l))).unwrap();
    assert_eq!(visit.unwrap().join().unwrap().status, 200);
    assert!(tokens.rotates_refresh_token());
    assert_eq!(tokens.expires_in(), Some(Duration::from_secs(60)));
    assert!(!format!("{tokens:?}").contains("at."), "{tokens:?}");
}

#[test]
fn a_redirect_with_another_state_is_rejected_and_its_code_never_used() {
    let issuer = issuer(IssuerConfig::default());
    let client = common::builder(&issuer, "desktop").build().unwrap();
    let mut visit = None;
    let error = client
        .login_with_authorization_code(&login(&issuer), |prompt| {
            visit = Some(browser(prompt, |location| {
                let (head, _state) = location.split_once("state=").unwrap();
                format!("{head}state=forged")
            }));
        })
        .unwrap_err();
    assert!(matches!(error, AuthorizationCodeError::StateMismatch), "{error:?}");
    let visit = visit.unwrap().join().unwrap();
    assert_eq!(visit.status, 400);
    assert!(visit.page.contains("Login failed"), "{}", visit.page);
    assert!(client.needs_login());
    let c = issuer.counters();
    assert_eq!((c.authorizations, c.code_redemptions, c.code_refusals), (1, 0, 0));
}

#[test]
fn a_stolen_code_is_worthless_without_the_verifier() {
    let issuer = issuer(IssuerConfig::default());
    let client = common::builder(&issuer, "desktop").build().unwrap();
    let token_url = issuer.token_url();
    let mut visit = None;
    let error = client
        .login_with_authorization_code(&login(&issuer), |prompt| {
            let redirect_uri = prompt.redirect_uri.clone();
            // An app that intercepted the redirect tries the code first, with a verifier of
            // its own: the challenge does not match, and the code is spent.
            visit = Some(browser(prompt, move |location| {
                let code = location.split("code=").nth(1).unwrap().split('&').next().unwrap();
                let form = format!(
                    "grant_type=authorization_code&code={code}&client_id=desktop&\
                     redirect_uri={}&code_verifier={}",
                    redirect_uri.replace(':', "%3A").replace('/', "%2F"),
                    "a".repeat(43)
                );
                let mut stolen = agent()
                    .post(&token_url)
                    .content_type("application/x-www-form-urlencoded")
                    .send(form.as_bytes())
                    .unwrap();
                assert_eq!(stolen.status(), 400);
                let body = stolen.body_mut().read_to_string().unwrap();
                assert!(body.contains("invalid_grant") && body.contains("PKCE"), "{body}");
                location
            }));
        })
        .unwrap_err();
    assert_eq!(visit.unwrap().join().unwrap().status, 200);
    // The client's own, correct exchange comes second: the code was used.
    assert!(
        matches!(
            error,
            AuthorizationCodeError::Refused { status: 400, code: Some(ErrorCode::InvalidGrant) }
        ),
        "{error:?}"
    );
    assert!(client.needs_login());
    let c = issuer.counters();
    assert_eq!((c.pkce_failures, c.code_refusals, c.code_redemptions), (1, 2, 0));
}

#[test]
fn the_issuer_checks_verifier_client_and_redirect_uri_and_spends_a_code_once() {
    // Any client id is accepted here, so a code can be presented by another client.
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    // RFC 7636 Appendix B's pair.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = challenge_s256(verifier);
    let redirect = "http://127.0.0.1:9/callback";
    let code = || {
        let url = format!(
            "{}?response_type=code&client_id=desktop&redirect_uri={}&state=xyz&\
             code_challenge={challenge}&code_challenge_method=S256",
            issuer.authorization_url(),
            redirect.replace(':', "%3A").replace('/', "%2F"),
        );
        let (status, location, _) = get(&url);
        assert_eq!(status, 302);
        let location = location.unwrap();
        assert!(location.starts_with(redirect) && location.ends_with("&state=xyz"), "{location}");
        location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned()
    };
    let redeem = |code: &str, client: &str, redirect: &str, verifier: &str| {
        let form = format!(
            "grant_type=authorization_code&code={code}&client_id={client}&redirect_uri={}&\
             code_verifier={verifier}",
            redirect.replace(':', "%3A").replace('/', "%2F"),
        );
        let mut response = agent()
            .post(&issuer.token_url())
            .content_type("application/x-www-form-urlencoded")
            .send(form.as_bytes())
            .unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    };
    let refused = |(status, body): (u16, String), why: &str| {
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid_grant") && body.contains(why), "{body}");
    };
    let first = code();
    refused(redeem(&first, "desktop", redirect, &"x".repeat(43)), "PKCE");
    refused(redeem(&first, "desktop", redirect, verifier), "already used");
    refused(redeem(&code(), "other", redirect, verifier), "another client");
    refused(redeem(&code(), "desktop", "http://127.0.0.1:10/callback", verifier), "redirect_uri");
    refused(redeem("ac.unknown", "desktop", redirect, verifier), "unknown code");
    let (status, body) = redeem(&code(), "desktop", redirect, verifier);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("refresh_token"), "{body}");

    // No PKCE, plain PKCE, or a redirect URI off the loopback: no code.
    let bare = format!(
        "{}?response_type=code&client_id=desktop&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        issuer.authorization_url()
    );
    let (status, location, _) = get(&bare);
    assert_eq!(status, 302);
    assert!(location.unwrap().contains("error=invalid_request"));
    let (status, location, _) = get(&format!("{bare}&code_challenge={challenge}"));
    assert_eq!(status, 302);
    assert!(location.unwrap().contains("error=invalid_request"));
    let offsite = bare.replace("http%3A%2F%2F127.0.0.1%3A9", "https%3A%2F%2Fevil.example");
    let (status, location, page) = get(&format!("{offsite}&code_challenge={challenge}"));
    assert_eq!((status, location), (400, None), "{page}");
    let c = issuer.counters();
    assert_eq!((c.authorizations, c.code_redemptions, c.authorization_requests_refused), (4, 1, 3));
}

#[test]
fn access_denied_is_a_typed_error_and_leaves_the_client_logged_out() {
    let issuer =
        issuer(IssuerConfig { authorize_answer: AuthorizeAnswer::Deny, ..IssuerConfig::default() });
    let client = common::builder(&issuer, "desktop").build().unwrap();
    let mut visit = None;
    let error = client
        .login_with_authorization_code(&login(&issuer), |prompt| {
            visit = Some(browser(prompt, |location| location));
        })
        .unwrap_err();
    assert!(
        matches!(&error, AuthorizationCodeError::Denied { description: Some(d) } if d == "the user said no"),
        "{error:?}"
    );
    assert!(error.to_string().contains("denied"), "{error}");
    assert_eq!(visit.unwrap().join().unwrap().status, 400);
    assert!(client.needs_login());
    assert_eq!(issuer.counters().authorization_denials, 1);
}

#[test]
fn a_browser_that_never_comes_back_times_out() {
    let issuer = issuer(IssuerConfig::default());
    let client = common::builder(&issuer, "desktop").build().unwrap();
    let login = login(&issuer).wait_timeout(Duration::from_millis(300));
    let error = client
        .login_with_authorization_code(&login, |prompt| {
            // Only an unrelated request arrives, and a connection that never says anything.
            let origin = prompt.redirect_uri.trim_end_matches("/callback").to_owned();
            let mut idle = TcpStream::connect(origin.trim_start_matches("http://")).unwrap();
            idle.write_all(b"GET /call").unwrap();
            thread::spawn(move || {
                let _idle = idle;
                // Ignored: the listener may be gone by the time it connects.
                let _ = agent().get(&format!("{origin}/favicon.ico")).call();
            });
        })
        .unwrap_err();
    assert!(matches!(error, AuthorizationCodeError::Timeout), "{error:?}");
    assert!(client.needs_login());
    assert_eq!(issuer.counters().authorizations, 0);
}

#[test]
fn confidential_clients_authenticate_as_configured() {
    for auth in [ClientAuth::Basic, ClientAuth::Post] {
        let issuer = issuer(IssuerConfig {
            client_secret: Some("s3cret".into()),
            client_auth: auth,
            ..IssuerConfig::default()
        });
        let login = login(&issuer).client_secret("s3cret").client_auth(auth);
        assert!(!format!("{login:?}").contains("s3cret"));
        let mut visit = None;
        let tokens = login.run(|prompt| visit = Some(browser(prompt, |l| l))).unwrap();
        assert!(tokens.rotates_refresh_token(), "{auth:?}");
        assert_eq!(visit.unwrap().join().unwrap().status, 200);
        // The wrong method is refused by the issuer, as Authlib does.
        let other = if auth == ClientAuth::Basic { ClientAuth::Post } else { ClientAuth::Basic };
        let login = self::login(&issuer).client_secret("s3cret").client_auth(other);
        let mut visit = None;
        let error = login.run(|prompt| visit = Some(browser(prompt, |l| l))).unwrap_err();
        assert!(
            matches!(
                error,
                AuthorizationCodeError::Refused {
                    status: 401,
                    code: Some(ErrorCode::InvalidClient)
                }
            ),
            "{error:?}"
        );
        assert!(!format!("{error:?}{error}").contains("s3cret"));
        visit.unwrap().join().unwrap();
    }
}

#[test]
fn no_code_or_token_in_prompts_pages_or_errors() {
    use std::sync::{Arc, Mutex};

    let issuer = issuer(IssuerConfig::default());
    let seen = Arc::new(Mutex::new(String::new()));
    let code = |location: &str| {
        location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned()
    };

    // A login that succeeds: the prompt, the page and the tokens' Debug.
    let (mut visit, mut prompt) = (None, None);
    let recorder = Arc::clone(&seen);
    let tokens = login(&issuer)
        .run(|p| {
            prompt = Some(p.clone());
            visit = Some(browser(p, move |location| {
                *recorder.lock().unwrap() = location.clone();
                location
            }));
        })
        .unwrap();
    let visit = visit.unwrap().join().unwrap();
    let first_code = code(&seen.lock().unwrap());
    let shown = format!("{prompt:?}{tokens:?}{}", visit.page);
    for secret in [first_code.as_str(), "at.", "rt."] {
        assert!(!shown.contains(secret), "{secret:?} in {shown}");
    }

    // A login whose redirect is forged, and one whose code was redeemed before: the error
    // chain and the page name no code.
    let recorder = Arc::clone(&seen);
    let mut visit = None;
    let error = login(&issuer)
        .run(|p| {
            visit = Some(browser(p, move |location| {
                *recorder.lock().unwrap() = location.clone();
                format!("{}state=forged", location.split_once("state=").unwrap().0)
            }));
        })
        .unwrap_err();
    let page = visit.unwrap().join().unwrap().page;
    let forged_code = code(&seen.lock().unwrap());
    let mut text = format!("{error:?}{error}{page}");
    let mut source = core::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!("{cause:?}{cause}"));
        source = cause.source();
    }
    assert!(matches!(error, AuthorizationCodeError::StateMismatch));
    assert!(!text.contains(&forged_code) && !text.contains(&first_code), "{text}");
}

#[test]
fn over_https_the_token_endpoint_is_checked_and_plain_http_off_loopback_refused() {
    let pki = TestPki::generate().unwrap();
    let config = IssuerConfig { client_id: Some("desktop".into()), ..IssuerConfig::default() };
    let issuer = MockIssuer::start_tls(config, &pki).unwrap();
    assert!(issuer.token_url().starts_with("https://"));

    // The issuer's CA given to the login: logged in over TLS.
    let mut visit = None;
    let tokens = login(&issuer)
        .root_certificates_pem(pki.ca_pem())
        .run(|prompt| visit = Some(browser(prompt, |l| l)))
        .unwrap();
    assert_eq!(visit.unwrap().join().unwrap().status, 200);
    assert!(tokens.rotates_refresh_token());

    // Without it the default roots do not know the CA: a typed, final TLS error.
    let mut visit = None;
    let error = login(&issuer).run(|prompt| visit = Some(browser(prompt, |l| l))).unwrap_err();
    visit.unwrap().join().unwrap();
    assert!(
        matches!(&error, AuthorizationCodeError::Tls(e) if e.problem() == TlsProblem::UnknownIssuer),
        "{error:?}"
    );
    let c = issuer.counters();
    assert_eq!((c.authorizations, c.code_redemptions), (2, 1));

    // A plain-http token endpoint off loopback is refused before the browser is sent anywhere.
    let insecure = AuthorizationCodeLogin::new(
        "https://auth.example/authorize",
        "http://192.0.2.1/token",
        "desktop",
    );
    let error = insecure.run(|_| panic!("the browser was opened")).unwrap_err();
    assert!(
        matches!(&error, AuthorizationCodeError::Settings(Error::InsecureUrl { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("http://192.0.2.1"), "{error}");
}

/// A login without TLS settings of its own, run through a client, reaches the token endpoint
/// with the client's: the private CA is given once, to the client.
#[test]
fn a_login_through_a_client_trusts_the_clients_roots() {
    let pki = TestPki::generate().unwrap();
    let config = IssuerConfig { client_id: Some("desktop".into()), ..IssuerConfig::default() };
    let issuer = MockIssuer::start_tls(config, &pki).unwrap();
    let client = reauth_ureq::Client::builder()
        .token_url(issuer.token_url())
        .client_id("desktop")
        .root_certificates_pem(pki.ca_pem())
        .build()
        .unwrap();
    let mut visit = None;
    client
        .login_with_authorization_code(&login(&issuer), |prompt| {
            visit = Some(browser(prompt, |l| l));
        })
        .unwrap();
    assert_eq!(visit.unwrap().join().unwrap().status, 200);
    assert_eq!(client.get(&issuer.api_url("after-login")).unwrap().status(), 200);

    // The login's own settings win: a login that trusts another CA is refused.
    let stranger = TestPki::generate().unwrap();
    let mut visit = None;
    let error = client
        .login_with_authorization_code(
            &login(&issuer).root_certificates_pem(stranger.ca_pem()),
            |prompt| visit = Some(browser(prompt, |l| l)),
        )
        .unwrap_err();
    visit.unwrap().join().unwrap();
    assert!(matches!(&error, AuthorizationCodeError::Tls(_)), "{error:?}");
}
