//! The faults the runs serve from the mock issuer's token endpoint: one chosen kind for `demo`
//! and `firmware` ([`FaultMode`]), or random transient kinds at random intervals for `soak`,
//! both paced by a [`FaultSchedule`].

use core::time::Duration;
use std::collections::BTreeMap;
use std::time::Instant;

use clap::ValueEnum;
use reauth_testkit::issuer::{Fault, MockIssuer};

/// Faults `demo` and `firmware` can inject on the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FaultMode {
    /// No faults.
    None,
    /// Two 503s before each successful refresh: retried with backoff, nobody is logged out.
    #[value(name = "503")]
    Unavailable,
    /// A refresh call that hangs past the refresh timeout: timed out and retried.
    Hang,
    /// Malformed JSON from the token endpoint: retried.
    Malformed,
    /// `invalid_grant`: every waiting request gets "needs login"; the run logs in again.
    Refuse,
}

impl FaultMode {
    /// The name the `--fault` flag takes.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Unavailable => "503",
            Self::Hang => "hang",
            Self::Malformed => "malformed",
            Self::Refuse => "refuse",
        }
    }

    /// The fault this mode serves, with a hang lasting `hang`; `None` for no fault.
    const fn fault(self, hang: Duration) -> Option<Fault> {
        match self {
            Self::None => None,
            Self::Unavailable => Some(Fault::ServiceUnavailable { times: 2 }),
            Self::Hang => Some(Fault::Hang { times: 1, duration: hang }),
            Self::Malformed => Some(Fault::MalformedJson { times: 1 }),
            Self::Refuse => Some(Fault::InvalidGrant { times: 1 }),
        }
    }
}

/// Transient faults the soak draws from.
const RANDOM_KINDS: usize = 5;

/// When to queue which fault on the token endpoint.
///
/// A fault is queued only once the previous one has been served in full and a gap has passed
/// since. With gaps longer than a refresh episode (a hang's timeout plus a backoff, or a 429's
/// `Retry-After`), one episode meets at most one fault and its retry succeeds: faults do not pile
/// up until the client's attempts run out, so requests are delayed, not rejected. A hang lasts
/// twice the client's refresh timeout, so that the client's timeout, not the server, ends it.
#[derive(Debug)]
pub(crate) struct FaultSchedule {
    /// `Some` for one kind always; `None` for random transient kinds.
    mode: Option<FaultMode>,
    rng: Rng,
    /// Shortest and longest gap between one fault being served and the next being queued.
    gap: (Duration, Duration),
    /// How long a hang lasts.
    hang: Duration,
    /// When the next fault is due, once the previous one is served.
    next_at: Instant,
    /// Before this, [`tick`](Self::tick) does nothing: reading the issuer's counters takes its
    /// lock, which a tight poll loop should not do on every turn.
    quiet_until: Instant,
    /// The issuer's `faults_served` counter at which the queued fault is fully served; `None`
    /// when nothing is queued.
    served_at: Option<u64>,
    /// Faults queued so far, by kind.
    injected: BTreeMap<&'static str, u64>,
}

impl FaultSchedule {
    /// `mode`'s fault, first at once, then `every` after the previous one was served (plus the
    /// hang itself for [`FaultMode::Hang`], so that the retry after it is not hung too).
    pub(crate) fn fixed(mode: FaultMode, every: Duration, refresh_timeout: Duration) -> Self {
        let hang = refresh_timeout * 2;
        let every = if mode == FaultMode::Hang { every + hang } else { every };
        Self::new(Some(mode), 0, (every, every), hang, Instant::now())
    }

    /// Random transient faults (a 503 or a close before answering, once or twice in a row; a
    /// 429 with `Retry-After: 1`; a hang; a connection reset mid-body) drawn from a generator
    /// seeded with `seed`, with gaps drawn uniformly from `gap`; the first is due one gap from
    /// now.
    pub(crate) fn random(seed: u64, gap: (Duration, Duration), refresh_timeout: Duration) -> Self {
        let mut schedule = Self::new(None, seed, gap, refresh_timeout * 2, Instant::now());
        let first = schedule.draw_gap();
        schedule.next_at += first;
        schedule
    }

    fn new(
        mode: Option<FaultMode>,
        seed: u64,
        gap: (Duration, Duration),
        hang: Duration,
        next_at: Instant,
    ) -> Self {
        let rng = Rng::new(seed);
        let injected = BTreeMap::new();
        Self { mode, rng, gap, hang, next_at, quiet_until: next_at, served_at: None, injected }
    }

    /// Queues the next fault when it is due. Call it often; it looks at most every 10 ms.
    pub(crate) fn tick(&mut self, issuer: &MockIssuer) {
        let now = Instant::now();
        if self.mode == Some(FaultMode::None) || now < self.quiet_until {
            return;
        }
        self.quiet_until = now + Duration::from_millis(10);
        if let Some(target) = self.served_at {
            if issuer.counters().faults_served < target {
                return;
            }
            self.served_at = None;
            self.next_at = now + self.draw_gap();
        }
        if now < self.next_at {
            return;
        }
        let (name, fault) = match self.mode {
            Some(mode) => match mode.fault(self.hang) {
                Some(fault) => (mode.name(), fault),
                None => return,
            },
            None => self.draw_fault(),
        };
        self.served_at = Some(issuer.counters().faults_served + u64::from(fault.times()));
        issuer.inject(fault);
        *self.injected.entry(name).or_default() += 1;
    }

    /// Faults queued so far, by kind, e.g. `503 ×4, hang ×2`; `none` before the first.
    pub(crate) fn summary(&self) -> String {
        let parts: Vec<String> = self.injected.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    }

    /// Faults queued so far.
    pub(crate) fn total(&self) -> u64 {
        self.injected.values().sum()
    }

    fn draw_fault(&mut self) -> (&'static str, Fault) {
        let times = 1 + u32::from(self.rng.next().is_multiple_of(2));
        match self.rng.next() % RANDOM_KINDS as u64 {
            0 => ("503", Fault::ServiceUnavailable { times }),
            1 => ("429", Fault::TooManyRequests { times: 1, retry_after_secs: 1 }),
            2 => ("hang", Fault::Hang { times: 1, duration: self.hang }),
            3 => ("reset mid-body", Fault::ResetMidBody { times: 1 }),
            _ => ("close before answer", Fault::CloseBeforeAnswer { times }),
        }
    }

    fn draw_gap(&mut self) -> Duration {
        let (min, max) = self.gap;
        let span = u64::try_from(max.saturating_sub(min).as_millis()).unwrap_or(u64::MAX);
        min + Duration::from_millis(self.rng.next() % span.saturating_add(1))
    }
}

/// xorshift64*: a small seeded generator, so that the soak needs no dependency for its dice.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    const fn new(seed: u64) -> Self {
        // xorshift never leaves zero; any other seed works.
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    const fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The expiry storms of the firmware runs: every `every`, the issuer expires every access token
/// at once, so that the requests in flight meet 401s together.
///
/// A storm waits until the newest token has been out for [`Storms::SETTLE`]. A request answered
/// 401 is replayed with the token that has just replaced the expired one; a storm that expires
/// that token too, before the replay reaches the issuer, makes the request meet a second expiry
/// within one replay, which the replay limit (1 by default) rejects as it should. Tokens that
/// expire milliseconds after they were issued are an artefact of the storm, not a server's
/// behaviour; seen once in ~4,000 requests on QEMU.
#[derive(Debug)]
pub(crate) struct Storms {
    every: Option<Duration>,
    /// When the next storm is due.
    next: Option<Instant>,
    /// The newest generation seen, and when it was first seen.
    seen: Option<(u32, Instant)>,
}

impl Storms {
    /// How long a storm waits after a new token was issued.
    const SETTLE: Duration = Duration::from_millis(100);

    /// Storms every `every` from `start`; `None` for none.
    pub(crate) fn new(every: Option<Duration>, start: Instant) -> Self {
        Self { every, next: every.map(|every| start + every), seen: None }
    }

    /// Expires every token if a storm is due and the newest token has settled. Call it often:
    /// from [`Storms::SETTLE`] before a storm it watches the issuer's generation.
    pub(crate) fn tick(&mut self, issuer: &MockIssuer, now: Instant) {
        let (Some(at), Some(every)) = (self.next, self.every) else { return };
        if now + Self::SETTLE < at {
            return;
        }
        let generation = issuer.current_generation();
        let since = match self.seen {
            Some((seen, since)) if seen == generation => since,
            _ => {
                self.seen = Some((generation, now));
                now
            }
        };
        if now >= at && now.duration_since(since) >= Self::SETTLE {
            issuer.expire_all_now();
            self.next = Some(at + every);
        }
    }
}
