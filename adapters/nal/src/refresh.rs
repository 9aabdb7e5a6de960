//! The refresh exchange: what goes to the token endpoint and how its answer is read
//! ([`RefreshExchange`], with [`OAuth2`] as the standard one), and the dedicated connection
//! and buffers it runs on.

use core::net::SocketAddr;

use reauth_core::oauth::{
    ClientAuth, ErrorCode, RefreshParams, parse_error_response, parse_token_response,
    write_refresh_body,
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

    /// Writes the value of the request's `Authorization` header into `out` and returns its
    /// length; `Ok(0)` (the default) sends no such header. The request buffer that holds it is
    /// wiped after the exchange.
    ///
    /// # Errors
    /// `Err(needed)`, the value's full length, if it does not fit `out`.
    fn write_authorization(&self, out: &mut [u8]) -> Result<usize, usize> {
        let _ = out;
        Ok(0)
    }

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
///
/// Client authentication (RFC 6749 §2.3) follows `auth` when [`params`](Self::params) has a
/// `client_secret`: [`ClientAuth::Basic`] (the default, `client_secret_basic`: the
/// form-encoded id and secret in `Authorization: Basic`, nothing of them in the body),
/// [`ClientAuth::Post`] (`client_id` and `client_secret` in the body) or [`ClientAuth::None`]
/// (the secret is not sent). Without a secret the client is public: `client_id`, if given,
/// goes in the body. `scope`, if given, goes in the body either way.
///
/// `client_secret_basic` needs the `client-secret-basic` feature (on by default, 1,080 B of
/// flash on thumbv7em). Without it there is no `auth` field and a secret goes in the
/// body (`client_secret_post`), for the smallest firmware of a public client or a server that
/// takes the secret there.
///
/// ```
/// use reauth_nal::OAuth2;
/// use reauth_nal::reauth_core::oauth::{ClientAuth, RefreshParams};
///
/// // client_secret_basic, the method every server must support.
/// let confidential = OAuth2 {
///     path: "/oauth/token",
///     params: RefreshParams {
///         client_id: Some("device-42"),
///         client_secret: Some("s3cret"),
///         scope: Some("telemetry"),
///     },
///     ..OAuth2::default()
/// };
/// // A server that only takes the secret in the body.
/// let post = OAuth2 { auth: ClientAuth::Post, ..confidential };
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OAuth2<'a> {
    /// The token endpoint's path, e.g. `"/oauth/token"`.
    pub path: &'a str,
    /// `client_id`, `client_secret` and `scope`.
    pub params: RefreshParams<'a>,
    /// How the client authenticates when it has a secret (default [`ClientAuth::Basic`]).
    #[cfg(feature = "client-secret-basic")]
    pub auth: ClientAuth,
}

impl OAuth2<'_> {
    /// How the client authenticates when it has a secret.
    const fn auth(&self) -> ClientAuth {
        #[cfg(feature = "client-secret-basic")]
        return self.auth;
        #[cfg(not(feature = "client-secret-basic"))]
        ClientAuth::Post
    }

    /// The id and secret for `Authorization: Basic`, when that is how the client authenticates.
    fn basic(&self) -> Option<(&str, &str)> {
        match (self.auth(), self.params.client_secret) {
            (ClientAuth::Basic, Some(secret)) => {
                Some((self.params.client_id.unwrap_or_default(), secret))
            }
            _ => None,
        }
    }
}

impl RefreshExchange for OAuth2<'_> {
    fn path(&self) -> &str {
        self.path
    }

    fn content_type(&self) -> &str {
        "application/x-www-form-urlencoded"
    }

    fn write_body(&self, refresh_token: &str, out: &mut [u8]) -> Result<usize, usize> {
        // One authentication method per request: with Basic, neither id nor secret in the body.
        let basic = self.basic().is_some();
        let params = RefreshParams {
            client_id: if basic { None } else { self.params.client_id },
            client_secret: match self.auth() {
                ClientAuth::Post => self.params.client_secret,
                _ => None,
            },
            scope: self.params.scope,
        };
        write_refresh_body(out, refresh_token, &params).map_err(|e| e.needed)
    }

    #[cfg(feature = "client-secret-basic")]
    fn write_authorization(&self, out: &mut [u8]) -> Result<usize, usize> {
        match self.basic() {
            Some((id, secret)) => {
                reauth_core::oauth::write_basic_authorization(out, id, secret).map_err(|e| e.needed)
            }
            None => Ok(0),
        }
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
            return Err(classify(status, body, retry_after));
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

/// Classifies a token endpoint answer that is not a success.
///
/// - 408, 429, 5xx: the server says it did not do the work: retried after a backoff.
/// - 400, 401 with `invalid_client`, `unauthorized_client` or `unsupported_grant_type`, and
///   any other 3xx or 4xx (a 404 or 405 from a wrong token path, a redirect): the client is set
///   up wrong. The grant was not processed, so the refresh token is kept (in the store too), but
///   retrying cannot help: no refresh starts until the firmware logs in or restores again.
/// - 400, 401 with a code outside RFC 6749 §5.2 (`temporarily_unavailable`): whether the grant
///   went through is unknown, the exchange is lost (retried a bounded number of times).
/// - 400, 401 with any other code or none: the refresh token is refused.
/// - Anything else (a 1xx, a status outside 100-599): lost, as above.
fn classify(status: u16, body: &[u8], retry_after: Option<Duration>) -> Unusable {
    let code = parse_error_response(body);
    let failure = match (status, code) {
        (408 | 429 | 500..=599, _) => RefreshFailure::Transient { retry_after },
        (400 | 401, Some(ErrorCode::Other)) => RefreshFailure::Lost,
        // A refusal of the token, or of the client (see `AnswerError::is_configuration_error`).
        (300..=499, _) => {
            return Unusable {
                failure: RefreshFailure::Refused,
                error: AnswerError::Refused { status, code },
            };
        }
        _ => RefreshFailure::Lost,
    };
    Unusable { failure, error: AnswerError::Status(status) }
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
    if exchange.write_authorization(&mut []) != Ok(0) {
        out.put(b"\r\nAuthorization: ");
        out.put_from(|spare| exchange.write_authorization(spare));
    }
    out.put(b"\r\nAccept: application/json\r\nContent-Type: ");
    out.put(exchange.content_type().as_bytes());
    out.put(b"\r\nContent-Length: ");
    out.put_decimal(body_len);
    out.put(b"\r\n\r\n");
    out.len()
}
