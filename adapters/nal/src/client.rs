//! The client: `K` request slots and one refresh exchange around a [`Coordinator`], stepped by
//! the firmware's loop through [`Client::poll`].

use core::fmt;
use core::mem;

use reauth_core::oauth::parse_token_response;
use reauth_core::{
    Action, Admission, Coordinator, Duration, Generation, Instant, Outcome, RefreshFailure,
    RefreshId, Rejection, RequestId, TokenError, TokenSet,
};

use crate::config::ClientConfig;
use crate::error::{Error, LoginError, SubmitError};
use crate::http::{Answer, Request, Response};
use crate::refresh::{RefreshExchange, Refresher, Unusable};
use crate::slot::{Slot, SlotState};
use crate::stack::StreamEnd;
use crate::store::TokenStore;
use crate::transport::Transport;

/// A poll-driven HTTP/1.1 client that keeps its bearer token fresh, for one API and one token
/// endpoint, without heap and without blocking.
///
/// Type parameters:
/// - `T`: the [`Transport`], any [`embedded_nal::TcpClientStack`] or a TLS layer over one;
/// - `S`: the [`TokenStore`] that persists rotated refresh tokens ([`NoStore`](crate::NoStore)
///   for none);
/// - `X`: the [`RefreshExchange`], usually [`OAuth2`](crate::OAuth2);
/// - `K`: request slots, i.e. requests open at once (running, parked or answered);
/// - `REQ`: bytes per request buffer: the request as sent, with an `Authorization` line for an
///   access token of `A` bytes (`submit` refuses what does not fit). The refresh request (head,
///   form body with the refresh token) MUST fit it too;
/// - `RESP`: bytes per response buffer: head plus body (chunked bodies decoded in place, with a
///   few bytes of framing slack). The token endpoint's answer MUST fit it too;
/// - `A`, `R`: capacities of the access and refresh tokens in bytes.
///
/// Five numbers in a row are easy to swap: name the type with [`client_type!`](crate::client_type),
/// which takes each size by name (`slots: 2, request: 512, response: 1024, access: 256,
/// refresh: 128`) and refuses them in another order. [`new`](Self::new) also refuses, at
/// compile time, sizes that cannot work: `K = 0`, a request buffer not larger than the access
/// token (`REQ <= A`), a response buffer not larger than both tokens (`RESP <= A + R`).
///
/// Memory: roughly `(K + 1) * (REQ + RESP) + A + R` bytes plus a few hundred, all inside the
/// value; put it in a `static` (see [`new`](Self::new), a `const fn`) rather than on a small
/// stack.
///
/// # Methods
///
/// - **Getters**: [`coordinator`](Self::coordinator), [`generation`](Self::generation),
///   [`needs_login`](Self::needs_login), [`free_slots`](Self::free_slots),
///   [`response`](Self::response), [`store`](Self::store), [`config`](Self::config).
/// - **Inputs**: [`login`](Self::login), [`restore`](Self::restore), [`logout`](Self::logout),
///   [`submit`](Self::submit), [`release`](Self::release), [`cancel`](Self::cancel).
/// - **Outputs**: [`poll`](Self::poll), which also does the I/O, and
///   [`poll_timeout`](Self::poll_timeout).
///
/// # Driving it
///
/// The firmware's main loop MUST, whenever the network stack may have news (after polling the
/// stack, on an interrupt) and no later than [`poll_timeout`](Self::poll_timeout):
/// 1. call [`poll`](Self::poll) with the current time until it returns `None`, handling each
///    [`Event`]: read an [`Event::Response`] with [`response`](Self::response), then
///    [`release`](Self::release) its slot;
/// 2. then sleep (e.g. `WFI`) until the stack has news or [`poll_timeout`](Self::poll_timeout)
///    passes.
///
/// `poll` never blocks and never spins: every socket call that would block makes it move on to
/// the next slot.
///
/// # Examples
///
/// ```no_run
/// # fn demo<T: reauth_nal::Transport>(net: &mut T, now: impl Fn() -> reauth_core::Instant) {
/// use reauth_nal::{Client, ClientConfig, Endpoint, Event, NoStore, OAuth2, Request};
///
/// let api = Endpoint { addr: "192.0.2.1:80".parse().unwrap(), host: "api.example" };
/// let token = Endpoint { addr: "192.0.2.2:80".parse().unwrap(), host: "auth.example" };
/// let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
/// let mut client: reauth_nal::client_type!('_, T, NoStore, OAuth2<'_>,
///     slots: 2, request: 512, response: 1024, access: 256, refresh: 128) =
///     Client::new(ClientConfig::new(api, token), exchange, NoStore);
/// client.restore(now(), "refresh-token-from-flash").unwrap();
/// let id = client.submit(now(), &Request::get("/api/status")).unwrap();
/// loop {
///     while let Some(event) = client.poll(net, now()) {
///         if let Event::Response { id: done, status } = event {
///             let body_len = client.response(done).map_or(0, |r| r.body().len());
///             client.release(done);
///         }
///     }
///     // sleep until the stack has news or `client.poll_timeout()`
/// }
/// # }
/// ```
pub struct Client<
    'a,
    T: Transport,
    S: TokenStore,
    X: RefreshExchange,
    const K: usize,
    const REQ: usize,
    const RESP: usize,
    const A: usize,
    const R: usize,
> {
    config: ClientConfig<'a>,
    exchange: X,
    store: S,
    coordinator: Coordinator<K>,
    /// The only copy of the tokens; lent out as `&str` at the moment they are written.
    tokens: TokenSet<A, R>,
    slots: [Slot<T::Connection, T::Error, REQ, RESP>; K],
    refresher: Refresher<T::Connection, REQ, RESP>,
    /// The store's failure to persist the last rotated refresh token, not yet handed out.
    persist_failed: Option<S::Error>,
    /// The last refresh exchange's result ([`Event::Refreshed`] or [`Event::RefreshFailed`]),
    /// not yet handed out. A refresh exchange is only stepped while both are empty, and one
    /// step ends with at most one of each, so no event is ever dropped.
    refresh_news: Option<Event<T::Error, S::Error>>,
    /// The server's `error_description` of the last refusal, bounded and sanitised.
    #[cfg(feature = "refusal-description")]
    refusal: RefusalDescription,
    /// The id the next request gets.
    next_id: u32,
    /// The latest instant seen; earlier ones are clamped to it.
    now: Instant,
}

/// Names a [`Client`] type with its five sizes given by name, in this order, so that they cannot
/// be swapped silently (a name out of place does not compile):
///
/// ```
/// use reauth_nal::{NoStore, OAuth2};
/// # type Stack = std_embedded_nal::Stack;
///
/// type Device = reauth_nal::client_type!(Stack, NoStore, OAuth2<'static>,
///     slots: 2, request: 512, response: 1024, access: 256, refresh: 128);
/// // With a lifetime other than `'static` for the configuration:
/// type Borrowed<'a> = reauth_nal::client_type!('a, Stack, NoStore, OAuth2<'a>,
///     slots: 2, request: 512, response: 1024, access: 256, refresh: 128);
/// ```
///
/// Sizes in another order do not compile:
///
/// ```compile_fail
/// # use reauth_nal::{NoStore, OAuth2};
/// # type Stack = std_embedded_nal::Stack;
/// type Swapped = reauth_nal::client_type!(Stack, NoStore, OAuth2<'static>,
///     slots: 2, response: 1024, request: 512, access: 256, refresh: 128);
/// ```
///
/// - `slots`: requests open at once (`K`);
/// - `request`: bytes per request buffer (`REQ`), the request with its `Authorization` line;
///   the refresh request uses one too;
/// - `response`: bytes per response buffer (`RESP`), head and body; the token endpoint's
///   answer uses one too;
/// - `access`, `refresh`: the capacities of the access and refresh tokens (`A`, `R`).
#[macro_export]
macro_rules! client_type {
    ($lt:lifetime, $net:ty, $store:ty, $exchange:ty,
     slots: $k:expr, request: $req:expr, response: $resp:expr, access: $a:expr,
     refresh: $r:expr $(,)?) => {
        $crate::Client<$lt, $net, $store, $exchange, { $k }, { $req }, { $resp }, { $a }, { $r }>
    };
    ($net:ty, $store:ty, $exchange:ty,
     slots: $k:expr, request: $req:expr, response: $resp:expr, access: $a:expr,
     refresh: $r:expr $(,)?) => {
        $crate::client_type!('static, $net, $store, $exchange, slots: $k, request: $req,
            response: $resp, access: $a, refresh: $r)
    };
}

/// The most bytes of a refusal's `error_description` that
/// [`Client::refusal_description`] keeps.
pub const REFUSAL_DESCRIPTION_LEN: usize = 64;

/// The token endpoint's own words about a refusal (its `error_description`, RFC 6749 §5.2),
/// bounded and sanitised: at most [`REFUSAL_DESCRIPTION_LEN`] bytes of printable ASCII, anything
/// else (quotes and backslashes too) shown as `?`, so that it can go to a log or a display as
/// it is, and withheld if it quotes the refresh token the refused request presented (some
/// servers do). A copy type without a heap, for reauth-nal-async, which cannot lend out its shared
/// state. The text is the server's: show it as its words, not as a fact. Never holds a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefusalDescription {
    bytes: [u8; REFUSAL_DESCRIPTION_LEN],
    len: u8,
}

impl RefusalDescription {
    /// No description.
    pub const NONE: Self = Self { bytes: [0; REFUSAL_DESCRIPTION_LEN], len: 0 };

    /// The `error_description` of the error response `body` to a request that presented
    /// `refresh_token`, cut at [`REFUSAL_DESCRIPTION_LEN`] bytes; `None` if it has none (or an
    /// empty one). A description that quotes the token is withheld
    /// ([`DESCRIPTION_WITHHELD`](reauth_core::oauth::DESCRIPTION_WITHHELD) instead).
    ///
    /// ```
    /// use reauth_nal::RefusalDescription;
    ///
    /// let body = br#"{"error":"invalid_client","error_description":"Client \"x\"\nunknown"}"#;
    /// let description = RefusalDescription::of_error_response(body, "rt-1").unwrap();
    /// assert_eq!(description.as_str(), "Client ?x??unknown");
    /// let none = RefusalDescription::of_error_response(br#"{"error":"invalid_grant"}"#, "rt-1");
    /// assert_eq!(none, None);
    /// ```
    #[must_use]
    pub fn of_error_response(body: &[u8], refresh_token: &str) -> Option<Self> {
        let mut description = Self::NONE;
        description.read(body, refresh_token);
        description.text().map(|_| description)
    }

    /// The text: printable ASCII, never empty.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.text().unwrap_or_default()
    }

    /// Replaces the text with the `error_description` of `body` (none if it has none), withheld
    /// if it quotes `refresh_token`.
    fn read(&mut self, body: &[u8], refresh_token: &str) {
        let len = reauth_core::oauth::write_error_description(body, refresh_token, &mut self.bytes);
        self.len = u8::try_from(len).unwrap_or(0);
    }

    /// The text, `None` if empty. Printable ASCII only (`write_error_description`'s promise),
    /// so the UTF-8 check cannot fail.
    fn text(&self) -> Option<&str> {
        let text = self.bytes.get(..usize::from(self.len))?;
        core::str::from_utf8(text).ok().filter(|text| !text.is_empty())
    }
}

impl fmt::Display for RefusalDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RefusalDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Something the application must hear about, from [`Client::poll`].
#[derive(Debug)]
pub enum Event<E, SE> {
    /// Request `id` was answered (any status the expiry rule does not treat as "token expired").
    /// Read it with [`Client::response`], then free the slot with [`Client::release`].
    Response {
        /// The request.
        id: RequestId,
        /// The response status.
        status: u16,
    },
    /// Request `id` failed; its slot is free again.
    Failed {
        /// The request.
        id: RequestId,
        /// Why.
        error: Error<E>,
    },
    /// A refresh installed a new access token; parked requests go out with it.
    Refreshed {
        /// The new token's generation.
        generation: Generation,
        /// Its lifetime, if the server said.
        lifetime: Option<Duration>,
    },
    /// A refresh attempt failed. A [`RefreshFailure::Transient`] one (nothing was sent, or the
    /// server answered `408`, `429` or `5xx`) is retried after a backoff; a
    /// [`RefreshFailure::Lost`] one (the request went out, at least in part, and no usable
    /// answer came back: reset, close or timeout before the whole answer, an unusable or
    /// oversized success) is retried too, but one refresh token is presented at most
    /// [`max_unanswered`](reauth_core::Config::max_unanswered) times that way; a
    /// [`RefreshFailure::Refused`] one means the user must log in again: at once
    /// ([`Client::needs_login`]), or, when an early refresh was refused while the access token
    /// is still valid, once that token turns stale (the coordinator is
    /// [`Refused`](reauth_core::State::Refused) meanwhile and requests keep going out). Its
    /// error is [`AnswerError::Refused`](crate::AnswerError::Refused) with the OAuth code;
    /// [`is_configuration_error`](crate::AnswerError::is_configuration_error) tells a client
    /// set up wrong (whose stored refresh token is kept) from a refused refresh token (which
    /// is erased from the store at once).
    RefreshFailed {
        /// How the coordinator took it.
        failure: RefreshFailure,
        /// What went wrong.
        error: Error<E>,
    },
    /// The rotated refresh token could not be persisted. The new tokens are installed and in
    /// use; only a reboot before the next successful save would lose them.
    PersistFailed {
        /// The store's error.
        error: SE,
    },
}

impl<
    'a,
    T: Transport,
    S: TokenStore,
    X: RefreshExchange,
    const K: usize,
    const REQ: usize,
    const RESP: usize,
    const A: usize,
    const R: usize,
> Client<'a, T, S, X, K, REQ, RESP, A, R>
{
    /// A client without credentials: call [`login`](Self::login) or [`restore`](Self::restore)
    /// before submitting requests. `const`, so that it can live in a `static`.
    #[must_use]
    pub const fn new(config: ClientConfig<'a>, exchange: X, store: S) -> Self {
        // Sizes that cannot work, as compile errors (evaluated for each set of sizes used).
        const { assert!(K >= 1, "reauth-nal: a client needs at least one request slot") };
        const {
            assert!(
                REQ > A,
                "reauth-nal: the request buffer (REQ) must be larger than the access token (A)"
            )
        };
        const {
            assert!(
                RESP > A + R,
                "reauth-nal: the response buffer (RESP) must be larger than both tokens (A + R)"
            )
        };
        Self {
            coordinator: Coordinator::new(config.coordinator),
            config,
            exchange,
            store,
            // The empty parts as `const` blocks: built at run time, the refresher's exchange
            // went through a stack temporary and `memclr`/`memcpy4` (LLVM did not see that it is
            // all zeros); as constants they are one zero fill in place. Measured on the example
            // firmware: -276 B flash for the refresher (and `wipe` could then drop `memclr`,
            // -204 B more), -16 B for the tokens, and the worst-case stack 1,984 -> 1,256 B.
            tokens: const { TokenSet::new() },
            slots: [const { Slot::new() }; K],
            refresher: const { Refresher::new() },
            persist_failed: None,
            refresh_news: None,
            #[cfg(feature = "refusal-description")]
            refusal: RefusalDescription::NONE,
            next_id: 1,
            now: Instant::ZERO,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Getters

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &ClientConfig<'a> {
        &self.config
    }

    /// The coordinator, to inspect its state.
    #[must_use]
    pub const fn coordinator(&self) -> &Coordinator<K> {
        &self.coordinator
    }

    /// The generation of the installed access token.
    #[must_use]
    pub const fn generation(&self) -> Generation {
        self.tokens.generation()
    }

    /// True when there are no usable credentials: the application must log in.
    #[must_use]
    pub const fn needs_login(&self) -> bool {
        self.coordinator.needs_login()
    }

    /// How many slots are free for [`submit`](Self::submit).
    #[must_use]
    pub fn free_slots(&self) -> usize {
        self.slots.iter().filter(|s| s.is_free()).count()
    }

    /// The response of request `id`, from its [`Event::Response`] until
    /// [`release`](Self::release).
    #[must_use]
    pub fn response(&self, id: RequestId) -> Option<Response<'_>> {
        self.slots.iter().find(|s| s.id == id).and_then(Slot::response)
    }

    /// The token endpoint's own words about its last refusal (its `error_description`), from
    /// the [`Event::RefreshFailed`] with [`AnswerError::Refused`](crate::AnswerError::Refused)
    /// until the next login, restore or logout: at most [`REFUSAL_DESCRIPTION_LEN`] bytes,
    /// printable ASCII only (anything else, quotes and backslashes shown as `?`). `None` if the
    /// server gave none. Needs the `refusal-description` feature (on by default).
    #[cfg(feature = "refusal-description")]
    #[must_use]
    pub fn refusal_description(&self) -> Option<&str> {
        self.refusal.text()
    }

    /// The token store.
    #[must_use]
    pub const fn store(&self) -> &S {
        &self.store
    }

    /// The token store, e.g. to hand its flash driver back.
    pub const fn store_mut(&mut self) -> &mut S {
        &mut self.store
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
        &mut self,
        now: Instant,
        access: &str,
        refresh: &str,
        lifetime: Option<Duration>,
    ) -> Result<Generation, LoginError<S::Error>> {
        let now = self.clock(now);
        self.forget_refusal();
        // `handle_login` installs exactly the next generation; the tokens go in first so that
        // a token that does not fit leaves the coordinator untouched.
        let generation = self.coordinator.generation().next();
        self.tokens.install(generation, access, Some(refresh)).map_err(LoginError::Token)?;
        let saved = self.store.save(refresh, generation);
        let generation = self.coordinator.handle_login(now, lifetime);
        self.drain_actions();
        saved.map_err(LoginError::Persist).map(|()| generation)
    }

    /// Installs the tokens of a login from a token response body (RFC 6749 §5.1), such as the
    /// answer a [`DeviceLogin`](crate::DeviceLogin) got approved: decoded straight into the
    /// client's buffers, then as [`login`](Self::login). Returns the new generation.
    ///
    /// # Errors
    /// [`LoginError::TokenResponse`] if the body is not a usable token response,
    /// [`LoginError::Token`] if a token does not fit or the response has no refresh token
    /// ([`TokenError::Empty`]); nothing changes then. [`LoginError::Persist`] as for `login`.
    pub fn login_from_token_response(
        &mut self,
        now: Instant,
        body: &[u8],
    ) -> Result<Generation, LoginError<S::Error>> {
        let now = self.clock(now);
        self.forget_refusal();
        let response = parse_token_response(body).map_err(LoginError::TokenResponse)?;
        if !response.has_refresh_token() {
            return Err(LoginError::Token(TokenError::Empty));
        }
        let generation = self.coordinator.generation().next();
        response.apply(&mut self.tokens, generation).map_err(LoginError::Token)?;
        let saved = self.store.save(self.tokens.refresh().unwrap_or_default(), generation);
        let generation = self.coordinator.handle_login(now, response.expires_in());
        self.drain_actions();
        saved.map_err(LoginError::Persist).map(|()| generation)
    }

    /// Installs a refresh token alone (restored from flash at boot); the first request starts a
    /// refresh.
    ///
    /// # Errors
    /// [`TokenError`] if the token is unusable; nothing changes then.
    pub fn restore(&mut self, now: Instant, refresh: &str) -> Result<(), TokenError> {
        let now = self.clock(now);
        self.forget_refusal();
        self.tokens.restore(refresh)?;
        self.coordinator.handle_restore(now);
        self.drain_actions();
        Ok(())
    }

    /// Forgets the tokens (also in the store) and rejects parked requests with
    /// [`Rejection::NeedsLogin`]. Requests on the wire finish, and are refused by the server if
    /// it agrees.
    ///
    /// # Errors
    /// The store could not erase the token; the tokens are gone from memory anyway.
    pub fn logout(&mut self, now: Instant) -> Result<(), S::Error> {
        let now = self.clock(now);
        self.forget_refusal();
        self.tokens.clear();
        self.coordinator.handle_logout(now);
        self.drain_actions();
        self.store.clear()
    }

    /// Copies `request` into a free slot and sends it as soon as a token allows: at the next
    /// [`poll`](Self::poll), or after a refresh. Returns the id its [`Event`] will carry.
    ///
    /// # Errors
    /// [`SubmitError::Busy`] if no slot is free, [`SubmitError::RequestTooLarge`] or
    /// [`SubmitError::InvalidRequest`] for a request that cannot be sent,
    /// [`SubmitError::Rejected`] if the coordinator refuses it (e.g. `NeedsLogin`).
    pub fn submit(
        &mut self,
        now: Instant,
        request: &Request<'_>,
    ) -> Result<RequestId, SubmitError> {
        let now = self.clock(now);
        let id = self.fresh_id();
        let host = self.config.api.host;
        // A stack that never reports the end of a stream cannot tell a kept connection the
        // server closed from a quiet one: every request has its own there.
        let keep_alive = self.config.timeouts.keep_alive > Duration::ZERO
            && !matches!(T::STREAM_END, StreamEnd::NeverReported);
        let Some(slot) = self.slots.iter_mut().find(|s| s.is_free()) else {
            return Err(SubmitError::Busy);
        };
        slot.load(id, request, host, A, keep_alive, asks_close::<T>()).map_err(|e| match e {
            Some(needed) => SubmitError::RequestTooLarge { needed, capacity: REQ },
            None => SubmitError::InvalidRequest,
        })?;
        match self.coordinator.handle_request(now, id) {
            Ok(Admission::Send(ticket)) => slot.send(ticket, &self.tokens),
            Ok(Admission::Parked) => slot.state = SlotState::Parked,
            Err(rejected) => {
                slot.free();
                return Err(SubmitError::Rejected(rejected.reason));
            }
        }
        self.next_id = id.0.wrapping_add(1);
        self.drain_actions();
        Ok(id)
    }

    /// Frees the slot of an answered request (the response can no longer be read). Returns
    /// false if `id` has no answered response.
    pub fn release(&mut self, id: RequestId) -> bool {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.id == id && matches!(s.state, SlotState::Answered { .. }))
        else {
            return false;
        };
        slot.free();
        true
    }

    /// Gives up on request `id` wherever it stands (parked, on the wire, answered): its
    /// connection is closed, its slot freed, and no event will name it. Returns false if no
    /// slot holds it.
    pub fn cancel(&mut self, net: &mut T, now: Instant, id: RequestId) -> bool {
        let now = self.clock(now);
        let Some(slot) = self.slots.iter_mut().find(|s| s.id == id && !s.is_free()) else {
            return false;
        };
        if matches!(slot.state, SlotState::Parked) {
            self.coordinator.handle_cancel(now, id);
        }
        slot.abort(net);
        self.drain_actions();
        true
    }

    // ---------------------------------------------------------------------------------------
    // Outputs

    /// Does whatever the network allows without waiting (connects, sends, receives, the
    /// refresh exchange, timeouts) and returns the next event, or `None` when there is none.
    /// Call it again until it returns `None`.
    pub fn poll(&mut self, net: &mut T, now: Instant) -> Option<Event<T::Error, S::Error>> {
        let now = self.clock(now);
        // Events already waiting go out first; the I/O round runs once they are all handed out,
        // which bounds how many a round can leave behind.
        if let Some(event) = self.next_event() {
            return Some(event);
        }
        self.coordinator.handle_timeout(now);
        self.drain_actions();
        self.step_refresh(net, now);
        for index in 0..K {
            self.step_slot(net, index, now);
        }
        // A slot's answer may have started a refresh: get it on the wire in the same round.
        self.step_refresh(net, now);
        self.next_event()
    }

    /// The instant by which [`poll`](Self::poll) MUST be called again even if the network stays
    /// quiet (a deadline, a backoff end, a request ready to start), or `None` if nothing waits
    /// on time. An instant at or before the last `now` means "at once". Sockets waiting for
    /// data are not covered: poll also when the stack has news.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ready = self.persist_failed.is_some()
            || self.refresh_news.is_some()
            || (self.refresher.has_pending() && !self.refresher.is_running())
            || self.slots.iter().any(|s| match s.state {
                SlotState::Answered { reported, .. } => !reported,
                SlotState::Failed(_) => true,
                _ => false,
            });
        if ready {
            return Some(self.now);
        }
        let exchanges = self.slots.iter().map(Slot::poll_at).chain([self.refresher.poll_at()]);
        exchanges.fold(self.coordinator.poll_timeout(), sooner)
    }

    // ---------------------------------------------------------------------------------------
    // Helpers

    // Every input calls it: one shared copy of the 64-bit compare is smaller than five.
    #[inline(never)]
    fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    /// New credentials or none: the last refusal's description is about the old ones.
    fn forget_refusal(&mut self) {
        #[cfg(feature = "refusal-description")]
        {
            self.refusal.len = 0;
        }
    }

    /// An id no open request has (the counter wraps after 4 billion requests).
    fn fresh_id(&mut self) -> RequestId {
        let mut id = self.next_id;
        while self.slots.iter().any(|s| !s.is_free() && s.id.0 == id) {
            id = id.wrapping_add(1);
        }
        RequestId(id)
    }

    /// Carries out what the coordinator asks for (its contract: after every input).
    fn drain_actions(&mut self) {
        while let Some(action) = self.coordinator.poll_action() {
            match action {
                Action::Refresh(id) => self.refresher.want(id),
                Action::Send(ticket) => {
                    if let Some(slot) = parked_slot(&mut self.slots, ticket.id) {
                        slot.send(ticket, &self.tokens);
                    }
                }
                Action::Reject(rejected) => {
                    if let Some(slot) = parked_slot(&mut self.slots, rejected.id) {
                        slot.state = SlotState::Failed(Error::Rejected(rejected.reason));
                    }
                }
            }
        }
    }

    // Out of line: measured smaller on thumbv7em than inlined into `poll`.
    #[inline(never)]
    fn step_slot(&mut self, net: &mut T, index: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some((ticket, answer)) =
            slot.advance(net, self.config.api.addr, now, &self.config.timeouts)
        else {
            return;
        };
        let rule = self.config.expiry;
        let body = rule.needs_body().then(|| slot.body(&answer));
        let verdict = rule.verdict(answer.head.status, body);
        match self.coordinator.handle_response(now, ticket, verdict) {
            Outcome::Done => slot.state = SlotState::Answered { answer, reported: false },
            Outcome::Replay(ticket) => slot.send(ticket, &self.tokens),
            Outcome::Parked => slot.state = SlotState::Parked,
            Outcome::Rejected(rejected) => {
                slot.state = SlotState::Failed(Error::Rejected(rejected.reason));
            }
        }
        self.drain_actions();
    }

    fn step_refresh(&mut self, net: &mut T, now: Instant) {
        if self.persist_failed.is_some() || self.refresh_news.is_some() {
            return;
        }
        if !self.refresher.is_running()
            && let Some(id) = self.refresher.take_pending()
            && self.coordinator.refresh_in_flight() == Some(id)
        {
            self.begin_refresh(now, id);
        }
        let remote = self.config.token.addr;
        let Some((id, result)) = self.refresher.advance(net, remote, now, &self.config.timeouts)
        else {
            return;
        };
        match result {
            Ok(answer) => self.refresh_answered(now, id, &answer),
            Err(error) => {
                // Once any byte of the request went out, the server may have rotated the
                // refresh token: the exchange is lost, not merely transient.
                let failure = RefreshFailure::unanswered(self.refresher.sent_any());
                self.refresh_failed(now, id, failure, error);
            }
        }
        self.refresher.wipe_answer();
        self.drain_actions();
    }

    fn begin_refresh(&mut self, now: Instant, id: RefreshId) {
        let Some(token) = self.tokens.refresh() else {
            // Without a refresh token the endpoint can only refuse.
            let error = Error::Rejected(Rejection::NeedsLogin);
            self.refresh_failed(now, id, RefreshFailure::Refused, error);
            return;
        };
        let host = self.config.token.host;
        if let Err(error) = self.refresher.start(id, &self.exchange, token, host, asks_close::<T>())
        {
            self.refresh_failed(now, id, RefreshFailure::Transient { retry_after: None }, error);
        }
    }

    // Out of line: measured smaller on thumbv7em than inlined into `step_refresh`.
    #[inline(never)]
    fn refresh_answered(&mut self, now: Instant, id: RefreshId, answer: &Answer) {
        if !self.coordinator.is_live_refresh(id) {
            // Credentials were replaced (login, logout) since the attempt started: its tokens
            // belong to the old session and are dropped unread.
            return;
        }
        // `handle_refresh_success` installs exactly the next generation. The tokens go in
        // first (all or nothing) so that an unusable answer leaves the coordinator untouched,
        // and the rotated refresh token is persisted before anything can use it.
        let generation = self.coordinator.generation().next();
        let response = self.refresher.response(answer);
        let read = self.exchange.read_answer(
            response.status(),
            response.body(),
            response.retry_after(),
            &mut self.tokens,
            generation,
        );
        let refreshed = match read {
            Ok(refreshed) => refreshed,
            Err(Unusable { failure, error }) => {
                #[cfg(feature = "refusal-description")]
                if let crate::AnswerError::Refused { .. } = error {
                    // The refused token is still the installed one: quoting it is withheld.
                    let presented = self.tokens.refresh().unwrap_or_default();
                    self.refusal.read(response.body(), presented);
                }
                self.refresh_failed(now, id, failure, Error::Refresh(error));
                return;
            }
        };
        if refreshed.rotated
            && let Some(token) = self.tokens.refresh()
            && let Err(error) = self.store.save(token, generation)
        {
            self.persist_failed = Some(error);
        }
        if let Ok(generation) = self.coordinator.handle_refresh_success(now, id, refreshed.lifetime)
        {
            self.notify(Event::Refreshed { generation, lifetime: refreshed.lifetime });
        }
        // An attempt the coordinator asked for while this one was still on the wire (after a
        // timeout) never went out: end it quietly instead of refreshing a token just installed.
        if let Some(next) = self.refresher.take_pending()
            && self.coordinator.refresh_in_flight() == Some(next)
        {
            let transient = RefreshFailure::Transient { retry_after: None };
            let _ = self.coordinator.handle_refresh_failure(now, next, transient);
        }
    }

    fn refresh_failed(
        &mut self,
        now: Instant,
        id: RefreshId,
        failure: RefreshFailure,
        error: Error<T::Error>,
    ) {
        // A failure the coordinator ignores (the attempt was superseded or had timed out) is not
        // reported: it changed nothing.
        if self.coordinator.handle_refresh_failure(now, id, failure).is_ok() {
            let misconfigured = matches!(&error, Error::Refresh(e) if e.is_configuration_error());
            if self.coordinator.is_refused() && !misconfigured {
                // The stored refresh token is dead, even while the access token (which only RAM
                // holds) still works: a rebooted device must not restore it and spend a refresh
                // call to learn so. A failed erase changes nothing else. A client set up wrong
                // has not used its refresh token: it stays for the corrected firmware.
                let _ = self.store.clear();
            }
            self.notify(Event::RefreshFailed { failure, error });
        }
    }

    fn notify(&mut self, event: Event<T::Error, S::Error>) {
        // `step_refresh` only runs while `refresh_news` is empty, and reports once per step.
        debug_assert!(self.refresh_news.is_none(), "a refresh result was not handed out");
        self.refresh_news = Some(event);
    }

    /// The next event to hand out (see [`take_event`](Self::take_event)), logged with the `log`
    /// feature.
    fn next_event(&mut self) -> Option<Event<T::Error, S::Error>> {
        let event = self.take_event();
        #[cfg(feature = "log")]
        if let Some(event) = &event {
            log_event(event);
        }
        event
    }

    /// The refresh exchange's news (the store's failure first: it happened first), else the
    /// first slot with something to report.
    fn take_event(&mut self) -> Option<Event<T::Error, S::Error>> {
        if let Some(error) = self.persist_failed.take() {
            return Some(Event::PersistFailed { error });
        }
        if let Some(event) = self.refresh_news.take() {
            return Some(event);
        }
        for slot in &mut self.slots {
            match &mut slot.state {
                SlotState::Answered { answer, reported: reported @ false } => {
                    *reported = true;
                    return Some(Event::Response { id: slot.id, status: answer.head.status });
                }
                SlotState::Failed(_) => {
                    let SlotState::Failed(error) = mem::replace(&mut slot.state, SlotState::Free)
                    else {
                        continue;
                    };
                    slot.free();
                    return Some(Event::Failed { id: slot.id, error });
                }
                _ => {}
            }
        }
        None
    }
}

/// Logs an event as it is handed out. Only kinds, ids, statuses and counts: the transport's and
/// the store's own error values are not shown, since what they hold is not ours to vouch for.
#[cfg(feature = "log")]
fn log_event<E: embedded_nal::TcpError, SE>(event: &Event<E, SE>) {
    const TARGET: &str = "reauth_nal";
    match event {
        Event::Response { id, status } => log::debug!(target: TARGET, "{id} answered {status}"),
        Event::Failed { id, error } => log::warn!(target: TARGET, "{id} failed: {error}"),
        Event::Refreshed { generation, lifetime } => match lifetime {
            Some(lifetime) => {
                log::info!(target: TARGET, "token refreshed: {generation}, {lifetime}")
            }
            None => log::info!(target: TARGET, "token refreshed: {generation}, lifetime not given"),
        },
        Event::RefreshFailed { failure: RefreshFailure::Refused, error } => {
            log::warn!(target: TARGET, "refresh refused, the user must log in again: {error}");
        }
        Event::RefreshFailed { failure: RefreshFailure::Transient { .. }, error } => {
            log::warn!(target: TARGET, "refresh failed, to be retried: {error}");
        }
        Event::RefreshFailed { failure: RefreshFailure::Lost, error } => {
            log::warn!(target: TARGET, "refresh answer lost (the token may be rotated): {error}");
        }
        Event::PersistFailed { .. } => {
            log::error!(target: TARGET, "the rotated refresh token could not be persisted");
        }
    }
}

/// The earlier of two optional instants, `None` counting as "never".
fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The parked slot of request `id`, if any.
fn parked_slot<C, E, const REQ: usize, const RESP: usize>(
    slots: &mut [Slot<C, E, REQ, RESP>],
    id: RequestId,
) -> Option<&mut Slot<C, E, REQ, RESP>> {
    slots.iter_mut().find(|s| s.id == id && matches!(s.state, SlotState::Parked))
}

impl<
    T: Transport,
    S: TokenStore,
    X: RefreshExchange,
    const K: usize,
    const REQ: usize,
    const RESP: usize,
    const A: usize,
    const R: usize,
> fmt::Debug for Client<'_, T, S, X, K, REQ, RESP, A, R>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", self.coordinator.state())
            .field("tokens", &self.tokens)
            .field("free_slots", &self.free_slots())
            .field("refreshing", &self.refresher.is_running())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Whether requests over `T` ask the server to close the connection after its answer: not on a
/// stack that loses what arrives with the close ([`StreamEnd::LosesUnread`]).
const fn asks_close<T: Transport>() -> bool {
    !matches!(T::STREAM_END, StreamEnd::LosesUnread)
}
