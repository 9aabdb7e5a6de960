//! The device authorization grant (RFC 8628) end to end against the loopback mock issuer:
//! approved, denied, expired, `slow_down` honoured, failed polls retried.

mod common;

use core::time::Duration;
use std::time::Instant;

use reauth_testkit::issuer::{DeviceAnswer, Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{Client, DeviceError, DeviceLogin, DevicePrompt};

/// An issuer whose device codes may be polled at once (interval 0), answering as `answer` says.
fn issuer(answer: DeviceAnswer) -> MockIssuer {
    MockIssuer::start(IssuerConfig {
        device_interval: Duration::ZERO,
        device_answer: answer,
        ..IssuerConfig::default()
    })
    .unwrap()
}

fn device_login(issuer: &MockIssuer) -> DeviceLogin {
    DeviceLogin::new(issuer.device_authorization_url(), issuer.token_url())
        .client_id("demo")
        .scope("api")
        .call_timeout(Duration::from_secs(5))
}

fn client(issuer: &MockIssuer) -> Client {
    common::builder(issuer, "demo").build().unwrap()
}

#[test]
fn approved_device_login_logs_the_client_in() {
    let issuer = issuer(DeviceAnswer::Manual);
    let client = client(&issuer);
    assert!(client.needs_login());
    let mut shown = None;
    client
        .login_with_device(&device_login(&issuer), |prompt: &DevicePrompt| {
            // The user approves on their phone while the device shows the code.
            assert!(issuer.approve(&prompt.user_code));
            shown = Some(prompt.clone());
        })
        .unwrap();
    let prompt = shown.unwrap();
    assert_eq!(prompt.user_code.len(), 9);
    assert!(prompt.verification_uri.ends_with("/device"), "{prompt:?}");
    assert_eq!(
        prompt.verification_uri_complete,
        Some(format!("{}?user_code={}", prompt.verification_uri, prompt.user_code))
    );
    assert_eq!(prompt.expires_in, Duration::from_secs(600));
    assert!(!client.needs_login());
    let response = client.get(&issuer.api_url("me")).unwrap();
    assert_eq!(response.status(), 200);
    let c = issuer.counters();
    assert_eq!((c.device_authorizations, c.device_approvals, c.api_ok), (1, 1, 1));
    // The session refreshes like any other.
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("me")).unwrap().status(), 200);
    assert_eq!(issuer.counters().refresh_successes, 2);
}

#[test]
fn pending_polls_continue_until_the_issuer_approves() {
    let issuer = issuer(DeviceAnswer::ApproveAfter(3));
    let tokens = device_login(&issuer).run(|_| {}).unwrap();
    assert!(tokens.rotates_refresh_token());
    assert_eq!(tokens.expires_in(), Some(Duration::from_secs(60)));
    let c = issuer.counters();
    assert_eq!((c.device_polls, c.device_pending, c.device_approvals), (3, 2, 1));
}

#[test]
fn denied_device_login_is_an_error_and_the_client_stays_logged_out() {
    let issuer = issuer(DeviceAnswer::DenyAfter(2));
    let client = client(&issuer);
    let err = client.login_with_device(&device_login(&issuer), |_| {}).unwrap_err();
    assert!(matches!(err, DeviceError::Denied), "{err:?}");
    assert!(client.needs_login());
    assert_eq!(err.to_string(), "the user denied the device login");
}

#[test]
fn an_unanswered_code_expires() {
    let issuer = MockIssuer::start(IssuerConfig {
        device_interval: Duration::from_millis(400),
        device_code_lifetime: Duration::from_millis(900),
        ..IssuerConfig::default()
    })
    .unwrap();
    let err = device_login(&issuer).run(|_| {}).unwrap_err();
    assert!(matches!(err, DeviceError::Expired), "{err:?}");
    // Advertised as 1 s each (whole seconds): one poll at 1 s, which is the code's end.
    let c = issuer.counters();
    assert_eq!(c.device_polls, 1, "{c:?}");
}

#[test]
fn slow_down_adds_five_seconds_to_the_interval() {
    let issuer = MockIssuer::start(IssuerConfig {
        device_interval: Duration::ZERO,
        device_enforced_interval: Some(Duration::from_secs(1)),
        device_answer: DeviceAnswer::ApproveAfter(3),
        ..IssuerConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    device_login(&issuer).run(|_| {}).unwrap();
    // Poll 1 at once (pending), poll 2 at once (slow_down), poll 3 five seconds later.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(5), "{elapsed:?}");
    let c = issuer.counters();
    assert_eq!((c.device_polls, c.device_slow_downs, c.device_approvals), (3, 1, 1));
}

#[test]
fn failed_polls_are_retried() {
    let issuer = issuer(DeviceAnswer::ApproveAfter(1));
    let login = device_login(&issuer);
    let client = client(&issuer);
    client
        .login_with_device(&login, |_| {
            issuer.inject(Fault::ServiceUnavailable { times: 2 });
        })
        .unwrap();
    let c = issuer.counters();
    assert_eq!((c.faults_served, c.device_polls, c.device_approvals), (2, 1, 1));
}

#[test]
fn a_refused_client_and_an_unreachable_endpoint_are_errors() {
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("other".into()),
        ..IssuerConfig::default()
    })
    .unwrap();
    let err = device_login(&issuer).run(|_| panic!("no code to show")).unwrap_err();
    assert!(matches!(err, DeviceError::Refused { status: 401, .. }), "{err:?}");
    let url = issuer.device_authorization_url();
    drop(issuer);
    let err = DeviceLogin::new(url, "http://127.0.0.1:9/").run(|_| {}).unwrap_err();
    assert!(matches!(err, DeviceError::Transport(_)), "{err:?}");
}

#[test]
fn debug_hides_the_secret() {
    let login = DeviceLogin::new("http://x/d", "http://x/t").client_secret("SENTINEL");
    assert!(!format!("{login:?}").contains("SENTINEL"));
}
