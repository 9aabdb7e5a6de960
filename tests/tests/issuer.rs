//! End-to-end tests of the mock issuer over real loopback sockets, with a minimal blocking
//! HTTP/1.1 client written on `TcpStream` (every read has a timeout, every loop is bounded).

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Instant;

use reauth_testkit::issuer::{
    DeviceAnswer, ExpiryStyle, Fault, IssuedTokens, IssuerConfig, MockIssuer,
};

/// Read timeout of every test socket: a hung server fails a test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A response as read from the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        core::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// The string value of `"key":"..."` in a flat JSON body (our tokens need no escapes).
    fn json_str(&self, key: &str) -> String {
        let text = self.text();
        let marker = format!("\"{key}\":\"");
        let start =
            text.find(&marker).unwrap_or_else(|| panic!("no {key} in {text}")) + marker.len();
        let len = text[start..].find('"').expect("closing quote");
        text[start..start + len].to_owned()
    }
}

/// How reading a response ended when it did not end well.
#[derive(Debug)]
enum ReadFailure {
    /// The connection ended before a complete head; carries what was received.
    NoHead(Vec<u8>),
    /// The head arrived but the body was cut short: status, promised and received length.
    ShortBody { status: u16, promised: usize, received: usize },
    /// A socket error (a timeout, a reset).
    Io(io::Error),
}

/// One keep-alive connection to an issuer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        Self { stream, buf: Vec::new() }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a request with a `Content-Length` body.
    fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
    }

    fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send(method, target, headers, body);
        self.read_response().expect("a complete response")
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn read_response(&mut self) -> Result<Response, ReadFailure> {
        // Bounded: every round either parses the head or reads at least one byte (or fails).
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(len) = parsed.parse(&self.buf).expect("valid head") {
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect::<Vec<_>>();
                break (parsed.code.expect("status"), headers, len);
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Err(ReadFailure::NoHead(self.buf.clone())),
                Err(e) => return Err(ReadFailure::Io(e)),
            }
        };
        self.buf.drain(..head_len);
        let find = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let body = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked(status)?
        } else {
            let promised: usize = find("content-length").map_or(0, |v| v.parse().expect("length"));
            while self.buf.len() < promised {
                match self.fill() {
                    Ok(true) => {}
                    Ok(false) => {
                        let received = self.buf.len();
                        return Err(ReadFailure::ShortBody { status, promised, received });
                    }
                    Err(e) => return Err(ReadFailure::Io(e)),
                }
            }
            self.buf.drain(..promised).collect()
        };
        Ok(Response { status, headers, body })
    }

    fn read_chunked(&mut self, status: u16) -> Result<Vec<u8>, ReadFailure> {
        let mut body = Vec::new();
        loop {
            match httparse::parse_chunk_size(&self.buf).expect("valid chunk size") {
                httparse::Status::Complete((consumed, 0)) => {
                    while self.buf.len() < consumed + 2 {
                        self.fill_or_short(status, body.len())?;
                    }
                    assert_eq!(&self.buf[consumed..consumed + 2], b"\r\n", "no trailers sent");
                    self.buf.drain(..consumed + 2);
                    return Ok(body);
                }
                httparse::Status::Complete((consumed, size)) => {
                    let end = consumed + usize::try_from(size).expect("size");
                    while self.buf.len() < end + 2 {
                        self.fill_or_short(status, body.len())?;
                    }
                    assert_eq!(&self.buf[end..end + 2], b"\r\n");
                    body.extend_from_slice(&self.buf[consumed..end]);
                    self.buf.drain(..end + 2);
                }
                httparse::Status::Partial => self.fill_or_short(status, body.len())?,
            }
        }
    }

    fn fill_or_short(&mut self, status: u16, received: usize) -> Result<(), ReadFailure> {
        match self.fill() {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReadFailure::ShortBody { status, promised: usize::MAX, received }),
            Err(e) => Err(ReadFailure::Io(e)),
        }
    }

    /// Whether the server has closed the connection (EOF within the read timeout).
    fn is_closed(&mut self) -> bool {
        for _ in 0..100 {
            match self.fill() {
                Ok(false) => return true,
                Ok(true) => {}
                Err(e) => return e.kind() == io::ErrorKind::ConnectionReset,
            }
        }
        false
    }
}

fn start(config: IssuerConfig) -> MockIssuer {
    MockIssuer::start(config).expect("issuer starts")
}

fn bearer(tokens: &IssuedTokens) -> String {
    format!("Bearer {}", tokens.access_token)
}

fn api_get(issuer: &MockIssuer, path: &str, access_token: &str) -> Response {
    let auth = format!("Bearer {access_token}");
    Conn::open(issuer.addr()).request(
        "GET",
        path,
        &[("Authorization", &auth), ("Connection", "close")],
        b"",
    )
}

fn refresh(issuer: &MockIssuer, refresh_token: &str) -> Response {
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}&client_id=demo");
    Conn::open(issuer.addr()).request(
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Connection", "close")],
        body.as_bytes(),
    )
}

fn classic_refresh(issuer: &MockIssuer, body: &str) -> Response {
    Conn::open(issuer.addr()).request(
        "POST",
        "/auth/refresh",
        &[("Content-Type", "application/json"), ("Connection", "close")],
        body.as_bytes(),
    )
}

#[test]
fn urls_point_at_loopback() {
    let issuer = start(IssuerConfig::default());
    let port = issuer.addr().port();
    assert!(issuer.addr().ip().is_loopback());
    assert_eq!(issuer.base_url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(issuer.token_url(), format!("http://127.0.0.1:{port}/oauth/token"));
    assert_eq!(issuer.api_url("/x"), format!("http://127.0.0.1:{port}/api/x"));
    assert_eq!(issuer.api_url("x"), issuer.api_url("/x"));
    assert_eq!(issuer.classic_refresh_url(), format!("http://127.0.0.1:{port}/auth/refresh"));
    assert_eq!(issuer.echo_auth_url(), format!("http://127.0.0.1:{port}/echo-auth"));
}

#[test]
fn issued_tokens_debug_is_redacted() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let debug = format!("{tokens:?}");
    assert!(!debug.contains(&tokens.access_token), "{debug}");
    assert!(!debug.contains(&tokens.refresh_token), "{debug}");
    assert!(debug.contains("generation: 1"), "{debug}");
    assert!(tokens.access_token.starts_with("at.1."));
    assert!(tokens.refresh_token.starts_with("rt.1."));
}

#[test]
fn valid_token_is_ok_and_expired_token_is_401_with_www_authenticate() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login_with_lifetime(Duration::from_millis(200));
    let ok = api_get(&issuer, "/api/x", &tokens.access_token);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert_eq!(ok.text(), r#"{"ok":true,"generation":1,"path":"/api/x"}"#);

    thread::sleep(Duration::from_millis(250));
    for _ in 0..2 {
        let expired = api_get(&issuer, "/api/x", &tokens.access_token);
        assert_eq!(expired.status, 401);
        assert_eq!(expired.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    }
    let counters = issuer.counters();
    assert_eq!(counters.api_ok, 1);
    assert_eq!(counters.api_unauthorized, 2);
    assert_eq!(counters.ok_by_generation.get(&1), Some(&1));
    assert_eq!(counters.unauthorized_by_generation.get(&1), Some(&2));
    assert_eq!(counters.expiry_episodes, 1, "one token expired, however often presented");
}

#[test]
fn unknown_or_missing_token_is_401_under_generation_zero() {
    let issuer = start(IssuerConfig::default());
    let unknown = api_get(&issuer, "/api/x", "at.1.0123456789abcdef");
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    let missing = Conn::open(issuer.addr()).request("GET", "/api/x", &[], b"");
    assert_eq!(missing.status, 401);
    assert!(missing.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
    let counters = issuer.counters();
    assert_eq!(counters.unauthorized_by_generation.get(&0), Some(&2));
    assert_eq!(counters.expiry_episodes, 0);
}

#[test]
fn refresh_rotates_and_a_reused_refresh_token_is_invalid_grant() {
    let issuer = start(IssuerConfig::default());
    let first = issuer.login();
    let response = refresh(&issuer, &first.refresh_token);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(response.text().contains(r#""token_type":"Bearer","expires_in":60,"#));
    assert!(response.text().contains(r#""scope":"api""#));
    let access = response.json_str("access_token");
    let rotated = response.json_str("refresh_token");
    assert!(access.starts_with("at.2."));
    assert_ne!(rotated, first.refresh_token);
    assert_eq!(issuer.current_generation(), 2);

    let ok = api_get(&issuer, "/api/after", &access);
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains(r#""generation":2"#));

    let reused = refresh(&issuer, &first.refresh_token);
    assert_eq!(reused.status, 400);
    assert_eq!(reused.json_str("error"), "invalid_grant");
    assert_eq!(reused.json_str("error_description"), "refresh token reused");

    let unknown = refresh(&issuer, "rt.9.0000000000000000");
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json_str("error"), "invalid_grant");

    // Without `revoke_on_reuse` the rotated token still works.
    assert_eq!(refresh(&issuer, &rotated).status, 200);

    let counters = issuer.counters();
    assert_eq!(counters.refresh_calls, 4);
    assert_eq!(counters.refresh_successes, 2);
    assert_eq!(counters.reuse_attempts, 1, "unknown tokens are not reuse");
    assert_eq!(counters.refreshes_per_access_token_max, 2, "first token refreshed twice");
    assert_eq!(counters.access_token_seen_on_token_endpoint, 0);
}

#[test]
fn grant_errors_and_wrong_methods() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let mut conn = Conn::open(issuer.addr());
    let form = format!("grant_type=password&refresh_token={}", tokens.refresh_token);
    let wrong_grant = conn.request("POST", "/oauth/token", &[], form.as_bytes());
    assert_eq!(wrong_grant.status, 400);
    assert_eq!(wrong_grant.json_str("error"), "unsupported_grant_type");
    let missing = conn.request("POST", "/oauth/token", &[], b"grant_type=refresh_token");
    assert_eq!(missing.json_str("error"), "invalid_request");
    let repeated = conn.request(
        "POST",
        "/oauth/token",
        &[],
        b"grant_type=refresh_token&refresh_token=a&refresh_token=b",
    );
    assert_eq!(repeated.json_str("error"), "invalid_request");
    let get = conn.request("GET", "/oauth/token", &[], b"");
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    assert_eq!(conn.request("GET", "/nowhere", &[], b"").status, 404);
    assert_eq!(conn.request("OPTIONS", "/api/x", &[], b"").status, 405);
    conn.send("HEAD", "/echo-auth", &[], b"");
    let head = conn.read_response().expect("HEAD answer");
    assert_eq!((head.status, head.body.len()), (405, 0));
    // The refresh token survived all of that.
    let encoded = form.replace("password", "refresh%5Ftoken");
    assert_eq!(conn.request("POST", "/oauth/token", &[], encoded.as_bytes()).status, 200);
}

#[test]
fn reuse_revokes_the_session_when_configured() {
    let issuer = start(IssuerConfig { revoke_on_reuse: true, ..IssuerConfig::default() });
    let first = issuer.login();
    let other = issuer.login();
    let rotated = refresh(&issuer, &first.refresh_token).json_str("refresh_token");
    assert_eq!(refresh(&issuer, &first.refresh_token).status, 400);
    let revoked = refresh(&issuer, &rotated);
    assert_eq!(revoked.status, 400);
    assert_eq!(revoked.json_str("error_description"), "refresh token revoked");
    assert_eq!(refresh(&issuer, &other.refresh_token).status, 200, "other sessions survive");
    assert_eq!(issuer.counters().reuse_attempts, 1);
}

#[test]
fn revoke_session_invalidates_every_refresh_token() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    issuer.revoke_session();
    let refused = refresh(&issuer, &tokens.refresh_token);
    assert_eq!((refused.status, refused.json_str("error").as_str()), (400, "invalid_grant"));
    assert_eq!(api_get(&issuer, "/api/x", &tokens.access_token).status, 200);
    assert_eq!(refresh(&issuer, &issuer.login().refresh_token).status, 200);
    assert_eq!(issuer.counters().reuse_attempts, 0);
}

#[test]
fn without_rotation_a_refresh_token_works_repeatedly() {
    let issuer = start(IssuerConfig { rotation: false, ..IssuerConfig::default() });
    let tokens = issuer.login();
    for generation in 2..5 {
        let response = refresh(&issuer, &tokens.refresh_token);
        assert_eq!(response.status, 200);
        assert_eq!(response.json_str("refresh_token"), tokens.refresh_token);
        assert!(response.json_str("access_token").starts_with(&format!("at.{generation}.")));
    }
    let counters = issuer.counters();
    assert_eq!((counters.refresh_successes, counters.reuse_attempts), (3, 0));
    assert_eq!(counters.refreshes_per_access_token_max, 1);
}

#[test]
fn configured_client_id_is_required() {
    let issuer = start(IssuerConfig { client_id: Some("app".into()), ..IssuerConfig::default() });
    let tokens = issuer.login();
    // `refresh` sends client_id=demo.
    let refused = refresh(&issuer, &tokens.refresh_token);
    assert_eq!((refused.status, refused.json_str("error").as_str()), (401, "invalid_client"));
    let mut conn = Conn::open(issuer.addr());
    let form = format!("grant_type=refresh_token&refresh_token={}", tokens.refresh_token);
    assert_eq!(conn.request("POST", "/oauth/token", &[], form.as_bytes()).status, 401);
    // Basic credentials "app:secret".
    let basic = [("Authorization", "Basic YXBwOnNlY3JldA==")];
    let ok = conn.request("POST", "/oauth/token", &basic, form.as_bytes());
    assert_eq!(ok.status, 200);
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&client_id=app",
        ok.json_str("refresh_token")
    );
    assert_eq!(conn.request("POST", "/oauth/token", &[], form.as_bytes()).status, 200);
}

#[test]
fn classic_refresh_endpoint_rotates_too() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let body = format!(r#"{{ "refreshToken" : "{}" }}"#, tokens.refresh_token);
    let response = classic_refresh(&issuer, &body);
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.json_str("token").starts_with("at.2."));
    assert!(response.json_str("refreshToken").starts_with("rt.2."));
    assert!(response.text().ends_with(r#""ttl":60}"#));
    let reused = classic_refresh(&issuer, &body);
    assert_eq!(reused.status, 401);
    assert!(reused.text().starts_with(r#"{"code":401"#));
    assert_eq!(classic_refresh(&issuer, r#"{"refreshToken":"nope"}"#).status, 401);
    assert_eq!(classic_refresh(&issuer, r#"{"refreshToken":"#).status, 400);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.refresh_successes), (4, 1));
    assert_eq!(counters.reuse_attempts, 1);
}

#[test]
fn classic_409_mode_answers_expiry_with_200() {
    let issuer =
        start(IssuerConfig { expiry_style: ExpiryStyle::Classic409, ..IssuerConfig::default() });
    let tokens = issuer.login();
    assert_eq!(api_get(&issuer, "/api/x", &tokens.access_token).status, 200);
    issuer.expire_all_now();
    let expired = api_get(&issuer, "/api/x", &tokens.access_token);
    assert_eq!(expired.status, 200);
    assert_eq!(expired.text(), r#"{"code":409,"message":"token expired"}"#);
    assert!(expired.header("www-authenticate").is_none());

    issuer.set_expiry_style(ExpiryStyle::Status401);
    assert_eq!(api_get(&issuer, "/api/x", &tokens.access_token).status, 401);
    let counters = issuer.counters();
    assert_eq!((counters.api_ok, counters.api_unauthorized), (1, 2));
    assert_eq!(counters.expiry_episodes, 1);
}

#[test]
fn expire_all_now_and_token_lifetime_knob() {
    let issuer = start(IssuerConfig::default());
    let a = issuer.login();
    let b = issuer.login();
    issuer.expire_all_now();
    assert_eq!(api_get(&issuer, "/api/x", &a.access_token).status, 401);
    assert_eq!(api_get(&issuer, "/api/x", &b.access_token).status, 401);
    assert_eq!(issuer.counters().expiry_episodes, 2);

    issuer.set_token_lifetime(Duration::from_millis(1500));
    let response = refresh(&issuer, &a.refresh_token);
    assert!(response.text().contains(r#""expires_in":2,"#), "rounded up: {}", response.text());
    assert_eq!(api_get(&issuer, "/api/x", &response.json_str("access_token")).status, 200);
}

#[test]
fn service_unavailable_n_times_then_success() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    issuer.inject(Fault::ServiceUnavailable { times: 2 });
    assert_eq!(refresh(&issuer, &tokens.refresh_token).status, 503);
    assert_eq!(refresh(&issuer, &tokens.refresh_token).status, 503);
    assert_eq!(refresh(&issuer, &tokens.refresh_token).status, 200, "faults left it unused");
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.faults_served), (3, 2));
    assert_eq!(counters.refreshes_per_access_token_max, 1, "faulted calls are not counted");
}

#[test]
fn faults_apply_in_order() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 7 });
    issuer.inject(Fault::InvalidGrant { times: 0 });
    issuer.inject(Fault::InvalidClient { times: 1 });
    issuer.inject(Fault::InvalidGrant { times: 1 });
    let limited = refresh(&issuer, &tokens.refresh_token);
    assert_eq!((limited.status, limited.header("retry-after")), (429, Some("7")));
    let client = refresh(&issuer, &tokens.refresh_token);
    assert_eq!((client.status, client.json_str("error").as_str()), (401, "invalid_client"));
    let grant = refresh(&issuer, &tokens.refresh_token);
    assert_eq!((grant.status, grant.json_str("error").as_str()), (400, "invalid_grant"));
    assert_eq!(refresh(&issuer, &tokens.refresh_token).status, 200);

    issuer.inject(Fault::ServiceUnavailable { times: 5 });
    issuer.clear_faults();
    assert_eq!(issuer.counters().faults_served, 3);
}

#[test]
fn faults_on_the_classic_endpoint_use_its_format() {
    let issuer = start(IssuerConfig::default());
    issuer.inject(Fault::InvalidGrant { times: 1 });
    issuer.inject(Fault::MalformedJson { times: 1 });
    let refused = classic_refresh(&issuer, r#"{"refreshToken":"x"}"#);
    assert_eq!((refused.status, refused.text()), (401, r#"{"code":401}"#));
    let malformed = classic_refresh(&issuer, r#"{"refreshToken":"x"}"#);
    assert_eq!((malformed.status, malformed.text()), (200, r#"{"token": "abc", "#));
}

#[test]
fn malformed_json_fault() {
    let issuer = start(IssuerConfig::default());
    issuer.inject(Fault::MalformedJson { times: 1 });
    let response = refresh(&issuer, &issuer.login().refresh_token);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.text(), r#"{"access_token": "abc", "#);
}

#[test]
fn oversized_token_fault_issues_a_long_usable_token() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    issuer.inject(Fault::OversizedToken { times: 1, len: 5000 });
    let response = refresh(&issuer, &tokens.refresh_token);
    assert_eq!(response.status, 200);
    let access = response.json_str("access_token");
    assert_eq!(access.len(), 5000);
    assert_eq!(api_get(&issuer, "/api/x", &access).status, 200);
    // The next refresh is normal again.
    let next = refresh(&issuer, &response.json_str("refresh_token"));
    assert!(next.json_str("access_token").len() < 64);
}

#[test]
fn close_before_answer_fault() {
    let issuer = start(IssuerConfig::default());
    issuer.inject(Fault::CloseBeforeAnswer { times: 1 });
    let mut conn = Conn::open(issuer.addr());
    conn.send("POST", "/oauth/token", &[], b"grant_type=refresh_token&refresh_token=x");
    match conn.read_response() {
        Err(ReadFailure::NoHead(received)) => assert!(received.is_empty()),
        other => panic!("expected a silent close, got {other:?}"),
    }
    assert_eq!(issuer.counters().faults_served, 1);
}

#[test]
fn reset_mid_body_fault() {
    let issuer = start(IssuerConfig::default());
    issuer.inject(Fault::ResetMidBody { times: 1 });
    let mut conn = Conn::open(issuer.addr());
    conn.send("POST", "/oauth/token", &[], b"grant_type=refresh_token&refresh_token=x");
    match conn.read_response() {
        Err(ReadFailure::ShortBody { status, promised, received }) => {
            assert_eq!(status, 200);
            assert!(received < promised, "{received} < {promised}");
        }
        // A reset may also surface as a socket error, depending on timing.
        Err(ReadFailure::Io(e)) => assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
        other => panic!("expected a cut body, got {other:?}"),
    }
}

#[test]
fn hang_fault_stays_silent_then_closes() {
    let issuer = start(IssuerConfig::default());
    issuer.inject(Fault::Hang { times: 1, duration: Duration::from_millis(150) });
    let mut conn = Conn::open(issuer.addr());
    let started = Instant::now();
    conn.send("POST", "/oauth/token", &[], b"grant_type=refresh_token&refresh_token=x");
    match conn.read_response() {
        Err(ReadFailure::NoHead(received)) => assert!(received.is_empty()),
        other => panic!("expected silence then close, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(140));
}

#[test]
fn trickle_fault_delivers_a_valid_answer_slowly() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    issuer.inject(Fault::Trickle { times: 1, byte_delay: Duration::from_micros(200) });
    let response = refresh(&issuer, &tokens.refresh_token);
    assert_eq!(response.status, 200);
    assert!(response.json_str("access_token").starts_with("at.2."));
    assert_eq!(issuer.counters().refresh_successes, 1);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let auth = bearer(&tokens);
    let mut conn = Conn::open(issuer.addr());
    let first = conn.request("GET", "/api/one", &[("Authorization", &auth)], b"");
    assert_eq!((first.status, first.header("connection")), (200, Some("keep-alive")));
    let second = conn.request("PUT", "/api/two", &[("Authorization", &auth)], b"12345");
    assert_eq!(second.text(), r#"{"ok":true,"generation":1,"path":"/api/two","received":5}"#);
    // Two pipelined requests in one write.
    let one = format!("GET /api/3 HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n");
    let two = format!("GET /api/4 HTTP/1.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    conn.send_raw(format!("{one}{two}").as_bytes());
    assert!(conn.read_response().expect("third").text().contains("/api/3"));
    let last = conn.read_response().expect("fourth");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(conn.is_closed(), "Connection: close is honoured");
    assert_eq!(issuer.counters().api_ok, 4);
}

#[test]
fn http_1_0_closes_by_default() {
    let issuer = start(IssuerConfig::default());
    let mut conn = Conn::open(issuer.addr());
    conn.send_raw(b"GET /echo-auth HTTP/1.0\r\n\r\n");
    assert_eq!(conn.read_response().expect("response").text(), r#"{"authorization":null}"#);
    assert!(conn.is_closed());
}

#[test]
fn chunked_api_mode() {
    let issuer = start(IssuerConfig { chunked_api: true, ..IssuerConfig::default() });
    let tokens = issuer.login();
    let auth = bearer(&tokens);
    let mut conn = Conn::open(issuer.addr());
    let ok = conn.request("GET", "/api/x", &[("Authorization", &auth)], b"");
    assert_eq!(ok.header("transfer-encoding"), Some("chunked"));
    assert!(ok.header("content-length").is_none());
    assert_eq!(ok.text(), r#"{"ok":true,"generation":1,"path":"/api/x"}"#);
    let big = conn.request("GET", "/api/big?bytes=10000", &[("Authorization", &auth)], b"");
    assert_eq!(big.body.len(), 10_000);
    let denied = conn.request("GET", "/api/x", &[], b"");
    assert_eq!((denied.status, denied.header("transfer-encoding")), (401, Some("chunked")));
    // Token answers keep Content-Length.
    let refreshed = conn.request(
        "POST",
        "/oauth/token",
        &[],
        format!("grant_type=refresh_token&refresh_token={}", tokens.refresh_token).as_bytes(),
    );
    assert!(refreshed.header("content-length").is_some());
}

#[test]
fn big_bodies_have_the_requested_size() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let big = api_get(&issuer, "/api/big?bytes=100000", &tokens.access_token);
    assert_eq!((big.status, big.body.len()), (200, 100_000));
    assert_eq!(big.header("content-type"), Some("application/json"));
    assert!(big.text().starts_with(r#"{"ok":true,"generation":1,"pad":"xxx"#));
    let tiny = api_get(&issuer, "/api/big?bytes=5", &tokens.access_token);
    assert_eq!((tiny.text(), tiny.header("content-type")), ("xxxxx", Some("text/plain")));
    assert_eq!(api_get(&issuer, "/api/big?bytes=lots", &tokens.access_token).status, 400);
}

#[test]
fn redirect_and_echo_auth_detect_a_leaked_token() {
    let issuer = start(IssuerConfig::default());
    let other_origin = start(IssuerConfig::default());
    let target = format!("{}?from=redirect", other_origin.echo_auth_url());
    let encoded = target.replace(':', "%3A").replace('/', "%2F").replace('?', "%3F");
    let redirect =
        Conn::open(issuer.addr()).request("GET", &format!("/api/redirect?to={encoded}"), &[], b"");
    assert_eq!((redirect.status, redirect.header("location")), (302, Some(target.as_str())));

    let mut conn = Conn::open(other_origin.addr());
    assert_eq!(conn.request("GET", "/echo-auth", &[], b"").text(), r#"{"authorization":null}"#);
    assert_eq!(other_origin.counters().foreign_authorization_seen, 0);
    let leaked = conn.request("GET", "/echo-auth", &[("Authorization", "Bearer at.1.x")], b"");
    assert_eq!(leaked.text(), r#"{"authorization":"Bearer at.1.x"}"#);
    assert_eq!(other_origin.counters().foreign_authorization_seen, 1);

    let injection = "/api/redirect?to=http%3A%2F%2Fa%0D%0AX-Evil%3A%201";
    assert_eq!(Conn::open(issuer.addr()).request("GET", injection, &[], b"").status, 400);
}

#[test]
fn tokens_in_the_wrong_place_are_counted() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let auth = bearer(&tokens);
    let mut conn = Conn::open(issuer.addr());
    let body = format!(r#"{{"note":"{}"}}"#, tokens.refresh_token);
    assert_eq!(
        conn.request("POST", "/api/x", &[("Authorization", &auth)], body.as_bytes()).status,
        200
    );
    let header = [("Authorization", auth.as_str()), ("X-Debug", tokens.refresh_token.as_str())];
    conn.request("GET", "/api/y", &header, b"");
    conn.request("GET", "/api/z", &[("Authorization", &auth)], b"");
    let form = format!("grant_type=refresh_token&refresh_token={}", tokens.refresh_token);
    conn.request("POST", "/oauth/token", &[("Authorization", &auth)], form.as_bytes());
    let counters = issuer.counters();
    assert_eq!(counters.refresh_token_seen_on_api, 2);
    assert_eq!(counters.access_token_seen_on_token_endpoint, 1);

    issuer.reset_counters();
    assert_eq!(issuer.counters(), reauth_testkit::issuer::Counters::default());
}

#[test]
fn counters_by_generation_across_a_refresh() {
    let issuer = start(IssuerConfig::default());
    let first = issuer.login();
    assert_eq!(api_get(&issuer, "/api/a", &first.access_token).status, 200);
    let response = refresh(&issuer, &first.refresh_token);
    let second = response.json_str("access_token");
    issuer.expire_all_now();
    assert_eq!(api_get(&issuer, "/api/a", &first.access_token).status, 401);
    assert_eq!(api_get(&issuer, "/api/a", &second).status, 401);
    let third = refresh(&issuer, &response.json_str("refresh_token")).json_str("access_token");
    for _ in 0..3 {
        assert_eq!(api_get(&issuer, "/api/a", &third).status, 200);
    }
    let counters = issuer.counters();
    assert_eq!(counters.ok_by_generation.into_iter().collect::<Vec<_>>(), [(1, 1), (3, 3)]);
    assert_eq!(
        counters.unauthorized_by_generation.into_iter().collect::<Vec<_>>(),
        [(1, 1), (2, 1)]
    );
    assert_eq!(counters.expiry_episodes, 2);
    assert_eq!(counters.refreshes_per_access_token_max, 1);
    assert_eq!(counters.requests_total, 8);
}

#[test]
fn malformed_and_oversized_requests_are_refused() {
    let issuer = start(IssuerConfig::default());
    let mut garbage = Conn::open(issuer.addr());
    garbage.send_raw(b"NOT HTTP AT ALL\x01\r\n\r\n");
    assert_eq!(garbage.read_response().expect("answer").status, 400);
    assert!(garbage.is_closed());

    let mut huge_head = Conn::open(issuer.addr());
    let filler = "a".repeat(20 * 1024);
    huge_head.send_raw(format!("GET /api/x HTTP/1.1\r\nX-Filler: {filler}\r\n\r\n").as_bytes());
    assert_eq!(huge_head.read_response().expect("answer").status, 431);

    let mut huge_body = Conn::open(issuer.addr());
    huge_body.send_raw(b"POST /api/x HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n");
    assert_eq!(huge_body.read_response().expect("answer").status, 413);

    let mut bad_length = Conn::open(issuer.addr());
    bad_length.send_raw(b"POST /api/x HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
    assert_eq!(bad_length.read_response().expect("answer").status, 400);

    assert_eq!(issuer.counters().malformed_requests, 4);
}

#[test]
fn chunked_request_bodies_are_decoded() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let mut conn = Conn::open(issuer.addr());
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        bearer(&tokens)
    );
    conn.send_raw(head.as_bytes());
    conn.send_raw(b"4\r\nabcd\r\n");
    conn.send_raw(b"3;ext=1\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n");
    let response = conn.read_response().expect("response");
    assert!(response.text().ends_with(r#""received":7}"#), "{}", response.text());
}

#[test]
fn latency_delays_answers() {
    let issuer = start(IssuerConfig {
        latency: Duration::from_millis(60),
        latency_jitter: Duration::from_millis(20),
        seed: 7,
        ..IssuerConfig::default()
    });
    let tokens = issuer.login();
    let started = Instant::now();
    assert_eq!(api_get(&issuer, "/api/slow", &tokens.access_token).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(60));
    issuer.set_latency(Duration::ZERO, Duration::ZERO);
    // `/echo-auth` never waits; with latency back to zero neither does the API.
    assert_eq!(api_get(&issuer, "/api/fast", &tokens.access_token).status, 200);
}

#[test]
fn concurrent_clients_are_served() {
    let issuer = start(IssuerConfig::default());
    let tokens = issuer.login();
    let auth = bearer(&tokens);
    thread::scope(|scope| {
        for worker in 0..8 {
            let (issuer, auth) = (&issuer, &auth);
            scope.spawn(move || {
                let mut conn = Conn::open(issuer.addr());
                for i in 0..25 {
                    let path = format!("/api/w{worker}/{i}");
                    let response = conn.request("GET", &path, &[("Authorization", auth)], b"");
                    assert_eq!(response.status, 200);
                }
            });
        }
    });
    assert_eq!(issuer.counters().api_ok, 200);
}

#[test]
fn dropping_the_issuer_closes_the_port_and_connections_promptly() {
    let issuer = start(IssuerConfig::default());
    let addr = issuer.addr();
    let mut idle = Conn::open(addr);
    let mut hanging = Conn::open(addr);
    issuer.inject(Fault::Hang { times: 1, duration: Duration::from_secs(30) });
    hanging.send("POST", "/oauth/token", &[], b"grant_type=refresh_token&refresh_token=x");
    // Let the hanging request reach its fault before dropping.
    let deadline = Instant::now() + Duration::from_secs(2);
    while issuer.counters().faults_served == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    drop(issuer);
    let took = started.elapsed();
    // "Promptly" against the 30 s hang it cuts short; the bound is generous for a loaded machine.
    assert!(took < Duration::from_secs(10), "drop took {took:?}");
    assert!(idle.is_closed());
    assert!(hanging.is_closed());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}

fn post_form(issuer: &MockIssuer, path: &str, body: &str) -> Response {
    Conn::open(issuer.addr()).request(
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Connection", "close")],
        body.as_bytes(),
    )
}

/// Starts a device authorization; gives the device code and the user code.
fn authorize_device(issuer: &MockIssuer) -> (String, String) {
    let response = post_form(issuer, "/oauth/device_authorization", "client_id=demo&scope=api");
    assert_eq!(response.status, 200, "{}", response.text());
    (response.json_str("device_code"), response.json_str("user_code"))
}

fn poll_device(issuer: &MockIssuer, device_code: &str) -> Response {
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code\
         &device_code={device_code}&client_id=demo"
    );
    post_form(issuer, "/oauth/token", &body)
}

/// Config for device tests: no interval enforced, so that a test can poll at once.
fn device_config() -> IssuerConfig {
    IssuerConfig { device_interval: Duration::ZERO, ..IssuerConfig::default() }
}

#[test]
fn device_authorization_answers_the_rfc_8628_fields() {
    let issuer = start(IssuerConfig::default());
    let response = post_form(&issuer, "/oauth/device_authorization", "client_id=demo");
    assert_eq!(response.status, 200);
    let body = response.text();
    let user_code = response.json_str("user_code");
    assert_eq!(user_code.len(), 9, "{body}");
    assert_eq!(&user_code[4..5], "-");
    let uri = response.json_str("verification_uri");
    assert_eq!(uri, format!("http://127.0.0.1/device"));
    assert_eq!(
        response.json_str("verification_uri_complete"),
        format!("{uri}?user_code={user_code}")
    );
    assert!(body.contains(r#""expires_in":600"#) && body.contains(r#""interval":5"#), "{body}");
    assert!(response.json_str("device_code").starts_with("dc."));
    assert_eq!(issuer.pending_user_codes(), [user_code]);
    assert_eq!(issuer.counters().device_authorizations, 1);
    let wrong = Conn::open(issuer.addr()).request("GET", "/oauth/device_authorization", &[], b"");
    assert_eq!(wrong.status, 405);
}

#[test]
fn device_code_is_pending_until_approved_then_redeemed_once() {
    let issuer = start(device_config());
    let (device_code, user_code) = authorize_device(&issuer);
    let pending = poll_device(&issuer, &device_code);
    assert_eq!((pending.status, pending.json_str("error")), (400, "authorization_pending".into()));
    assert!(issuer.approve(&user_code));
    assert!(!issuer.approve(&user_code), "only a pending code can be decided");
    let approved = poll_device(&issuer, &device_code);
    assert_eq!(approved.status, 200, "{}", approved.text());
    let access = approved.json_str("access_token");
    assert_eq!(api_get(&issuer, "/api/x", &access).status, 200);
    // The new session's refresh token works.
    assert_eq!(refresh(&issuer, &approved.json_str("refresh_token")).status, 200);
    let again = poll_device(&issuer, &device_code);
    assert_eq!((again.status, again.json_str("error")), (400, "invalid_grant".into()));
    let unknown = poll_device(&issuer, "dc.nope");
    assert_eq!(unknown.json_str("error"), "invalid_grant");
    let c = issuer.counters();
    assert_eq!((c.device_polls, c.device_pending, c.device_approvals), (4, 1, 1));
    assert!(issuer.pending_user_codes().is_empty());
}

#[test]
fn denied_device_code_answers_access_denied() {
    let issuer = start(device_config());
    let (device_code, user_code) = authorize_device(&issuer);
    assert!(issuer.deny(&user_code));
    assert!(!issuer.approve(&user_code));
    let denied = poll_device(&issuer, &device_code);
    assert_eq!((denied.status, denied.json_str("error")), (400, "access_denied".into()));
    assert_eq!(issuer.counters().device_denials, 1);
    assert!(!issuer.approve("NOPE-NOPE"));
}

#[test]
fn device_answers_itself_after_n_polls() {
    let issuer =
        start(IssuerConfig { device_answer: DeviceAnswer::ApproveAfter(3), ..device_config() });
    let (device_code, _) = authorize_device(&issuer);
    let statuses: Vec<u16> = (0..3).map(|_| poll_device(&issuer, &device_code).status).collect();
    assert_eq!(statuses, [400, 400, 200]);
    let issuer =
        start(IssuerConfig { device_answer: DeviceAnswer::DenyAfter(2), ..device_config() });
    let (device_code, _) = authorize_device(&issuer);
    assert_eq!(poll_device(&issuer, &device_code).json_str("error"), "authorization_pending");
    assert_eq!(poll_device(&issuer, &device_code).json_str("error"), "access_denied");
}

#[test]
fn polling_faster_than_the_interval_is_slow_down() {
    let issuer = start(IssuerConfig {
        device_enforced_interval: Some(Duration::from_millis(300)),
        ..device_config()
    });
    let (device_code, _) = authorize_device(&issuer);
    assert_eq!(poll_device(&issuer, &device_code).json_str("error"), "authorization_pending");
    assert_eq!(poll_device(&issuer, &device_code).json_str("error"), "slow_down");
    thread::sleep(Duration::from_millis(350));
    assert_eq!(poll_device(&issuer, &device_code).json_str("error"), "authorization_pending");
    assert_eq!(issuer.counters().device_slow_downs, 1);
}

#[test]
fn device_code_expires() {
    let issuer =
        start(IssuerConfig { device_code_lifetime: Duration::from_millis(200), ..device_config() });
    let response = post_form(&issuer, "/oauth/device_authorization", "client_id=demo");
    assert!(response.text().contains(r#""expires_in":1"#), "rounded up: {}", response.text());
    let device_code = response.json_str("device_code");
    let user_code = response.json_str("user_code");
    thread::sleep(Duration::from_millis(250));
    assert!(issuer.approve(&user_code));
    let expired = poll_device(&issuer, &device_code);
    assert_eq!((expired.status, expired.json_str("error")), (400, "expired_token".into()));
    assert_eq!(issuer.counters().device_expired, 1);
}

#[test]
fn device_endpoints_check_the_client() {
    let issuer = start(IssuerConfig { client_id: Some("demo".into()), ..device_config() });
    let refused = post_form(&issuer, "/oauth/device_authorization", "client_id=other");
    assert_eq!((refused.status, refused.json_str("error")), (401, "invalid_client".into()));
    let (device_code, _) = authorize_device(&issuer);
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={device_code}"
    );
    assert_eq!(post_form(&issuer, "/oauth/token", &body).status, 401);
    // Faults of the token endpoint apply to polls too.
    issuer.inject(Fault::ServiceUnavailable { times: 1 });
    assert_eq!(poll_device(&issuer, &device_code).status, 503);
    assert_eq!(poll_device(&issuer, &device_code).json_str("error"), "authorization_pending");
}

/// `quote_refused_token`: the refusal's description quotes the token, as Spring Security OAuth's
/// does (what the adapters' withholding is tested against).
#[test]
fn a_quoting_issuer_puts_the_refused_token_in_its_description() {
    let issuer = start(IssuerConfig { quote_refused_token: true, ..IssuerConfig::default() });
    let tokens = issuer.login();
    issuer.revoke_session();
    let body = format!("grant_type=refresh_token&refresh_token={}", tokens.refresh_token);
    let response = post_form(&issuer, "/oauth/token", &body);
    assert_eq!(response.status, 400);
    let expected =
        format!(r#""error_description":"Invalid refresh token: {}""#, tokens.refresh_token);
    assert!(response.text().contains(&expected), "{}", response.text());
    // Off by default.
    let plain = start(IssuerConfig::default());
    let response = post_form(&plain, "/oauth/token", "grant_type=refresh_token&refresh_token=x1");
    assert!(!response.text().contains("x1"), "{}", response.text());
}
