//! A thread-safe blocking HTTP client on [ureq] 3 that keeps its bearer token fresh, driven by
//! the [`reauth_core`] coordinator.
//!
//! Share one [`Client`] among all threads. When the access token expires, exactly one thread
//! performs the refresh (the OAuth 2.0 refresh grant, or an exchange of your own); the others
//! wait on a condition variable and are then replayed with the new token, or get a typed
//! [`Error`]. A 401 for a token older than the current one is replayed without a refresh; a
//! network blip or a 503 from the token endpoint is retried with backoff and never logs the user
//! out; a refused refresh token rejects every waiting request at once with
//! [`Error::NeedsLogin`]. The rotated refresh token is saved to a [`TokenStore`] before the new
//! access token is used.
//!
//! Tokens never appear in `Debug`, `Display` or errors; the refresh token is only ever sent to
//! the token endpoint; the access token goes only to the origin each request addresses, never
//! across a redirect to another origin. That holds for logs too, at every level: at `trace`,
//! `ureq_proto` hex-dumps the request and response heads and response bodies it handles, so the
//! client hands ureq placeholders for its `Authorization` values and takes the token endpoint's
//! answers out of the byte stream before ureq reads them (a filter under ureq, after TLS). What
//! remains for programs that trace other crates: rustls's buffers are not wiped, and a request
//! the application builds around the token itself ([`Client::send_with`]) is logged as built.
//!
//! # Examples
//!
//! ```no_run
//! use core::time::Duration;
//! use reauth_ureq::{Client, Expiry, FileStore};
//!
//! let client = Client::builder()
//!     .token_url("https://auth.example.com/oauth/token")
//!     .client_id("my-app")
//!     .expiry(Expiry::default().body_code("code", &[409]))
//!     .refresh_timeout(Duration::from_secs(10))
//!     .store(FileStore::new("/var/lib/my-app/tokens.json"))
//!     .build()?;
//! let worker = client.clone();
//! std::thread::spawn(move || worker.get("https://api.example.com/jobs"));
//! let me = client.get("https://api.example.com/me")?.into_body().read_to_string()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod agent;
#[cfg(feature = "private-key-jwt")]
mod assertion;
mod authorization_code;
mod builder;
mod client;
mod credentials;
mod device;
mod discovery;
mod error;
mod exchange;
mod expiry;
mod file_store;
mod form_post;
mod lease;
mod record;
mod redirect;
#[cfg(feature = "redis")]
mod redis_store;
mod settings;
mod stats;
mod store;
mod tls;
mod wire;

#[cfg(feature = "private-key-jwt")]
pub use assertion::{ClientAssertionKey, KeyError};
pub use authorization_code::{
    AuthorizationCodeError, AuthorizationCodeLogin, AuthorizationPrompt, CALLBACK_PATH,
    challenge_s256,
};
pub use builder::ClientBuilder;
pub use client::Client;
pub use device::{DEVICE_CODE_CAPACITY, DeviceError, DeviceLogin, DevicePrompt};
pub use discovery::{DiscoveryError, ServerMetadata};
/// The parsers of untrusted input that have no public entry point of their own, for the fuzz
/// targets under `fuzz/`; outside any compatibility promise.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::authorization_code::judge_request_head;
    pub use crate::discovery::check_discovery;
}
pub use error::Error;
pub use exchange::{
    ACCESS_CAPACITY, NewTokens, QUEUE_CAPACITY, REFRESH_CAPACITY, RefreshError, RefreshExchange,
};
pub use expiry::{Expiry, ResponseView};
pub use file_store::FileStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use stats::Stats;
pub use store::{Lease, MemoryStore, StoreError, StoredTokens, TokenStore};
pub use tls::{TlsError, TlsProblem};

/// The HTTP crate whose `Request` and `Response` the client speaks.
pub use http;
/// The core crate, for [`Config`](reauth_core::Config) and the types in [`Client::state`].
pub use reauth_core;
/// The ureq version the client is built on, for [`ureq::Body`] and [`ureq::Error`].
pub use ureq;
