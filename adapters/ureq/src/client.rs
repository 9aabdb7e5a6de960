//! The shared client: one coordinator, one token set and the outcomes of parked requests behind
//! one mutex; a condition variable that wakes waiting threads; and the per-request loop that
//! sends, judges, replays or waits.
//!
//! # How a request travels
//!
//! 1. Under the lock: `handle_request`. `Send` takes the `Authorization` value of the ticket's
//!    generation right there, so a refresh that lands a moment later cannot make the request go
//!    out with a token of another generation than its ticket says.
//! 2. The exchange, outside the lock: send, follow same-origin redirects with the token and
//!    other-origin ones without it, judge the final response with the expiry rule.
//! 3. Under the lock: `handle_response` with the ticket. `Done` returns the response; `Replay`
//!    goes back to 2 with the current token; `Parked` waits; `Rejected` returns the typed error.
//! 4. Waiting: the thread sleeps on the condition variable for at most the time to the
//!    coordinator's next timer, then feeds `handle_timeout`, so refresh timeouts, backoff ends and
//!    wait deadlines fire without a background thread. Whoever drains an outcome posts it in the
//!    outcome map under the request's id and wakes everyone; each thread takes only its own.
//!
//! After every input the thread drains `poll_action` completely. The thread that drains
//! `Action::Refresh` starts the refresh on a thread of its own after releasing the lock and
//! waits for it up to the attempt's deadline (or its own wait timeout); the refresh thread
//! reports the result; the new refresh token is saved to the store, outside the lock, before
//! `handle_refresh_success` releases the parked requests.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use reauth_core::expiry::is_invalid_token_challenge;
use reauth_core::{
    Action, Admission, Coordinator, FailCause, Generation, Instant, Outcome, Phase, RefreshId,
    RefreshResultError, Rejection, RequestId, State, Ticket, TokenSet, Verdict,
};
use serde::Serialize;
use ureq::Body;
use zeroize::Zeroizing;

use crate::builder::ClientBuilder;
use crate::error::Error;
use crate::exchange::{NewTokens, RefreshError, RefreshExchange};
use crate::expiry::{Expiry, ResponseView};
use crate::lease;
use crate::redirect::{self, Origin};
use crate::stats::{Stat, StatCells, Stats};
use crate::store::{StoreError, StoredTokens, TokenStore};
use crate::tls;
use crate::wire::{Masked, Masks};

/// How many requests may wait for a refresh at once; one more is refused with
/// [`Error::QueueFull`].
pub const QUEUE_CAPACITY: usize = 256;
/// Capacity of the access-token buffer in bytes (a JWT with many claims fits).
pub const ACCESS_CAPACITY: usize = 8 * 1024;
/// Capacity of the refresh-token buffer in bytes.
pub const REFRESH_CAPACITY: usize = 2 * 1024;

/// A blocking HTTP client that keeps its bearer token fresh. Cheap to clone (an `Arc` inside);
/// share one among all threads that talk to the same API with the same credentials.
///
/// When the access token expires, exactly one of the threads that need it performs the refresh;
/// the others wait and are then replayed with the new token, or get a typed error: never a hang
/// past the wait timeout, never a second refresh for a stale 401, never a logout for a 503.
///
/// # Examples
///
/// ```no_run
/// use reauth_ureq::{Client, FileStore};
///
/// let client = Client::builder()
///     .token_url("https://auth.example.com/oauth/token")
///     .client_id("my-app")
///     .store(FileStore::new("tokens.json"))
///     .build()?;
/// if client.needs_login() {
///     // ... run the login flow, then:
///     client.login("access-token", "refresh-token", Some(core::time::Duration::from_secs(3600)))?;
/// }
/// let mut response = client.get("https://api.example.com/me")?;
/// println!("{}", response.body_mut().read_to_string()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Called when the store fails; see [`ClientBuilder::on_store_error`].
pub(crate) type StoreErrorCallback = Box<dyn Fn(&StoreError) + Send + Sync>;

/// What the builder hands over.
pub(crate) struct Parts {
    pub(crate) coordinator: Coordinator<QUEUE_CAPACITY>,
    pub(crate) api: ureq::Agent,
    pub(crate) exchange: Box<dyn RefreshExchange>,
    pub(crate) expiry: Expiry,
    pub(crate) store: Box<dyn TokenStore>,
    pub(crate) on_store_error: Option<StoreErrorCallback>,
    pub(crate) max_redirects: u8,
    pub(crate) lease_fallback: bool,
    pub(crate) allow_insecure_http: bool,
    pub(crate) api_masks: Arc<Masks>,
}

/// Everything the clones share.
struct Inner {
    /// The coordinator, the tokens and the outcomes. Held only for bookkeeping (and a store save
    /// after a refresh); never across an HTTP exchange.
    shared: Mutex<Shared>,
    /// Wakes waiting threads when an outcome is posted or the next timer moves earlier.
    wake: Condvar,
    /// Time zero of the coordinator's clock.
    epoch: std::time::Instant,
    /// Agent for API requests: statuses as responses, no automatic redirects.
    api: ureq::Agent,
    exchange: Box<dyn RefreshExchange>,
    /// Serializes refresh calls on the wire: if the coordinator gave up on a slow call and
    /// started another attempt, the second waits for the first to return instead of presenting
    /// the same (rotating) refresh token twice at once.
    exchange_gate: Mutex<()>,
    expiry: Expiry,
    store: Box<dyn TokenStore>,
    on_store_error: Option<StoreErrorCallback>,
    max_redirects: u8,
    /// Whether a refresh goes ahead when the store's lease cannot be had because the store is
    /// away (see [`ClientBuilder::lease_fallback`]).
    lease_fallback: bool,
    /// Whether a token may travel over plain http to a host other than loopback.
    allow_insecure_http: bool,
    /// Source of request ids; wraps after 4 billion requests, long after the old ones ended.
    next_id: AtomicU32,
    stats: StatCells,
}

/// The state behind the lock.
struct Shared {
    coordinator: Coordinator<QUEUE_CAPACITY>,
    tokens: TokenSet<ACCESS_CAPACITY, REFRESH_CAPACITY>,
    /// Outcomes drained for parked requests, waiting for their threads to pick them up. At most
    /// one per parked request, so bounded by the queue capacity.
    outcomes: HashMap<RequestId, Wake>,
    /// Why the last refresh attempt failed; cleared by a success or a login.
    last_refresh_error: Option<RefreshError>,
    /// The header value of the installed access token, with its generation.
    authorization: Option<(Generation, Authorization)>,
    /// The placeholders of the API agent's wire filter.
    masks: Arc<Masks>,
    /// The version of the store's record that the installed tokens came from or were saved as
    /// (0: none). A record of another version was written by someone else: it is adopted
    /// instead of refreshing.
    version: u64,
}

/// The outcome of a parked request.
enum Wake {
    /// Send now with this header value (built from the token of the ticket's generation).
    Send(Ticket, Authorization),
    /// Give up with this reason.
    Reject(Rejection),
}

/// `Authorization: Bearer <token>` for one generation. Built once per installed access token
/// and shared by every request of that generation (a cheap reference-counted clone).
///
/// ureq gets a placeholder of the same length as its header value (see [`wire`]), so that
/// its wire trace never holds the token; the filter under ureq sends the real value. The real
/// value lives only in wiped memory: here and in the filter's table, until the last request of
/// the generation is done.
#[derive(Clone)]
struct Authorization(Arc<Bearer>);

struct Bearer {
    /// The placeholder header, marked sensitive.
    header: HeaderValue,
    /// The access token, for requests the application builds around it.
    token: Zeroizing<String>,
    /// Keeps the placeholder mapped to `Bearer <token>` while requests may use it.
    _mask: Masked,
}

impl Authorization {
    /// The access token, for requests built around the token.
    fn token(&self) -> &str {
        &self.0.token
    }
}

/// Builds a request around an access token, for [`Client::send_with`].
type Build<'a> = &'a dyn Fn(&str) -> Result<Request<Vec<u8>>, http::Error>;

/// Where a request comes from: given whole, or built from the token for every attempt.
#[derive(Clone, Copy)]
enum Source<'a> {
    Fixed(&'a Request<Vec<u8>>),
    Build(Build<'a>),
}

/// How the token travels with one exchange.
#[derive(Clone, Copy)]
enum Credential<'a> {
    /// The client adds `Authorization` with this value.
    Bearer(&'a Authorization),
    /// The application built the token into the request.
    InRequest,
}

/// Where one request stands in [`Client::send`].
enum Step {
    Send(Ticket, Authorization),
    Wait,
    Reject(Rejection),
}

/// What a drain of `poll_action` left for the caller to do outside the lock.
#[must_use]
struct Drained(Option<RefreshId>);

impl Client {
    /// A builder with the defaults; set at least a token endpoint
    /// ([`ClientBuilder::token_url`]) or a custom exchange ([`ClientBuilder::refresh_with`]).
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Builds the client from the builder's parts and resumes from what the store holds.
    pub(crate) fn from_parts(parts: Parts) -> Result<Self, Error> {
        let Parts {
            coordinator,
            api,
            exchange,
            expiry,
            store,
            on_store_error,
            max_redirects,
            lease_fallback,
            allow_insecure_http,
            api_masks,
        } = parts;
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                coordinator,
                tokens: TokenSet::new(),
                outcomes: HashMap::new(),
                last_refresh_error: None,
                authorization: None,
                masks: api_masks,
                version: 0,
            }),
            wake: Condvar::new(),
            epoch: std::time::Instant::now(),
            api,
            exchange,
            exchange_gate: Mutex::new(()),
            expiry,
            store,
            on_store_error,
            max_redirects,
            lease_fallback,
            allow_insecure_http,
            next_id: AtomicU32::new(1),
            stats: StatCells::default(),
        });
        let client = Self { inner };
        if let Some(saved) = client.inner.store.load()? {
            client.resume(&saved)?;
        }
        Ok(client)
    }

    // ---------------------------------------------------------------------------------------
    // Requests

    /// Sends `request` with the current access token, refreshing and replaying as needed.
    ///
    /// The request is kept until the exchange is over, so it can be replayed after a refresh.
    /// Any `Authorization` header in it is replaced. Redirects are followed (up to
    /// [`ClientBuilder::max_redirects`]) with the token only while they stay on the request's
    /// origin. Any status the expiry rule does not call "expired" (404, 500, ...) is returned as
    /// a response.
    ///
    /// A request that waits for a refresh returns by its wait deadline
    /// ([`Config::wait_timeout`](reauth_core::Config::wait_timeout)), even if the refresh call
    /// (a custom exchange, a store) overruns its own timeout: the call runs on a thread of its
    /// own.
    ///
    /// # Errors
    /// [`Error::NeedsLogin`], [`Error::QueueFull`], [`Error::Timeout`],
    /// [`Error::RefreshUnavailable`], [`Error::Unauthorized`] from the coordinator;
    /// [`Error::Transport`] if the HTTP exchange failed; [`Error::TooManyRedirects`] and
    /// [`Error::InvalidRedirect`].
    pub fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Body>, Error> {
        self.run(Source::Fixed(&request))
    }

    /// Sends a request that `build` makes from the access token, for APIs that want the token
    /// somewhere other than `Authorization: Bearer` (a custom header, a signed query): the
    /// client adds nothing, and calls `build` again with the new token for every replay.
    ///
    /// The request goes out as built, so the client cannot tell where the token is: it follows
    /// redirects only within the request's origin (scheme, host and port) and returns a redirect
    /// to another origin as the response instead of following it.
    ///
    /// # Errors
    /// As [`send`](Self::send); [`Error::InvalidRequest`] if `build` fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = reauth_ureq::Client::builder().token_url("http://127.0.0.1/t").build()?;
    /// let response = client.send_with(|token| {
    ///     http::Request::get("https://api.example.com/me").header("X-Auth-Token", token).body(vec![])
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with<F>(&self, build: F) -> Result<Response<Body>, Error>
    where
        F: Fn(&str) -> Result<Request<Vec<u8>>, http::Error>,
    {
        self.run(Source::Build(&build))
    }

    /// `GET url`.
    ///
    /// # Errors
    /// As [`send`](Self::send), plus [`Error::InvalidRequest`] for a bad URL.
    pub fn get(&self, url: &str) -> Result<Response<Body>, Error> {
        self.send(build(Method::GET, url, None, Vec::new())?)
    }

    /// `DELETE url`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn delete(&self, url: &str) -> Result<Response<Body>, Error> {
        self.send(build(Method::DELETE, url, None, Vec::new())?)
    }

    /// `POST url` with `body` serialized as JSON.
    ///
    /// # Errors
    /// As [`get`](Self::get), plus [`Error::InvalidRequest`] if `body` cannot be serialized.
    pub fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
    ) -> Result<Response<Body>, Error> {
        self.send(build(Method::POST, url, Some("application/json"), to_json(body)?)?)
    }

    /// `PUT url` with `body` serialized as JSON.
    ///
    /// # Errors
    /// As [`post_json`](Self::post_json).
    pub fn put_json<T: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
    ) -> Result<Response<Body>, Error> {
        self.send(build(Method::PUT, url, Some("application/json"), to_json(body)?)?)
    }

    /// `POST url` with a body of the given content type.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn post(
        &self,
        url: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<Response<Body>, Error> {
        self.send(build(Method::POST, url, Some(content_type), body.into())?)
    }

    // ---------------------------------------------------------------------------------------
    // Credentials

    /// Installs the tokens a login produced, saves them to the store, and releases any request
    /// that waits. `expires_in` is the access token's lifetime (`None` if unknown).
    ///
    /// # Errors
    /// [`Error::Token`] if a token is unusable (nothing is changed then); [`Error::Store`] if the
    /// store could not save them: the tokens are installed in memory all the same.
    pub fn login(
        &self,
        access_token: &str,
        refresh_token: &str,
        expires_in: Option<Duration>,
    ) -> Result<(), Error> {
        let tokens = NewTokens::new(access_token, Some(refresh_token), expires_in)?;
        // A login replaces whatever record the store holds, whoever wrote it.
        let saved = self.save_over(&tokens);
        let mut shared = self.lock();
        let (drained, ()) = self.input(&mut shared, |shared, now| {
            let generation =
                shared.coordinator.handle_login(now, expires_in.map(reauth_core::Duration::from));
            shared.install(generation, &tokens);
            shared.last_refresh_error = None;
            if let Ok(version) = saved {
                shared.version = version;
            }
        });
        drop(shared);
        self.finish(drained);
        self.report_store(saved.map(drop))
    }

    /// Installs the tokens of a token response body (RFC 6749 §5.1) as [`login`](Self::login)
    /// does, for a login flow the application ran itself (an authorization code exchange): the
    /// body is decoded straight into the client's buffers, escapes and all.
    ///
    /// # Errors
    /// [`Error::TokenResponse`] for a body that is not a usable token response,
    /// [`Error::Token`] with [`TokenError::Empty`](reauth_core::TokenError::Empty) if it has no
    /// `refresh_token`; nothing is changed then. [`Error::Store`] as for `login`.
    pub fn login_from_token_response(&self, body: &[u8]) -> Result<(), Error> {
        let tokens = NewTokens::from_token_response(body).map_err(Error::TokenResponse)?;
        let refresh = tokens.refresh().ok_or(Error::Token(reauth_core::TokenError::Empty))?;
        self.login(tokens.access(), refresh, tokens.expires_in())
    }

    /// Forgets the tokens (in memory and in the store). Waiting requests are rejected with
    /// [`Error::NeedsLogin`]; a refresh in flight is abandoned.
    ///
    /// # Errors
    /// [`Error::Store`] if the store could not be cleared; the tokens are gone from memory
    /// all the same.
    pub fn logout(&self) -> Result<(), Error> {
        let mut shared = self.lock();
        let (drained, ()) = self.input(&mut shared, |shared, now| {
            shared.coordinator.handle_logout(now);
            shared.clear();
            shared.version = 0;
        });
        drop(shared);
        let cleared = self.inner.store.clear(None);
        self.finish(drained);
        self.report_store(cleared)
    }

    // ---------------------------------------------------------------------------------------
    // Getters

    /// True when there are no usable credentials: requests fail with [`Error::NeedsLogin`] until
    /// [`login`](Self::login).
    #[must_use]
    pub fn needs_login(&self) -> bool {
        self.lock().coordinator.needs_login()
    }

    /// The coordinator's state (no token in it).
    #[must_use]
    pub fn state(&self) -> State {
        *self.lock().coordinator.state()
    }

    /// The generation of the current access token: bumped by every login and refresh.
    #[must_use]
    pub fn generation(&self) -> Generation {
        self.lock().coordinator.generation()
    }

    /// Why the last refresh attempt failed, if it did and nothing succeeded since.
    #[must_use]
    pub fn last_refresh_error(&self) -> Option<RefreshError> {
        self.lock().last_refresh_error.clone()
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    // ---------------------------------------------------------------------------------------
    // The request loop

    /// Counts the request and its result around [`execute`](Self::execute).
    fn run(&self, source: Source<'_>) -> Result<Response<Body>, Error> {
        self.inner.stats.bump(Stat::Requests);
        let result = self.execute(source);
        self.inner.stats.bump(if result.is_ok() { Stat::Succeeded } else { Stat::Failed });
        result
    }

    fn execute(&self, source: Source<'_>) -> Result<Response<Body>, Error> {
        let id = RequestId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let admit = |shared: &mut Shared, now| match shared.coordinator.handle_request(now, id) {
            Ok(Admission::Send(ticket)) => shared.grant(ticket),
            Ok(Admission::Parked) => Step::Wait,
            Err(rejected) => Step::Reject(rejected.reason),
        };
        let mut step = self.step(admit);
        let mut adopted = false;
        loop {
            step = match step {
                Step::Send(ticket, authorization) => {
                    self.inner.stats.bump(Stat::Sent);
                    let sent = match source {
                        Source::Fixed(request) => {
                            self.exchange(request, Credential::Bearer(&authorization))
                        }
                        Source::Build(build) => match build(authorization.token()) {
                            Ok(request) => self.exchange(&request, Credential::InRequest),
                            Err(e) => Err(invalid(e)),
                        },
                    };
                    let (response, verdict) = match sent {
                        Ok(answer) => answer,
                        Err(e) => {
                            if matches!(e, Error::Transport(_)) {
                                self.inner.stats.bump(Stat::TransportErrors);
                            }
                            return Err(e);
                        }
                    };
                    if verdict == Verdict::Expired {
                        self.inner.stats.bump(Stat::ExpiredResponses);
                    }
                    let next = self.step(|shared, now| {
                        match shared.coordinator.handle_response(now, ticket, verdict) {
                            Outcome::Done => None,
                            Outcome::Replay(ticket) => {
                                self.inner.stats.bump(Stat::StaleReplays);
                                Some(shared.grant(ticket))
                            }
                            Outcome::Parked => Some(Step::Wait),
                            Outcome::Rejected(rejected) => Some(Step::Reject(rejected.reason)),
                        }
                    });
                    match next {
                        None => return Ok(response),
                        Some(next) => {
                            discard(response);
                            next
                        }
                    }
                }
                Step::Wait => {
                    self.inner.stats.bump(Stat::Parked);
                    self.wait(id)
                }
                Step::Reject(Rejection::NeedsLogin) if !adopted && self.adopt_after_logout() => {
                    // Another process has logged in or refreshed since ours lost its
                    // credentials: go again with the adopted ones.
                    adopted = true;
                    self.step(admit)
                }
                Step::Reject(reason) => {
                    self.inner.stats.rejected(reason);
                    let last = self.lock().last_refresh_error.clone();
                    return Err(Error::from_rejection(reason, last));
                }
            };
        }
    }

    /// Without credentials: installs a record another process wrote since ours were lost
    /// (refused, unanswered, logged out), if the store holds one with usable tokens. Returns
    /// whether it did. Only a request that would be refused reads the store.
    fn adopt_after_logout(&self) -> bool {
        let held = {
            let shared = self.lock();
            // This process's own logout stands until it logs in again.
            if matches!(shared.coordinator.state(), State::Failed { cause: FailCause::LoggedOut }) {
                return false;
            }
            shared.version
        };
        let record = match self.inner.store.load() {
            Ok(Some(record)) if record.version != held => record,
            _ => return false,
        };
        let Some(tokens) = lease::adoptable(&record) else { return false };
        let mut shared = self.lock();
        let (drained, adopted) = self.input(&mut shared, |shared, now| {
            if !shared.coordinator.needs_login() || shared.version != held {
                // Someone else in this process got there first.
                return !shared.coordinator.needs_login();
            }
            let lifetime = tokens.expires_in().map(reauth_core::Duration::from);
            let generation = shared.coordinator.handle_adopt(now, lifetime);
            shared.install(generation, &tokens);
            shared.version = record.version;
            shared.last_refresh_error = None;
            true
        });
        drop(shared);
        self.finish(drained);
        if adopted {
            self.inner.stats.bump(Stat::Adopted);
        }
        adopted
    }

    /// Waits until request `id` has an outcome, feeding timer ticks meanwhile.
    fn wait(&self, id: RequestId) -> Step {
        let config = *self.lock().coordinator.config();
        // The coordinator answers every parked request by its wait deadline; this bound only
        // guards against a bug there turning into a hang.
        let give_up_at = self.now().saturating_add(
            config
                .wait_timeout
                .saturating_add(config.refresh_timeout)
                .saturating_add(reauth_core::Duration::from_secs(5)),
        );
        let mut shared = self.lock();
        loop {
            if let Some(wake) = shared.outcomes.remove(&id) {
                return match wake {
                    Wake::Send(ticket, authorization) => Step::Send(ticket, authorization),
                    Wake::Reject(reason) => Step::Reject(reason),
                };
            }
            let now = self.now();
            if now >= give_up_at {
                let _ = shared.coordinator.handle_cancel(now, id);
                return Step::Reject(Rejection::Timeout);
            }
            let (drained, ()) =
                self.input(&mut shared, |shared, now| shared.coordinator.handle_timeout(now));
            if drained.0.is_some() {
                drop(shared);
                self.finish(drained);
                shared = self.lock();
                continue;
            }
            if shared.outcomes.contains_key(&id) {
                continue;
            }
            let next =
                shared.coordinator.poll_timeout().map_or(give_up_at, |at| at.min(give_up_at));
            let timeout = self.until(next);
            shared = self
                .inner
                .wake
                .wait_timeout(shared, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Locks, feeds one input, drains, unlocks, performs a drained refresh.
    fn step<R>(&self, f: impl FnOnce(&mut Shared, Instant) -> R) -> R {
        let mut shared = self.lock();
        let (drained, result) = self.input(&mut shared, f);
        drop(shared);
        self.finish(drained);
        result
    }

    /// Feeds one input under the lock and drains every action: outcomes are posted, a refresh is
    /// handed back to be performed once the lock is released. Wakes the waiting threads when an
    /// outcome was posted or the next timer moved earlier than they planned for.
    fn input<R>(
        &self,
        shared: &mut Shared,
        f: impl FnOnce(&mut Shared, Instant) -> R,
    ) -> (Drained, R) {
        let before = shared.coordinator.poll_timeout();
        let result = f(shared, self.now());
        let mut refresh = None;
        let mut posted = false;
        while let Some(action) = shared.coordinator.poll_action() {
            match action {
                Action::Refresh(id) => {
                    self.inner.stats.bump(Stat::RefreshesStarted);
                    // The core hands out at most one attempt per drain (one in flight).
                    refresh = Some(id);
                }
                Action::Send(ticket) => {
                    let wake = match shared.grant(ticket) {
                        Step::Send(ticket, authorization) => Wake::Send(ticket, authorization),
                        _ => Wake::Reject(Rejection::NeedsLogin),
                    };
                    shared.outcomes.insert(ticket.id, wake);
                    posted = true;
                }
                Action::Reject(rejected) => {
                    shared.outcomes.insert(rejected.id, Wake::Reject(rejected.reason));
                    posted = true;
                }
            }
        }
        let after = shared.coordinator.poll_timeout();
        let earlier = match (after, before) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if posted || earlier {
            self.inner.wake.notify_all();
        }
        (Drained(refresh), result)
    }

    /// Carries out what a drain left to do outside the lock: a refresh, on a thread of its
    /// own. This thread waits for it, but no longer than the attempt's deadline or its own wait
    /// timeout, whichever is sooner: a custom exchange that ignores the refresh timeout (or a
    /// store that hangs) then holds only the refresh thread, never a request past its deadline.
    /// Waiting at all keeps the common case as it was: the thread that started a refresh
    /// returns after it, so a program that exits after one request does not cut a refresh
    /// short between the server's rotation and the store's save.
    fn finish(&self, drained: Drained) {
        let Some(id) = drained.0 else { return };
        let bound = {
            let shared = self.lock();
            let wait = Duration::from_millis(shared.coordinator.config().wait_timeout.millis());
            match *shared.coordinator.state() {
                State::Refreshing { phase: Phase::InFlight { timeout_at, .. }, .. } => {
                    self.until(timeout_at).min(wait)
                }
                _ => wait,
            }
        };
        let client = self.clone();
        let (done, finished) = mpsc::channel();
        let spawned = thread::Builder::new().name("reauth-refresh".into()).spawn(move || {
            client.refresh(id);
            let _ = done.send(());
        });
        match spawned {
            Ok(_) => {
                let _ = finished.recv_timeout(bound);
            }
            // No thread to be had: refresh here, as before.
            Err(_) => self.refresh(id),
        }
    }

    // ---------------------------------------------------------------------------------------
    // The refresh

    /// Performs refresh attempt `id` and reports its result: under the store's lease, adopting
    /// a record another process wrote, or calling the token endpoint and writing the new record
    /// with compare-and-set (see [the store module](crate::TokenStore)).
    fn refresh(&self, id: RefreshId) {
        let gate = self.inner.exchange_gate.lock().unwrap_or_else(PoisonError::into_inner);
        let (held, refresh_timeout, timeout_at) = {
            let shared = self.lock();
            // The attempt may have timed out or been superseded while the gate was closed: the
            // coordinator has then already moved on without it.
            let State::Refreshing {
                phase: Phase::InFlight { id: current, timeout_at, .. }, ..
            } = *shared.coordinator.state()
            else {
                return;
            };
            if current != id {
                return;
            }
            let timeout = shared.coordinator.config().refresh_timeout.millis();
            (shared.version, Duration::from_millis(timeout), timeout_at)
        };
        let store = &*self.inner.store;
        // Waiting for another process's lease sends nothing: give up on it a little before the
        // coordinator's timeout, which would count the attempt as an unanswered presentation.
        let give_up_at =
            std::time::Instant::now() + self.until(timeout_at).saturating_sub(LEASE_WAIT_MARGIN);
        let ttl = refresh_timeout + lease::LEASE_MARGIN;
        let plan = lease::plan(store, held, ttl, give_up_at, self.inner.lease_fallback);
        let (lease, record, base) = match plan {
            lease::Plan::Adopt(record) => return self.adopt(id, &record, gate),
            lease::Plan::Fail(error) => return self.report_refresh(id, Err(error), held, gate),
            lease::Plan::Refresh { lease, record, base } => (lease, record, base),
        };
        let token = match &record {
            Some(record) => Some(Zeroizing::new(record.refresh_token.to_string())),
            None => self.lock().tokens.refresh().map(|t| Zeroizing::new(t.to_owned())),
        };
        // The call must end before the lease does; a holder stopped for a while after it took
        // the lease does not start it.
        let result = match &token {
            _ if lease.remaining() < refresh_timeout => Err(RefreshError::LeaseBusy),
            Some(token) => self.inner.exchange.refresh(token),
            None => Err(RefreshError::NoRefreshToken),
        };
        // A server that does not rotate keeps the presented token valid: when that was the
        // record's rather than ours, it is the one to keep.
        let result = match (result, &record, &token) {
            (Ok(tokens), Some(_), Some(token)) if !tokens.rotates_refresh_token() => {
                NewTokens::new(tokens.access(), Some(token), tokens.expires_in())
                    .map_err(|e| RefreshError::Other(e.to_string()))
            }
            (result, ..) => result,
        };
        let result = match result {
            Err(RefreshError::Refused { status, code, description }) => {
                let token_dead = code.is_none_or(|c| !c.is_configuration_error());
                match lease::after_refusal(store, base, token_dead) {
                    Some(newer) => {
                        lease::release(store, &lease);
                        return self.adopt(id, &newer, gate);
                    }
                    None => Err(RefreshError::Refused { status, code, description }),
                }
            }
            other => other,
        };
        let version = match &result {
            Ok(tokens) => {
                self.inner.stats.bump(Stat::RefreshesSucceeded);
                self.save_refreshed(id, base, tokens).unwrap_or(base)
            }
            Err(_) => base,
        };
        lease::release(store, &lease);
        self.report_refresh(id, result, version, gate);
    }

    /// Installs a record another process wrote, as the result of attempt `id`.
    fn adopt(&self, id: RefreshId, record: &StoredTokens, gate: MutexGuard<'_, ()>) {
        self.inner.stats.bump(Stat::Adopted);
        let tokens = lease::adoptable(record)
            .ok_or_else(|| RefreshError::Other("the shared record holds unusable tokens".into()));
        self.report_refresh(id, tokens, record.version, gate);
    }

    /// Saves what refresh `id` brought as record `base + 1` and returns that version, or `None`
    /// if it was not saved: a result for credentials replaced since (login, logout) is dropped
    /// unsaved, and a failed save is counted and reported.
    ///
    /// The save is tried once: parked requests wait for it (persist, then use), so a store that
    /// is away must not hold them. Until the record is written, the only copy of the rotated
    /// refresh token is in this process, and another process that refreshes from the old record
    /// presents a consumed token; `RedisStore` retries a dropped connection for up to its
    /// timeout (2 s) inside the one call.
    fn save_refreshed(&self, id: RefreshId, base: u64, tokens: &NewTokens) -> Option<u64> {
        let stored = {
            let shared = self.lock();
            if !shared.coordinator.is_live_refresh(id) {
                return None;
            }
            let refresh = tokens.refresh().or_else(|| shared.tokens.refresh())?;
            stored_tokens(base + 1, refresh, tokens)
        };
        // Outside the client's lock: requests with a valid token never wait for a disk.
        let saved = self.report_store(self.inner.store.save(&stored));
        saved.is_ok().then_some(base + 1)
    }

    /// Reports the result of attempt `id`; the tokens it installs belong to record `version`.
    fn report_refresh(
        &self,
        id: RefreshId,
        result: Result<NewTokens, RefreshError>,
        version: u64,
        gate: MutexGuard<'_, ()>,
    ) {
        let mut shared = self.lock();
        let (drained, ()) = match result {
            Ok(tokens) => self.input(&mut shared, |shared, now| {
                let lifetime = tokens.expires_in().map(reauth_core::Duration::from);
                if let Ok(generation) = shared.coordinator.handle_refresh_success(now, id, lifetime)
                {
                    shared.install(generation, &tokens);
                    shared.last_refresh_error = None;
                    shared.version = version;
                }
            }),
            Err(error) => {
                self.inner.stats.bump(Stat::RefreshesFailed);
                let failure = error.failure();
                self.input(&mut shared, |shared, now| {
                    // Kept even for an attempt the coordinator already timed out (`NotCurrent`):
                    // it is still the best answer to "why did the refresh fail"; only a result
                    // for replaced credentials says nothing about the current ones.
                    let result = shared.coordinator.handle_refresh_failure(now, id, failure);
                    if result != Err(RefreshResultError::Superseded) {
                        shared.last_refresh_error = Some(error);
                    }
                })
            }
        };
        drop(shared);
        // A refresh cannot drain another refresh (one in flight at a time), but if a timer
        // started the next attempt meanwhile this thread carries it out too.
        if let Some(next) = drained.0 {
            drop(gate);
            self.refresh(next);
        }
    }

    /// Writes the tokens of a login over whatever record the store holds. Returns the version
    /// written.
    fn save_over(&self, tokens: &NewTokens) -> Result<u64, StoreError> {
        let Some(refresh) = tokens.refresh() else {
            return Err(StoreError::Other("a login without a refresh token".into()));
        };
        self.inner.store.save_over(stored_tokens(0, refresh, tokens))
    }

    /// Counts and reports a store failure.
    fn report_store(&self, result: Result<(), StoreError>) -> Result<(), Error> {
        result.map_err(|e| {
            self.inner.stats.bump(Stat::StoreErrors);
            if let Some(callback) = &self.inner.on_store_error {
                callback(&e);
            }
            Error::Store(e)
        })
    }

    /// Installs what the store held at start: a still-valid access token resumes as a login,
    /// a refresh token alone as a restore (the first request refreshes).
    fn resume(&self, saved: &StoredTokens) -> Result<(), Error> {
        let remaining = saved
            .expires_at
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .filter(|left| !left.is_zero());
        let mut shared = self.lock();
        let (drained, result) = self.input(&mut shared, |shared, now| {
            match (saved.access_token.as_deref(), remaining) {
                (Some(access), Some(left)) => {
                    let tokens = NewTokens::new(access, Some(&saved.refresh_token), Some(left))?;
                    let generation = shared
                        .coordinator
                        .handle_login(now, Some(reauth_core::Duration::from(left)));
                    shared.install(generation, &tokens);
                }
                _ => {
                    shared.tokens.restore(&saved.refresh_token)?;
                    shared.authorization = None;
                    shared.coordinator.handle_restore(now);
                }
            }
            shared.version = saved.version;
            Ok::<(), Error>(())
        });
        drop(shared);
        self.finish(drained);
        result
    }

    // ---------------------------------------------------------------------------------------
    // One exchange on the wire

    /// Sends `request` with its credential, follows redirects, and judges the final response.
    fn exchange(
        &self,
        request: &Request<Vec<u8>>,
        credential: Credential<'_>,
    ) -> Result<(Response<Body>, Verdict), Error> {
        let mut method = request.method().clone();
        let mut uri = request.uri().clone();
        let mut with_body = true;
        let mut hops = 0u8;
        loop {
            // The first hop goes where the application said; later ones only to its origin.
            let same_origin = hops == 0 || {
                let origin = Origin::of(request.uri());
                origin.is_some() && Origin::of(&uri) == origin
            };
            let auth = same_origin.then_some(credential);
            let response = self.send_once(request, &method, &uri, with_body, auth)?;
            let status = response.status();
            let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
            let follow = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            match location {
                Some(location) if follow => {
                    let next = redirect::resolve(&uri, location).ok_or(Error::InvalidRedirect)?;
                    let leaves_origin = Origin::of(&next) != Origin::of(request.uri());
                    if leaves_origin && matches!(credential, Credential::InRequest) {
                        // The token may sit anywhere in a built request: never carry it away.
                        return Ok((response, Verdict::Accepted));
                    }
                    if hops >= self.inner.max_redirects {
                        return Err(Error::TooManyRedirects);
                    }
                    hops += 1;
                    self.inner.stats.bump(Stat::RedirectsFollowed);
                    uri = next;
                    // 301/302/303 turn into a GET without a body (what browsers do); 307/308
                    // repeat the method and the body.
                    if status.as_u16() <= 303 && method != Method::HEAD {
                        method = Method::GET;
                        with_body = false;
                    }
                }
                _ if auth.is_some() => return self.judge(response),
                // Not sent with our token: whatever it says is not about our token.
                _ => return Ok((response, Verdict::Accepted)),
            }
        }
    }

    /// One HTTP exchange, with or without the token.
    fn send_once(
        &self,
        request: &Request<Vec<u8>>,
        method: &Method,
        uri: &Uri,
        with_body: bool,
        credential: Option<Credential<'_>>,
    ) -> Result<Response<Body>, Error> {
        let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
        if credential.is_some() {
            // The token never crosses the network in the clear; checked for every hop that
            // carries it, so a same-origin redirect cannot downgrade either.
            tls::require_https(uri, self.inner.allow_insecure_http, "the request")?;
        }
        let authorization = match credential {
            Some(Credential::Bearer(authorization)) => Some(authorization),
            Some(Credential::InRequest) | None => None,
        };
        for (name, value) in request.headers() {
            let is_credential = name == header::AUTHORIZATION
                || name == header::COOKIE
                || name == header::PROXY_AUTHORIZATION;
            // The application's own credentials go only where the token goes; ours replaces an
            // `Authorization` it set, unless it built the request around the token itself.
            let ours = authorization.is_some() && name == header::AUTHORIZATION;
            if ours || (is_credential && credential.is_none()) {
                continue;
            }
            if !with_body && (name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH) {
                continue;
            }
            builder = builder.header(name, value);
        }
        if let Some(authorization) = authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.0.header.clone());
        }
        let body = request.body();
        let result = if with_body && !body.is_empty() {
            let request = builder.body(&body[..]).map_err(invalid)?;
            self.inner.api.run(request)
        } else {
            let request = builder.body(()).map_err(invalid)?;
            self.inner.api.run(request)
        };
        Ok(result?)
    }

    /// Applies the expiry rule, reading a bounded prefix of the body when a rule needs it and
    /// handing it back with the rest of the body.
    fn judge(&self, response: Response<Body>) -> Result<(Response<Body>, Verdict), Error> {
        let expiry = &self.inner.expiry;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED
            && response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .any(|v| is_invalid_token_challenge(v.as_bytes()))
        {
            self.inner.stats.bump(Stat::InvalidTokenChallenges);
        }
        if !expiry.needs_body() {
            let view = ResponseView { status, headers: response.headers(), body: None };
            let verdict = expiry.verdict(&view);
            return Ok((response, verdict));
        }
        let (parts, body) = response.into_parts();
        let mut rebuilt = Body::builder();
        if let Some(mime) = body.mime_type() {
            rebuilt = rebuilt.mime_type(mime);
        }
        if let Some(charset) = body.charset() {
            rebuilt = rebuilt.charset(charset);
        }
        let mut reader = body.into_reader();
        let limit = expiry.limit();
        let mut prefix = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        (&mut reader)
            .take(cap)
            .read_to_end(&mut prefix)
            .map_err(|e| Error::Transport(ureq::Error::Io(e)))?;
        let complete = prefix.len() <= limit;
        let view = ResponseView {
            status,
            headers: &parts.headers,
            body: complete.then_some(prefix.as_slice()),
        };
        let verdict = expiry.verdict(&view);
        let body = if complete {
            rebuilt.data(prefix)
        } else {
            rebuilt.reader(Cursor::new(prefix).chain(reader))
        };
        Ok((Response::from_parts(parts, body), verdict))
    }

    // ---------------------------------------------------------------------------------------
    // Small helpers

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic under the lock (in a store or a callback) leaves the coordinator consistent:
        // every input is applied whole before any code that could panic runs.
        self.inner.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds since the client was built: the coordinator's clock.
    fn now(&self) -> Instant {
        let elapsed = self.inner.epoch.elapsed().as_millis();
        Instant::from_millis(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// How long to sleep until the coordinator's clock reads `at` (at least 1 ms, so a thread
    /// never spins).
    fn until(&self, at: Instant) -> Duration {
        let target = self.inner.epoch.checked_add(Duration::from_millis(at.millis()));
        let left = target.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(std::time::Instant::now())
        });
        left.max(Duration::from_millis(1))
    }
}

impl Shared {
    /// The step for a granted ticket: its `Authorization` value, built from the installed token,
    /// which is always the one of the ticket's generation (tokens and coordinator change together
    /// under the lock).
    fn grant(&self, ticket: Ticket) -> Step {
        match &self.authorization {
            Some((generation, value)) if *generation == ticket.generation => {
                Step::Send(ticket, value.clone())
            }
            // Unreachable while the invariant above holds; refusing is the safe answer.
            _ => Step::Reject(Rejection::NeedsLogin),
        }
    }

    /// Installs new tokens under `generation`.
    fn install(&mut self, generation: Generation, tokens: &NewTokens) {
        // `NewTokens` was checked against buffers of the same capacities, so this cannot fail;
        // if it somehow did, an access token of the wrong generation must not be used.
        let mask = self.masks.mask(tokens.access());
        let value = HeaderValue::from_str(&format!("Bearer {}", mask.as_str()));
        match (self.tokens.install(generation, tokens.access(), tokens.refresh()), value) {
            (Ok(()), Ok(mut value)) => {
                value.set_sensitive(true);
                let bearer = Bearer {
                    header: value,
                    token: Zeroizing::new(tokens.access().to_owned()),
                    _mask: mask,
                };
                self.authorization = Some((generation, Authorization(Arc::new(bearer))));
            }
            _ => {
                self.clear();
                let now = self.coordinator.now();
                self.coordinator.handle_logout(now);
            }
        }
    }

    /// Wipes the tokens and drops the header value.
    fn clear(&mut self) {
        self.tokens.clear();
        self.authorization = None;
    }
}

/// The record of `tokens` with `refresh` as its refresh token, as version `version`.
fn stored_tokens(version: u64, refresh: &str, tokens: &NewTokens) -> StoredTokens {
    StoredTokens {
        version,
        refresh_token: Zeroizing::new(refresh.to_owned()),
        access_token: Some(Zeroizing::new(tokens.access().to_owned())),
        expires_at: tokens.expires_in().and_then(|d| SystemTime::now().checked_add(d)),
    }
}

/// How long before the coordinator's refresh timeout a wait for another process's lease ends.
const LEASE_WAIT_MARGIN: Duration = Duration::from_millis(100);

/// Builds a request for the convenience methods.
fn build(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Request<Vec<u8>>, Error> {
    let mut builder = Request::builder().method(method).uri(url);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body).map_err(invalid)
}

fn to_json<T: Serialize + ?Sized>(body: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body).map_err(|e| Error::InvalidRequest(e.to_string()))
}

fn invalid(e: http::Error) -> Error {
    Error::InvalidRequest(e.to_string())
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.lock();
        f.debug_struct("Client")
            .field("state", shared.coordinator.state())
            .field("generation", &shared.coordinator.generation())
            .field("tokens", &shared.tokens)
            .field("parked", &shared.coordinator.parked_len())
            .field("expiry", &self.inner.expiry)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}

/// Reads a response that will not be returned (a 401 about to be replayed, parked or rejected)
/// to its end, so that ureq puts its connection back in the pool instead of closing it and the
/// replay does not pay for a new connection (a TCP and TLS handshake on a real network). A body
/// over 16 KiB is abandoned instead; ureq then closes that connection.
fn discard(response: Response<Body>) {
    let mut reader = response.into_body().into_reader().take(16 * 1024);
    let mut buf = [0u8; 1024];
    while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
}
