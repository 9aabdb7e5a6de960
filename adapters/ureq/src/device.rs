//! The first login of a device or a terminal: the OAuth 2.0 device authorization grant
//! (RFC 8628) over ureq, driven by [`reauth_core::device::DevicePoller`] on the wall clock.
//!
//! [`DeviceLogin`] asks the device authorization endpoint for a user code, hands it to the
//! caller to show ([`DevicePrompt`]), polls the token endpoint at the interval (slower after each
//! `slow_down`) until the user approves, refuses, or the code expires, and returns the new tokens;
//! [`Client::login_with_device`] also installs them and saves them to the client's store.
//!
//! The device code is a secret: it lives in a wiped buffer and is sent to the token endpoint
//! only. The user code and the verification URI are meant to be shown and appear in `Debug`.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use reauth_core::device::{
    self, AuthorizationResponseError, DecodeError, DevicePoller, PollOutcome,
};
use reauth_core::oauth::{self, ErrorCode, TokenResponseError};
use reauth_core::{Token, TokenError};

use crate::client::Client;
use crate::credentials::{Credentials, EncodeError};
use crate::error::Error;
use crate::exchange::NewTokens;
use crate::form_post::{Answer, FormPoster, PostError, RESPONSE_LIMIT};
use crate::tls::{TlsError, TlsSettings};

/// Largest device code accepted, in bytes (RFC 8628 sets no limit; real ones are under 100).
pub const DEVICE_CODE_CAPACITY: usize = 512;

/// Largest user code or verification URI accepted, in bytes.
const TEXT_CAPACITY: usize = 2048;

/// A device authorization grant against one authorization server. Build it with
/// [`new`](Self::new) and the setters, then [`run`](Self::run) it, or hand it to
/// [`Client::login_with_device`].
///
/// `Debug` hides the client secret.
pub struct DeviceLogin {
    /// The device authorization endpoint (RFC 8628 §3.1).
    device_url: String,
    /// The token endpoint, polled with the device code.
    token_url: String,
    /// Who the client is (RFC 8628 requires `client_id` of public clients), how it
    /// authenticates, and the `scope` of the authorization request.
    credentials: Credentials,
    /// Deadline of each HTTP call (default 30 s).
    call_timeout: Duration,
    /// Trusted roots, and whether plain http may leave the machine (as for the client).
    tls: TlsSettings,
}

/// What to show the user: where to go and which code to enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePrompt {
    /// The code the user types in, e.g. `WDJB-MJHT`.
    pub user_code: String,
    /// Where the user goes to type it.
    pub verification_uri: String,
    /// A URI that already carries the code (for a QR code or a link), if the server sent one.
    pub verification_uri_complete: Option<String>,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// Why a device login did not produce tokens. Never holds a token or the device code.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceError {
    /// The user refused (`access_denied`).
    Denied,
    /// The code expired before the user approved (`expired_token`, or its `expires_in` passed).
    Expired,
    /// An endpoint refused the client or the request (`invalid_client`, `invalid_request`,
    /// `unauthorized_client`, a 400 or 401 that is not JSON, ...).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth 2.0 error code, when the body had one.
        code: Option<ErrorCode>,
    },
    /// The device authorization endpoint answered a status worth retrying later (429, 5xx).
    Unavailable {
        /// The HTTP status.
        status: u16,
    },
    /// The device authorization request failed on the wire. (Failed polls are retried until
    /// the code expires.)
    Transport(Arc<ureq::Error>),
    /// An endpoint's TLS certificate was not accepted (not retried: see [`TlsError`]).
    Tls(TlsError),
    /// The login's settings cannot be used: root certificates that cannot be read, or an
    /// endpoint that is plain http to a host other than loopback ([`Error::InsecureUrl`]).
    Settings(Error),
    /// The device authorization response is not what RFC 8628 §3.2 describes.
    InvalidAuthorization(AuthorizationResponseError),
    /// The user code or a verification URI is unusable (too long, not visible ASCII).
    InvalidField(DecodeError),
    /// The device code is unusable (longer than [`DEVICE_CODE_CAPACITY`], not visible ASCII).
    InvalidDeviceCode(TokenError),
    /// The token endpoint approved with an unusable token response.
    InvalidToken(TokenResponseError),
    /// The token response has no refresh token, so the client could not stay logged in.
    NoRefreshToken,
    /// An answer was larger than 64 KiB.
    ResponseTooLarge,
    /// The login is configured in a way that cannot work.
    Config(&'static str),
    /// The tokens were obtained but could not be installed, or the store could not save them
    /// (then they are installed in memory all the same).
    Login(Error),
}

impl DeviceLogin {
    /// A device login with the device authorization endpoint `device_url` and the token
    /// endpoint `token_url`, no client id, no secret, no scope, 30 s per HTTP call.
    #[must_use]
    pub fn new(device_url: impl Into<String>, token_url: impl Into<String>) -> Self {
        Self {
            device_url: device_url.into(),
            token_url: token_url.into(),
            credentials: Credentials::default(),
            call_timeout: Duration::from_secs(30),
            tls: TlsSettings::default(),
        }
    }

    crate::settings::credential_setters!(client_id);

    crate::settings::tls_setters!(
        refused: "[`run`](Self::run) fails with [`DeviceError::Settings`] before anything is sent"
    );

    /// Deadline of each HTTP call (default 30 s). The whole login lasts until the user answers
    /// or the code expires.
    #[must_use]
    pub const fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Runs the grant: asks for a code, calls `show` once with what the user must see, then
    /// polls (sleeping this thread between polls) until the user answers or the code expires.
    ///
    /// # Errors
    /// [`DeviceError`]: [`Denied`](DeviceError::Denied), [`Expired`](DeviceError::Expired), a
    /// refusal or failure of the device authorization request, or an unusable answer. Failed
    /// polls (network, 5xx) are retried at the interval until the code expires.
    pub fn run(&self, show: impl FnOnce(&DevicePrompt)) -> Result<NewTokens, DeviceError> {
        self.run_with(&self.tls, show)
    }

    /// [`run`](Self::run), reaching both endpoints with `tls`.
    fn run_with(
        &self,
        tls: &TlsSettings,
        show: impl FnOnce(&DevicePrompt),
    ) -> Result<NewTokens, DeviceError> {
        let wire = self.wire(tls)?;
        let client = self.credentials.authenticate(&self.token_url).map_err(config_error)?;
        let form = client.form(device::write_authorization_body).map_err(config_error)?;
        let Answer { status, body, .. } = wire.post(&self.device_url, &client, &form)?;
        let start = Instant::now();
        if !(200..300).contains(&status) {
            return Err(match oauth::classify_failure(status, &body, None) {
                reauth_core::RefreshFailure::Refused => {
                    DeviceError::Refused { status, code: oauth::parse_error_response(&body) }
                }
                _ => DeviceError::Unavailable { status },
            });
        }
        let auth = device::parse_authorization_response(&body)
            .map_err(DeviceError::InvalidAuthorization)?;
        let mut code = Box::new(Token::<DEVICE_CODE_CAPACITY>::new());
        auth.device_code_into(&mut code).map_err(DeviceError::InvalidDeviceCode)?;
        let mut text = vec![0u8; TEXT_CAPACITY];
        let mut decode = |field: Result<&str, DecodeError>| field.map(str::to_owned);
        let prompt = DevicePrompt {
            user_code: decode(auth.user_code(&mut text)).map_err(DeviceError::InvalidField)?,
            verification_uri: decode(auth.verification_uri(&mut text))
                .map_err(DeviceError::InvalidField)?,
            verification_uri_complete: auth
                .verification_uri_complete(&mut text)
                .map(&mut decode)
                .transpose()
                .map_err(DeviceError::InvalidField)?,
            expires_in: auth.expires_in().into(),
        };
        let mut poller = DevicePoller::new(reauth_core::Instant::ZERO, &auth);
        show(&prompt);

        let now = || reauth_core::Instant::from_millis(millis(start.elapsed()));
        while let Some(at) = poller.poll_at() {
            let wait = at.saturating_duration_since(now());
            std::thread::sleep(wait.into());
            // Authenticated afresh for every poll: a client assertion is good for one request
            // (its `jti` may not be presented twice).
            let client = self.credentials.authenticate(&self.token_url).map_err(config_error)?;
            let poll = client
                .form(|out, params| device::write_poll_body(out, code.expose(), params))
                .map_err(config_error)?;
            let answer = wire.post(&self.token_url, &client, &poll);
            // A certificate the client does not accept will not be accepted at the next poll.
            if let Err(PostError::Tls(e)) = answer {
                return Err(DeviceError::Tls(e));
            }
            let Ok(Answer { status, body, .. }) = answer else {
                if let PollOutcome::Expired = poller.handle_transport_error(now()) {
                    return Err(DeviceError::Expired);
                }
                continue;
            };
            match poller.handle_answer(now(), status, &body) {
                PollOutcome::Approved(response) => {
                    return NewTokens::from_response(&response)
                        .map_err(|e| DeviceError::InvalidToken(TokenResponseError::Token(e)));
                }
                PollOutcome::Denied => return Err(DeviceError::Denied),
                PollOutcome::Refused(code) => return Err(DeviceError::Refused { status, code }),
                PollOutcome::InvalidResponse(e) => return Err(DeviceError::InvalidToken(e)),
                PollOutcome::Pending | PollOutcome::SlowDown | PollOutcome::Retry => {}
                _ => return Err(DeviceError::Expired),
            }
        }
        Err(DeviceError::Expired)
    }

    /// The agent of this login (see [`FormPoster`]).
    fn wire(&self, tls: &TlsSettings) -> Result<FormPoster, DeviceError> {
        let endpoints = [
            (self.device_url.as_str(), "the device endpoint"),
            (self.token_url.as_str(), "the token endpoint"),
        ];
        FormPoster::new(tls, &endpoints, self.call_timeout).map_err(DeviceError::Settings)
    }
}

impl From<PostError> for DeviceError {
    fn from(e: PostError) -> Self {
        match e {
            PostError::Tls(e) => Self::Tls(e),
            PostError::Transport(e) => Self::Transport(e),
            // An answer not captured whole is treated as one too large to keep.
            PostError::TooLarge | PostError::NotCaptured => Self::ResponseTooLarge,
        }
    }
}

impl Client {
    /// Logs in through the device authorization grant: runs `login` (calling `show` with the
    /// user code to display), then installs the tokens and saves them to the store, as
    /// [`login`](Self::login) does. Requests that wait meanwhile are released once it succeeds.
    ///
    /// A `login` given no TLS settings of its own (root certificates, the platform verifier,
    /// plain http) reaches both endpoints with the client's, so a private CA is given once.
    ///
    /// # Errors
    /// [`DeviceError`] as [`DeviceLogin::run`] gives it; [`DeviceError::NoRefreshToken`] if the
    /// server sent no refresh token; [`DeviceError::Login`] if the tokens could not be
    /// installed or saved.
    pub fn login_with_device(
        &self,
        login: &DeviceLogin,
        show: impl FnOnce(&DevicePrompt),
    ) -> Result<(), DeviceError> {
        let tls = login.tls.or(self.tls());
        let tokens = login.run_with(tls, show)?;
        if !tokens.rotates_refresh_token() {
            return Err(DeviceError::NoRefreshToken);
        }
        self.install_login(&tokens).map_err(DeviceError::Login)
    }
}

/// The credentials could not be encoded into a request.
fn config_error(_: EncodeError) -> DeviceError {
    DeviceError::Config("the client credentials cannot be encoded")
}

/// Milliseconds of a wall-clock span, saturating.
fn millis(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Debug for DeviceLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceLogin")
            .field("device_url", &self.device_url)
            .field("token_url", &self.token_url)
            .field("credentials", &self.credentials)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied => f.write_str("the user denied the device login"),
            Self::Expired => f.write_str("the device code expired before the user approved it"),
            Self::Refused { status, code: Some(code) } => {
                write!(
                    f,
                    "the authorization server refused the device login (HTTP {status}, {code:?})"
                )
            }
            Self::Refused { status, code: None } => {
                write!(f, "the authorization server refused the device login (HTTP {status})")
            }
            Self::Unavailable { status } => {
                write!(f, "the device authorization endpoint is unavailable (HTTP {status})")
            }
            Self::Transport(e) => write!(f, "the device authorization request failed: {e}"),
            Self::Tls(e) => write!(f, "the device login failed: {e}"),
            Self::Settings(e) => write!(f, "the device login cannot start: {e}"),
            Self::InvalidAuthorization(e) => write!(f, "{e}"),
            Self::InvalidField(e) => write!(f, "unusable device authorization response: {e}"),
            Self::InvalidDeviceCode(e) => write!(f, "unusable device code: {e}"),
            Self::InvalidToken(e) => write!(f, "unusable token response: {e}"),
            Self::NoRefreshToken => f.write_str("the token response has no refresh token"),
            Self::ResponseTooLarge => {
                write!(
                    f,
                    "an answer of the authorization server is larger than {RESPONSE_LIMIT} bytes"
                )
            }
            Self::Config(what) => write!(f, "device login misconfigured: {what}"),
            Self::Login(e) => write!(f, "the device login's tokens were not installed: {e}"),
        }
    }
}

impl core::error::Error for DeviceError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Transport(e) => Some(&**e),
            Self::Tls(e) => Some(e),
            Self::Settings(e) => Some(e),
            Self::InvalidAuthorization(e) => Some(e),
            Self::InvalidField(e) => Some(e),
            Self::InvalidDeviceCode(e) => Some(e),
            Self::InvalidToken(e) => Some(e),
            Self::Login(e) => Some(e),
            _ => None,
        }
    }
}
