//! The simulation harness: `reauth-core` driven on a virtual clock against a scripted issuer, with
//! every invariant of the spec checked after every step.
//!
//! Two layers:
//! - [`Checked`] wraps a [`Coordinator`], forwards each input, drains the actions, and panics
//!   with a description as soon as an invariant breaks. The scenario tests, the property test and
//!   the fuzz target all drive the core through it, so they check the same invariants.
//! - [`Sim`] adds a world around it: a virtual clock, a scripted token endpoint, a protected API
//!   that judges tokens by their server-side expiry, and requests in flight, stepped event by
//!   event for a bounded number of steps.

use std::collections::{BTreeMap, VecDeque};

use reauth_core::{
    Action, Admission, Config, Coordinator, Duration, FailCause, Generation, Instant, Outcome,
    Phase, RefreshFailure, RefreshId, RefreshResultError, Rejected, Rejection, RequestId, State,
    Ticket, Verdict,
};

/// A coordinator whose every step is checked against the spec's invariants.
///
/// Each input method forwards to the coordinator, then drains [`Coordinator::poll_action`] into
/// a list that [`Checked::take_actions`] hands out, and checks:
/// 1. at most one refresh in flight: a new refresh is only started once the previous one was
///    reported, timed out, or belongs to replaced credentials;
/// 2. every parked request is released exactly once (and a request never parked is never
///    released);
/// 3. parked requests are released in the order they were parked;
/// 4. the queue never holds more than `N` entries nor an id twice;
/// 5. in `Failed`, no request is granted and no refresh starts until new credentials arrive;
/// 6. no ticket carries more replays than the replay limit;
/// 7. generations only increase and every ticket carries the current generation;
/// 9. whenever something waits on time, `poll_timeout` is `Some`;
/// 10. a live refresh success is applied; a failure for a superseded attempt changes nothing;
/// 11. one refresh token is presented at most `max_unanswered` times without a
///     confirmation (a success, an answered failure, or new credentials), so a token whose
///     answers keep getting lost is not replayed into the server's reuse detection;
/// 12. no refresh starts while an exhausted episode's cool-down holds, unless new credentials
///     arrive;
/// 13. after a refusal, the refresh token is presented no more: no refresh starts in
///     `Refused` until new credentials arrive (a login, a restore, an adoption, or a late
///     success of an earlier attempt); `Refused` only ever holds a usable access token (it
///     becomes `Failed` as the token turns stale, and `poll_timeout` names that instant), and
///     a refusal of the current attempt leaves `Refused` exactly when the access token was
///     still usable, `Failed` otherwise.
///
/// Invariant 8 (no panic) holds if the harness itself finishes.
#[derive(Debug)]
pub struct Checked<const N: usize> {
    coordinator: Coordinator<N>,
    /// The requests the harness saw parked, in parking order.
    parked: VecDeque<RequestId>,
    /// The last refresh handed out and not yet reported: its id, the instant it was handed out
    /// and the credentials session it belongs to.
    outstanding: Option<(RefreshId, Instant, u64)>,
    /// Bumped by login, restore and logout.
    session: u64,
    /// Actions drained so far and not yet taken by the caller.
    actions: Vec<Action>,
    /// Refresh attempts handed out since the refresh token was last confirmed (inv 11).
    unconfirmed: u8,
    /// The end of the cool-down that held when the current input began, if one did (inv 12).
    cooling_until: Option<Instant>,
    /// The coordinator was `Refused` when the current input began (inv 13).
    refused: bool,
    /// Counters for scenario assertions.
    pub stats: Stats,
}

/// What a [`Checked`] coordinator did, for scenario assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `Action::Refresh` handed out.
    pub refreshes: u64,
    /// Requests granted at once by `handle_request`.
    pub sent: u64,
    /// Requests parked (by `handle_request` or `handle_response`).
    pub parked: u64,
    /// Parked requests released with `Action::Send`.
    pub released: u64,
    /// `Outcome::Replay` answers (stale 401s replayed at once).
    pub stale_replays: u64,
    /// Rejections by reason, immediate or from the queue.
    pub rejected: BTreeMap<String, u64>,
}

impl<const N: usize> Checked<N> {
    /// A checked coordinator with `config`.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            coordinator: Coordinator::new(config),
            parked: VecDeque::new(),
            outstanding: None,
            session: 0,
            actions: Vec::new(),
            unconfirmed: 0,
            cooling_until: None,
            refused: false,
            stats: Stats::default(),
        }
    }

    /// The coordinator under test.
    #[must_use]
    pub const fn coordinator(&self) -> &Coordinator<N> {
        &self.coordinator
    }

    /// Takes the actions drained since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        core::mem::take(&mut self.actions)
    }

    /// The parked requests as the harness saw them, oldest first.
    #[must_use]
    pub const fn parked(&self) -> &VecDeque<RequestId> {
        &self.parked
    }

    /// [`Coordinator::handle_login`], checked.
    pub fn login(&mut self, now: Instant, lifetime: Option<Duration>) -> Generation {
        let before = self.coordinator.generation();
        let generation = self.coordinator.handle_login(now, lifetime);
        assert!(generation > before, "inv 7: login must bump the generation");
        self.new_session();
        self.settle(true);
        generation
    }

    /// [`Coordinator::handle_restore`], checked.
    pub fn restore(&mut self, now: Instant) {
        self.coordinator.handle_restore(now);
        self.new_session();
        self.settle(true);
    }

    /// [`Coordinator::handle_logout`], checked.
    pub fn logout(&mut self, now: Instant) {
        self.coordinator.handle_logout(now);
        self.new_session();
        assert!(self.coordinator.needs_login(), "logout must enter Failed");
        self.settle(false);
    }

    /// [`Coordinator::handle_adopt`], checked.
    pub fn adopt(&mut self, now: Instant, lifetime: Option<Duration>) -> Generation {
        let before = self.coordinator.generation();
        let was_failed = self.coordinator.needs_login();
        let in_flight = self.coordinator.refresh_in_flight();
        let generation = self.coordinator.handle_adopt(now, lifetime);
        assert!(generation > before, "inv 7: adoption must bump the generation");
        assert_eq!(generation, self.coordinator.generation());
        assert!(!self.coordinator.needs_login(), "adoption leaves Failed");
        if was_failed {
            self.new_session();
        } else {
            // A refresh on the wire stays there: at most one at a time.
            let timeout = self.coordinator.config().refresh_timeout;
            if let Some(id) = in_flight
                && self.outstanding.is_some_and(|(o, at, _)| o == id && now < at + timeout)
            {
                assert_eq!(self.coordinator.refresh_in_flight(), Some(id), "inv 1");
            }
            self.new_credentials();
        }
        self.settle(true);
        generation
    }

    /// [`Coordinator::handle_request`], checked.
    pub fn request(&mut self, now: Instant, id: RequestId) -> Result<Admission, Rejected> {
        self.begin_input();
        let was_failed = self.coordinator.needs_login();
        let result = self.coordinator.handle_request(now, id);
        match result {
            Ok(Admission::Send(ticket)) => {
                assert!(!was_failed, "inv 5: request granted in Failed");
                self.check_ticket(ticket, id);
                self.stats.sent += 1;
            }
            Ok(Admission::Parked) => self.note_parked(id),
            Err(rejected) => {
                assert_eq!(rejected.id, id, "a rejection hands back the request's own id");
                if was_failed {
                    assert_eq!(rejected.reason, Rejection::NeedsLogin, "inv 5");
                }
                self.note_rejected(rejected.reason);
            }
        }
        self.settle(!was_failed);
        result
    }

    /// [`Coordinator::handle_response`], checked.
    pub fn response(&mut self, now: Instant, ticket: Ticket, verdict: Verdict) -> Outcome {
        self.begin_input();
        let was_failed = self.coordinator.needs_login();
        let outcome = self.coordinator.handle_response(now, ticket, verdict);
        match outcome {
            Outcome::Done => {
                assert_ne!(verdict, Verdict::Expired, "an expired answer never finishes")
            }
            Outcome::Replay(replay) => {
                assert!(!was_failed, "inv 5: replay granted in Failed");
                assert!(replay.generation > ticket.generation, "a replay uses a newer token");
                assert_eq!(replay.replays, ticket.replays, "a stale replay is free");
                self.check_ticket(replay, ticket.id);
                self.stats.stale_replays += 1;
            }
            Outcome::Parked => {
                assert_ne!(verdict, Verdict::Accepted, "an accepted answer never parks");
                self.note_parked(ticket.id);
            }
            Outcome::Rejected(rejected) => {
                assert_eq!(rejected.id, ticket.id);
                if rejected.reason == Rejection::Unauthorized {
                    assert!(ticket.replays >= self.coordinator.config().replay_limit, "inv 6");
                    assert!(ticket.generation >= self.coordinator.generation(), "stale refusal");
                }
                self.note_rejected(rejected.reason);
            }
        }
        self.settle(!was_failed);
        outcome
    }

    /// [`Coordinator::handle_cancel`], checked.
    pub fn cancel(&mut self, now: Instant, id: RequestId) -> bool {
        self.begin_input();
        let was_failed = self.coordinator.needs_login();
        let removed = self.coordinator.handle_cancel(now, id);
        let position = self.parked.iter().position(|&p| p == id);
        assert_eq!(removed, position.is_some(), "cancel agrees with what was parked");
        if let Some(i) = position {
            self.parked.remove(i);
        }
        self.settle(!was_failed);
        removed
    }

    /// [`Coordinator::handle_refresh_success`], checked.
    pub fn refresh_success(
        &mut self,
        now: Instant,
        id: RefreshId,
        lifetime: Option<Duration>,
    ) -> Result<Generation, RefreshResultError> {
        let before = self.coordinator.generation();
        let live = self.coordinator.is_live_refresh(id);
        let result = self.coordinator.handle_refresh_success(now, id, lifetime);
        match result {
            Ok(generation) => {
                self.new_credentials();
                assert!(live, "a result for a dead attempt was applied");
                assert!(generation > before, "inv 7: a refresh bumps the generation");
                assert_eq!(generation, self.coordinator.generation());
                assert!(!self.coordinator.needs_login(), "a success leaves Failed");
            }
            Err(_) => {
                assert!(!live, "inv 10: a live refresh success was thrown away");
                assert_eq!(self.coordinator.generation(), before);
            }
        }
        if self.outstanding.is_some_and(|(o, ..)| o == id) {
            self.outstanding = None;
        }
        self.settle(true);
        result
    }

    /// [`Coordinator::handle_refresh_failure`], checked.
    pub fn refresh_failure(
        &mut self,
        now: Instant,
        id: RefreshId,
        failure: RefreshFailure,
    ) -> Result<(), RefreshResultError> {
        self.begin_input();
        let state_before = *self.coordinator.state();
        let generation_before = self.coordinator.generation();
        let was_failed = self.coordinator.needs_login();
        let current = self.coordinator.refresh_in_flight() == Some(id);
        let result = self.coordinator.handle_refresh_failure(now, id, failure);
        // Whether the access token was still usable when the failure was applied.
        let usable = match state_before {
            State::Refreshing { access, .. } => access.is_usable(self.coordinator.now()),
            _ => false,
        };
        if result.is_ok() && failure != RefreshFailure::Lost {
            // The endpoint answered: the token it was shown is known not to be spent.
            self.unconfirmed = 0;
        }
        if result.is_err() {
            // The attempt may have timed out inside this very call (time advanced first); either
            // way a rejected failure report must not log the user out. (That timeout may have
            // been the last unanswered presentation the token gets: that stop is the clock's.)
            let stopped_by_clock =
                matches!(self.coordinator.state(), State::Failed { cause: FailCause::Unanswered });
            assert!(
                was_failed || !self.coordinator.needs_login() || stopped_by_clock,
                "inv 10: a failure for a superseded refresh logged the user out \
                 (state before {state_before:?})"
            );
        } else if failure == RefreshFailure::Refused {
            // A late success of an earlier attempt supersedes the one in flight: its refusal
            // (a reuse of the rotated refresh token) must not log the user out.
            let superseded = matches!(
                state_before,
                State::Refreshing { phase: Phase::InFlight { base, .. }, .. }
                    if base < generation_before
            );
            assert!(current);
            assert_eq!(self.coordinator.is_refused(), !superseded, "inv 13: refusal of {id}");
            let kept = matches!(self.coordinator.state(), State::Refused { .. });
            assert_eq!(kept, !superseded && usable, "inv 13: a usable token is kept, no other");
            assert_eq!(self.coordinator.needs_login(), !superseded && !usable, "refusal of {id}");
        }
        if self.outstanding.is_some_and(|(o, ..)| o == id) {
            self.outstanding = None;
        }
        self.settle(!was_failed);
        result
    }

    /// [`Coordinator::handle_timeout`], checked.
    pub fn timeout(&mut self, now: Instant) {
        self.begin_input();
        let was_failed = self.coordinator.needs_login();
        self.coordinator.handle_timeout(now);
        self.settle(!was_failed);
    }

    fn new_session(&mut self) {
        self.session += 1;
        self.new_credentials();
    }

    /// Forgets what held for the refresh token before the credentials changed (invs 11-13):
    /// no unconfirmed attempt, no cool-down, no refusal.
    fn new_credentials(&mut self) {
        self.unconfirmed = 0;
        self.cooling_until = None;
        self.refused = false;
    }

    /// Notes the cool-down that holds as an input begins (inv 12).
    fn begin_input(&mut self) {
        self.cooling_until = match *self.coordinator.state() {
            State::Idle { retry_at, .. } if retry_at > Instant::ZERO => Some(retry_at),
            _ => None,
        };
        self.refused = matches!(self.coordinator.state(), State::Refused { .. });
    }

    fn note_parked(&mut self, id: RequestId) {
        assert!(!self.parked.contains(&id), "inv 4: {id} parked twice");
        self.parked.push_back(id);
        self.stats.parked += 1;
    }

    fn note_rejected(&mut self, reason: Rejection) {
        *self.stats.rejected.entry(format!("{reason:?}")).or_default() += 1;
    }

    fn check_ticket(&self, ticket: Ticket, id: RequestId) {
        assert_eq!(ticket.id, id);
        assert_eq!(ticket.generation, self.coordinator.generation(), "inv 7: stale generation");
        assert!(ticket.generation > Generation::NONE, "a ticket needs an installed token");
        assert!(ticket.replays <= self.coordinator.config().replay_limit, "inv 6: {ticket:?}");
    }

    /// Drains every action and checks the invariants that hold between inputs. `may_start` is
    /// false when the coordinator was in `Failed` before the input and the input installed no
    /// credentials: then nothing may be granted and no refresh may start.
    fn settle(&mut self, may_start: bool) {
        let generation_before = self.coordinator.generation();
        let mut drained = 0;
        while let Some(action) = self.coordinator.poll_action() {
            drained += 1;
            assert!(drained <= N + 2, "poll_action does not run dry");
            match action {
                Action::Refresh(id) => {
                    assert!(may_start, "inv 5: refresh started in Failed");
                    self.check_refresh_start(id);
                    self.stats.refreshes += 1;
                }
                Action::Send(ticket) => {
                    assert!(may_start || !self.coordinator.needs_login(), "inv 5: send in Failed");
                    self.check_release(ticket.id);
                    self.check_ticket(ticket, ticket.id);
                    self.stats.released += 1;
                }
                Action::Reject(rejected) => {
                    self.check_release(rejected.id);
                    self.note_rejected(rejected.reason);
                }
            }
            self.actions.push(action);
        }
        assert_eq!(self.coordinator.generation(), generation_before, "poll changed generation");
        self.check_queue();
        self.check_timer();
    }

    fn check_refresh_start(&mut self, id: RefreshId) {
        let now = self.coordinator.now();
        self.unconfirmed = self.unconfirmed.saturating_add(1);
        let limit = self.coordinator.config().max_unanswered.max(1);
        assert!(
            self.unconfirmed <= limit,
            "inv 11: {id} presents a refresh token for the {}th time without an answer",
            self.unconfirmed
        );
        assert!(!self.refused, "inv 13: {id} presents a refused refresh token");
        if let Some(until) = self.cooling_until {
            assert!(
                now >= until,
                "inv 12: {id} started at {now:?} during a cool-down to {until:?}"
            );
        }
        if let Some((previous, started_at, session)) = self.outstanding {
            let timed_out = now >= started_at + self.coordinator.config().refresh_timeout;
            assert!(
                timed_out || session != self.session,
                "inv 1: {id} started while {previous} (started {started_at:?}) is in flight"
            );
        }
        assert_eq!(self.coordinator.refresh_in_flight(), Some(id));
        self.outstanding = Some((id, now, self.session));
    }

    fn check_release(&mut self, id: RequestId) {
        let front = self.parked.pop_front();
        assert_eq!(front, Some(id), "inv 2/3: released {id} but the oldest parked is {front:?}");
    }

    fn check_queue(&self) {
        let ids: Vec<RequestId> = self.coordinator.parked().collect();
        assert!(ids.len() <= N, "inv 4: {} parked in a queue of {N}", ids.len());
        assert_eq!(ids, Vec::from(self.parked.clone()), "inv 2/4: queue differs from parked set");
    }

    fn check_timer(&self) {
        if let State::Refused { access } = *self.coordinator.state() {
            assert!(access.is_usable(self.coordinator.now()), "inv 13: Refused with a stale token");
            if let reauth_core::Access::Valid { stale_at, .. } = access
                && stale_at < Instant::MAX
            {
                let at = self.coordinator.poll_timeout();
                assert!(at.is_some_and(|at| at <= stale_at), "inv 13: no timer for {stale_at:?}");
            }
        }
        let waits = matches!(self.coordinator.state(), State::Refreshing { .. })
            || self.coordinator.parked_len() > 0;
        if waits {
            assert!(self.coordinator.poll_timeout().is_some(), "inv 9: waiting without a timer");
        }
    }
}

/// How the scripted token endpoint answers the next refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A new token with this lifetime (`None`: no `expires_in`).
    Success(Option<Duration>),
    /// A transient failure, with an optional `Retry-After`.
    Transient(Option<Duration>),
    /// `invalid_grant`.
    Refused,
    /// No answer until the harness gives up on it (the coordinator times it out).
    Hang,
    /// The call reached the endpoint but its answer was lost ([`RefreshFailure::Lost`]).
    Lost,
    /// A success that arrives only after this much time (longer than the refresh timeout).
    Late(Duration, Option<Duration>),
}

/// How a request in a [`Sim`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The API accepted it, sent with this generation.
    Ok(Generation),
    /// It was rejected.
    Rejected(Rejection),
}

/// A world around a [`Checked`] coordinator: a virtual clock, a scripted token endpoint and a
/// protected API that refuses tokens past their server-side expiry.
#[derive(Debug)]
pub struct Sim<const N: usize> {
    /// The coordinator under test.
    pub core: Checked<N>,
    /// Virtual time.
    pub now: Instant,
    /// One-way latency of API calls.
    pub api_latency: Duration,
    /// Latency of the token endpoint.
    pub refresh_latency: Duration,
    /// Lifetime of tokens the token endpoint issues when the script is empty.
    pub default_lifetime: Duration,
    /// Answers for the next refreshes, in order; when empty, a success with `default_lifetime`.
    pub script: VecDeque<Reply>,
    /// Server-side expiry of each generation (and `None` for revoked ones).
    expiry: BTreeMap<Generation, Option<Instant>>,
    /// Requests on the wire: ticket and arrival time of the answer.
    in_flight: Vec<(Ticket, Instant)>,
    /// Refresh calls on the wire: id, time of the answer, the answer.
    refreshes: Vec<(RefreshId, Instant, Reply)>,
    /// How each request ended.
    pub finished: BTreeMap<RequestId, Finished>,
    /// Refresh calls the token endpoint received.
    pub refresh_calls: u64,
    /// API answers "expired" per generation.
    pub unauthorized: BTreeMap<Generation, u64>,
    next_id: u32,
    steps: u64,
    /// Upper bound on steps; exceeding it fails the test (no livelock).
    pub max_steps: u64,
}

impl<const N: usize> Sim<N> {
    /// A world at time zero with the given coordinator config, logged in with a token of
    /// `lifetime`.
    #[must_use]
    pub fn logged_in(config: Config, lifetime: Duration) -> Self {
        let mut sim = Self {
            core: Checked::new(config),
            now: Instant::ZERO,
            api_latency: Duration::from_millis(20),
            refresh_latency: Duration::from_millis(50),
            default_lifetime: lifetime,
            script: VecDeque::new(),
            expiry: BTreeMap::new(),
            in_flight: Vec::new(),
            refreshes: Vec::new(),
            finished: BTreeMap::new(),
            refresh_calls: 0,
            unauthorized: BTreeMap::new(),
            next_id: 1,
            steps: 0,
            max_steps: 100_000,
        };
        let generation = sim.core.login(sim.now, Some(lifetime));
        sim.expiry.insert(generation, Some(sim.now + lifetime));
        sim
    }

    /// Starts `count` requests now; returns their ids.
    pub fn send(&mut self, count: u32) -> Vec<RequestId> {
        let ids: Vec<RequestId> = (0..count).map(|i| RequestId(self.next_id + i)).collect();
        self.next_id += count;
        for &id in &ids {
            match self.core.request(self.now, id) {
                Ok(Admission::Send(ticket)) => self.put_on_wire(ticket),
                Ok(Admission::Parked) => {}
                Err(rejected) => {
                    self.finished.insert(id, Finished::Rejected(rejected.reason));
                }
            }
            self.carry_out();
        }
        ids
    }

    /// Server-side: every token issued so far expires now.
    pub fn expire_all(&mut self) {
        let now = self.now;
        for expiry in self.expiry.values_mut() {
            *expiry = Some(expiry.map_or(now, |e| e.min(now)));
        }
    }

    /// Runs the world until `until` or until nothing is left to happen, whichever is first.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(next) = self.next_event().filter(|&t| t <= until) {
            self.steps += 1;
            assert!(self.steps <= self.max_steps, "no progress after {} steps", self.max_steps);
            self.now = self.now.max(next);
            self.step();
        }
        self.now = self.now.max(until);
        self.core.timeout(self.now);
        self.carry_out();
    }

    /// Runs until nothing waits any more (bounded by `max_steps`).
    pub fn run_to_quiet(&mut self) {
        while let Some(next) = self.next_event() {
            self.run_until(next);
        }
    }

    /// Requests that ended, by outcome.
    #[must_use]
    pub fn count(&self, what: Finished) -> usize {
        self.finished.values().filter(|&&f| f == what).count()
    }

    fn next_event(&self) -> Option<Instant> {
        let wire = self.in_flight.iter().map(|&(_, at)| at);
        let refresh = self.refreshes.iter().map(|&(_, at, _)| at);
        let timer = self.core.coordinator().poll_timeout();
        wire.chain(refresh).chain(timer).min()
    }

    fn step(&mut self) {
        let now = self.now;
        if let Some(i) = self.refreshes.iter().position(|&(_, at, _)| at <= now) {
            let (id, _, reply) = self.refreshes.remove(i);
            self.answer_refresh(id, reply);
        } else if let Some(i) = self.in_flight.iter().position(|&(_, at)| at <= now) {
            let (ticket, _) = self.in_flight.remove(i);
            self.answer_request(ticket);
        } else {
            self.core.timeout(now);
        }
        self.carry_out();
    }

    fn answer_refresh(&mut self, id: RefreshId, reply: Reply) {
        let now = self.now;
        match reply {
            Reply::Success(lifetime) | Reply::Late(_, lifetime) => {
                if let Ok(generation) = self.core.refresh_success(now, id, lifetime) {
                    self.expiry.insert(generation, lifetime.map(|l| now + l));
                }
            }
            Reply::Transient(retry_after) => {
                let _ =
                    self.core.refresh_failure(now, id, RefreshFailure::Transient { retry_after });
            }
            Reply::Refused => {
                let _ = self.core.refresh_failure(now, id, RefreshFailure::Refused);
            }
            Reply::Lost => {
                let _ = self.core.refresh_failure(now, id, RefreshFailure::Lost);
            }
            Reply::Hang => {}
        }
    }

    fn answer_request(&mut self, ticket: Ticket) {
        let valid =
            self.expiry.get(&ticket.generation).is_some_and(|e| e.is_none_or(|e| self.now < e));
        let verdict = if valid { Verdict::Accepted } else { Verdict::Expired };
        if !valid {
            *self.unauthorized.entry(ticket.generation).or_default() += 1;
        }
        match self.core.response(self.now, ticket, verdict) {
            Outcome::Done => {
                self.finished.insert(ticket.id, Finished::Ok(ticket.generation));
            }
            Outcome::Replay(replay) => self.put_on_wire(replay),
            Outcome::Parked => {}
            Outcome::Rejected(rejected) => {
                self.finished.insert(ticket.id, Finished::Rejected(rejected.reason));
            }
        }
    }

    fn put_on_wire(&mut self, ticket: Ticket) {
        self.in_flight.push((ticket, self.now + self.api_latency));
    }

    /// Carries out every action the coordinator asked for.
    fn carry_out(&mut self) {
        for action in self.core.take_actions() {
            match action {
                Action::Refresh(id) => {
                    self.refresh_calls += 1;
                    let reply = self
                        .script
                        .pop_front()
                        .unwrap_or(Reply::Success(Some(self.default_lifetime)));
                    let delay = match reply {
                        Reply::Late(after, _) => after,
                        Reply::Hang => continue,
                        _ => self.refresh_latency,
                    };
                    self.refreshes.push((id, self.now + delay, reply));
                }
                Action::Send(ticket) => self.put_on_wire(ticket),
                Action::Reject(rejected) => {
                    self.finished.insert(rejected.id, Finished::Rejected(rejected.reason));
                }
            }
        }
    }
}
