//! Finding an authorization server's endpoints from its issuer URL: OAuth 2.0 Authorization
//! Server Metadata (RFC 8414) first, OpenID Connect Discovery 1.0 second.
//!
//! For an issuer with a path (`https://example.com/tenant`), RFC 8414 §3.1 inserts the
//! well-known segment between host and path
//! (`https://example.com/.well-known/oauth-authorization-server/tenant`), while OpenID
//! appends it (`https://example.com/tenant/.well-known/openid-configuration`). The document's
//! `issuer` must be identical to the issuer asked about (RFC 8414 §3.3), or an attacker who
//! can serve one document could name the endpoints of another.

use core::fmt;
use std::sync::Arc;

use http::Uri;
use serde::Deserialize;

use crate::form_post::{ReadError, read_limited};
use crate::tls::{self, TlsError};

/// What an authorization server publishes about itself (RFC 8414 §2), the fields reauth uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ServerMetadata {
    /// The issuer identifier, identical to the URL discovery started from.
    pub issuer: String,
    /// The token endpoint (refresh, device-code and authorization-code grants).
    pub token_endpoint: String,
    /// The device authorization endpoint (RFC 8628), if the server has one.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// The authorization endpoint (authorization code grant), if the server has one.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// How clients may authenticate at the token endpoint; empty when the server did not say,
    /// which RFC 8414 §2 reads as `client_secret_basic` only.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The JWS algorithms the token endpoint accepts for `private_key_jwt` assertions, if said.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// The PKCE methods the server supports (RFC 7636), if said.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// Why discovery failed. Holds no secret (discovery sends none).
#[derive(Debug)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer URL is unusable: not a URL, plain http to a host other than loopback without
    /// the opt-in, or with a query or fragment (RFC 8414 §2 forbids them).
    InvalidIssuer(String),
    /// Neither document was found; each URL tried with the status it answered.
    NotFound(Vec<(String, u16)>),
    /// A request failed on the wire.
    Transport(Arc<ureq::Error>),
    /// The server's TLS certificate was not accepted.
    Tls(TlsError),
    /// A document was found but is unusable: not JSON, no `token_endpoint`, an endpoint that
    /// is not an https URL, larger than 64 KiB.
    InvalidMetadata {
        /// Where the document came from.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The document names another issuer than the one asked about.
    IssuerMismatch {
        /// The issuer asked about.
        expected: String,
        /// The `issuer` of the document.
        found: String,
    },
}

/// Largest metadata document accepted.
const METADATA_LIMIT: usize = 64 * 1024;

impl ServerMetadata {
    /// Fetches the metadata of `issuer` with a default agent: Mozilla's roots, no proxy,
    /// 30 s per request, no redirects. Use [`discover_with`](Self::discover_with) for a private
    /// CA or a proxy, or [`ClientBuilder::issuer`](crate::ClientBuilder::issuer).
    ///
    /// # Errors
    /// [`DiscoveryError`].
    pub fn discover(issuer: &str) -> Result<Self, DiscoveryError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(core::time::Duration::from_secs(30)))
            .proxy(None)
            .build()
            .into();
        Self::discover_with(&agent, issuer, false)
    }

    /// Fetches the metadata of `issuer` with `agent` (its TLS roots, proxy and timeouts):
    /// RFC 8414's URL first, then OpenID's; a 4xx or 5xx moves on to the next, anything else
    /// ends the search. Every endpoint named must be https (or http to loopback, or any http
    /// with `allow_insecure_http`).
    ///
    /// # Errors
    /// [`DiscoveryError`].
    pub fn discover_with(
        agent: &ureq::Agent,
        issuer: &str,
        allow_insecure_http: bool,
    ) -> Result<Self, DiscoveryError> {
        let candidates = well_known_urls(issuer, allow_insecure_http)?;
        let mut tried = Vec::new();
        for url in candidates {
            let response = agent.get(&url).header("Accept", "application/json").call();
            let mut response = match response {
                Ok(response) => response,
                Err(ureq::Error::StatusCode(status)) => {
                    tried.push((url, status));
                    continue;
                }
                Err(e) => return Err(DiscoveryError::from_transport(e)),
            };
            let status = response.status().as_u16();
            if !(200..300).contains(&status) {
                tried.push((url, status));
                continue;
            }
            let body = read_limited(response.body_mut(), METADATA_LIMIT).map_err(|e| match e {
                ReadError::Io(e) => DiscoveryError::from_transport(ureq::Error::Io(e)),
                ReadError::TooLarge => invalid(&url, format!("larger than {METADATA_LIMIT} bytes")),
            })?;
            return Self::from_document(&url, &body, issuer, allow_insecure_http);
        }
        Err(DiscoveryError::NotFound(tried))
    }

    /// Parses and checks one document fetched from `url` for `issuer`.
    fn from_document(
        url: &str,
        body: &[u8],
        issuer: &str,
        allow_insecure_http: bool,
    ) -> Result<Self, DiscoveryError> {
        let metadata: Self =
            serde_json::from_slice(body).map_err(|e| invalid(url, e.to_string()))?;
        if metadata.issuer != issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: metadata.issuer,
            });
        }
        let endpoints = [
            ("token_endpoint", Some(&metadata.token_endpoint)),
            ("device_authorization_endpoint", metadata.device_authorization_endpoint.as_ref()),
            ("authorization_endpoint", metadata.authorization_endpoint.as_ref()),
        ];
        for (name, endpoint) in endpoints {
            let Some(endpoint) = endpoint else { continue };
            let uri = endpoint.parse::<Uri>().map_err(|e| invalid(url, format!("{name}: {e}")))?;
            tls::require_https(&uri, allow_insecure_http, "an endpoint")
                .map_err(|e| invalid(url, format!("{name}: {e}")))?;
        }
        Ok(metadata)
    }
}

/// Discovery without the fetch, for the fuzz targets only: the URLs tried for `issuer`, and the
/// checks on a `body` that one of them answered.
#[doc(hidden)]
pub fn check_discovery(
    issuer: &str,
    body: &[u8],
    allow_insecure_http: bool,
) -> (Result<Vec<String>, DiscoveryError>, Result<ServerMetadata, DiscoveryError>) {
    let url = "https://issuer.test/.well-known/oauth-authorization-server";
    (
        well_known_urls(issuer, allow_insecure_http),
        ServerMetadata::from_document(url, body, issuer, allow_insecure_http),
    )
}

/// The URLs to try for `issuer`, in order: RFC 8414's, then OpenID's.
fn well_known_urls(issuer: &str, allow_insecure_http: bool) -> Result<Vec<String>, DiscoveryError> {
    // The issuer is quoted with `{:?}`: its control characters, if any, stay escaped and the
    // message stays one line.
    let bad = |why: String| DiscoveryError::InvalidIssuer(why);
    let uri = issuer.parse::<Uri>().map_err(|e| bad(format!("{issuer:?}: {e}")))?;
    tls::require_https(&uri, allow_insecure_http, "the issuer").map_err(|e| bad(e.to_string()))?;
    if uri.query().is_some() || issuer.contains('#') {
        return Err(bad(format!("{issuer:?}: an issuer has no query or fragment (RFC 8414 §2)")));
    }
    let (scheme, authority) = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => (scheme, authority.as_str()),
        _ => return Err(bad(format!("{issuer:?}: not an absolute URL"))),
    };
    // `https://host/` and `https://host` are the same issuer location; the path is kept as is
    // otherwise (RFC 8414 §3.1 removes only a terminating slash).
    let path = uri.path().trim_end_matches('/');
    Ok(vec![
        format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}"),
        format!("{scheme}://{authority}{path}/.well-known/openid-configuration"),
    ])
}

fn invalid(url: &str, reason: String) -> DiscoveryError {
    DiscoveryError::InvalidMetadata { url: url.to_owned(), reason }
}

impl DiscoveryError {
    fn from_transport(e: ureq::Error) -> Self {
        TlsError::classify(e).map_or_else(|e| Self::Transport(Arc::new(e)), Self::Tls)
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIssuer(why) => write!(f, "unusable issuer URL: {why}"),
            Self::NotFound(tried) => {
                f.write_str("no authorization server metadata found (tried")?;
                for (i, (url, status)) in tried.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{url}: HTTP {status}")?;
                }
                f.write_str(")")
            }
            Self::Transport(e) => write!(f, "fetching the server metadata failed: {e}"),
            Self::Tls(e) => write!(f, "fetching the server metadata failed: {e}"),
            Self::InvalidMetadata { url, reason } => {
                write!(f, "unusable server metadata at {url}: {reason}")
            }
            Self::IssuerMismatch { expected, found } => write!(
                f,
                "the server metadata names issuer {found:?}, not {expected:?} as asked (RFC 8414 \
                 §3.3 requires them to be identical)"
            ),
        }
    }
}

impl core::error::Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Transport(e) => Some(&**e),
            Self::Tls(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_insert_for_rfc8414_and_append_for_openid() {
        assert_eq!(
            well_known_urls("https://as.example.com", false).unwrap(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            well_known_urls("https://as.example.com/", false).unwrap(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            well_known_urls("https://as.example.com:8443/realms/x", false).unwrap(),
            [
                "https://as.example.com:8443/.well-known/oauth-authorization-server/realms/x",
                "https://as.example.com:8443/realms/x/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn unusable_issuers_are_refused() {
        for issuer in [
            "http://as.example.com",
            "https://as.example.com/?tenant=1",
            "https://as.example.com/#x",
            "as.example.com",
            "",
        ] {
            assert!(
                matches!(well_known_urls(issuer, false), Err(DiscoveryError::InvalidIssuer(_))),
                "{issuer}"
            );
        }
        assert!(well_known_urls("http://as.example.com", true).is_ok());
        assert!(well_known_urls("http://127.0.0.1:9/x", false).is_ok());
    }

    #[test]
    fn documents_are_checked() {
        let url = "https://as.example.com/.well-known/oauth-authorization-server";
        let issuer = "https://as.example.com";
        let good = br#"{"issuer":"https://as.example.com","token_endpoint":"https://as.example.com/t","token_endpoint_auth_methods_supported":["client_secret_post"],"other":1}"#;
        let metadata = ServerMetadata::from_document(url, good, issuer, false).unwrap();
        assert_eq!(metadata.token_endpoint, "https://as.example.com/t");
        assert_eq!(metadata.token_endpoint_auth_methods_supported, ["client_secret_post"]);
        assert_eq!(metadata.device_authorization_endpoint, None);
        // Identical, not merely equivalent: a trailing slash is another issuer.
        let slash =
            br#"{"issuer":"https://as.example.com/","token_endpoint":"https://as.example.com/t"}"#;
        assert!(matches!(
            ServerMetadata::from_document(url, slash, issuer, false),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let no_token = br#"{"issuer":"https://as.example.com"}"#;
        assert!(matches!(
            ServerMetadata::from_document(url, no_token, issuer, false),
            Err(DiscoveryError::InvalidMetadata { .. })
        ));
        let plain =
            br#"{"issuer":"https://as.example.com","token_endpoint":"http://as.example.com/t"}"#;
        assert!(matches!(
            ServerMetadata::from_document(url, plain, issuer, false),
            Err(DiscoveryError::InvalidMetadata { .. })
        ));
        assert!(matches!(
            ServerMetadata::from_document(url, b"<html>", issuer, false),
            Err(DiscoveryError::InvalidMetadata { .. })
        ));
    }
}
