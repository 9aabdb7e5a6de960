//! The refresh exchange: what goes to the token endpoint and how its answer is read
//! ([`RefreshExchange`], with [`OAuth2`] as the standard one), and the dedicated connection
//! and buffers it runs on.

use core::net::SocketAddr;

use reauth_core::oauth::{
    RefreshParams, classify_failure, parse_token_response, write_refresh_body,
};
use reauth_core::{Duration, Generation, Instant, RefreshFailure, RefreshId, TokenSet};

use crate::config::Timeouts;
use crate::error::{AnswerError, Error};
use crate::exchange::{Exchange, Step, Wire};
use crate::http::{Answer, Cursor, Response, move_within, wipe};
use crate::transport::Transport;

/// How a refresh token is traded for new tokens at the token endpoint: the request body, and the
/// reading of the answer. [`OAuth2`] is the standard grant; implement this trait for an API with
/// its own refresh endpoint.
pub trait RefreshExchange {
    /// The endpoint's path, e.g. `"/oauth/token"`.
    fn path(&self) -> &str;

    /// The `Content-Type` of the request body.
    fn content_type(&self) -> &str;

    /// Writes the request body for `refresh_token` into `out` and returns its length.
    ///
    /// # Errors
    /// `Err(needed)`, the body's full length, if it does not fit `out`.
    fn write_body(&self, refresh_token: &str, out: &mut [u8]) -> Result<usize, usize>;

    /// Reads the endpoint's answer and, on success, installs the new tokens into `tokens` as
    /// `generation` (all or nothing, e.g. with [`TokenSet::install`]).
    ///
    /// # Errors
    /// [`Unusable`] when there are no new tokens, with the failure's classification: a definite
    /// refusal logs the user out, anything else is retried. An implementation SHOULD say
    /// `Transient` only for an answer that says the grant was not processed (`408`, `429`,
    /// `5xx`) and [`RefreshFailure::Lost`] for any other answer without tokens (an unusable
    /// success may have rotated the token), as [`OAuth2`] does: a lost exchange presents one
    /// refresh token a bounded number of times, a transient one without bound.
    fn read_answer<const A: usize, const R: usize>(
        &self,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        tokens: &mut TokenSet<A, R>,
        generation: Generation,
    ) -> Result<Refreshed, Unusable>;
}

/// A successful refresh, from [`RefreshExchange::read_answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refreshed {
    /// The new access token's lifetime, if the server said.
    pub lifetime: Option<Duration>,
    /// The server sent a new refresh token (it rotated): it is persisted before use.
    pub rotated: bool,
}

/// A token endpoint answer without new tokens, from [`RefreshExchange::read_answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unusable {
    /// Retry later, or log the user out.
    pub failure: RefreshFailure,
    /// What was wrong.
    pub error: AnswerError,
}

/// The OAuth 2.0 refresh grant (RFC 6749 §6): a form POST with `grant_type=refresh_token`,
/// answered by a JSON token response or an OAuth2 error.
#[derive(Clone, Copy, Debug, Default)]
pub struct OAuth2<'a> {
    /// The token endpoint's path, e.g. `"/oauth/token"`.
    pub path: &'a str,
    /// `client_id`, `client_secret` and `scope` for the body.
    pub params: RefreshParams<'a>,
}

impl RefreshExchange for OAuth2<'_> {
    fn path(&self) -> &str {
        self.path
    }

    fn content_type(&self) -> &str {
        "application/x-www-form-urlencoded"
    }

    fn write_body(&self, refresh_token: &str, out: &mut [u8]) -> Result<usize, usize> {
        write_refresh_body(out, refresh_token, &self.params).map_err(|e| e.needed)
    }

    fn read_answer<const A: usize, const R: usize>(
        &self,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        tokens: &mut TokenSet<A, R>,
        generation: Generation,
    ) -> Result<Refreshed, Unusable> {
        if !(200..300).contains(&status) {
            let failure = match classify_failure(status, body, retry_after) {
                // The server says it did not do the work: retry after a backoff.
                failure @ RefreshFailure::Transient { .. }
                    if matches!(status, 408 | 429 | 500..=599) =>
                {
                    failure
                }
                RefreshFailure::Refused => RefreshFailure::Refused,
                // A status no token endpoint sends (a proxy's, a redirect): whether the grant
                // went through is unknown.
                _ => RefreshFailure::Lost,
            };
            return Err(Unusable { failure, error: AnswerError::Status(status) });
        }
        // A 2xx that cannot be used may still have rotated the refresh token: the exchange is
        // lost. If the server did rotate, the retry is answered `invalid_grant`, which then logs
        // the user out; if it keeps failing, the token is presented a bounded number of times.
        let lost = RefreshFailure::Lost;
        let response = parse_token_response(body)
            .map_err(|e| Unusable { failure: lost, error: AnswerError::TokenResponse(e) })?;
        response
            .apply(tokens, generation)
            .map_err(|e| Unusable { failure: lost, error: AnswerError::Token(e) })?;
        Ok(Refreshed { lifetime: response.expires_in(), rotated: response.has_refresh_token() })
    }
}

/// An attempt that left the wire: its id, and its answer or why there is none.
pub(crate) type Ended<E> = (RefreshId, Result<Answer, Error<E>>);

/// The refresh exchange's own connection and buffers, so that a refresh never waits for a free
/// request slot.
#[derive(Debug)]
pub(crate) struct Refresher<C, const REQ: usize, const RESP: usize> {
    exchange: Exchange<C>,
    /// The attempt on the wire.
    running: Option<RefreshId>,
    /// An attempt the coordinator asked for while another was still on the wire; it starts when
    /// that one ends.
    pending: Option<RefreshId>,
    request_len: usize,
    request: [u8; REQ],
    response: [u8; RESP],
}

impl<C, const REQ: usize, const RESP: usize> Refresher<C, REQ, RESP> {
    pub(crate) const fn new() -> Self {
        Self {
            exchange: Exchange::new(),
            running: None,
            pending: None,
            request_len: 0,
            request: [0; REQ],
            response: [0; RESP],
        }
    }

    /// The coordinator asked for attempt `id`.
    pub(crate) const fn want(&mut self, id: RefreshId) {
        self.pending = Some(id);
    }

    /// The attempt that waits for the wire, taken out.
    pub(crate) const fn take_pending(&mut self) -> Option<RefreshId> {
        self.pending.take()
    }

    /// True while an attempt is on the wire.
    pub(crate) const fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// True once any byte of the last attempt's request went out (see
    /// [`Exchange::sent_any`]).
    pub(crate) const fn sent_any(&self) -> bool {
        self.exchange.sent_any()
    }

    /// True if an attempt waits to start.
    pub(crate) const fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When this exchange next needs a poll without news from the network.
    pub(crate) const fn poll_at(&self) -> Option<Instant> {
        self.exchange.poll_at()
    }

    /// Writes the request of attempt `id` and starts the exchange.
    ///
    /// # Errors
    /// [`Error::RequestTooLarge`] if the request does not fit the buffer.
    pub(crate) fn start<E, X: RefreshExchange>(
        &mut self,
        id: RefreshId,
        exchange: &X,
        refresh_token: &str,
        host: &str,
        ask_close: bool,
    ) -> Result<(), Error<E>> {
        self.request_len =
            write_refresh_request(&mut self.request, exchange, refresh_token, host, ask_close)
                .map_err(|needed| Error::RequestTooLarge { needed, capacity: REQ })?;
        self.running = Some(id);
        self.exchange.start();
        Ok(())
    }

    /// Moves the attempt on the wire forward. Returns its id and result once it ends.
    pub(crate) fn advance<T: Transport<Connection = C>>(
        &mut self,
        net: &mut T,
        remote: SocketAddr,
        now: Instant,
        timeouts: &Timeouts,
    ) -> Option<Ended<T::Error>> {
        let id = self.running?;
        let request = self.request.get(..self.request_len).unwrap_or_default();
        // Its own connection every time: a refresh is rare, and a `POST` that consumes the
        // refresh token must never be sent twice.
        let wire = Wire {
            remote,
            request,
            response: &mut self.response,
            head_request: false,
            persistent: false,
        };
        let step = self.exchange.advance(net, wire, now, timeouts);
        let result = match step {
            Ok(Step::Pending) => return None,
            Ok(Step::Done(answer)) => Ok(answer),
            Err(e) => Err(e),
        };
        // The request holds the old refresh token: wipe it as soon as it is no longer needed.
        wipe(&mut self.request);
        self.running = None;
        Some((id, result))
    }

    /// The answer, until [`wipe_answer`](Self::wipe_answer).
    pub(crate) fn response(&self, answer: &Answer) -> Response<'_> {
        answer.view(&self.response)
    }

    /// Wipes the answer, which holds the new tokens.
    pub(crate) fn wipe_answer(&mut self) {
        wipe(&mut self.response);
    }
}

/// Writes the whole refresh request for `refresh_token` (head and body) into `buf`, which is
/// wiped first; returns its length. Shared with reauth-nal-async through [`crate::codec`].
///
/// # Errors
/// `Err(needed)` if it does not fit; `buf` is wiped then.
pub(crate) fn write_refresh_request<X: RefreshExchange>(
    buf: &mut [u8],
    exchange: &X,
    refresh_token: &str,
    host: &str,
    ask_close: bool,
) -> Result<usize, usize> {
    wipe(buf);
    let body_len = exchange.write_body(refresh_token, buf).inspect_err(|_| wipe(buf))?;
    let head_len = write_head(&mut Cursor::new(&mut []), exchange, host, body_len, ask_close);
    let needed = head_len.saturating_add(body_len);
    if needed > buf.len() {
        wipe(buf);
        return Err(needed);
    }
    move_within(buf, 0..body_len, head_len);
    write_head(&mut Cursor::new(buf), exchange, host, body_len, ask_close);
    Ok(needed)
}

/// Writes the head of the refresh request; returns its length.
fn write_head<X: RefreshExchange>(
    out: &mut Cursor<'_>,
    exchange: &X,
    host: &str,
    body_len: usize,
    ask_close: bool,
) -> usize {
    out.put(b"POST ");
    out.put(exchange.path().as_bytes());
    out.put(b" HTTP/1.1\r\nHost: ");
    out.put(host.as_bytes());
    if ask_close {
        out.put(b"\r\nConnection: close");
    }
    out.put(b"\r\nAccept: application/json\r\nContent-Type: ");
    out.put(exchange.content_type().as_bytes());
    out.put(b"\r\nContent-Length: ");
    out.put_decimal(body_len);
    out.put(b"\r\n\r\n");
    out.len()
}
