//! Reference firmware: `core_only` plus the device authorization grant of reauth-core
//! (`reauth_core::device`: both request bodies, the response parser, the field decoders and the
//! poller), driven with opaque inputs, to tell what a device login adds to the core's size.

#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use panic_halt as _;
use reauth_nal::reauth_core::device::{self, DevicePoller, PollOutcome};
use reauth_nal::reauth_core::expiry::ExpiryRule;
use reauth_nal::reauth_core::oauth::{
    RefreshParams, classify_failure, parse_token_response, write_refresh_body,
};
use reauth_nal::reauth_core::{
    Action, Admission, Config, Coordinator, Instant, RefreshFailure, RequestId, Token, TokenSet,
};

#[entry]
fn main() -> ! {
    let mut coordinator = Coordinator::<2>::new(black_box(Config::DEFAULT));
    let mut tokens = TokenSet::<256, 128>::new();
    let mut buf = [0u8; 512];
    let mut t = 0u64;
    let _ = tokens.restore(black_box("refresh"));
    coordinator.handle_restore(Instant::ZERO);
    // The device login: ask, show, poll until approved.
    let params = black_box(RefreshParams::default());
    black_box(device::write_authorization_body(&mut buf, &params).ok());
    let mut device_code = Token::<64>::new();
    let mut shown = [0u8; 48];
    let mut poller = None;
    if let Ok(auth) = device::parse_authorization_response(black_box(&buf[..])) {
        let _ = auth.device_code_into(&mut device_code);
        black_box(auth.user_code(&mut shown).ok());
        black_box(auth.verification_uri(&mut shown).ok());
        poller = Some(DevicePoller::new(Instant::ZERO, &auth));
    }
    while let Some(p) = poller.as_mut() {
        let now = Instant::from_millis(black_box(5_000));
        black_box(device::write_poll_body(&mut buf, device_code.expose(), &params).ok());
        let body = black_box(&buf[..]);
        match p.handle_answer(now, black_box(400), body) {
            PollOutcome::Approved(response) => {
                let generation = coordinator.generation().next();
                if response.apply(&mut tokens, generation).is_ok() {
                    coordinator.handle_login(now, response.expires_in());
                }
                break;
            }
            PollOutcome::Pending | PollOutcome::SlowDown | PollOutcome::Retry => {}
            _ => break,
        }
        black_box(p.poll_at());
    }
    loop {
        t = black_box(t + 1);
        let now = Instant::from_millis(t);
        let id = RequestId(black_box(t as u32));
        if let Ok(Admission::Send(ticket)) = coordinator.handle_request(now, id) {
            let verdict = black_box(ExpiryRule::STATUS_401).verdict(black_box(401), None);
            let _ = black_box(coordinator.handle_response(now, ticket, verdict));
        }
        while let Some(action) = coordinator.poll_action() {
            if let Action::Refresh(rid) = action {
                let token = tokens.refresh().unwrap_or_default();
                black_box(write_refresh_body(&mut buf, token, &RefreshParams::default()).ok());
                let body = black_box(&buf[..]);
                match parse_token_response(body) {
                    Ok(response) => {
                        let generation = coordinator.generation().next();
                        if response.apply(&mut tokens, generation).is_ok() {
                            let _ =
                                coordinator.handle_refresh_success(now, rid, response.expires_in());
                        }
                    }
                    Err(_) => {
                        let failure: RefreshFailure = classify_failure(black_box(503), body, None);
                        let _ = coordinator.handle_refresh_failure(now, rid, failure);
                    }
                }
            } else {
                let _ = black_box(action);
            }
        }
        coordinator.handle_timeout(now);
        black_box(coordinator.poll_timeout());
        cortex_m::asm::wfi();
    }
}
