//! Property test: random sequences of every core input, run against the coordinator (through the
//! invariant-checking harness) and against a plain reference model written from the spec with std
//! collections and flat fields. After every step the two must agree on every immediate answer,
//! every action drained, the state, the generation and the queue; the harness checks every
//! invariant on the way.
//!
//! `PROPTEST_CASES` overrides the number of sequences (default 4096 of up to 60 steps).

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use reauth_core::{
    Action, Admission, Backoff, Config, Duration, Generation, Instant, Outcome, RefreshFailure,
    RefreshId, RefreshResultError, Rejected, Rejection, RequestId, State, Ticket, Verdict,
};
use reauth_testkit::sim::Checked;

/// Queue capacity under test: small, so that "queue full" happens often.
const N: usize = 4;

fn config() -> Config {
    Config {
        refresh_ahead: Duration::from_millis(300),
        expiry_margin: Duration::from_millis(100),
        refresh_timeout: Duration::from_millis(500),
        wait_timeout: Duration::from_millis(800),
        replay_limit: 1,
        max_refresh_attempts: 2,
        max_unanswered: 3,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            seed: 0x5eed,
        },
    }
}

/// One input, with "picks" that choose among the tickets or refresh ids outstanding.
#[derive(Clone, Debug)]
enum Input {
    Request,
    RequestDuplicate(usize),
    Respond { pick: usize, verdict: Verdict },
    RefreshOk { pick: usize, lifetime: Option<u64> },
    RefreshFail { pick: usize, kind: FailKind, retry_after: Option<u64> },
    Adopt(Option<u64>),
    Advance(u64),
    Back(u64),
    JumpToExtreme,
    Login(Option<u64>),
    Restore,
    Logout,
    Cancel(usize),
}

/// How a refresh attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailKind {
    Refused,
    Transient,
    Lost,
}

/// Everything the coordinator answered to one input.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Admit(Result<Admission, Rejected>),
    Respond(Outcome),
    Refresh(Result<(), RefreshResultError>),
    Cancel(bool),
    Nothing,
}

#[derive(Clone, Copy, Debug)]
enum Subject {
    None,
    Request(RequestId),
    Ticket(Ticket),
    Refresh(RefreshId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Expired,
    Valid { refresh_at: u64, stale_at: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Attempt {
    id: u32,
    timeout_at: u64,
    base: u32,
}

#[derive(Clone, Copy, Debug)]
struct Episode {
    failures: u8,
    /// `None` while backing off until `retry_at`.
    attempt: Option<Attempt>,
    retry_at: u64,
}

#[derive(Clone, Copy, Debug)]
struct Waiting {
    id: u32,
    replays: u8,
    deadline: u64,
    fate: Option<Rejection>,
}

/// The reference model: the spec's rules over plain fields.
#[derive(Clone, Debug)]
struct Model {
    now: u64,
    logged_out: bool,
    generation: u32,
    token: Token,
    episode: Option<Episode>,
    waiting: Vec<Waiting>,
    next_refresh: u32,
    session_start: u32,
    announce: Option<u32>,
    rng: u64,
    /// Failed attempts since the last new credentials: the backoff exponent.
    streak: u8,
    /// Lost or timed-out presentations of the current refresh token.
    unanswered: u8,
    /// No episode starts before this instant (0: no cool-down).
    cool_until: u64,
    /// The refresh token was refused while the access token was still usable: it is used
    /// until it turns stale (or the server refuses it), and no refresh starts.
    refused: bool,
    /// Tickets of requests on the wire, for `Respond` picks.
    wire: Vec<Ticket>,
    /// Refresh ids handed out, for `RefreshOk`/`RefreshFail` picks (latest last).
    handed: Vec<u32>,
    next_request: u32,
    /// What the last input was about: the request id, ticket or refresh id it picked.
    subject: Subject,
    /// What the coordinator must answer to the last input, then the actions it must drain.
    answer: Answer,
    actions: Vec<Action>,
}

impl Model {
    fn new() -> Self {
        Self {
            now: 0,
            logged_out: true,
            generation: 0,
            token: Token::Expired,
            episode: None,
            waiting: Vec::new(),
            next_refresh: 1,
            session_start: 1,
            announce: None,
            rng: config().backoff.seed,
            streak: 0,
            unanswered: 0,
            cool_until: 0,
            refused: false,
            wire: Vec::new(),
            handed: Vec::new(),
            next_request: 1,
            subject: Subject::None,
            answer: Answer::Nothing,
            actions: Vec::new(),
        }
    }

    fn usable(&self) -> bool {
        !self.logged_out
            && matches!(self.token, Token::Valid { stale_at, .. } if self.now < stale_at)
    }

    fn ticket(&self, id: u32, replays: u8) -> Ticket {
        Ticket { id: RequestId(id), generation: Generation(self.generation), replays }
    }

    fn token_for(&self, lifetime: Option<u64>) -> Token {
        let Some(life) = lifetime else {
            return Token::Valid { refresh_at: u64::MAX, stale_at: u64::MAX };
        };
        let c = config();
        let margin = c.expiry_margin.millis().min(life / 4);
        let stale_after = life - margin;
        let ahead = c.refresh_ahead.millis().min(stale_after / 2);
        Token::Valid {
            refresh_at: self.now.saturating_add(stale_after - ahead),
            stale_at: self.now.saturating_add(stale_after),
        }
    }

    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn tick(&mut self, t: u64) {
        self.now = self.now.max(t);
        if let Some(ep) = self.episode
            && let Some(a) = ep.attempt
            && self.now >= a.timeout_at
        {
            self.attempt_failed(None, true);
        }
        if let Some(ep) = self.episode
            && ep.attempt.is_none()
            && self.now >= ep.retry_at
        {
            self.launch();
        }
        if self.refused && !self.usable() {
            self.refused_and_dead();
        }
        let now = self.now;
        for w in &mut self.waiting {
            if w.fate.is_none() && w.deadline <= now {
                w.fate = Some(Rejection::Timeout);
            }
        }
    }

    fn launch(&mut self) {
        let id = self.next_refresh;
        self.next_refresh += 1;
        let attempt =
            Attempt { id, timeout_at: self.now.saturating_add(500), base: self.generation };
        let failures = self.episode.map_or(0, |e| e.failures);
        self.episode = Some(Episode { failures, attempt: Some(attempt), retry_at: 0 });
        self.announce = Some(id);
    }

    fn attempt_failed(&mut self, hint: Option<u64>, unanswered: bool) {
        let Some(ep) = self.episode else { return };
        if unanswered {
            self.unanswered += 1;
            if self.unanswered >= 3 {
                self.doom(Rejection::NeedsLogin);
                self.logged_out = true;
                self.episode = None;
                self.announce = None;
                return;
            }
        }
        let failures = ep.failures + 1;
        self.streak = self.streak.saturating_add(1);
        let delay = match hint {
            Some(h) => h.min(400),
            None => {
                let base = (100u64 << (self.streak - 1).min(8)).min(400);
                let half = base / 2;
                half + (((self.random() >> 32) * (base - half + 1)) >> 32)
            }
        };
        if failures >= 2 {
            self.doom(Rejection::RefreshUnavailable);
            if let Token::Valid { stale_at, .. } = self.token {
                if self.now < stale_at {
                    self.token = Token::Valid { refresh_at: stale_at, stale_at };
                } else {
                    self.token = Token::Expired;
                }
            }
            self.episode = None;
            self.cool_until = self.now.saturating_add(delay);
            return;
        }
        self.episode =
            Some(Episode { failures, attempt: None, retry_at: self.now.saturating_add(delay) });
    }

    /// A refused refresh token and no usable access token: the credentials are gone.
    fn refused_and_dead(&mut self) {
        self.doom(Rejection::NeedsLogin);
        self.logged_out = true;
        self.refused = false;
        self.episode = None;
        self.announce = None;
    }

    fn cooling(&self) -> bool {
        self.episode.is_none() && !self.logged_out && self.now < self.cool_until
    }

    fn doom(&mut self, reason: Rejection) {
        for w in &mut self.waiting {
            w.fate.get_or_insert(reason);
        }
    }

    fn park(&mut self, id: u32, replays: u8) -> Result<(), Rejected> {
        let reject = |reason| Err(Rejected { id: RequestId(id), reason });
        if self.cooling() {
            return reject(Rejection::RefreshUnavailable);
        }
        if self.waiting.iter().any(|w| w.id == id) {
            return reject(Rejection::DuplicateRequest);
        }
        if self.waiting.len() == N {
            return reject(Rejection::QueueFull);
        }
        let deadline = self.now.saturating_add(800);
        self.waiting.push(Waiting { id, replays, deadline, fate: None });
        Ok(())
    }

    fn kick(&mut self) {
        let needs = self.waiting.iter().any(|w| w.fate.is_none());
        if !self.logged_out
            && !self.refused
            && self.episode.is_none()
            && !self.usable()
            && needs
            && !self.cooling()
        {
            self.launch();
        }
    }

    fn new_credentials(&mut self) {
        self.session_start = self.next_refresh;
        self.announce = None;
        self.episode = None;
        self.fresh_token();
    }

    /// A new refresh token (or none): the counters and the cool-down start over.
    fn fresh_token(&mut self) {
        self.streak = 0;
        self.unanswered = 0;
        self.cool_until = 0;
        self.refused = false;
    }

    /// A new access token from attempt `finished` (or adopted: `None`); an attempt already
    /// announced stays in flight.
    fn install(&mut self, lifetime: Option<u64>, finished: Option<u32>) {
        self.generation += 1;
        self.logged_out = false;
        self.token = self.token_for(lifetime);
        self.fresh_token();
        match self.episode {
            Some(Episode { attempt: Some(a), .. })
                if Some(a.id) != finished && self.announce != Some(a.id) => {}
            _ => {
                self.episode = None;
                self.announce = None;
            }
        }
        self.kick();
    }

    fn request(&mut self, id: u32) -> Result<Admission, Rejected> {
        if self.logged_out {
            return Err(Rejected { id: RequestId(id), reason: Rejection::NeedsLogin });
        }
        if self.usable() {
            if let (None, Token::Valid { refresh_at, .. }) = (self.episode, self.token)
                && self.now >= refresh_at
                && !self.cooling()
                && !self.refused
            {
                self.launch();
            }
            return Ok(Admission::Send(self.ticket(id, 0)));
        }
        let parked = self.park(id, 0);
        self.kick();
        parked.map(|()| Admission::Parked)
    }

    fn respond(&mut self, ticket: Ticket, verdict: Verdict) -> Outcome {
        let id = ticket.id.0;
        match verdict {
            Verdict::Accepted => return Outcome::Done,
            Verdict::Forbidden if ticket.generation.0 < self.generation && self.usable() => {
                return Outcome::Replay(self.ticket(id, ticket.replays));
            }
            Verdict::Forbidden
                if ticket.replays < 1
                    && matches!(self.episode, Some(Episode { attempt: Some(_), .. })) =>
            {
                self.token = Token::Expired;
                let parked = self.park(id, ticket.replays + 1);
                self.kick();
                return match parked {
                    Ok(()) => Outcome::Parked,
                    Err(r) => Outcome::Rejected(r),
                };
            }
            Verdict::Forbidden => return Outcome::Done,
            Verdict::Expired => {}
        }
        let reject = |reason| Outcome::Rejected(Rejected { id: RequestId(id), reason });
        if self.logged_out {
            return reject(Rejection::NeedsLogin);
        }
        let stale = ticket.generation.0 < self.generation;
        if stale && self.usable() {
            return Outcome::Replay(self.ticket(id, ticket.replays));
        }
        if !stale && ticket.replays >= 1 {
            return reject(Rejection::Unauthorized);
        }
        let replays = if stale { ticket.replays } else { ticket.replays + 1 };
        if !stale {
            self.token = Token::Expired;
            if self.refused {
                self.refused_and_dead();
                return reject(Rejection::NeedsLogin);
            }
        }
        let parked = self.park(id, replays);
        self.kick();
        match parked {
            Ok(()) => Outcome::Parked,
            Err(r) => Outcome::Rejected(r),
        }
    }

    fn live(&self, id: u32) -> Result<(), RefreshResultError> {
        if id >= self.next_refresh {
            Err(RefreshResultError::Unknown)
        } else if id < self.session_start {
            Err(RefreshResultError::Superseded)
        } else {
            Ok(())
        }
    }

    fn refresh_ok(&mut self, id: u32, lifetime: Option<u64>) -> Result<(), RefreshResultError> {
        self.live(id)?;
        self.install(lifetime, Some(id));
        Ok(())
    }

    fn refresh_fail(
        &mut self,
        id: u32,
        kind: FailKind,
        hint: Option<u64>,
    ) -> Result<(), RefreshResultError> {
        self.live(id)?;
        let attempt = match self.episode {
            Some(Episode { attempt: Some(a), .. }) if !self.logged_out && a.id == id => a,
            _ => return Err(RefreshResultError::NotCurrent),
        };
        if attempt.base < self.generation {
            self.episode = None;
        } else {
            match kind {
                // An early refresh refused: the access token stays in use until it is stale.
                FailKind::Refused if self.usable() => {
                    self.refused = true;
                    self.episode = None;
                    self.announce = None;
                }
                FailKind::Refused => self.refused_and_dead(),
                FailKind::Transient => self.attempt_failed(hint, false),
                FailKind::Lost => self.attempt_failed(None, true),
            }
        }
        self.kick();
        Ok(())
    }

    /// Drains the actions the coordinator must hand out now, as `poll_action` would.
    fn drain(&mut self) {
        self.actions.clear();
        if let Some(id) = self.announce.take()
            && matches!(self.episode, Some(Episode { attempt: Some(a), .. }) if a.id == id)
        {
            self.actions.push(Action::Refresh(RefreshId(id)));
            self.handed.push(id);
        }
        while let Some(front) = self.waiting.first().copied() {
            let action = match front.fate {
                Some(reason) => Action::Reject(Rejected { id: RequestId(front.id), reason }),
                None if self.usable() => {
                    let ticket = self.ticket(front.id, front.replays);
                    self.wire.push(ticket);
                    Action::Send(ticket)
                }
                None => break,
            };
            self.waiting.remove(0);
            self.actions.push(action);
        }
    }

    fn pick<T: Copy>(items: &[T], pick: usize) -> Option<T> {
        (!items.is_empty()).then(|| items[pick % items.len()])
    }

    /// Three picks in four take the latest attempt: results for it are the ones that move an
    /// episode on (to a backoff, an exhausted episode, a cool-down), so they must be common.
    fn pick_refresh(handed: &[u32], pick: usize) -> Option<u32> {
        if !pick.is_multiple_of(4) { handed.last().copied() } else { Self::pick(handed, pick / 4) }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Input;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::new()).boxed()
    }

    fn transitions(m: &Model) -> BoxedStrategy<Input> {
        let lifetime = prop_oneof![3 => (0u64..3_000).prop_map(Some), 1 => Just(None)];
        // An early refresh (the access token still usable) is short-lived in these sequences:
        // while one is on the wire, refusals are made likelier so that keeping the token after
        // a refused early refresh is exercised.
        let early = m.usable()
            && matches!(m.episode, Some(Episode { attempt: Some(a), .. }) if a.base == m.generation);
        let kind = prop_oneof![
            if early { 6 } else { 1 } => Just(FailKind::Refused),
            4 => Just(FailKind::Transient),
            1 => Just(FailKind::Lost)
        ];
        prop_oneof![
            8 => Just(Input::Request),
            1 => any::<usize>().prop_map(Input::RequestDuplicate),
            8 => (any::<usize>(), prop_oneof![
                    4 => Just(Verdict::Accepted),
                    3 => Just(Verdict::Expired),
                    1 => Just(Verdict::Forbidden)
                ])
                .prop_map(|(pick, verdict)| Input::Respond { pick, verdict }),
            4 => (any::<usize>(), lifetime.clone())
                .prop_map(|(pick, lifetime)| Input::RefreshOk { pick, lifetime }),
            5 => (any::<usize>(), kind, prop::option::of(0u64..1_000))
                .prop_map(|(pick, kind, retry_after)| Input::RefreshFail { pick, kind, retry_after }),
            1 => lifetime.clone().prop_map(Input::Adopt),
            6 => (0u64..700).prop_map(Input::Advance),
            1 => (0u64..5_000).prop_map(Input::Back),
            1 => Just(Input::JumpToExtreme),
            2 => lifetime.prop_map(Input::Login),
            1 => Just(Input::Restore),
            1 => Just(Input::Logout),
            1 => any::<usize>().prop_map(Input::Cancel),
        ]
        .boxed()
    }

    fn apply(mut m: Model, input: &Input) -> Model {
        let now = m.now;
        m.subject = Subject::None;
        m.answer = match *input {
            Input::Request | Input::RequestDuplicate(_) => {
                let id = if let Input::RequestDuplicate(pick) = *input {
                    let ids: Vec<u32> = m.waiting.iter().map(|w| w.id).collect();
                    Model::pick(&ids, pick).unwrap_or(0)
                } else {
                    m.next_request += 1;
                    m.next_request - 1
                };
                m.subject = Subject::Request(RequestId(id));
                m.tick(now);
                let result = m.request(id);
                if let Ok(Admission::Send(t)) = result {
                    m.wire.push(t);
                }
                Answer::Admit(result)
            }
            Input::Respond { pick, verdict } => match Model::pick(&m.wire, pick) {
                None => Answer::Nothing,
                Some(ticket) => {
                    m.subject = Subject::Ticket(ticket);
                    m.wire.retain(|t| t.id != ticket.id);
                    m.tick(now);
                    let outcome = m.respond(ticket, verdict);
                    if let Outcome::Replay(t) = outcome {
                        m.wire.push(t);
                    }
                    Answer::Respond(outcome)
                }
            },
            Input::RefreshOk { pick, lifetime } => match Model::pick_refresh(&m.handed, pick) {
                None => Answer::Nothing,
                Some(id) => {
                    m.subject = Subject::Refresh(RefreshId(id));
                    m.tick(now);
                    Answer::Refresh(m.refresh_ok(id, lifetime))
                }
            },
            Input::RefreshFail { pick, kind, retry_after } => {
                match Model::pick_refresh(&m.handed, pick) {
                    None => Answer::Nothing,
                    Some(id) => {
                        m.subject = Subject::Refresh(RefreshId(id));
                        m.tick(now);
                        Answer::Refresh(m.refresh_fail(id, kind, retry_after))
                    }
                }
            }
            Input::Adopt(lifetime) => {
                m.tick(now);
                if m.logged_out {
                    m.new_credentials();
                }
                m.install(lifetime, None);
                Answer::Nothing
            }
            Input::Advance(ms) => {
                m.tick(now.saturating_add(ms));
                Answer::Nothing
            }
            Input::Back(ms) => {
                m.tick(now.saturating_sub(ms));
                Answer::Nothing
            }
            Input::JumpToExtreme => {
                m.tick(u64::MAX - 1_000);
                Answer::Nothing
            }
            Input::Login(lifetime) => {
                m.tick(now);
                m.new_credentials();
                m.generation += 1;
                m.logged_out = false;
                m.token = m.token_for(lifetime);
                m.kick();
                Answer::Nothing
            }
            Input::Restore => {
                m.tick(now);
                m.new_credentials();
                m.logged_out = false;
                m.token = Token::Expired;
                m.kick();
                Answer::Nothing
            }
            Input::Logout => {
                m.tick(now);
                m.new_credentials();
                m.doom(Rejection::NeedsLogin);
                m.logged_out = true;
                Answer::Nothing
            }
            Input::Cancel(pick) => {
                let ids: Vec<u32> = m.waiting.iter().map(|w| w.id).collect();
                match Model::pick(&ids, pick) {
                    None => Answer::Nothing,
                    Some(id) => {
                        m.subject = Subject::Request(RequestId(id));
                        m.tick(now);
                        m.waiting.retain(|w| w.id != id);
                        Answer::Cancel(true)
                    }
                }
            }
        };
        m.drain();
        m
    }
}

struct Coordinator;

impl StateMachineTest for Coordinator {
    type SystemUnderTest = Checked<N>;
    type Reference = Reference;

    fn init_test(_: &Model) -> Checked<N> {
        Checked::new(config())
    }

    fn apply(mut sut: Checked<N>, m: &Model, input: Input) -> Checked<N> {
        let now = sut.coordinator().now();
        let at = |ms: u64| Instant::from_millis(ms);
        let answer = match (input.clone(), m.subject) {
            (Input::Request | Input::RequestDuplicate(_), Subject::Request(id)) => {
                Answer::Admit(sut.request(now, id))
            }
            (Input::Respond { verdict, .. }, Subject::Ticket(ticket)) => {
                Answer::Respond(sut.response(now, ticket, verdict))
            }
            (Input::RefreshOk { lifetime, .. }, Subject::Refresh(id)) => Answer::Refresh(
                sut.refresh_success(now, id, lifetime.map(Duration::from_millis)).map(|_| ()),
            ),
            (Input::RefreshFail { kind, retry_after, .. }, Subject::Refresh(id)) => {
                let failure = match kind {
                    FailKind::Refused => RefreshFailure::Refused,
                    FailKind::Transient => RefreshFailure::Transient {
                        retry_after: retry_after.map(Duration::from_millis),
                    },
                    FailKind::Lost => RefreshFailure::Lost,
                };
                Answer::Refresh(sut.refresh_failure(now, id, failure))
            }
            (Input::Cancel(_), Subject::Request(id)) => Answer::Cancel(sut.cancel(now, id)),
            (Input::Advance(ms), _) => {
                sut.timeout(at(now.millis().saturating_add(ms)));
                Answer::Nothing
            }
            (Input::Back(ms), _) => {
                sut.timeout(at(now.millis().saturating_sub(ms)));
                Answer::Nothing
            }
            (Input::JumpToExtreme, _) => {
                sut.timeout(at(u64::MAX - 1_000));
                Answer::Nothing
            }
            (Input::Login(lifetime), _) => {
                sut.login(now, lifetime.map(Duration::from_millis));
                Answer::Nothing
            }
            (Input::Adopt(lifetime), _) => {
                sut.adopt(now, lifetime.map(Duration::from_millis));
                Answer::Nothing
            }
            (Input::Restore, _) => {
                sut.restore(now);
                Answer::Nothing
            }
            (Input::Logout, _) => {
                sut.logout(now);
                Answer::Nothing
            }
            // A pick among nothing: no input reaches the coordinator.
            _ => Answer::Nothing,
        };
        assert_eq!(answer, m.answer, "answer to {input:?}");
        assert_eq!(sut.take_actions(), m.actions, "actions after {input:?}");
        let c = sut.coordinator();
        assert_eq!(c.now().millis(), m.now, "clock");
        assert_eq!(c.generation(), Generation(m.generation), "generation");
        assert_eq!(c.needs_login(), m.logged_out, "needs login; state {:?}", c.state());
        let refused = matches!(c.state(), State::Refused { .. });
        assert_eq!(refused, m.refused, "refused; state {:?} vs {m:?}", c.state());
        let refreshing = matches!(c.state(), State::Refreshing { .. });
        assert_eq!(
            refreshing,
            m.episode.is_some() && !m.logged_out,
            "state {:?} vs {m:?}",
            c.state()
        );
        let queue: Vec<u32> = c.parked().map(|id| id.0).collect();
        let expected: Vec<u32> = m.waiting.iter().map(|w| w.id).collect();
        assert_eq!(queue, expected, "queue");
        assert_eq!(c.has_usable_token(), m.usable(), "usable token");
        sut
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4096)
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]
    #[test]
    fn coordinator_agrees_with_the_reference_model(sequential 1..60 => Coordinator);
}

/// The random sequences are only worth something if they reach the interesting corners. Replays
/// 2000 generated sequences through the reference model (which the test above holds equal to the
/// coordinator) and checks that each outcome below occurs.
#[test]
fn random_sequences_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let strategy = Reference::sequential_strategy(1..60);
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..2_000 {
        let (mut model, inputs, _) = strategy.new_tree(&mut runner).unwrap().current();
        for input in inputs {
            model = Reference::apply(model, &input);
            let answer = match &model.answer {
                Answer::Admit(Ok(Admission::Send(_))) => "request sent".to_owned(),
                Answer::Admit(Ok(Admission::Parked)) => "request parked".to_owned(),
                Answer::Admit(Err(r)) => format!("request rejected {:?}", r.reason),
                Answer::Respond(Outcome::Replay(_)) => "stale 401 replayed".to_owned(),
                Answer::Respond(Outcome::Rejected(r)) => {
                    format!("response rejected {:?}", r.reason)
                }
                Answer::Respond(o) => format!("response {o:?}").chars().take(14).collect(),
                Answer::Refresh(Ok(())) => "refresh result applied".to_owned(),
                Answer::Refresh(Err(e)) => format!("refresh result {e:?}"),
                Answer::Cancel(_) => "cancel".to_owned(),
                Answer::Nothing => "nothing".to_owned(),
            };
            seen.insert(answer);
            for action in &model.actions {
                seen.insert(match action {
                    Action::Refresh(_) => "refresh started".to_owned(),
                    Action::Send(_) => "parked request sent".to_owned(),
                    Action::Reject(r) => format!("parked request rejected {:?}", r.reason),
                });
            }
            if model.episode.is_some_and(|e| e.attempt.is_none()) {
                seen.insert("backing off".to_owned());
            }
            if model.cooling() {
                seen.insert("cooling down".to_owned());
            }
            if model.logged_out && model.unanswered >= 3 {
                seen.insert("stopped after unanswered presentations".to_owned());
            }
            if matches!(input, Input::Adopt(_)) {
                seen.insert("adopted".to_owned());
            }
            if model.refused {
                seen.insert("refused early, token kept".to_owned());
                if matches!(model.answer, Answer::Admit(Ok(Admission::Send(_)))) {
                    seen.insert("request sent after a refusal".to_owned());
                }
            }
            if matches!(input, Input::RefreshFail { kind: FailKind::Refused, .. })
                && model.logged_out
                && matches!(model.answer, Answer::Refresh(Ok(())))
            {
                seen.insert("refused with a stale token".to_owned());
            }
            if matches!(input, Input::Respond { verdict: Verdict::Forbidden, .. })
                && matches!(model.answer, Answer::Respond(Outcome::Replay(_)))
            {
                seen.insert("stale 403 replayed".to_owned());
            }
            if model.episode.is_some_and(|e| e.attempt.is_some_and(|a| a.base < model.generation)) {
                seen.insert("attempt superseded by a late success".to_owned());
            }
        }
    }
    let expected = [
        "request sent",
        "request parked",
        "request rejected NeedsLogin",
        "request rejected QueueFull",
        "request rejected DuplicateRequest",
        "stale 401 replayed",
        "stale 403 replayed",
        "response rejected Unauthorized",
        "response rejected NeedsLogin",
        "response rejected QueueFull",
        "refresh result applied",
        "refresh result Superseded",
        "refresh result NotCurrent",
        "refresh started",
        "parked request sent",
        "parked request rejected NeedsLogin",
        "parked request rejected Timeout",
        "parked request rejected RefreshUnavailable",
        "backing off",
        "cooling down",
        "request rejected RefreshUnavailable",
        "response rejected RefreshUnavailable",
        "stopped after unanswered presentations",
        "adopted",
        "refused early, token kept",
        "request sent after a refusal",
        "refused with a stale token",
        "attempt superseded by a late success",
        "cancel",
    ];
    let missing: Vec<&str> = expected.iter().copied().filter(|e| !seen.contains(*e)).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}\nseen: {seen:?}");
}
