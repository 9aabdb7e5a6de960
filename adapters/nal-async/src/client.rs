//! The client: one [`Coordinator`] and one token set behind a blocking mutex, shared by every
//! task that sends requests. Requests that need a new token park and are woken by the task that
//! ran the refresh; whichever task the coordinator hands a refresh to runs it on its own buffer.

use core::cell::RefCell;
use core::fmt;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use embassy_futures::select::select;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use reauth_core::{
    Action, Admission, Coordinator, Duration, Generation, Instant, Outcome, RefreshFailure,
    RefreshId, Rejection, RequestId, Ticket, TokenError, TokenSet,
};
#[cfg(feature = "refusal-description")]
use reauth_nal::RefusalDescription;
use reauth_nal::codec::{self, WriteError};
use reauth_nal::{RefreshExchange, Request, Response, TokenStore, Unusable};

use crate::clock::Clock;
use crate::config::ClientConfig;
use crate::error::{Error, LoginError};
use crate::exchange::{self, Exchange};
use crate::transport::Transport;

/// An async HTTP/1.1 client that keeps its bearer token fresh for every task of one executor.
///
/// Type parameters:
/// - `M`: the [`RawMutex`] guarding the shared state: `NoopRawMutex` when every task runs on one
///   executor (the usual case), `CriticalSectionRawMutex` when tasks of interrupt executors
///   share it too. The lock is only held for a few coordinator calls, never across an `await`.
/// - `S`: the [`TokenStore`] that persists rotated refresh tokens (called under the lock);
/// - `X`: the [`RefreshExchange`], usually [`OAuth2`](crate::OAuth2);
/// - `C`: the [`Clock`];
/// - `N`: requests open at once (sending, parked or reading); one more is refused with
///   [`Error::Busy`];
/// - `A`, `R`: capacities of the access and refresh tokens in bytes.
///
/// # Methods
///
/// - **Getters**: [`generation`](Self::generation), [`needs_login`](Self::needs_login),
///   [`stats`](Self::stats), [`config`](Self::config), [`with_store`](Self::with_store).
/// - **Inputs**: [`login`](Self::login), [`restore`](Self::restore), [`logout`](Self::logout).
/// - **Requests**: [`send`](Self::send), from any number of tasks at once.
///
/// # How tasks share it
///
/// [`send`](Self::send) asks the coordinator whether the request may go now. If the token is
/// stale, the request parks: the task sleeps (its waker is kept, nothing polls) until the
/// refresh ends or the coordinator's next deadline. When the coordinator starts a refresh,
/// the task whose call made it do so runs the refresh exchange on its own buffer before
/// anything else, so exactly one refresh is on the wire; when it ends, the tokens are installed
/// (a rotated refresh token saved to the store first) and every parked task is woken to send
/// its request with the new token.
///
/// Dropping a [`send`](Self::send) future at any `await` is safe: a parked request leaves the
/// coordinator's queue, and a refresh that task was running is reported as failed (lost if any
/// byte of it was sent, since the server may have rotated), so the next request starts another.
pub struct Client<
    'a,
    M: RawMutex,
    S: TokenStore,
    X: RefreshExchange,
    C: Clock,
    const N: usize,
    const A: usize,
    const R: usize,
> {
    config: ClientConfig<'a>,
    exchange: X,
    clock: C,
    shared: Mutex<M, RefCell<Shared<S, N, A, R>>>,
}

/// Counts of what the client did since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Refresh requests that went out, at least in part: calls to the token endpoint (one that
    /// never connected is not one).
    pub refresh_calls: u64,
    /// Refreshes that installed new tokens.
    pub refreshes: u64,
    /// Refresh exchanges that failed (transient, lost or refused).
    pub refresh_failures: u64,
    /// Of those, the ones whose request went out (at least in part) without a usable answer:
    /// the server may have rotated the token ([`RefreshFailure::Lost`]).
    pub lost_refreshes: u64,
    /// Rotated refresh tokens the store failed to save (the new tokens are in use anyway).
    pub persist_failures: u64,
    /// Requests sent again after a refusal of their token (a 401 for an older token, or after
    /// the refresh it caused).
    pub replays: u64,
}

/// The state every task shares, under the mutex.
struct Shared<S, const N: usize, const A: usize, const R: usize> {
    coordinator: Coordinator<N>,
    /// The only copy of the tokens; copied into a request buffer under the lock.
    tokens: TokenSet<A, R>,
    store: S,
    /// One place per open request; `id == None` is free.
    waiters: [Waiter; N],
    /// A refresh the coordinator asked for that no task has taken up yet.
    refresh_wanted: Option<RefreshId>,
    /// A task is running a refresh exchange: the next one waits for it to end, so that two
    /// never present the same refresh token at once.
    refresh_running: bool,
    next_id: u32,
    stats: Stats,
    /// What the token endpoint's last unusable answer got wrong (a refusal with its OAuth code,
    /// a status, an unreadable body); kept for [`Client::last_refresh_error`].
    last_refresh_error: Option<reauth_nal::AnswerError>,
    /// The server's `error_description` of that refusal, bounded and sanitised.
    #[cfg(feature = "refusal-description")]
    refusal: Option<RefusalDescription>,
}

/// One open request as the shared state sees it.
#[derive(Debug)]
struct Waiter {
    id: Option<RequestId>,
    state: Wait,
    /// The parked task, to be woken when `state` changes or a refresh waits for a runner.
    waker: Option<Waker>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Not parked: admitted, on the wire or being read; the coordinator does not track it.
    Active,
    /// In the coordinator's queue.
    Parked,
    /// Released by the coordinator: send with this ticket.
    Send(Ticket),
    /// Released by the coordinator: fail with this reason.
    Rejected(Rejection),
}

impl Waiter {
    const FREE: Self = Self { id: None, state: Wait::Active, waker: None };
}

impl<
    'a,
    M: RawMutex,
    S: TokenStore,
    X: RefreshExchange,
    C: Clock,
    const N: usize,
    const A: usize,
    const R: usize,
> Client<'a, M, S, X, C, N, A, R>
{
    /// A client without credentials: call [`login`](Self::login) or [`restore`](Self::restore)
    /// before sending. `const`, so that it can live in a `static`.
    #[must_use]
    pub const fn new(config: ClientConfig<'a>, exchange: X, store: S, clock: C) -> Self {
        Self {
            shared: Mutex::new(RefCell::new(Shared {
                coordinator: Coordinator::new(config.coordinator),
                tokens: TokenSet::new(),
                store,
                waiters: [const { Waiter::FREE }; N],
                refresh_wanted: None,
                refresh_running: false,
                next_id: 1,
                stats: Stats {
                    refresh_calls: 0,
                    refreshes: 0,
                    refresh_failures: 0,
                    lost_refreshes: 0,
                    persist_failures: 0,
                    replays: 0,
                },
                last_refresh_error: None,
                #[cfg(feature = "refusal-description")]
                refusal: None,
            })),
            config,
            exchange,
            clock,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Getters

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &ClientConfig<'a> {
        &self.config
    }

    /// The generation of the installed access token.
    #[must_use]
    pub fn generation(&self) -> Generation {
        self.with(|s| s.tokens.generation())
    }

    /// True when there are no usable credentials: the application must log in.
    #[must_use]
    pub fn needs_login(&self) -> bool {
        self.with(|s| s.coordinator.needs_login())
    }

    /// What the token endpoint's last unusable answer got wrong: a refusal with its OAuth code
    /// (`invalid_grant`: log in again; a [configuration
    /// error](reauth_nal::AnswerError::is_configuration_error) such as `invalid_client`: fix the
    /// client's settings, its stored refresh token is kept), a status, or an unreadable body.
    /// `None` until one came. Holds no token.
    pub fn last_refresh_error(&self) -> Option<reauth_nal::AnswerError> {
        self.with(|s| s.last_refresh_error)
    }

    /// The token endpoint's own words about the refusal in
    /// [`last_refresh_error`](Self::last_refresh_error) (its `error_description`, bounded and
    /// sanitised: see [`RefusalDescription`]). `None` if the server gave none, or if the last
    /// unusable answer was no refusal. Both are forgotten at a successful refresh, a login, a
    /// restore and a logout. Needs the `refusal-description` feature (on by default).
    #[cfg(feature = "refusal-description")]
    #[must_use]
    pub fn refusal_description(&self) -> Option<RefusalDescription> {
        self.with(|s| s.refusal)
    }

    /// What the client did so far.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.with(|s| s.stats)
    }

    /// Runs `f` on the token store (under the lock: keep it short).
    pub fn with_store<U>(&self, f: impl FnOnce(&mut S) -> U) -> U {
        self.with(|s| f(&mut s.store))
    }

    // ---------------------------------------------------------------------------------------
    // Inputs

    /// Installs the tokens of a fresh login: the access token valid for `lifetime` (`None` if
    /// unknown) and the refresh token, which is persisted first. Returns the new generation.
    ///
    /// # Errors
    /// [`LoginError::Token`] if a token is unusable (nothing changes);
    /// [`LoginError::Persist`] if the store failed (the tokens are installed and in use anyway).
    pub fn login(
        &self,
        access: &str,
        refresh: &str,
        lifetime: Option<Duration>,
    ) -> Result<Generation, LoginError<S::Error>> {
        let now = self.clock.now();
        self.with(|s| {
            let generation = s.coordinator.generation().next();
            s.tokens.install(generation, access, Some(refresh)).map_err(LoginError::Token)?;
            s.forget_refresh_error();
            let saved = s.store.save(refresh, generation);
            let generation = s.coordinator.handle_login(now, lifetime);
            s.drain();
            saved.map_err(LoginError::Persist).map(|()| generation)
        })
    }

    /// Installs a refresh token alone (restored from flash at boot); the first request starts a
    /// refresh.
    ///
    /// # Errors
    /// [`TokenError`] if the token is unusable; nothing changes then.
    pub fn restore(&self, refresh: &str) -> Result<(), TokenError> {
        let now = self.clock.now();
        self.with(|s| {
            s.tokens.restore(refresh)?;
            s.forget_refresh_error();
            s.coordinator.handle_restore(now);
            s.drain();
            Ok(())
        })
    }

    /// Forgets the tokens (also in the store) and rejects parked requests with
    /// [`Rejection::NeedsLogin`].
    ///
    /// # Errors
    /// The store could not erase the token; the tokens are gone from memory anyway.
    pub fn logout(&self) -> Result<(), S::Error> {
        let now = self.clock.now();
        self.with(|s| {
            s.tokens.clear();
            s.forget_refresh_error();
            s.coordinator.handle_logout(now);
            s.drain();
            s.store.clear()
        })
    }

    // ---------------------------------------------------------------------------------------
    // Requests

    /// Sends `request` to the API with the current access token and returns its response, read
    /// into `buf`. A request refused for an expired token waits for the refresh and goes again.
    ///
    /// `buf` holds, in turn: the transport's scratch space
    /// ([`Transport::scratch_len`], the TLS record buffers), then the request as sent
    /// (head, `Authorization` line, body) and later the response (head and decoded body). When
    /// this call runs a refresh, the same buffer holds the refresh request and the token
    /// endpoint's answer: size it for the larger of the two exchanges. It is wiped of tokens
    /// before the call returns, except for the response it returns.
    ///
    /// # Errors
    /// [`Error::Rejected`] when the coordinator turns the request away, [`Error::Busy`] when `N`
    /// requests are open, [`Error::InvalidRequest`] and [`Error::RequestTooLarge`] for a
    /// request that cannot be written, [`Error::InsecureTransport`] for a plain transport
    /// under [`ClientConfig::https`], and the exchange's own errors (transport, timeouts,
    /// HTTP, [`Error::ResponseTooLarge`]). A failed request is not retried (the server may
    /// have acted on it).
    pub async fn send<'b, T: Transport>(
        &self,
        net: &T,
        request: &Request<'_>,
        buf: &'b mut [u8],
    ) -> Result<Response<'b>, Error<T::Error>> {
        if self.config.https && !T::ENCRYPTED {
            return Err(Error::InsecureTransport);
        }
        let scratch_len = net.scratch_len();
        if buf.len() < scratch_len {
            return Err(Error::RequestTooLarge { needed: scratch_len, capacity: buf.len() });
        }
        let mut open = self.open().ok_or(Error::Busy)?;
        let result = self.run(net, request, buf, &mut open).await;
        // Whatever the outcome, no token stays in the buffer but the response's own bytes.
        let (scratch, http) = buf.split_at_mut(scratch_len);
        codec::wipe(scratch);
        match result {
            Ok(reader) => {
                drop(open);
                // The reader holds a complete response, so `response` is `Some`.
                reader.response(http).ok_or(Error::ConnectionClosed)
            }
            Err(error) => {
                codec::wipe(http);
                Err(error)
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Helpers

    fn with<U>(&self, f: impl FnOnce(&mut Shared<S, N, A, R>) -> U) -> U {
        self.shared.lock(|cell| f(&mut cell.borrow_mut()))
    }

    /// Takes a free waiter place for a new request; `None` if all `N` are taken.
    fn open(&self) -> Option<Open<'_, 'a, M, S, X, C, N, A, R>> {
        self.with(|s| {
            let id = s.fresh_id();
            let place = s.waiters.iter_mut().find(|w| w.id.is_none())?;
            *place = Waiter { id: Some(id), state: Wait::Active, waker: None };
            Some(Open { client: self, id, claim: None })
        })
    }

    async fn run<T: Transport>(
        &self,
        net: &T,
        request: &Request<'_>,
        buf: &mut [u8],
        open: &mut Open<'_, 'a, M, S, X, C, N, A, R>,
    ) -> Result<codec::Reader, Error<T::Error>> {
        let id = open.id;
        self.admit(id);
        let head_request = matches!(request.method.as_bytes(), b"HEAD");
        let (scratch, http) = buf.split_at_mut(net.scratch_len());
        loop {
            // 1. A refresh nobody runs yet: this task runs it first.
            if let Some(refresh) = self.with(Shared::claim_refresh) {
                open.claim = Some(Claim { id: refresh, sent_any: false });
                self.refresh(net, scratch, http, open).await;
                continue;
            }
            // 2. What the coordinator said about this request.
            let ticket = match self.with(|s| s.state(id)) {
                Wait::Send(ticket) => ticket,
                Wait::Rejected(reason) => return Err(Error::Rejected(reason)),
                Wait::Parked => {
                    self.park(id).await;
                    continue;
                }
                // Only a request on the wire is active, and this one is not: ask the coordinator
                // again rather than wait for news that would never come.
                Wait::Active => {
                    self.admit(id);
                    continue;
                }
            };
            // 3. On the wire with the current token.
            let written = self.with(|s| {
                let token = s.tokens.access().unwrap_or_default();
                let written = codec::write_request(http, request, self.config.api.host, token);
                s.set(id, Wait::Active);
                written.map(|len| (len, Ticket { generation: s.tokens.generation(), ..ticket }))
            });
            let (request_len, ticket) = written.map_err(|e| match e {
                WriteError::Invalid => Error::InvalidRequest,
                WriteError::TooLarge(needed) => {
                    Error::RequestTooLarge { needed, capacity: http.len() }
                }
            })?;
            let x = Exchange {
                endpoint: &self.config.api,
                request_len,
                head_request,
                timeouts: &self.config.timeouts,
                give_up_at: self.clock.now().saturating_add(self.config.timeouts.total),
            };
            let reader = exchange::run(net, &self.clock, x, scratch, http, &mut false).await?;
            // The body only when the expiry rule reads it.
            let rule = self.config.expiry;
            let response = reader.response(http);
            let status = response.map_or(0, |r| r.status());
            let body = rule.needs_body().then(|| response.map_or(&[][..], |r| r.body()));
            let verdict = rule.verdict(status, body);
            let outcome = self.with(|s| {
                let outcome = s.coordinator.handle_response(self.clock.now(), ticket, verdict);
                match outcome {
                    Outcome::Done => {}
                    Outcome::Replay(ticket) => {
                        s.stats.replays += 1;
                        s.set(id, Wait::Send(ticket));
                    }
                    Outcome::Parked => {
                        s.stats.replays += 1;
                        s.set(id, Wait::Parked);
                    }
                    Outcome::Rejected(rejected) => s.set(id, Wait::Rejected(rejected.reason)),
                }
                s.drain();
                outcome
            });
            if let Outcome::Done = outcome {
                return Ok(reader);
            }
            // The answer was a refusal: it goes no further.
            codec::wipe(http);
        }
    }

    /// Asks the coordinator whether request `id` may go now, and notes its answer.
    fn admit(&self, id: RequestId) {
        let now = self.clock.now();
        self.with(|s| {
            let state = match s.coordinator.handle_request(now, id) {
                Ok(Admission::Send(ticket)) => Wait::Send(ticket),
                Ok(Admission::Parked) => Wait::Parked,
                Err(rejected) => Wait::Rejected(rejected.reason),
            };
            s.set(id, state);
            s.drain();
        });
    }

    /// Sleeps until request `id` is released, a refresh waits for a runner, or the
    /// coordinator's next deadline (then it is told the time).
    async fn park(&self, id: RequestId) {
        let wake = poll_fn(|cx| {
            self.with(|s| {
                let ready = s.refresh_wanted.is_some() && !s.refresh_running;
                let Some(waiter) = s.waiter(id) else { return Poll::Ready(()) };
                if ready || !matches!(waiter.state, Wait::Parked) {
                    return Poll::Ready(());
                }
                match &mut waiter.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            })
        });
        let deadline = self.with(|s| s.coordinator.poll_timeout()).unwrap_or(Instant::MAX);
        select(wake, self.clock.sleep_until(deadline)).await;
        let now = self.clock.now();
        self.with(|s| {
            s.coordinator.handle_timeout(now);
            s.drain();
        });
    }

    /// Runs the refresh this task claimed and reports its result. Never fails: the outcome
    /// reaches the parked requests through the coordinator.
    async fn refresh<T: Transport>(
        &self,
        net: &T,
        scratch: &mut [u8],
        http: &mut [u8],
        open: &mut Open<'_, 'a, M, S, X, C, N, A, R>,
    ) {
        if open.claim.is_none() {
            return;
        }
        let host = self.config.token.host;
        let written = self.with(|s| {
            let token = s.tokens.refresh()?;
            Some(codec::write_refresh_request(http, &self.exchange, token, host))
        });
        let request_len = match written {
            Some(Ok(len)) => len,
            // Without a refresh token the endpoint can only refuse.
            None => return self.refresh_ended(open, RefreshFailure::Refused),
            Some(Err(_needed)) => {
                let transient = RefreshFailure::Transient { retry_after: None };
                return self.refresh_ended(open, transient);
            }
        };
        // The exchange MUST end by the coordinator's refresh timeout (else it would start the
        // next attempt while this one may still be answered).
        let limit = self.config.timeouts.total.min(self.config.coordinator.refresh_timeout);
        let x = Exchange {
            endpoint: &self.config.token,
            request_len,
            head_request: false,
            timeouts: &self.config.timeouts,
            give_up_at: self.clock.now().saturating_add(limit),
        };
        // Recorded in the claim as it happens: if this future is dropped mid-exchange, the drop
        // reports the attempt lost once any byte went out.
        let Some(claim) = open.claim.as_mut() else { return };
        let result = exchange::run(net, &self.clock, x, scratch, http, &mut claim.sent_any).await;
        let sent_any = claim.sent_any;
        if sent_any {
            self.with(|s| s.stats.refresh_calls += 1);
        }
        match result {
            Ok(reader) => {
                let response = reader.response(http);
                self.refresh_answered(open, response);
            }
            // Once any byte went out the server may have rotated the refresh token.
            Err(_) => self.refresh_ended(open, RefreshFailure::unanswered(sent_any)),
        }
        // The request and the answer held tokens.
        codec::wipe(http);
    }

    /// The token endpoint answered the claimed refresh: install, persist, report (in the order
    /// of [`Coordinator::handle_refresh_success`]).
    fn refresh_answered(
        &self,
        open: &mut Open<'_, 'a, M, S, X, C, N, A, R>,
        response: Option<Response<'_>>,
    ) {
        let Some(Claim { id, .. }) = open.claim.take() else { return };
        let now = self.clock.now();
        self.with(|s| {
            s.refresh_running = false;
            if !s.coordinator.is_live_refresh(id) {
                // Credentials were replaced since the attempt started: drop its tokens unread.
                s.drain();
                return;
            }
            let generation = s.coordinator.generation().next();
            let read = match response {
                Some(r) => self.exchange.read_answer(
                    r.status(),
                    r.body(),
                    codec::retry_after(&r),
                    &mut s.tokens,
                    generation,
                ),
                None => Err(Unusable {
                    failure: RefreshFailure::Lost,
                    error: reauth_nal::AnswerError::Invalid,
                }),
            };
            match read {
                Ok(refreshed) => {
                    if refreshed.rotated
                        && let Some(token) = s.tokens.refresh()
                        && s.store.save(token, generation).is_err()
                    {
                        s.stats.persist_failures += 1;
                    }
                    if s.coordinator.handle_refresh_success(now, id, refreshed.lifetime).is_ok() {
                        s.stats.refreshes += 1;
                        s.forget_refresh_error();
                    }
                    // An attempt asked for while this one was on the wire never went out: end it
                    // quietly instead of refreshing a token just installed.
                    if let Some(next) = s.refresh_wanted
                        && s.coordinator.refresh_in_flight() == Some(next)
                    {
                        s.refresh_wanted = None;
                        let transient = RefreshFailure::Transient { retry_after: None };
                        let _ = s.coordinator.handle_refresh_failure(now, next, transient);
                    }
                }
                Err(Unusable { failure, error }) => {
                    s.last_refresh_error = Some(error);
                    #[cfg(feature = "refusal-description")]
                    {
                        s.refusal = match (error, &response) {
                            (reauth_nal::AnswerError::Refused { .. }, Some(r)) => {
                                // A refusal changed no token: this is the one presented.
                                let presented = s.tokens.refresh().unwrap_or_default();
                                RefusalDescription::of_error_response(r.body(), presented)
                            }
                            _ => None,
                        };
                    }
                    s.refresh_failed(now, id, failure, error.is_configuration_error());
                }
            }
            s.drain();
        });
    }

    /// The claimed refresh ended without an answer.
    fn refresh_ended(&self, open: &mut Open<'_, 'a, M, S, X, C, N, A, R>, failure: RefreshFailure) {
        let Some(Claim { id, .. }) = open.claim.take() else { return };
        let now = self.clock.now();
        self.with(|s| {
            s.refresh_running = false;
            s.refresh_failed(now, id, failure, false);
            s.drain();
        });
    }
}

impl<S: TokenStore, const N: usize, const A: usize, const R: usize> Shared<S, N, A, R> {
    /// New credentials, or a refresh that worked: the last failure is about older ones.
    fn forget_refresh_error(&mut self) {
        self.last_refresh_error = None;
        #[cfg(feature = "refusal-description")]
        {
            self.refusal = None;
        }
    }

    /// An id no open request has (the counter wraps after 4 billion requests).
    fn fresh_id(&mut self) -> RequestId {
        let mut id = self.next_id;
        while id == 0 || self.waiters.iter().any(|w| w.id == Some(RequestId(id))) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        RequestId(id)
    }

    fn waiter(&mut self, id: RequestId) -> Option<&mut Waiter> {
        self.waiters.iter_mut().find(|w| w.id == Some(id))
    }

    fn state(&mut self, id: RequestId) -> Wait {
        self.waiter(id).map_or(Wait::Rejected(Rejection::NeedsLogin), |w| w.state)
    }

    fn set(&mut self, id: RequestId, state: Wait) {
        if let Some(waiter) = self.waiter(id) {
            waiter.state = state;
        }
    }

    /// Takes the wanted refresh, if no other is running.
    fn claim_refresh(&mut self) -> Option<RefreshId> {
        if self.refresh_running {
            return None;
        }
        let id = self.refresh_wanted.take()?;
        if self.coordinator.refresh_in_flight() != Some(id) {
            // It timed out or was superseded before anyone took it up.
            return None;
        }
        self.refresh_running = true;
        Some(id)
    }

    /// Carries out what the coordinator asks for (its contract: after every input), waking
    /// the tasks concerned.
    fn drain(&mut self) {
        let mut wake_all = false;
        while let Some(action) = self.coordinator.poll_action() {
            let (id, state) = match action {
                Action::Refresh(id) => {
                    self.refresh_wanted = Some(id);
                    wake_all = true;
                    continue;
                }
                Action::Send(ticket) => (ticket.id, Wait::Send(ticket)),
                Action::Reject(rejected) => (rejected.id, Wait::Rejected(rejected.reason)),
            };
            if let Some(waiter) = self.waiter(id) {
                waiter.state = state;
                if let Some(waker) = waiter.waker.take() {
                    waker.wake();
                }
            }
        }
        // A refresh that the running one holds back, or that nobody took up, needs a parked
        // task to run it.
        if wake_all || (self.refresh_wanted.is_some() && !self.refresh_running) {
            self.waiters.iter_mut().filter_map(|w| w.waker.take()).for_each(Waker::wake);
        }
    }

    /// `misconfigured`: the token endpoint refused the client, not its refresh token
    /// ([`AnswerError::is_configuration_error`](reauth_nal::AnswerError::is_configuration_error)).
    fn refresh_failed(
        &mut self,
        now: Instant,
        id: RefreshId,
        failure: RefreshFailure,
        misconfigured: bool,
    ) {
        self.stats.refresh_failures += 1;
        self.stats.lost_refreshes += u64::from(failure == RefreshFailure::Lost);
        // Accepted and now refused only after this `Refused` failure: the coordinator enters a
        // refused state from `Refreshing` only, and only on a `Refused` failure it accepts.
        if self.coordinator.handle_refresh_failure(now, id, failure).is_ok()
            && self.coordinator.is_refused()
            && !misconfigured
        {
            // The stored refresh token is dead, even while a refused early refresh leaves the
            // access token (RAM only) working: a rebooted device must not restore it. A client
            // set up wrong (`invalid_client`) has not used its refresh token: it stays for the
            // corrected firmware, as in reauth-nal.
            let _ = self.store.clear();
        }
        // The failure set a backoff that may end before the deadline the parked tasks sleep
        // until: they look again, so that one of them starts the retry on time.
        self.waiters.iter_mut().filter_map(|w| w.waker.take()).for_each(Waker::wake);
    }
}

/// A refresh a task took up and has not reported yet.
#[derive(Clone, Copy, Debug)]
struct Claim {
    id: RefreshId,
    /// Any byte of its request went to the transport.
    sent_any: bool,
}

/// An open request's place, released when the `send` future ends or is dropped.
struct Open<
    'c,
    'a,
    M: RawMutex,
    S: TokenStore,
    X: RefreshExchange,
    C: Clock,
    const N: usize,
    const A: usize,
    const R: usize,
> {
    client: &'c Client<'a, M, S, X, C, N, A, R>,
    id: RequestId,
    claim: Option<Claim>,
}

impl<
    M: RawMutex,
    S: TokenStore,
    X: RefreshExchange,
    C: Clock,
    const N: usize,
    const A: usize,
    const R: usize,
> Drop for Open<'_, '_, M, S, X, C, N, A, R>
{
    fn drop(&mut self) {
        let claim = self.claim.take();
        let id = self.id;
        self.client.with(|s| {
            // The coordinator's own latest instant, not the clock's: a drop must not fire
            // deadlines (and hand out a refresh that nobody is left to run).
            let now = s.coordinator.now();
            if let Some(Claim { id: refresh, sent_any }) = claim {
                s.refresh_running = false;
                s.stats.refresh_calls += u64::from(sent_any);
                s.refresh_failed(now, refresh, RefreshFailure::unanswered(sent_any), false);
            }
            if let Some(waiter) = s.waiter(id) {
                if matches!(waiter.state, Wait::Parked) {
                    s.coordinator.handle_cancel(now, id);
                }
                if let Some(waiter) = s.waiter(id) {
                    *waiter = Waiter::FREE;
                }
            }
            s.drain();
        });
    }
}

impl<
    M: RawMutex,
    S: TokenStore,
    X: RefreshExchange,
    C: Clock,
    const N: usize,
    const A: usize,
    const R: usize,
> fmt::Debug for Client<'_, M, S, X, C, N, A, R>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|s| {
            f.debug_struct("Client")
                .field("state", s.coordinator.state())
                .field("tokens", &s.tokens)
                .field("open", &s.waiters.iter().filter(|w| w.id.is_some()).count())
                .field("refresh_running", &s.refresh_running)
                .field("stats", &s.stats)
                .finish_non_exhaustive()
        })
    }
}
