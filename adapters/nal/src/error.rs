//! What can go wrong, as small typed values: a request's failure ([`Error`]), a request refused
//! before it took a slot ([`SubmitError`]), a login that could not be stored ([`LoginError`]), and
//! the HTTP-level problems of a response ([`HttpError`]). None of them can carry a token.

use core::fmt;

use embedded_nal::{TcpError, TcpErrorKind};
use reauth_core::oauth::{ErrorCode, TokenResponseError};
use reauth_core::{Rejection, TokenError};

/// Why a request or a refresh exchange failed. `E` is the transport's error type.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error<E> {
    /// The coordinator turned the request away: no credentials ([`Rejection::NeedsLogin`]), the
    /// wait for a refresh took too long ([`Rejection::Timeout`]), every refresh attempt failed
    /// ([`Rejection::RefreshUnavailable`]), or the server kept refusing a fresh token
    /// ([`Rejection::Unauthorized`]).
    Rejected(Rejection),
    /// The network stack reported an error; [`Error::transport_kind`] classifies it.
    Transport {
        /// What the exchange was doing.
        stage: Stage,
        /// The stack's own error.
        error: E,
    },
    /// A deadline from [`Timeouts`](crate::Timeouts) passed.
    Timeout(TimeoutKind),
    /// The server closed the connection before the response was complete.
    ConnectionClosed,
    /// The response is not valid HTTP/1.1 (or uses a framing this client does not speak).
    Http(HttpError),
    /// The response (head and decoded body) does not fit the `capacity`-byte response buffer.
    /// Nothing was truncated: the response is dropped whole.
    ResponseTooLarge {
        /// Size of the response buffer in bytes.
        capacity: usize,
    },
    /// The request as sent (head, `Authorization` line, body) does not fit its buffer.
    RequestTooLarge {
        /// Bytes the request needs.
        needed: usize,
        /// Size of the request buffer in bytes.
        capacity: usize,
    },
    /// Refresh exchange only: the token endpoint's answer was not a usable token response.
    Refresh(AnswerError),
}

/// What the token endpoint's answer got wrong, from a
/// [`RefreshExchange`](crate::RefreshExchange).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// The endpoint answered with this status instead of a success, and it is no refusal: a
    /// `408`, `429` or `5xx` (retried), or a status no token endpoint sends (the exchange is
    /// lost).
    Status(u16),
    /// The endpoint refused: the refresh token (`400` or `401`, e.g. `invalid_grant`: the user
    /// must log in again), or the client, when
    /// [`is_configuration_error`](Self::is_configuration_error) says so (`invalid_client`,
    /// `unauthorized_client`, `unsupported_grant_type`, or a `3xx` or `4xx` no token endpoint
    /// sends to a client set up right, such as a `404` or `405` from a wrong token path: the
    /// refresh token was not used and is kept; fix the configuration).
    Refused {
        /// The status.
        status: u16,
        /// The OAuth error code of the body (RFC 6749 §5.2), e.g. [`ErrorCode::InvalidGrant`];
        /// `None` if the body had none.
        code: Option<ErrorCode>,
    },
    /// A success status, but the body is not an OAuth2 token response.
    TokenResponse(TokenResponseError),
    /// A token in the answer does not fit its buffer or has bytes a token may not have.
    Token(TokenError),
    /// A custom exchange could not read the answer.
    Invalid,
}

/// Which step of an exchange a transport error interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Opening a socket ([`TcpClientStack::socket`](embedded_nal::TcpClientStack::socket)).
    Socket,
    /// Connecting.
    Connect,
    /// Sending the request (or flushing it).
    Send,
    /// Receiving the response.
    Receive,
}

/// Which deadline of [`Timeouts`](crate::Timeouts) passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// The connection was not established in time.
    Connect,
    /// The response head did not arrive in time after the request was sent.
    Response,
    /// Sending or receiving made no progress for too long.
    Idle,
    /// The whole exchange took too long.
    Total,
}

/// Why a response could not be read as HTTP/1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpError {
    /// The status line or a header is malformed.
    InvalidHead,
    /// The head has more headers than the parser has room for (32).
    TooManyHeaders,
    /// `Content-Length` is not a number, or two of them disagree.
    InvalidContentLength,
    /// `Transfer-Encoding` names a coding other than `chunked` last.
    UnsupportedTransferEncoding,
    /// A chunk of a chunked body is malformed.
    InvalidChunk,
    /// The body ends only with the connection (no `Content-Length`, not chunked), and the
    /// stack cannot say reliably when a connection ends: it never does, or it may drop the
    /// last bytes ([`StreamEnd`](crate::stack::StreamEnd)). Refused as soon as the head is in.
    CloseDelimited,
    /// More interim (1xx) responses than the client accepts before the final one (8).
    TooManyInterimResponses,
}

/// Why [`Client::submit`](crate::Client::submit) refused a request. The request took no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmitError {
    /// Every slot holds a request (running, parked, or answered and not yet released).
    Busy,
    /// The request with the longest possible `Authorization` line does not fit a slot's request
    /// buffer.
    RequestTooLarge {
        /// Bytes the request needs.
        needed: usize,
        /// Size of the request buffer in bytes.
        capacity: usize,
    },
    /// The method, path, host or a header has bytes that would break the HTTP head (a line
    /// break, a space in the path), or the request sets a header the client manages itself
    /// (`Authorization`, `Host`, `Content-Length`, `Transfer-Encoding`, `Connection`).
    InvalidRequest,
    /// The coordinator refused the request, e.g. [`Rejection::NeedsLogin`].
    Rejected(Rejection),
}

/// Why [`Client::login`](crate::Client::login) or [`Client::restore`](crate::Client::restore)
/// did not complete. `SE` is the token store's error type.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError<SE> {
    /// A token is unusable; nothing was installed.
    Token(TokenError),
    /// The tokens are installed and in use, but the refresh token could not be persisted.
    Persist(SE),
    /// The body given to
    /// [`Client::login_from_token_response`](crate::Client::login_from_token_response) is not a
    /// usable token response; nothing was installed.
    TokenResponse(TokenResponseError),
}

impl AnswerError {
    /// True when the endpoint refused the client rather than the refresh token: it is set up
    /// wrong (credentials, client authentication method, or token path).
    #[must_use]
    pub const fn is_configuration_error(&self) -> bool {
        match self {
            Self::Refused { status: 400 | 401, code: None } => false,
            Self::Refused { status: 400 | 401, code: Some(code) } => code.is_configuration_error(),
            Self::Refused { .. } => true,
            _ => false,
        }
    }
}

impl<E: TcpError> Error<E> {
    /// The kind of a transport error, `None` for every other variant.
    #[must_use]
    pub fn transport_kind(&self) -> Option<TcpErrorKind> {
        match self {
            Self::Transport { error, .. } => Some(error.kind()),
            _ => None,
        }
    }
}

impl<E> From<Rejection> for Error<E> {
    fn from(reason: Rejection) -> Self {
        Self::Rejected(reason)
    }
}

impl<E> From<HttpError> for Error<E> {
    fn from(e: HttpError) -> Self {
        Self::Http(e)
    }
}

impl<E: TcpError> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(reason) => write!(f, "request rejected: {reason}"),
            Self::Transport { stage, error } => {
                write!(f, "network error while {stage} ({:?})", error.kind())
            }
            Self::Timeout(kind) => write!(f, "timed out: {kind}"),
            Self::ConnectionClosed => f.write_str("connection closed before the response ended"),
            Self::Http(e) => write!(f, "invalid HTTP response: {e}"),
            Self::ResponseTooLarge { capacity } => {
                write!(f, "response does not fit its {capacity}-byte buffer")
            }
            Self::RequestTooLarge { needed, capacity } => {
                write!(f, "request needs {needed} bytes, its buffer has {capacity}")
            }
            Self::Refresh(e) => write!(f, "unusable token endpoint answer: {e}"),
        }
    }
}

impl<E: TcpError> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Rejected(e) => Some(e),
            Self::Http(e) => Some(e),
            Self::Refresh(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "status {status}"),
            Self::Refused { status, code } => {
                let what = if self.is_configuration_error() {
                    "the client is set up wrong (check its id, secret, authentication method and \
                     token path)"
                } else {
                    "the refresh token was refused"
                };
                write!(f, "{what}: status {status}")?;
                match code {
                    Some(code) => write!(f, ", {}", code.as_str()),
                    None => Ok(()),
                }
            }
            Self::TokenResponse(e) => write!(f, "{e}"),
            Self::Token(e) => write!(f, "{e}"),
            Self::Invalid => f.write_str("the answer could not be read"),
        }
    }
}

impl core::error::Error for AnswerError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::TokenResponse(e) => Some(e),
            Self::Token(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Socket => "opening a socket",
            Self::Connect => "connecting",
            Self::Send => "sending",
            Self::Receive => "receiving",
        })
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connecting",
            Self::Response => "waiting for the response",
            Self::Idle => "no progress on the connection",
            Self::Total => "the exchange as a whole",
        })
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidHead => "malformed status line or header",
            Self::TooManyHeaders => "too many headers",
            Self::InvalidContentLength => "invalid Content-Length",
            Self::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            Self::InvalidChunk => "malformed chunked body",
            Self::CloseDelimited => "body delimited by the close, which this stack cannot report",
            Self::TooManyInterimResponses => "too many interim (1xx) responses",
        })
    }
}

impl core::error::Error for HttpError {}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy => f.write_str("every request slot is in use"),
            Self::RequestTooLarge { needed, capacity } => {
                write!(f, "request needs {needed} bytes, a slot holds {capacity}")
            }
            Self::InvalidRequest => f.write_str("request has bytes or headers it may not have"),
            Self::Rejected(reason) => write!(f, "request rejected: {reason}"),
        }
    }
}

impl core::error::Error for SubmitError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

impl<SE: fmt::Debug> fmt::Display for LoginError<SE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(e) => write!(f, "tokens not installed: {e}"),
            // The store's error is shown with Debug: it is the firmware's own type, and it never
            // holds the token (the store gets the token by reference and returns only its error).
            Self::Persist(e) => write!(f, "tokens installed but not persisted: {e:?}"),
            Self::TokenResponse(e) => write!(f, "tokens not installed: {e}"),
        }
    }
}

impl<SE: fmt::Debug> core::error::Error for LoginError<SE> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Token(e) => Some(e),
            Self::TokenResponse(e) => Some(e),
            Self::Persist(_) => None,
        }
    }
}
