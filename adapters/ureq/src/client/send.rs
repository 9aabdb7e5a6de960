//! One exchange on the wire: the request sent with its credential, redirects followed by hand
//! (the token only within the request's origin), the final response judged by the expiry rule.

use std::io::{Cursor, Read};

use http::header::{self};
use http::{Method, Request, Response, StatusCode, Uri};
use reauth_core::Verdict;
use reauth_core::expiry::is_invalid_token_challenge;
use ureq::Body;

use crate::error::Error;
use crate::expiry::ResponseView;
use crate::redirect::{self, Origin};
use crate::stats::Stat;
use crate::tls;

use super::state::Authorization;
use super::{Client, invalid};

/// Builds a request around an access token, for [`Client::send_with`].
pub(super) type Build<'a> = &'a dyn Fn(&str) -> Result<Request<Vec<u8>>, http::Error>;

/// Where a request comes from: given whole, or built from the token for every attempt.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    Fixed(&'a Request<Vec<u8>>),
    Build(Build<'a>),
}

/// How the token travels with one exchange.
#[derive(Clone, Copy)]
pub(super) enum Credential<'a> {
    /// The client adds `Authorization` with this value.
    Bearer(&'a Authorization),
    /// The application built the token into the request.
    InRequest,
}

impl Client {
    // ---------------------------------------------------------------------------------------
    // One exchange on the wire

    /// Sends `request` with its credential, follows redirects, and judges the final response.
    pub(super) fn exchange(
        &self,
        request: &Request<Vec<u8>>,
        credential: Credential<'_>,
    ) -> Result<(Response<Body>, Verdict), Error> {
        let mut method = request.method().clone();
        let mut uri = request.uri().clone();
        let mut with_body = true;
        let mut hops = 0u8;
        loop {
            // The first hop goes where the application said; later ones only to its origin.
            let same_origin = hops == 0 || {
                let origin = Origin::of(request.uri());
                origin.is_some() && Origin::of(&uri) == origin
            };
            let auth = same_origin.then_some(credential);
            let response = self.send_once(request, &method, &uri, with_body, auth)?;
            let status = response.status();
            let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
            let follow = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            match location {
                Some(location) if follow => {
                    let next = redirect::resolve(&uri, location).ok_or(Error::InvalidRedirect)?;
                    let leaves_origin = Origin::of(&next) != Origin::of(request.uri());
                    if leaves_origin && matches!(credential, Credential::InRequest) {
                        // The token may sit anywhere in a built request: never carry it away.
                        return Ok((response, Verdict::Accepted));
                    }
                    if hops >= self.inner.max_redirects {
                        return Err(Error::TooManyRedirects);
                    }
                    hops += 1;
                    self.inner.stats.bump(Stat::RedirectsFollowed);
                    uri = next;
                    // 301/302/303 turn into a GET without a body (what browsers do); 307/308
                    // repeat the method and the body.
                    if status.as_u16() <= 303 && method != Method::HEAD {
                        method = Method::GET;
                        with_body = false;
                    }
                }
                _ if auth.is_some() => return self.judge(response),
                // Not sent with our token: whatever it says is not about our token.
                _ => return Ok((response, Verdict::Accepted)),
            }
        }
    }

    /// One HTTP exchange, with or without the token.
    pub(super) fn send_once(
        &self,
        request: &Request<Vec<u8>>,
        method: &Method,
        uri: &Uri,
        with_body: bool,
        credential: Option<Credential<'_>>,
    ) -> Result<Response<Body>, Error> {
        let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
        if credential.is_some() {
            // The token never crosses the network in the clear; checked for every hop that
            // carries it, so a same-origin redirect cannot downgrade either.
            tls::require_https(uri, self.inner.tls.allow_insecure_http, "the request")?;
        }
        let authorization = match credential {
            Some(Credential::Bearer(authorization)) => Some(authorization),
            Some(Credential::InRequest) | None => None,
        };
        for (name, value) in request.headers() {
            let is_credential = name == header::AUTHORIZATION
                || name == header::COOKIE
                || name == header::PROXY_AUTHORIZATION;
            // The application's own credentials go only where the token goes; ours replaces an
            // `Authorization` it set, unless it built the request around the token itself.
            let ours = authorization.is_some() && name == header::AUTHORIZATION;
            if ours || (is_credential && credential.is_none()) {
                continue;
            }
            if !with_body && (name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH) {
                continue;
            }
            builder = builder.header(name, value);
        }
        if let Some(authorization) = authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.0.header.clone());
        }
        let body = request.body();
        let result = if with_body && !body.is_empty() {
            let request = builder.body(&body[..]).map_err(invalid)?;
            self.inner.api.run(request)
        } else {
            let request = builder.body(()).map_err(invalid)?;
            self.inner.api.run(request)
        };
        Ok(result?)
    }

    /// Applies the expiry rule, reading a bounded prefix of the body when a rule needs it and
    /// handing it back with the rest of the body.
    pub(super) fn judge(
        &self,
        response: Response<Body>,
    ) -> Result<(Response<Body>, Verdict), Error> {
        let expiry = &self.inner.expiry;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED
            && response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .any(|v| is_invalid_token_challenge(v.as_bytes()))
        {
            self.inner.stats.bump(Stat::InvalidTokenChallenges);
        }
        if !expiry.needs_body() {
            let view = ResponseView { status, headers: response.headers(), body: None };
            let verdict = expiry.verdict(&view);
            return Ok((response, verdict));
        }
        let (parts, body) = response.into_parts();
        let mut rebuilt = Body::builder();
        if let Some(mime) = body.mime_type() {
            rebuilt = rebuilt.mime_type(mime);
        }
        if let Some(charset) = body.charset() {
            rebuilt = rebuilt.charset(charset);
        }
        let mut reader = body.into_reader();
        let limit = expiry.limit();
        let mut prefix = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        (&mut reader)
            .take(cap)
            .read_to_end(&mut prefix)
            .map_err(|e| Error::Transport(ureq::Error::Io(e)))?;
        let complete = prefix.len() <= limit;
        let view = ResponseView {
            status,
            headers: &parts.headers,
            body: complete.then_some(prefix.as_slice()),
        };
        let verdict = expiry.verdict(&view);
        let body = if complete {
            rebuilt.data(prefix)
        } else {
            rebuilt.reader(Cursor::new(prefix).chain(reader))
        };
        Ok((Response::from_parts(parts, body), verdict))
    }
}

/// Reads a response that will not be returned (a 401 about to be replayed, parked or rejected)
/// to its end, so that ureq puts its connection back in the pool instead of closing it and the
/// replay does not pay for a new connection (a TCP and TLS handshake on a real network). A body
/// over 16 KiB is abandoned instead; ureq then closes that connection.
pub(super) fn discard(response: Response<Body>) {
    let mut reader = response.into_body().into_reader().take(16 * 1024);
    let mut buf = [0u8; 1024];
    while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
}
