//! Baseline firmware: the same stub stack and main loop shape as `main.rs`, exchanging raw
//! bytes without reauth. The difference in size is what reauth-core and reauth-nal add.

#![no_std]
#![no_main]

#[path = "../stub.rs"]
mod stub;

use core::hint::black_box;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use cortex_m_rt::entry;
use panic_halt as _;
use reauth_nal::embedded_nal::{TcpClientStack, nb};

use crate::stub::StubStack;

const API: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80));

#[entry]
fn main() -> ! {
    let mut net = StubStack::default();
    let mut response = [0u8; 1024];
    loop {
        if let Ok(mut socket) = net.socket() {
            if net.connect(&mut socket, black_box(API)).is_ok() {
                let request =
                    black_box(b"GET /api/status HTTP/1.1\r\nHost: api\r\n\r\n".as_slice());
                let mut sent = 0;
                while let Some(rest) = request.get(sent..).filter(|r| !r.is_empty()) {
                    match net.send(&mut socket, rest) {
                        Ok(n) => sent += n,
                        Err(nb::Error::WouldBlock) => cortex_m::asm::wfi(),
                        Err(nb::Error::Other(_)) => break,
                    }
                }
                if let Ok(n) = net.receive(&mut socket, &mut response) {
                    black_box(response.get(..n));
                }
            }
            let _ = net.close(socket);
        }
        cortex_m::asm::wfi();
    }
}
