//! The coordinator's tunables, with the defaults the spec documents.
//!
//! Every field is a plain value so a `Config` can be built in a `const` and put in a `static`
//! next to the coordinator on a microcontroller.

use crate::time::Duration;

/// How the coordinator times refreshes, waits and retries.
///
/// The times of one access token, from when it was installed (`t0`) with a known lifetime `L`:
///
/// ```text
/// t0                    refresh_at             stale_at          t0 + L (server expiry)
/// |---- fresh ------------|---- early window -----|--- margin ---|
///                          one refresh runs while   requests park
///                          requests still go out    until the refresh ends
/// ```
///
/// `stale_at = t0 + L - margin` and `refresh_at = stale_at - ahead`, where `margin` and `ahead`
/// are [`Config::expiry_margin`] and [`Config::refresh_ahead`] clamped for short-lived tokens (see
/// [`Config::timing_for`]), so a 30 s token neither starts out stale nor refreshes forever.
///
/// # Two sets of defaults
///
/// A request that waits for a refresh should hear how the refresh went, not merely that it
/// waited too long: an episode of [`max_refresh_attempts`](Self::max_refresh_attempts) attempts
/// of up to [`refresh_timeout`](Self::refresh_timeout) each, with the backoffs between them,
/// should end before [`wait_timeout`](Self::wait_timeout). Then a hung token endpoint gets more
/// than one attempt, and every waiting request ends with
/// [`Rejection::RefreshUnavailable`](crate::Rejection::RefreshUnavailable).
///
/// - [`Config::DESKTOP`] (reauth-ureq's defaults) fails fast: a token endpoint on a wired or
///   Wi-Fi network answers in well under a second, so 4 s per attempt, 2 attempts and the
///   0.25-0.5 s backoff between them end an episode within 8.5 s, under the 10 s a user or a
///   calling service is asked to wait.
/// - [`Config::DEFAULT`] (reauth-nal's defaults) is for slow links (cellular, a modem that
///   takes seconds to open a socket, TLS on a small CPU): 30 s per attempt, 2 attempts and the
///   backoff end within 60.5 s, under the 75 s wait. reauth-nal's own
///   [`Timeouts`](https://docs.rs/reauth-nal) end an exchange by 25 s (10 s to connect, 15 s
///   for the answer), inside the 30 s.
/// - Both present one refresh token at most [`max_unanswered`](Self::max_unanswered) (4) times
///   without an answer, across episodes: two hung episodes, then `Failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long before a token turns stale a proactive refresh may start (default 60 s).
    /// Clamped to half of what is left of a token's lifetime after the margin.
    pub refresh_ahead: Duration,
    /// How long before the server's expiry the token is treated as expired, to absorb clock skew
    /// and the request's own travel time (default 10 s). Clamped to a quarter of the lifetime.
    pub expiry_margin: Duration,
    /// How long one refresh call may take before it counts as failed and unanswered (default
    /// 30 s, desktop 4 s). A success that arrives later is still installed. The caller's refresh call MUST
    /// end by then (a transport timeout of at most this much): after it the coordinator may
    /// start the next attempt, and two calls presenting the same rotating refresh token at once
    /// is a reuse.
    pub refresh_timeout: Duration,
    /// How long a parked request waits for a refresh before it is rejected with
    /// [`Rejection::Timeout`](crate::Rejection::Timeout) (default 75 s, desktop 10 s). Longer
    /// than an episode (see [the defaults](Self#two-sets-of-defaults)), so that a waiting
    /// request hears the episode's outcome.
    pub wait_timeout: Duration,
    /// How many times one request may be replayed after the server refused the then-current
    /// token (default 1); replays after a refusal of an older token are free. A request that is
    /// still refused after that is rejected with
    /// [`Rejection::Unauthorized`](crate::Rejection::Unauthorized) instead of looping.
    pub replay_limit: u8,
    /// How many refresh attempts one expiry episode may make before the parked requests are
    /// rejected with [`Rejection::RefreshUnavailable`](crate::Rejection::RefreshUnavailable)
    /// (default 2: a second attempt rides out a dropped connection or one slow server instance;
    /// more would keep requests waiting past [`wait_timeout`](Self::wait_timeout)). The refresh
    /// token is kept: only a refusal logs the user out. The next request after the episode's
    /// cool-down starts a new one.
    pub max_refresh_attempts: u8,
    /// How many times one refresh token may be presented without an answer (a
    /// [`RefreshFailure::Lost`](crate::RefreshFailure::Lost) or a refresh timeout), across
    /// episodes, before the coordinator stops ([`FailCause::Unanswered`](crate::FailCause)):
    /// each such presentation may have rotated the token on the server, and presenting it again
    /// and again risks the reuse detection that revokes the whole session (default 4). Reset by
    /// new tokens.
    pub max_unanswered: u8,
    /// Delay between attempts after a transient failure.
    pub backoff: Backoff,
}

/// Exponential backoff with "equal jitter" after transient refresh failures.
///
/// After the `k`-th consecutive failure the base delay is `initial * 2^(k-1)`, capped at `max`;
/// the actual delay is drawn uniformly from `[base / 2, base]` with a generator seeded by `seed`,
/// so that many devices that failed together do not retry together. A server's `Retry-After` hint
/// replaces the drawn delay, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Base delay after the first failure (default 500 ms).
    pub initial: Duration,
    /// Upper bound of every delay, including a server's `Retry-After` hint (default 30 s).
    pub max: Duration,
    /// Seed for the jitter generator. Give each device or process its own (a serial number, a
    /// random value at start) to spread retries out.
    pub seed: u64,
}

/// The times of one access token, derived from its lifetime by [`Config::timing_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenTiming {
    /// From the token's installation until a proactive refresh may start.
    pub refresh_after: Duration,
    /// From the token's installation until requests stop using it and park instead.
    /// Always `>= refresh_after`.
    pub stale_after: Duration,
}

impl Config {
    /// The defaults for slow links, reauth-nal's (see [the defaults](Self#two-sets-of-defaults)):
    /// refresh ahead 60 s, margin 10 s, refresh timeout 30 s, wait timeout 75 s, one replay,
    /// two attempts per episode, four unanswered presentations, [`Backoff::DEFAULT`]. Usable in
    /// a `const`.
    pub const DEFAULT: Self = Self {
        refresh_ahead: Duration::from_secs(60),
        expiry_margin: Duration::from_secs(10),
        refresh_timeout: Duration::from_secs(30),
        wait_timeout: Duration::from_secs(75),
        replay_limit: 1,
        max_refresh_attempts: 2,
        max_unanswered: 4,
        backoff: Backoff::DEFAULT,
    };

    /// The defaults that fail fast, reauth-ureq's (see
    /// [the defaults](Self#two-sets-of-defaults)): as [`DEFAULT`](Self::DEFAULT), but 4 s per
    /// refresh attempt and 10 s of waiting, so a hung token endpoint gets two attempts and every
    /// waiting request ends with `RefreshUnavailable` within 8.5 s.
    pub const DESKTOP: Self = Self {
        refresh_timeout: Duration::from_secs(4),
        wait_timeout: Duration::from_secs(10),
        ..Self::DEFAULT
    };

    /// The longest an expiry episode can last when every attempt times out: its attempts and the
    /// longest backoffs between them (the second clamped by the first hint-free delay). A
    /// configuration where this is under [`wait_timeout`](Self::wait_timeout) tells waiting
    /// requests how the episode went.
    #[must_use]
    pub const fn longest_episode(&self) -> Duration {
        let mut total = Duration::ZERO;
        let mut attempt = 0;
        while attempt < self.max_refresh_attempts {
            total = total.saturating_add(self.refresh_timeout);
            attempt += 1;
            if attempt < self.max_refresh_attempts {
                total = total.saturating_add(self.backoff.base_delay(attempt));
            }
        }
        total
    }

    /// When a token with the given lifetime turns stale and when it may be refreshed early.
    ///
    /// The margin is at most a quarter of the lifetime and the early window at most half of what
    /// remains, so every token is usable for at least three eighths of its lifetime before a
    /// refresh starts: a 30 s token refreshes after 11.25 s, not at once and not in a loop.
    #[must_use]
    pub const fn timing_for(&self, lifetime: Duration) -> TokenTiming {
        let margin = self.expiry_margin.min(lifetime.div(4));
        let stale_after = lifetime.saturating_sub(margin);
        let ahead = self.refresh_ahead.min(stale_after.div(2));
        TokenTiming { refresh_after: stale_after.saturating_sub(ahead), stale_after }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Backoff {
    /// The documented defaults: 500 ms doubling up to 30 s, seed 0.
    pub const DEFAULT: Self =
        Self { initial: Duration::from_millis(500), max: Duration::from_secs(30), seed: 0 };

    /// The base delay (before jitter) after `failures` consecutive failures (1 for the first).
    #[must_use]
    pub const fn base_delay(&self, failures: u8) -> Duration {
        let exponent = if failures == 0 { 0 } else { failures - 1 };
        // `initial * 2^exponent`, the exponent clamped to 62 (2^62 ms is far past any cap), by
        // doubling until the cap is reached: on a 32-bit target a 64-bit saturating multiply
        // costs more flash than this loop.
        let mut doublings = if exponent > 62 { 62 } else { exponent };
        let mut delay = self.initial;
        while doublings > 0 && delay.millis() < self.max.millis() {
            delay = delay.saturating_add(delay);
            doublings -= 1;
        }
        delay.min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lived_token_uses_the_configured_windows() {
        let t = Config::DEFAULT.timing_for(Duration::from_secs(3600));
        assert_eq!(t.stale_after, Duration::from_secs(3590));
        assert_eq!(t.refresh_after, Duration::from_secs(3530));
    }

    #[test]
    fn short_lived_token_is_clamped_so_it_neither_starts_stale_nor_refreshes_at_once() {
        let t = Config::DEFAULT.timing_for(Duration::from_secs(30));
        assert_eq!(t.stale_after, Duration::from_millis(22_500));
        assert_eq!(t.refresh_after, Duration::from_millis(11_250));
        let t = Config::DEFAULT.timing_for(Duration::from_millis(100));
        assert_eq!(t.stale_after, Duration::from_millis(75));
        assert_eq!(t.refresh_after, Duration::from_millis(38));
    }

    #[test]
    fn zero_and_extreme_lifetimes_do_not_overflow() {
        let t = Config::DEFAULT.timing_for(Duration::ZERO);
        assert_eq!((t.refresh_after, t.stale_after), (Duration::ZERO, Duration::ZERO));
        let t = Config::DEFAULT.timing_for(Duration::MAX);
        assert!(t.refresh_after <= t.stale_after);
    }

    #[test]
    fn both_default_episodes_end_before_their_wait_timeout() {
        for config in [Config::DEFAULT, Config::DESKTOP] {
            assert!(config.max_refresh_attempts >= 2, "a hung endpoint gets a second attempt");
            assert!(config.longest_episode() < config.wait_timeout, "{config:?}");
            assert!(config.max_unanswered > config.max_refresh_attempts, "{config:?}");
        }
        assert_eq!(Config::DESKTOP.longest_episode(), Duration::from_millis(8_500));
        assert_eq!(Config::DEFAULT.longest_episode(), Duration::from_millis(60_500));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.base_delay(1), Duration::from_millis(500));
        assert_eq!(b.base_delay(2), Duration::from_millis(1_000));
        assert_eq!(b.base_delay(4), Duration::from_millis(4_000));
        assert_eq!(b.base_delay(10), Duration::from_secs(30));
        assert_eq!(b.base_delay(255), Duration::from_secs(30));
        assert_eq!(b.base_delay(0), Duration::from_millis(500));
    }

    #[test]
    fn backoff_doubling_matches_a_saturating_multiply() {
        let edges = [0, 1, 3, 500, 30_000, u64::MAX / 3, u64::MAX - 1, u64::MAX];
        for initial in edges {
            for max in edges {
                let b = Backoff {
                    initial: Duration::from_millis(initial),
                    max: Duration::from_millis(max),
                    seed: 0,
                };
                for failures in 0..=u8::MAX {
                    let exponent = u32::from(failures.saturating_sub(1)).min(62);
                    let expected = initial.saturating_mul(1 << exponent).min(max);
                    assert_eq!(
                        b.base_delay(failures).millis(),
                        expected,
                        "{initial} {max} {failures}"
                    );
                }
            }
        }
    }
}
