//! The issuer's shared state: issued tokens, the fault queue, the counters and the PRNGs. Every
//! connection thread works on it under one mutex; nothing in here blocks or panics, so the lock is
//! held only for bookkeeping.

use core::cmp;
use core::time::Duration;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::assertion::SeenAssertions;
use super::authorize::Authorizations;
use super::device::Devices;
use super::{Counters, Fault, IssuedTokens, IssuerConfig};

/// Mutable issuer state, behind [`super::http::Shared`]'s mutex.
pub(super) struct State {
    /// The configuration, including the knobs changed at runtime.
    pub(super) config: IssuerConfig,
    /// Draws latency jitter; seeded from [`IssuerConfig::seed`] so runs can be replayed.
    jitter_rng: SplitMix64,
    /// Draws the random part of tokens; mixed with the port so that two issuers in one process
    /// never hand out the same token (a token leaked to the other must not be accepted there).
    token_rng: SplitMix64,
    /// Generation of the most recently issued access token; 0 before the first.
    generation: u32,
    /// Id of the most recent login session; refresh tokens of one session share it.
    session: u64,
    /// Every access token issued, by value.
    access: HashMap<String, AccessRecord>,
    /// Every refresh token issued, by value.
    refresh: HashMap<String, RefreshRecord>,
    /// Faults still to serve, front first; every entry has `times > 0`.
    faults: VecDeque<Fault>,
    /// Counters, except the two derived from per-token records.
    counters: Counters,
    /// Device authorizations (RFC 8628), see [`super::device`].
    pub(super) devices: Devices,
    /// Authorization codes (RFC 6749 §4.1 with PKCE), see [`super::authorize`].
    pub(super) authorizations: Authorizations,
    /// The `jti`s of accepted client assertions, see [`super::assertion`].
    pub(super) assertions: SeenAssertions,
}

/// What the issuer knows about one access token.
struct AccessRecord {
    /// The token's generation.
    generation: u32,
    /// The token is refused from this instant on.
    expires_at: Instant,
    /// Already counted in [`Counters::expiry_episodes`].
    expiry_reported: bool,
    /// Refresh calls that presented the refresh token issued together with this token.
    refresh_calls: u64,
    /// Revoked by a refresh of its session ([`IssuerConfig::revoke_access_on_refresh`]).
    revoked: bool,
}

/// What the issuer knows about one refresh token.
struct RefreshRecord {
    /// The access token most recently issued together with this refresh token (without rotation
    /// one refresh token accompanies several access tokens in turn).
    access_token: String,
    /// The login session the token belongs to, for `revoke_on_reuse`.
    session: u64,
    /// Whether the token may still be used.
    status: RefreshStatus,
    /// When it was consumed by a rotation, for [`IssuerConfig::reuse_grace`].
    consumed_at: Option<Instant>,
}

/// Life cycle of a refresh token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshStatus {
    /// Usable.
    Live,
    /// Used once under rotation; another use is a reuse.
    Consumed,
    /// Invalidated by [`State::revoke_all`] or by `revoke_on_reuse`.
    Revoked,
}

/// Result of presenting a refresh token.
pub(super) enum GrantOutcome {
    /// New tokens were issued.
    Issued(IssuedTokens),
    /// The token was already consumed (counted in [`Counters::reuse_attempts`]).
    Reused,
    /// The token was revoked.
    Revoked,
    /// The issuer never issued this token.
    Unknown,
}

/// How an `/api` request's bearer token was judged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum AccessCheck {
    /// Known and unexpired; carries its generation.
    Valid(u32),
    /// Known, unexpired, but revoked by a later refresh of its session; carries its generation.
    Revoked(u32),
    /// Known but expired; carries its generation.
    Expired(u32),
    /// Not a token this issuer issued.
    Unknown,
    /// No bearer token in the request.
    Missing,
}

impl State {
    /// A fresh state; `port` only diversifies the token PRNG.
    pub(super) fn new(config: IssuerConfig, port: u16) -> Self {
        let token_seed = config.seed ^ (u64::from(port) << 48) ^ instance_salt();
        Self {
            jitter_rng: SplitMix64(config.seed),
            token_rng: SplitMix64(token_seed),
            config,
            generation: 0,
            session: 0,
            access: HashMap::new(),
            refresh: HashMap::new(),
            faults: VecDeque::new(),
            counters: Counters::default(),
            devices: Devices::default(),
            authorizations: Authorizations::default(),
            assertions: SeenAssertions::default(),
        }
    }

    /// Starts a new session whose first access token lives for `lifetime`.
    pub(super) fn login(&mut self, lifetime: Duration) -> IssuedTokens {
        self.session += 1;
        let session = self.session;
        self.issue(session, None, lifetime, 0)
    }

    /// Presents a refresh token to the grant. `pad_to` pads the new access token to that many
    /// bytes (for [`Fault::OversizedToken`]); 0 means no padding.
    pub(super) fn refresh(&mut self, presented: &str, now: Instant, pad_to: usize) -> GrantOutcome {
        let Some(record) = self.refresh.get(presented) else {
            return GrantOutcome::Unknown;
        };
        let (status, session, paired) =
            (record.status, record.session, record.access_token.clone());
        let in_grace = record
            .consumed_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.config.reuse_grace);
        if let Some(access) = self.access.get_mut(&paired) {
            access.refresh_calls += 1;
            self.counters.refreshes_per_access_token_max =
                cmp::max(self.counters.refreshes_per_access_token_max, access.refresh_calls);
        }
        match status {
            RefreshStatus::Revoked => GrantOutcome::Revoked,
            RefreshStatus::Consumed if in_grace => {
                self.counters.grace_reuses += 1;
                self.counters.refresh_successes += 1;
                let lifetime = self.config.token_lifetime;
                GrantOutcome::Issued(self.issue_at(session, None, lifetime, pad_to, now))
            }
            RefreshStatus::Consumed => {
                self.counters.reuse_attempts += 1;
                if self.config.revoke_on_reuse {
                    self.refresh
                        .values_mut()
                        .filter(|r| r.session == session)
                        .for_each(|r| r.status = RefreshStatus::Revoked);
                }
                GrantOutcome::Reused
            }
            RefreshStatus::Live => {
                let keep = if self.config.rotation {
                    if let Some(record) = self.refresh.get_mut(presented) {
                        record.status = RefreshStatus::Consumed;
                        record.consumed_at = Some(now);
                    }
                    None
                } else {
                    Some(presented)
                };
                let lifetime = self.config.token_lifetime;
                let tokens = self.issue_at(session, keep, lifetime, pad_to, now);
                self.counters.refresh_successes += 1;
                if self.config.revoke_access_on_refresh
                    && let Some(old) = self.access.get_mut(&paired)
                {
                    old.revoked = true;
                }
                GrantOutcome::Issued(tokens)
            }
        }
    }

    /// Judges the bearer token of an `/api` request and counts the verdict.
    pub(super) fn check_access(&mut self, token: Option<&str>, now: Instant) -> AccessCheck {
        let Some(token) = token else {
            return AccessCheck::Missing;
        };
        let Some(record) = self.access.get_mut(token) else {
            return AccessCheck::Unknown;
        };
        if now < record.expires_at {
            if record.revoked {
                return AccessCheck::Revoked(record.generation);
            }
            return AccessCheck::Valid(record.generation);
        }
        if !record.expiry_reported {
            record.expiry_reported = true;
            self.counters.expiry_episodes += 1;
        }
        AccessCheck::Expired(record.generation)
    }

    /// Counts an `/api` answer: `ok` for 200 with a valid token, otherwise "unauthorized".
    pub(super) fn count_api(&mut self, check: AccessCheck) {
        let (generation, ok) = match check {
            AccessCheck::Valid(generation) => (generation, true),
            AccessCheck::Expired(generation) | AccessCheck::Revoked(generation) => {
                (generation, false)
            }
            AccessCheck::Unknown | AccessCheck::Missing => (0, false),
        };
        let (total, by_generation) = if ok {
            (&mut self.counters.api_ok, &mut self.counters.ok_by_generation)
        } else {
            (&mut self.counters.api_unauthorized, &mut self.counters.unauthorized_by_generation)
        };
        *total += 1;
        *by_generation.entry(generation).or_insert(0) += 1;
    }

    /// Mutable access to the plain counters, for the router.
    pub(super) const fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// A snapshot of the counters.
    pub(super) fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Clears the counters and the per-token bookkeeping behind them.
    pub(super) fn reset_counters(&mut self) {
        self.counters = Counters::default();
        for record in self.access.values_mut() {
            record.expiry_reported = false;
            record.refresh_calls = 0;
        }
    }

    /// Makes every issued access token expired from `now` on.
    pub(super) fn expire_all_now(&mut self) {
        let now = Instant::now();
        for record in self.access.values_mut() {
            record.expires_at = cmp::min(record.expires_at, now);
        }
    }

    /// Revokes every refresh token issued so far.
    pub(super) fn revoke_all(&mut self) {
        for record in self.refresh.values_mut() {
            record.status = RefreshStatus::Revoked;
        }
    }

    /// Queues a fault (ignored when `times == 0`).
    pub(super) fn inject(&mut self, fault: Fault) {
        if fault.times() > 0 {
            self.faults.push_back(fault);
        }
    }

    /// Drops every queued fault.
    pub(super) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Takes one application of the front fault, counting it down; `None` when no fault is
    /// queued. The returned value's `times` is meaningless.
    pub(super) fn take_fault(&mut self) -> Option<Fault> {
        let front = self.faults.front_mut()?;
        let taken = front.clone();
        let times = match front {
            Fault::ServiceUnavailable { times }
            | Fault::TooManyRequests { times, .. }
            | Fault::Hang { times, .. }
            | Fault::MalformedJson { times }
            | Fault::OversizedToken { times, .. }
            | Fault::InvalidGrant { times }
            | Fault::InvalidClient { times }
            | Fault::ResetMidBody { times }
            | Fault::CloseBeforeAnswer { times }
            | Fault::Trickle { times, .. } => times,
        };
        *times = times.saturating_sub(1);
        if *times == 0 {
            self.faults.pop_front();
        }
        self.counters.faults_served += 1;
        Some(taken)
    }

    /// The generation of the most recently issued access token.
    pub(super) const fn current_generation(&self) -> u32 {
        self.generation
    }

    /// The delay to add before the next API or token answer: latency plus a jitter draw.
    pub(super) fn next_delay(&mut self) -> Duration {
        let jitter = self.config.latency_jitter;
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            let bound = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(self.jitter_rng.next() % bound.saturating_add(1))
        };
        self.config.latency.saturating_add(extra)
    }

    /// Whether `bytes` contain a refresh token this issuer issued.
    pub(super) fn contains_refresh_token(&self, bytes: &[u8]) -> bool {
        token_candidates(bytes, b"rt.").any(|t| self.refresh.contains_key(t))
    }

    /// Whether `bytes` contain an access token this issuer issued.
    pub(super) fn contains_access_token(&self, bytes: &[u8]) -> bool {
        token_candidates(bytes, b"at.").any(|t| self.access.contains_key(t))
    }

    /// A random number for device and user codes.
    pub(super) const fn device_rng_next(&mut self) -> u64 {
        self.token_rng.next()
    }

    /// Issues a new access token (and a new refresh token unless `keep` names the one to reuse).
    fn issue(
        &mut self,
        session: u64,
        keep: Option<&str>,
        lifetime: Duration,
        pad_to: usize,
    ) -> IssuedTokens {
        self.issue_at(session, keep, lifetime, pad_to, Instant::now())
    }

    /// [`issue`](Self::issue) with the issue instant given.
    fn issue_at(
        &mut self,
        session: u64,
        keep: Option<&str>,
        lifetime: Duration,
        pad_to: usize,
        now: Instant,
    ) -> IssuedTokens {
        self.generation = self.generation.saturating_add(1);
        let generation = self.generation;
        let mut access_token = format!("at.{generation}.{:016x}", self.token_rng.next());
        if access_token.len() < pad_to {
            access_token.push('.');
            let missing = pad_to - access_token.len();
            access_token.extend(core::iter::repeat_n('x', missing));
        }
        let refresh_token = match keep {
            Some(kept) => kept.to_owned(),
            None => format!("rt.{generation}.{:016x}", self.token_rng.next()),
        };
        // Far-future lifetimes must not overflow `Instant`.
        let expires_at = now.checked_add(lifetime).unwrap_or(now + Duration::from_secs(1 << 32));
        self.access.insert(
            access_token.clone(),
            AccessRecord {
                generation,
                expires_at,
                expiry_reported: false,
                refresh_calls: 0,
                revoked: false,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshRecord {
                access_token: access_token.clone(),
                session,
                status: RefreshStatus::Live,
                consumed_at: None,
            },
        );
        IssuedTokens { access_token, refresh_token, expires_in: lifetime, generation }
    }
}

/// Every substring of `bytes` that may be a token starting with `prefix`: the shape
/// `<prefix><digits>.<16 hex>`, and also the longest run of token characters from the prefix on
/// (a padded, oversized token).
fn token_candidates<'a>(bytes: &'a [u8], prefix: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
    (0..bytes.len()).filter(move |&i| bytes[i..].starts_with(prefix)).flat_map(move |start| {
        let rest = &bytes[start..];
        let run = rest.iter().take_while(|&&b| is_token_char(b)).count();
        let shaped = shaped_len(rest, prefix.len());
        [shaped, Some(run)]
            .into_iter()
            .flatten()
            .filter_map(move |len| core::str::from_utf8(&rest[..len]).ok())
    })
}

/// Length of `<prefix><digits>.<16 hex>` at the start of `rest`, if it has that shape.
fn shaped_len(rest: &[u8], prefix_len: usize) -> Option<usize> {
    let after_prefix = rest.get(prefix_len..)?;
    let digits = after_prefix.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || after_prefix.get(digits) != Some(&b'.') {
        return None;
    }
    let hex = after_prefix.get(digits + 1..digits + 17)?;
    hex.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .then_some(prefix_len + digits + 17)
}

/// Characters a token may contain (RFC 6750 `b64token`, minus `+/=` which we never issue).
const fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~')
}

/// A process-wide counter mixed into token seeds, so that issuers started in turn on a reused
/// port still differ.
fn instance_salt() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static INSTANCES: AtomicU64 = AtomicU64::new(0);
    INSTANCES.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The splitmix64 generator: tiny, seedable and good enough for jitter and token noise.
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub(super) const fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_candidates_find_shaped_and_padded_tokens() {
        let text = b"x=rt.12.0123456789abcdef&y=at.3.fedcba9876543210.xxxx\"";
        let rts: Vec<_> = token_candidates(text, b"rt.").collect();
        assert!(rts.contains(&"rt.12.0123456789abcdef"));
        let ats: Vec<_> = token_candidates(text, b"at.").collect();
        assert!(ats.contains(&"at.3.fedcba9876543210"));
        assert!(ats.contains(&"at.3.fedcba9876543210.xxxx"));
        assert_eq!(token_candidates(b"rt.", b"rt.").filter(|t| t.len() > 3).count(), 0);
    }

    #[test]
    fn splitmix64_matches_reference_values() {
        // First outputs for seed 0, from the reference implementation.
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next(), 0x6E78_9E6A_A1B9_65F4);
    }
}
