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

mod flow;
mod refresh;
mod send;
mod state;

use core::fmt;
use core::sync::atomic::AtomicU32;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use http::header::{self};
use http::{Method, Request, Response};
use reauth_core::{Coordinator, Generation, Instant, State, TokenSet};
use serde::Serialize;
use ureq::Body;

use crate::error::Error;
use crate::exchange::{NewTokens, QUEUE_CAPACITY, RefreshError, RefreshExchange};
use crate::expiry::Expiry;
use crate::stats::{StatCells, Stats};
use crate::store::{StoreError, TokenStore};
use crate::tls::TlsSettings;
use crate::wire::Masks;

use self::send::Source;
use self::state::Shared;

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

/// Called when the store fails; see [`ClientBuilder::on_store_error`](crate::ClientBuilder::on_store_error).
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
    pub(crate) tls: TlsSettings,
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
    /// away (see [`ClientBuilder::lease_fallback`](crate::ClientBuilder::lease_fallback)).
    lease_fallback: bool,
    /// The roots the client trusts and whether a token may travel over plain http to a host
    /// other than loopback; a login run through the client without TLS settings of its own
    /// uses them too.
    tls: TlsSettings,
    /// Source of request ids; wraps after 4 billion requests, long after the old ones ended.
    next_id: AtomicU32,
    stats: StatCells,
}

impl Client {
    /// The client's TLS settings, for a login run through it.
    pub(crate) fn tls(&self) -> &TlsSettings {
        &self.inner.tls
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
            tls,
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
            tls,
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
    /// [`ClientBuilder::max_redirects`](crate::ClientBuilder::max_redirects)) with the token only while they stay on the request's
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
        self.install_login(&tokens)
    }

    /// [`login`](Self::login) with tokens already checked, which carry a refresh token: the
    /// login flows hand theirs over without copying them again.
    pub(crate) fn install_login(&self, tokens: &NewTokens) -> Result<(), Error> {
        let expires_in = tokens.expires_in();
        // A login replaces whatever record the store holds, whoever wrote it.
        let saved = self.save_over(tokens);
        let mut shared = self.lock();
        let (drained, ()) = self.input(&mut shared, |shared, now| {
            let generation =
                shared.coordinator.handle_login(now, expires_in.map(reauth_core::Duration::from));
            shared.install(generation, tokens);
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
        if !tokens.rotates_refresh_token() {
            return Err(Error::Token(reauth_core::TokenError::Empty));
        }
        self.install_login(&tokens)
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
