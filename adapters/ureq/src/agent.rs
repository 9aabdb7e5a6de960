//! How every ureq agent of the crate is set up: statuses handed back as responses, no redirect
//! followed by ureq, no proxy from the environment unless asked, the TLS roots of the client's
//! settings, and the wire filter that keeps secrets out of ureq's trace log
//! ([`wire`](crate::wire)). The API agent, the token endpoint's, discovery's and each login's.

use core::time::Duration;

use ureq::Agent;
use ureq::config::RedirectAuthHeaders;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, DefaultConnector};

use crate::wire::WireConnector;

/// An agent that hands statuses back as responses and never follows a redirect itself (the
/// client follows API redirects by hand; the token endpoint's are not followed at all).
pub(crate) fn agent(
    timeouts: Timeouts,
    connect: Option<Duration>,
    env_proxy: bool,
    user_agent: Option<&str>,
    idle_connections: Option<usize>,
    tls: &ureq::tls::TlsConfig,
    wire: WireConnector,
) -> Agent {
    let mut config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .redirect_auth_headers(RedirectAuthHeaders::Never)
        .tls_config(tls.clone())
        .timeout_connect(connect);
    config = match timeouts {
        Timeouts::Global(limit) => config.timeout_global(limit),
        Timeouts::PerPhase(limit) => config
            .timeout_send_request(limit)
            .timeout_send_body(limit)
            .timeout_recv_response(limit)
            .timeout_recv_body(limit),
    };
    if !env_proxy {
        config = config.proxy(None);
    }
    if let Some(user_agent) = user_agent {
        config = config.user_agent(user_agent);
    }
    if let Some(idle) = idle_connections {
        config = config.max_idle_connections(idle).max_idle_connections_per_host(idle);
    }
    let connector = DefaultConnector::new().chain(wire);
    Agent::with_parts(config.build(), connector, DefaultResolver::default())
}

/// How an agent bounds an exchange.
pub(crate) enum Timeouts {
    /// One deadline for the whole call: the refresh call, which must end by the refresh timeout.
    Global(Option<Duration>),
    /// A limit per phase: API calls (see [`ClientBuilder::request_timeout`] for why).
    PerPhase(Option<Duration>),
}
