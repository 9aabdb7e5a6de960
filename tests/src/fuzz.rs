//! The bodies of the fuzz targets, as plain functions: `fuzz/` calls them from libFuzzer, and
//! `tests/tests/fuzz_corpus.rs` replays the committed corpus through them on stable Rust, so an
//! ordinary `cargo test` covers every input the fuzzers ever found interesting.
//!
//! Each function panics exactly when the code under test misbehaves on its input.

use reauth_core::expiry::{BodyCode, ExpiryRule};
use reauth_core::oauth::{classify_failure, parse_error_response, parse_retry_after};
use reauth_core::{
    Backoff, Config, Duration, Generation, Instant, RefreshFailure, RefreshId, RequestId, TokenSet,
    Verdict, oauth,
};

use crate::sim::Checked;

/// Any bytes into the token response, error response, `Retry-After` and body-code parsers.
///
/// Checks: no panic; a response that is applied leaves only visible-ASCII tokens of the new
/// generation; a response that is not applied leaves the old tokens whole.
pub fn token_response(data: &[u8]) {
    if let Ok(response) = oauth::parse_token_response(data) {
        let mut tokens = TokenSet::<64, 48>::new();
        let installed = tokens.install(Generation(1), "old-access", Some("old-refresh"));
        assert!(installed.is_ok());
        match response.apply(&mut tokens, Generation(2)) {
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
    let code = parse_error_response(data);
    let retry_after = parse_retry_after(data);
    let failure = classify_failure(400, data, retry_after);
    if code.is_none() {
        assert_eq!(failure, RefreshFailure::Refused, "a 400 without a known code is a refusal");
    }
    assert!(matches!(classify_failure(503, data, None), RefreshFailure::Transient { .. }));
    let classic = ExpiryRule {
        statuses: &[401],
        body_code: Some(BodyCode { field: "code", values: &[409] }),
    };
    let verdict = classic.verdict(200, Some(data));
    if verdict == Verdict::Expired {
        assert!(data.windows(3).any(|w| w == b"409"), "expired without a 409 in the body");
    }
}

/// Any bytes as a sequence of core inputs (see [`decode_step`]), driven through the
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
                let verdict = if b % 2 == 0 { Verdict::Expired } else { Verdict::Accepted };
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
                let failure = match b % 3 {
                    0 => RefreshFailure::Refused,
                    1 => RefreshFailure::Transient { retry_after: None },
                    _ => RefreshFailure::Transient {
                        retry_after: Some(Duration::from_millis(u64::from(a) * 7)),
                    },
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
        9 => match a % 3 {
            0 => w.core.restore(now),
            1 => w.core.logout(now),
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
