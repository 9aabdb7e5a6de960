//! The first login on a desktop: the OAuth 2.0 authorization code grant (RFC 6749 §4.1) with
//! PKCE (RFC 7636, `S256`) and a loopback redirect (RFC 8252 §7.3), over ureq.
//!
//! [`AuthorizationCodeLogin`] listens on `127.0.0.1` (an ephemeral port unless told otherwise),
//! hands the caller the authorization URL to open in a browser ([`AuthorizationPrompt`]), waits
//! (bounded) for the browser to come back to `http://127.0.0.1:PORT/callback` with a code, checks
//! the `state`, answers the browser with a small page, and exchanges the code and the PKCE
//! verifier at the token endpoint. [`Client::login_with_authorization_code`] also installs the
//! tokens and saves them to the client's store.
//!
//! The code, the verifier and the tokens are secrets: they live in wiped buffers, go only to the
//! token endpoint, and appear in no `Debug`, `Display` or error. The authorization URL carries
//! only the challenge (a hash of the verifier) and the `state`, and is meant to be shown.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reauth_core::RefreshFailure;
use reauth_core::oauth::{self, ErrorCode, TokenResponseError};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::credentials::Credentials;
use crate::error::Error;
use crate::exchange::NewTokens;
use crate::form_post::{Answer, FormPoster, PostError, RESPONSE_LIMIT};
use crate::tls::{TlsError, TlsSettings};

/// The path of the redirect URI on the loopback listener.
pub const CALLBACK_PATH: &str = "/callback";

/// Random bytes behind the PKCE verifier: 32 bytes are 43 base64url characters, RFC 7636 §4.1's
/// recommendation and its minimum length.
const VERIFIER_BYTES: usize = 32;

/// Random bytes behind `state` (128 bits, unguessable).
const STATE_BYTES: usize = 16;

/// Largest request head the listener reads from a browser.
const REQUEST_LIMIT: usize = 8 * 1024;

/// Connections the listener keeps open at once (browsers open spare ones ahead of need).
const MAX_CONNECTIONS: usize = 16;

/// How often the listener looks for new connections and bytes.
const LISTEN_TICK: Duration = Duration::from_millis(10);

/// Longest `error` or `error_description` kept from a redirect, in characters.
const TEXT_LIMIT: usize = 200;

/// An authorization code login against one authorization server. Build it with
/// [`new`](Self::new) and the setters, then [`run`](Self::run) it, or hand it to
/// [`Client::login_with_authorization_code`].
///
/// A public client (no secret) is the usual case: a desktop program cannot keep a secret
/// (RFC 8252 §8.5), and PKCE protects the code without one. `Debug` hides the client secret.
pub struct AuthorizationCodeLogin {
    /// The authorization endpoint (RFC 6749 §3.1), which the browser visits.
    authorize_url: String,
    /// The token endpoint, which gets the code and the verifier.
    token_url: String,
    /// `client_id` (required by the authorization endpoint), how the client authenticates at
    /// the token endpoint (a public client by default, the usual desktop case), and `scope`:
    /// the type the refresh and device grants use, so that every request authenticates alike.
    credentials: Credentials,
    /// The loopback port; 0 picks an ephemeral one.
    port: u16,
    /// How long to wait for the browser to come back.
    wait_timeout: Duration,
    /// Deadline of the token endpoint call.
    call_timeout: Duration,
    /// Roots trusted at the token endpoint, and whether plain http off loopback is allowed.
    tls: TlsSettings,
}

/// What the user must open: the authorization URL, and the redirect URI it leads back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationPrompt {
    /// The authorization URL with every parameter (`response_type=code`, `client_id`,
    /// `redirect_uri`, `scope`, `state`, `code_challenge`, `code_challenge_method=S256`).
    pub url: String,
    /// `http://127.0.0.1:PORT/callback`, where the listener waits.
    pub redirect_uri: String,
    /// How long the listener waits for the browser.
    pub wait_timeout: Duration,
}

/// Why an authorization code login did not produce tokens. Never holds a token, the code or the
/// verifier.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthorizationCodeError {
    /// The user (or the server on their behalf) refused: the redirect carried
    /// `error=access_denied`.
    Denied {
        /// The server's `error_description`, bounded and sanitised.
        description: Option<String>,
    },
    /// The redirect carried another `error` (`invalid_request`, `unauthorized_client`,
    /// `invalid_scope`, `server_error`, ...).
    Authorization {
        /// The `error` code, bounded and sanitised.
        error: String,
        /// The server's `error_description`, bounded and sanitised.
        description: Option<String>,
    },
    /// The redirect's `state` is missing or not the one this login sent: it did not come from
    /// this login (a forged request, or a browser tab of an earlier attempt). No code is used.
    StateMismatch,
    /// The redirect carried neither a code nor an error, or a parameter twice.
    InvalidRedirect,
    /// The browser did not come back within the wait timeout.
    Timeout,
    /// The token endpoint's TLS certificate was not accepted (retrying will not help).
    Tls(TlsError),
    /// The login's TLS settings or token URL cannot be used: [`Error::RootCertificates`],
    /// [`Error::InsecureUrl`] (plain http off loopback), [`Error::InvalidRequest`] (not an http
    /// or https URL). Found before the browser is opened.
    Settings(Error),
    /// The loopback listener could not be set up or failed.
    Listener(Arc<io::Error>),
    /// The system's random number generator failed.
    Randomness,
    /// The token endpoint refused the code (`invalid_grant`: wrong verifier, code used or
    /// expired; `invalid_client`; a 400 or 401 that is not JSON).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth 2.0 error code, when the body had one.
        code: Option<ErrorCode>,
    },
    /// The token endpoint answered a status worth retrying later (429, 5xx); the code may be
    /// spent, so the login starts over.
    Unavailable {
        /// The HTTP status.
        status: u16,
    },
    /// The token request failed on the wire.
    Transport(Arc<ureq::Error>),
    /// The token endpoint approved with an unusable token response.
    InvalidToken(TokenResponseError),
    /// The token response has no refresh token, so the client could not stay logged in.
    NoRefreshToken,
    /// The token endpoint's answer was larger than 64 KiB.
    ResponseTooLarge,
    /// The login is configured in a way that cannot work.
    Config(&'static str),
    /// The tokens were obtained but could not be installed, or the store could not save them
    /// (then they are installed in memory all the same).
    Login(Error),
}

/// The secrets and parameters of one login attempt.
struct Attempt {
    /// The PKCE code verifier (RFC 7636 §4.1), 43 unreserved characters.
    verifier: Zeroizing<String>,
    /// The `state` value the redirect must carry back.
    state: Zeroizing<String>,
}

impl AuthorizationCodeLogin {
    /// A login with the authorization endpoint `authorize_url`, the token endpoint `token_url`
    /// and `client_id`: a public client (no secret), no scope, an ephemeral loopback port, 5 min
    /// to wait for the browser, 30 s for the token call.
    #[must_use]
    pub fn new(
        authorize_url: impl Into<String>,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            authorize_url: authorize_url.into(),
            token_url: token_url.into(),
            credentials: Credentials {
                client_id: Some(client_id.into()),
                ..Credentials::default()
            },
            port: 0,
            wait_timeout: Duration::from_secs(300),
            call_timeout: Duration::from_secs(30),
            tls: TlsSettings::default(),
        }
    }

    crate::settings::credential_setters!();

    /// The loopback port to listen on (default 0: an ephemeral port, which RFC 8252 §7.3 asks
    /// servers to allow). Set one for a server that registered a fixed redirect URI.
    #[must_use]
    pub const fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// How long to wait for the browser to come back (default 5 min).
    #[must_use]
    pub const fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Deadline of the token endpoint call (default 30 s).
    #[must_use]
    pub const fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    crate::settings::tls_setters!(
        refused: "[`run`](Self::run) fails with [`AuthorizationCodeError::Settings`] before anything \
                  is sent"
    );

    /// Runs the grant: listens on the loopback, calls `open` once with the URL the user's
    /// browser must visit, waits for the redirect, then exchanges the code.
    ///
    /// # Errors
    /// [`AuthorizationCodeError`]: [`Denied`](AuthorizationCodeError::Denied) and
    /// [`Authorization`](AuthorizationCodeError::Authorization) for an error redirect,
    /// [`StateMismatch`](AuthorizationCodeError::StateMismatch),
    /// [`Timeout`](AuthorizationCodeError::Timeout), a refusal or failure of the token call, an
    /// unusable answer.
    pub fn run(
        &self,
        open: impl FnOnce(&AuthorizationPrompt),
    ) -> Result<NewTokens, AuthorizationCodeError> {
        let body = self.authorize_and_exchange(&self.tls, open)?;
        NewTokens::from_token_response(&body).map_err(AuthorizationCodeError::InvalidToken)
    }

    /// The whole flow up to the token endpoint's body, reaching the token endpoint with `tls`.
    fn authorize_and_exchange(
        &self,
        tls: &TlsSettings,
        open: impl FnOnce(&AuthorizationPrompt),
    ) -> Result<Zeroizing<Vec<u8>>, AuthorizationCodeError> {
        if self.credentials.client_id.as_deref().is_none_or(str::is_empty) {
            return Err(AuthorizationCodeError::Config("the client id is empty"));
        }
        if self.authorize_url.contains('#') {
            // RFC 6749 §3.1: the endpoint URI MUST NOT include a fragment.
            return Err(AuthorizationCodeError::Config("the authorization URL has a fragment"));
        }
        // Before the user is sent anywhere: a token endpoint the exchange cannot use.
        let wire =
            FormPoster::new(tls, &[(&self.token_url, "the token endpoint")], self.call_timeout)
                .map_err(AuthorizationCodeError::Settings)?;
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)))
            .map_err(listener_error)?;
        let port = listener.local_addr().map_err(listener_error)?.port();
        let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
        let attempt = Attempt::new()?;
        let prompt = AuthorizationPrompt {
            url: self.authorization_url(&redirect_uri, &attempt),
            redirect_uri,
            wait_timeout: self.wait_timeout,
        };
        let deadline = Instant::now() + self.wait_timeout;
        open(&prompt);
        let code = wait_for_redirect(&listener, &attempt.state, deadline)?;
        drop(listener);
        self.exchange(&wire, &code, &prompt.redirect_uri, &attempt.verifier)
    }

    /// The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
    fn authorization_url(&self, redirect_uri: &str, attempt: &Attempt) -> String {
        let challenge = challenge_s256(&attempt.verifier);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("response_type", "code");
        query.append_pair("client_id", self.credentials.client_id.as_deref().unwrap_or_default());
        query.append_pair("redirect_uri", redirect_uri);
        if let Some(scope) = &self.credentials.scope {
            query.append_pair("scope", scope);
        }
        query.append_pair("state", &attempt.state);
        query.append_pair("code_challenge", &challenge);
        query.append_pair("code_challenge_method", "S256");
        // The endpoint may carry a query of its own (RFC 6749 §3.1 says to keep it).
        let mut url = self.authorize_url.clone();
        if !url.contains('?') {
            url.push('?');
        } else if !url.ends_with(['?', '&']) {
            url.push('&');
        }
        url.push_str(&query.finish());
        url
    }

    /// The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.5),
    /// authenticated as the client's refresh grant is (a public client sends its id in the body).
    fn exchange(
        &self,
        wire: &FormPoster,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Zeroizing<Vec<u8>>, AuthorizationCodeError> {
        let cannot_encode =
            |_| AuthorizationCodeError::Config("the client credentials cannot be encoded");
        let client = self.credentials.authenticate(&self.token_url).map_err(cannot_encode)?;
        let form = client
            .form(|out, params| {
                oauth::write_authorization_code_body(out, code, redirect_uri, verifier, params)
            })
            .map_err(cannot_encode)?;
        let Answer { status, body, .. } = wire.post(&self.token_url, &client, &form)?;
        if !(200..300).contains(&status) {
            return Err(match oauth::classify_failure(status, &body, None) {
                RefreshFailure::Refused => AuthorizationCodeError::Refused {
                    status,
                    code: oauth::parse_error_response(&body),
                },
                _ => AuthorizationCodeError::Unavailable { status },
            });
        }
        Ok(body)
    }
}

impl Attempt {
    /// Draws a fresh verifier and state from the system's random number generator.
    fn new() -> Result<Self, AuthorizationCodeError> {
        let random = SystemRandom::new();
        let draw = |len: usize| -> Result<Zeroizing<String>, AuthorizationCodeError> {
            let mut bytes = Zeroizing::new(vec![0u8; len]);
            random.fill(&mut bytes).map_err(|_| AuthorizationCodeError::Randomness)?;
            Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(&*bytes)))
        };
        Ok(Self { verifier: draw(VERIFIER_BYTES)?, state: draw(STATE_BYTES)? })
    }
}

/// The `S256` code challenge of `verifier`: `BASE64URL(SHA256(ASCII(verifier)))` without
/// padding (RFC 7636 §4.2).
#[must_use]
pub fn challenge_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// What one browser request to the listener amounts to.
enum Callback {
    /// Not the redirect (`/favicon.ico`, a probe): answered and ignored.
    Unrelated,
    /// The redirect, with its verdict.
    Redirect(Result<Zeroizing<String>, AuthorizationCodeError>),
}

/// A connection the listener reads a request head from.
struct Pending {
    /// The browser's connection (non-blocking).
    stream: TcpStream,
    /// The bytes read so far.
    head: Zeroizing<Vec<u8>>,
}

/// Serves the loopback listener until the redirect arrives or `deadline` passes, answering every
/// request it reads; returns the code.
fn wait_for_redirect(
    listener: &TcpListener,
    state: &str,
    deadline: Instant,
) -> Result<Zeroizing<String>, AuthorizationCodeError> {
    listener.set_nonblocking(true).map_err(listener_error)?;
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    if pending.len() == MAX_CONNECTIONS {
                        // The oldest is most likely an idle spare connection.
                        pending.remove(0);
                    }
                    if stream.set_nonblocking(true).is_ok() {
                        // Sized for the largest head read, so that no copy of the code is left
                        // behind by a reallocation.
                        let head = Zeroizing::new(Vec::with_capacity(REQUEST_LIMIT + 1024));
                        pending.push(Pending { stream, head });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A connection that died before it was accepted (ECONNABORTED and the like).
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => return Err(listener_error(e)),
            }
        }
        let mut index = 0;
        while index < pending.len() {
            match read_head(&mut pending[index]) {
                HeadState::Waiting => index += 1,
                HeadState::Gone => drop(pending.remove(index)),
                HeadState::Complete => {
                    let Pending { stream, head } = pending.remove(index);
                    match answer(stream, &head, state) {
                        Callback::Unrelated => {}
                        Callback::Redirect(result) => return result,
                    }
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(AuthorizationCodeError::Timeout);
        }
        std::thread::sleep(LISTEN_TICK.min(deadline - now));
    }
}

/// Progress of reading one request head.
enum HeadState {
    /// No complete head yet.
    Waiting,
    /// The head ends with an empty line.
    Complete,
    /// Closed, failed or too large: forget the connection.
    Gone,
}

/// Reads what has arrived on a pending connection.
fn read_head(pending: &mut Pending) -> HeadState {
    let mut chunk = [0u8; 1024];
    loop {
        match pending.stream.read(&mut chunk) {
            Ok(0) => return HeadState::Gone,
            Ok(n) => {
                pending.head.extend_from_slice(&chunk[..n]);
                if pending.head.windows(4).any(|w| w == b"\r\n\r\n") {
                    return HeadState::Complete;
                }
                if pending.head.len() > REQUEST_LIMIT {
                    return HeadState::Gone;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HeadState::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return HeadState::Gone,
        }
    }
}

/// Judges one request, answers the browser, and says whether it was the redirect.
fn answer(stream: TcpStream, head: &[u8], state: &str) -> Callback {
    let Some(query) = redirect_query(head) else {
        respond(
            stream,
            "404 Not Found",
            "Not found",
            "This address only takes the login's redirect.",
        );
        return Callback::Unrelated;
    };
    let verdict = judge(query, state);
    match &verdict {
        Ok(_) => respond(
            stream,
            "200 OK",
            "Logged in",
            "The login is complete. You can close this tab and return to the program.",
        ),
        Err(e) => respond(
            stream,
            "400 Bad Request",
            "Login failed",
            &format!("{e}. Return to the program for details."),
        ),
    }
    Callback::Redirect(verdict)
}

/// The query of the login's redirect when `head` asks for it (`GET /callback?...`); `None` for
/// any other request.
fn redirect_query(head: &[u8]) -> Option<&str> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let target = core::str::from_utf8(target).unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (method == b"GET" && path == CALLBACK_PATH).then_some(query)
}

/// What the loopback listener makes of a request head it read: `None` for a request that is not
/// the redirect, else the verdict. Exposed (hidden) for the fuzz targets only.
#[doc(hidden)]
#[must_use]
pub fn judge_request_head(
    head: &[u8],
    state: &str,
) -> Option<Result<Zeroizing<String>, AuthorizationCodeError>> {
    redirect_query(head).map(|query| judge(query, state))
}

/// The verdict on the redirect's query (RFC 6749 §4.1.2, §4.1.2.1).
fn judge(query: &str, state: &str) -> Result<Zeroizing<String>, AuthorizationCodeError> {
    let mut code = None;
    let (mut returned_state, mut error, mut description) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match &*key {
            "code" => &mut code,
            "state" => &mut returned_state,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        // RFC 6749 §3.1: parameters MUST NOT be included more than once.
        if slot.replace(Zeroizing::new(value.into_owned())).is_some() {
            return Err(AuthorizationCodeError::InvalidRedirect);
        }
    }
    // Before anything else: a redirect that is not ours says nothing about our login.
    let matches =
        returned_state.as_ref().is_some_and(|s| constant_time_eq(s.as_bytes(), state.as_bytes()));
    if !matches {
        return Err(AuthorizationCodeError::StateMismatch);
    }
    if let Some(error) = error {
        let description = description.as_deref().and_then(|d| sanitise(d));
        return Err(if error.as_str() == "access_denied" {
            AuthorizationCodeError::Denied { description }
        } else {
            AuthorizationCodeError::Authorization {
                error: sanitise(&error).unwrap_or_else(|| "?".to_owned()),
                description,
            }
        });
    }
    code.filter(|c| !c.is_empty()).ok_or(AuthorizationCodeError::InvalidRedirect)
}

/// Compares without an early exit, so the time taken does not tell how much of `state` a
/// guess got right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A server's text, bounded and reduced to printable ASCII without quotes or backslashes.
fn sanitise(text: &str) -> Option<String> {
    let clean: String = text
        .chars()
        .take(TEXT_LIMIT)
        .map(|c| {
            if matches!(c, ' '..='~') && !matches!(c, '"' | '\\' | '<' | '>' | '&') {
                c
            } else {
                '?'
            }
        })
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Writes a small HTML page and closes; a browser that went away costs nothing.
fn respond(mut stream: TcpStream, status: &str, title: &str, message: &str) {
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{message}</p>\
         </body></html>"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// An I/O error of the listener.
fn listener_error(e: io::Error) -> AuthorizationCodeError {
    AuthorizationCodeError::Listener(Arc::new(e))
}

impl From<PostError> for AuthorizationCodeError {
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
    /// Logs in through the authorization code grant with PKCE and a loopback redirect: runs
    /// `login` (calling `open` with the URL the user's browser must visit), then installs the
    /// tokens and saves them to the store, as [`login`](Self::login) does. Requests that wait
    /// meanwhile are released once it succeeds.
    ///
    /// A `login` given no TLS settings of its own (root certificates, the platform verifier,
    /// plain http) reaches the token endpoint with the client's, so a private CA is given once.
    ///
    /// # Errors
    /// [`AuthorizationCodeError`] as [`AuthorizationCodeLogin::run`] gives it;
    /// [`AuthorizationCodeError::NoRefreshToken`] if the server sent no refresh token;
    /// [`AuthorizationCodeError::Login`] if the tokens could not be installed or saved.
    pub fn login_with_authorization_code(
        &self,
        login: &AuthorizationCodeLogin,
        open: impl FnOnce(&AuthorizationPrompt),
    ) -> Result<(), AuthorizationCodeError> {
        let tls = login.tls.or(self.tls());
        let body = login.authorize_and_exchange(tls, open)?;
        let tokens =
            NewTokens::from_token_response(&body).map_err(AuthorizationCodeError::InvalidToken)?;
        if !tokens.rotates_refresh_token() {
            return Err(AuthorizationCodeError::NoRefreshToken);
        }
        self.install_login(&tokens).map_err(AuthorizationCodeError::Login)
    }
}

impl fmt::Debug for AuthorizationCodeLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCodeLogin")
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("credentials", &self.credentials)
            .field("port", &self.port)
            .field("wait_timeout", &self.wait_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl fmt::Display for AuthorizationCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied { description } => {
                f.write_str("the user denied the login (access_denied)")?;
                description.as_ref().map_or(Ok(()), |d| write!(f, ": {d}"))
            }
            Self::Authorization { error, description } => {
                write!(f, "the authorization server refused the login ({error})")?;
                description.as_ref().map_or(Ok(()), |d| write!(f, ": {d}"))
            }
            Self::StateMismatch => f.write_str(
                "the redirect's state is not this login's (a forged request or an old browser tab)",
            ),
            Self::InvalidRedirect => f.write_str(
                "the redirect carried neither a code nor an error, or a parameter twice",
            ),
            Self::Timeout => f.write_str("the browser did not come back before the wait timeout"),
            Self::Tls(e) => write!(f, "the token endpoint: {e}"),
            Self::Settings(e) => write!(f, "authorization code login set up wrong: {e}"),
            Self::Listener(e) => write!(f, "the loopback redirect listener failed: {e}"),
            Self::Randomness => f.write_str("the system's random number generator failed"),
            Self::Refused { status, code: Some(code) } => write!(
                f,
                "the token endpoint refused the authorization code (HTTP {status}, {})",
                code.as_str()
            ),
            Self::Refused { status, code: None } => {
                write!(f, "the token endpoint refused the authorization code (HTTP {status})")
            }
            Self::Unavailable { status } => {
                write!(f, "the token endpoint is unavailable (HTTP {status})")
            }
            Self::Transport(e) => write!(f, "the token request failed: {e}"),
            Self::InvalidToken(e) => write!(f, "unusable token response: {e}"),
            Self::NoRefreshToken => f.write_str("the token response has no refresh token"),
            Self::ResponseTooLarge => {
                write!(f, "the token endpoint's answer is larger than {RESPONSE_LIMIT} bytes")
            }
            Self::Config(what) => write!(f, "authorization code login misconfigured: {what}"),
            Self::Login(e) => write!(f, "the login's tokens were not installed: {e}"),
        }
    }
}

impl core::error::Error for AuthorizationCodeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Listener(e) => Some(&**e),
            Self::Tls(e) => Some(e),
            Self::Settings(e) => Some(e),
            Self::Transport(e) => Some(&**e),
            Self::InvalidToken(e) => Some(e),
            Self::Login(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifier_and_state_are_unreserved_and_fresh() {
        let (a, b) = (Attempt::new().unwrap(), Attempt::new().unwrap());
        // RFC 7636 §4.1: 43 to 128 characters of ALPHA / DIGIT / "-" / "." / "_" / "~".
        assert_eq!(a.verifier.len(), 43);
        let unreserved =
            |s: &str| s.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c));
        assert!(unreserved(&a.verifier) && unreserved(&a.state));
        assert_ne!(*a.verifier, *b.verifier);
        assert_ne!(*a.state, *b.state);
    }

    #[test]
    fn authorization_url_carries_every_parameter_and_keeps_an_existing_query() {
        let attempt = Attempt::new().unwrap();
        let login =
            AuthorizationCodeLogin::new("https://a.example/authorize?tenant=x", "t", "my app")
                .scope("api offline_access");
        let url = login.authorization_url("http://127.0.0.1:5/callback", &attempt);
        let (base, query) = url.split_once("?tenant=x&").unwrap();
        assert_eq!(base, "https://a.example/authorize");
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("client_id"), Some("my app"));
        assert_eq!(get("redirect_uri"), Some("http://127.0.0.1:5/callback"));
        assert_eq!(get("scope"), Some("api offline_access"));
        assert_eq!(get("state"), Some(attempt.state.as_str()));
        assert_eq!(get("code_challenge"), Some(challenge_s256(&attempt.verifier).as_str()));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert!(!url.contains(attempt.verifier.as_str()));
    }

    #[test]
    fn redirect_verdicts() {
        assert_eq!(*judge("code=abc&state=s1", "s1").unwrap(), "abc");
        assert!(matches!(
            judge("code=abc&state=s2", "s1"),
            Err(AuthorizationCodeError::StateMismatch)
        ));
        assert!(matches!(judge("code=abc", "s1"), Err(AuthorizationCodeError::StateMismatch)));
        assert!(matches!(
            judge("error=access_denied&error_description=no%20thanks&state=s1", "s1"),
            Err(AuthorizationCodeError::Denied { description: Some(d) }) if d == "no thanks"
        ));
        assert!(matches!(
            judge("error=invalid_scope&state=s1", "s1"),
            Err(AuthorizationCodeError::Authorization { error, description: None }) if error == "invalid_scope"
        ));
        assert!(matches!(judge("state=s1", "s1"), Err(AuthorizationCodeError::InvalidRedirect)));
        assert!(matches!(
            judge("code=a&code=b&state=s1", "s1"),
            Err(AuthorizationCodeError::InvalidRedirect)
        ));
        // An error with a forged state is a forgery, not the user's answer.
        assert!(matches!(
            judge("error=access_denied&state=x", "s1"),
            Err(AuthorizationCodeError::StateMismatch)
        ));
    }

    #[test]
    fn only_get_callback_is_taken_for_the_redirect() {
        let verdict =
            |head: &[u8]| judge_request_head(head, "s1").map(|v| v.map(|c| c.to_string()));
        assert_eq!(
            verdict(b"GET /callback?code=c&state=s1 HTTP/1.1\r\n\r\n").unwrap().unwrap(),
            "c"
        );
        assert!(verdict(b"GET /favicon.ico HTTP/1.1\r\n\r\n").is_none());
        assert!(verdict(b"POST /callback?code=c&state=s1 HTTP/1.1\r\n\r\n").is_none());
        assert!(verdict(b"GET /callbackx?code=c&state=s1 HTTP/1.1\r\n\r\n").is_none());
        assert!(matches!(
            verdict(b"GET /callback HTTP/1.1\r\n\r\n"),
            Some(Err(AuthorizationCodeError::StateMismatch))
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let login = AuthorizationCodeLogin::new("a", "t", "id").client_secret("s3cret-sentinel");
        assert!(!format!("{login:?}").contains("s3cret-sentinel"));
    }
}
