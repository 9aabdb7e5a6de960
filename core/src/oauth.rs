//! The OAuth 2.0 refresh exchange on the wire (RFC 6749 §6, §5.1, §5.2), without allocation:
//! writing the form-encoded request body, parsing the token and error responses, and telling a
//! refusal from a transient failure.

use core::fmt;

use crate::coordinator::RefreshFailure;
use crate::json::{self, Members, Unescape, Value, same};
use crate::time::Duration;
use crate::token::{TokenError, TokenSet};

pub use crate::json::JsonError;

/// A successful token response (RFC 6749 §5.1), borrowed from the response body.
///
/// The tokens stay in the body, still JSON-escaped, until [`apply`](Self::apply) decodes them
/// straight into a [`TokenSet`]: no other copy of a secret is made. `Debug` shows no token.
///
/// To persist a rotated refresh token *before* the new generation is used, first
/// [`validate`](Self::validate) the response for the token set's capacities: the
/// [`ValidTokenResponse`] lends the new refresh token
/// ([`write_refresh_token`](ValidTokenResponse::write_refresh_token)) and its
/// [`apply`](ValidTokenResponse::apply) cannot fail. The order of operations around
/// [`Coordinator::handle_refresh_success`](crate::Coordinator::handle_refresh_success) is given
/// there.
#[derive(Clone, Copy)]
pub struct TokenResponse<'a> {
    /// The text between the quotes, still escaped (checked well-formed by the parser).
    access_token: &'a [u8],
    /// As `access_token`; `None` if absent or `null`.
    refresh_token: Option<&'a [u8]>,
    expires_in: Option<Duration>,
}

/// Why a token response could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenResponseError {
    /// The body is not the JSON object RFC 6749 §5.1 describes: malformed JSON, or a required
    /// field missing, duplicated or of the wrong type.
    Json(JsonError),
    /// `token_type` is not `Bearer` (compared case-insensitively).
    UnsupportedTokenType,
    /// `expires_in` is neither a non-negative integer nor a string holding one.
    InvalidExpiresIn,
    /// A token does not fit its buffer or has bytes a token may not have.
    Token(TokenError),
}

/// The `error` code of an OAuth 2.0 error response (RFC 6749 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`: the refresh token is expired, revoked or was already used.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// Any other code (some servers send `temporarily_unavailable` or `server_error`).
    Other,
}

impl ErrorCode {
    /// The code as the server wrote it (`"invalid_grant"`); `"other"` for [`ErrorCode::Other`].
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::Other => "other",
        }
    }

    /// True for the codes that say the client is set up wrong (`invalid_client`,
    /// `unauthorized_client`, `unsupported_grant_type`), not that the user must log in again.
    #[must_use]
    pub const fn is_configuration_error(self) -> bool {
        matches!(self, Self::InvalidClient | Self::UnauthorizedClient | Self::UnsupportedGrantType)
    }
}

/// The client's own parameters of a refresh request. `Debug` hides the secret.
#[derive(Clone, Copy, Default)]
pub struct RefreshParams<'a> {
    /// `client_id`, for public clients and servers that want it in the body.
    pub client_id: Option<&'a str>,
    /// `client_secret`, for confidential clients that authenticate in the body (§2.3.1).
    pub client_secret: Option<&'a str>,
    /// `scope`, to narrow the scope of the new access token.
    pub scope: Option<&'a str>,
}

/// The output buffer is too small; `needed` bytes would fit the whole body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferTooSmall {
    /// Size of the whole encoded body in bytes.
    pub needed: usize,
}

/// Parses a successful token response.
///
/// `expires_in` may be a number or a numeric string (some servers send `"3600"`); unknown fields
/// are ignored; an absent `refresh_token` means the old one stays valid (§6).
///
/// # Errors
/// [`TokenResponseError`] for malformed JSON (checked to the end of the body), a missing
/// `access_token` or `token_type`, a known field given twice or with the wrong JSON type (`null`
/// counts as absent for the optional ones), a token type other than Bearer, or a bad
/// `expires_in`. A JSON error wins over the other two, and a bad `expires_in` over the token type.
pub fn parse_token_response(body: &[u8]) -> Result<TokenResponse<'_>, TokenResponseError> {
    const FIELDS: [&[u8]; 4] = [b"access_token", b"token_type", b"expires_in", b"refresh_token"];
    let mut found: [Option<Value<'_>>; 4] = [None; 4];
    let mut members = Members::new(body);
    while let Some((key, value)) = members.next().map_err(TokenResponseError::Json)? {
        let slot = FIELDS.iter().position(|f| same(f, key)).and_then(|i| found.get_mut(i));
        if slot.is_some_and(|slot| slot.replace(value).is_some()) {
            return Err(TokenResponseError::Json(JsonError::DuplicateField));
        }
    }
    let [access_token, token_type, expires_in, refresh_token] = found;
    let wrong_type = TokenResponseError::Json(JsonError::WrongType);
    let required = |value| match value {
        Some(Value::Str(text)) => Ok(text),
        Some(_) => Err(wrong_type),
        None => Err(TokenResponseError::Json(JsonError::MissingField)),
    };
    let (access_token, token_type) = (required(access_token)?, required(token_type)?);
    let refresh_token = match refresh_token {
        None | Some(Value::Null) => None,
        Some(Value::Str(text)) => Some(text),
        Some(_) => return Err(wrong_type),
    };
    // A string is trimmed and may start with `+`, as `str::parse` allows; its escapes are not
    // decoded, so an escaped digit makes it invalid. The JSON grammar keeps whitespace and `+`
    // out of a number, so one path serves both. (The same rule as `seconds`, written out here:
    // calling it changed the inlining of the refresh path and cost reauth-nal's firmware 36 B.)
    let seconds = match expires_in {
        None | Some(Value::Null) => None,
        Some(Value::Num(mut text) | Value::Str(mut text)) => {
            // Raw control characters are not JSON, so a space is the only whitespace to trim.
            while let [b' ', rest @ ..] | [rest @ .., b' '] = text {
                text = rest;
            }
            Some(json::unsigned(text.strip_prefix(b"+").unwrap_or(text)))
        }
        Some(_) => return Err(wrong_type),
    };
    let expires_in = match seconds {
        Some(None) => return Err(TokenResponseError::InvalidExpiresIn),
        seconds => seconds.flatten().map(Duration::from_secs),
    };
    // "Bearer" has no character worth escaping; a server that escapes one anyway is not served.
    if !token_type.eq_ignore_ascii_case(b"bearer") {
        return Err(TokenResponseError::UnsupportedTokenType);
    }
    Ok(TokenResponse { access_token, refresh_token, expires_in })
}

/// A span in seconds (`expires_in`, RFC 8628's `interval`): `Ok(None)` if absent or `null`,
/// `Ok(Some(None))` if not a non-negative integer, `Err` for a JSON type other than a number or
/// a string.
///
/// A string is trimmed and may start with `+`, as `str::parse` allows; its escapes are not
/// decoded, so an escaped digit makes it invalid. The JSON grammar keeps whitespace and `+` out
/// of a number, so one path serves both.
#[allow(clippy::option_option)] // Absent, invalid and valid are three different answers.
pub(crate) fn seconds(value: Option<Value<'_>>) -> Result<Option<Option<Duration>>, ()> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Num(mut text) | Value::Str(mut text)) => {
            // Raw control characters are not JSON, so a space is the only whitespace to trim.
            while let [b' ', rest @ ..] | [rest @ .., b' '] = text {
                text = rest;
            }
            let number = json::unsigned(text.strip_prefix(b"+").unwrap_or(text));
            Ok(Some(number.map(Duration::from_secs)))
        }
        Some(_) => Err(()),
    }
}

/// Parses the `error` code of an error response; `None` if the body is not one.
///
/// The code is compared as written: an escaped character makes it [`ErrorCode::Other`].
#[must_use]
pub fn parse_error_response(body: &[u8]) -> Option<ErrorCode> {
    const CODES: [(&[u8], ErrorCode); 6] = [
        (b"invalid_request", ErrorCode::InvalidRequest),
        (b"invalid_client", ErrorCode::InvalidClient),
        (b"invalid_grant", ErrorCode::InvalidGrant),
        (b"unauthorized_client", ErrorCode::UnauthorizedClient),
        (b"unsupported_grant_type", ErrorCode::UnsupportedGrantType),
        (b"invalid_scope", ErrorCode::InvalidScope),
    ];
    let code = raw_error_code(body)?;
    Some(CODES.iter().find(|(name, _)| same(name, code)).map_or(ErrorCode::Other, |&(_, c)| c))
}

/// The `error` member of an error response as written (still escaped); `None` if the body is
/// not a JSON object with exactly one string `error`. Shared with [`device`](crate::device),
/// whose codes RFC 6749 does not list.
pub(crate) fn raw_error_code(body: &[u8]) -> Option<&[u8]> {
    let mut error = None;
    let mut members = Members::new(body);
    while let Some((key, value)) = members.next().ok()? {
        if same(key, b"error") && error.replace(value).is_some() {
            return None;
        }
    }
    match error {
        Some(Value::Str(code)) => Some(code),
        _ => None,
    }
}

/// What [`write_error_description`] writes in place of a description that quotes the refresh
/// token.
pub const DESCRIPTION_WITHHELD: &str = "(withheld: it quoted the refresh token)";

/// How many of a refresh token's first bytes in a description count as quoting it (all of a
/// shorter token).
const QUOTED_RUN: usize = 12;

/// The `error_description` of an error response (RFC 6749 §5.2), bounded and sanitised into
/// `out`: escapes decoded, every character outside printable ASCII (and `"` and `\\`) written
/// as `?`, cut at `out.len()` bytes. Returns the number of bytes written, all printable ASCII
/// (so `core::str::from_utf8` of them cannot fail); 0 if the body has no string
/// `error_description`, or an empty one. The text is the server's: show it to the user as its
/// words, not as a fact.
///
/// Some servers quote the refresh token they refuse (Spring Security OAuth's `Invalid refresh
/// token: <token>`). A description that holds the first 12 bytes of `refresh_token` (the one
/// the refused request presented; all of it if shorter) is replaced by [`DESCRIPTION_WITHHELD`],
/// so that no token reaches an error, a log or a display through it.
///
/// ```
/// use reauth_core::oauth::{DESCRIPTION_WITHHELD, write_error_description};
///
/// let mut out = [0u8; 64];
/// let body = br#"{"error":"invalid_client","error_description":"Client \"x\" is not allowed\nhere"}"#;
/// let len = write_error_description(body, "rt-0123456789abcdef", &mut out[..24]);
/// assert_eq!(&out[..len], b"Client ?x? is not allowe");
///
/// let echo = br#"{"error":"invalid_grant","error_description":"Invalid refresh token: rt-0123456789abcdef"}"#;
/// let len = write_error_description(echo, "rt-0123456789abcdef", &mut out);
/// assert_eq!(&out[..len], DESCRIPTION_WITHHELD.as_bytes());
/// ```
#[must_use]
pub fn write_error_description(body: &[u8], refresh_token: &str, out: &mut [u8]) -> usize {
    let mut description = None;
    let mut members = Members::new(body);
    while let Ok(Some((key, value))) = members.next() {
        if same(key, b"error_description") {
            description.get_or_insert(value);
        }
    }
    let Some(Value::Str(raw)) = description else { return 0 };
    let mut len = 0;
    for (slot, unit) in out.iter_mut().zip(Unescape::new(raw)) {
        *slot = match unit.map(u8::try_from) {
            Ok(Ok(byte @ b' '..=b'~')) if byte != b'"' && byte != b'\\' => byte,
            _ => b'?',
        };
        len += 1;
    }
    let written = out.get(..len).unwrap_or_default();
    if quotes(written, refresh_token.as_bytes()) {
        let withheld = DESCRIPTION_WITHHELD.as_bytes();
        len = withheld.len().min(out.len());
        out[..len].copy_from_slice(&withheld[..len]);
    }
    len
}

/// True if `text` holds the first [`QUOTED_RUN`] bytes of `secret` (all of it if shorter).
/// The start is enough: a server that quotes a token quotes it whole, and a quote that begins
/// too late in the kept text for its first 12 bytes to show leaves at most 11 bytes of it.
fn quotes(text: &[u8], secret: &[u8]) -> bool {
    let start = secret.get(..QUOTED_RUN).unwrap_or(secret);
    // Byte by byte: slice equality would link `memcmp` (116 B on Cortex-M) for this alone.
    !start.is_empty()
        && text.windows(start.len()).any(|seen| seen.iter().zip(start).all(|(a, b)| a == b))
}

/// Classifies a token endpoint answer that is not a success.
///
/// 400 and 401 are refusals (the refresh token or the client is not accepted), unless the body
/// names a code outside RFC 6749 §5.2, such as `temporarily_unavailable`. Everything else
/// (408, 429, 5xx, and other statuses a proxy in the way may produce) is transient, so a
/// misbehaving network never logs the user out. `retry_after` is the parsed `Retry-After`
/// header, if any (see [`parse_retry_after`]).
#[must_use]
pub fn classify_failure(status: u16, body: &[u8], retry_after: Option<Duration>) -> RefreshFailure {
    match (status, parse_error_response(body)) {
        (400 | 401, Some(ErrorCode::Other)) => RefreshFailure::Transient { retry_after },
        (400 | 401, _) => RefreshFailure::Refused,
        _ => RefreshFailure::Transient { retry_after },
    }
}

/// Parses a `Retry-After` value given in seconds. An HTTP date is not understood (the core has no
/// wall clock) and gives `None`, so the normal backoff applies.
#[must_use]
pub fn parse_retry_after(value: &[u8]) -> Option<Duration> {
    // `trim_ascii`: HTTP whitespace is ASCII, and `trim` would link the Unicode tables.
    let text = core::str::from_utf8(value.trim_ascii()).ok()?;
    text.parse::<u64>().ok().map(Duration::from_secs)
}

/// Writes `grant_type=refresh_token&refresh_token=...` and the client's parameters into `out`,
/// form-encoded (`application/x-www-form-urlencoded`). Returns the number of bytes written.
///
/// # Errors
/// [`BufferTooSmall`] with the size needed; `out` is then left untouched.
pub fn write_refresh_body(
    out: &mut [u8],
    refresh_token: &str,
    params: &RefreshParams<'_>,
) -> Result<usize, BufferTooSmall> {
    let fields = [
        Some(("grant_type", "refresh_token")),
        Some(("refresh_token", refresh_token)),
        params.client_id.map(|v| ("client_id", v)),
        params.client_secret.map(|v| ("client_secret", v)),
        params.scope.map(|v| ("scope", v)),
    ];
    write_form(out, &fields)
}

/// Writes the form body of the authorization code grant with PKCE (RFC 6749 §4.1.3, RFC 7636
/// §4.5) into `out`: `grant_type=authorization_code`, the `code`, the `redirect_uri` the code was
/// sent to, the `code_verifier`, and the client parameters (`client_id` when the client does not
/// authenticate with a header, `client_secret` for `client_secret_post`; `scope` is not part of
/// this grant and is left out). Returns the number of bytes written. The body holds the code and
/// the verifier: callers SHOULD wipe `out` afterwards.
///
/// # Errors
/// [`BufferTooSmall`] with the size needed; `out` is then left untouched.
///
/// # Examples
///
/// ```
/// use reauth_core::oauth::{RefreshParams, write_authorization_code_body};
///
/// let params = RefreshParams { client_id: Some("cli"), client_secret: None, scope: Some("api") };
/// let mut out = [0u8; 256];
/// let n = write_authorization_code_body(&mut out, "c0de", "http://127.0.0.1:8765/callback", "v3rifier", &params)?;
/// assert_eq!(
///     &out[..n],
///     b"grant_type=authorization_code&code=c0de\
///       &redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&code_verifier=v3rifier&client_id=cli"
/// );
/// # Ok::<(), reauth_core::oauth::BufferTooSmall>(())
/// ```
pub fn write_authorization_code_body(
    out: &mut [u8],
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
    params: &RefreshParams<'_>,
) -> Result<usize, BufferTooSmall> {
    let fields = [
        Some(("grant_type", "authorization_code")),
        Some(("code", code)),
        Some(("redirect_uri", redirect_uri)),
        Some(("code_verifier", code_verifier)),
        params.client_id.map(|v| ("client_id", v)),
        params.client_secret.map(|v| ("client_secret", v)),
    ];
    write_form(out, &fields)
}

/// Form-encodes `fields` into `out` if it has room for all of them: one encoder, run twice, to
/// measure (into nothing), then to write what is known to fit.
///
/// # Errors
/// [`BufferTooSmall`] with the size needed; `out` is then left untouched.
pub(crate) fn write_form(
    out: &mut [u8],
    fields: &[Option<(&str, &str)>],
) -> Result<usize, BufferTooSmall> {
    let needed = encode_form(fields, &mut []);
    let Some(out) = out.get_mut(..needed) else {
        return Err(BufferTooSmall { needed });
    };
    Ok(encode_form(fields, out))
}

/// How a confidential or public client authenticates to the token endpoint (RFC 6749 §2.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// `client_secret_basic`: `Authorization: Basic` with the form-encoded id and secret (see
    /// [`write_basic_authorization`]). The method every server must support (§2.3.1), and the
    /// default when a secret is given.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body. RFC 6749 calls it
    /// NOT RECOMMENDED; some servers refuse it (`invalid_client`).
    Post,
    /// `none`: a public client; `client_id` in the body, no secret.
    None,
}

/// Writes the value of the `Authorization` header for `client_secret_basic` (RFC 6749 §2.3.1)
/// into `out`: `Basic ` and the base64 of the form-encoded client id, `:`, and the form-encoded
/// secret (the RFC form-encodes both before base64, so a `:` in an id survives; a space is
/// written `%20`, which every decoder reads as a space, rather than `+`, which some misread).
/// Returns the number of bytes written. The value holds the secret: callers SHOULD wipe `out`
/// afterwards.
///
/// # Errors
/// [`BufferTooSmall`] with the size needed; `out` is then left untouched.
///
/// # Examples
///
/// ```
/// // The example of RFC 6749 §2.3.1.
/// let mut out = [0u8; 64];
/// let n = reauth_core::oauth::write_basic_authorization(&mut out, "s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw")?;
/// assert_eq!(&out[..n], b"Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3");
/// # Ok::<(), reauth_core::oauth::BufferTooSmall>(())
/// ```
pub fn write_basic_authorization(
    out: &mut [u8],
    client_id: &str,
    client_secret: &str,
) -> Result<usize, BufferTooSmall> {
    let needed = encode_basic(client_id, client_secret, &mut []);
    let Some(out) = out.get_mut(..needed) else {
        return Err(BufferTooSmall { needed });
    };
    Ok(encode_basic(client_id, client_secret, out))
}

/// Writes `Basic base64(form(id) ":" form(secret))` into `out` as far as it has room, and
/// returns the full length.
fn encode_basic(client_id: &str, client_secret: &str, out: &mut [u8]) -> usize {
    const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut len = 0;
    let mut put = |b: u8| {
        if let Some(slot) = out.get_mut(len) {
            *slot = b;
        }
        len += 1;
    };
    b"Basic ".iter().for_each(|&b| put(b));
    // Three input bytes at a time become four base64 digits.
    let (mut group, mut held) = (0u32, 0u8);
    let mut feed = |b: u8| {
        group = group << 8 | u32::from(b);
        held += 1;
        if held == 3 {
            for shift in [18, 12, 6, 0] {
                put(BASE64[(group >> shift & 63) as usize]);
            }
            (group, held) = (0, 0);
        }
    };
    form_encode_once(client_id, &mut feed);
    feed(b':');
    form_encode_once(client_secret, &mut feed);
    // The last one or two bytes, padded with `=`.
    if held > 0 {
        let group = group << (8 * (3 - u32::from(held)));
        let digits = usize::from(held) + 1;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            put(if i < digits { BASE64[(group >> shift & 63) as usize] } else { b'=' });
        }
    }
    len
}

/// Feeds the `application/x-www-form-urlencoded` form of `text` to `put`, byte by byte.
fn form_encode(text: &str, put: &mut impl FnMut(u8)) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        match b {
            _ if is_unreserved(b) => put(b),
            b' ' => put(b'+'),
            _ => {
                put(b'%');
                put(HEX[usize::from(b >> 4)]);
                put(HEX[usize::from(b & 15)]);
            }
        }
    }
}

/// [`form_encode`] for a large `put`: it is called from one place, so it is inlined once rather
/// than once per case (with the base64 feed of `encode_basic` as `put`, once per case cost
/// 400 B more flash on thumbv7em; for the body's plain `put`, this form costs 56 B more).
fn form_encode_once(text: &str, put: &mut impl FnMut(u8)) {
    for b in text.bytes() {
        let (encoded, len) = form_byte(b);
        for &e in encoded.get(..len).unwrap_or_default() {
            put(e);
        }
    }
}

/// The encoding of one byte of a Basic credential: itself, else `%XX`; and its length.
///
/// A space becomes `%20`, not the form encoding's `+`: a form decoder reads both as a space,
/// but some servers decode Basic credentials with percent-decoding alone (Authlib 1.9 uses
/// `unquote`) and would read `+` as a plus, refusing a secret that contains a space.
fn form_byte(b: u8) -> ([u8; 3], usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if is_unreserved(b) {
        ([b, 0, 0], 1)
    } else {
        ([b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]], 3)
    }
}

/// Form-encodes `fields` into `out` as far as it has room, and returns the full length.
pub(crate) fn encode_form(fields: &[Option<(&str, &str)>], out: &mut [u8]) -> usize {
    let mut len = 0;
    let mut put = |b: u8| {
        if let Some(slot) = out.get_mut(len) {
            *slot = b;
        }
        len += 1;
    };
    for (i, (key, value)) in fields.iter().flatten().enumerate() {
        if i > 0 {
            put(b'&');
        }
        key.bytes().for_each(&mut put);
        put(b'=');
        form_encode(value, &mut put);
    }
    len
}

/// A [`TokenResponse`] whose tokens are known to fit a [`TokenSet<A, R>`] and to be usable,
/// from [`TokenResponse::validate`]: reading the new refresh token and applying cannot fail.
/// Still borrowed from the body, still escaped; `Debug` shows no token.
#[derive(Clone, Copy)]
pub struct ValidTokenResponse<'a, const A: usize, const R: usize> {
    response: TokenResponse<'a>,
}

impl<'a> TokenResponse<'a> {
    /// Checks that both tokens decode to visible ASCII and fit a [`TokenSet<A, R>`], without
    /// copying them anywhere.
    ///
    /// # Errors
    /// [`TokenError`] as [`apply`](Self::apply) would give it (the access token's first).
    pub fn validate<const A: usize, const R: usize>(
        self,
    ) -> Result<ValidTokenResponse<'a, A, R>, TokenError> {
        decode(self.access_token, None, A)?;
        if let Some(raw) = self.refresh_token {
            decode(raw, None, R)?;
        }
        Ok(ValidTokenResponse { response: self })
    }
}

impl<const A: usize, const R: usize> ValidTokenResponse<'_, A, R> {
    /// The access token's lifetime from `expires_in`, if the server gave one.
    #[must_use]
    pub const fn expires_in(&self) -> Option<Duration> {
        self.response.expires_in
    }

    /// True if the server rotated the refresh token (sent a new one).
    #[must_use]
    pub const fn has_refresh_token(&self) -> bool {
        self.response.refresh_token.is_some()
    }

    /// Decodes the new refresh token into `out`, to persist it before anything uses the new
    /// generation; `None` if the server did not rotate it. The bytes are a secret: wipe `out`
    /// when done (e.g. with `zeroize`).
    pub fn write_refresh_token<'o>(&self, out: &'o mut [u8; R]) -> Option<&'o str> {
        let raw = self.response.refresh_token?;
        let mut len = 0;
        for unit in Unescape::new(raw) {
            // Validated: every unit is a visible ASCII byte, and there are at most `R`.
            if let (Ok(Ok(byte)), Some(slot)) = (unit.map(u8::try_from), out.get_mut(len)) {
                *slot = byte;
                len += 1;
            }
        }
        core::str::from_utf8(out.get(..len)?).ok()
    }

    /// Decodes the tokens into `tokens` as generation `generation`, straight into its buffers
    /// (each wiped first). A response without a `refresh_token` keeps the old one. Cannot fail:
    /// the response was validated for these capacities.
    pub fn apply(&self, tokens: &mut TokenSet<A, R>, generation: crate::Generation) {
        let (access, refresh, live_generation) = tokens.parts_mut();
        access.clear();
        // Validated, so these cannot fail; a failure would leave the buffer empty, never mixed.
        let _ = decode(self.response.access_token, Some(access.view_mut()), A);
        if let Some(raw) = self.response.refresh_token {
            refresh.clear();
            let _ = decode(raw, Some(refresh.view_mut()), R);
        }
        *live_generation = generation;
    }
}

impl TokenResponse<'_> {
    /// The access token's lifetime from `expires_in`, if the server gave one.
    #[must_use]
    pub const fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// True if the server rotated the refresh token (sent a new one).
    #[must_use]
    pub const fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }

    /// Decodes the tokens into `tokens` as generation `generation`. A response without a
    /// `refresh_token` keeps the old one. All or nothing: [`validate`](Self::validate), then
    /// [`ValidTokenResponse::apply`].
    ///
    /// # Errors
    /// [`TokenError`] if a token does not fit or is not visible ASCII; `tokens` is unchanged then.
    pub fn apply<const A: usize, const R: usize>(
        &self,
        tokens: &mut TokenSet<A, R>,
        generation: crate::Generation,
    ) -> Result<(), TokenError> {
        self.validate::<A, R>()?.apply(tokens, generation);
        Ok(())
    }
}

/// Decodes the raw text of a JSON string into `out` (or, without one, only checks it), with the
/// checks of [`Token::set`](crate::Token::set) against `capacity`: a byte that is not visible
/// ASCII where it is found, then the decoded length. Nothing is written past `capacity`.
///
/// Not generic over the capacity, so that the firmware carries one copy for both tokens.
pub(crate) fn decode(
    raw: &[u8],
    mut out: Option<&mut heapless::string::StringView>,
    capacity: usize,
) -> Result<(), TokenError> {
    let mut len = 0;
    for unit in Unescape::new(raw) {
        let unit = unit.map_err(|_| TokenError::InvalidEscape)?;
        let Ok(byte @ 0x20..=0x7E) = u8::try_from(unit) else {
            return Err(TokenError::InvalidByte { position: len });
        };
        // Past the capacity, keep counting so that `TooLong` gives the whole decoded length.
        if let Some(out) = out.as_deref_mut() {
            let _ = out.push(char::from(byte));
        }
        len += 1;
    }
    crate::token::check(len, capacity, &[])
}

/// Bytes kept as they are by form encoding; space becomes `+`, everything else `%XX`.
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_')
}

impl fmt::Debug for TokenResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &self.refresh_token.map(|_| "<redacted>"))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl<const A: usize, const R: usize> fmt::Debug for ValidTokenResponse<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValidTokenResponse").field(&self.response).finish()
    }
}

impl fmt::Debug for RefreshParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshParams")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .finish()
    }
}

impl fmt::Display for TokenResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "token response is not valid OAuth2 JSON: {e}"),
            Self::UnsupportedTokenType => {
                f.write_str("token response has a token_type other than Bearer")
            }
            Self::InvalidExpiresIn => f.write_str("token response has an invalid expires_in"),
            Self::Token(e) => write!(f, "token response has an unusable token: {e}"),
        }
    }
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refresh request body needs a buffer of {} bytes", self.needed)
    }
}

impl From<TokenError> for TokenResponseError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

impl core::error::Error for TokenResponseError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            Self::Token(e) => Some(e),
            _ => None,
        }
    }
}

impl core::error::Error for BufferTooSmall {}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_authorization_form_encodes_then_base64_encodes() {
        let basic = |id: &str, secret: &str| {
            let mut out = [0u8; 128];
            let n = write_basic_authorization(&mut out, id, secret).unwrap();
            std::string::String::from_utf8(out[..n].to_vec()).unwrap()
        };
        // RFC 6749 §2.3.1's example; the others computed with Python's
        // `urllib.parse.quote(s, safe="-._~")` (a space as `%20`) and base64.
        assert_eq!(
            basic("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw"),
            "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"
        );
        assert_eq!(
            basic("my app:1", "s3cr et/+=&%\u{e9}"),
            "Basic bXklMjBhcHAlM0ExOnMzY3IlMjBldCUyRiUyQiUzRCUyNiUyNSVDMyVBOQ=="
        );
        assert_eq!(basic("a", ""), "Basic YTo=");
        assert_eq!(basic("ab", ""), "Basic YWI6");
        assert_eq!(basic("abc", ""), "Basic YWJjOg==");
        let mut small = [0u8; 10];
        assert_eq!(
            write_basic_authorization(&mut small, "abc", ""),
            Err(BufferTooSmall { needed: 14 })
        );
        assert_eq!(small, [0; 10], "left untouched");
    }

    use super::*;
    use crate::Generation;

    fn apply(body: &[u8]) -> Result<(TokenSet<64, 64>, Option<Duration>), TokenResponseError> {
        let mut set = TokenSet::<64, 64>::new();
        set.install(Generation(1), "old-access", Some("old-refresh")).unwrap();
        let response = parse_token_response(body)?;
        response.apply(&mut set, Generation(2))?;
        Ok((set, response.expires_in()))
    }

    #[test]
    fn standard_response_is_parsed() {
        let (set, expires) = apply(
            br#"{"access_token":"at1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt1","scope":"api"}"#,
        )
        .unwrap();
        assert_eq!((set.access(), set.refresh()), (Some("at1"), Some("rt1")));
        assert_eq!(set.generation(), Generation(2));
        assert_eq!(expires, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn expires_in_may_be_a_numeric_string_or_absent() {
        let (_, e) =
            apply(br#"{"access_token":"a","token_type":"bearer","expires_in":" 60"}"#).unwrap();
        assert_eq!(e, Some(Duration::from_secs(60)));
        let (_, e) = apply(br#"{"access_token":"a","token_type":"BEARER"}"#).unwrap();
        assert_eq!(e, None);
        for bad in [
            &br#"{"access_token":"a","token_type":"Bearer","expires_in":"soon"}"#[..],
            br#"{"access_token":"a","token_type":"Bearer","expires_in":-5}"#,
        ] {
            assert_eq!(apply(bad).err(), Some(TokenResponseError::InvalidExpiresIn));
        }
    }

    #[test]
    fn absent_refresh_token_keeps_the_old_one() {
        let (set, _) = apply(br#"{"access_token":"new","token_type":"Bearer"}"#).unwrap();
        assert_eq!((set.access(), set.refresh()), (Some("new"), Some("old-refresh")));
    }

    #[test]
    fn unknown_fields_are_ignored_and_escapes_decoded() {
        let (set, _) = apply(
            br#"{"id_token":{"nested":[1,2,{"x":"y"}]},"access_token":"a\/b\u0041","extra":true,"token_type":"Bearer","refresh_token":"r\"q"}"#,
        )
        .unwrap();
        assert_eq!((set.access(), set.refresh()), (Some("a/bA"), Some("r\"q")));
    }

    #[test]
    fn malformed_and_oversized_responses_are_typed_errors_and_change_nothing() {
        assert!(matches!(apply(br#"{"access_token": "abc", "#), Err(TokenResponseError::Json(_))));
        assert!(matches!(apply(br#"{"token_type":"Bearer"}"#), Err(TokenResponseError::Json(_))));
        assert!(matches!(apply(b""), Err(TokenResponseError::Json(_))));
        assert_eq!(
            apply(br#"{"access_token":"a","token_type":"mac"}"#).err(),
            Some(TokenResponseError::UnsupportedTokenType)
        );
        let mut big = std::vec::Vec::new();
        big.extend_from_slice(br#"{"access_token":""#);
        big.extend(core::iter::repeat_n(b'x', 65));
        big.extend_from_slice(br#"","token_type":"Bearer","refresh_token":"fresh"}"#);
        let mut set = TokenSet::<64, 64>::new();
        set.install(Generation(1), "old-access", Some("old-refresh")).unwrap();
        let err = parse_token_response(&big).unwrap().apply(&mut set, Generation(2));
        assert_eq!(err, Err(TokenError::TooLong { len: 65, capacity: 64 }));
        assert_eq!((set.access(), set.refresh()), (Some("old-access"), Some("old-refresh")));
        assert_eq!(set.generation(), Generation(1));
    }

    #[test]
    fn validated_response_lends_the_new_refresh_token_before_anything_is_installed() {
        let body = br#"{"access_token":"new-\u0061ccess","token_type":"Bearer",
                        "expires_in":60,"refresh_token":"new-r\u0065fresh"}"#;
        let mut set = TokenSet::<32, 16>::new();
        set.install(Generation(1), "old-access", Some("old-refresh")).unwrap();
        let valid = parse_token_response(body).unwrap().validate::<32, 16>().unwrap();
        assert_eq!(valid.expires_in(), Some(Duration::from_secs(60)));
        assert!(valid.has_refresh_token());
        // Persist first: the set still holds the old generation meanwhile.
        let mut page = [0u8; 16];
        assert_eq!(valid.write_refresh_token(&mut page), Some("new-refresh"));
        assert_eq!((set.access(), set.refresh()), (Some("old-access"), Some("old-refresh")));
        // Then install, which cannot fail.
        valid.apply(&mut set, Generation(2));
        assert_eq!((set.access(), set.refresh()), (Some("new-access"), Some("new-refresh")));
        assert_eq!(set.generation(), Generation(2));
        // Without rotation there is nothing to persist, and the old refresh token stays.
        let body = br#"{"access_token":"third","token_type":"Bearer"}"#;
        let valid = parse_token_response(body).unwrap().validate::<32, 16>().unwrap();
        assert_eq!(valid.write_refresh_token(&mut page), None);
        valid.apply(&mut set, Generation(3));
        assert_eq!((set.access(), set.refresh()), (Some("third"), Some("new-refresh")));
        // A refresh token exactly as long as its buffer fits; one byte more does not validate.
        let exact =
            br#"{"access_token":"a","token_type":"Bearer","refresh_token":"0123456789abcdef"}"#;
        let valid = parse_token_response(exact).unwrap().validate::<32, 16>().unwrap();
        assert_eq!(valid.write_refresh_token(&mut page), Some("0123456789abcdef"));
        let over =
            br#"{"access_token":"a","token_type":"Bearer","refresh_token":"0123456789abcdef0"}"#;
        let err = parse_token_response(over).unwrap().validate::<32, 16>().err();
        assert_eq!(err, Some(TokenError::TooLong { len: 17, capacity: 16 }));
        let err = parse_token_response(exact).unwrap().validate::<0, 16>().err();
        assert_eq!(err, Some(TokenError::TooLong { len: 1, capacity: 0 }));
        // Debug shows no token.
        let debug = std::format!("{valid:?}");
        assert!(!debug.contains("0123") && debug.contains("redacted"), "{debug}");
    }

    /// Issue 14 item 5: the order of operations of `handle_refresh_success`'s docs keeps the
    /// coordinator and the token buffers in agreement, also when an answer cannot be applied.
    #[test]
    fn an_answer_that_does_not_fit_leaves_coordinator_and_tokens_agreeing() {
        use crate::{Action, Admission, Config, Coordinator, Instant, RefreshFailure, RequestId};
        let mut auth = Coordinator::<4>::new(Config::DEFAULT);
        let mut set = TokenSet::<16, 16>::new();
        let generation = auth.handle_login(Instant::ZERO, Some(Duration::from_secs(60)));
        set.install(generation, "access-1", Some("refresh-1")).unwrap();
        let now = Instant::from_millis(60_000);
        assert_eq!(auth.handle_request(now, RequestId(1)), Ok(Admission::Parked));
        let Some(Action::Refresh(id)) = auth.poll_action() else { panic!() };
        let too_long = br#"{"access_token":"an-access-token-of-31-bytes-xyz","token_type":"Bearer",
                            "refresh_token":"refresh-2"}"#;
        assert!(auth.is_live_refresh(id));
        let valid = parse_token_response(too_long).unwrap().validate::<16, 16>();
        assert_eq!(valid.err(), Some(TokenError::TooLong { len: 31, capacity: 16 }));
        // Reported as lost (the server rotated; the answer is unusable): nothing moved.
        auth.handle_refresh_failure(now, id, RefreshFailure::Lost).unwrap();
        assert_eq!(auth.generation(), set.generation());
        assert_eq!((set.access(), set.refresh()), (Some("access-1"), Some("refresh-1")));
        // The retry's answer fits: persist, then success, then install under that generation.
        auth.handle_timeout(Instant::from_millis(61_000));
        let Some(Action::Refresh(retry)) = auth.poll_action() else { panic!() };
        let fits =
            br#"{"access_token":"access-2","token_type":"Bearer","refresh_token":"refresh-2"}"#;
        let valid = parse_token_response(fits).unwrap().validate::<16, 16>().unwrap();
        let mut flash = [0u8; 16];
        assert_eq!(valid.write_refresh_token(&mut flash), Some("refresh-2"));
        let generation = auth.handle_refresh_success(Instant::from_millis(61_010), retry, None);
        valid.apply(&mut set, generation.unwrap());
        assert_eq!(auth.generation(), set.generation());
        let Some(Action::Send(ticket)) = auth.poll_action() else { panic!() };
        assert_eq!(ticket.generation, set.generation());
        assert_eq!(set.access(), Some("access-2"));
    }

    #[test]
    fn error_descriptions_are_bounded_and_sanitised() {
        let describe = |body: &[u8]| {
            let mut out = [0u8; 16];
            let len = write_error_description(body, "a-refresh-token", &mut out);
            let text = core::str::from_utf8(&out[..len]).unwrap();
            (len > 0).then(|| std::string::String::from(text))
        };
        assert_eq!(
            describe(br#"{"error":"invalid_grant","error_description":"expired"}"#),
            Some("expired".into())
        );
        assert_eq!(describe(br#"{"error":"invalid_grant"}"#), None);
        assert_eq!(describe(br#"{"error_description":""}"#), None);
        assert_eq!(describe(br#"{"error_description":42}"#), None);
        assert_eq!(describe(b"not json"), None);
        // Control characters, quotes, backslashes and non-ASCII text become `?`.
        assert_eq!(
            describe("{\"error_description\":\"a\\u0000b\\\"c\\\\d\\t\u{e9}\"}".as_bytes()),
            Some("a?b?c?d???".into())
        );
        // Cut at the buffer's size.
        assert_eq!(
            describe(br#"{"error_description":"0123456789abcdefghij"}"#),
            Some("0123456789abcdef".into())
        );
    }

    #[test]
    fn error_descriptions_that_quote_the_refresh_token_are_withheld() {
        let describe = |body: &str, token: &str| {
            let mut out = [0u8; 64];
            let len = write_error_description(body.as_bytes(), token, &mut out);
            std::string::String::from(core::str::from_utf8(&out[..len]).unwrap())
        };
        let body = |text: &str| {
            std::format!(r#"{{"error":"invalid_grant","error_description":"{text}"}}"#)
        };
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZXZpY2UifQ.c2lnbmF0dXJl";
        // The whole token or its first 12 bytes, anywhere in what is kept.
        for quoted in [token, &token[..12], &token[..30]] {
            let text = std::format!("Invalid refresh token: {quoted}");
            assert_eq!(describe(&body(&text), token), DESCRIPTION_WITHHELD, "{quoted}");
        }
        // A piece from the middle is no quote of the token (servers quote tokens whole).
        let piece = std::format!("token part {}", &token[30..42]);
        assert_eq!(describe(&body(&piece), token), piece);
        // What is kept is judged: 12 bytes of the token before the 64-byte cut are a quote,
        // 11 are not (the rest of the token never leaves the body).
        let late = std::format!("{} {token}", "x".repeat(51));
        assert_eq!(describe(&body(&late), token), DESCRIPTION_WITHHELD);
        let later = std::format!("{} {token}", "x".repeat(52));
        assert_eq!(
            describe(&body(&later), token),
            std::format!("{} {}", "x".repeat(52), &token[..11])
        );
        // 11 bytes are not a quote; a short token is quoted whole or not at all.
        let near = std::format!("Invalid refresh token: {}", &token[..11]);
        assert_eq!(describe(&body(&near), token), near);
        assert_eq!(describe(&body("token abcd revoked"), "abcd"), DESCRIPTION_WITHHELD);
        assert_eq!(describe(&body("token abc revoked"), "abcd"), "token abc revoked");
        // An empty token quotes nothing; the withheld text is cut to the buffer like any other.
        assert_eq!(describe(&body("expired"), ""), "expired");
        let mut small = [0u8; 9];
        let len = write_error_description(body("abcd revoked").as_bytes(), "abcd", &mut small);
        assert_eq!(&small[..len], &DESCRIPTION_WITHHELD.as_bytes()[..9]);
    }

    #[test]
    fn json_errors_are_typed() {
        let json = |body: &[u8]| match parse_token_response(body) {
            Err(TokenResponseError::Json(e)) => Some(e),
            _ => None,
        };
        assert_eq!(json(br#"{"access_token":"a"}"#), Some(JsonError::MissingField));
        assert_eq!(
            json(br#"{"access_token":1,"token_type":"Bearer"}"#),
            Some(JsonError::WrongType)
        );
        assert_eq!(
            json(br#"{"access_token":null,"token_type":"Bearer"}"#),
            Some(JsonError::WrongType)
        );
        assert_eq!(
            json(br#"{"access_token":"a","token_type":"Bearer","refresh_token":["r"]}"#),
            Some(JsonError::WrongType)
        );
        assert_eq!(
            json(br#"{"access_token":"a","token_type":"Bearer","expires_in":true}"#),
            Some(JsonError::WrongType)
        );
        assert_eq!(
            json(br#"{"access_token":"a","access_token":"b","token_type":"Bearer"}"#),
            Some(JsonError::DuplicateField)
        );
        assert_eq!(
            json(br#"{"access_token":"a","token_type":"Bearer","refresh_token":null,"refresh_token":"r"}"#),
            Some(JsonError::DuplicateField)
        );
        assert_eq!(
            json(br#"{"access_token":"a","token_type":"Bearer"} x"#),
            Some(JsonError::Syntax)
        );
        assert_eq!(
            json(br#"{"access_token":"a","token_type":"Bearer","x":tru}"#),
            Some(JsonError::Syntax)
        );
        assert_eq!(
            json(br#"{"access_token":"a\q","token_type":"Bearer"}"#),
            Some(JsonError::Syntax)
        );
        assert_eq!(json(b"[]"), Some(JsonError::NotAnObject));
        // A malformed document is a JSON error even where a field is also bad.
        assert_eq!(
            json(br#"{"expires_in":-1,"access_token":"a","token_type":"mac","#),
            Some(JsonError::Syntax)
        );
        let shown = std::format!("{}", TokenResponseError::Json(JsonError::DuplicateField));
        assert!(shown.contains("not valid OAuth2 JSON"), "{shown}");
    }

    #[test]
    fn expires_in_edge_cases() {
        let expires = |value: &str| {
            let body = std::format!(
                r#"{{"access_token":"a","token_type":"Bearer","expires_in":{value}}}"#
            );
            parse_token_response(body.as_bytes()).map(|r| r.expires_in())
        };
        assert_eq!(expires("0"), Ok(Some(Duration::from_secs(0))));
        assert_eq!(expires("null"), Ok(None));
        assert_eq!(expires(r#""+60""#), Ok(Some(Duration::from_secs(60))));
        assert_eq!(expires(r#"" 007 ""#), Ok(Some(Duration::from_secs(7))));
        assert_eq!(expires("18446744073709551615"), Ok(Some(Duration::from_secs(u64::MAX))));
        for bad in [
            "18446744073709551616",
            r#""18446744073709551616""#,
            "-0",
            "1.5",
            "1e3",
            r#""""#,
            r#""+""#,
            r#""-1""#,
            r#""\u0036""#,
            r#""6 0""#,
        ] {
            assert_eq!(expires(bad), Err(TokenResponseError::InvalidExpiresIn), "{bad}");
        }
        // An invalid expires_in is reported before an unsupported token type, as before.
        assert_eq!(
            apply(br#"{"access_token":"a","token_type":"mac","expires_in":"soon"}"#).err(),
            Some(TokenResponseError::InvalidExpiresIn)
        );
    }

    #[test]
    fn token_escapes_and_bytes() {
        let tokens = |access: &str| {
            let body = std::format!(
                r#"{{"access_token":"{access}","token_type":"Bearer","refresh_token":null}}"#
            );
            apply(body.as_bytes()).map(|(set, _)| std::string::String::from(set.access().unwrap()))
        };
        assert_eq!(tokens(r"\u0041\u007e\u0020x"), Ok("A~ x".into()));
        let invalid =
            |position| Err(TokenResponseError::Token(TokenError::InvalidByte { position }));
        assert_eq!(tokens(r"ab\n"), invalid(2));
        assert_eq!(tokens(r"a\u007f"), invalid(1));
        assert_eq!(tokens(r"a\uD834\uDD1E"), invalid(1));
        assert_eq!(tokens("aé"), invalid(1));
        assert_eq!(tokens(""), Err(TokenResponseError::Token(TokenError::Empty)));
        let long = std::format!("{}\\u0041", "x".repeat(64));
        assert_eq!(
            tokens(&long),
            Err(TokenResponseError::Token(TokenError::TooLong { len: 65, capacity: 64 }))
        );
        // A bad byte is reported before the length, as `Token::set` would.
        let long_bad = std::format!("{}\\n", "x".repeat(70));
        assert_eq!(tokens(&long_bad), invalid(70));
        // `null` refresh token: the old one stays.
        let (set, _) =
            apply(br#"{"access_token":"n","token_type":"Bearer","refresh_token":null}"#).unwrap();
        assert_eq!(set.refresh(), Some("old-refresh"));
    }

    #[test]
    fn token_type_is_compared_raw_and_without_case() {
        for ok in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let body = std::format!(r#"{{"access_token":"a","token_type":"{ok}"}}"#);
            assert!(parse_token_response(body.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [r"B\u0065arer", "Bearer ", "", "Bear"] {
            let body = std::format!(r#"{{"access_token":"a","token_type":"{bad}"}}"#);
            assert_eq!(
                parse_token_response(body.as_bytes()).err(),
                Some(TokenResponseError::UnsupportedTokenType),
                "{bad}"
            );
        }
    }

    #[test]
    fn refusals_and_transient_failures_are_told_apart() {
        let refused = RefreshFailure::Refused;
        let transient = RefreshFailure::Transient { retry_after: None };
        assert_eq!(classify_failure(400, br#"{"error":"invalid_grant"}"#, None), refused);
        assert_eq!(classify_failure(401, br#"{"error":"invalid_client"}"#, None), refused);
        assert_eq!(classify_failure(400, br#"{"error":"unauthorized_client"}"#, None), refused);
        assert_eq!(classify_failure(400, br#"{"error":"unsupported_grant_type"}"#, None), refused);
        assert_eq!(classify_failure(400, b"<html>bad</html>", None), refused);
        assert_eq!(
            classify_failure(400, br#"{"error":"temporarily_unavailable"}"#, None),
            transient
        );
        for status in [408, 429, 500, 502, 503, 504, 403, 404] {
            assert_eq!(classify_failure(status, br#"{"error":"invalid_grant"}"#, None), transient);
        }
        let hint = Some(Duration::from_secs(7));
        assert_eq!(
            classify_failure(429, b"", hint),
            RefreshFailure::Transient { retry_after: hint }
        );
    }

    #[test]
    fn error_codes_are_parsed() {
        assert_eq!(
            parse_error_response(br#"{"error_description":"x","error":"invalid_scope"}"#),
            Some(ErrorCode::InvalidScope)
        );
        assert_eq!(parse_error_response(br#"{"error":"slow_down"}"#), Some(ErrorCode::Other));
        assert_eq!(parse_error_response(b"nope"), None);
        for not_one in [
            &br#"{"error":"invalid_grant","error":"invalid_grant"}"#[..],
            br#"{"error":null}"#,
            br#"{"error":400}"#,
            br#"{"error_description":"x"}"#,
            br#"{"error":"invalid_grant"} trailing"#,
            b"{\"error\":\"\xff\"}",
        ] {
            assert_eq!(parse_error_response(not_one), None, "{not_one:?}");
        }
        assert_eq!(
            parse_error_response(br#"{"error":"invalid_gr\u0061nt"}"#),
            Some(ErrorCode::Other)
        );
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after(b" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after(b"\xff"), None);
    }

    #[test]
    fn refresh_body_is_form_encoded() {
        let mut out = [0u8; 128];
        let params = RefreshParams {
            client_id: Some("my app"),
            client_secret: Some("s&e=c+r/t"),
            scope: Some("read write"),
        };
        let n = write_refresh_body(&mut out, "r t&=1~", &params).unwrap();
        assert_eq!(
            core::str::from_utf8(&out[..n]).unwrap(),
            "grant_type=refresh_token&refresh_token=r+t%26%3D1%7E&client_id=my+app\
             &client_secret=s%26e%3Dc%2Br%2Ft&scope=read+write"
        );
        let n = write_refresh_body(&mut out, "rt", &RefreshParams::default()).unwrap();
        assert_eq!(&out[..n], b"grant_type=refresh_token&refresh_token=rt");
        let mut small = [0u8; 10];
        assert_eq!(
            write_refresh_body(&mut small, "rt", &RefreshParams::default()),
            Err(BufferTooSmall { needed: 41 })
        );
        assert_eq!(small, [0u8; 10]);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let r = parse_token_response(
            br#"{"access_token":"SENTINEL","token_type":"Bearer","refresh_token":"SENTINEL"}"#,
        )
        .unwrap();
        let p = RefreshParams { client_secret: Some("SENTINEL"), ..RefreshParams::default() };
        let shown = std::format!("{r:?} {p:?}");
        assert!(!shown.contains("SENTINEL"), "{shown}");
    }
}
