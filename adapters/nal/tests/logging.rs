//! The `log` feature (on for this crate's tests, see the dev-dependencies): every event `poll`
//! hands out is logged under the target `reauth_nal`, the coordinator's own events under
//! `reauth`, and no line ever carries a token, against the real loopback mock issuer.
//!
//! One test in this file: the logger is global to the test binary.

mod common;

use std::string::{String, ToString};
use std::sync::Mutex;
use std::time::Instant as StdInstant;

use reauth_core::Instant;
use reauth_nal::{Client, ClientConfig, Endpoint, Request};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_testkit::secrets::{assert_hidden, has_issuer_token};

use crate::common::{Flash, StackClient, config, drive, oauth};

type TestClient<'a> = StackClient<'a, reauth_nal::OAuth2<'static>, 2>;

/// Keeps every log line as `LEVEL target: message`.
struct Capture(Mutex<Vec<String>>);

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        self.0.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

#[test]
fn every_event_is_logged_without_a_token() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let start = StdInstant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let mut client: TestClient<'_> = Client::new(config(&host, &issuer), oauth(), Flash::default());
    let mut secrets = Vec::new();

    // An expiry: one refresh, whose rotated token the flash refuses to keep, and two answers.
    let tokens = issuer.login();
    client.login(now(), &tokens.access_token, &tokens.refresh_token, None).unwrap();
    secrets.extend([tokens.access_token, tokens.refresh_token]);
    issuer.expire_all_now();
    client.store_mut().failing = true;
    for _ in 0..2 {
        client.submit(now(), &Request::get("/api/x")).unwrap();
    }
    drive(&mut client, start, 2, |_, _| {});
    client.store_mut().failing = false;

    // A refusal: the user must log in again.
    let tokens = issuer.login();
    client.login(now(), &tokens.access_token, &tokens.refresh_token, None).unwrap();
    secrets.extend([tokens.access_token, tokens.refresh_token]);
    issuer.expire_all_now();
    issuer.inject(Fault::InvalidGrant { times: 1 });
    client.submit(now(), &Request::get("/api/x")).unwrap();
    drive(&mut client, start, 1, |_, _| {});
    assert!(client.needs_login());

    // A transport failure: nothing listens on the API's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let unreachable =
        ClientConfig { api: Endpoint { addr: nowhere, host: &host }, ..config(&host, &issuer) };
    let mut client: TestClient<'_> = Client::new(unreachable, oauth(), Flash::default());
    let tokens = issuer.login();
    client.login(now(), &tokens.access_token, &tokens.refresh_token, None).unwrap();
    secrets.extend([tokens.access_token, tokens.refresh_token]);
    client.submit(now(), &Request::get("/api/x")).unwrap();
    drive(&mut client, start, 1, |_, _| {});

    let lines = CAPTURE.0.lock().unwrap().clone();
    let expected = [
        "DEBUG reauth_nal: request #1 answered 200",
        "INFO reauth_nal: token refreshed: generation 2, ",
        "ERROR reauth_nal: the rotated refresh token could not be persisted",
        "WARN reauth_nal: refresh refused, the user must log in again: ",
        "WARN reauth_nal: request #3 failed: request rejected: no usable credentials",
        "WARN reauth_nal: request #1 failed: network error while connecting",
        "DEBUG reauth: refresh #",
    ];
    for prefix in expected {
        assert!(lines.iter().any(|line| line.starts_with(prefix)), "no `{prefix}` in {lines:#?}");
    }
    assert_hidden(&lines, &secrets);
    assert!(!lines.iter().any(|line| has_issuer_token(line)), "{lines:#?}");
}
