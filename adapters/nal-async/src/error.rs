//! What can go wrong, as small typed values. None of them can carry a token.

use core::fmt;

use reauth_core::{Rejection, TokenError};
pub use reauth_nal::{AnswerError, HttpError, Stage, TimeoutKind};

/// Why a request failed. `E` is the transport's error type.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error<E> {
    /// The coordinator turned the request away: no credentials ([`Rejection::NeedsLogin`]), the
    /// wait for a refresh took too long ([`Rejection::Timeout`]), every refresh attempt failed
    /// ([`Rejection::RefreshUnavailable`]), or the server kept refusing a fresh token
    /// ([`Rejection::Unauthorized`]).
    Rejected(Rejection),
    /// The transport (name lookup, TCP, TLS) reported an error.
    Transport {
        /// What the exchange was doing.
        stage: Stage,
        /// The transport's own error.
        error: E,
    },
    /// A deadline from [`Timeouts`](crate::Timeouts) passed.
    Timeout(TimeoutKind),
    /// The server closed the connection before the response was complete.
    ConnectionClosed,
    /// The response is not valid HTTP/1.1 (or uses a framing this client does not speak).
    Http(HttpError),
    /// The response does not fit the `capacity` bytes of the caller's buffer left for it.
    /// Nothing was truncated: the response is dropped whole.
    ResponseTooLarge {
        /// Bytes of the buffer the response could use.
        capacity: usize,
    },
    /// The request as sent (head, `Authorization` line, body) does not fit the buffer.
    RequestTooLarge {
        /// Bytes the request needs.
        needed: usize,
        /// Bytes of the buffer the request could use.
        capacity: usize,
    },
    /// The method, path, host or a header has bytes that would break the HTTP head, or the
    /// request sets a header the client manages itself (`Authorization`, `Host`,
    /// `Content-Length`, `Transfer-Encoding`, `Connection`).
    InvalidRequest,
    /// As many requests are open as the client has room for (`N`).
    Busy,
    /// The client is configured for HTTPS ([`ClientConfig::https`](crate::ClientConfig::https))
    /// and the transport does not encrypt: nothing was sent.
    InsecureTransport,
}

/// Why [`Client::login`](crate::Client::login) did not complete. `SE` is the token store's
/// error type.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError<SE> {
    /// A token is unusable; nothing was installed.
    Token(TokenError),
    /// The tokens are installed and in use, but the refresh token could not be persisted.
    Persist(SE),
}

impl<E> From<Rejection> for Error<E> {
    fn from(reason: Rejection) -> Self {
        Self::Rejected(reason)
    }
}

impl<E: embedded_io::Error> Error<E> {
    /// The kind of a transport error, `None` for every other variant.
    #[must_use]
    pub fn transport_kind(&self) -> Option<embedded_io::ErrorKind> {
        match self {
            Self::Transport { error, .. } => Some(error.kind()),
            _ => None,
        }
    }
}

impl<E: embedded_io::Error> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(reason) => write!(f, "request rejected: {reason}"),
            // The kind only: what the transport's value holds is not ours to vouch for.
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
            Self::InvalidRequest => f.write_str("request cannot be written as HTTP/1.1"),
            Self::Busy => f.write_str("every request place of the client is taken"),
            Self::InsecureTransport => {
                f.write_str("the client requires HTTPS and the transport does not encrypt")
            }
        }
    }
}

impl<E: embedded_io::Error> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Rejected(e) => Some(e),
            Self::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl<SE: fmt::Debug> fmt::Display for LoginError<SE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(e) => write!(f, "unusable token: {e}"),
            // The store's error is the application's own type; it never sees a token's bytes
            // through us, so its Debug is shown.
            Self::Persist(e) => write!(f, "the refresh token could not be persisted: {e:?}"),
        }
    }
}

impl<SE: fmt::Debug> core::error::Error for LoginError<SE> {}
