//! The bodies of the reauth-ureq fuzz targets (`redirect`, `discovery`), as plain functions.
//!
//! reauth-testkit cannot depend on reauth-ureq (reauth-ureq's tests depend on the testkit, and
//! the testkit is published without ureq), so this one file is compiled twice: into the fuzz
//! targets (`#[path]` in `fuzz_targets/redirect.rs` and `discovery.rs`) and into
//! `tests/tests/fuzz_corpus.rs`, which replays the committed corpora through it on stable Rust.
//!
//! Each function panics exactly when the code under test misbehaves on its input.

use reauth_ureq::AuthorizationCodeError;
use reauth_ureq::fuzzing::{check_discovery, judge_request_head};
use reauth_ureq::http::Uri;

/// Any bytes as a request head read by the authorization code login's loopback listener, which
/// any local process can connect to.
///
/// The input is `[state_len, state..., head...]`: the login's `state` (up to 63 bytes, lossy
/// UTF-8) and the request head. Checks, besides no panic, against an independent decoder of the
/// request line and the query (`application/x-www-form-urlencoded`):
/// - only `GET /callback` (with or without a query) is taken as the redirect;
/// - the verdict follows RFC 6749 §4.1.2: a repeated parameter is invalid, then a state that is
///   not exactly the login's is a forgery, then an `error` is the server's refusal, then a
///   non-empty `code` is the answer, which is returned exactly;
/// - the error's text, which the listener writes into an HTML page, is bounded printable ASCII
///   without markup characters (`<`, `>`, `&`, `"`, `\`).
pub(crate) fn redirect(data: &[u8]) {
    let len = usize::from(data.first().copied().unwrap_or(0) % 64);
    let rest = data.get(1..).unwrap_or_default();
    let (state, head) = rest.split_at(len.min(rest.len()));
    let state = String::from_utf8_lossy(state);

    let verdict = judge_request_head(head, &state);
    let expected = RedirectModel::of(head);
    let Some(verdict) = verdict else {
        assert!(expected.is_none(), "the redirect was not taken for one");
        return;
    };
    let Some(params) = expected else {
        panic!("a request that is not GET {} was taken for the redirect", "/callback");
    };
    let single = |key: &str| {
        let mut values = params.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(Some(value)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(()),
        }
    };
    let fields = ["code", "state", "error", "error_description"].map(single);
    let [code, returned_state, error, _] = fields;
    match verdict {
        Ok(got) => {
            assert!(fields.iter().all(Result::is_ok), "a repeated parameter was accepted");
            assert_eq!(returned_state, Ok(Some(&*state)), "a redirect with another state");
            assert_eq!(error, Ok(None), "an error redirect was taken for a code");
            assert!(!got.is_empty(), "an empty code");
            assert_eq!(code, Ok(Some(got.as_str())), "not the code of the redirect");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.len() <= 2 * 200 + 120, "{} bytes of error text", text.len());
            assert!(
                text.bytes().all(|b| (0x20..=0x7E).contains(&b) && !b"<>&\"\\".contains(&b)),
                "error text unsafe for the HTML page: {text:?}"
            );
            let repeated = fields.iter().any(Result::is_err);
            match e {
                AuthorizationCodeError::InvalidRedirect => assert!(
                    repeated
                        || (returned_state == Ok(Some(&*state))
                            && error == Ok(None)
                            && matches!(code, Ok(None | Some("")))),
                    "InvalidRedirect for a usable redirect"
                ),
                AuthorizationCodeError::StateMismatch => {
                    assert!(!repeated && returned_state != Ok(Some(&*state)), "{text}");
                }
                AuthorizationCodeError::Denied { .. } => {
                    assert!(!repeated && returned_state == Ok(Some(&*state)), "{text}");
                    assert_eq!(error, Ok(Some("access_denied")));
                }
                AuthorizationCodeError::Authorization { .. } => {
                    assert!(!repeated && returned_state == Ok(Some(&*state)), "{text}");
                    assert!(matches!(error, Ok(Some(e)) if e != "access_denied"), "{text}");
                }
                other => panic!("the redirect cannot fail with {other:?}"),
            }
        }
    }
}

/// The parameters of the redirect's query when the request line is `GET /callback[?query] ...`,
/// decoded by hand (not by form_urlencoded, which the listener uses).
struct RedirectModel;

impl RedirectModel {
    fn of(head: &[u8]) -> Option<Vec<(String, String)>> {
        let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
        let line = &head[..line_end];
        let rest = line.strip_prefix(b"GET ")?;
        let target = rest.split(|&b| b == b' ').next().unwrap_or_default();
        let target = core::str::from_utf8(target).ok()?;
        let query = match target.strip_prefix("/callback")? {
            "" => "",
            other => other.strip_prefix('?')?,
        };
        let params = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(key), form_decode(value))
            })
            .collect();
        Some(params)
    }
}

/// `+` is a space, `%XX` a byte (left as it is when not two hex digits), then lossy UTF-8.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Any bytes as an issuer URL and the metadata document its server answered (RFC 8414,
/// OpenID Connect Discovery), checked as reauth-ureq's discovery checks them.
///
/// The input is `[flags, issuer_len, issuer..., body...]`: bit 0 of `flags` allows plain http;
/// the issuer is up to 255 bytes (lossy UTF-8). Checks, besides no panic:
/// - an issuer is refused unless it is an absolute http(s) URL without query or fragment, and
///   plain http only to loopback or with the opt-in; the two URLs tried are absolute URLs on the
///   issuer's own origin with the well-known segment inserted (RFC 8414) and appended (OpenID);
/// - a document is accepted only if its `issuer` is exactly the one asked about and every
///   endpoint it names is an absolute https URL (http only to loopback or with the opt-in);
/// - the error about a document is one line, whatever the document holds.
pub(crate) fn discovery(data: &[u8]) {
    let insecure = data.first().is_some_and(|flags| flags & 1 != 0);
    let len = usize::from(data.get(1).copied().unwrap_or(0));
    let rest = data.get(2..).unwrap_or_default();
    let (issuer, body) = rest.split_at(len.min(rest.len()));
    let issuer = String::from_utf8_lossy(issuer);

    let (urls, metadata) = check_discovery(&issuer, body, insecure);
    // The server's text is escaped or left out. (An unusable issuer is quoted as configured,
    // control characters and all: it is the user's own setting, so that is not checked.)
    if let Err(error) = &metadata {
        let text = error.to_string();
        assert!(!text.contains(['\r', '\n']), "an error of more than one line: {text:?}");
    }
    if let Ok(urls) = urls {
        let uri = issuer.parse::<Uri>().unwrap_or_else(|e| panic!("{issuer:?} accepted: {e}"));
        assert!(uri.query().is_none() && !issuer.contains('#'), "{issuer:?} accepted");
        check_origin(&uri, insecure, "the issuer");
        let origin = format!("{}://{}", uri.scheme_str().unwrap_or(""), uri.authority().unwrap());
        assert_eq!(urls.len(), 2);
        for url in &urls {
            let parsed =
                url.parse::<Uri>().unwrap_or_else(|e| panic!("{url:?} from {issuer:?}: {e}"));
            assert_eq!(parsed.authority(), uri.authority(), "{url:?} leaves {issuer:?}");
            assert!(url.starts_with(&origin), "{url:?} leaves {issuer:?}");
        }
        let path = uri.path().trim_end_matches('/');
        assert_eq!(urls[0], format!("{origin}/.well-known/oauth-authorization-server{path}"));
        assert_eq!(urls[1], format!("{origin}{path}/.well-known/openid-configuration"));
    }
    if let Ok(metadata) = metadata {
        assert_eq!(metadata.issuer, *issuer, "a document for another issuer was accepted");
        let endpoints = [
            Some(&metadata.token_endpoint),
            metadata.device_authorization_endpoint.as_ref(),
            metadata.authorization_endpoint.as_ref(),
        ];
        for endpoint in endpoints.into_iter().flatten() {
            let uri = endpoint.parse::<Uri>().unwrap_or_else(|e| panic!("{endpoint:?}: {e}"));
            check_origin(&uri, insecure, "an endpoint");
        }
    }
}

/// An absolute https URL with a host, or http to a loopback host, or any http when allowed.
fn check_origin(uri: &Uri, insecure: bool, what: &str) {
    let host = uri.host().unwrap_or_else(|| panic!("{what} without a host accepted: {uri}"));
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => {}
        Some("http") => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare.parse::<core::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            assert!(insecure || loopback, "plain http to {host} accepted for {what}");
        }
        _ => panic!("{what} that is not http(s) accepted: {uri}"),
    }
}
