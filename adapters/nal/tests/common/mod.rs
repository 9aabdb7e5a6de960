//! Set-up shared by the integration tests of reauth-nal against the loopback mock issuer: a
//! token store standing in for flash, the quick-retry coordinator config, and the client config
//! and OAuth2 exchange for the issuer.
//!
//! Each test file compiles this module on its own, and not every file uses every helper: those
//! are marked `#[allow(dead_code)]`.

use std::string::{String, ToString};

use reauth_core::{Backoff, Config, Duration, Generation};
use reauth_nal::{ClientConfig, Endpoint, OAuth2, TokenStore};
use reauth_testkit::issuer::MockIssuer;

/// A flash page that keeps every refresh token saved to it, and fails on demand like a worn-out
/// page.
#[derive(Debug, Default)]
pub(crate) struct Flash {
    /// Every refresh token saved, oldest first.
    pub(crate) saved: Vec<String>,
    /// When set, every save fails with [`FlashError`] and keeps nothing.
    pub(crate) failing: bool,
}

/// The failure of a [`Flash`] save.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FlashError;

impl TokenStore for Flash {
    type Error = FlashError;

    fn save(&mut self, refresh_token: &str, _generation: Generation) -> Result<(), FlashError> {
        if self.failing {
            return Err(FlashError);
        }
        self.saved.push(refresh_token.to_string());
        Ok(())
    }
}

/// The coordinator with retries quick enough for a test (20 ms initial backoff).
pub(crate) fn quick() -> Config {
    Config {
        backoff: Backoff { initial: Duration::from_millis(20), ..Backoff::DEFAULT },
        ..Config::DEFAULT
    }
}

/// API and token endpoint both at `issuer`, named `host`, with the [`quick`] coordinator.
#[allow(dead_code)] // not used by secrets.rs, whose API endpoint may be elsewhere
pub(crate) fn config<'a>(host: &'a str, issuer: &MockIssuer) -> ClientConfig<'a> {
    let endpoint = Endpoint { addr: issuer.addr(), host };
    ClientConfig { coordinator: quick(), ..ClientConfig::new(endpoint, endpoint) }
}

/// The OAuth2 exchange at the issuer's token path, without client credentials.
#[allow(dead_code)] // not used by secrets.rs, which sends a client secret
pub(crate) fn oauth() -> OAuth2<'static> {
    OAuth2 { path: "/oauth/token", ..OAuth2::default() }
}
