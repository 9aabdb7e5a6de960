//! Why a request or a refresh result was turned away. Small `Copy` values with a hand-written
//! `Display`; none of them can carry a token.

use core::fmt;

use crate::ticket::RequestId;

/// Why a request will not be sent (again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// There are no usable credentials: never logged in, the refresh was refused, or logout.
    /// The application must log in again and install new tokens.
    NeedsLogin,
    /// The queue of parked requests is full; the request was refused at once, nothing was dropped.
    QueueFull,
    /// The request waited longer than [`Config::wait_timeout`](crate::Config::wait_timeout) for a
    /// refresh.
    Timeout,
    /// Every refresh attempt of this expiry episode failed transiently (network, 5xx, timeout).
    /// The refresh token is kept; a later request starts a new episode.
    RefreshUnavailable,
    /// The server still answered "expired" after the request was replayed
    /// [`Config::replay_limit`](crate::Config::replay_limit) times with a fresh token.
    Unauthorized,
    /// A request with this id is already parked: the caller broke the uniqueness rule of
    /// [`RequestId`].
    DuplicateRequest,
}

/// A request turned away, with its id handed back so the caller can find and answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// The request that will not be sent.
    pub id: RequestId,
    /// Why.
    pub reason: Rejection,
}

/// Why a refresh result was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshResultError {
    /// The refresh started before the last login, restore or logout; its result belongs to old
    /// credentials. The caller MUST NOT install or persist the tokens it brought.
    Superseded,
    /// A failure for an attempt that is no longer the one in flight (it timed out and a later
    /// attempt or a success replaced it). Ignored, so it cannot log the user out.
    NotCurrent,
    /// The coordinator never handed out this refresh id.
    Unknown,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NeedsLogin => "no usable credentials: log in again",
            Self::QueueFull => "too many requests are waiting for a token refresh",
            Self::Timeout => "timed out waiting for a token refresh",
            Self::RefreshUnavailable => "the token refresh failed repeatedly; try again later",
            Self::Unauthorized => "still unauthorized after replaying with a fresh token",
            Self::DuplicateRequest => "a request with the same id is already waiting",
        })
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rejected: {}", self.id, self.reason)
    }
}

impl fmt::Display for RefreshResultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Superseded => "refresh result belongs to credentials replaced since",
            Self::NotCurrent => "refresh failure for an attempt that is no longer current",
            Self::Unknown => "unknown refresh id",
        })
    }
}

impl core::error::Error for Rejection {}
impl core::error::Error for Rejected {}
impl core::error::Error for RefreshResultError {}
