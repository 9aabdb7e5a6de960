//! One form POST to the authorization server during a login (the device authorization request
//! and its polls, the authorization code exchange): an agent that hands every status back,
//! follows no redirect, uses no proxy and bounds each call, with the wire filter that keeps the
//! Basic header and the answers (device codes, tokens) out of ureq's trace log (see
//! [`wire`](crate::wire)). The refresh grant has its own agent (`builder.rs`), kept for the
//! client's life; a login's lives as long as the login.

use core::time::Duration;
use std::sync::Arc;

use ureq::Agent;
use ureq::config::RedirectAuthHeaders;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, DefaultConnector};
use zeroize::Zeroizing;

use crate::credentials::Authentication;
use crate::error::Error;
use crate::exchange::{RefreshError, read_limited};
use crate::tls::{self, TlsError, TlsSettings};
use crate::wire::{Capture, Masks, WireConnector};

/// The largest answer a login accepts from the authorization server.
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
}

/// The agent of one login, with its wire filter's placeholders and capture.
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
        let config = Agent::config_builder()
            .tls_config(tls_config)
            .http_status_as_error(false)
            .max_redirects(0)
            .redirect_auth_headers(RedirectAuthHeaders::Never)
            .timeout_global(Some(call_timeout))
            .proxy(None)
            .build();
        let masks = Arc::new(Masks::default());
        let capture = Arc::new(Capture::new(RESPONSE_LIMIT));
        let connector = DefaultConnector::new().chain(WireConnector {
            masks: Arc::clone(&masks),
            capture: Some(Arc::clone(&capture)),
        });
        let agent = Agent::with_parts(config, connector, DefaultResolver::default());
        Ok(Self { agent, masks, capture })
    }

    /// POSTs `form` to `url`, authenticated as `client` says; the status and the body (wiped
    /// on drop).
    ///
    /// # Errors
    /// [`PostError`].
    pub(crate) fn post(
        &self,
        url: &str,
        client: &Authentication<'_>,
        form: &[u8],
    ) -> Result<(u16, Zeroizing<Vec<u8>>), PostError> {
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
        // ureq reads the masked answer; the real one was captured under it.
        let masked = read_limited(response.body_mut(), RESPONSE_LIMIT).map_err(|e| match e {
            RefreshError::Transport(e) => PostError::Transport(e),
            _ => PostError::TooLarge,
        })?;
        let body = self.capture.take();
        if body.len() != masked.len() {
            return Err(PostError::TooLarge);
        }
        Ok((status, body))
    }
}
