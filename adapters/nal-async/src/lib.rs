//! `reauth-nal-async`: an async HTTP/1.1 client for embedded devices that keeps its bearer token
//! fresh for every task of an executor. `no_std`, no heap, no `unsafe`.
//!
//! It drives [`reauth_core::Coordinator`] over any embedded-nal-async stack
//! ([`TcpConnect`](embedded_nal_async::TcpConnect) and [`Dns`](embedded_nal_async::Dns), with
//! embedded-io-async connections): embassy-net, and the u-blox cellular and short-range
//! crates. One [`Client`] is shared by many tasks: each [`Client::send`] call sends one request
//! with the current access token and returns its response. When the token expires exactly one
//! refresh runs, on the task whose request started it; the others park (their wakers are kept,
//! nothing polls) and are woken to go again with the new token, or get a typed rejection if the
//! refresh is refused. A rotated refresh token is handed to a
//! [`TokenStore`] before it is ever used.
//!
//! # Quick start
//!
//! 1. Build a [`Client`] from a [`ClientConfig`] (API and token endpoint, expiry rule,
//!    timeouts), a [`RefreshExchange`]
//!    ([`OAuth2`] for the standard grant), a
//!    [`TokenStore`] and a [`Clock`] ([`EmbassyClock`] with the
//!    `embassy-time` feature). Put it in a `static` ([`Client::new`] is `const`).
//! 2. Install credentials: [`Client::login`], or [`Client::restore`] with the refresh token
//!    kept in flash.
//! 3. From any task: `client.send(&transport, &Request::get("/api/x"), &mut buf).await`, where
//!    `transport` is a [`Tcp`] over the stack (or [`tls::Tls`] over one, feature `tls`).
//!
//! # Example
//!
//! Two tasks of one executor share a client; the first request finds no access token, one of
//! them runs the refresh, the other waits for it.
//!
//! ```no_run
//! # async fn demo<T, D, C>(tcp: &T, dns: &D, clock: C, refresh_token_from_flash: &str)
//! # where T: embedded_nal_async::TcpConnect, D: embedded_nal_async::Dns, C: reauth_nal_async::Clock {
//! use core::net::{IpAddr, Ipv4Addr};
//! use reauth_nal_async::embassy_sync::blocking_mutex::raw::NoopRawMutex;
//! use reauth_nal_async::{Client, ClientConfig, Endpoint, NoStore, OAuth2, Request, Tcp};
//!
//! let server = Endpoint::at(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80, "api.example");
//! let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
//! // 4 open requests at most, 512-byte access and 256-byte refresh tokens.
//! let client: Client<'_, NoopRawMutex, NoStore, OAuth2<'_>, C, 4, 512, 256> =
//!     Client::new(ClientConfig::new(server, server), exchange, NoStore, clock);
//! client.restore(refresh_token_from_flash).unwrap();
//! let net = Tcp::new(tcp, dns); // or tls::Tls::new(Tcp::new(tcp, dns), CA_DER, rng, ..)
//! let task = async || {
//!     let mut buf = [0u8; 2048]; // the request, then the response (or the refresh)
//!     match client.send(&net, &Request::get("/api/status"), &mut buf).await {
//!         Ok(response) => { /* response.status(), response.body() */ }
//!         Err(error) => { /* typed: rejected, transport, timeout, HTTP, too large */ }
//!     }
//! };
//! embassy_futures::join::join(task(), task()).await;
//! # }
//! ```
//!
//! # The HTTP exchange
//!
//! The bytes on the wire are reauth-nal's: its request writer, refresh request writer and
//! response reader are sans-IO and shared through `reauth_nal::codec`, so both adapters speak
//! the same HTTP/1.1 (one request per connection, `Content-Length`, chunked or close-delimited
//! bodies, interim responses skipped, a response that does not fit is
//! [`Error::ResponseTooLarge`], never truncated). This crate adds only the awaiting: connect,
//! write, flush and read each under the deadlines of [`Timeouts`].
//!
//! # Memory
//!
//! The [`Client`] holds the coordinator, the tokens (`A + R` bytes) and one waiter per open
//! request (`N`): a few hundred bytes. Each [`Client::send`] call brings its own buffer (see
//! there), which the refresh borrows when that call runs it; with TLS the buffer also holds the
//! connection's record buffers.
//!
//! Tokens never appear in `Debug`, `Display` or errors; the caller's buffer is wiped of them
//! before a call returns (except the response it hands back).
//!
//! Features, all off by default but `client-secret-basic` and `refusal-description`:
//! - `client-secret-basic` (default): `client_secret_basic` client authentication (HTTP Basic)
//!   in [`OAuth2`]; without it a secret goes in the form body.
//! - `refusal-description` (default): [`Client::refusal_description`], the token endpoint's
//!   `error_description` of its last refusal, bounded and sanitised.
//! - `embassy-time`: [`EmbassyClock`], the [`Clock`] on embassy-time.
//! - `tls`: [`tls::Tls`], TLS 1.3 through embedded-tls (async), with the server's certificate
//!   checked against a pinned CA.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

mod client;
mod clock;
mod config;
mod error;
mod exchange;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;

pub use client::{Client, Stats};
pub use clock::Clock;
#[cfg(feature = "embassy-time")]
pub use clock::EmbassyClock;
pub use config::{ClientConfig, Endpoint, Timeouts};
pub use error::{AnswerError, Error, HttpError, LoginError, Stage, TimeoutKind};
pub use transport::{Tcp, TcpConnection, TcpError, Transport};

/// What a request is and what comes back: reauth-nal's types.
pub use reauth_nal::{NoStore, OAuth2, RefreshExchange, Request, Response, TokenStore};
/// The crates in this crate's public API, re-exported so that firmware uses the same versions.
pub use {embassy_sync, embedded_nal_async, reauth_core, reauth_nal};
