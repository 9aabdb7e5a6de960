//! The refresh exchange: the one call that turns a refresh token into new tokens. The OAuth 2.0
//! refresh grant is built in ([`OAuthExchange`]); APIs with their own refresh endpoint plug in a
//! [`RefreshExchange`] of their own (a closure will do).

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use reauth_core::oauth::{
    self, ErrorCode, TokenResponse, TokenResponseError, classify_failure, parse_error_response,
    parse_token_response,
};
use reauth_core::{Generation, RefreshFailure, TokenError, TokenSet};

use crate::credentials::{Credentials, EncodeError};
use crate::form_post::{Answer, FormPoster, PostError, RESPONSE_LIMIT};
use crate::store::StoreError;
use crate::tls::TlsError;

/// How many requests may wait for a refresh at once; one more is refused with
/// [`Error::QueueFull`](crate::Error::QueueFull).
pub const QUEUE_CAPACITY: usize = 256;
/// Capacity of the access-token buffer in bytes (a JWT with many claims fits).
pub const ACCESS_CAPACITY: usize = 8 * 1024;
/// Capacity of the refresh-token buffer in bytes.
pub const REFRESH_CAPACITY: usize = 2 * 1024;
/// Longest `error_description` kept from a refusal, in bytes (characters: one each).
const DESCRIPTION_LIMIT: usize = 200;

/// Turns a refresh token into new tokens.
///
/// The client calls it from whichever thread drained the refresh, outside its lock, at most once
/// at a time. It MUST send `refresh_token` to the token endpoint and nowhere else, and SHOULD
/// give up within the refresh timeout (the client's coordinator counts a late call as a
/// transient failure, but a success that arrives late is still installed).
///
/// Implemented for closures `Fn(&str) -> Result<NewTokens, RefreshError>`.
pub trait RefreshExchange: Send + Sync {
    /// Presents `refresh_token` and returns what the endpoint answered.
    ///
    /// # Errors
    /// [`RefreshError`]: a refusal ([`RefreshError::Refused`]) logs the user out; anything else
    /// is retried with backoff.
    fn refresh(&self, refresh_token: &str) -> Result<NewTokens, RefreshError>;
}

impl<F> RefreshExchange for F
where
    F: Fn(&str) -> Result<NewTokens, RefreshError> + Send + Sync,
{
    fn refresh(&self, refresh_token: &str) -> Result<NewTokens, RefreshError> {
        self(refresh_token)
    }
}

/// Tokens a refresh brought, checked against the client's buffers. Wiped on drop; `Debug` shows
/// no token.
pub struct NewTokens {
    /// Boxed: 10 KiB of token buffers should not travel on the stack.
    set: Box<TokenSet<ACCESS_CAPACITY, REFRESH_CAPACITY>>,
    /// The access token's lifetime, if the endpoint said.
    expires_in: Option<Duration>,
}

/// Why a refresh call failed. Never holds a token. Cheap to clone, so every waiting request can
/// be told why.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RefreshError {
    /// The endpoint refused the refresh token or the client (`invalid_grant`, `invalid_client`,
    /// a 400 or 401): the user must log in again.
    Refused {
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// The OAuth 2.0 error code, when the body had one.
        code: Option<ErrorCode>,
        /// The server's `error_description`, when it sent one: at most 200 characters, every
        /// character outside the set RFC 6749 allows there (printable ASCII but `"` and `\`)
        /// replaced by `?`, so that it cannot forge lines in a log or a terminal. A description
        /// that quotes the refresh token the request presented is replaced by
        /// [`DESCRIPTION_WITHHELD`](reauth_core::oauth::DESCRIPTION_WITHHELD).
        description: Option<String>,
    },
    /// The endpoint answered a status worth retrying (408, 429, 5xx, an unexpected 3xx).
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, in seconds, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The call failed on the wire (connection refused, reset, timeout).
    Transport(Arc<ureq::Error>),
    /// The token endpoint's TLS certificate was not accepted. Nothing was sent; the client's
    /// settings (its root certificates) or the server's certificate must change, so this ends
    /// the episode at once like a refusal, but keeps the stored refresh token.
    Tls(TlsError),
    /// The endpoint answered 2xx with a body that is not a usable token response (malformed
    /// JSON, no `access_token`, a token type other than Bearer, an oversized token).
    InvalidResponse(TokenResponseError),
    /// The answer's body was larger than the client accepts from a token endpoint.
    ResponseTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// There is no refresh token to present.
    NoRefreshToken,
    /// The shared store could not be read or its lease taken: the client does not refresh
    /// without the lease (it fails closed), and tries again after a backoff.
    Store(Arc<StoreError>),
    /// Another process held the store's lease for the whole refresh timeout without writing a
    /// new record.
    LeaseBusy,
    /// A custom exchange's own transient failure, described without any token.
    Other(String),
}

impl NewTokens {
    /// Checks and wraps what a custom exchange received. `refresh_token` is `None` when the
    /// server did not rotate it (the old one stays valid); `expires_in` is `None` when the
    /// lifetime is unknown (the token is then used until the server refuses it).
    ///
    /// # Errors
    /// [`TokenError`] if a token is empty, longer than its buffer (8 KiB access, 2 KiB refresh)
    /// or not visible ASCII.
    pub fn new(
        access_token: &str,
        refresh_token: Option<&str>,
        expires_in: Option<Duration>,
    ) -> Result<Self, TokenError> {
        let mut set = Box::new(TokenSet::new());
        set.install(Generation::NONE, access_token, refresh_token)?;
        Ok(Self { set, expires_in })
    }

    /// The access token's lifetime, if known.
    #[must_use]
    pub const fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// True if the server sent a new refresh token.
    #[must_use]
    pub fn rotates_refresh_token(&self) -> bool {
        self.set.refresh().is_some()
    }

    /// Checks and wraps the tokens of a token response body (RFC 6749 §5.1), e.g. the answer
    /// of a login flow the application ran itself. `refresh_token` may be absent (then
    /// [`rotates_refresh_token`](Self::rotates_refresh_token) is false).
    ///
    /// # Errors
    /// [`TokenResponseError`] for a body that is not a usable token response, or a token that
    /// does not fit its buffer.
    pub fn from_token_response(body: &[u8]) -> Result<Self, TokenResponseError> {
        let parsed = parse_token_response(body)?;
        Self::from_response(&parsed).map_err(TokenResponseError::Token)
    }

    /// Decodes a parsed token response straight into a new, boxed token set.
    pub(crate) fn from_response(response: &TokenResponse<'_>) -> Result<Self, TokenError> {
        let mut set = Box::new(TokenSet::new());
        response.apply(&mut set, Generation::NONE)?;
        let expires_in = response.expires_in().map(|d| Duration::from_millis(d.millis()));
        Ok(Self { set, expires_in })
    }

    pub(crate) fn access(&self) -> &str {
        self.set.access().unwrap_or_default()
    }

    pub(crate) fn refresh(&self) -> Option<&str> {
        self.set.refresh()
    }
}

impl RefreshError {
    /// How the coordinator should take this failure: only a refusal logs the user out. A
    /// failure after the request may have reached the endpoint (a reset or timeout while
    /// waiting for the answer, an unusable success answer) is [`RefreshFailure::Lost`]: the
    /// server may have rotated the refresh token, so it is presented a bounded number of times.
    #[must_use]
    pub fn failure(&self) -> RefreshFailure {
        match self {
            // No retry cures a certificate the client does not trust: fail at once rather than
            // back off and try again with the same settings.
            Self::Refused { .. } | Self::NoRefreshToken | Self::Tls(_) => RefreshFailure::Refused,
            Self::Unavailable { retry_after, .. } => RefreshFailure::Transient {
                retry_after: retry_after.map(|d| {
                    reauth_core::Duration::from_millis(
                        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    )
                }),
            },
            Self::Transport(e) if never_sent(e) => RefreshFailure::Transient { retry_after: None },
            Self::Transport(_) | Self::InvalidResponse(_) | Self::ResponseTooLarge { .. } => {
                RefreshFailure::Lost
            }
            Self::Other(_) | Self::Store(_) | Self::LeaseBusy => {
                RefreshFailure::Transient { retry_after: None }
            }
        }
    }

    /// The error for a failed call on the wire: a certificate problem is [`Self::Tls`], the
    /// rest [`Self::Transport`].
    #[must_use]
    pub fn from_transport(e: ureq::Error) -> Self {
        TlsError::classify(e).map_or_else(|e| Self::Transport(Arc::new(e)), Self::Tls)
    }

    /// True for a failure that says the client is set up wrong (its credentials, how it
    /// authenticates, its TLS roots) rather than that the refresh token is dead or the server
    /// is away.
    #[must_use]
    pub fn is_configuration_error(&self) -> bool {
        match self {
            Self::Refused { code, .. } => code.is_some_and(ErrorCode::is_configuration_error),
            Self::Tls(_) => true,
            _ => false,
        }
    }

    /// A refusal without details, for custom exchanges: the user must log in again.
    #[must_use]
    pub const fn refused(status: Option<u16>) -> Self {
        Self::Refused { status, code: None, description: None }
    }
}

/// The OAuth 2.0 refresh grant (RFC 6749 §6) against one token endpoint.
pub(crate) struct OAuthExchange {
    /// Configured for the token endpoint: no redirects, no proxy from the environment unless
    /// asked, statuses as responses, a global timeout of the refresh timeout.
    pub(crate) poster: FormPoster,
    pub(crate) token_url: String,
    /// Who the client is and how it authenticates.
    pub(crate) credentials: Credentials,
}

impl RefreshExchange for OAuthExchange {
    fn refresh(&self, refresh_token: &str) -> Result<NewTokens, RefreshError> {
        let auth = self.credentials.authenticate(&self.token_url).map_err(encode_error)?;
        let form = auth
            .form(|out, params| oauth::write_refresh_body(out, refresh_token, params))
            .map_err(encode_error)?;
        let Answer { status, retry_after, body } =
            self.poster.post(&self.token_url, &auth, &form).map_err(|e| match e {
                PostError::Tls(e) => RefreshError::Tls(e),
                PostError::Transport(e) => RefreshError::Transport(e),
                PostError::TooLarge => RefreshError::ResponseTooLarge { limit: RESPONSE_LIMIT },
                PostError::NotCaptured => {
                    RefreshError::Other("the token response was not captured whole".into())
                }
            })?;
        if (200..300).contains(&status) {
            return NewTokens::from_token_response(&body).map_err(RefreshError::InvalidResponse);
        }
        Err(match classify_failure(status, &body, retry_after) {
            RefreshFailure::Refused => RefreshError::Refused {
                status: Some(status),
                code: parse_error_response(&body),
                description: error_description(&body, refresh_token),
            },
            RefreshFailure::Transient { retry_after } => RefreshError::Unavailable {
                status,
                retry_after: retry_after.map(|d| Duration::from_millis(d.millis())),
            },
            // `classify_failure` never says `Lost` about a status: only a missing answer is lost.
            RefreshFailure::Lost => RefreshError::Unavailable { status, retry_after: None },
        })
    }
}

/// A refresh whose credentials could not be encoded fails like any other transient failure.
fn encode_error(e: EncodeError) -> RefreshError {
    RefreshError::Other(e.0)
}

/// The server's `error_description`, bounded and sanitised (see [`RefreshError::Refused`]),
/// withheld if it quotes `refresh_token`, the token the refused request presented.
fn error_description(body: &[u8], refresh_token: &str) -> Option<String> {
    let mut text = [0u8; DESCRIPTION_LIMIT];
    let len = oauth::write_error_description(body, refresh_token, &mut text);
    // Printable ASCII only: the conversion cannot fail.
    core::str::from_utf8(&text[..len]).ok().filter(|t| !t.is_empty()).map(str::to_owned)
}

/// True for a transport error that happened before any byte of the request left: the refresh
/// token cannot have reached the server.
fn never_sent(e: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    use ureq::Timeout;
    match e {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::TlsRequired
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::AddrNotAvailable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::HostUnreachable
        ),
        _ => false,
    }
}

impl fmt::Debug for NewTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewTokens")
            .field("tokens", &self.set)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { status, code, description } => {
                f.write_str("the token endpoint refused the refresh")?;
                if let Some(status) = status {
                    write!(f, " (HTTP {status}")?;
                    if let Some(code) = code {
                        write!(f, ", {}", code.as_str())?;
                    }
                    if let Some(description) = description {
                        write!(f, ": {description}")?;
                    }
                    f.write_str(")")?;
                }
                if code.is_some_and(ErrorCode::is_configuration_error) {
                    f.write_str(
                        "; the client is set up wrong: check its id, its secret and how it \
                         authenticates (client_auth)",
                    )?;
                }
                Ok(())
            }
            Self::Unavailable { status, retry_after: Some(after) } => write!(
                f,
                "the token endpoint is unavailable (HTTP {status}, retry after {} s)",
                after.as_secs()
            ),
            Self::Unavailable { status, retry_after: None } => {
                write!(f, "the token endpoint is unavailable (HTTP {status})")
            }
            Self::Transport(e) => write!(f, "the refresh call failed: {e}"),
            Self::Tls(e) => write!(f, "the token endpoint cannot be reached securely: {e}"),
            Self::InvalidResponse(e) => write!(f, "unusable token response: {e}"),
            Self::ResponseTooLarge { limit } => {
                write!(f, "the token response is larger than {limit} bytes")
            }
            Self::NoRefreshToken => f.write_str("there is no refresh token to present"),
            Self::Store(e) => write!(f, "the refresh was not attempted: {e}"),
            Self::LeaseBusy => {
                f.write_str("another process held the refresh lease and wrote no new tokens")
            }
            Self::Other(what) => write!(f, "the refresh failed: {what}"),
        }
    }
}

impl core::error::Error for RefreshError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Transport(e) => Some(&**e),
            Self::Tls(e) => Some(e),
            Self::InvalidResponse(e) => Some(e),
            Self::Store(e) => Some(&**e),
            _ => None,
        }
    }
}
