//! The OAuth 2.0 device authorization grant (RFC 8628) on the wire and in time, without
//! allocation: writing the device authorization request, parsing its response, writing the token
//! poll, and [`DevicePoller`], a sans-IO state machine that says when to poll the token endpoint
//! and what each answer means (`authorization_pending`, `slow_down`, `access_denied`,
//! `expired_token`, success).
//!
//! The flow, driven by the caller:
//!
//! 1. POST [`write_authorization_body`] to the device authorization endpoint; parse the answer
//!    with [`parse_authorization_response`].
//! 2. Show [`DeviceAuthorization::user_code`] and [`DeviceAuthorization::verification_uri`] (or
//!    the `_complete` URI, e.g. as a QR code) to the user. Keep the device code, a secret, in a
//!    [`Token`] ([`DeviceAuthorization::device_code_into`]).
//! 3. Make a [`DevicePoller`]. Until it reports a final outcome: wait until
//!    [`poll_at`](DevicePoller::poll_at), POST [`write_poll_body`] to the token endpoint and feed
//!    the answer to [`handle_answer`](DevicePoller::handle_answer) (or a transport failure to
//!    [`handle_transport_error`](DevicePoller::handle_transport_error)).
//! 4. On [`PollOutcome::Approved`], install the tokens: `Coordinator::handle_login` with the
//!    response's lifetime gives the generation for [`TokenResponse::apply`].
//!
//! ```
//! use reauth_core::device::{self, DevicePoller, PollOutcome};
//! use reauth_core::{Duration, Instant};
//!
//! let body = br#"{"device_code":"GmRh","user_code":"WDJB-MJHT",
//!     "verification_uri":"https://example.com/device","expires_in":1800}"#;
//! let auth = device::parse_authorization_response(body).unwrap();
//! let mut shown = [0u8; 16];
//! assert_eq!(auth.user_code(&mut shown).unwrap(), "WDJB-MJHT");
//!
//! let start = Instant::from_millis(0);
//! let mut poller = DevicePoller::new(start, &auth);
//! assert_eq!(poller.poll_at(), Some(start + Duration::from_secs(5)));
//! let now = start + Duration::from_secs(5);
//! let pending = poller.handle_answer(now, 400, br#"{"error":"authorization_pending"}"#);
//! assert!(matches!(pending, PollOutcome::Pending));
//! let ok = br#"{"access_token":"a","token_type":"Bearer","refresh_token":"r"}"#;
//! let now = now + Duration::from_secs(5);
//! assert!(matches!(poller.handle_answer(now, 200, ok), PollOutcome::Approved(_)));
//! assert_eq!(poller.poll_at(), None);
//! ```

use core::fmt;

use crate::json::{JsonError, Members, Unescape, Value, same};
use crate::oauth::{
    self, BufferTooSmall, ErrorCode, RefreshParams, TokenResponse, TokenResponseError,
};
use crate::time::{Duration, Instant};
use crate::token::{Token, TokenError};

/// The `grant_type` of the token poll (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the server gives none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How much each `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// A device authorization response (RFC 8628 §3.2), borrowed from the response body.
///
/// The strings stay in the body, still JSON-escaped, until decoded into the caller's buffers.
/// `Debug` shows no device code (a secret); the user code and URIs are meant to be shown.
pub struct DeviceAuthorization<'a> {
    /// Raw text of `device_code`; secret.
    device_code: &'a [u8],
    /// Raw text of `user_code`.
    user_code: &'a [u8],
    /// Raw text of `verification_uri`.
    verification_uri: &'a [u8],
    /// Raw text of `verification_uri_complete`, if given (and not `null`).
    verification_uri_complete: Option<&'a [u8]>,
    /// Lifetime of the device code and user code.
    expires_in: Duration,
    /// Minimum time between token polls; [`DEFAULT_INTERVAL`] if absent.
    interval: Duration,
}

/// Why a device authorization response could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthorizationResponseError {
    /// Malformed JSON, or a required field (`device_code`, `user_code`, `verification_uri`,
    /// `expires_in`) missing, duplicated or of the wrong type.
    Json(JsonError),
    /// `expires_in` is not a non-negative integer (number or numeric string).
    InvalidExpiresIn,
    /// `interval` is not a non-negative integer (number or numeric string).
    InvalidInterval,
}

/// Why a string of a device authorization response was not decoded into a buffer. The buffer's
/// old content is not to be relied on then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decoded value is `len` bytes long; the buffer holds `capacity`. Never truncated.
    TooLong {
        /// Decoded length in bytes.
        len: usize,
        /// Size of the buffer in bytes.
        capacity: usize,
    },
    /// The value is empty.
    Empty,
    /// The byte at `position` of the decoded value is not visible ASCII. User codes (RFC 8628
    /// §6.1) and URIs (RFC 3986) are ASCII; the check keeps control characters off a display.
    InvalidByte {
        /// Offset of the first offending byte in the decoded value.
        position: usize,
    },
    /// A JSON escape is malformed.
    InvalidEscape,
}

/// What an answer of the token endpoint means for the device flow, from
/// [`DevicePoller::handle_answer`].
///
/// [`Pending`](Self::Pending), [`SlowDown`](Self::SlowDown) and [`Retry`](Self::Retry) mean
/// "poll again at [`DevicePoller::poll_at`]"; every other outcome is final and `poll_at` is
/// `None` after it.
#[derive(Debug)]
#[non_exhaustive]
pub enum PollOutcome<'a> {
    /// `authorization_pending`: the user has not answered yet.
    Pending,
    /// `slow_down`: the interval grew by [`SLOW_DOWN_STEP`] for this and every later poll.
    SlowDown,
    /// A transient failure (network, timeout, 408, 429, 5xx, an unknown error code such as
    /// `temporarily_unavailable`): poll again after the interval.
    Retry,
    /// The user approved: the token response, borrowed from the body. The caller installs it
    /// (see the [module docs](self)).
    Approved(TokenResponse<'a>),
    /// `access_denied`: the user refused.
    Denied,
    /// `expired_token`, or the device code's `expires_in` has passed: start over.
    Expired,
    /// The server refused the grant for another reason (`invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, a 400/401 that is not JSON: `None`).
    Refused(Option<ErrorCode>),
    /// 200, but the body is not a usable token response.
    InvalidResponse(TokenResponseError),
}

/// The polling half of the device flow (RFC 8628 §3.4, §3.5): when to ask the token endpoint,
/// and what its answers mean. It holds no secret and no buffer; the caller owns the device code,
/// the sockets and the clock.
///
/// Methods: getters [`poll_at`](Self::poll_at), [`expires_at`](Self::expires_at),
/// [`interval`](Self::interval), [`is_finished`](Self::is_finished); inputs
/// [`handle_answer`](Self::handle_answer) and
/// [`handle_transport_error`](Self::handle_transport_error), each returning a [`PollOutcome`].
///
/// Time that goes backwards is clamped to the latest instant seen. No input panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevicePoller {
    /// When the next token poll is due; at most `expires_at`. Meaningless once `finished`.
    poll_at: Instant,
    /// When the device code expires: the instant of [`new`](Self::new) plus `expires_in`.
    expires_at: Instant,
    /// Minimum time between polls: the server's `interval`, plus 5 s per `slow_down`.
    interval: Duration,
    /// The latest instant the caller has given; inputs earlier than it are raised to it.
    now: Instant,
    /// A final outcome has been returned.
    finished: bool,
}

/// Writes the device authorization request (RFC 8628 §3.1) into `out`, form-encoded:
/// `client_id`, `client_secret` (for `client_secret_post` only) and `scope`, each if given.
/// Returns the number of bytes written.
///
/// # Errors
/// [`BufferTooSmall`] with the size needed; `out` is then left untouched.
pub fn write_authorization_body(
    out: &mut [u8],
    params: &RefreshParams<'_>,
) -> Result<usize, BufferTooSmall> {
    oauth::write_form(
        out,
        &[
            params.client_id.map(|v| ("client_id", v)),
            params.client_secret.map(|v| ("client_secret", v)),
            params.scope.map(|v| ("scope", v)),
        ],
    )
}

/// Writes the token poll (RFC 8628 §3.4) into `out`, form-encoded: `grant_type` ([`GRANT_TYPE`]),
/// `device_code`, and `client_id` and `client_secret` if given (`params.scope` is not sent: the
/// scope was fixed by the authorization request). Returns the number of bytes written. The body
/// holds the device code: callers SHOULD wipe `out` afterwards.
///
/// # Errors
/// [`BufferTooSmall`] with the size needed; `out` is then left untouched.
pub fn write_poll_body(
    out: &mut [u8],
    device_code: &str,
    params: &RefreshParams<'_>,
) -> Result<usize, BufferTooSmall> {
    oauth::write_form(
        out,
        &[
            Some(("grant_type", GRANT_TYPE)),
            Some(("device_code", device_code)),
            params.client_id.map(|v| ("client_id", v)),
            params.client_secret.map(|v| ("client_secret", v)),
        ],
    )
}

/// Parses a device authorization response (RFC 8628 §3.2).
///
/// `expires_in` and `interval` may be numbers or numeric strings; an absent or `null`
/// `interval` is [`DEFAULT_INTERVAL`]; unknown fields are ignored. String values are only
/// checked to be JSON strings here; their content is checked when decoded.
///
/// # Errors
/// [`AuthorizationResponseError`] for malformed JSON (checked to the end of the body), a
/// missing required field, a known field given twice or with the wrong JSON type, or a bad
/// `expires_in` or `interval`.
pub fn parse_authorization_response(
    body: &[u8],
) -> Result<DeviceAuthorization<'_>, AuthorizationResponseError> {
    const FIELDS: [&[u8]; 6] = [
        b"device_code",
        b"user_code",
        b"verification_uri",
        b"verification_uri_complete",
        b"expires_in",
        b"interval",
    ];
    let json_error = AuthorizationResponseError::Json;
    let wrong_type = json_error(JsonError::WrongType);
    let mut found: [Option<Value<'_>>; 6] = [None; 6];
    let mut members = Members::new(body);
    while let Some((key, value)) = members.next().map_err(json_error)? {
        let slot = FIELDS.iter().position(|f| same(f, key)).and_then(|i| found.get_mut(i));
        if slot.is_some_and(|slot| slot.replace(value).is_some()) {
            return Err(json_error(JsonError::DuplicateField));
        }
    }
    let [device_code, user_code, verification_uri, complete, expires_in, interval] = found;
    let required = |value| match value {
        Some(Value::Str(text)) => Ok(text),
        Some(_) => Err(json_error(JsonError::WrongType)),
        None => Err(json_error(JsonError::MissingField)),
    };
    let device_code = required(device_code)?;
    let user_code = required(user_code)?;
    let verification_uri = required(verification_uri)?;
    let verification_uri_complete = match complete {
        None | Some(Value::Null) => None,
        Some(Value::Str(text)) => Some(text),
        Some(_) => return Err(json_error(JsonError::WrongType)),
    };
    let expires_in = match oauth::seconds(expires_in).map_err(|()| wrong_type)? {
        None => return Err(json_error(JsonError::MissingField)),
        Some(None) => return Err(AuthorizationResponseError::InvalidExpiresIn),
        Some(Some(span)) => span,
    };
    let interval = match oauth::seconds(interval).map_err(|()| wrong_type)? {
        None => DEFAULT_INTERVAL,
        Some(None) => return Err(AuthorizationResponseError::InvalidInterval),
        Some(Some(span)) => span,
    };
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_in,
        interval,
    })
}

impl DeviceAuthorization<'_> {
    /// Decodes the user code (to be shown to the user) into `out`.
    ///
    /// # Errors
    /// [`DecodeError`] if it does not fit, is empty, or is not visible ASCII.
    pub fn user_code<'b>(&self, out: &'b mut [u8]) -> Result<&'b str, DecodeError> {
        decode_text(self.user_code, out)
    }

    /// Decodes the verification URI (where the user goes to enter the code) into `out`.
    ///
    /// # Errors
    /// [`DecodeError`] if it does not fit, is empty, or is not visible ASCII.
    pub fn verification_uri<'b>(&self, out: &'b mut [u8]) -> Result<&'b str, DecodeError> {
        decode_text(self.verification_uri, out)
    }

    /// Decodes the verification URI that already carries the user code, if the server sent one,
    /// into `out` (for a QR code or a link).
    ///
    /// # Errors
    /// [`DecodeError`] if it does not fit, is empty, or is not visible ASCII.
    pub fn verification_uri_complete<'b>(
        &self,
        out: &'b mut [u8],
    ) -> Option<Result<&'b str, DecodeError>> {
        self.verification_uri_complete.map(|raw| decode_text(raw, out))
    }

    /// True if the server sent `verification_uri_complete`.
    #[must_use]
    pub const fn has_verification_uri_complete(&self) -> bool {
        self.verification_uri_complete.is_some()
    }

    /// Decodes the device code (a secret, sent with every poll) into `out`, which wipes it on
    /// drop. On error `out` is left empty.
    ///
    /// # Errors
    /// [`TokenError`] if it does not fit, is empty, or is not visible ASCII.
    pub fn device_code_into<const N: usize>(&self, out: &mut Token<N>) -> Result<(), TokenError> {
        out.clear();
        let decoded = oauth::decode(self.device_code, Some(out.view_mut()), N);
        if decoded.is_err() {
            out.clear();
        }
        decoded
    }

    /// How long the device code and user code stay valid.
    #[must_use]
    pub const fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The minimum time between token polls the server asked for ([`DEFAULT_INTERVAL`] if it
    /// gave none).
    #[must_use]
    pub const fn interval(&self) -> Duration {
        self.interval
    }
}

impl DevicePoller {
    /// Starts polling for `authorization`, received at `now`: the first poll is due one interval
    /// from now, the device code expires `expires_in` from now.
    #[must_use]
    pub fn new(now: Instant, authorization: &DeviceAuthorization<'_>) -> Self {
        Self::with_timing(now, authorization.interval, authorization.expires_in)
    }

    /// As [`new`](Self::new), from the interval and lifetime alone (e.g. after a restart that
    /// kept only those and the device code).
    #[must_use]
    pub const fn with_timing(now: Instant, interval: Duration, expires_in: Duration) -> Self {
        let expires_at = now.saturating_add(expires_in);
        let first = now.saturating_add(interval);
        let poll_at = if first.millis() < expires_at.millis() { first } else { expires_at };
        Self { poll_at, expires_at, interval, now, finished: false }
    }

    /// When the next token poll is due, or `None` once a final outcome was returned. Never
    /// later than [`expires_at`](Self::expires_at), so the last poll is at expiry. The caller
    /// MUST NOT poll earlier (the server would answer `slow_down`).
    #[must_use]
    pub const fn poll_at(&self) -> Option<Instant> {
        if self.finished { None } else { Some(self.poll_at) }
    }

    /// When the device code expires.
    #[must_use]
    pub const fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The current minimum time between polls.
    #[must_use]
    pub const fn interval(&self) -> Duration {
        self.interval
    }

    /// True once a final outcome was returned.
    #[must_use]
    pub const fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds the token endpoint's answer to a poll: its HTTP status and body. The next poll is
    /// scheduled one interval from `now` (the time the answer arrived).
    ///
    /// The RFC 8628 codes are recognised with any 4xx status (RFC 8628 says 400; a `slow_down`
    /// with 429 is taken as one too). A non-final outcome at or after
    /// [`expires_at`](Self::expires_at) becomes [`PollOutcome::Expired`]. After a final outcome,
    /// inputs change nothing and give `Expired`.
    pub fn handle_answer<'a>(
        &mut self,
        now: Instant,
        status: u16,
        body: &'a [u8],
    ) -> PollOutcome<'a> {
        if self.finished {
            return PollOutcome::Expired;
        }
        let outcome = if (200..300).contains(&status) {
            match oauth::parse_token_response(body) {
                Ok(response) => PollOutcome::Approved(response),
                Err(e) => PollOutcome::InvalidResponse(e),
            }
        } else {
            classify(status, body)
        };
        self.settle(now, outcome)
    }

    /// Reports a poll that got no answer (connection refused or reset, timeout): retried after
    /// the interval, or [`PollOutcome::Expired`] if the device code has expired. (RFC 8628
    /// §3.5 suggests an exponential backoff after a connection timeout; the interval is kept
    /// here, which the server's `slow_down` can still stretch.)
    pub fn handle_transport_error(&mut self, now: Instant) -> PollOutcome<'static> {
        if self.finished {
            return PollOutcome::Expired;
        }
        self.settle(now, PollOutcome::Retry)
    }

    /// Applies `outcome`: the clock, `slow_down`, expiry, the next poll.
    fn settle<'a>(&mut self, now: Instant, outcome: PollOutcome<'a>) -> PollOutcome<'a> {
        self.now = self.now.max(now);
        let outcome = match outcome {
            PollOutcome::SlowDown => {
                self.interval = self.interval + SLOW_DOWN_STEP;
                PollOutcome::SlowDown
            }
            other => other,
        };
        let outcome = match outcome {
            PollOutcome::Pending | PollOutcome::SlowDown | PollOutcome::Retry
                if self.now >= self.expires_at =>
            {
                PollOutcome::Expired
            }
            other => other,
        };
        match outcome {
            PollOutcome::Pending | PollOutcome::SlowDown | PollOutcome::Retry => {
                self.poll_at = (self.now + self.interval).min(self.expires_at);
            }
            _ => self.finished = true,
        }
        outcome
    }
}

/// Sorts a non-2xx answer by its `error` code (RFC 8628 §3.5), then as a refresh failure.
fn classify(status: u16, body: &[u8]) -> PollOutcome<'static> {
    const CODES: [&[u8]; 4] =
        [b"authorization_pending", b"slow_down", b"access_denied", b"expired_token"];
    if (400..500).contains(&status)
        && let Some(code) = oauth::raw_error_code(body)
        && let Some(i) = CODES.iter().position(|name| same(name, code))
    {
        return match i {
            0 => PollOutcome::Pending,
            1 => PollOutcome::SlowDown,
            2 => PollOutcome::Denied,
            _ => PollOutcome::Expired,
        };
    }
    match oauth::classify_failure(status, body, None) {
        crate::RefreshFailure::Refused => PollOutcome::Refused(oauth::parse_error_response(body)),
        _ => PollOutcome::Retry,
    }
}

/// Decodes the raw text of a JSON string into `out`: visible ASCII only, never truncated.
fn decode_text<'b>(raw: &[u8], out: &'b mut [u8]) -> Result<&'b str, DecodeError> {
    let capacity = out.len();
    let mut len = 0;
    for unit in Unescape::new(raw) {
        let unit = unit.map_err(|_| DecodeError::InvalidEscape)?;
        let Ok(byte @ 0x20..=0x7E) = u8::try_from(unit) else {
            return Err(DecodeError::InvalidByte { position: len });
        };
        if let Some(slot) = out.get_mut(len) {
            *slot = byte;
        }
        len += 1;
    }
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    let Some(text) = out.get(..len) else {
        return Err(DecodeError::TooLong { len, capacity });
    };
    // Visible ASCII only, checked above: always UTF-8.
    core::str::from_utf8(text).map_err(|_| DecodeError::InvalidByte { position: 0 })
}

impl fmt::Debug for DeviceAuthorization<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw user code and URIs are shown as text where they are UTF-8 (they always are:
        // the parser checked the body).
        fn text(raw: &[u8]) -> &str {
            core::str::from_utf8(raw).unwrap_or("<not UTF-8>")
        }
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"<redacted>")
            .field("user_code", &text(self.user_code))
            .field("verification_uri", &text(self.verification_uri))
            .field("verification_uri_complete", &self.verification_uri_complete.map(text))
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

impl fmt::Display for AuthorizationResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "device authorization response is not valid JSON: {e}"),
            Self::InvalidExpiresIn => {
                f.write_str("device authorization response has an invalid expires_in")
            }
            Self::InvalidInterval => {
                f.write_str("device authorization response has an invalid interval")
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len, capacity } => {
                write!(f, "value of {len} bytes does not fit its {capacity}-byte buffer")
            }
            Self::Empty => f.write_str("value is empty"),
            Self::InvalidByte { position } => {
                write!(f, "value has a byte that is not visible ASCII at offset {position}")
            }
            Self::InvalidEscape => f.write_str("value has a malformed JSON escape"),
        }
    }
}

impl core::error::Error for AuthorizationResponseError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl core::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::String;

    const AUTH: &[u8] = br#"{
        "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://example.com/device",
        "verification_uri_complete": "https://example.com/device?user_code=WDJB-MJHT",
        "expires_in": 1800,
        "interval": 5
    }"#;

    const PENDING: &[u8] = br#"{"error":"authorization_pending"}"#;
    const SLOW: &[u8] = br#"{"error":"slow_down"}"#;
    const TOKENS: &[u8] = br#"{"access_token":"SECRET-A","token_type":"Bearer","refresh_token":"SECRET-R","expires_in":60}"#;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_the_rfc_example() {
        let auth = parse_authorization_response(AUTH).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(auth.user_code(&mut buf), Ok("WDJB-MJHT"));
        assert_eq!(auth.verification_uri(&mut buf), Ok("https://example.com/device"));
        assert_eq!(
            auth.verification_uri_complete(&mut buf),
            Some(Ok("https://example.com/device?user_code=WDJB-MJHT"))
        );
        let mut code = Token::<64>::new();
        auth.device_code_into(&mut code).unwrap();
        assert_eq!(code.expose(), "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS");
        assert_eq!((auth.expires_in(), auth.interval()), (secs(1800), secs(5)));
    }

    #[test]
    fn optional_fields_and_string_numbers() {
        let body = br#"{"device_code":"d","user_code":"u","verification_uri":"v",
            "verification_uri_complete":null,"expires_in":"600","x":{"y":[1]}}"#;
        let auth = parse_authorization_response(body).unwrap();
        assert!(!auth.has_verification_uri_complete());
        assert_eq!(auth.verification_uri_complete(&mut [0; 8]), None);
        assert_eq!((auth.expires_in(), auth.interval()), (secs(600), DEFAULT_INTERVAL));
        let body = br#"{"device_code":"d","user_code":"u","verification_uri":"v","expires_in":1,"interval":"0"}"#;
        assert_eq!(parse_authorization_response(body).unwrap().interval(), Duration::ZERO);
    }

    #[test]
    fn bad_authorization_responses_are_typed_errors() {
        use AuthorizationResponseError as E;
        let base = r#""device_code":"d","user_code":"u","verification_uri":"v""#;
        let parse = |extra: &str| {
            let body = format!("{{{base}{extra}}}");
            parse_authorization_response(body.as_bytes()).map(|_| ())
        };
        assert_eq!(parse(""), Err(E::Json(JsonError::MissingField)));
        assert_eq!(parse(r#","expires_in":null"#), Err(E::Json(JsonError::MissingField)));
        assert_eq!(parse(r#","expires_in":-1"#), Err(E::InvalidExpiresIn));
        assert_eq!(parse(r#","expires_in":1.5"#), Err(E::InvalidExpiresIn));
        assert_eq!(parse(r#","expires_in":"soon""#), Err(E::InvalidExpiresIn));
        assert_eq!(parse(r#","expires_in":99999999999999999999"#), Err(E::InvalidExpiresIn));
        assert_eq!(parse(r#","expires_in":true"#), Err(E::Json(JsonError::WrongType)));
        assert_eq!(parse(r#","expires_in":1,"interval":"x""#), Err(E::InvalidInterval));
        assert_eq!(parse(r#","expires_in":1,"interval":[]"#), Err(E::Json(JsonError::WrongType)));
        assert_eq!(
            parse(r#","expires_in":1,"user_code":"w""#),
            Err(E::Json(JsonError::DuplicateField))
        );
        assert_eq!(
            parse(r#","expires_in":1,"verification_uri_complete":1"#),
            Err(E::Json(JsonError::WrongType))
        );
        assert_eq!(parse(r#","expires_in":1,"#), Err(E::Json(JsonError::Syntax)));
        let body = br#"{"device_code":1,"user_code":"u","verification_uri":"v","expires_in":1}"#;
        assert_eq!(parse_authorization_response(body).err(), Some(E::Json(JsonError::WrongType)));
        assert_eq!(
            parse_authorization_response(b"[]").err(),
            Some(E::Json(JsonError::NotAnObject))
        );
        assert_eq!(parse_authorization_response(b"").err(), Some(E::Json(JsonError::NotAnObject)));
    }

    #[test]
    fn strings_are_decoded_checked_and_never_truncated() {
        let body = br#"{"device_code":"d\u0041\n","user_code":"AB\u002DCD","verification_uri":"h\u00e9","expires_in":1}"#;
        let auth = parse_authorization_response(body).unwrap();
        let mut buf = [0u8; 5];
        assert_eq!(auth.user_code(&mut buf), Ok("AB-CD"));
        assert_eq!(
            auth.user_code(&mut [0u8; 4]),
            Err(DecodeError::TooLong { len: 5, capacity: 4 })
        );
        assert_eq!(auth.user_code(&mut []), Err(DecodeError::TooLong { len: 5, capacity: 0 }));
        assert_eq!(auth.verification_uri(&mut buf), Err(DecodeError::InvalidByte { position: 1 }));
        let mut code = Token::<8>::new();
        code.set("old").unwrap();
        assert_eq!(auth.device_code_into(&mut code), Err(TokenError::InvalidByte { position: 2 }));
        assert!(code.is_empty());
        let body =
            br#"{"device_code":"0123456789","user_code":"","verification_uri":"v","expires_in":1}"#;
        let auth = parse_authorization_response(body).unwrap();
        assert_eq!(auth.user_code(&mut buf), Err(DecodeError::Empty));
        assert_eq!(
            auth.device_code_into(&mut code),
            Err(TokenError::TooLong { len: 10, capacity: 8 })
        );
        assert!(code.is_empty());
    }

    #[test]
    fn bodies_are_form_encoded() {
        let mut out = [0u8; 160];
        let params = RefreshParams {
            client_id: Some("my app"),
            client_secret: None,
            scope: Some("read write"),
        };
        let n = write_authorization_body(&mut out, &params).unwrap();
        assert_eq!(&out[..n], b"client_id=my+app&scope=read+write");
        let n = write_poll_body(&mut out, "d&c=1", &params).unwrap();
        assert_eq!(
            core::str::from_utf8(&out[..n]).unwrap(),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code\
             &device_code=d%26c%3D1&client_id=my+app"
        );
        let mut small = [0u8; 10];
        assert_eq!(write_poll_body(&mut small, "d", &params), Err(BufferTooSmall { needed: 96 }));
        assert_eq!(small, [0u8; 10]);
        assert_eq!(write_authorization_body(&mut [], &RefreshParams::default()), Ok(0));
    }

    #[test]
    fn polls_at_the_interval_until_approved() {
        let mut p = DevicePoller::with_timing(ms(1_000), secs(5), secs(60));
        assert_eq!(p.poll_at(), Some(ms(6_000)));
        assert_eq!(p.expires_at(), ms(61_000));
        assert!(matches!(p.handle_answer(ms(6_100), 400, PENDING), PollOutcome::Pending));
        assert_eq!(p.poll_at(), Some(ms(11_100)));
        let PollOutcome::Approved(response) = p.handle_answer(ms(11_200), 200, TOKENS) else {
            panic!("not approved");
        };
        assert_eq!(response.expires_in(), Some(secs(60)));
        assert!(p.is_finished());
        assert_eq!(p.poll_at(), None);
        // Inputs after the end change nothing and never approve again.
        assert!(matches!(p.handle_answer(ms(12_000), 200, TOKENS), PollOutcome::Expired));
        assert!(matches!(p.handle_transport_error(ms(12_000)), PollOutcome::Expired));
    }

    #[test]
    fn slow_down_adds_five_seconds_each_time() {
        let mut p = DevicePoller::with_timing(ms(0), secs(5), secs(600));
        assert!(matches!(p.handle_answer(ms(5_000), 400, SLOW), PollOutcome::SlowDown));
        assert_eq!(p.interval(), secs(10));
        assert_eq!(p.poll_at(), Some(ms(15_000)));
        assert!(matches!(p.handle_answer(ms(15_000), 400, SLOW), PollOutcome::SlowDown));
        assert_eq!(p.poll_at(), Some(ms(30_000)));
        assert!(matches!(p.handle_answer(ms(30_000), 400, PENDING), PollOutcome::Pending));
        assert_eq!(p.poll_at(), Some(ms(45_000)));
        assert!(matches!(p.handle_answer(ms(45_000), 429, SLOW), PollOutcome::SlowDown));
        assert_eq!(p.poll_at(), Some(ms(65_000)));
    }

    #[test]
    fn final_answers() {
        let answer = |status, body: &'static [u8]| {
            let mut p = DevicePoller::with_timing(ms(0), secs(5), secs(60));
            let outcome = format!("{:?}", p.handle_answer(ms(5_000), status, body));
            (outcome, p.poll_at())
        };
        assert_eq!(answer(400, br#"{"error":"access_denied"}"#), ("Denied".into(), None));
        assert_eq!(answer(400, br#"{"error":"expired_token"}"#), ("Expired".into(), None));
        assert_eq!(
            answer(401, br#"{"error":"invalid_client"}"#),
            ("Refused(Some(InvalidClient))".into(), None)
        );
        assert_eq!(answer(400, b"<html>"), ("Refused(None)".into(), None));
        assert_eq!(
            answer(200, br#"{"access_token":"a"}"#),
            ("InvalidResponse(Json(MissingField))".into(), None)
        );
    }

    #[test]
    fn transient_failures_retry_at_the_interval() {
        let mut p = DevicePoller::with_timing(ms(0), secs(5), secs(60));
        for (status, body) in [
            (503, &b""[..]),
            (429, b""),
            (500, PENDING),
            (400, br#"{"error":"temporarily_unavailable"}"#),
            (400, br#"{"error":"authorization_pend\u0069ng"}"#),
        ] {
            assert!(matches!(p.handle_answer(ms(5_000), status, body), PollOutcome::Retry));
            assert_eq!(p.poll_at(), Some(ms(10_000)));
        }
        assert!(matches!(p.handle_transport_error(ms(7_000)), PollOutcome::Retry));
        assert_eq!(p.poll_at(), Some(ms(12_000)));
    }

    #[test]
    fn the_device_code_expires() {
        let mut p = DevicePoller::with_timing(ms(0), secs(5), secs(12));
        assert!(matches!(p.handle_answer(ms(5_000), 400, PENDING), PollOutcome::Pending));
        assert!(matches!(p.handle_answer(ms(10_000), 400, PENDING), PollOutcome::Pending));
        // The last poll is due at expiry, not past it.
        assert_eq!(p.poll_at(), Some(ms(12_000)));
        assert!(matches!(p.handle_answer(ms(12_000), 400, PENDING), PollOutcome::Expired));
        assert_eq!(p.poll_at(), None);
        // An approval that arrives at expiry still counts: the server issued the tokens.
        let mut p = DevicePoller::with_timing(ms(0), secs(5), secs(5));
        assert!(matches!(p.handle_answer(ms(9_000), 200, TOKENS), PollOutcome::Approved(_)));
        let mut p = DevicePoller::with_timing(ms(0), secs(5), secs(5));
        assert!(matches!(p.handle_transport_error(ms(5_000)), PollOutcome::Expired));
    }

    #[test]
    fn time_going_backwards_and_extreme_values() {
        let mut p = DevicePoller::with_timing(ms(10_000), secs(5), secs(60));
        assert!(matches!(p.handle_answer(ms(1), 400, PENDING), PollOutcome::Pending));
        assert_eq!(p.poll_at(), Some(ms(15_000)));
        let mut p = DevicePoller::with_timing(Instant::MAX, Duration::MAX, Duration::MAX);
        assert_eq!(p.poll_at(), Some(Instant::MAX));
        assert!(matches!(p.handle_answer(Instant::MAX, 400, SLOW), PollOutcome::Expired));
        let mut p = DevicePoller::with_timing(ms(0), Duration::MAX, Duration::MAX);
        assert!(matches!(p.handle_answer(ms(1), 400, SLOW), PollOutcome::SlowDown));
        assert_eq!(p.interval(), Duration::MAX);
        let mut p = DevicePoller::with_timing(ms(0), Duration::ZERO, secs(1));
        assert_eq!(p.poll_at(), Some(ms(0)));
        assert!(matches!(p.handle_answer(ms(0), 400, PENDING), PollOutcome::Pending));
    }

    #[test]
    fn hostile_bodies_never_panic() {
        let mut bodies: std::vec::Vec<std::vec::Vec<u8>> =
            std::vec![AUTH.to_vec(), TOKENS.to_vec()];
        for doc in [AUTH, TOKENS, SLOW] {
            for end in 0..doc.len() {
                bodies.push(doc[..end].to_vec());
            }
            for at in 0..doc.len() {
                for b in [0, b'"', b'\\', b'{', b'}', b',', b':', b'u', b'0', 0xFF] {
                    let mut changed = doc.to_vec();
                    changed[at] = b;
                    bodies.push(changed);
                }
            }
        }
        bodies.push(
            format!(r#"{{"a":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        );
        let mut buf = [0u8; 16];
        let mut code = Token::<16>::new();
        for body in &bodies {
            if let Ok(auth) = parse_authorization_response(body) {
                let _ = auth.user_code(&mut buf);
                let _ = auth.verification_uri(&mut buf);
                let _ = auth.verification_uri_complete(&mut buf);
                let _ = auth.device_code_into(&mut code);
                let _ = DevicePoller::new(Instant::MAX, &auth);
            }
            for status in [0, 200, 400, 401, 503, u16::MAX] {
                let mut p = DevicePoller::with_timing(ms(0), secs(5), secs(60));
                let _ = p.handle_answer(ms(5_000), status, body);
            }
        }
    }

    #[test]
    fn debug_never_shows_the_device_code() {
        let auth = parse_authorization_response(AUTH).unwrap();
        let shown = format!("{auth:?}");
        assert!(!shown.contains("GmRh"), "{shown}");
        assert!(shown.contains("WDJB-MJHT"), "{shown}");
        let mut p = DevicePoller::new(ms(0), &auth);
        let outcome = format!("{:?}", p.handle_answer(ms(5_000), 200, TOKENS));
        assert!(!outcome.contains("SECRET"), "{outcome}");
        let _: String = format!("{}", DecodeError::TooLong { len: 1, capacity: 0 });
    }
}
