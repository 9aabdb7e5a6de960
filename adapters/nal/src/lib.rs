//! `reauth-nal`: a poll-driven HTTP/1.1 client for microcontrollers that keeps its bearer token
//! fresh. `no_std`, no heap, no blocking, no `unsafe`.
//!
//! It drives [`reauth_core::Coordinator`] over any [`embedded_nal::TcpClientStack`] (or a TLS
//! layer on top, see [`transport`]): `K` request slots and one refresh exchange, each with its
//! own connection, advanced by [`Client::poll`] from the firmware's main loop. When the access
//! token expires, exactly one refresh runs on its own socket; requests that need a token wait in
//! their slots (they were copied in, so they can be replayed) and go out again with the new token,
//! or are rejected with a typed reason if the refresh is refused. A rotated refresh token is
//! handed to a [`TokenStore`] (flash) before it is ever used.
//!
//! # Quick start
//!
//! 1. Build a [`Client`] from a [`ClientConfig`] (API and token endpoint addresses, expiry rule,
//!    timeouts), a [`RefreshExchange`] ([`OAuth2`] for the standard grant) and a [`TokenStore`].
//!    Size its buffers by name with [`client_type!`] (see [`Client`]).
//! 2. Install credentials: [`Client::login`] after a login, or [`Client::restore`] with the
//!    refresh token kept in flash.
//! 3. [`Client::submit`] requests; in the main loop call [`Client::poll`] until it returns `None`
//!    and handle each [`Event`]; sleep until the stack has news or [`Client::poll_timeout`].
//!
//! # Sizing
//!
//! Name the client's type with [`client_type!`], which takes the five sizes below by name
//! (`slots`, `request`, `response`, `access`, `refresh`), so that two cannot be swapped silently;
//! [`Client::new`] refuses sizes that cannot work at compile time.
//!
//! - `K` slots: requests open at once. The stack MUST offer `K + 1` sockets (one per slot and
//!   one for the refresh exchange).
//! - `REQ` bytes per request buffer: the request head and body plus `Authorization: Bearer `,
//!   the access token (`A` bytes) and a line break; [`Client::submit`] checks this against `A`
//!   up front. The refresh request (about 200 bytes of head plus the form-encoded refresh token,
//!   up to three times `R`) uses a buffer of the same size.
//! - `RESP` bytes per response buffer: the response head (servers send 150 to 500 bytes) and
//!   the body. The token endpoint's answer (about 150 bytes plus both tokens) uses a buffer of
//!   the same size. A chunked body needs a few bytes of slack for its framing.
//! - RAM: about `(K + 1) * (REQ + RESP) + A + R` bytes plus a few hundred, all inside the
//!   [`Client`] value (no heap); the example firmware's client (`K = 2`, 512, 1024, 256, 128)
//!   takes 6,048 bytes. The two crates add 15.5 KiB of flash to it (thumbv7em,
//!   `opt-level = "s"`, without the default features), 16.0 KiB with `keep-alive`, 17.6 KiB
//!   with `keep-alive` and the default features (BENCHMARKS.md, "Firmware footprint").
//!
//! # Network stacks
//!
//! Any [`embedded_nal::TcpClientStack`] whose `receive` meets the
//! [receive contract](stack) works as is (std-embedded-nal does). smoltcp-nal, w5500 and
//! AT-command modems read `receive` differently: wrap them in their [stack profile](stack)
//! ([`stack::W5500`], [`stack::AtModem`], and `stack::SmoltcpNal` with the `smoltcp` feature).
//!
//! HTTP: one request per connection (`Connection: close`) unless the `keep-alive` feature is
//! on (below), responses framed by
//! `Content-Length`, chunked encoding (decoded in place) or the end of the connection; a
//! response that does not fit its buffer is [`Error::ResponseTooLarge`], never truncated. The
//! response head is read by a small parser of our own with httparse's grammar (tested against
//! httparse, which took 1.8 KiB more flash).
//! Connect, response and idle timeouts run on the caller's clock ([`Timeouts`]).
//!
//! Tokens never appear in `Debug`, `Display`, errors or logs. The buffers that held them (a
//! request's `Authorization` line, the refresh request and answer) are wiped when they are done
//! with.
//!
//! Features, all off by default but `client-secret-basic` and `refusal-description`:
//! - `refusal-description` (default): [`Client::refusal_description`], the token endpoint's
//!   `error_description` of its last refusal, bounded and sanitised (64 B of RAM, 588 B of
//!   flash).
//! - `client-secret-basic` (default): `client_secret_basic` client authentication in
//!   [`OAuth2`], the default when a secret is given (1,068 B of flash on thumbv7em);
//!   without it a secret goes in the request body.
//! - `keep-alive`: a slot keeps its connection to the API for its next request, for
//!   [`Timeouts::keep_alive`] (4 s by default): no TCP or TLS handshake per request. Only
//!   idempotent requests (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`) use a kept connection, so
//!   that when the server turns out to have closed it, the request can go again on a new one;
//!   a `POST` always has its own, and so has every refresh (it consumes the refresh token).
//!   A response with `Connection: close`, from HTTP/1.0, or delimited by the end of the
//!   connection ends it. Costs 468 B of flash on thumbv7em.
//! - `smoltcp`: [`stack::SmoltcpNal`](stack), the profile of smoltcp-nal 0.7 (a dependency
//!   on smoltcp-nal).
//! - `log`: every [`Event`] that [`Client::poll`] hands out is logged under the target
//!   `reauth_nal` (answers at debug, failures at warn, a lost rotated token at error), and the
//!   coordinator's own state changes under `reauth`. Free when off.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

mod client;
#[doc(hidden)]
pub mod codec;
mod config;
mod device;
mod error;
mod exchange;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod refresh;
mod slot;
pub mod stack;
mod store;
pub mod transport;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod personality;
#[cfg(test)]
mod tests;

pub use client::{Client, Event, REFUSAL_DESCRIPTION_LEN, RefusalDescription};
pub use config::{ClientConfig, Endpoint, Timeouts};
pub use device::{DEVICE_CODE_CAPACITY, DeviceEvent, DeviceFailure, DeviceLogin};
pub use error::{AnswerError, Error, HttpError, LoginError, Stage, SubmitError, TimeoutKind};
pub use http::{Request, Response};
pub use refresh::{OAuth2, RefreshExchange, Refreshed, Unusable};
pub use store::{NoStore, TokenStore};
pub use transport::{IoError, Transport};

/// The crates in this crate's public API, re-exported so that firmware uses the same versions.
pub use {embedded_nal, reauth_core};
