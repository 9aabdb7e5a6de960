//! Baseline: smoltcp and smoltcp-nal with a raw GET loop, no reauth. `smoltcp_reauth` minus this
//! is what reauth-core + reauth-nal cost a firmware that already has a smoltcp stack.

#![no_std]
#![no_main]

#[path = "../net.rs"]
mod net;

use core::hint::black_box;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use cortex_m_rt::entry;
use panic_halt as _;
use reauth_nal::embedded_nal::{TcpClientStack, nb};

const API: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80));

#[entry]
fn main() -> ! {
    let mut stack = net::stack();
    let mut response = [0u8; 1024];
    loop {
        let _ = stack.poll();
        if let Ok(mut socket) = stack.socket() {
            if stack.connect(&mut socket, black_box(API)).is_ok() {
                let request =
                    black_box(b"GET /api/status HTTP/1.1\r\nHost: api\r\n\r\n".as_slice());
                let mut sent = 0;
                while let Some(rest) = request.get(sent..).filter(|r| !r.is_empty()) {
                    match stack.send(&mut socket, rest) {
                        Ok(n) => sent += n,
                        Err(nb::Error::WouldBlock) => cortex_m::asm::wfi(),
                        Err(nb::Error::Other(_)) => break,
                    }
                    let _ = stack.poll();
                }
                if let Ok(n) = stack.receive(&mut socket, &mut response) {
                    black_box(response.get(..n));
                }
            }
            let _ = stack.close(socket);
        }
        cortex_m::asm::wfi();
    }
}
