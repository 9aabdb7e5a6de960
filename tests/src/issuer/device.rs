//! The device authorization grant (RFC 8628) of the mock issuer: `POST
//! /oauth/device_authorization` hands out a device code and a user code, and the
//! `urn:ietf:params:oauth:grant-type:device_code` grant on `/oauth/token` answers
//! `authorization_pending` until the user code is approved (by [`super::MockIssuer::approve`] or
//! [`DeviceAnswer`]), `slow_down` to a poll that comes sooner than the enforced interval after
//! the previous one, `access_denied`, `expired_token`, or new tokens, once.

use core::time::Duration;
use std::collections::HashMap;
use std::time::Instant;

use super::state::State;
use super::{DeviceAnswer, IssuedTokens};

/// Characters of user codes: consonants only, so no word is spelled by accident and none is
/// mistaken for another (RFC 8628 §6.1).
const USER_CODE_CHARS: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Every device authorization issued, by device code and by user code.
#[derive(Default)]
pub(super) struct Devices {
    /// By device code.
    by_code: HashMap<String, DeviceRecord>,
    /// User code to device code.
    by_user_code: HashMap<String, String>,
}

/// What the issuer knows about one device authorization.
struct DeviceRecord {
    /// Shown to the user.
    user_code: String,
    /// The user's decision so far.
    status: DeviceStatus,
    /// Polls and errors are refused with `expired_token` from this instant on.
    expires_at: Instant,
    /// When the previous poll arrived, for `slow_down`.
    last_poll: Option<Instant>,
    /// Polls so far (the one being answered included), for [`DeviceAnswer`].
    polls: u32,
}

/// The user's decision on one device authorization.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DeviceStatus {
    /// Not answered yet.
    Pending,
    /// Approved; the next poll gets tokens.
    Approved,
    /// Denied; polls get `access_denied`.
    Denied,
    /// Tokens were issued; the device code is spent (`invalid_grant`).
    Redeemed,
}

/// What the issuer hands out at `/oauth/device_authorization`.
pub(super) struct Authorization {
    /// The device code (a secret of the client).
    pub(super) device_code: String,
    /// The user code.
    pub(super) user_code: String,
    /// The device code's lifetime.
    pub(super) expires_in: Duration,
    /// The interval advertised to the client.
    pub(super) interval: Duration,
}

/// The answer to a device-code poll.
pub(super) enum PollAnswer {
    /// Tokens for the client.
    Issued(IssuedTokens),
    /// An RFC 8628 §3.5 or RFC 6749 §5.2 error code.
    Error(&'static str),
}

impl State {
    /// Registers a new device authorization.
    pub(super) fn authorize_device(&mut self, now: Instant) -> Authorization {
        let n = self.device_rng_next();
        let device_code = format!("dc.{:016x}", n);
        let mut bits = self.device_rng_next();
        let mut user_code = String::with_capacity(9);
        for i in 0..8 {
            if i == 4 {
                user_code.push('-');
            }
            user_code.push(char::from(USER_CODE_CHARS[(bits % 20) as usize]));
            bits /= 20;
        }
        let lifetime = self.config.device_code_lifetime;
        let expires_at = now.checked_add(lifetime).unwrap_or(now + Duration::from_secs(1 << 32));
        let devices = &mut self.devices;
        devices.by_user_code.insert(user_code.clone(), device_code.clone());
        devices.by_code.insert(
            device_code.clone(),
            DeviceRecord {
                user_code: user_code.clone(),
                status: DeviceStatus::Pending,
                expires_at,
                last_poll: None,
                polls: 0,
            },
        );
        self.counters_mut().device_authorizations += 1;
        Authorization {
            device_code,
            user_code,
            expires_in: lifetime,
            interval: self.config.device_interval,
        }
    }

    /// Approves (`true`) or denies the authorization of `user_code`; false if there is no
    /// pending one.
    pub(super) fn decide_device(&mut self, user_code: &str, approve: bool) -> bool {
        let Some(code) = self.devices.by_user_code.get(user_code) else {
            return false;
        };
        match self.devices.by_code.get_mut(code) {
            Some(record) if record.status == DeviceStatus::Pending => {
                record.status = if approve { DeviceStatus::Approved } else { DeviceStatus::Denied };
                true
            }
            _ => false,
        }
    }

    /// The user codes still waiting for a decision, in no order.
    pub(super) fn pending_user_codes(&self) -> Vec<String> {
        let pending = self.devices.by_code.values().filter(|r| r.status == DeviceStatus::Pending);
        pending.map(|r| r.user_code.clone()).collect()
    }

    /// Answers a poll with `device_code` arriving at `now`.
    pub(super) fn poll_device(&mut self, device_code: &str, now: Instant) -> PollAnswer {
        self.counters_mut().device_polls += 1;
        let enforced = self.config.device_enforced_interval.unwrap_or(self.config.device_interval);
        let auto = self.config.device_answer;
        let Some(record) = self.devices.by_code.get_mut(device_code) else {
            return PollAnswer::Error("invalid_grant");
        };
        record.polls = record.polls.saturating_add(1);
        let too_soon = record.last_poll.is_some_and(|last| now.duration_since(last) < enforced);
        record.last_poll = Some(now);
        if record.status == DeviceStatus::Pending {
            record.status = match auto {
                DeviceAnswer::ApproveAfter(n) if record.polls >= n => DeviceStatus::Approved,
                DeviceAnswer::DenyAfter(n) if record.polls >= n => DeviceStatus::Denied,
                _ => DeviceStatus::Pending,
            };
        }
        let code = match record.status {
            DeviceStatus::Redeemed => "invalid_grant",
            _ if now >= record.expires_at => "expired_token",
            _ if too_soon => "slow_down",
            DeviceStatus::Pending => "authorization_pending",
            DeviceStatus::Denied => "access_denied",
            DeviceStatus::Approved => {
                record.status = DeviceStatus::Redeemed;
                ""
            }
        };
        let counters = self.counters_mut();
        match code {
            "expired_token" => counters.device_expired += 1,
            "slow_down" => counters.device_slow_downs += 1,
            "authorization_pending" => counters.device_pending += 1,
            "access_denied" => counters.device_denials += 1,
            "" => {
                counters.device_approvals += 1;
                counters.refresh_successes += 1;
                let lifetime = self.config.token_lifetime;
                return PollAnswer::Issued(self.login(lifetime));
            }
            _ => {}
        }
        PollAnswer::Error(code)
    }
}
