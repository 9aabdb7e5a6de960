//! The bodies of the fuzz targets, as plain functions: `fuzz/` calls them from libFuzzer, and
//! `tests/tests/fuzz_corpus.rs` replays the committed corpus through them on stable Rust, so an
//! ordinary `cargo test` covers every input the fuzzers ever found interesting.
//!
//! Each function panics exactly when the code under test misbehaves on its input.
//!
//! - [`token_response`]: the OAuth2 token and error response parsers (reauth-core);
//! - [`coordinator`]: the state machine, with every spec invariant (reauth-core);
//! - [`http_response`]: reauth-nal's HTTP/1.1 response reader, fed in pieces;
//! - [`device()`]: the device authorization response parser and the device poller (reauth-core).

use reauth_core::device::{self, DevicePoller};
use reauth_core::expiry::{BodyCode, ExpiryRule};
use reauth_core::oauth::{classify_failure, parse_error_response, parse_retry_after};
use reauth_core::{
    Backoff, Config, Duration, Generation, Instant, RefreshFailure, RefreshId, RequestId, Token,
    TokenSet, Verdict, oauth,
};

use reauth_nal::HttpError;
use reauth_nal::fuzzing::{ReadError, Reader};

use crate::sim::Checked;

/// Any bytes into the device authorization response parser, its field decoders, and the
/// device poller (RFC 8628).
///
/// The input is parsed as a device authorization response; its first 16 bytes are also a script
/// of polls (time step, status, which body: the input itself or a known answer), answered to a
/// poller. Checks: no panic; decoded fields are visible ASCII and fit their buffer, a failed
/// device code leaves its buffer empty; the interval never shrinks; a non-final outcome
/// schedules the next poll no earlier than the answer (or the expiry, if sooner) and never after
/// the expiry; a final one ends polling, and nothing changes after it.
pub fn device(data: &[u8]) {
    if let Ok(auth) = device::parse_authorization_response(data) {
        let mut buf = [0u8; 24];
        let visible = |text: &str| text.bytes().all(|b| (0x20..=0x7E).contains(&b));
        if let Ok(text) = auth.user_code(&mut buf) {
            assert!(visible(text) && !text.is_empty() && text.len() <= 24, "{text:?}");
        }
        if let Ok(text) = auth.verification_uri(&mut buf) {
            assert!(visible(text) && !text.is_empty() && text.len() <= 24, "{text:?}");
        }
        if let Some(Ok(text)) = auth.verification_uri_complete(&mut buf) {
            assert!(visible(text) && !text.is_empty() && text.len() <= 24, "{text:?}");
        }
        let mut code = Token::<24>::new();
        match auth.device_code_into(&mut code) {
            Ok(()) => assert!(visible(code.expose()) && !code.is_empty()),
            Err(_) => assert!(code.is_empty()),
        }
        let poller = DevicePoller::new(Instant::from_millis(7), &auth);
        assert_eq!(poller.expires_at(), Instant::from_millis(7) + auth.expires_in());
    }
    let bodies: [&[u8]; 6] = [
        data,
        br#"{"error":"authorization_pending"}"#,
        br#"{"error":"slow_down"}"#,
        br#"{"error":"access_denied"}"#,
        br#"{"error":"expired_token"}"#,
        br#"{"access_token":"a","token_type":"Bearer","refresh_token":"r"}"#,
    ];
    const STATUSES: [u16; 8] = [200, 400, 401, 429, 500, 503, 0, u16::MAX];
    let start = Instant::from_millis(10_000);
    let mut poller =
        DevicePoller::with_timing(start, Duration::from_secs(5), Duration::from_secs(60));
    let mut now = start;
    for step in data.get(..16).unwrap_or(data).chunks_exact(2) {
        let [time, pick] = [step[0], step[1]];
        now = match time {
            255 => now - Duration::from_secs(3),
            t => now + Duration::from_millis(u64::from(t) * 250),
        };
        let before = poller;
        let status = STATUSES[usize::from(pick & 7)];
        let body = bodies[usize::from(pick >> 3) % bodies.len()];
        let outcome = if pick >> 6 == 3 {
            format!("{:?}", poller.handle_transport_error(now))
        } else {
            format!("{:?}", poller.handle_answer(now, status, body))
        };
        if before.is_finished() {
            assert_eq!(poller, before, "{outcome}");
            continue;
        }
        assert!(poller.interval() >= before.interval(), "{outcome}");
        match poller.poll_at() {
            Some(at) => {
                assert!(!poller.is_finished());
                assert!(at <= poller.expires_at(), "{outcome}");
                assert!(at >= now.min(poller.expires_at()), "{outcome}");
            }
            None => assert!(poller.is_finished(), "{outcome}"),
        }
    }
}

/// Any bytes into the token response, error response, `Retry-After` and body-code parsers.
///
/// Checks: no panic; a response that is applied leaves only visible-ASCII tokens of the new
/// generation; a response that is not applied leaves the old tokens whole; validation agrees
/// with applying, and a validated response lends exactly the refresh token it then installs;
/// an error description is bounded printable ASCII; the JSON parsers are strict about the end
/// of the document (whitespace after it changes nothing, text after it makes it unusable).
pub fn token_response(data: &[u8]) {
    check_document_end(data);
    if let Ok(response) = oauth::parse_token_response(data) {
        let mut tokens = TokenSet::<64, 48>::new();
        let installed = tokens.install(Generation(1), "old-access", Some("old-refresh"));
        assert!(installed.is_ok());
        let valid = response.validate::<64, 48>();
        let mut lent = [0u8; 48];
        let lent = valid.as_ref().ok().and_then(|v| v.write_refresh_token(&mut lent));
        let lent = lent.map(String::from);
        let applied = response.apply(&mut tokens, Generation(2));
        assert_eq!(valid.is_ok(), applied.is_ok(), "validate agrees with apply");
        if let Some(lent) = &lent {
            assert_eq!(
                tokens.refresh(),
                Some(lent.as_str()),
                "the lent token is the one installed"
            );
        }
        match applied {
            Ok(()) => {
                assert_eq!(tokens.generation(), Generation(2));
                let access = tokens.access().unwrap_or_default();
                let refresh = tokens.refresh().unwrap_or_default();
                assert!(!access.is_empty() && !refresh.is_empty());
                for token in [access, refresh] {
                    assert!(token.bytes().all(|b| (0x20..=0x7E).contains(&b)), "{token:?}");
                }
                if !response.has_refresh_token() {
                    assert_eq!(refresh, "old-refresh");
                }
            }
            Err(_) => {
                assert_eq!(tokens.generation(), Generation(1));
                assert_eq!(tokens.access(), Some("old-access"));
                assert_eq!(tokens.refresh(), Some("old-refresh"));
            }
        }
    }
    let mut described = [0u8; 32];
    let len = oauth::write_error_description(data, "old-refresh", &mut described);
    assert!(len <= described.len());
    assert!(described[..len].iter().all(|&b| (0x20..=0x7E).contains(&b) && b != b'"'));
    // The presented refresh token never shows through the server's description.
    let shown = &described[..len];
    assert!(!shown.windows(11).any(|w| w == b"old-refresh"), "the refresh token was quoted");
    let code = parse_error_response(data);
    let retry_after = parse_retry_after(data);
    let failure = classify_failure(400, data, retry_after);
    if code.is_none() {
        assert_eq!(failure, RefreshFailure::Refused, "a 400 without a known code is a refusal");
    }
    assert!(matches!(classify_failure(503, data, None), RefreshFailure::Transient { .. }));
    let classic = ExpiryRule::STATUS_401.body_code(BodyCode { field: "code", values: &[409] });
    let verdict = classic.verdict(200, Some(data));
    if verdict == Verdict::Expired {
        assert!(data.windows(3).any(|w| w == b"409"), "expired without a 409 in the body");
    }
}

/// Whitespace after a body changes no parser's answer; any other byte after it leaves nothing
/// usable.
fn check_document_end(data: &[u8]) {
    let token = |body: &[u8]| {
        oauth::parse_token_response(body).map(|r| (r.expires_in(), r.has_refresh_token()))
    };
    let classic = BodyCode { field: "code", values: &[409] };
    let mut padded = data.to_vec();
    padded.extend_from_slice(b" \r\n\t");
    assert_eq!(token(&padded), token(data), "trailing whitespace changed the token response");
    assert_eq!(parse_error_response(&padded), parse_error_response(data));
    assert_eq!(classic.matches(&padded), classic.matches(data));
    padded.push(b'x');
    assert!(token(&padded).is_err(), "trailing text accepted");
    assert_eq!(parse_error_response(&padded), None, "trailing text accepted");
    assert!(!classic.matches(&padded), "trailing text accepted");
}

/// Any bytes as a sequence of core inputs (see `decode_step`), driven through the
/// invariant-checking harness. At the end, time jumps past every deadline: every parked request
/// must then have been released exactly once.
pub fn coordinator(data: &[u8]) {
    let config = Config {
        refresh_ahead: Duration::from_millis(u64::from(data.first().copied().unwrap_or(0)) * 10),
        expiry_margin: Duration::from_millis(100),
        refresh_timeout: Duration::from_millis(500),
        wait_timeout: Duration::from_millis(900),
        replay_limit: data.get(1).map_or(1, |b| b % 3),
        max_refresh_attempts: data.get(2).map_or(3, |b| b % 5),
        // The same byte, so that the seeds keep their meaning: both limits vary independently.
        max_unanswered: data.get(2).map_or(3, |b| b / 5 % 5),
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            seed: 42,
        },
    };
    let mut world = World {
        core: Checked::<4>::new(config),
        tickets: Vec::new(),
        refreshes: Vec::new(),
        next: 1,
    };
    for chunk in data.get(3..).unwrap_or_default().chunks(3) {
        decode_step(&mut world, chunk);
    }
    world.core.timeout(Instant::MAX);
    assert!(world.core.parked().is_empty(), "parked requests left unresolved");
}

/// Bytes before the response in an [`http_response`] input: the buffer size (two bytes), the
/// flags and the count of delivery sizes (one byte), then up to 15 delivery sizes.
const HTTP_CONFIG_LEN: usize = 3;

/// Any bytes, delivered in pieces of any size, into reauth-nal's HTTP response reader.
///
/// The input is `[cap_lo, cap_hi, flags, sizes..., wire...]`: the response buffer holds
/// `1 + u16::from_le_bytes([cap_lo, cap_hi]) % 2048` bytes; bit 7 of `flags` marks the request as
/// a `HEAD`; its low 4 bits count the delivery sizes that follow, which are used in turn
/// (0: as much as fits); the rest is the byte stream, after which the peer closes. Build one
/// with [`http_response_input`].
///
/// Checks, besides no panic:
/// - the outcome does not depend on how the stream is split (the same stream read in the
///   largest pieces that fit gives the same response or the same error);
/// - a bounded buffer changes nothing but turning a response into `TooLarge` (the same stream
///   read into a buffer larger than itself gives the same response or error, unless a declared
///   length makes that `TooLarge` too);
/// - `Retry-After` reads as the delay-seconds of the final head's first such header;
/// - a response's head and body lie inside the buffer, and the body is what the wire says
///   after the final head: the declared `Content-Length` bytes exactly, the chunks decoded by an
///   independent decoder, the rest of the stream for a close-delimited body, nothing for
///   `HEAD`, 204 and 304.
pub fn http_response(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let cap = 1 + usize::from(u16::from_le_bytes([byte(0), byte(1)])) % 2048;
    let head_request = byte(2) & 0x80 != 0;
    let sizes_end = (HTTP_CONFIG_LEN + usize::from(byte(2) & 0x0F)).min(data.len());
    let sizes = data.get(HTTP_CONFIG_LEN..sizes_end).unwrap_or_default();
    let wire = data.get(sizes_end..).unwrap_or_default();

    let read = read_response(wire, cap, head_request, sizes);
    let whole = read_response(wire, cap, head_request, &[]);
    assert_eq!(read, whole, "the outcome depends on how the stream is split");
    // Larger than the stream, so that only a declared length can make it `TooLarge`; a
    // response that fits `cap` fits it too.
    let larger = read_response(wire, cap.max(wire.len() + 1), head_request, sizes);
    if read != Err(ReadError::TooLarge) {
        assert_eq!(read, larger, "the outcome depends on the buffer size ({cap} bytes)");
    }
    if let Ok(read) = &read {
        assert_eq!(read.body_at, read.head_len, "the body does not start right after the head");
        assert!(read.body_at + read.body.len() <= cap, "the body runs past the buffer");
        check_body(wire, head_request, read);
    }
}

/// An [`http_response`] input: `wire` read into a `cap`-byte buffer (1 to 2048) in pieces of
/// the given `sizes` (at most 15 are used; 0 is "as much as fits").
#[must_use]
pub fn http_response_input(cap: usize, head_request: bool, sizes: &[u8], wire: &[u8]) -> Vec<u8> {
    let sizes = sizes.get(..15).unwrap_or(sizes);
    let cap = u16::try_from(cap.clamp(1, 2048) - 1).unwrap_or(0);
    let count = u8::try_from(sizes.len()).unwrap_or(0);
    let mut data = Vec::with_capacity(HTTP_CONFIG_LEN + sizes.len() + wire.len());
    data.extend_from_slice(&cap.to_le_bytes());
    data.push(count | if head_request { 0x80 } else { 0 });
    data.extend_from_slice(sizes);
    data.extend_from_slice(wire);
    data
}

/// What a correct reader makes of a response read completely: its status and body, or an
/// error.
pub type HttpOutcome<B> = Result<(u16, B), ReadError>;

/// Reads `wire` into a `cap`-byte buffer the way an exchange does, in the largest pieces that
/// fit, and returns the status and body (or the error).
pub fn read_http_response(wire: &[u8], cap: usize, head_request: bool) -> HttpOutcome<Vec<u8>> {
    read_response(wire, cap, head_request, &[]).map(|read| (read.status, read.body))
}

/// One seed response: a name (its corpus files are `seed-<name>...`), the bytes on the wire, and
/// what a correct reader makes of them in a 2048-byte buffer.
pub type HttpSeed = (&'static str, &'static [u8], HttpOutcome<&'static [u8]>);

/// Real responses and near misses for the [`http_response`] seed corpus and the corpus test.
pub const HTTP_RESPONSE_SEEDS: &[HttpSeed] = &[
    (
        "content-length",
        b"HTTP/1.1 200 OK\r\nServer: reauth-mock-issuer\r\nContent-Type: application/json\r\n\
          Content-Length: 17\r\nConnection: close\r\n\r\n{\"path\":\"/api/x\"}",
        Ok((200, b"{\"path\":\"/api/x\"}")),
    ),
    (
        "token-response",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n\
          Content-Length: 98\r\n\r\n{\"access_token\":\"at-1\",\"token_type\":\"Bearer\",\
          \"expires_in\":60,\"refresh_token\":\"rt-1\",\"scope\":\"api\"}",
        Ok((
            200,
            b"{\"access_token\":\"at-1\",\"token_type\":\"Bearer\",\"expires_in\":60,\
              \"refresh_token\":\"rt-1\",\"scope\":\"api\"}",
        )),
    ),
    (
        "unauthorized",
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\n\
          Content-Type: application/json\r\nContent-Length: 25\r\n\r\n\
          {\"error\":\"invalid_token\"}",
        Ok((401, b"{\"error\":\"invalid_token\"}")),
    ),
    (
        "retry-after",
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
        Ok((429, b"")),
    ),
    (
        "chunked-extensions-trailers",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
          4;name=value\r\nRust\r\n6;a;b=\"q\"\r\n is ok\r\n0;last\r\nX-Checksum: 1\r\n\
          X-More: 2\r\n\r\n",
        Ok((200, b"Rust is ok")),
    ),
    (
        "chunked-over-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
          A\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n",
        Ok((200, b"0123456789!")),
    ),
    (
        "chunked-code-409",
        b"HTTP/1.1 200 OK\r\nServer: reauth-mock-issuer\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n14\r\n{\"code\":409,\"message\r\n\
          12\r\n\":\"token expired\"}\r\n0\r\n\r\n",
        Ok((200, b"{\"code\":409,\"message\":\"token expired\"}")),
    ),
    (
        "close-delimited",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body runs until the peer closes",
        Ok((200, b"the body runs until the peer closes")),
    ),
    ("no-content", b"HTTP/1.1 204 No Content\r\nContent-Length: 12\r\n\r\n", Ok((204, b""))),
    (
        "not-modified",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nTransfer-Encoding: chunked\r\n\r\n",
        Ok((304, b"")),
    ),
    (
        "interim-responses",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Ok((200, b"ok")),
    ),
    (
        "extra-bytes-after-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n",
        Ok((200, b"abc")),
    ),
    ("bare-lf-head", b"HTTP/1.1 200 OK\nContent-Length: 4\nX-Lf: 1\n\nbare", Ok((200, b"bare"))),
    (
        "truncated-body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        Err(ReadError::Truncated),
    ),
    ("truncated-head", b"HTTP/1.1 200 OK\r\nContent-", Err(ReadError::Truncated)),
    (
        "truncated-chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        Err(ReadError::Truncated),
    ),
    (
        "oversized-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
        Err(ReadError::TooLarge),
    ),
    (
        "oversized-chunk",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
        Err(ReadError::TooLarge),
    ),
    (
        "chunk-size-overflow",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
        Err(ReadError::Http(HttpError::InvalidChunk)),
    ),
    ("bad-status", b"HTTP/1.1 2x0 OK\r\n\r\n", Err(ReadError::Http(HttpError::InvalidHead))),
    (
        "bad-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        Err(ReadError::Http(HttpError::InvalidContentLength)),
    ),
    (
        "conflicting-content-lengths",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        Err(ReadError::Http(HttpError::InvalidContentLength)),
    ),
    (
        "unsupported-transfer-encoding",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        Err(ReadError::Http(HttpError::UnsupportedTransferEncoding)),
    ),
    (
        "bad-chunk-end",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY0\r\n\r\n",
        Err(ReadError::Http(HttpError::InvalidChunk)),
    ),
    ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n", Err(ReadError::Http(HttpError::InvalidHead))),
];

/// The state a coordinator fuzz run keeps beside the core: what is on the wire.
struct World {
    core: Checked<4>,
    tickets: Vec<reauth_core::Ticket>,
    refreshes: Vec<RefreshId>,
    next: u32,
}

/// One input from up to three bytes: an opcode and two arguments.
fn decode_step(w: &mut World, chunk: &[u8]) {
    let op = chunk.first().copied().unwrap_or(0);
    let a = chunk.get(1).copied().unwrap_or(0);
    let b = chunk.get(2).copied().unwrap_or(0);
    let now = w.core.coordinator().now();
    let lifetime = (b % 4 != 0).then(|| Duration::from_millis(u64::from(a) * 20));
    let pick = |len: usize| (len > 0).then(|| usize::from(a) % len);
    match op % 12 {
        0 | 1 => {
            let id = RequestId(w.next);
            w.next += 1;
            if let Ok(reauth_core::Admission::Send(t)) = w.core.request(now, id) {
                w.tickets.push(t);
            }
        }
        2 | 3 => {
            if let Some(i) = pick(w.tickets.len()) {
                let ticket = w.tickets.swap_remove(i);
                let verdict = match b % 3 {
                    0 => Verdict::Expired,
                    1 => Verdict::Accepted,
                    _ => Verdict::Forbidden,
                };
                if let reauth_core::Outcome::Replay(t) = w.core.response(now, ticket, verdict) {
                    w.tickets.push(t);
                }
            }
        }
        4 => {
            if let Some(i) = pick(w.refreshes.len()) {
                let _ = w.core.refresh_success(now, w.refreshes[i], lifetime);
            }
        }
        5 => {
            if let Some(i) = pick(w.refreshes.len()) {
                let failure = match b % 4 {
                    0 => RefreshFailure::Refused,
                    1 => RefreshFailure::Transient { retry_after: None },
                    2 => RefreshFailure::Transient {
                        retry_after: Some(Duration::from_millis(u64::from(a) * 7)),
                    },
                    _ => RefreshFailure::Lost,
                };
                let _ = w.core.refresh_failure(now, w.refreshes[i], failure);
            }
        }
        6 => w.core.timeout(now + Duration::from_millis(u64::from(a) * u64::from(b))),
        7 => w.core.timeout(match a % 3 {
            0 => Instant::from_millis(u64::from(b)),
            1 => Instant::MAX - Duration::from_millis(u64::from(b)),
            _ => now - Duration::from_millis(u64::from(a) * 100),
        }),
        8 => {
            w.core.login(now, lifetime);
        }
        9 => match a % 4 {
            0 => w.core.restore(now),
            1 => w.core.logout(now),
            2 => {
                w.core.adopt(now, lifetime);
            }
            _ => {
                let id = RequestId(u32::from(b) % w.next.max(1));
                let _ = w.core.request(now, id);
            }
        },
        10 => {
            let parked: Vec<RequestId> = w.core.parked().iter().copied().collect();
            if let Some(i) = pick(parked.len()) {
                w.core.cancel(now, parked[i]);
            }
        }
        _ => {
            // A result for a refresh id that was never handed out must be refused harmlessly.
            let bogus = RefreshId(u32::from(a) << 8 | u32::from(b));
            if !w.refreshes.contains(&bogus) {
                let _ = w.core.refresh_success(now, bogus, lifetime);
            }
        }
    }
    for action in w.core.take_actions() {
        match action {
            reauth_core::Action::Refresh(id) => w.refreshes.push(id),
            reauth_core::Action::Send(t) => w.tickets.push(t),
            reauth_core::Action::Reject(_) => {}
        }
    }
}

/// A response as an [`http_response`] run read it.
#[derive(Debug, PartialEq, Eq)]
struct ReadResponse {
    status: u16,
    /// Where the body starts in the buffer: the length of the final head.
    head_len: usize,
    /// Offset of the body in the buffer.
    body_at: usize,
    body: Vec<u8>,
    /// `Retry-After` as the adapters read it (`reauth_nal::codec::retry_after`).
    retry_after: Option<Duration>,
}

/// Drives a [`Reader`] the way an exchange does: `wire` delivered in pieces of `sizes` (used in
/// turn, 0 or none for as much as fits), then the end of the stream.
fn read_response(
    wire: &[u8],
    cap: usize,
    head_request: bool,
    sizes: &[u8],
) -> Result<ReadResponse, ReadError> {
    let mut buf = vec![0u8; cap];
    let mut reader = Reader::new(head_request);
    let mut sizes = sizes.iter().copied().cycle();
    let mut at = 0;
    loop {
        let spare = reader.spare(&mut buf);
        let rest = wire.get(at..).unwrap_or_default();
        if rest.is_empty() {
            reader.on_eof()?;
            break;
        }
        if spare.is_empty() {
            // The exchange's one-byte look-ahead: more data means the body does not fit.
            return Err(ReadError::TooLarge);
        }
        let size = sizes.next().filter(|&s| s > 0).map_or(usize::MAX, usize::from);
        let n = size.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        at += n;
        if reader.on_data(&mut buf, n)? {
            break;
        }
    }
    let Some(response) = reader.response(&buf) else {
        panic!("the reader reported a complete response but has none");
    };
    let body = response.body();
    // The body is a slice of `buf`: its offset is the distance between the two pointers.
    let body_at = body.as_ptr() as usize - buf.as_ptr() as usize;
    let head_len = head_length(&buf).unwrap_or(body_at);
    let retry_after = reauth_nal::codec::retry_after(&response);
    Ok(ReadResponse {
        status: response.status(),
        head_len,
        body_at,
        body: body.to_vec(),
        retry_after,
    })
}

/// Checks a response against the wire, read by independent means: httparse for the heads, the
/// framing rules of RFC 9112 §6.3, and a plain chunked decoder.
fn check_body(wire: &[u8], head_request: bool, read: &ReadResponse) {
    // Interim (1xx) responses come first and are skipped.
    let mut at = 0;
    let (status, head_len) = loop {
        let rest = wire.get(at..).unwrap_or_default();
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = response.parse(rest) else {
            panic!("the reader accepted a head that httparse does not");
        };
        let status = response.code.unwrap_or(0);
        if !(100..200).contains(&status) {
            break (status, len);
        }
        at += len;
    };
    assert_eq!((read.status, read.head_len), (status, head_len), "not the final head");
    let head = &wire[at..at + head_len];
    let after = &wire[at + head_len..];
    let header = |name: &str| header_values(head, name);
    // Delay-seconds only (RFC 9110 §10.2.3): digits, no sign; an HTTP date is not understood.
    let retry_after = header("retry-after").first().and_then(|v| {
        let v = v.trim_ascii();
        let digits = !v.is_empty() && v.iter().all(u8::is_ascii_digit);
        digits.then(|| core::str::from_utf8(v).ok()?.parse::<u64>().ok()).flatten()
    });
    assert_eq!(read.retry_after, retry_after.map(Duration::from_secs), "Retry-After");
    let chunked = header("transfer-encoding").last().is_some_and(|v| {
        let last = v.rsplit(|&b| b == b',').next().unwrap_or_default();
        last.trim_ascii().eq_ignore_ascii_case(b"chunked")
    });
    let expected: &[u8] = if head_request || matches!(status, 204 | 304) {
        &[]
    } else if chunked {
        let Some(decoded) = dechunk(after) else {
            panic!("the reader decoded a chunked body that a plain decoder rejects");
        };
        assert_eq!(read.body, decoded, "chunked body");
        return;
    } else if let Some(length) = header("content-length").first() {
        let Some(length) =
            core::str::from_utf8(length.trim_ascii()).ok().and_then(|s| s.parse::<usize>().ok())
        else {
            panic!("the reader accepted Content-Length {length:?}");
        };
        assert_eq!(read.body.len(), length, "the body is not the declared length");
        after.get(..length).unwrap_or_else(|| panic!("a body longer than the stream"))
    } else {
        after
    };
    assert_eq!(read.body, expected, "body");
}

/// The length of the head at the start of `buf`, from httparse.
fn head_length(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    match httparse::Response::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(len)) => Some(len),
        _ => None,
    }
}

/// The values of every header called `name` (any case) in a complete head.
fn header_values<'h>(head: &'h [u8], name: &str) -> Vec<&'h [u8]> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    if response.parse(head).is_err() {
        return Vec::new();
    }
    response.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value).collect()
}

/// A plain chunked decoder over a complete body: `None` if it is malformed or incomplete.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let httparse::Status::Complete((used, size)) = httparse::parse_chunk_size(raw).ok()? else {
            return None;
        };
        raw = raw.get(used..)?;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).ok()?;
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size..)?.strip_prefix(b"\r\n")?;
    }
    // Trailer fields, then an empty line.
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n")?;
        raw = raw.get(end + 2..)?;
        if end == 0 {
            return Some(body);
        }
    }
}
