//! No token, secret or device code in any log record at any level, ureq's own wire trace
//! included: a logger that keeps every record of every crate at `trace` watches a client with a
//! Basic secret through logins, requests, refreshes with rotation, a refused refresh, a device
//! login and a browser login (authorization code with PKCE). ureq-proto logs the wire as rows of 16 bytes in hex; the rows are joined back into the
//! byte stream before searching, so that a token split across rows is still found.
//!
//! One test per file: the logger is process-wide.

use core::time::Duration;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::thread;

use reauth_core::oauth::ClientAuth;
use reauth_testkit::issuer::{DeviceAnswer, IssuerConfig, MockIssuer};
use reauth_testkit::secrets::has_issuer_token;
use reauth_ureq::{AuthorizationCodeLogin, Client, DeviceLogin};

/// Every record: `(target, message)`.
static RECORDS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct KeepEverything;

impl log::Log for KeepEverything {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let entry = (record.target().to_owned(), record.args().to_string());
        RECORDS.lock().unwrap().push(entry);
    }

    fn flush(&self) {}
}

/// The bytes of ureq-proto's hex rows (`4854 5450 2f31 ... HTTP/1...`), joined.
fn wire_bytes(records: &[(String, String)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (target, message) in records {
        if !target.starts_with("ureq_proto") {
            continue;
        }
        // Eight groups of four hex digits (or `--` pairs past the row's end), then the ASCII.
        let hex: String = message.split(' ').take(8).collect();
        if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            continue;
        }
        for pair in hex.as_bytes().chunks(2) {
            if let Ok(byte) = u8::from_str_radix(core::str::from_utf8(pair).unwrap(), 16) {
                bytes.push(byte);
            }
        }
    }
    bytes
}

/// The user's browser: GETs the authorization URL, then the loopback redirect it answers with,
/// over plain sockets (a real browser's traffic is not in the application's log, and the code
/// in the redirect is the browser's to see).
fn browse(authorization_url: &str) {
    let answer = raw_get(authorization_url);
    let location = answer
        .lines()
        .find_map(|line| {
            line.strip_prefix("Location: ").or_else(|| line.strip_prefix("location: "))
        })
        .unwrap_or_else(|| panic!("no redirect: {answer}"));
    raw_get(location.trim());
}

/// One `Connection: close` GET of an `http://` URL; the whole answer.
fn raw_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn trace_logging_of_every_crate_shows_no_token_or_secret() {
    log::set_logger(&KeepEverything).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let secret = "basic-secret-4711";
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("app".to_owned()),
        client_secret: Some(secret.to_owned()),
        client_auth: ClientAuth::Basic,
        device_interval: Duration::ZERO,
        // A failure shows in seconds, not in the default ten minutes.
        device_code_lifetime: Duration::from_secs(5),
        device_answer: DeviceAnswer::ApproveAfter(2),
        ..IssuerConfig::default()
    })
    .unwrap();
    let client = Client::builder()
        .token_url(issuer.token_url())
        .client_id("app")
        .client_secret(secret)
        .build()
        .unwrap();
    let first = issuer.login();
    client.login(&first.access_token, &first.refresh_token, Some(first.expires_in)).unwrap();
    let mut secrets = vec![first.access_token.clone(), first.refresh_token.clone()];
    for round in 0..3 {
        assert_eq!(client.get(&issuer.api_url(&format!("r{round}"))).unwrap().status(), 200);
        issuer.expire_all_now();
        assert_eq!(client.get(&issuer.api_url("after")).unwrap().status(), 200);
    }
    assert_eq!(issuer.counters().refresh_successes, 3);
    // A refused refresh: its answer is read too.
    issuer.revoke_session();
    issuer.expire_all_now();
    assert!(client.get(&issuer.api_url("refused")).is_err());
    // A device login: the device code and the tokens come through the same filter.
    let device = DeviceLogin::new(issuer.device_authorization_url(), issuer.token_url())
        .client_id("app")
        .client_secret(secret);
    client.login_with_device(&device, |_| {}).unwrap();
    assert_eq!(client.get(&issuer.api_url("device")).unwrap().status(), 200);
    // A browser login: the code exchange's answer (the tokens) comes through the filter too.
    let browser_login =
        AuthorizationCodeLogin::new(issuer.authorization_url(), issuer.token_url(), "app")
            .client_secret(secret);
    client
        .login_with_authorization_code(&browser_login, |prompt| {
            let url = prompt.url.clone();
            thread::spawn(move || browse(&url));
        })
        .unwrap();
    assert_eq!(client.get(&issuer.api_url("browser")).unwrap().status(), 200);
    assert_eq!(issuer.counters().code_redemptions, 1);
    secrets.push(secret.to_owned());
    // The Basic header's value (base64 of "app:basic-secret-4711").
    secrets.push("YXBwOmJhc2ljLXNlY3JldC00NzEx".to_owned());

    log::set_max_level(log::LevelFilter::Off);
    let records = RECORDS.lock().unwrap().clone();
    let wire = wire_bytes(&records);
    let wire_text = String::from_utf8_lossy(&wire);
    // The trace was on and caught the wire: heads both ways, with their Authorization lines.
    assert!(wire_text.contains("POST /oauth/token"), "no request head in the trace");
    assert!(wire_text.contains("HTTP/1.1 200"), "no response head in the trace");
    assert!(wire_text.to_ascii_lowercase().contains("authorization: bearer "));
    assert!(wire_text.to_ascii_lowercase().contains("authorization: basic "));
    let all: String =
        records.iter().map(|(target, message)| format!("{target}: {message}\n")).collect();
    for text in [&*wire_text, &all] {
        assert!(!has_issuer_token(text), "an issuer token in the log");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in the log");
        }
    }
}
