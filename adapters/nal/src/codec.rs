//! The sans-IO HTTP/1.1 codec of the request slots and the refresh exchange, opened up for
//! reauth-nal-async, which drives the same bytes over async I/O instead of a poll loop: one
//! request writer, one refresh request writer and one response reader for both adapters.
//! Hidden from the docs and outside any compatibility promise (the two crates are released
//! together); it compiles away when unused.

use reauth_core::Duration;

pub use crate::fuzzing::{ReadError, Reader};
use crate::http::{Layout, Request, Response, put_authorization};
use crate::refresh::RefreshExchange;

/// Why a request could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The request needs this many bytes, more than the buffer has.
    TooLarge(usize),
    /// The method, path, host or a header would break the head, or the request sets a header
    /// the client manages itself (see [`Request::headers`]).
    Invalid,
}

/// Writes `request` for `host` into `buf`, with `Authorization: Bearer <access_token>` and
/// `Connection: close` (one request per connection); returns its length.
///
/// # Errors
/// [`WriteError`] if it is invalid or does not fit.
pub fn write_request(
    buf: &mut [u8],
    request: &Request<'_>,
    host: &str,
    access_token: &str,
) -> Result<usize, WriteError> {
    let layout: Layout = crate::http::write_request(buf, request, host, false, true)
        .map_err(|e| e.map_or(WriteError::Invalid, WriteError::TooLarge))?;
    let auth_len = put_authorization(buf, layout, 0, access_token).map_err(WriteError::TooLarge)?;
    Ok(layout.auth_at + auth_len + layout.tail_len)
}

/// Writes the refresh request of `exchange` for `refresh_token` to `host` into `buf` (wiped
/// first), asking the server to close the connection after it; returns its length.
///
/// # Errors
/// `Err(needed)` if it does not fit; `buf` is wiped then.
pub fn write_refresh_request<X: RefreshExchange>(
    buf: &mut [u8],
    exchange: &X,
    refresh_token: &str,
    host: &str,
) -> Result<usize, usize> {
    crate::refresh::write_refresh_request(buf, exchange, refresh_token, host, true)
}

/// The `Retry-After` header of `response` in seconds, as the refresh exchange reads it.
#[must_use]
pub fn retry_after(response: &Response<'_>) -> Option<Duration> {
    response.retry_after()
}

/// Zeroes a buffer that held a token, in a way the optimizer cannot skip.
pub fn wipe(buf: &mut [u8]) {
    crate::http::wipe(buf);
}
