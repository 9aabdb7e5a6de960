//! The refresh coordinator: the sans-IO state machine that decides, for every request, whether it
//! goes out now, waits for a refresh, or is turned away, and makes sure exactly one refresh runs
//! per expiry.

use crate::config::Config;
use crate::error::{RefreshResultError, Rejected, Rejection};
use crate::log::event;
use crate::queue::{ParkQueue, Parked};
use crate::ticket::{Generation, RefreshId, RequestId, Ticket};
use crate::time::{Duration, Instant};

/// Keeps one set of credentials fresh for many requests, with room for `N` parked requests
/// (`N >= 1`; `N = 0` does not compile). The work per request does not grow with `N`; only
/// [`handle_cancel`](Self::handle_cancel) scans the queue.
///
/// The coordinator owns no socket, reads no clock and allocates nothing: the caller feeds it
/// events and carries out what it asks for. It never holds token bytes either: it tracks which
/// [`Generation`] of access token is current, and the caller keeps the bytes (see
/// [`TokenSet`](crate::TokenSet)) and sends each request with the token of its ticket.
///
/// # Methods
///
/// - **Getters**: [`state`](Self::state), [`generation`](Self::generation),
///   [`parked_len`](Self::parked_len), [`parked`](Self::parked),
///   [`refresh_in_flight`](Self::refresh_in_flight), [`config`](Self::config), [`now`](Self::now).
/// - **Inputs**, each with the caller's current time:
///   [`handle_login`](Self::handle_login), [`handle_restore`](Self::handle_restore),
///   [`handle_logout`](Self::handle_logout), [`handle_request`](Self::handle_request),
///   [`handle_response`](Self::handle_response), [`handle_cancel`](Self::handle_cancel),
///   [`handle_refresh_success`](Self::handle_refresh_success),
///   [`handle_refresh_failure`](Self::handle_refresh_failure),
///   [`handle_adopt`](Self::handle_adopt),
///   [`handle_timeout`](Self::handle_timeout).
/// - **Outputs**: [`poll_action`](Self::poll_action) and [`poll_timeout`](Self::poll_timeout).
///
/// The way out of `Failed` is a login: tokens from any flow, or from the device authorization
/// grant that [`device::DevicePoller`](crate::device::DevicePoller) drives, installed with
/// [`handle_login`](Self::handle_login).
///
/// # Driving it
///
/// After any input, the caller MUST:
/// 1. call [`poll_action`](Self::poll_action) until it returns `None`, carrying out each
///    [`Action`] (start the refresh, send the request with the current token, answer the request
///    with its rejection);
/// 2. then call [`poll_timeout`](Self::poll_timeout) and arrange to call
///    [`handle_timeout`](Self::handle_timeout) at that instant (or at the next input, whichever
///    comes first). `None` means nothing waits on time.
///
/// Time that goes backwards is clamped to the latest instant seen. No input sequence panics.
#[derive(Debug)]
pub struct Coordinator<const N: usize> {
    config: Config,
    state: State,
    /// The generation of the current access token; [`Generation::NONE`] before the first login.
    generation: Generation,
    /// The latest instant seen; inputs with an earlier `now` are treated as happening now.
    now: Instant,
    queue: ParkQueue<N>,
    /// The id the next refresh attempt gets.
    next_refresh: RefreshId,
    /// Attempts with a smaller id were made for credentials that a login, restore or logout has
    /// replaced since: their results are not applied.
    session_start: RefreshId,
    /// An attempt decided on but not yet handed out by `poll_action`.
    start_pending: Option<RefreshId>,
    /// The latest attempt handed out by `poll_action`; results for later ids are bogus (the
    /// caller cannot know them), even if the clock starts that attempt on the same call.
    announced: RefreshId,
    /// Failed attempts (transient or lost) since the last new credentials, across episodes: the
    /// backoff delay grows with it, so an exhausted episode's cool-down and the next episode's
    /// delays go on where the last ones left off instead of starting small again.
    // This and `unanswered` are `u32` although a byte would do: two byte fields here leave
    // padding that kept LLVM from building a reauth-nal client in place in its `static` (the
    // example firmware's `main` took 3.3 KiB more stack) and cost 40 B more flash.
    streak: u32,
    /// Presentations of the current refresh token that ended without a usable answer
    /// ([`RefreshFailure::Lost`] or the refresh timeout): each may have rotated the token on the
    /// server. Reset by new credentials; at [`Config::max_unanswered`] the token is
    /// presented no more ([`FailCause::Unanswered`]).
    unanswered: u32,
    /// State of the jitter generator (splitmix64).
    rng: u64,
}

/// The coordinator's state, with the data that only makes sense in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// A byte tag, and `access` at the same offset in `Idle` and `Refreshing`: state tests are byte
// compares rather than 64-bit ones on a niche, and moving between the two copies nothing
// (a few hundred bytes of flash less on thumbv7em, 8 bytes more RAM).
#[repr(u8)]
pub enum State {
    /// No refresh is running. The access token may be fresh, in its early window, or known to be
    /// expired (a refresh starts as soon as a request needs it).
    Idle {
        /// What is known about the current access token.
        access: Access,
        /// The cool-down after an exhausted episode: before this instant no episode starts, and
        /// a request that would wait for one is rejected with [`Rejection::RefreshUnavailable`]
        /// at once. [`Instant::ZERO`] when there is none.
        retry_at: Instant,
    },
    /// One refresh is in flight, or the episode waits out a backoff between attempts.
    Refreshing {
        /// What is known about the current access token: while it is still usable (the early
        /// window), requests keep going out with it.
        access: Access,
        /// Attempts of this episode that failed transiently so far.
        failures: u8,
        /// Whether an attempt is in flight or the episode is backing off.
        phase: Phase,
    },
    /// The token endpoint refused the refresh token while the access token was still usable
    /// (an early refresh): the access token keeps working until it turns stale
    /// ([`Access::Valid::stale_at`]) or the server refuses it, and then the state becomes
    /// `Failed` with [`FailCause::Refused`]. No refresh starts (the refresh token is dead), so
    /// `refresh_at` means nothing here. [`Coordinator::needs_login`] is false, but the
    /// application should log in soon; [`Coordinator::is_refused`] is true.
    // Before `Failed` so that the variants with `access` keep neighbouring tags.
    Refused {
        /// The access token, still usable when the refusal came.
        access: Access,
    },
    /// No usable credentials. Every request is refused with [`Rejection::NeedsLogin`] and no
    /// refresh starts until [`handle_login`](Coordinator::handle_login) or
    /// [`handle_restore`](Coordinator::handle_restore).
    Failed {
        /// How the credentials were lost.
        cause: FailCause,
    },
}

/// What the coordinator knows about the current access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// There is no access token, or the server refused it: requests park.
    Expired,
    /// The token was valid when installed. `refresh_at <= stale_at`; both are [`Instant::MAX`]
    /// when the lifetime is unknown (the token is then used until the server refuses it).
    Valid {
        /// From here on, the next request starts a proactive refresh and still goes out.
        refresh_at: Instant,
        /// From here on, requests park until a new token arrives.
        stale_at: Instant,
    },
}

/// Where a refresh episode stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Attempt `id` is in flight; at `timeout_at` it counts as a transient failure.
    InFlight {
        /// The attempt in flight.
        id: RefreshId,
        /// When the attempt is given up on.
        timeout_at: Instant,
        /// The generation that was current when the attempt started. If a late success of an
        /// earlier attempt installs a newer one meanwhile, this attempt is superseded: its
        /// failure ends it quietly (with a rotating server it is bound to be refused as a
        /// reuse), and its success is still installed.
        base: Generation,
    },
    /// The last attempt failed transiently; the next one starts at `retry_at`.
    Backoff {
        /// When the next attempt starts.
        retry_at: Instant,
    },
}

/// Why the coordinator is [`State::Failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailCause {
    /// No credentials were ever installed.
    NeverLoggedIn,
    /// The token endpoint refused the refresh token (`invalid_grant` and friends), and no
    /// usable access token was left (at once, or when the one kept in [`State::Refused`] turned
    /// stale or was refused by the server).
    Refused,
    /// The application logged out.
    LoggedOut,
    /// [`Config::max_unanswered`] presentations of the same refresh token went unanswered
    /// ([`RefreshFailure::Lost`] or the refresh timeout). Each may have rotated the token on the
    /// server, so presenting it again risks the reuse detection that revokes the whole session;
    /// the coordinator stops instead. A late success of one of those attempts still installs
    /// its token.
    Unanswered,
}

/// How a request may proceed, from [`Coordinator::handle_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Send the request now with the access token of the ticket's generation.
    Send(Ticket),
    /// The request waits for a refresh. It is released later by [`Action::Send`] or
    /// [`Action::Reject`] from [`Coordinator::poll_action`].
    Parked,
}

/// What the server said about a request, as far as authorization goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Anything but "token expired": the response goes to the application as it is (a 404 or a
    /// 500 is `Accepted` too).
    Accepted,
    /// The server refused the access token: a 401, or an API's own expiry signal.
    Expired,
    /// A 403. For a request sent with an older token than the current one it is a refusal of
    /// that old token (servers that revoke the previous access token when they rotate answer it
    /// so, without a challenge): the request is replayed with the current token, as a stale
    /// 401 is. For the current token while a refresh is on the wire (the server may have
    /// rotated already) the request waits for the new token and goes again once, using up its
    /// replay budget. Otherwise it is the application's answer (it may mean
    /// `insufficient_scope`): no refresh, no replay.
    Forbidden,
}

/// What to do with a response, from [`Coordinator::handle_response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Hand the response to the application.
    Done,
    /// Send the request again now, with the token of this ticket's generation: the refusal was
    /// for an older token than the current one.
    Replay(Ticket),
    /// The request waits for a refresh; it is released later by [`Coordinator::poll_action`].
    Parked,
    /// The request will not be sent again.
    Rejected(Rejected),
}

/// Why a refresh attempt failed, as the caller classified it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefreshFailure {
    /// Worth retrying: a network error, a timeout, 408, 429 or 5xx. `retry_after` is the server's
    /// `Retry-After` hint, if any; it replaces the backoff delay, capped at
    /// [`Backoff::max`](crate::Backoff::max).
    Transient {
        /// The server's hint of when to try again.
        retry_after: Option<Duration>,
    },
    /// A definite refusal (`invalid_grant`, or 400/401 from the token endpoint): the refresh token
    /// is no good and the user must log in again. An access token still usable keeps working
    /// until it turns stale ([`State::Refused`]).
    Refused,
    /// The request was sent (or may have been) but no usable answer came back: the connection
    /// was reset, closed or timed out before the whole answer arrived, or a success status came
    /// with a body that could not be used. The server may have rotated the refresh token, so
    /// besides backing off as for `Transient`, the coordinator presents one refresh token at
    /// most [`Config::max_unanswered`] times with such results (see
    /// [`FailCause::Unanswered`]). A failure before any byte was sent (no route, connection
    /// refused) is `Transient`.
    Lost,
}

impl RefreshFailure {
    /// The failure of a refresh that got no answer (a network error, a timeout, a connection
    /// closed before the whole answer): [`Lost`](Self::Lost) once any byte of the request was
    /// sent (the server may have rotated the refresh token), else
    /// [`Transient`](Self::Transient) without a `retry_after`.
    ///
    /// ```
    /// use reauth_core::RefreshFailure;
    ///
    /// assert_eq!(RefreshFailure::unanswered(true), RefreshFailure::Lost);
    /// assert_eq!(
    ///     RefreshFailure::unanswered(false),
    ///     RefreshFailure::Transient { retry_after: None }
    /// );
    /// ```
    #[must_use]
    pub const fn unanswered(sent_any: bool) -> Self {
        if sent_any { Self::Lost } else { Self::Transient { retry_after: None } }
    }
}

/// Something the caller must do, from [`Coordinator::poll_action`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Start a refresh call now and report its result with this id.
    Refresh(RefreshId),
    /// Send this parked request now with the access token of the ticket's generation.
    Send(Ticket),
    /// Answer this parked request with its rejection.
    Reject(Rejected),
}

impl<const N: usize> Coordinator<N> {
    /// A coordinator with no credentials ([`State::Failed`] with [`FailCause::NeverLoggedIn`]).
    /// `const`, so it can live in a `static`.
    #[must_use]
    pub const fn new(config: Config) -> Self {
        Self {
            config,
            state: State::Failed { cause: FailCause::NeverLoggedIn },
            generation: Generation::NONE,
            now: Instant::ZERO,
            queue: ParkQueue::new(),
            next_refresh: RefreshId(1),
            session_start: RefreshId(1),
            start_pending: None,
            announced: RefreshId(0),
            streak: 0,
            unanswered: 0,
            rng: config.backoff.seed,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Getters

    /// The current state.
    #[must_use]
    pub const fn state(&self) -> &State {
        &self.state
    }

    /// The generation of the current access token.
    #[must_use]
    pub const fn generation(&self) -> Generation {
        self.generation
    }

    /// The configuration the coordinator was built with.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The latest instant the coordinator has seen.
    #[must_use]
    pub const fn now(&self) -> Instant {
        self.now
    }

    /// How many requests are parked, including rejected ones not yet drained by `poll_action`.
    #[must_use]
    pub fn parked_len(&self) -> usize {
        self.queue.len()
    }

    /// The ids of the parked requests, oldest first.
    pub fn parked(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.queue.iter().map(|p| p.id)
    }

    /// The refresh attempt the coordinator considers in flight, if any.
    #[must_use]
    pub const fn refresh_in_flight(&self) -> Option<RefreshId> {
        match self.state {
            State::Refreshing { phase: Phase::InFlight { id, .. }, .. } => Some(id),
            _ => None,
        }
    }

    /// True if a request made now would be sent at once.
    #[must_use]
    pub fn has_usable_token(&self) -> bool {
        self.usable(self.now)
    }

    /// True in [`State::Failed`]: the application must log in.
    #[must_use]
    pub const fn needs_login(&self) -> bool {
        matches!(self.state, State::Failed { .. })
    }

    /// True while a refresh episode runs: an attempt in flight, or a backoff before the next
    /// one ([`State::Refreshing`]). A program that stops (a test run ending, a device going to
    /// sleep) waits for this to turn false, so that no refresh token is left presented with
    /// its answer unread.
    #[must_use]
    pub const fn is_refreshing(&self) -> bool {
        matches!(self.state, State::Refreshing { .. })
    }

    /// True if the token endpoint refused the current refresh token: in [`State::Refused`]
    /// (the access token still works until it turns stale) and in `Failed` with
    /// [`FailCause::Refused`]. The stored refresh token is dead: adapters erase it at once, so a
    /// restarted program needs a login without a refresh call.
    #[must_use]
    pub const fn is_refused(&self) -> bool {
        matches!(self.state, State::Refused { .. } | State::Failed { cause: FailCause::Refused })
    }

    /// Whether a refresh result for `id` would be applied: false for an attempt that belongs to
    /// replaced credentials or was never handed out. Adapters check this before they persist a
    /// rotated refresh token.
    #[must_use]
    pub fn is_live_refresh(&self, id: RefreshId) -> bool {
        self.check_live(id).is_ok()
    }

    // ---------------------------------------------------------------------------------------
    // Inputs

    /// New credentials after a login: an access token valid for `lifetime` (`None` if unknown)
    /// and a refresh token. Returns the new generation, under which the caller MUST store the
    /// access token.
    ///
    /// Any refresh in flight is abandoned (its result will be [`RefreshResultError::Superseded`]),
    /// parked requests that still wait are released with the new token.
    pub fn handle_login(&mut self, now: Instant, lifetime: Option<Duration>) -> Generation {
        let now = self.advance(now);
        self.begin_session();
        self.generation = self.generation.next();
        self.state =
            State::Idle { access: self.access_from(now, lifetime), retry_at: Instant::ZERO };
        // A token installed already stale (zero lifetime) must not strand parked requests.
        self.settle(now);
        self.generation
    }

    /// Credentials without a usable access token, e.g. a refresh token restored from flash at
    /// boot. The first request that needs a token starts a refresh.
    pub fn handle_restore(&mut self, now: Instant) {
        let now = self.advance(now);
        self.begin_session();
        self.state = State::Idle { access: Access::Expired, retry_at: Instant::ZERO };
        self.settle(now);
    }

    /// Forget the credentials. Parked requests are rejected with [`Rejection::NeedsLogin`] and any
    /// refresh in flight is abandoned.
    pub fn handle_logout(&mut self, now: Instant) {
        self.advance(now);
        self.begin_session();
        self.enter_failed(FailCause::LoggedOut);
    }

    /// A request `id` is about to be sent.
    ///
    /// # Errors
    /// [`Rejection::NeedsLogin`] in [`State::Failed`], [`Rejection::QueueFull`] if it would have to
    /// park and `N` requests are parked already, [`Rejection::DuplicateRequest`] if `id` is
    /// parked already. The coordinator keeps no trace of a rejected request.
    pub fn handle_request(&mut self, now: Instant, id: RequestId) -> Result<Admission, Rejected> {
        let now = self.advance(now);
        if self.needs_login() {
            return Err(Rejected { id, reason: Rejection::NeedsLogin });
        }
        if self.usable(now) {
            if let State::Idle { access: Access::Valid { refresh_at, .. }, .. } = self.state
                && now >= refresh_at
            {
                self.start_episode(now);
            }
            return Ok(Admission::Send(self.ticket(id, 0)));
        }
        let parked = self.park(now, id, 0);
        self.settle(now);
        parked.map(|()| Admission::Parked)
    }

    /// The server answered request `ticket.id`.
    ///
    /// An `Expired` verdict for an older generation than the current one is replayed at once
    /// with the current token (another request already caused the refresh), without using up
    /// the request's replay budget. For the current generation it marks the token expired,
    /// starts a refresh if none runs, and parks the request to be replayed with the new token;
    /// a request that was already replayed [`Config::replay_limit`] times after such a refusal is
    /// rejected with [`Rejection::Unauthorized`] instead.
    pub fn handle_response(&mut self, now: Instant, ticket: Ticket, verdict: Verdict) -> Outcome {
        let now = self.advance(now);
        let id = ticket.id;
        let reject = |reason| Outcome::Rejected(Rejected { id, reason });
        match verdict {
            Verdict::Accepted => return Outcome::Done,
            Verdict::Forbidden if ticket.generation < self.generation && self.usable(now) => {
                return Outcome::Replay(self.ticket(id, ticket.replays));
            }
            // While a refresh is on the wire the server may already have rotated, and revoked
            // the token this request carried: the token is taken for dead until the refresh
            // lands (so requests wait for the new one instead of meeting the same 403), and the
            // request goes again once (it uses up its replay budget, so a real 403 still
            // reaches the caller).
            Verdict::Forbidden
                if ticket.replays < self.config.replay_limit
                    && self.refresh_in_flight().is_some() =>
            {
                self.expire_access();
                let parked = self.park(now, id, ticket.replays.saturating_add(1));
                return match parked {
                    Ok(()) => Outcome::Parked,
                    Err(rejected) => Outcome::Rejected(rejected),
                };
            }
            Verdict::Forbidden => return Outcome::Done,
            Verdict::Expired => {}
        }
        if self.needs_login() {
            return reject(Rejection::NeedsLogin);
        }
        // A refusal of an older token than the current one says nothing about the current
        // token: the request goes again with it, and that does not use up its replay budget.
        let stale = ticket.generation < self.generation;
        if stale && self.usable(now) {
            return Outcome::Replay(self.ticket(id, ticket.replays));
        }
        let replays = if stale {
            ticket.replays
        } else if ticket.replays >= self.config.replay_limit {
            return reject(Rejection::Unauthorized);
        } else {
            if let State::Refused { .. } = self.state {
                // The last access token of refused credentials was refused too.
                self.enter_failed(FailCause::Refused);
                return reject(Rejection::NeedsLogin);
            }
            self.expire_access();
            ticket.replays.saturating_add(1)
        };
        let parked = self.park(now, id, replays);
        self.settle(now);
        match parked {
            Ok(()) => Outcome::Parked,
            Err(rejected) => Outcome::Rejected(rejected),
        }
    }

    /// The caller gave up on parked request `id` (its user went away). Returns whether it was
    /// parked; it will get no [`Action`].
    pub fn handle_cancel(&mut self, now: Instant, id: RequestId) -> bool {
        self.advance(now);
        self.queue.remove(id)
    }

    /// Refresh `id` brought a new access token valid for `lifetime` (`None` if unknown).
    /// Returns the new generation, under which the caller MUST store the new tokens (after
    /// persisting a rotated refresh token) before it carries out the next [`Action`].
    ///
    /// A success is applied even if the attempt had timed out or a later attempt is in flight:
    /// the server has rotated the refresh token, so throwing the result away would lose it.
    ///
    /// The order that keeps the coordinator, the token buffers and the persisted refresh token
    /// in agreement, and persists a rotated refresh token before anything uses the new
    /// generation:
    /// 1. [`is_live_refresh(id)`](Self::is_live_refresh): if not, drop the answer unread.
    /// 2. Parse it and [`validate`](crate::oauth::TokenResponse::validate) it for the token
    ///    set's capacities. If that fails (a token too long for its buffer), report
    ///    [`handle_refresh_failure`](Self::handle_refresh_failure) with
    ///    [`RefreshFailure::Lost`] instead: the server has rotated, the answer cannot be used,
    ///    and neither the coordinator nor the buffers have changed.
    /// 3. Persist the rotated refresh token, lent by
    ///    [`write_refresh_token`](crate::oauth::ValidTokenResponse::write_refresh_token).
    /// 4. Call this, then [`apply`](crate::oauth::ValidTokenResponse::apply) the validated
    ///    answer (it cannot fail) under the generation returned, and only then carry out the
    ///    actions it releases.
    ///
    /// (reauth-nal applies into its token set as `self.generation().next()`, the generation
    /// this call will hand out, before calling it; the validation makes that all or nothing
    /// too.)
    ///
    /// The refresh call itself MUST end (succeed, fail, or be given up) by
    /// [`Config::refresh_timeout`] after [`Action::Refresh`]: the coordinator then counts the
    /// attempt as unanswered and may start the next one, and two calls presenting the same
    /// rotating refresh token at once is a reuse.
    ///
    /// # Errors
    /// [`RefreshResultError::Superseded`] if credentials were installed or removed since the
    /// attempt started (the caller MUST drop the tokens it brought);
    /// [`RefreshResultError::Unknown`] for an id never handed out.
    pub fn handle_refresh_success(
        &mut self,
        now: Instant,
        id: RefreshId,
        lifetime: Option<Duration>,
    ) -> Result<Generation, RefreshResultError> {
        let now = self.advance(now);
        self.check_live(id)?;
        self.install(now, lifetime, Some(id));
        event!(debug, "{id} succeeded: {}", self.generation);
        Ok(self.generation)
    }

    /// Tokens that another process or machine obtained were adopted from a shared store: a new
    /// access token valid for `lifetime` (`None` if unknown) and a refresh token, without a
    /// refresh call of ours. Returns the new generation, under which the caller MUST store the
    /// access token.
    ///
    /// Unlike [`handle_login`](Self::handle_login), a refresh in flight is not abandoned: it is
    /// superseded (its failure only ends it, its success is still installed), so at most one
    /// refresh is ever on the wire. A backoff or a cool-down ends; parked requests go out with
    /// the new token. From [`State::Failed`] it works as a login: the store held newer
    /// credentials than the ones that were refused.
    ///
    /// A caller that answers its own refresh attempt from the store (it found a newer record
    /// under the store's lease) reports that attempt with
    /// [`handle_refresh_success`](Self::handle_refresh_success) instead.
    pub fn handle_adopt(&mut self, now: Instant, lifetime: Option<Duration>) -> Generation {
        let now = self.advance(now);
        if self.needs_login() {
            return self.handle_login(now, lifetime);
        }
        self.install(now, lifetime, None);
        event!(debug, "adopted from the store: {}", self.generation);
        self.generation
    }

    /// Refresh `id` failed.
    ///
    /// A transient or lost failure backs off and retries, up to
    /// [`Config::max_refresh_attempts`] per episode, after which the parked requests are
    /// rejected with [`Rejection::RefreshUnavailable`] and the refresh token is kept; a
    /// cool-down then holds (see [`State::Idle::retry_at`]) so that a failing token endpoint is
    /// never hammered. A refusal of an early refresh, while the access token is still usable,
    /// enters [`State::Refused`]: requests keep going out with that token, no refresh starts,
    /// and when it turns stale (or the server refuses it) the state becomes `Failed`. Any other
    /// refusal rejects every parked request with [`Rejection::NeedsLogin`] and enters
    /// [`State::Failed`] at once, and so does the `max_unanswered`-th presentation of one
    /// refresh token that went unanswered ([`RefreshFailure::Lost`], [`FailCause::Unanswered`]).
    ///
    /// # Errors
    /// [`RefreshResultError::NotCurrent`] for an attempt that is no longer in flight (it timed
    /// out, or a success arrived since): the failure is ignored, so a superseded attempt cannot
    /// log the user out. The failure of an attempt in flight that a late success of an earlier
    /// one superseded (see [`Phase::InFlight::base`]) is accepted and only ends that attempt.
    /// [`RefreshResultError::Superseded`] and [`RefreshResultError::Unknown`] as for
    /// [`handle_refresh_success`](Self::handle_refresh_success).
    pub fn handle_refresh_failure(
        &mut self,
        now: Instant,
        id: RefreshId,
        failure: RefreshFailure,
    ) -> Result<(), RefreshResultError> {
        let now = self.advance(now);
        self.check_live(id)?;
        let State::Refreshing { access, phase: Phase::InFlight { id: current, base, .. }, .. } =
            self.state
        else {
            return Err(RefreshResultError::NotCurrent);
        };
        if current != id {
            return Err(RefreshResultError::NotCurrent);
        }
        if base < self.generation {
            // Superseded by a late success: a newer token exists, nothing to retry or refuse.
            self.state = State::Idle { access, retry_at: Instant::ZERO };
            self.settle(now);
            return Ok(());
        }
        match failure {
            RefreshFailure::Refused => self.refuse(now, access),
            RefreshFailure::Transient { retry_after } => self.fail_attempt(now, retry_after, false),
            RefreshFailure::Lost => self.fail_attempt(now, None, true),
        }
        self.settle(now);
        Ok(())
    }

    /// Time has passed: fire refresh timeouts, backoff ends and wait deadlines that are due.
    /// Every other input does the same first, so this is only needed when nothing else happens.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    // ---------------------------------------------------------------------------------------
    // Outputs

    /// The next thing the caller must do, or `None` when there is nothing to do until the next
    /// input. Parked requests come out in the order they were parked.
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(id) = self.start_pending.take()
            && self.refresh_in_flight() == Some(id)
        {
            self.announced = id;
            return Some(Action::Refresh(id));
        }
        let front = self.queue.front()?;
        if let Some(reason) = front.fate {
            let id = front.id;
            self.queue.pop_front();
            return Some(Action::Reject(Rejected { id, reason }));
        }
        if !self.has_usable_token() {
            return None;
        }
        let parked = self.queue.pop_front()?;
        Some(Action::Send(self.ticket(parked.id, parked.replays)))
    }

    /// When the caller must call [`handle_timeout`](Self::handle_timeout) next, or `None` if
    /// nothing waits on time. An instant at or before [`now`](Self::now) means "at once": an
    /// action is ready for [`poll_action`](Self::poll_action).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.action_ready() {
            return Some(self.now);
        }
        let deadline = self.queue.next_deadline();
        let refresh = match self.state {
            State::Refreshing {
                phase: Phase::InFlight { timeout_at: at, .. } | Phase::Backoff { retry_at: at },
                ..
            } => at,
            // The instant the access token turns stale and the state becomes `Failed`
            // (`Instant::MAX` for a token of unknown lifetime: until the API refuses it).
            State::Refused { access: Access::Valid { stale_at, .. } } => stale_at,
            State::Idle { .. } | State::Refused { .. } | State::Failed { .. } => return deadline,
        };
        Some(deadline.map_or(refresh, |d| d.min(refresh)))
    }

    // ---------------------------------------------------------------------------------------
    // Helpers

    /// Clamps `now` to the latest instant seen and fires whatever is due.
    fn advance(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        let now = self.now;
        if let State::Refreshing { phase: Phase::InFlight { timeout_at, .. }, .. } = self.state
            && now >= timeout_at
        {
            // The call may still be on the wire: as unanswered as a lost one.
            self.fail_attempt(now, None, true);
        }
        if let State::Refreshing { phase: Phase::Backoff { retry_at }, .. } = self.state
            && now >= retry_at
        {
            self.start_attempt(now);
        }
        if let State::Refused { access } = self.state
            && !access.is_usable(now)
        {
            self.enter_failed(FailCause::Refused);
        }
        self.queue.expire(now);
        now
    }

    /// True if requests may go out with the current token at `now`; false in [`State::Failed`].
    // Out of line: every input asks it, and one shared copy is smaller on a microcontroller.
    #[inline(never)]
    fn usable(&self, now: Instant) -> bool {
        match self.state {
            State::Idle { access, .. }
            | State::Refreshing { access, .. }
            | State::Refused { access } => access.is_usable(now),
            State::Failed { .. } => false,
        }
    }

    fn expire_access(&mut self) {
        if let State::Idle { access, .. } | State::Refreshing { access, .. } = &mut self.state {
            *access = Access::Expired;
        }
    }

    const fn access_from(&self, now: Instant, lifetime: Option<Duration>) -> Access {
        match lifetime {
            None => Access::Valid { refresh_at: Instant::MAX, stale_at: Instant::MAX },
            Some(lifetime) => {
                let timing = self.config.timing_for(lifetime);
                Access::Valid {
                    refresh_at: now.saturating_add(timing.refresh_after),
                    stale_at: now.saturating_add(timing.stale_after),
                }
            }
        }
    }

    const fn ticket(&self, id: RequestId, replays: u8) -> Ticket {
        Ticket { id, generation: self.generation, replays }
    }

    /// A new access token, brought by attempt `finished` or (`None`) adopted from the store: the
    /// next generation. Another attempt already on the wire stays in flight (at most one refresh
    /// on the wire) and is superseded; otherwise the state becomes `Idle` with no cool-down.
    fn install(&mut self, now: Instant, lifetime: Option<Duration>, finished: Option<RefreshId>) {
        self.generation = self.generation.next();
        self.streak = 0;
        self.unanswered = 0;
        let access = self.access_from(now, lifetime);
        let pending = self.start_pending;
        match &mut self.state {
            State::Refreshing { access: current, phase: Phase::InFlight { id, .. }, .. }
                if Some(*id) != finished && Some(*id) != pending =>
            {
                *current = access;
            }
            // The attempt that brought the token, or one not yet handed out (it can be dropped:
            // it never reached the wire), ends here.
            _ => {
                self.start_pending = None;
                self.state = State::Idle { access, retry_at: Instant::ZERO };
            }
        }
        self.settle(now);
    }

    /// True while an exhausted episode's cool-down holds.
    fn cooling(&self, now: Instant) -> bool {
        matches!(self.state, State::Idle { retry_at, .. } if now < retry_at)
    }

    fn park(&mut self, now: Instant, id: RequestId, replays: u8) -> Result<(), Rejected> {
        if self.cooling(now) {
            // Nothing would bring a token before the cool-down ends: say so at once.
            return Err(Rejected { id, reason: Rejection::RefreshUnavailable });
        }
        let deadline_at = now.saturating_add(self.config.wait_timeout);
        self.queue
            .push(Parked { id, replays, deadline_at, fate: None })
            .map_err(|reason| Rejected { id, reason })
    }

    /// Starts a refresh if requests wait for a token and nothing else will bring one.
    fn settle(&mut self, now: Instant) {
        if let State::Idle { access, .. } = self.state
            && !access.is_usable(now)
            && self.queue.has_waiting()
        {
            self.start_episode(now);
        }
    }

    /// From `Idle`: the first attempt of a new episode, unless a cool-down holds.
    fn start_episode(&mut self, now: Instant) {
        if let State::Idle { access, retry_at } = self.state
            && now >= retry_at
        {
            // Rebuilt from its fields so that LLVM stores scalars instead of copying the value
            // onto itself (or, should the layouts of `Idle` and `Refreshing` ever differ,
            // lowering an overlapping copy to `memmove`, 1.5 KiB of flash on thumbv7em).
            let access = match access {
                Access::Expired => Access::Expired,
                Access::Valid { refresh_at, stale_at } => Access::Valid { refresh_at, stale_at },
            };
            self.state =
                State::Refreshing { access, failures: 0, phase: Phase::Backoff { retry_at: now } };
            self.start_attempt(now);
        }
    }

    /// The next attempt of the running episode.
    fn start_attempt(&mut self, now: Instant) {
        if let State::Refreshing { phase, .. } = &mut self.state {
            let id = self.next_refresh;
            self.next_refresh = RefreshId(id.0.saturating_add(1));
            let timeout_at = now.saturating_add(self.config.refresh_timeout);
            *phase = Phase::InFlight { id, timeout_at, base: self.generation };
            event!(debug, "{id} starts (base {})", self.generation);
            self.start_pending = Some(id);
        }
    }

    /// The attempt in flight failed transiently, or went `unanswered` (lost or timed out): back
    /// off, or end the episode with a cool-down, or stop presenting a refresh token that may
    /// have been rotated already.
    fn fail_attempt(&mut self, now: Instant, retry_after: Option<Duration>, unanswered: bool) {
        let State::Refreshing { access, failures, .. } = self.state else {
            return;
        };
        if unanswered {
            self.unanswered = self.unanswered.saturating_add(1);
            if self.unanswered >= u32::from(self.config.max_unanswered) {
                self.enter_failed(FailCause::Unanswered);
                return;
            }
        }
        let failures = failures.saturating_add(1);
        self.streak = self.streak.saturating_add(1);
        let backoff = self.config.backoff;
        let delay = match retry_after {
            Some(hint) => hint.min(backoff.max),
            None => {
                let failures = u8::try_from(self.streak).unwrap_or(u8::MAX);
                self.jitter(backoff.base_delay(failures))
            }
        };
        let retry_at = now.saturating_add(delay);
        if failures >= self.config.max_refresh_attempts {
            event!(
                warn,
                "refresh gave up after {failures} failures; credentials kept, cool-down {delay}"
            );
            self.queue.doom_all(Rejection::RefreshUnavailable);
            // A token still usable stays usable, but no new proactive episode starts for it:
            // the next one starts when it turns stale, and not before the cool-down ends.
            let access = match access {
                Access::Valid { stale_at, .. } if now < stale_at => {
                    Access::Valid { refresh_at: stale_at, stale_at }
                }
                _ => Access::Expired,
            };
            self.state = State::Idle { access, retry_at };
            return;
        }
        event!(info, "refresh failed ({failures} so far), retry in {delay}");
        self.state = State::Refreshing { access, failures, phase: Phase::Backoff { retry_at } };
    }

    /// The refresh token was refused. An access token still usable keeps working until it
    /// turns stale ([`State::Refused`]); otherwise the credentials are gone.
    fn refuse(&mut self, now: Instant, access: Access) {
        if access.is_usable(now) {
            event!(warn, "refresh refused; the access token is used until it turns stale");
            self.state = State::Refused { access };
        } else {
            self.enter_failed(FailCause::Refused);
        }
    }

    fn enter_failed(&mut self, cause: FailCause) {
        event!(warn, "credentials lost ({cause:?}); {} parked requests rejected", self.queue.len());
        self.queue.doom_all(Rejection::NeedsLogin);
        self.start_pending = None;
        self.state = State::Failed { cause };
    }

    /// New credentials (or none): results of attempts started before now are superseded.
    fn begin_session(&mut self) {
        self.session_start = self.next_refresh;
        self.start_pending = None;
        self.streak = 0;
        self.unanswered = 0;
    }

    const fn check_live(&self, id: RefreshId) -> Result<(), RefreshResultError> {
        if id.0 == 0 || id.0 > self.announced.0 {
            Err(RefreshResultError::Unknown)
        } else if id.0 < self.session_start.0 {
            Err(RefreshResultError::Superseded)
        } else {
            Ok(())
        }
    }

    fn action_ready(&self) -> bool {
        if self.start_pending.is_some_and(|id| self.refresh_in_flight() == Some(id)) {
            return true;
        }
        self.queue.front().is_some_and(|p| p.fate.is_some() || self.has_usable_token())
    }

    /// A delay drawn uniformly from `[base / 2, base]` ("equal jitter").
    ///
    /// The draw is a 32x32-bit multiply-shift rather than a `%`, which on a microcontroller would
    /// link a 64-bit division routine; spreads beyond 2^32 ms (7 weeks) are clamped.
    fn jitter(&mut self, base: Duration) -> Duration {
        let half = base.div(2);
        let spread = base.millis() - half.millis();
        let range = spread.saturating_add(1).min(u64::from(u32::MAX));
        let draw = ((self.next_random() >> 32) * range) >> 32;
        half.saturating_add(Duration::from_millis(draw))
    }

    /// splitmix64: tiny, fast, and good enough to spread retries.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Access {
    /// True if requests may still go out with this token at `now`.
    #[must_use]
    pub fn is_usable(self, now: Instant) -> bool {
        matches!(self, Self::Valid { stale_at, .. } if now < stale_at)
    }
}

impl<const N: usize> Default for Coordinator<N> {
    fn default() -> Self {
        Self::new(Config::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprint_grows_by_one_queue_entry_and_one_bucket_counter_per_slot() {
        let entry = size_of::<Parked>();
        let per_slot = entry + size_of::<u16>();
        assert_eq!(size_of::<Coordinator<64>>() - size_of::<Coordinator<8>>(), 56 * per_slot);
        std::println!(
            "Coordinator<8>: {} B, Coordinator<64>: {} B, queue entry: {entry} B",
            size_of::<Coordinator<8>>(),
            size_of::<Coordinator<64>>()
        );
        std::println!(
            "TokenSet<1024, 256>: {} B, TokenSet<2048, 512>: {} B",
            size_of::<crate::TokenSet<1024, 256>>(),
            size_of::<crate::TokenSet<2048, 512>>()
        );
    }

    #[test]
    fn jitter_stays_within_half_to_full_base_and_varies() {
        let mut c = Coordinator::<1>::new(Config::DEFAULT);
        let base = Duration::from_millis(1_000);
        let draws: std::vec::Vec<u64> = (0..200).map(|_| c.jitter(base).millis()).collect();
        assert!(draws.iter().all(|&d| (500..=1_000).contains(&d)));
        assert!(draws.iter().any(|&d| d != draws[0]), "jitter must vary");
        assert_eq!(c.jitter(Duration::ZERO), Duration::ZERO);
        assert!(c.jitter(Duration::MAX) >= Duration::MAX.div(2));
        let tiny: std::vec::Vec<u64> =
            (0..50).map(|_| c.jitter(Duration::from_millis(3)).millis()).collect();
        assert!(tiny.contains(&1) && tiny.contains(&3), "both ends reachable: {tiny:?}");
    }

    #[test]
    fn same_seed_same_delays_other_seed_other_delays() {
        let seeded = |seed| {
            let backoff = crate::Backoff { seed, ..crate::Backoff::DEFAULT };
            let mut c = Coordinator::<1>::new(Config { backoff, ..Config::DEFAULT });
            (0..8).map(|_| c.jitter(Duration::from_secs(10)).millis()).collect::<std::vec::Vec<_>>()
        };
        assert_eq!(seeded(1), seeded(1));
        assert_ne!(seeded(1), seeded(2));
    }

    #[test]
    fn new_coordinator_needs_login_and_waits_on_nothing() {
        let mut c = Coordinator::<4>::default();
        assert!(c.needs_login());
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.poll_action(), None);
        let rejected = c.handle_request(Instant::ZERO, RequestId(9));
        assert_eq!(rejected, Err(Rejected { id: RequestId(9), reason: Rejection::NeedsLogin }));
    }

    #[test]
    fn pending_action_makes_the_timer_due_now() {
        let mut c = Coordinator::<4>::default();
        c.handle_restore(Instant::from_millis(7));
        assert_eq!(c.handle_request(Instant::from_millis(8), RequestId(1)), Ok(Admission::Parked));
        assert_eq!(c.poll_timeout(), Some(Instant::from_millis(8)));
        assert!(matches!(c.poll_action(), Some(Action::Refresh(_))));
        // Now the earlier of the refresh timeout and the wait deadline (both 30 s).
        assert_eq!(c.poll_timeout(), Some(Instant::from_millis(30_008)));
    }
}
