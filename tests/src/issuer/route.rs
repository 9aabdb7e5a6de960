//! Request routing: turns a parsed [`Request`] into a [`Reply`] (a response, or a misbehaviour
//! for an injected fault) and does the counting. Runs under the state lock and never blocks; the
//! latency and the fault's timing are carried out by the connection thread afterwards.

use core::time::Duration;
use std::time::Instant;

use reauth_core::oauth::ClientAuth;

use super::assertion;
use super::authorize::CodeAnswer;
use super::codec::{base64_decode, form_field, json_string, json_string_field, parse_form};
use super::device::PollAnswer;
use super::http::{Request, Response, Shared};
use super::state::{AccessCheck, GrantOutcome, State};
use super::{ExpiryStyle, Fault, IssuedTokens};

/// Largest body `/api/big` agrees to produce, in bytes.
const MAX_BIG_BODY: usize = 64 * 1024 * 1024;

/// What the connection thread does with a request.
pub(super) struct Reply {
    /// Wait this long first (latency and jitter).
    pub(super) delay: Duration,
    /// Then do this.
    pub(super) action: Action,
}

/// The ways to answer.
pub(super) enum Action {
    /// Write the response.
    Send(Response),
    /// Write the response one byte at a time, pausing after each byte.
    Trickle(Response, Duration),
    /// Send nothing for this long, then close.
    Hang(Duration),
    /// Close without answering.
    Close,
    /// Write the head and half the body, then close.
    ResetMidBody(Response),
}

impl Reply {
    /// Send `response` without delay.
    fn now(response: Response) -> Self {
        Self { delay: Duration::ZERO, action: Action::Send(response) }
    }
}

/// Which refresh endpoint a request came to: they share the grant, not the wire format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `POST /oauth/token`, RFC 6749 form in, JSON out.
    OAuth,
    /// `POST /auth/refresh`, `{"refreshToken"}` in, `{"token","refreshToken","ttl"}` out.
    Classic,
}

/// Routes one request.
pub(super) fn handle(shared: &Shared, request: &Request) -> Reply {
    let mut state = shared.lock();
    state.counters_mut().requests_total += 1;
    if request.method == "HEAD" {
        // A HEAD answer has no body; refusing it without one keeps the connection's framing.
        let mut response = method_not_allowed("GET, POST, PUT, PATCH, DELETE");
        response.body.clear();
        response.content_type = None;
        return Reply::now(response);
    }
    let path = request.path();
    match path {
        "/oauth/token" => token_endpoint(&mut state, request, Endpoint::OAuth),
        "/oauth/device_authorization" => device_authorization(&mut state, request),
        "/oauth/authorize" => Reply::now(super::authorize::endpoint(&mut state, request)),
        "/auth/refresh" => token_endpoint(&mut state, request, Endpoint::Classic),
        "/echo-auth" => echo_auth(&mut state, request),
        _ if path.contains("/.well-known/") => discovery(&state, request),
        _ if path == "/api" || path.starts_with("/api/") => api(&mut state, request),
        _ => Reply::now(Response::json(404, r#"{"error":"not_found"}"#)),
    }
}

/// `POST /oauth/token` and `POST /auth/refresh`: counting, faults, then the grant.
fn token_endpoint(state: &mut State, request: &Request, endpoint: Endpoint) -> Reply {
    if request.method != "POST" {
        return Reply::now(method_not_allowed("POST"));
    }
    let saw_access_token =
        state.contains_access_token(&request.head) || state.contains_access_token(&request.body);
    let counters = state.counters_mut();
    counters.refresh_calls += 1;
    if saw_access_token {
        counters.access_token_seen_on_token_endpoint += 1;
    }
    let delay = state.next_delay();
    let now = Instant::now();
    let action = match state.take_fault() {
        None => Action::Send(grant(state, request, endpoint, now, 0)),
        Some(Fault::Trickle { byte_delay, .. }) => {
            Action::Trickle(grant(state, request, endpoint, now, 0), byte_delay)
        }
        Some(Fault::OversizedToken { len, .. }) => {
            Action::Send(grant(state, request, endpoint, now, len))
        }
        Some(fault) => fault_action(&fault, endpoint, state.config.token_lifetime),
    };
    Reply { delay, action }
}

/// The answer of a fault served in place of the grant.
fn fault_action(fault: &Fault, endpoint: Endpoint, lifetime: Duration) -> Action {
    let oauth = endpoint == Endpoint::OAuth;
    let response = match *fault {
        Fault::ServiceUnavailable { .. } => Response::json(
            503,
            if oauth { r#"{"error":"temporarily_unavailable"}"# } else { r#"{"code":503}"# },
        ),
        Fault::TooManyRequests { retry_after_secs, .. } => {
            Response::json(429, if oauth { r#"{"error":"slow_down"}"# } else { r#"{"code":429}"# })
                .header("Retry-After", retry_after_secs.to_string())
        }
        Fault::MalformedJson { .. } => Response::json(
            200,
            if oauth { r#"{"access_token": "abc", "# } else { r#"{"token": "abc", "# },
        ),
        Fault::InvalidGrant { .. } if oauth => Response::json(
            400,
            r#"{"error":"invalid_grant","error_description":"refused by an injected fault"}"#,
        ),
        Fault::InvalidClient { .. } if oauth => {
            Response::json(401, r#"{"error":"invalid_client"}"#)
                .header("WWW-Authenticate", r#"Basic realm="reauth-mock""#)
        }
        Fault::InvalidGrant { .. } | Fault::InvalidClient { .. } => {
            Response::json(401, r#"{"code":401}"#)
        }
        Fault::ResetMidBody { .. } => {
            let fake = IssuedTokens {
                access_token: "at.0.0000000000000000".into(),
                refresh_token: "rt.0.0000000000000000".into(),
                expires_in: lifetime,
                generation: 0,
            };
            return Action::ResetMidBody(success(&fake, endpoint));
        }
        Fault::Hang { duration, .. } => return Action::Hang(duration),
        Fault::CloseBeforeAnswer { .. } => return Action::Close,
        // Served by the grant itself (see `token_endpoint`); here only for exhaustiveness.
        Fault::Trickle { .. } | Fault::OversizedToken { .. } => {
            Response::json(500, r#"{"error":"server_error"}"#)
        }
    };
    Action::Send(response)
}

/// Runs the refresh grant in the endpoint's wire format.
fn grant(
    state: &mut State,
    request: &Request,
    endpoint: Endpoint,
    now: Instant,
    pad_to: usize,
) -> Response {
    if endpoint == Endpoint::OAuth {
        match form_field(&parse_form(&request.body), "grant_type") {
            Ok(Some(reauth_core::device::GRANT_TYPE)) => return device_grant(state, request, now),
            Ok(Some("authorization_code")) => return code_grant(state, request, now),
            _ => {}
        }
    }
    let presented = match endpoint {
        Endpoint::OAuth => match oauth_refresh_token(state, request) {
            Ok(token) => token,
            Err(response) => return response,
        },
        Endpoint::Classic => match json_string_field(&request.body, "refreshToken") {
            Ok(Some(token)) => token,
            Ok(None) => return classic_error(400, "missing refreshToken"),
            Err(()) => return classic_error(400, "malformed JSON"),
        },
    };
    let refused = match state.refresh(&presented, now, pad_to) {
        GrantOutcome::Issued(tokens) => return success(&tokens, endpoint),
        GrantOutcome::Reused => "refresh token reused",
        GrantOutcome::Revoked => "refresh token revoked",
        GrantOutcome::Unknown => "unknown refresh token",
    };
    let quoted;
    let refused = if state.config.quote_refused_token {
        quoted = format!("Invalid refresh token: {presented}");
        quoted.as_str()
    } else {
        refused
    };
    match endpoint {
        Endpoint::OAuth => oauth_error(400, "invalid_grant", refused),
        Endpoint::Classic => classic_error(401, refused),
    }
}

/// `POST /oauth/device_authorization` (RFC 8628 §3.1, §3.2): the client is checked as on the
/// token endpoint; `scope` is accepted and ignored.
fn device_authorization(state: &mut State, request: &Request) -> Reply {
    if request.method != "POST" {
        return Reply::now(method_not_allowed("POST"));
    }
    let form = parse_form(&request.body);
    if let Err(response) = check_client(state, request, &form) {
        return Reply::now(response);
    }
    let delay = state.next_delay();
    let auth = state.authorize_device(Instant::now());
    let host = request.header("host").and_then(|h| core::str::from_utf8(h).ok());
    let uri = format!("http://{}/device", host.unwrap_or("127.0.0.1"));
    let seconds = |span: Duration| span.as_secs() + u64::from(span.subsec_nanos() > 0);
    let body = format!(
        concat!(
            r#"{{"device_code":{},"user_code":{},"verification_uri":{},"#,
            r#""verification_uri_complete":{},"expires_in":{},"interval":{}}}"#
        ),
        json_string(&auth.device_code),
        json_string(&auth.user_code),
        json_string(&uri),
        json_string(&format!("{uri}?user_code={}", auth.user_code)),
        seconds(auth.expires_in),
        seconds(auth.interval),
    );
    let response = Response::json(200, body).header("Cache-Control", "no-store");
    Reply { delay, action: Action::Send(response) }
}

/// The device-code grant on `/oauth/token` (RFC 8628 §3.4, §3.5).
fn device_grant(state: &mut State, request: &Request, now: Instant) -> Response {
    let form = parse_form(&request.body);
    if let Err(response) = check_client(state, request, &form) {
        return response;
    }
    let device_code = match form_field(&form, "device_code") {
        Ok(Some(code)) => code.to_owned(),
        Ok(None) => return oauth_error(400, "invalid_request", "missing device_code"),
        Err(()) => return oauth_error(400, "invalid_request", "repeated parameter"),
    };
    match state.poll_device(&device_code, now) {
        PollAnswer::Issued(tokens) => success(&tokens, Endpoint::OAuth),
        PollAnswer::Error(code) => oauth_error(400, code, "device authorization grant"),
    }
}

/// The authorization code grant on `/oauth/token` (RFC 6749 §4.1.3, RFC 7636 §4.5).
fn code_grant(state: &mut State, request: &Request, now: Instant) -> Response {
    let form = parse_form(&request.body);
    if let Err(response) = check_client(state, request, &form) {
        return response;
    }
    let client_id = presented_client_id(request, &form);
    match state.redeem_code(&form, client_id.as_deref(), now) {
        CodeAnswer::Issued(tokens) => success(&tokens, Endpoint::OAuth),
        CodeAnswer::Error(code, description) => oauth_error(400, code, description),
    }
}

/// Checks client and grant type of an OAuth form and extracts the refresh token, or gives the
/// error answer.
fn oauth_refresh_token(state: &State, request: &Request) -> Result<String, Response> {
    let form = parse_form(&request.body);
    check_client(state, request, &form)?;
    let field = |name| {
        form_field(&form, name)
            .map_err(|()| oauth_error(400, "invalid_request", "repeated parameter"))?
            .ok_or_else(|| oauth_error(400, "invalid_request", "missing parameter"))
    };
    if field("grant_type")? != "refresh_token" {
        return Err(oauth_error(400, "unsupported_grant_type", "only refresh_token is supported"));
    }
    field("refresh_token").map(str::to_owned)
}

/// Checks the client id and secret of a token or device authorization request against the
/// configuration, or gives the `invalid_client` answer.
fn check_client(
    state: &State,
    request: &Request,
    form: &[(String, String)],
) -> Result<(), Response> {
    if let Some(public_pem) = &state.config.client_assertion_key {
        return check_assertion(state, request, form, public_pem);
    }
    let basic = basic_credentials(request);
    let unknown = || {
        oauth_error(401, "invalid_client", "unknown client")
            .header("WWW-Authenticate", r#"Basic realm="reauth-mock""#)
    };
    if let Some(expected) = &state.config.client_id
        && presented_client_id(request, form).as_deref() != Some(expected.as_str())
    {
        return Err(unknown());
    }
    if let Some(secret) = &state.config.client_secret {
        // Like Authlib: the registered method only, the other one refused with its name.
        let body_secret = form_field(form, "client_secret").ok().flatten();
        let authenticated = match state.config.client_auth {
            ClientAuth::Basic => {
                body_secret.is_none() && basic.as_ref().is_some_and(|(_, s)| s == secret)
            }
            ClientAuth::Post => basic.is_none() && body_secret == Some(secret.as_str()),
            ClientAuth::None => true,
        };
        if !authenticated {
            let method = client_auth_name(state.config.client_auth);
            return Err(oauth_error(
                401,
                "invalid_client",
                &format!("The client cannot authenticate with methods: ['{method}']"),
            )
            .header("WWW-Authenticate", r#"Basic realm="reauth-mock""#));
        }
    }
    Ok(())
}

/// The client id a token request presents: the form's `client_id`, else the user of its Basic
/// credentials.
fn presented_client_id(request: &Request, form: &[(String, String)]) -> Option<String> {
    let from_form = form_field(form, "client_id").ok().flatten().map(str::to_owned);
    from_form.or_else(|| basic_credentials(request).map(|(user, _)| user))
}

/// A client authentication method's name (RFC 8414's `token_endpoint_auth_methods_supported`).
const fn client_auth_name(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::Basic => "client_secret_basic",
        ClientAuth::Post => "client_secret_post",
        ClientAuth::None => "none",
    }
}

/// `private_key_jwt`: the request must carry a client assertion the registered key verifies.
fn check_assertion(
    state: &State,
    request: &Request,
    form: &[(String, String)],
    public_pem: &str,
) -> Result<(), Response> {
    let refuse = |why: &str| oauth_error(401, "invalid_client", &format!("private_key_jwt: {why}"));
    let field = |name| form_field(form, name).ok().flatten();
    if field("client_assertion_type") != Some(assertion::ASSERTION_TYPE) {
        return Err(refuse("no client_assertion_type of jwt-bearer"));
    }
    let assertion = field("client_assertion").ok_or_else(|| refuse("no client_assertion"))?;
    if field("client_secret").is_some() || basic_credentials(request).is_some() {
        return Err(refuse("a secret besides the assertion"));
    }
    let audience = format!("{}/oauth/token", base_url(request));
    let client_id = state.config.client_id.as_deref();
    if let (Some(expected), Some(given)) = (client_id, field("client_id"))
        && expected != given
    {
        return Err(refuse("client_id differs from the assertion's"));
    }
    assertion::check(assertion, public_pem, client_id, &audience, &state.assertions)
        .map_err(|why| refuse(&why))
}

/// The user and password of `Authorization: Basic` credentials, each form-decoded (RFC 6749
/// §2.3.1 form-encodes both before base64).
fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = core::str::from_utf8(request.header("authorization")?).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
    let decode = |text: &str| super::codec::percent_decode(text.replace('+', " ").as_bytes());
    Some((decode(user), decode(password)))
}

/// The 200 answer carrying new tokens.
fn success(tokens: &IssuedTokens, endpoint: Endpoint) -> Response {
    let lifetime = tokens.expires_in;
    // Whole seconds, rounded up: a sub-second lifetime must not read as "already expired".
    let seconds = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
    let (access, refresh) = (json_string(&tokens.access_token), json_string(&tokens.refresh_token));
    let body = match endpoint {
        Endpoint::OAuth => format!(
            concat!(
                r#"{{"access_token":{},"token_type":"Bearer","expires_in":{},"#,
                r#""refresh_token":{},"scope":"api"}}"#
            ),
            access, seconds, refresh
        ),
        Endpoint::Classic => {
            format!(r#"{{"token":{access},"refreshToken":{refresh},"ttl":{seconds}}}"#)
        }
    };
    Response::json(200, body).header("Cache-Control", "no-store").header("Pragma", "no-cache")
}

/// An RFC 6749 §5.2 error answer.
fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(
        status,
        format!(
            r#"{{"error":{},"error_description":{}}}"#,
            json_string(error),
            json_string(description)
        ),
    )
    .header("Cache-Control", "no-store")
}

/// An error answer of the classic endpoint.
fn classic_error(code: u16, message: &str) -> Response {
    Response::json(code, format!(r#"{{"code":{code},"message":{}}}"#, json_string(message)))
}

/// 405 with the allowed methods.
fn method_not_allowed(allowed: &str) -> Response {
    Response::json(405, r#"{"error":"method_not_allowed"}"#).header("Allow", allowed.to_owned())
}

/// `/echo-auth`: reports the `Authorization` header it got.
fn echo_auth(state: &mut State, request: &Request) -> Reply {
    let authorization = request.header("authorization");
    if authorization.is_some() {
        state.counters_mut().foreign_authorization_seen += 1;
    }
    let value = authorization
        .map_or_else(|| "null".to_owned(), |v| json_string(&String::from_utf8_lossy(v)));
    Reply::now(Response::json(200, format!(r#"{{"authorization":{value}}}"#)))
}

/// The protected `/api/...` resources (and the unprotected `/api/redirect`).
fn api(state: &mut State, request: &Request) -> Reply {
    let method = request.method.as_str();
    if !matches!(method, "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        return Reply::now(method_not_allowed("GET, POST, PUT, PATCH, DELETE"));
    }
    if state.contains_refresh_token(&request.head) || state.contains_refresh_token(&request.body) {
        state.counters_mut().refresh_token_seen_on_api += 1;
    }
    let delay = state.next_delay();
    let mut response = api_response(state, request);
    response.chunked = state.config.chunked_api;
    Reply { delay, action: Action::Send(response) }
}

/// The answer of an `/api` request, before the chunked knob applies.
fn api_response(state: &mut State, request: &Request) -> Response {
    let path = request.path();
    let query = parse_form(request.query().as_bytes());
    if path == "/api/redirect" {
        return match form_field(&query, "to") {
            // A CR or LF would let the query inject headers.
            Ok(Some(to)) if !to.is_empty() && !to.chars().any(char::is_control) => {
                let mut response =
                    Response::json(302, String::new()).header("Location", to.to_owned());
                response.content_type = None;
                response
            }
            _ => Response::json(400, r#"{"error":"bad_redirect_target"}"#),
        };
    }
    let big = if path == "/api/big" {
        match form_field(&query, "bytes") {
            Ok(Some(n)) => match n.parse::<usize>() {
                Ok(n) if n <= MAX_BIG_BODY => Some(n),
                _ => return Response::json(400, r#"{"error":"bad_bytes"}"#),
            },
            _ => return Response::json(400, r#"{"error":"bad_bytes"}"#),
        }
    } else {
        None
    };
    let check = state.check_access(bearer_token(request), Instant::now());
    state.count_api(check);
    let generation = match check {
        AccessCheck::Valid(generation) => generation,
        AccessCheck::Missing => {
            // RFC 6750 §3.1: no error code when the request carried no credentials at all.
            return Response::json(401, r#"{"error":"unauthorized"}"#)
                .header("WWW-Authenticate", r#"Bearer realm="reauth-mock""#);
        }
        AccessCheck::Revoked(generation) => {
            // What servers that revoke the previous access token on rotation answer: a bare
            // 403, no challenge.
            return Response::json(
                403,
                format!(r#"{{"error":"forbidden","generation":{generation}}}"#),
            );
        }
        AccessCheck::Expired(_) | AccessCheck::Unknown => {
            let message =
                if check == AccessCheck::Unknown { "invalid token" } else { "token expired" };
            return match state.config.expiry_style {
                ExpiryStyle::Status401 => Response::json(
                    401,
                    format!(r#"{{"error":"invalid_token","error_description":"{message}"}}"#),
                )
                .header("WWW-Authenticate", r#"Bearer error="invalid_token""#),
                ExpiryStyle::Classic409 => {
                    Response::json(200, format!(r#"{{"code":409,"message":"{message}"}}"#))
                }
            };
        }
    };
    if let Some(len) = big {
        return big_body(generation, len);
    }
    let received = if matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
        format!(r#","received":{}"#, request.body.len())
    } else {
        String::new()
    };
    Response::json(
        200,
        format!(
            r#"{{"ok":true,"generation":{generation},"path":{}{received}}}"#,
            json_string(path)
        ),
    )
}

/// A body of exactly `len` bytes: JSON padded with `x` when it fits, else plain `x`s.
fn big_body(generation: u32, len: usize) -> Response {
    let prefix = format!(r#"{{"ok":true,"generation":{generation},"pad":""#);
    let suffix = r#""}"#;
    let mut response = if len >= prefix.len() + suffix.len() {
        let pad = len - prefix.len() - suffix.len();
        Response::json(200, format!("{prefix}{}{suffix}", "x".repeat(pad)))
    } else {
        let mut response = Response::json(200, "x".repeat(len));
        response.content_type = Some("text/plain");
        response
    };
    response.headers.push(("Cache-Control", "no-store".to_owned()));
    response
}

/// The token of an `Authorization: Bearer` header.
fn bearer_token(request: &Request) -> Option<&str> {
    let value = core::str::from_utf8(request.header("authorization")?).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Authorization server metadata (RFC 8414) and OpenID discovery, for clients that start from
/// the issuer's URL. Besides the issuer at the root, it serves issuers with a path, to test the
/// two ways of finding their documents:
///
/// - `/tenant`: RFC 8414's form (`/.well-known/oauth-authorization-server/tenant`, the
///   well-known part inserted before the path) and OpenID's (`/tenant/.well-known/openid-configuration`,
///   appended);
/// - `/oidc-only`: only OpenID's, so a client must fall back to it;
/// - `/wrong-issuer`: both, naming another issuer than the one asked about (a client MUST
///   refuse it).
///
/// `token_endpoint_auth_methods_supported` lists the registered method (or `none` for a public
/// client).
fn discovery(state: &State, request: &Request) -> Reply {
    const RFC8414: &str = "/.well-known/oauth-authorization-server";
    const OPENID: &str = "/.well-known/openid-configuration";
    if request.method != "GET" {
        return Reply::now(method_not_allowed("GET"));
    }
    let path = request.path();
    let tenant = match (path.strip_prefix(RFC8414), path.strip_suffix(OPENID)) {
        (Some(tenant @ ("" | "/tenant" | "/wrong-issuer")), _) => tenant,
        (_, Some(tenant @ ("" | "/tenant" | "/oidc-only" | "/wrong-issuer"))) => tenant,
        _ => return Reply::now(Response::json(404, r#"{"error":"not_found"}"#)),
    };
    let base = base_url(request);
    let issuer = match tenant {
        "/wrong-issuer" => format!("{base}/someone-else"),
        tenant => format!("{base}{tenant}"),
    };
    let method = match &state.config.client_secret {
        _ if state.config.client_assertion_key.is_some() => "private_key_jwt",
        None => "none",
        Some(_) => client_auth_name(state.config.client_auth),
    };
    let body = format!(
        concat!(
            r#"{{"issuer":{},"token_endpoint":{},"device_authorization_endpoint":{},"#,
            r#""authorization_endpoint":{},"response_types_supported":["code"],"#,
            r#""grant_types_supported":["authorization_code","refresh_token","#,
            r#""urn:ietf:params:oauth:grant-type:device_code"],"#,
            r#""code_challenge_methods_supported":["S256"],"#,
            r#""token_endpoint_auth_methods_supported":[{}]}}"#
        ),
        json_string(&issuer),
        json_string(&format!("{base}/oauth/token")),
        json_string(&format!("{base}/oauth/device_authorization")),
        json_string(&format!("{base}/oauth/authorize")),
        json_string(method),
    );
    Reply::now(Response::json(200, body))
}

/// The issuer's base URL as the request addressed it: its scheme and `Host` header (127.0.0.1
/// without one).
fn base_url(request: &Request) -> String {
    let host = request.header("host").and_then(|h| core::str::from_utf8(h).ok());
    format!("{}://{}", request.scheme, host.unwrap_or("127.0.0.1"))
}
