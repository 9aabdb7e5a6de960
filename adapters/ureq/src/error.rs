//! The one error type of the client: a typed rejection from the coordinator, a transport error
//! from ureq, a store failure, or a misuse. None of them can carry a token.

use core::fmt;

use reauth_core::oauth::TokenResponseError;
use reauth_core::{Rejection, TokenError};

use crate::discovery::DiscoveryError;
use crate::exchange::RefreshError;
use crate::store::StoreError;
use crate::tls::{Refusal, TlsError};

/// Why a request, a login or building a client failed.
///
/// The first five variants are the coordinator's rejections: the request was not (or not again)
/// sent because of the state of the credentials. `Display` never shows a token, and neither does
/// any `source()`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// There are no usable credentials: never logged in, the refresh token was refused, or
    /// [`Client::logout`](crate::Client::logout). Log in again and call
    /// [`Client::login`](crate::Client::login).
    NeedsLogin,
    /// Too many requests were already waiting for a refresh; this one was refused at once.
    QueueFull,
    /// The request waited longer than the wait timeout
    /// ([`Config::wait_timeout`](reauth_core::Config::wait_timeout)) for a refresh to finish.
    Timeout,
    /// Every refresh attempt of this expiry episode failed transiently (network error, timeout,
    /// 5xx, or an unusable token response). The refresh token is kept; a later request tries
    /// again. Holds the failure of the last attempt, when it is known.
    RefreshUnavailable(Option<RefreshError>),
    /// The server still refused the request after it was replayed with a fresh token.
    Unauthorized,
    /// The coordinator refused the request for a reason this adapter does not expect (for
    /// example a duplicate request id).
    Rejected(Rejection),
    /// The HTTP exchange failed (connection, timeout, malformed response, body read).
    Transport(ureq::Error),
    /// The server's TLS certificate was not accepted (an unknown issuer, another host's name,
    /// expired, ...): a configuration problem that no retry cures. See [`TlsError::problem`].
    Tls(TlsError),
    /// A URL that would carry a token or a secret is plain `http` to a host other than
    /// loopback, and [`ClientBuilder::allow_insecure_http`](crate::ClientBuilder::allow_insecure_http)
    /// is off. Nothing was sent.
    InsecureUrl {
        /// Which URL: "the token endpoint", "the request", ...
        what: &'static str,
        /// Its origin (`http://host:port`); the path and query are left out, as they may
        /// hold something secret.
        origin: String,
    },
    /// The root certificates given to the builder cannot be used: a file that cannot be read,
    /// PEM without a certificate, or a certificate that cannot serve as a trust anchor.
    RootCertificates(String),
    /// The authorization server's metadata could not be had or used
    /// ([`ClientBuilder::issuer`](crate::ClientBuilder::issuer)).
    Discovery(DiscoveryError),
    /// The token store could not load or save the tokens. When this comes from
    /// [`Client::login`](crate::Client::login) the tokens are installed in memory all the same.
    Store(StoreError),
    /// A token given to [`Client::login`](crate::Client::login) or loaded from the store is
    /// unusable (empty, too long for its buffer, or not visible ASCII).
    Token(TokenError),
    /// The body given to
    /// [`Client::login_from_token_response`](crate::Client::login_from_token_response) is not a
    /// usable token response (malformed JSON, no `access_token`, not Bearer, a token too long).
    TokenResponse(TokenResponseError),
    /// The server redirected more often than
    /// [`ClientBuilder::max_redirects`](crate::ClientBuilder::max_redirects) allows.
    TooManyRedirects,
    /// A redirect's `Location` could not be turned into a URL.
    InvalidRedirect,
    /// The request could not be built (bad URL, bad header, JSON serialization failed).
    InvalidRequest(String),
    /// The client was configured inconsistently (for example no token endpoint and no custom
    /// refresh exchange).
    Config(&'static str),
}

impl Error {
    /// The error for a coordinator rejection; `last_refresh` explains `RefreshUnavailable`.
    pub(crate) fn from_rejection(reason: Rejection, last_refresh: Option<RefreshError>) -> Self {
        match reason {
            Rejection::NeedsLogin => Self::NeedsLogin,
            Rejection::QueueFull => Self::QueueFull,
            Rejection::Timeout => Self::Timeout,
            Rejection::RefreshUnavailable => Self::RefreshUnavailable(last_refresh),
            Rejection::Unauthorized => Self::Unauthorized,
            other => Self::Rejected(other),
        }
    }

    /// True for the errors that mean "log in again".
    #[must_use]
    pub const fn is_needs_login(&self) -> bool {
        matches!(self, Self::NeedsLogin)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NeedsLogin => f.write_str("no usable credentials: log in again"),
            Self::QueueFull => f.write_str("too many requests are waiting for a token refresh"),
            Self::Timeout => f.write_str("timed out waiting for a token refresh"),
            Self::RefreshUnavailable(None) => {
                f.write_str("the token refresh failed repeatedly; try again later")
            }
            Self::RefreshUnavailable(Some(last)) => {
                write!(f, "the token refresh failed repeatedly; try again later (last: {last})")
            }
            Self::Unauthorized => f.write_str(
                "the server still refused the request after a replay with a fresh token",
            ),
            Self::Rejected(reason) => write!(f, "request rejected: {reason}"),
            Self::Transport(e) => write!(f, "HTTP transport error: {e}"),
            Self::Tls(e) => write!(f, "{e}"),
            Self::InsecureUrl { what, origin } => {
                let refusal = Refusal::InsecureUrl { what, origin: origin.clone() };
                write!(f, "{refusal}")
            }
            Self::RootCertificates(what) => write!(f, "unusable root certificates: {what}"),
            Self::Discovery(e) => write!(f, "discovery failed: {e}"),
            Self::Store(e) => write!(f, "token store error: {e}"),
            Self::Token(e) => write!(f, "unusable token: {e}"),
            Self::TokenResponse(e) => write!(f, "unusable token response: {e}"),
            Self::TooManyRedirects => f.write_str("too many redirects"),
            Self::InvalidRedirect => f.write_str("a redirect has an unusable Location"),
            Self::InvalidRequest(what) => write!(f, "invalid request: {what}"),
            Self::Config(what) => write!(f, "invalid client configuration: {what}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::RefreshUnavailable(Some(e)) => Some(e),
            Self::Rejected(e) => Some(e),
            Self::Transport(e) => Some(e),
            Self::Tls(e) => Some(e),
            Self::Discovery(e) => Some(e),
            Self::Store(e) => Some(e),
            Self::Token(e) => Some(e),
            Self::TokenResponse(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ureq::Error> for Error {
    /// A certificate problem becomes [`Error::Tls`], anything else [`Error::Transport`].
    fn from(e: ureq::Error) -> Self {
        TlsError::classify(e).map_or_else(Self::Transport, Self::Tls)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

impl From<DiscoveryError> for Error {
    fn from(e: DiscoveryError) -> Self {
        Self::Discovery(e)
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::RootCertificates(what) => Self::RootCertificates(what),
            Refusal::Conflict(what) => Self::Config(what),
            Refusal::InsecureUrl { what, origin } => Self::InsecureUrl { what, origin },
            Refusal::NotHttp(_) => Self::InvalidRequest(refusal.to_string()),
        }
    }
}
