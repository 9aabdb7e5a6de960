//! What the client is told once, at construction: where the API and the token endpoint are, what
//! counts as "token expired", and how long each step of an exchange may take.

use core::net::SocketAddr;

use reauth_core::Duration;
use reauth_core::expiry::ExpiryRule;

/// The settings of a [`Client`](crate::Client). Every field is a plain value or a borrowed
/// slice, so a `ClientConfig<'static>` can be built in a `const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig<'a> {
    /// Where requests go.
    pub api: Endpoint<'a>,
    /// Where the refresh exchange goes; the path comes from the
    /// [`RefreshExchange`](crate::RefreshExchange).
    pub token: Endpoint<'a>,
    /// The coordinator's tunables (refresh-ahead window, waits, retries). The embedded
    /// defaults, [`Config::DEFAULT`](reauth_core::Config::DEFAULT), are for slow links: a
    /// refresh attempt may take 30 s (an exchange with [`Timeouts::DEFAULT`] ends by 25 s when
    /// the server says nothing: 10 s to connect, 15 s for the answer), two attempts per
    /// episode, and a request waits up to 75 s, longer than the 60.5 s an episode can last, so
    /// a hung token endpoint gets two attempts and every waiting request ends with
    /// [`Rejection::RefreshUnavailable`](reauth_core::Rejection::RefreshUnavailable).
    pub coordinator: reauth_core::Config,
    /// What counts as "token expired" in an API response (default: status 401).
    pub expiry: ExpiryRule<'a>,
    /// How long each step of an exchange may take.
    pub timeouts: Timeouts,
}

/// One HTTP server: its address and the `Host` header it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// The socket address to connect to (resolve names before, e.g. with
    /// [`embedded_nal::Dns`]).
    pub addr: SocketAddr,
    /// The `Host` header: the server's name, with `:port` if it is not the default.
    pub host: &'a str,
}

/// Deadlines of one exchange, measured on the caller's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From opening the socket until the connection is established (default 10 s).
    pub connect: Duration,
    /// From the end of the request until the response head is complete: the server's thinking
    /// time (default 15 s).
    pub response: Duration,
    /// The longest gap without progress while sending the request or receiving the body
    /// (default 10 s).
    pub idle: Duration,
    /// The whole exchange, from opening the socket to the last byte (default 60 s): a server
    /// that keeps trickling bytes (endless interim responses or trailer lines) cannot hold a
    /// slot forever.
    pub total: Duration,
    /// With the `keep-alive` feature: how long a slot keeps its connection to the API open
    /// after an answer, for its next request (default 4 s, under the 5 s after which common
    /// servers close idle connections). Without the feature, every request has its own.
    /// Zero: every request opens a connection and asks the server to close it. Only requests
    /// with an idempotent method (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`) reuse a connection:
    /// when a reused connection turns out closed before any answer arrives, the request goes
    /// again on a new one, which would not be safe for a `POST`.
    pub keep_alive: Duration,
}

impl Timeouts {
    /// The documented defaults: 10 s to connect, 15 s for the response head, 10 s idle, 60 s
    /// in all, connections kept 4 s.
    pub const DEFAULT: Self = Self {
        connect: Duration::from_secs(10),
        response: Duration::from_secs(15),
        idle: Duration::from_secs(10),
        total: Duration::from_secs(60),
        keep_alive: Duration::from_secs(4),
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl<'a> ClientConfig<'a> {
    /// A configuration with the defaults: the coordinator's
    /// [`Config::DEFAULT`](reauth_core::Config::DEFAULT), 401 as the only expiry signal,
    /// [`Timeouts::DEFAULT`].
    #[must_use]
    pub const fn new(api: Endpoint<'a>, token: Endpoint<'a>) -> Self {
        Self {
            api,
            token,
            coordinator: reauth_core::Config::DEFAULT,
            expiry: ExpiryRule::STATUS_401,
            timeouts: Timeouts::DEFAULT,
        }
    }
}
