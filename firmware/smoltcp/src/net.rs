//! A smoltcp network stack as firmware builds it: an Ethernet interface with a static address
//! and a default route, four TCP sockets with 2 KiB buffers each way, and smoltcp-nal on top.
//! The NIC hands smoltcp frames the optimizer cannot see, so every receive path is kept; both
//! binaries use this module, so their difference is what the reauth client adds.

use core::hint::black_box;

use embedded_time::fraction::Fraction;
use smoltcp_nal::NetworkStack;
use smoltcp_nal::smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp_nal::smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp_nal::smoltcp::socket::tcp;
use smoltcp_nal::smoltcp::time::Instant;
use smoltcp_nal::smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

/// The stack both binaries drive.
pub type Stack = NetworkStack<'static, Nic, Ticks>;

/// TCP sockets: the reauth client needs one per request slot plus one for the refresh.
const SOCKETS: usize = 4;
/// Bytes of each socket's receive and send buffer.
const SOCKET_BUFFER: usize = 2048;

/// A NIC whose frames come from memory the optimizer cannot see.
pub struct Nic {
    rx: [u8; 1536],
    tx: [u8; 1536],
}

pub struct Rx<'a>(&'a mut [u8]);
pub struct Tx<'a>(&'a mut [u8]);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let len = black_box(self.0.len()).min(self.0.len());
        f(&self.0[..len])
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(self.0.len());
        let result = f(&mut self.0[..len]);
        black_box(&self.0[..len]);
        result
    }
}

impl Device for Nic {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let Self { rx, tx } = self;
        black_box(rx[0] != 0).then(|| (Rx(&mut rx[..]), Tx(&mut tx[..])))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx[..]))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A millisecond clock read from a register the optimizer cannot see.
pub struct Ticks;

impl embedded_time::Clock for Ticks {
    type T = u32;
    const SCALING_FACTOR: Fraction = Fraction::new(1, 1000);

    fn try_now(&self) -> Result<embedded_time::Instant<Self>, embedded_time::clock::Error> {
        Ok(embedded_time::Instant::new(black_box(0)))
    }
}

/// Builds the stack; runs once (the buffers are singletons).
pub fn stack() -> Stack {
    let mut nic = Nic { rx: [0; 1536], tx: [0; 1536] };
    let mac = HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 0x01]));
    let mut iface = Interface::new(Config::new(mac), &mut nic, Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(Ipv4Address::new(192, 0, 2, 10).into(), 24));
    });
    let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::new(192, 0, 2, 254));
    let storage = cortex_m::singleton!(: [SocketStorage<'static>; SOCKETS] = [SocketStorage::EMPTY; SOCKETS])
        .unwrap(); // Runs once.
    let buffers = cortex_m::singleton!(: [[u8; SOCKET_BUFFER]; 2 * SOCKETS] = [[0; SOCKET_BUFFER]; 2 * SOCKETS])
        .unwrap(); // Runs once.
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut buffers = buffers.iter_mut();
    while let (Some(rx), Some(tx)) = (buffers.next(), buffers.next()) {
        let rx = tcp::SocketBuffer::new(&mut rx[..]);
        let tx = tcp::SocketBuffer::new(&mut tx[..]);
        sockets.add(tcp::Socket::new(rx, tx));
    }
    NetworkStack::new(iface, nic, sockets, Ticks)
}
