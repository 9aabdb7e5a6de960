//! The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636) of the mock issuer: `GET
//! /oauth/authorize` plays the user's browser session and answers at once, as
//! [`IssuerConfig::authorize_answer`](super::IssuerConfig::authorize_answer) says: a redirect to
//! the loopback `redirect_uri` with a code and the `state`, or with `error=access_denied`. The
//! `authorization_code` grant on `/oauth/token` then checks the code (single use, short-lived,
//! bound to the `client_id` and `redirect_uri` it was issued for) and the PKCE verifier against
//! the `S256` challenge before it hands out a new session's tokens.
//!
//! Like OAuth 2.1, it insists on PKCE with `S256`: an authorization request without a challenge,
//! or with `plain`, is answered `invalid_request`.

use core::time::Duration;
use std::collections::HashMap;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::codec::{form_field, parse_form};
use super::http::{Request, Response};
use super::state::State;
use super::{AuthorizeAnswer, IssuedTokens};

/// Every authorization code issued, by value.
#[derive(Default)]
pub(super) struct Authorizations {
    /// By code.
    codes: HashMap<String, CodeRecord>,
}

/// What the issuer knows about one authorization code.
struct CodeRecord {
    /// The client it was issued to.
    client_id: String,
    /// The redirect URI it was sent to; the token request must repeat it (RFC 6749 §4.1.3).
    redirect_uri: String,
    /// The `S256` code challenge.
    challenge: String,
    /// The code is refused from this instant on.
    expires_at: Instant,
    /// Presented once already (successfully or not): a code works once.
    presented: bool,
}

/// The answer to a code redemption on the token endpoint.
pub(super) enum CodeAnswer {
    /// Tokens for the client.
    Issued(IssuedTokens),
    /// An RFC 6749 §5.2 error code and a description.
    Error(&'static str, &'static str),
}

/// `GET /oauth/authorize`: checks the authorization request and redirects back to the client
/// with a code (or an error) at once; a request whose client or redirect URI is unusable is
/// answered with a page of its own, never redirected (RFC 6749 §4.1.2.1).
pub(super) fn endpoint(state: &mut State, request: &Request) -> Response {
    if request.method != "GET" {
        return page(405, "Only GET is served here.").header("Allow", "GET");
    }
    let query = parse_form(request.query().as_bytes());
    let field = |name| form_field(&query, name);
    let (Ok(client_id), Ok(redirect_uri), Ok(state_param)) =
        (field("client_id"), field("redirect_uri"), field("state"))
    else {
        return refuse(state, "A parameter is repeated.");
    };
    let Some(client_id) = client_id.filter(|id| !id.is_empty()) else {
        return refuse(state, "client_id is missing.");
    };
    if state.config.client_id.as_deref().is_some_and(|expected| expected != client_id) {
        return refuse(state, "Unknown client_id.");
    }
    let Some(redirect_uri) = redirect_uri.filter(|uri| is_loopback_redirect(uri)) else {
        return refuse(
            state,
            "redirect_uri must be a loopback URI (http://127.0.0.1:PORT/..., RFC 8252 §7.3).",
        );
    };
    let redirect = |params: &[(&str, &str)]| {
        let mut location = redirect_uri.to_owned();
        location.push(if redirect_uri.contains('?') { '&' } else { '?' });
        let mut pairs: Vec<String> =
            params.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect();
        if let Some(s) = state_param {
            pairs.push(format!("state={}", percent_encode(s)));
        }
        location.push_str(&pairs.join("&"));
        let mut response = Response::json(302, String::new()).header("Location", location);
        response.content_type = None;
        response.header("Cache-Control", "no-store")
    };
    let invalid = |description| [("error", "invalid_request"), ("error_description", description)];
    match (field("response_type"), field("code_challenge"), field("code_challenge_method")) {
        (Ok(Some("code")), Ok(Some(challenge)), Ok(Some("S256"))) if is_s256(challenge) => {
            if state.config.authorize_answer == AuthorizeAnswer::Deny {
                state.counters_mut().authorization_denials += 1;
                return redirect(&[
                    ("error", "access_denied"),
                    ("error_description", "the user said no"),
                ]);
            }
            let code = state.issue_code(client_id, redirect_uri, challenge, Instant::now());
            redirect(&[("code", &code)])
        }
        (Ok(Some("code")), ..) => {
            state.counters_mut().authorization_requests_refused += 1;
            redirect(&invalid("PKCE is required: code_challenge (43 characters) with S256"))
        }
        (Ok(_), ..) => {
            state.counters_mut().authorization_requests_refused += 1;
            redirect(&[("error", "unsupported_response_type")])
        }
        _ => {
            state.counters_mut().authorization_requests_refused += 1;
            redirect(&invalid("a parameter is repeated"))
        }
    }
}

impl State {
    /// Registers a new authorization code.
    fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        challenge: &str,
        now: Instant,
    ) -> String {
        let code = format!("ac.{:016x}{:016x}", self.device_rng_next(), self.device_rng_next());
        let lifetime = self.config.authorization_code_lifetime;
        let expires_at = now.checked_add(lifetime).unwrap_or(now + Duration::from_secs(1 << 32));
        self.authorizations.codes.insert(
            code.clone(),
            CodeRecord {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                expires_at,
                presented: false,
            },
        );
        self.counters_mut().authorizations += 1;
        code
    }

    /// The `authorization_code` grant: `client_id` is the client the request authenticated as
    /// (form or HTTP Basic), already checked against the configuration.
    pub(super) fn redeem_code(
        &mut self,
        form: &[(String, String)],
        client_id: Option<&str>,
        now: Instant,
    ) -> CodeAnswer {
        let field = |name| form_field(form, name).ok().flatten();
        let answer = self.judge_code(
            field("code"),
            field("redirect_uri"),
            field("code_verifier"),
            client_id,
            now,
        );
        let lifetime = self.config.token_lifetime;
        let counters = self.counters_mut();
        match answer {
            Ok(()) => {
                counters.code_redemptions += 1;
                counters.refresh_successes += 1;
                CodeAnswer::Issued(self.login(lifetime))
            }
            Err((code, description)) => {
                counters.code_refusals += 1;
                if description == PKCE_FAILED {
                    counters.pkce_failures += 1;
                }
                CodeAnswer::Error(code, description)
            }
        }
    }

    /// Checks a code redemption; the code is spent by any presentation, good or bad.
    fn judge_code(
        &mut self,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        client_id: Option<&str>,
        now: Instant,
    ) -> Result<(), (&'static str, &'static str)> {
        let code = code.ok_or(("invalid_request", "missing code"))?;
        let record =
            self.authorizations.codes.get_mut(code).ok_or(("invalid_grant", "unknown code"))?;
        if core::mem::replace(&mut record.presented, true) {
            return Err(("invalid_grant", "code already used"));
        }
        if now >= record.expires_at {
            return Err(("invalid_grant", "code expired"));
        }
        if client_id != Some(record.client_id.as_str()) {
            return Err(("invalid_grant", "code issued to another client"));
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(("invalid_grant", "redirect_uri differs from the authorization request"));
        }
        match verifier {
            Some(verifier) if is_verifier(verifier) && s256(verifier) == record.challenge => Ok(()),
            _ => Err(("invalid_grant", PKCE_FAILED)),
        }
    }
}

/// The description of a failed PKCE check (RFC 7636 §4.6).
const PKCE_FAILED: &str = "PKCE verification failed";

/// `BASE64URL(SHA256(verifier))`, RFC 7636 §4.2.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// A code verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_verifier(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An `S256` challenge: 43 base64url characters (a SHA-256 without padding).
fn is_s256(text: &str) -> bool {
    text.len() == 43 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// A loopback redirect URI of a native app (RFC 8252 §7.3): `http`, an IP loopback literal or
/// `localhost`, any port, no fragment.
fn is_loopback_redirect(uri: &str) -> bool {
    ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"]
        .iter()
        .any(|prefix| uri.starts_with(prefix))
        && !uri.contains('#')
        && !uri.chars().any(char::is_control)
}

/// Percent-encodes a query value (everything but the unreserved characters).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Counts and answers an authorization request that cannot be redirected.
fn refuse(state: &mut State, message: &str) -> Response {
    state.counters_mut().authorization_requests_refused += 1;
    page(400, message)
}

/// A small HTML page for the user's browser.
fn page(status: u16, message: &str) -> Response {
    let mut response = Response::json(
        status,
        format!(
            "<!DOCTYPE html><html><body><h1>reauth mock issuer</h1><p>{}</p></body></html>",
            message.replace('<', "&lt;")
        ),
    );
    response.content_type = Some("text/html; charset=utf-8");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_s256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!is_verifier("too-short"));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(is_verifier(&"a~.-_".repeat(9)));
    }

    #[test]
    fn only_loopback_redirects_are_served() {
        assert!(is_loopback_redirect("http://127.0.0.1:4711/callback"));
        assert!(is_loopback_redirect("http://[::1]:80/cb"));
        assert!(!is_loopback_redirect("https://evil.example/callback"));
        assert!(!is_loopback_redirect("http://127.0.0.1.evil.example/callback"));
        assert!(!is_loopback_redirect("http://127.0.0.1:1/cb#frag"));
    }
}
