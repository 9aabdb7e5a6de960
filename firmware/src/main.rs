//! Example firmware: reauth-nal on a Cortex-M4F with a stub network stack, as a measurement of
//! what reauth-core and reauth-nal cost in flash and RAM. It runs the documented main loop:
//! restore the refresh token from "flash", submit requests, poll, handle events, sleep.
//!
//! The client lives in `.bss` (a `cortex_m::singleton!`), so `size -A` shows its RAM.

#![no_std]
#![no_main]

mod stub;

use core::hint::black_box;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use cortex_m_rt::entry;
use panic_halt as _;
use reauth_nal::reauth_core::expiry::{BodyCode, ExpiryRule};
use reauth_nal::reauth_core::{Generation, Instant};
use reauth_nal::{Client, ClientConfig, Endpoint, Event, OAuth2, Request, TokenStore};

use crate::stub::StubStack;

/// Two request slots, 512-byte requests, 1 KiB responses, a 256-byte access token and a
/// 128-byte refresh token.
type FwClient = reauth_nal::client_type!(StubStack, FlashStore, OAuth2<'static>,
    slots: 2, request: 512, response: 1024, access: 256, refresh: 128);

const API: Endpoint<'static> = Endpoint {
    addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80)),
    host: "api.example.com",
};
const AUTH: Endpoint<'static> = Endpoint {
    addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 80)),
    host: "auth.example.com",
};
/// Both expiry signals, so that the body-code matcher is linked in too.
const EXPIRY: ExpiryRule<'static> =
    ExpiryRule::STATUS_401.body_code(BodyCode { field: "code", values: &[409] });

/// Stands in for a flash page holding the refresh token.
struct FlashStore {
    page: [u8; 128],
}

impl TokenStore for FlashStore {
    type Error = ();

    fn save(&mut self, refresh_token: &str, _generation: Generation) -> Result<(), ()> {
        let dst = self.page.get_mut(..refresh_token.len()).ok_or(())?;
        dst.copy_from_slice(refresh_token.as_bytes());
        black_box(&self.page);
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    let config = ClientConfig { expiry: EXPIRY, ..ClientConfig::new(API, AUTH) };
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    let client: &'static mut FwClient = cortex_m::singleton!(
        : FwClient = Client::new(config, exchange, FlashStore { page: [0; 128] })
    )
    .unwrap(); // Runs once, so the singleton is still free.
    let mut net = StubStack::default();
    let mut ticks: u64 = 0;

    let _ = client.restore(Instant::from_millis(ticks), black_box("refresh-token-from-flash"));
    loop {
        ticks = black_box(ticks + 1);
        let now = Instant::from_millis(ticks);
        if client.free_slots() > 0 {
            let _ = client.submit(now, &Request::get(black_box("/api/status")));
        }
        while let Some(event) = client.poll(&mut net, now) {
            match event {
                Event::Response { id, .. } => {
                    black_box(client.response(id).map(|r| r.body().len()));
                    client.release(id);
                }
                Event::Failed { error, .. } => {
                    black_box(error.transport_kind());
                }
                Event::RefreshFailed { .. } if client.needs_login() => {
                    // A real device would run its provisioning flow here.
                    let _ = client.login(now, black_box("at"), black_box("rt"), None);
                }
                _ => {}
            }
        }
        black_box(client.poll_timeout());
        cortex_m::asm::wfi();
    }
}
