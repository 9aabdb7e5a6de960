//! Building a [`Client`]: the token endpoint or a custom exchange, the expiry rule, timeouts,
//! the coordinator's config and the store. Every knob has a documented default.

use core::fmt;
use core::hash::BuildHasher;
use core::time::Duration;
use std::collections::hash_map::RandomState;

use reauth_core::{Config, Coordinator};
use std::sync::Arc;

use crate::agent::{Timeouts, agent};
use crate::client::StoreErrorCallback;
use crate::client::{Client, Parts};
use crate::credentials::Credentials;
use crate::discovery::ServerMetadata;
use crate::error::Error;
use crate::exchange::{OAuthExchange, RefreshExchange};
use crate::expiry::Expiry;
use crate::form_post::FormPoster;
use crate::store::{MemoryStore, StoreError, TokenStore};
use crate::tls::{self, TlsSettings};
use crate::wire::{Masks, WireConnector};

/// Configures a [`Client`]. Start with [`Client::builder`].
///
/// The client needs a way to refresh: [`token_url`](Self::token_url) for the OAuth 2.0 refresh
/// grant, or [`refresh_with`](Self::refresh_with) for an API's own refresh endpoint.
pub struct ClientBuilder {
    token_url: Option<String>,
    /// The issuer whose metadata names the token endpoint and the auth methods.
    issuer: Option<String>,
    credentials: Credentials,
    exchange: Option<Box<dyn RefreshExchange>>,
    expiry: Expiry,
    config: Config,
    /// Whether the caller set a jitter seed; otherwise each client draws its own.
    seeded: bool,
    store: Option<Box<dyn TokenStore>>,
    on_store_error: Option<StoreErrorCallback>,
    request_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    env_proxy: bool,
    max_redirects: u8,
    lease_fallback: bool,
    user_agent: Option<String>,
    /// Idle API connections kept for reuse; `None` keeps ureq's defaults.
    idle_connections: Option<usize>,
    /// Trusted roots and whether plain http may leave the machine.
    tls: TlsSettings,
}

impl ClientBuilder {
    /// The defaults: 401 means expired, [`Config::DESKTOP`] (a refresh attempt may take 4 s,
    /// two attempts per episode, a request waits at most 10 s for a refresh, one replay), an
    /// in-memory store, a 30 s timeout per API exchange, 10 s to connect, no proxy from the
    /// environment, up to 5 redirects.
    ///
    /// Why these: a token endpoint on a desktop's network answers in well under a second, so
    /// 4 s per attempt only cuts off one that hangs; a second attempt rides out a dropped
    /// connection; and the whole episode (at most 8.5 s) ends before the 10 s wait, so a hung
    /// token endpoint gets two attempts and every waiting request ends with
    /// [`Error::RefreshUnavailable`] within 10 s, not a bare timeout (see
    /// [`Config`]'s "Two sets of defaults"). An API exchange is the application's own business
    /// and may take longer (30 s).
    #[must_use]
    pub fn new() -> Self {
        Self {
            token_url: None,
            issuer: None,
            credentials: Credentials::default(),
            exchange: None,
            expiry: Expiry::default(),
            config: Config::DESKTOP,
            seeded: false,
            store: None,
            on_store_error: None,
            request_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Some(Duration::from_secs(10)),
            env_proxy: false,
            max_redirects: 5,
            lease_fallback: false,
            user_agent: None,
            idle_connections: None,
            tls: TlsSettings::default(),
        }
    }

    /// The OAuth 2.0 token endpoint for the refresh grant (a form POST, no redirects followed).
    /// The refresh token is sent there and nowhere else.
    #[must_use]
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Finds the token endpoint from the authorization server's metadata when the client is
    /// built: RFC 8414 (`/.well-known/oauth-authorization-server`), then OpenID discovery
    /// (`/.well-known/openid-configuration`), with the metadata's `issuer` checked to be exactly
    /// `issuer`. An explicit [`token_url`](Self::token_url) wins over the metadata's. Unless
    /// [`client_auth`](Self::client_auth) was set, the method is chosen from the server's
    /// `token_endpoint_auth_methods_supported`. The fetch uses this builder's TLS settings, proxy
    /// and connect timeout, and the refresh timeout as its deadline. See [`ServerMetadata`] to
    /// fetch the metadata yourself.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Applies metadata fetched earlier ([`ServerMetadata::discover`]): its token endpoint
    /// (unless [`token_url`](Self::token_url) was set) and its auth methods (unless
    /// [`client_auth`](Self::client_auth) was set).
    #[must_use]
    pub fn metadata(mut self, metadata: &ServerMetadata) -> Self {
        if self.token_url.is_none() {
            self.token_url = Some(metadata.token_endpoint.clone());
        }
        self.credentials.choose_from(&metadata.token_endpoint_auth_methods_supported);
        self
    }

    crate::settings::credential_setters!(client_id);

    /// Refreshes with a custom exchange instead of the OAuth 2.0 grant (takes precedence over
    /// [`token_url`](Self::token_url)).
    #[must_use]
    pub fn refresh_with(mut self, exchange: impl RefreshExchange + 'static) -> Self {
        self.exchange = Some(Box::new(exchange));
        self
    }

    /// How an expired token is recognised (default: 401).
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// The coordinator's config. A `backoff.seed` of 0 (the default) is replaced by a random
    /// seed, so that many processes that failed together do not retry together.
    #[must_use]
    pub const fn config(mut self, config: Config) -> Self {
        self.config = config;
        self.seeded = config.backoff.seed != 0;
        self
    }

    /// How long one refresh call may take (sets [`Config::refresh_timeout`], and the timeout of
    /// the call on the wire).
    #[must_use]
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.config.refresh_timeout = reauth_core::Duration::from(timeout);
        self
    }

    /// How long a request may wait for a refresh (sets [`Config::wait_timeout`]).
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = reauth_core::Duration::from(timeout);
        self
    }

    /// Where the tokens are persisted (default: [`MemoryStore`]). The store is loaded by
    /// [`build`](Self::build), so a restarted program resumes where it stopped.
    #[must_use]
    pub fn store(mut self, store: impl TokenStore + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Called (from the thread that tried) when the store fails to save or clear; the failure
    /// is also counted in [`Stats::store_errors`](crate::Stats::store_errors). The callback MUST
    /// NOT call into the client.
    #[must_use]
    pub fn on_store_error(
        mut self,
        callback: impl Fn(&StoreError) + Send + Sync + 'static,
    ) -> Self {
        self.on_store_error = Some(Box::new(callback));
        self
    }

    /// Timeout of each phase of an API exchange: sending the request, sending its body,
    /// receiving the response head, receiving the body (default 30 s each; `None` for none).
    ///
    /// Per phase rather than one global deadline because ureq 3.5 re-arms the socket timeouts
    /// on every read and write under a global deadline, which cut loopback throughput by a
    /// factor of 5 to 40 in this crate's benchmark.
    #[must_use]
    pub const fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Timeout of establishing a connection (default 10 s; `None` for none).
    #[must_use]
    pub const fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Use the proxy named by `ALL_PROXY`/`HTTPS_PROXY`/`HTTP_PROXY` (and `NO_PROXY`) for API
    /// and token requests (default: no proxy, so that tokens do not silently travel through
    /// whatever the environment names).
    #[must_use]
    pub const fn env_proxy(mut self, enabled: bool) -> Self {
        self.env_proxy = enabled;
        self
    }

    /// What to do when the store cannot be reached to take the refresh lease (a Redis server
    /// down, a lock file that cannot be written). `false` (the default) fails closed: no
    /// refresh, and waiting requests get [`Error::RefreshUnavailable`] with the store's error,
    /// since refreshing without the lease could spend a refresh token that another process is
    /// presenting at the same moment and log both out. `true` refreshes anyway, coordinated only
    /// within this process: choose it when no other process can be using the credential while
    /// the store is away.
    #[must_use]
    pub const fn lease_fallback(mut self, enabled: bool) -> Self {
        self.lease_fallback = enabled;
        self
    }

    /// How many redirects an API request follows (default 5; 0 returns the 3xx response).
    #[must_use]
    pub const fn max_redirects(mut self, max: u8) -> Self {
        self.max_redirects = max;
        self
    }

    /// How many idle API connections to keep for reuse (default: ureq's, 3 per host). Set it to
    /// about the number of threads that share the client: when a storm of requests waits for a
    /// refresh, each comes back on its own connection, and a pool smaller than the storm closes
    /// the surplus and opens them again. Much larger than the thread count costs throughput, as
    /// ureq hands out the oldest idle connection first (measured in `BENCHMARKS.md`).
    #[must_use]
    pub const fn max_idle_connections(mut self, connections: usize) -> Self {
        self.idle_connections = Some(connections);
        self
    }

    crate::settings::tls_setters!(
        refused: "[`build`](Self::build) refuses such a token endpoint, and a request to such a URL \
                  fails with [`Error::InsecureUrl`] before anything is sent"
    );

    /// The `User-Agent` of every request.
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Builds the client and loads the store: saved tokens are installed (a still-valid access
    /// token as is, a refresh token alone so that the first request refreshes).
    ///
    /// # Errors
    /// [`Error::Config`] without a token endpoint or exchange; [`Error::InsecureUrl`] for a
    /// plain-http token endpoint off loopback (see
    /// [`allow_insecure_http`](Self::allow_insecure_http)); [`Error::RootCertificates`] for
    /// root certificates that cannot be used; [`Error::Store`] if the store cannot be read;
    /// [`Error::Token`] if it holds an unusable token.
    pub fn build(self) -> Result<Client, Error> {
        let tls_config = self.tls.config()?;
        let mut config = self.config;
        if !self.seeded {
            config.backoff.seed = RandomState::new().hash_one(std::process::id()) | 1;
        }
        let refresh_timeout = Duration::from_millis(config.refresh_timeout.millis());
        let mut credentials = self.credentials;
        let mut token_url = self.token_url;
        // The agent of the calls to the authorization server (discovery, the refresh grant):
        // one deadline of the refresh timeout each.
        let server_agent = |wire| {
            agent(
                Timeouts::Global(Some(refresh_timeout)),
                self.connect_timeout,
                self.env_proxy,
                self.user_agent.as_deref(),
                Some(0),
                &tls_config,
                wire,
            )
        };
        if let (Some(issuer), None) = (&self.issuer, &self.exchange) {
            let discovery = server_agent(WireConnector { masks: Arc::default(), capture: None });
            let metadata =
                ServerMetadata::discover_with(&discovery, issuer, self.tls.allow_insecure_http)?;
            token_url.get_or_insert(metadata.token_endpoint);
            credentials.choose_from(&metadata.token_endpoint_auth_methods_supported);
        }
        let exchange: Box<dyn RefreshExchange> = match (self.exchange, token_url) {
            (Some(exchange), _) => exchange,
            (None, Some(token_url)) => {
                let uri = token_url
                    .parse::<http::Uri>()
                    .map_err(|e| Error::InvalidRequest(format!("the token endpoint: {e}")))?;
                tls::require_https(&uri, self.tls.allow_insecure_http, "the token endpoint")?;
                // No pooled connections to the token endpoint: refreshes are minutes apart, and a
                // pooled connection the server has closed meanwhile (Node's default keep-alive
                // is 5 s) fails after the refresh token was written to it, which reads as a
                // lost answer. A fresh connection per refresh costs one handshake per expiry.
                let poster = FormPoster::with_agent(server_agent);
                Box::new(OAuthExchange { poster, token_url, credentials })
            }
            (None, None) => {
                return Err(Error::Config("set a token_url, an issuer or a refresh exchange"));
            }
        };
        let api_masks = Arc::new(Masks::default());
        let api = agent(
            Timeouts::PerPhase(self.request_timeout),
            self.connect_timeout,
            self.env_proxy,
            self.user_agent.as_deref(),
            self.idle_connections,
            &tls_config,
            WireConnector { masks: Arc::clone(&api_masks), capture: None },
        );
        Client::from_parts(Parts {
            coordinator: Coordinator::new(config),
            api,
            exchange,
            expiry: self.expiry,
            store: self.store.unwrap_or_else(|| Box::new(MemoryStore::new())),
            on_store_error: self.on_store_error,
            max_redirects: self.max_redirects,
            lease_fallback: self.lease_fallback,
            tls: self.tls,
            api_masks,
        })
    }
}

impl Client {
    /// A builder with the defaults; set at least a token endpoint
    /// ([`ClientBuilder::token_url`]), an issuer ([`ClientBuilder::issuer`]) or a custom
    /// exchange ([`ClientBuilder::refresh_with`]).
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("token_url", &self.token_url)
            .field("issuer", &self.issuer)
            .field("credentials", &self.credentials)
            .field("custom_exchange", &self.exchange.is_some())
            .field("expiry", &self.expiry)
            .field("config", &self.config)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("env_proxy", &self.env_proxy)
            .field("max_redirects", &self.max_redirects)
            .field("lease_fallback", &self.lease_fallback)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}
