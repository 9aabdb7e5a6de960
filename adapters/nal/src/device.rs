//! The first login of a device: the OAuth 2.0 device authorization grant (RFC 8628), stepped
//! without blocking by the firmware's loop, on a connection and buffers of its own.
//!
//! [`DeviceLogin`] asks the device authorization endpoint for a user code, says when to show it
//! ([`DeviceEvent::Show`]), then polls the token endpoint on the schedule of
//! [`reauth_core::device::DevicePoller`] until the user approves ([`DeviceEvent::Approved`]: hand
//! [`DeviceLogin::token_response`] to
//! [`Client::login_from_token_response`](crate::Client::login_from_token_response)), refuses, or
//! the code expires ([`DeviceEvent::Failed`]).
//!
//! The device code is a secret: it is kept in a wiped [`Token`], and the buffers that held it
//! (the poll request, the answers) are wiped when done with.

use reauth_core::device::{
    self, AuthorizationResponseError, DecodeError, DevicePoller, PollOutcome,
};
use reauth_core::oauth::{ErrorCode, RefreshParams, TokenResponseError};
use reauth_core::{Duration, Instant, Token, TokenError};

use crate::config::{Endpoint, Timeouts};
use crate::error::Error;
use crate::exchange::{Exchange, Step, Wire};
use crate::http::{Answer, Cursor, move_within, wipe};
use crate::transport::Transport;

/// Largest device code kept, in bytes (real ones are under 100).
pub const DEVICE_CODE_CAPACITY: usize = 256;

/// Largest user code shown, in bytes.
const USER_CODE_CAPACITY: usize = 32;

/// Largest verification URI shown, in bytes.
const URI_CAPACITY: usize = 160;

/// A device login in progress over transport `T`, with a `REQ`-byte request and a `RESP`-byte
/// response buffer (the token response must fit `RESP`, as for the client's refresh).
///
/// Drive it like the [`Client`](crate::Client): [`start`](Self::start), then call
/// [`poll`](Self::poll) from the main loop until it returns an event, sleeping until
/// [`poll_at`](Self::poll_at) or news from the stack in between. The stack MUST have a socket
/// free for it.
pub struct DeviceLogin<'a, T: Transport, const REQ: usize, const RESP: usize> {
    /// The authorization server (both endpoints live on it).
    server: Endpoint<'a>,
    /// Path of the device authorization endpoint, e.g. `/oauth/device_authorization`.
    device_path: &'a str,
    /// Path of the token endpoint, e.g. `/oauth/token`.
    token_path: &'a str,
    /// `client_id`, `client_secret` (form-encoded in the body) and `scope`.
    params: RefreshParams<'a>,
    exchange: Exchange<T::Connection>,
    phase: Phase,
    poller: DevicePoller,
    device_code: Token<DEVICE_CODE_CAPACITY>,
    /// The user code, `user_code[..user_code_len]`, visible ASCII.
    user_code: [u8; USER_CODE_CAPACITY],
    user_code_len: usize,
    /// The verification URI, `uri[..uri_len]`, visible ASCII.
    uri: [u8; URI_CAPACITY],
    uri_len: usize,
    /// The answer of the last exchange, in [`Phase::Approved`] the token response.
    answer: Option<Answer>,
    request_len: usize,
    request: [u8; REQ],
    response: [u8; RESP],
}

/// Where a [`DeviceLogin`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not started, or over.
    Idle,
    /// The device authorization request is on the wire.
    Authorizing,
    /// Waiting for the next poll.
    Waiting,
    /// A poll is on the wire.
    Polling,
    /// Approved; the token response is in the response buffer.
    Approved,
}

/// What a [`DeviceLogin`] has to say, from [`DeviceLogin::poll`].
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceEvent<E> {
    /// Show [`DeviceLogin::user_code`] and [`DeviceLogin::verification_uri`] to the user (until
    /// [`DeviceLogin::expires_at`]); polling starts.
    Show,
    /// The user approved: [`DeviceLogin::token_response`] holds the tokens until
    /// [`DeviceLogin::finish`].
    Approved,
    /// The login is over without tokens.
    Failed(DeviceFailure<E>),
}

/// Why a device login ended without tokens. Never holds a token or the device code.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceFailure<E> {
    /// The user refused (`access_denied`).
    Denied,
    /// The code expired (`expired_token`, or its `expires_in` passed).
    Expired,
    /// An endpoint refused the client or the request (HTTP status, OAuth code if any).
    Refused(u16, Option<ErrorCode>),
    /// The device authorization endpoint answered a status worth retrying later (429, 5xx).
    Unavailable(u16),
    /// The device authorization request failed (transport, timeout, oversized answer). Failed
    /// polls are retried until the code expires.
    Http(Error<E>),
    /// The device authorization response is not what RFC 8628 §3.2 describes.
    Authorization(AuthorizationResponseError),
    /// The user code or the verification URI does not fit (32 and 160 bytes) or is not
    /// visible ASCII.
    Field(DecodeError),
    /// The device code does not fit [`DEVICE_CODE_CAPACITY`] or is not visible ASCII.
    DeviceCode(TokenError),
    /// The token endpoint approved with an unusable token response.
    TokenResponse(TokenResponseError),
    /// A request does not fit the `REQ` buffer.
    RequestTooLarge {
        /// Bytes the request needs.
        needed: usize,
    },
}

impl<'a, T: Transport, const REQ: usize, const RESP: usize> DeviceLogin<'a, T, REQ, RESP> {
    /// A device login against `server`, idle until [`start`](Self::start).
    #[must_use]
    pub const fn new(
        server: Endpoint<'a>,
        device_path: &'a str,
        token_path: &'a str,
        params: RefreshParams<'a>,
    ) -> Self {
        Self {
            server,
            device_path,
            token_path,
            params,
            exchange: Exchange::new(),
            phase: Phase::Idle,
            poller: DevicePoller::with_timing(Instant::ZERO, Duration::ZERO, Duration::ZERO),
            device_code: Token::new(),
            user_code: [0; USER_CODE_CAPACITY],
            user_code_len: 0,
            uri: [0; URI_CAPACITY],
            uri_len: 0,
            answer: None,
            request_len: 0,
            request: [0; REQ],
            response: [0; RESP],
        }
    }

    /// Sends the device authorization request at the next [`poll`](Self::poll). A login in
    /// progress is abandoned (call [`finish`](Self::finish) first to close its connection).
    ///
    /// # Errors
    /// [`DeviceFailure::RequestTooLarge`] if the request does not fit `REQ`.
    pub fn start(&mut self) -> Result<(), DeviceFailure<T::Error>> {
        self.wipe();
        let (path, params) = (self.device_path, self.params);
        self.write_request(path, |out| device::write_authorization_body(out, &params))?;
        self.phase = Phase::Authorizing;
        self.exchange.start();
        Ok(())
    }

    /// Moves the login forward as far as the network allows; an event when there is news.
    pub fn poll(
        &mut self,
        net: &mut T,
        now: Instant,
        timeouts: &Timeouts,
    ) -> Option<DeviceEvent<T::Error>> {
        match self.phase {
            Phase::Idle | Phase::Approved => None,
            Phase::Waiting => {
                if self.poller.poll_at().is_some_and(|at| now >= at) {
                    let (path, code, params) = (self.token_path, &self.device_code, self.params);
                    let code = code.expose();
                    let written =
                        Self::write_into(&mut self.request, self.server.host, path, |out| {
                            device::write_poll_body(out, code, &params)
                        });
                    match written {
                        Ok(len) => self.request_len = len,
                        Err(needed) => {
                            return Some(self.fail(DeviceFailure::RequestTooLarge { needed }));
                        }
                    }
                    self.phase = Phase::Polling;
                    self.exchange.start();
                    return self.poll(net, now, timeouts);
                }
                None
            }
            Phase::Authorizing | Phase::Polling => {
                let request = self.request.get(..self.request_len).unwrap_or_default();
                let wire = Wire {
                    remote: self.server.addr,
                    request,
                    response: &mut self.response,
                    head_request: false,
                    persistent: false,
                };
                let step = self.exchange.advance(net, wire, now, timeouts);
                let answer = match step {
                    Ok(Step::Pending) => return None,
                    Ok(Step::Done(answer)) => Ok(answer),
                    Err(e) => Err(e),
                };
                if self.phase == Phase::Authorizing {
                    Some(self.authorized(now, answer))
                } else {
                    self.polled(now, answer)
                }
            }
        }
    }

    /// When [`poll`](Self::poll) must be called even if the network stays quiet; `None` when
    /// idle or approved.
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle | Phase::Approved => None,
            Phase::Waiting => self.poller.poll_at(),
            Phase::Authorizing | Phase::Polling => self.exchange.poll_at(),
        }
    }

    /// The user code to show, after [`DeviceEvent::Show`] (empty before).
    #[must_use]
    pub fn user_code(&self) -> &str {
        text(&self.user_code, self.user_code_len)
    }

    /// Where the user enters the code, after [`DeviceEvent::Show`] (empty before).
    #[must_use]
    pub fn verification_uri(&self) -> &str {
        text(&self.uri, self.uri_len)
    }

    /// When the code expires, on the caller's clock, after [`DeviceEvent::Show`].
    #[must_use]
    pub const fn expires_at(&self) -> Instant {
        self.poller.expires_at()
    }

    /// The token response body after [`DeviceEvent::Approved`], until
    /// [`finish`](Self::finish).
    #[must_use]
    pub fn token_response(&self) -> Option<&[u8]> {
        let answer = self.answer.filter(|_| self.phase == Phase::Approved)?;
        Some(answer.view(&self.response).body())
    }

    /// Ends the login: closes its connection and wipes the device code and every buffer.
    pub fn finish(&mut self, net: &mut T) {
        self.exchange.abort(net);
        self.wipe();
    }

    /// Reads the device authorization answer.
    fn authorized(
        &mut self,
        now: Instant,
        answer: Result<Answer, Error<T::Error>>,
    ) -> DeviceEvent<T::Error> {
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => return self.fail(DeviceFailure::Http(e)),
        };
        let view = answer.view(&self.response);
        let (status, body) = (view.status(), view.body());
        let parsed = if (200..300).contains(&status) {
            device::parse_authorization_response(body).map_err(DeviceFailure::Authorization)
        } else {
            let code = reauth_core::oauth::parse_error_response(body);
            Err(match reauth_core::oauth::classify_failure(status, body, None) {
                reauth_core::RefreshFailure::Refused => DeviceFailure::Refused(status, code),
                _ => DeviceFailure::Unavailable(status),
            })
        };
        let result = parsed.and_then(|auth| {
            auth.device_code_into(&mut self.device_code).map_err(DeviceFailure::DeviceCode)?;
            self.user_code_len =
                auth.user_code(&mut self.user_code).map_err(DeviceFailure::Field)?.len();
            self.uri_len =
                auth.verification_uri(&mut self.uri).map_err(DeviceFailure::Field)?.len();
            Ok(DevicePoller::new(now, &auth))
        });
        wipe(&mut self.response);
        match result {
            Ok(poller) => {
                self.poller = poller;
                self.phase = Phase::Waiting;
                DeviceEvent::Show
            }
            Err(failure) => self.fail(failure),
        }
    }

    /// Reads a poll's answer (or its failure).
    fn polled(
        &mut self,
        now: Instant,
        answer: Result<Answer, Error<T::Error>>,
    ) -> Option<DeviceEvent<T::Error>> {
        wipe(&mut self.request);
        let Ok(answer) = answer else {
            return match self.poller.handle_transport_error(now) {
                PollOutcome::Expired => Some(self.fail(DeviceFailure::Expired)),
                _ => {
                    self.phase = Phase::Waiting;
                    None
                }
            };
        };
        let view = answer.view(&self.response);
        let status = view.status();
        let failure = match self.poller.handle_answer(now, status, view.body()) {
            PollOutcome::Approved(_) => {
                self.answer = Some(answer);
                self.phase = Phase::Approved;
                return Some(DeviceEvent::Approved);
            }
            PollOutcome::Pending | PollOutcome::SlowDown | PollOutcome::Retry => None,
            PollOutcome::Denied => Some(DeviceFailure::Denied),
            PollOutcome::Refused(code) => Some(DeviceFailure::Refused(status, code)),
            PollOutcome::InvalidResponse(e) => Some(DeviceFailure::TokenResponse(e)),
            _ => Some(DeviceFailure::Expired),
        };
        wipe(&mut self.response);
        match failure {
            Some(failure) => Some(self.fail(failure)),
            None => {
                self.phase = Phase::Waiting;
                None
            }
        }
    }

    /// Ends the login with `failure`, wiping what it held.
    fn fail(&mut self, failure: DeviceFailure<T::Error>) -> DeviceEvent<T::Error> {
        self.wipe();
        DeviceEvent::Failed(failure)
    }

    /// Wipes the device code and the buffers; back to idle.
    fn wipe(&mut self) {
        self.device_code.clear();
        wipe(&mut self.request);
        wipe(&mut self.response);
        self.answer = None;
        self.request_len = 0;
        self.phase = Phase::Idle;
    }

    /// Writes a form POST to `path` into the request buffer.
    fn write_request(
        &mut self,
        path: &str,
        body: impl Fn(&mut [u8]) -> Result<usize, reauth_core::oauth::BufferTooSmall>,
    ) -> Result<(), DeviceFailure<T::Error>> {
        let len = Self::write_into(&mut self.request, self.server.host, path, body)
            .map_err(|needed| DeviceFailure::RequestTooLarge { needed })?;
        self.request_len = len;
        Ok(())
    }

    /// Writes `POST path` with the form `body` writes into `out`; the length, or the length
    /// needed.
    fn write_into(
        out: &mut [u8],
        host: &str,
        path: &str,
        body: impl Fn(&mut [u8]) -> Result<usize, reauth_core::oauth::BufferTooSmall>,
    ) -> Result<usize, usize> {
        wipe(out);
        let body_len = body(out).map_err(|e| e.needed)?;
        let head_len = write_head(&mut Cursor::new(&mut []), host, path, body_len);
        let needed = head_len.saturating_add(body_len);
        if needed > out.len() {
            wipe(out);
            return Err(needed);
        }
        move_within(out, 0..body_len, head_len);
        write_head(&mut Cursor::new(out), host, path, body_len);
        Ok(needed)
    }
}

/// Writes the head of a form POST; returns its length.
fn write_head(out: &mut Cursor<'_>, host: &str, path: &str, body_len: usize) -> usize {
    out.put(b"POST ");
    out.put(path.as_bytes());
    out.put(b" HTTP/1.1\r\nHost: ");
    out.put(host.as_bytes());
    out.put(b"\r\nConnection: close\r\nAccept: application/json\r\n");
    out.put(b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ");
    out.put_decimal(body_len);
    out.put(b"\r\n\r\n");
    out.len()
}

/// `buf[..len]` as text; decoded as visible ASCII, so always UTF-8.
fn text(buf: &[u8], len: usize) -> &str {
    core::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or_default()
}

impl<T: Transport, const REQ: usize, const RESP: usize> core::fmt::Debug
    for DeviceLogin<'_, T, REQ, RESP>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceLogin")
            .field("phase", &self.phase)
            .field("user_code", &self.user_code())
            .field("verification_uri", &self.verification_uri())
            .field("device_code", &self.device_code)
            .finish_non_exhaustive()
    }
}
