//! The loopback mock OAuth2 issuer: a real HTTP/1.1 server on `127.0.0.1` (random port) that the
//! e2e tests, the demo and the benchmarks run against.
//!
//! It owns the server side of everything reauth talks to:
//!
//! - `POST /oauth/token`: the OAuth2 `refresh_token` grant (form-encoded), with refresh-token
//!   rotation (each refresh token works once; reuse answers 400 `invalid_grant` and is counted).
//! - `POST /oauth/device_authorization` and the `urn:ietf:params:oauth:grant-type:device_code`
//!   grant on `/oauth/token`: the device authorization grant (RFC 8628). Polls are answered
//!   `authorization_pending` until the user code is approved ([`MockIssuer::approve`], or
//!   [`IssuerConfig::device_answer`]), `slow_down` when they come sooner than the interval,
//!   `access_denied` after [`MockIssuer::deny`], `expired_token` after
//!   [`IssuerConfig::device_code_lifetime`]; an approved code gets a new session's tokens once.
//! - `GET /oauth/authorize` and the `authorization_code` grant on `/oauth/token`: the
//!   authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 `S256`, required) for a loopback
//!   redirect URI (RFC 8252 §7.3). The authorization request is answered at once, with no login
//!   page: a 302 to the `redirect_uri` with a code and the `state`, or with `error=access_denied`
//!   ([`IssuerConfig::authorize_answer`]). The code works once, for
//!   [`IssuerConfig::authorization_code_lifetime`], for the `client_id` and `redirect_uri` it
//!   was issued to, and with the verifier of its challenge; then it gets a new session's tokens.
//! - `POST /auth/refresh`: a "classic" JSON refresh endpoint (`{"refreshToken":"..."}` in,
//!   `{"token":"...","refreshToken":"...","ttl":N}` out) with the same rotation rules.
//! - `GET|POST|PUT|DELETE /api/...`: protected resources; an expired or unknown bearer token
//!   answers 401 + `WWW-Authenticate: Bearer error="invalid_token"`, or, in
//!   [`ExpiryStyle::Classic409`], HTTP 200 with `{"code":409,...}`. `/api/big?bytes=N` answers a
//!   body of exactly `N` bytes, `/api/redirect?to=URL` answers 302 to `URL` (no auth needed).
//! - `GET /echo-auth`: echoes the `Authorization` header it received, so that a second issuer can
//!   play the "other origin" a redirect must not leak the token to.
//!
//! Knobs (token lifetime, latency, expiry style, rotation, chunked API bodies), fault injection on
//! the token endpoints ([`Fault`]) and [`Counters`] let a test provoke a refresh storm and then
//! check that the client behaved: one refresh per token, no reuse, no token on the wrong endpoint.
//!
//! The server uses std threads only: one accept thread and one thread per connection (HTTP/1.1
//! keep-alive, `Connection: close` honoured). [`MockIssuer::start_tls`] serves the same endpoints
//! over HTTPS (rustls) with a certificate from a [`TestPki`] made at test time. Dropping the [`MockIssuer`] stops it: the port is
//! closed and every connection thread has ended when `drop` returns.
//!
//! # Examples
//!
//! ```
//! use core::time::Duration;
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
//!
//! let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
//! let tokens = issuer.login();
//!
//! let mut stream = TcpStream::connect(issuer.addr()).unwrap();
//! stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
//! let request = format!(
//!     "GET /api/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
//!      Connection: close\r\n\r\n",
//!     tokens.access_token
//! );
//! stream.write_all(request.as_bytes()).unwrap();
//! let mut response = String::new();
//! stream.read_to_string(&mut response).unwrap();
//! assert!(response.starts_with("HTTP/1.1 200 OK"));
//! assert_eq!(issuer.counters().api_ok, 1);
//! ```

mod assertion;
mod authorize;
mod codec;
mod device;
mod http;
mod route;
mod state;

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::BTreeMap;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

pub use reauth_core::oauth::ClientAuth;

use self::http::Shared;
use self::state::State;
use crate::tls::TestPki;

/// How the issuer's API tells a client that its access token has expired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExpiryStyle {
    /// HTTP 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750).
    #[default]
    Status401,
    /// HTTP 200 with the body `{"code":409,"message":"token expired"}` (`"invalid token"` for an
    /// unknown one), the way many home-grown APIs do it; a client must look at the body to notice
    /// the expiry. A request without any bearer token still gets 401.
    Classic409,
}

/// Settings of a [`MockIssuer`], fixed at [`MockIssuer::start`]; the ones that a test wants to
/// change mid-run also have a runtime setter on [`MockIssuer`].
///
/// Build one with struct update syntax:
/// `IssuerConfig { token_lifetime: Duration::from_millis(200), ..IssuerConfig::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerConfig {
    /// How long an access token issued by a refresh stays valid. `expires_in` in the token
    /// response is this in whole seconds, rounded up (so a 200 ms lifetime says `1`: a client's
    /// proactive refresh comes too late and the reactive 401 path gets exercised). Default 60 s.
    pub token_lifetime: Duration,
    /// Fixed delay added before every API and token-endpoint answer. Default zero.
    pub latency: Duration,
    /// Upper bound of a random extra delay (uniform in `0..=latency_jitter`, drawn from a PRNG
    /// seeded with [`seed`](Self::seed)) added on top of [`latency`](Self::latency). Default zero.
    pub latency_jitter: Duration,
    /// Seed of the jitter PRNG, so that a run's latencies can be reproduced. Default 0.
    pub seed: u64,
    /// How an expired or unknown access token is reported on `/api`. Default
    /// [`ExpiryStyle::Status401`].
    pub expiry_style: ExpiryStyle,
    /// Refresh-token rotation: when true (the default) every refresh answer carries a new refresh
    /// token and the presented one is consumed, so a second use is a reuse. When false the same
    /// refresh token is handed back and works any number of times.
    pub rotation: bool,
    /// When a consumed refresh token is presented again, also revoke every refresh token of that
    /// login session (what Auth0, Okta and others do to stop a stolen token). Access tokens stay
    /// valid until they expire. Default false.
    pub revoke_on_reuse: bool,
    /// A consumed refresh token presented again within this long of its rotation is accepted
    /// once more and answered with new tokens of the same session (Auth0's "reuse interval",
    /// Okta's "grace period"): a client that lost the answer to its refresh can recover. Such a
    /// presentation counts in [`Counters::grace_reuses`], not in
    /// [`reuse_attempts`](Counters::reuse_attempts). Default zero: every reuse is a reuse.
    pub reuse_grace: Duration,
    /// A successful refresh revokes the access token issued before it in the same session
    /// (some servers do this on rotation): requests still carrying it are answered with a bare
    /// `403` and no `WWW-Authenticate`. Default false.
    pub revoke_access_on_refresh: bool,
    /// A refused refresh token is quoted in the refusal's `error_description`
    /// (`Invalid refresh token: <token>`, as Spring Security OAuth answers): a client must not
    /// pass that on to its errors and logs. Default false.
    pub quote_refused_token: bool,
    /// Answer every `/api` response with `Transfer-Encoding: chunked` instead of
    /// `Content-Length`, to exercise a client's chunked decoder. Default false.
    pub chunked_api: bool,
    /// When set, `POST /oauth/token` requires this client id (form field `client_id`, or the
    /// user part of HTTP Basic credentials) and answers 401 `invalid_client` otherwise. When
    /// `None` (the default) `client_id` and `client_secret` are accepted and ignored.
    pub client_id: Option<String>,
    /// When set, `POST /oauth/token` requires this client secret, presented the way
    /// [`client_auth`](Self::client_auth) says and no other (as Authlib does): the other method
    /// is answered 401 `invalid_client`, "The client cannot authenticate with methods: [...]".
    /// Default `None`: secrets are ignored.
    pub client_secret: Option<String>,
    /// How a client with a secret must authenticate (default `client_secret_basic`, the method
    /// every server must support).
    pub client_auth: ClientAuth,
    /// The polling interval advertised by `/oauth/device_authorization` (whole seconds, rounded
    /// up). Default 5 s, RFC 8628's default.
    pub device_interval: Duration,
    /// The shortest gap between two polls of one device code that is not answered `slow_down`;
    /// `None` (the default) enforces [`device_interval`](Self::device_interval). Set it above
    /// the advertised interval to provoke `slow_down` from a client that obeys the interval.
    pub device_enforced_interval: Option<Duration>,
    /// How long a device code stays valid (`expires_in`, whole seconds rounded up); polls after
    /// it are answered `expired_token`. Default 600 s.
    pub device_code_lifetime: Duration,
    /// Who answers a device authorization: the test ([`DeviceAnswer::Manual`], the default,
    /// through [`MockIssuer::approve`] and [`MockIssuer::deny`]) or the issuer itself after a
    /// number of polls.
    pub device_answer: DeviceAnswer,
    /// How `GET /oauth/authorize` answers a valid authorization request, as the user would in
    /// their browser: with a code (the default) or with `error=access_denied`.
    pub authorize_answer: AuthorizeAnswer,
    /// How long an authorization code can be redeemed. Default 60 s.
    pub authorization_code_lifetime: Duration,
    /// When set, clients authenticate with `private_key_jwt` (RFC 7523) instead of a secret:
    /// token and device requests must carry a `client_assertion` signed by the private key of
    /// this public key (SPKI PEM; RSA for RS256, P-256 for ES256) with `iss` = `sub` = the client
    /// id, `aud` = the token endpoint's URL, an `exp` not past and at most 5 minutes ahead, and a
    /// `jti` not seen before; anything else is 401 `invalid_client` with the reason. The metadata
    /// then lists `private_key_jwt`. Default `None`.
    pub client_assertion_key: Option<String>,
}

/// How the mock issuer's authorization endpoint answers (the user in the browser).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthorizeAnswer {
    /// Redirect with a code at once, as if the user had logged in and consented.
    #[default]
    Approve,
    /// Redirect with `error=access_denied`, as if the user had refused.
    Deny,
}

/// Who decides on a device authorization of the mock issuer (RFC 8628's user on a phone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceAnswer {
    /// The test calls [`MockIssuer::approve`] or [`MockIssuer::deny`].
    #[default]
    Manual,
    /// Approved at the `n`th poll of the device code, which gets the tokens (`ApproveAfter(1)`:
    /// the first poll).
    ApproveAfter(u32),
    /// Denied at the `n`th poll, which gets `access_denied`.
    DenyAfter(u32),
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(60),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            seed: 0,
            expiry_style: ExpiryStyle::Status401,
            rotation: true,
            revoke_on_reuse: false,
            reuse_grace: Duration::ZERO,
            revoke_access_on_refresh: false,
            quote_refused_token: false,
            chunked_api: false,
            client_id: None,
            client_secret: None,
            client_auth: ClientAuth::Basic,
            device_interval: Duration::from_secs(5),
            device_enforced_interval: None,
            device_code_lifetime: Duration::from_secs(600),
            device_answer: DeviceAnswer::Manual,
            authorize_answer: AuthorizeAnswer::Approve,
            authorization_code_lifetime: Duration::from_secs(60),
            client_assertion_key: None,
        }
    }
}

/// A fault that the token endpoints (`/oauth/token` and `/auth/refresh`) serve instead of, or
/// on top of, a normal answer. See [`MockIssuer::inject`].
///
/// Unless stated otherwise a fault is answered *in place of* the grant: the presented refresh
/// token is neither checked nor consumed, so the client can retry with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 503 Service Unavailable, `times` requests in a row.
    ServiceUnavailable {
        /// Number of token requests that get this fault.
        times: u32,
    },
    /// 429 Too Many Requests with a `Retry-After: <retry_after_secs>` header.
    TooManyRequests {
        /// Number of token requests that get this fault.
        times: u32,
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u32,
    },
    /// Read the request, send nothing for `duration`, then close the connection. Shutting the
    /// issuer down cuts the hang short.
    Hang {
        /// Number of token requests that get this fault.
        times: u32,
        /// How long to stay silent before closing.
        duration: Duration,
    },
    /// 200 `application/json` with a truncated body such as `{"access_token": "abc", ` (the
    /// `Content-Length` is right, the JSON is not).
    MalformedJson {
        /// Number of token requests that get this fault.
        times: u32,
    },
    /// The grant is processed as usual (the refresh token rotates), but a successful answer
    /// carries an access token of `len` bytes: the normal token padded with `x`. The padded token
    /// is registered, so a client that can hold it may use it on `/api`. A `len` shorter than a
    /// normal token (about 22 bytes) gives the normal token.
    OversizedToken {
        /// Number of token requests that get this fault.
        times: u32,
        /// Length in bytes of the access token in the answer.
        len: usize,
    },
    /// 400 `{"error":"invalid_grant"}` (401 `{"code":401}` on `/auth/refresh`), whatever the
    /// refresh token.
    InvalidGrant {
        /// Number of token requests that get this fault.
        times: u32,
    },
    /// 401 `{"error":"invalid_client"}` (401 `{"code":401}` on `/auth/refresh`).
    InvalidClient {
        /// Number of token requests that get this fault.
        times: u32,
    },
    /// Send a 200 head whose `Content-Length` promises more than is sent, send half of the body,
    /// then close the socket: the client sees the connection end mid-body.
    ResetMidBody {
        /// Number of token requests that get this fault.
        times: u32,
    },
    /// Read the request, then close the connection without answering.
    CloseBeforeAnswer {
        /// Number of token requests that get this fault.
        times: u32,
    },
    /// The grant is processed as usual (the refresh token rotates), but the answer is written one
    /// byte at a time with `byte_delay` between bytes: a client timeout that fires meanwhile
    /// loses the new refresh token, as it would against a slow real server.
    Trickle {
        /// Number of token requests that get this fault.
        times: u32,
        /// Pause after each byte of the answer.
        byte_delay: Duration,
    },
}

impl Fault {
    /// How many more token requests this fault applies to.
    #[must_use]
    pub const fn times(&self) -> u32 {
        match *self {
            Self::ServiceUnavailable { times }
            | Self::TooManyRequests { times, .. }
            | Self::Hang { times, .. }
            | Self::MalformedJson { times }
            | Self::OversizedToken { times, .. }
            | Self::InvalidGrant { times }
            | Self::InvalidClient { times }
            | Self::ResetMidBody { times }
            | Self::CloseBeforeAnswer { times }
            | Self::Trickle { times, .. } => times,
        }
    }
}

/// A session issued by [`MockIssuer::login`] or by a refresh: what a client would store.
///
/// `Debug` does not print the token values (only their lengths), so that a test log never holds
/// a usable token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The bearer token for `/api` requests.
    pub access_token: String,
    /// The refresh token for the next refresh (single use when rotation is on).
    pub refresh_token: String,
    /// How long the access token is valid from the moment it was issued.
    pub expires_in: Duration,
    /// Generation of the access token: issuer-wide, starting at 1, incremented by every login
    /// and every successful refresh.
    pub generation: u32,
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &Redacted(self.access_token.len()))
            .field("refresh_token", &Redacted(self.refresh_token.len()))
            .field("expires_in", &self.expires_in)
            .field("generation", &self.generation)
            .finish()
    }
}

/// Prints `<redacted N bytes>` in place of a token.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0)
    }
}

/// A snapshot of what the issuer has seen, from [`MockIssuer::counters`]. All counts start at 0
/// and are cleared by [`MockIssuer::reset_counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// TCP connections accepted (a client that keeps connections alive has fewer than requests).
    pub connections_accepted: u64,
    /// Every request read, complete or malformed, on any path.
    pub requests_total: u64,
    /// Requests to a token endpoint (`/oauth/token` or `/auth/refresh`), faulted ones included.
    pub refresh_calls: u64,
    /// Token-endpoint requests answered with new tokens.
    pub refresh_successes: u64,
    /// Presentations of an already consumed refresh token (each answered `invalid_grant`).
    /// A correct client keeps this at 0.
    pub reuse_attempts: u64,
    /// Token-endpoint requests that got an injected [`Fault`].
    pub faults_served: u64,
    /// `/api` requests answered 200 with a valid token.
    pub api_ok: u64,
    /// `/api` requests answered "not authorized": 401, or 200 `{"code":409}` in
    /// [`ExpiryStyle::Classic409`].
    pub api_unauthorized: u64,
    /// [`api_ok`](Self::api_ok) broken down by the generation of the presented token.
    pub ok_by_generation: BTreeMap<u32, u64>,
    /// [`api_unauthorized`](Self::api_unauthorized) broken down by the generation of the
    /// presented token; unknown or missing tokens count under generation 0.
    pub unauthorized_by_generation: BTreeMap<u32, u64>,
    /// Number of distinct access tokens that were answered "expired" at least once.
    pub expiry_episodes: u64,
    /// `/api` requests that carried a known refresh token anywhere (request line, headers or
    /// body). A correct client keeps this at 0: a refresh token goes to the token endpoint only.
    pub refresh_token_seen_on_api: u64,
    /// Token-endpoint requests that carried a known access token anywhere.
    pub access_token_seen_on_token_endpoint: u64,
    /// The largest number of refresh calls that presented the refresh token issued together with
    /// one and the same access token. A correct client refreshes each access token at most once,
    /// so this stays at most 1 (faulted requests are not counted).
    pub refreshes_per_access_token_max: u64,
    /// Presentations of a consumed refresh token accepted within
    /// [`IssuerConfig::reuse_grace`].
    pub grace_reuses: u64,
    /// `/echo-auth` requests that carried an `Authorization` header: a token leaked to the
    /// "other origin".
    pub foreign_authorization_seen: u64,
    /// Requests answered 4xx because they were not valid HTTP or exceeded a size limit.
    pub malformed_requests: u64,
    /// Device authorizations handed out by `/oauth/device_authorization`.
    pub device_authorizations: u64,
    /// Polls of the device-code grant (also counted in [`refresh_calls`](Self::refresh_calls);
    /// faulted ones are not counted here).
    pub device_polls: u64,
    /// Polls answered `authorization_pending`.
    pub device_pending: u64,
    /// Polls answered `slow_down`.
    pub device_slow_downs: u64,
    /// Polls answered `access_denied`.
    pub device_denials: u64,
    /// Polls answered `expired_token`.
    pub device_expired: u64,
    /// Polls answered with tokens (also counted in
    /// [`refresh_successes`](Self::refresh_successes)).
    pub device_approvals: u64,
    /// Authorization codes handed out by `/oauth/authorize`.
    pub authorizations: u64,
    /// Authorization requests answered `access_denied` ([`AuthorizeAnswer::Deny`]).
    pub authorization_denials: u64,
    /// Authorization requests refused as invalid (unknown client, a redirect URI that is not a
    /// loopback one, no PKCE or not `S256`, not `response_type=code`).
    pub authorization_requests_refused: u64,
    /// Authorization codes exchanged for tokens (also counted in
    /// [`refresh_successes`](Self::refresh_successes)).
    pub code_redemptions: u64,
    /// Code exchanges refused (unknown, used or expired code, another client or redirect URI,
    /// a failed PKCE check).
    pub code_refusals: u64,
    /// Code exchanges refused because the verifier did not match the challenge (also counted
    /// in [`code_refusals`](Self::code_refusals)).
    pub pkce_failures: u64,
}

/// A running mock issuer. See the [module docs](self) for the endpoints.
///
/// Every method takes `&self`, so one issuer can be shared by reference (or in an `Arc`) between
/// the test and the threads that drive a client.
pub struct MockIssuer {
    /// The bound loopback address.
    addr: SocketAddr,
    /// `http`, or `https` for [`start_tls`](Self::start_tls).
    scheme: &'static str,
    /// State shared with the accept and connection threads.
    shared: Arc<Shared>,
    /// The accept thread; `None` only during `drop`.
    accept_thread: Option<JoinHandle<()>>,
}

impl MockIssuer {
    /// Binds `127.0.0.1:0` and starts serving on a background thread.
    ///
    /// # Errors
    ///
    /// Fails if the socket cannot be bound or the accept thread cannot be spawned.
    pub fn start(config: IssuerConfig) -> io::Result<Self> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), config)
    }

    /// Binds `ip` (a random port) and starts serving on a background thread. For a test that
    /// reaches the issuer through an interface of its own, e.g. the kernel's side of a TAP
    /// device inside a network namespace the test created; use [`start`](Self::start) otherwise.
    ///
    /// # Errors
    ///
    /// Fails if the socket cannot be bound or the accept thread cannot be spawned.
    pub fn start_on(ip: IpAddr, config: IssuerConfig) -> io::Result<Self> {
        Self::start_at(SocketAddr::new(ip, 0), config)
    }

    /// Binds `addr` (port 0: a random one) and starts serving on a background thread: for
    /// `reauth issuer --port`, where another program needs a port it knows in advance.
    ///
    /// # Errors
    ///
    /// Fails if the socket cannot be bound or the accept thread cannot be spawned.
    pub fn start_at(addr: SocketAddr, config: IssuerConfig) -> io::Result<Self> {
        Self::serve(TcpListener::bind(addr)?, config, None)
    }

    /// Like [`start`](Self::start), over HTTPS: every connection is a TLS server connection
    /// presenting `pki`'s server certificate (valid for `localhost`, `127.0.0.1` and `::1` when
    /// made by [`TestPki::generate`]). A client trusts it by adding [`TestPki::ca_pem`] as a root.
    /// The URLs of [`base_url`](Self::base_url) and the others start with `https://`.
    ///
    /// # Errors
    ///
    /// Fails if the socket cannot be bound, the accept thread cannot be spawned, or rustls
    /// rejects the certificate (`InvalidInput`).
    pub fn start_tls(config: IssuerConfig, pki: &TestPki) -> io::Result<Self> {
        Self::start_tls_at(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0), config, pki)
    }

    /// [`start_tls`](Self::start_tls) on `addr` (port 0: a random one), e.g. the kernel's side of
    /// a TAP device in a test's network namespace; `pki` must then be made for that address
    /// ([`TestPki::generate_for`]).
    ///
    /// # Errors
    ///
    /// As [`start_tls`](Self::start_tls).
    pub fn start_tls_at(addr: SocketAddr, config: IssuerConfig, pki: &TestPki) -> io::Result<Self> {
        let tls =
            pki.server_config().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Self::serve(TcpListener::bind(addr)?, config, Some(tls))
    }

    /// Starts the accept thread on `listener`, plain or TLS.
    fn serve(
        listener: TcpListener,
        config: IssuerConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared::new(State::new(config, addr.port())));
        let accept_thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("mock-issuer-{}", addr.port()))
                .spawn(move || http::accept_loop(&listener, &shared, tls.as_ref()))?
        };
        Ok(Self { addr, scheme, shared, accept_thread: Some(accept_thread) })
    }

    /// The address the issuer listens on (`127.0.0.1` unless started with
    /// [`start_on`](Self::start_on), a random port).
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` when started with [`start_tls`](Self::start_tls)),
    /// without a trailing slash.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The OAuth2 token endpoint, `http://127.0.0.1:PORT/oauth/token`.
    #[must_use]
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }

    /// The device authorization endpoint (RFC 8628),
    /// `http://127.0.0.1:PORT/oauth/device_authorization`.
    #[must_use]
    pub fn device_authorization_url(&self) -> String {
        format!("{}/oauth/device_authorization", self.base_url())
    }

    /// The authorization endpoint (RFC 6749 §3.1), `http://127.0.0.1:PORT/oauth/authorize`.
    #[must_use]
    pub fn authorization_url(&self) -> String {
        format!("{}/oauth/authorize", self.base_url())
    }

    /// Sets how the authorization endpoint answers from now on.
    pub fn set_authorize_answer(&self, answer: AuthorizeAnswer) {
        self.shared.lock().config.authorize_answer = answer;
    }

    /// Approves the pending device authorization of `user_code`, as the user would on their
    /// phone: its next poll gets tokens. False if no authorization with that user code waits.
    pub fn approve(&self, user_code: &str) -> bool {
        self.shared.lock().decide_device(user_code, true)
    }

    /// Denies the pending device authorization of `user_code`: its next poll gets
    /// `access_denied`. False if no authorization with that user code waits.
    pub fn deny(&self, user_code: &str) -> bool {
        self.shared.lock().decide_device(user_code, false)
    }

    /// The user codes of the device authorizations that wait for a decision, in no order.
    #[must_use]
    pub fn pending_user_codes(&self) -> Vec<String> {
        self.shared.lock().pending_user_codes()
    }

    /// The classic JSON refresh endpoint, `http://127.0.0.1:PORT/auth/refresh`.
    #[must_use]
    pub fn classic_refresh_url(&self) -> String {
        format!("{}/auth/refresh", self.base_url())
    }

    /// The URL of a protected resource: `path` is joined under `/api`, with or without its
    /// leading slash (`api_url("x")` and `api_url("/x")` both give `.../api/x`).
    #[must_use]
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/api/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// The URL of the unprotected `/echo-auth` endpoint.
    #[must_use]
    pub fn echo_auth_url(&self) -> String {
        format!("{}/echo-auth", self.base_url())
    }

    /// Issues a fresh session in-process, as if a user had just logged in, with the current
    /// token lifetime. Starts a new generation.
    #[must_use]
    pub fn login(&self) -> IssuedTokens {
        let mut state = self.shared.lock();
        let lifetime = state.config.token_lifetime;
        state.login(lifetime)
    }

    /// Like [`login`](Self::login), with a first access token valid for `lifetime` (later
    /// refreshes use the issuer's token lifetime).
    #[must_use]
    pub fn login_with_lifetime(&self, lifetime: Duration) -> IssuedTokens {
        self.shared.lock().login(lifetime)
    }

    /// Sets the lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().config.token_lifetime = lifetime;
    }

    /// Sets the fixed latency and the jitter bound added to API and token answers from now on.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        let mut state = self.shared.lock();
        state.config.latency = latency;
        state.config.latency_jitter = jitter;
    }

    /// Switches how expired and unknown access tokens are reported on `/api`.
    pub fn set_expiry_style(&self, style: ExpiryStyle) {
        self.shared.lock().config.expiry_style = style;
    }

    /// Makes every access token issued so far expired, right now: the next API request of every
    /// client is refused, which triggers a refresh storm.
    pub fn expire_all_now(&self) {
        self.shared.lock().expire_all_now();
    }

    /// Revokes every refresh token issued so far: refreshing answers 400 `invalid_grant` (401 on
    /// `/auth/refresh`) until a new [`login`](Self::login). Access tokens stay valid until they
    /// expire.
    pub fn revoke_session(&self) {
        self.shared.lock().revoke_all();
    }

    /// Queues `fault` behind the already queued ones. Queued faults apply to successive token
    /// requests in order, each for its [`times`](Fault::times) requests; a fault with
    /// `times == 0` is ignored.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().inject(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// The generation of the most recently issued access token (0 before the first login).
    #[must_use]
    pub fn current_generation(&self) -> u32 {
        self.shared.lock().current_generation()
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters()
    }

    /// The counters once `settled` holds for them, or after `limit` has passed, whichever comes
    /// first (checked every millisecond).
    ///
    /// For a test whose client has finished before the issuer has read its last request: a
    /// client that loses an answer gives up the moment its own stack says so, while the request
    /// it sent is still on its way to the issuer's connection thread. The test's assertions then
    /// judge the snapshot; `limit` only bounds the wait.
    #[must_use]
    pub fn counters_when(&self, limit: Duration, settled: impl Fn(&Counters) -> bool) -> Counters {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let counters = self.counters();
            if settled(&counters) || std::time::Instant::now() >= deadline {
                return counters;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sets every counter back to 0, including the per-token bookkeeping behind
    /// [`Counters::expiry_episodes`] and [`Counters::refreshes_per_access_token_max`].
    pub fn reset_counters(&self) {
        self.shared.lock().reset_counters();
    }
}

impl fmt::Debug for MockIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockIssuer")
            .field("addr", &self.addr)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl Drop for MockIssuer {
    /// Stops accepting, closes the port, cuts every open connection and joins every thread.
    fn drop(&mut self) {
        http::shutdown(&self.shared, self.addr, self.accept_thread.take());
    }
}
