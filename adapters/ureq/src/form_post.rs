//! A form POST to the authorization server: the refresh grant, the device authorization request
//! and its polls, the authorization code exchange. An agent that hands every status back,
//! follows no redirect and bounds each call, with the wire filter that keeps the Basic header
//! and the answers (device codes, tokens) out of ureq's trace log (see [`wire`](crate::wire)).
//! The refresh grant's poster is built with the client and kept for its life; a login's lives as
//! long as the login.

use core::time::Duration;
use std::io::{self, Read};
use std::sync::Arc;

use reauth_core::oauth::parse_retry_after;
use ureq::Agent;
use zeroize::Zeroizing;

use crate::agent::{Timeouts, agent};
use crate::credentials::Authentication;
use crate::error::Error;
use crate::tls::{self, TlsError, TlsSettings};
use crate::wire::{Capture, Masks, WireConnector};

/// The largest answer accepted from the authorization server: the refresh grant's buffers hold
/// 10 KiB of tokens, the rest is headroom for `id_token` and friends.
pub(crate) const RESPONSE_LIMIT: usize = 64 * 1024;

/// Why a POST brought no answer to read.
#[derive(Debug)]
pub(crate) enum PostError {
    /// The server's certificate was not accepted: a configuration error, not worth a retry.
    Tls(TlsError),
    /// The request or the answer failed on the wire.
    Transport(Arc<ureq::Error>),
    /// The answer was larger than [`RESPONSE_LIMIT`].
    TooLarge,
    /// The wire filter did not capture the whole answer that ureq read.
    NotCaptured,
}

/// What the server answered.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// The `Retry-After` header, in seconds (RFC 9110 §10.2.3; a date is not understood).
    pub(crate) retry_after: Option<reauth_core::Duration>,
    /// The body, wiped on drop.
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// An agent with its wire filter's placeholders and capture.
pub(crate) struct FormPoster {
    agent: Agent,
    masks: Arc<Masks>,
    capture: Arc<Capture>,
}

impl FormPoster {
    /// An agent for `endpoints` (URL and what it is, for the error), each checked to be https
    /// unless loopback or allowed by `tls`, with `call_timeout` on every call.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a URL that does not parse, [`Error::InsecureUrl`] for plain
    /// http where it is not allowed, the errors of [`TlsSettings::config`].
    pub(crate) fn new(
        tls: &TlsSettings,
        endpoints: &[(&str, &'static str)],
        call_timeout: Duration,
    ) -> Result<Self, Error> {
        let tls_config = tls.config()?;
        for &(url, what) in endpoints {
            let uri = url
                .parse::<http::Uri>()
                .map_err(|e| Error::InvalidRequest(format!("{what}: {e}")))?;
            tls::require_https(&uri, tls.allow_insecure_http, what)?;
        }
        let timeouts = Timeouts::Global(Some(call_timeout));
        Ok(Self::with_agent(|wire| agent(timeouts, None, false, None, None, &tls_config, wire)))
    }

    /// A poster whose agent `build` makes around the wire filter it is given.
    pub(crate) fn with_agent(build: impl FnOnce(WireConnector) -> Agent) -> Self {
        let masks = Arc::new(Masks::default());
        let capture = Arc::new(Capture::new(RESPONSE_LIMIT));
        let agent =
            build(WireConnector { masks: Arc::clone(&masks), capture: Some(Arc::clone(&capture)) });
        Self { agent, masks, capture }
    }

    /// POSTs `form` to `url`, authenticated as `client` says.
    ///
    /// # Errors
    /// [`PostError`].
    pub(crate) fn post(
        &self,
        url: &str,
        client: &Authentication<'_>,
        form: &[u8],
    ) -> Result<Answer, PostError> {
        let request = self
            .agent
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json");
        let (request, _mask) = client.apply(request, &self.masks);
        self.capture.clear();
        let mut response = request.send(form).map_err(|e| {
            TlsError::classify(e).map_or_else(|e| PostError::Transport(Arc::new(e)), PostError::Tls)
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(v.as_bytes()));
        // ureq reads the masked answer; the real one was captured under it.
        let masked = read_limited(response.body_mut(), RESPONSE_LIMIT).map_err(|e| match e {
            ReadError::Io(e) => PostError::Transport(Arc::new(ureq::Error::Io(e))),
            ReadError::TooLarge => PostError::TooLarge,
        })?;
        let body = self.capture.take();
        if body.len() != masked.len() {
            return Err(PostError::NotCaptured);
        }
        Ok(Answer { status, retry_after, body })
    }
}

/// Why [`read_limited`] brought no body.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// More than the limit.
    TooLarge,
}

/// Reads a body into a wiped buffer, refusing more than `limit` bytes.
pub(crate) fn read_limited(
    body: &mut ureq::Body,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    // All the room up front: a buffer that grew would leave copies of the tokens in the freed,
    // unwiped allocations it outgrew.
    let mut out = Zeroizing::new(Vec::with_capacity(limit.saturating_add(1)));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    body.as_reader().take(cap).read_to_end(&mut out).map_err(ReadError::Io)?;
    if out.len() > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(out)
}
