//! What the client is told once, at construction: where the API and the token endpoint are, what
//! counts as "token expired", and how long each step of an exchange may take.

use core::net::IpAddr;

use reauth_core::expiry::ExpiryRule;
pub use reauth_nal::Timeouts;

/// The settings of a [`Client`](crate::Client). Every field is a plain value or a borrowed
/// slice, so a `ClientConfig<'static>` can be built in a `const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig<'a> {
    /// Where requests go.
    pub api: Endpoint<'a>,
    /// Where the refresh exchange goes; the path comes from the
    /// [`RefreshExchange`](crate::RefreshExchange).
    pub token: Endpoint<'a>,
    /// The coordinator's tunables (refresh-ahead window, waits, retries).
    pub coordinator: reauth_core::Config,
    /// What counts as "token expired" in an API response (default: status 401).
    pub expiry: ExpiryRule<'a>,
    /// How long each step of an exchange may take. `keep_alive` is not used: every exchange has
    /// its own connection.
    pub timeouts: Timeouts,
    /// Every exchange MUST go over an encrypted transport ([`Transport::ENCRYPTED`], e.g.
    /// [`tls::Tls`](crate::tls::Tls) with the `tls` feature): [`Client::send`] with any other
    /// fails with [`Error::InsecureTransport`] before a byte is sent. Default false.
    ///
    /// [`Transport::ENCRYPTED`]: crate::Transport::ENCRYPTED
    /// [`Client::send`]: crate::Client::send
    /// [`Error::InsecureTransport`]: crate::Error::InsecureTransport
    pub https: bool,
}

impl<'a> ClientConfig<'a> {
    /// A configuration with the defaults: the coordinator's
    /// [`Config::DEFAULT`](reauth_core::Config::DEFAULT), 401 as the only expiry signal,
    /// [`Timeouts::DEFAULT`].
    #[must_use]
    pub const fn new(api: Endpoint<'a>, token: Endpoint<'a>) -> Self {
        Self {
            api,
            token,
            coordinator: reauth_core::Config::DEFAULT,
            expiry: ExpiryRule::STATUS_401,
            timeouts: Timeouts::DEFAULT,
            https: false,
        }
    }
}

/// One HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// The server's name: looked up through [`embedded_nal_async::Dns`] unless
    /// [`addr`](Self::addr) is set, and the name a TLS transport verifies (SNI).
    pub name: &'a str,
    /// The TCP port.
    pub port: u16,
    /// A fixed address: no lookup.
    pub addr: Option<IpAddr>,
    /// The `Host` header: the name, with `:port` if the port is not the scheme's default.
    pub host: &'a str,
}

impl<'a> Endpoint<'a> {
    /// An endpoint at a fixed address; `host` is both the `Host` header and the TLS name.
    #[must_use]
    pub const fn at(addr: IpAddr, port: u16, host: &'a str) -> Self {
        Self { name: host, port, addr: Some(addr), host }
    }
}
