//! smoltcp on a TAP device, through smoltcp-nal, as firmware built on smoltcp runs reauth-nal:
//! the stack of `reauth firmware --stack smoltcp-tap`.
//!
//! Runs inside a network namespace of its own ([`crate::netns`]): [`TapStack::open`] makes the
//! TAP device `reauth0` there, gives the kernel's side [`KERNEL_IP`] (where the mock issuer
//! listens) and smoltcp's side [`STACK_IP`]. Every byte between reauth-nal and the issuer
//! crosses the TAP device as an Ethernet frame that smoltcp builds or parses.
//!
//! Every TCP socket sends RFC 7323 timestamps from one monotonic clock. smoltcp-nal picks source
//! ports at random, so a new connection sometimes reuses the 4-tuple of one the issuer still
//! holds in TIME_WAIT; without timestamps the issuer's kernel may answer its SYN with an ACK for
//! the old connection, smoltcp resets, and the connect waits for smoltcp's SYN retransmission
//! (about 700 ms). With a newer timestamp the kernel accepts the SYN at once (RFC 6191).
//!
//! Ports also come from [`FreshPorts`] (the firmware's, `firmware/qemu/src/ports.rs`): a port is
//! not handed out again for 10 to 20 s, so a new connection never meets the issuer's socket of a
//! connection closed a moment ago, before it even reached TIME_WAIT (without it, about one
//! connect in 6,000 waited ~700 ms although timestamps were on).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::Instant as StdInstant;

use embedded_time::fraction::Fraction;
use reauth_nal::embedded_nal::{TcpClientStack, nb};
use reauth_nal::stack::SmoltcpNal;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, IpCidr};
use smoltcp_nal::{NetworkError, NetworkStack};

use crate::firmware::Drive;
use crate::netns;

/// The firmware's source-port picker, shared so that both smoltcp runs pick ports alike.
/// `fresh_ports.rs` is a symbolic link to `firmware/qemu/src/ports.rs`: `cargo package` copies
/// the file it points to, so the published crate builds without the firmware's tree.
#[path = "fresh_ports.rs"]
mod ports;

use self::ports::FreshPorts;

/// The TAP device's name inside the namespace.
pub(crate) const DEVICE: &str = "reauth0";
/// The kernel's side of the TAP device; the mock issuer listens here. A documentation address
/// (RFC 5737) that exists only inside the namespace.
pub(crate) const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// smoltcp's side.
const STACK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// TCP sockets: the firmware loop's slots, the refresh exchange, and room for sockets that are
/// still closing.
const SOCKETS: usize = 16;
/// Each socket's receive and transmit buffer.
const TCP_BUFFER: usize = 4096;

/// smoltcp-nal over the TAP device, in reauth-nal's smoltcp profile.
pub(crate) struct TapStack {
    net: SmoltcpNal<FreshPorts<'static, TunTapInterface, Millis, SOCKETS>>,
    /// The TAP device's descriptor, to wait on.
    fd: RawFd,
}

impl TapStack {
    /// Makes the TAP device in the current namespace and brings smoltcp up on it, its sockets
    /// sending TCP timestamps when `timestamps` and taking ports from [`FreshPorts`] when
    /// `fresh_ports` (see the module doc).
    ///
    /// # Errors
    ///
    /// Not inside a namespace of ours, or the device cannot be made or opened.
    pub(crate) fn open(
        timestamps: bool,
        fresh_ports: bool,
    ) -> Result<Self, Box<dyn core::error::Error>> {
        if netns::current().is_none() {
            return Err("the TAP device is only made inside a network namespace of ours".into());
        }
        make_device()?;
        let mut device = TunTapInterface::new(DEVICE, Medium::Ethernet)?;
        let fd = device.as_raw_fd();
        wait_for_carrier()?;
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
        let mut config = Config::new(mac.into());
        config.random_seed = u64::from(std::process::id());
        let mut iface = Interface::new(config, &mut device, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(STACK_IP.into(), 24));
        });
        let mut sockets = SocketSet::new(Vec::new());
        for _ in 0..SOCKETS {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            );
            if timestamps {
                socket.set_tsval_generator(Some(tsval));
            }
            sockets.add(socket);
        }
        let stack = NetworkStack::new(iface, device, sockets, Millis);
        let seed = u64::from(std::process::id());
        Ok(Self { net: SmoltcpNal(FreshPorts::new(stack, seed, fresh_ports, millis)), fd })
    }
}

impl Drive for TapStack {
    const ISSUER_IP: IpAddr = IpAddr::V4(KERNEL_IP);

    fn drive(&mut self) -> bool {
        self.net.0.stack().poll().unwrap_or(false)
    }

    fn nap(&mut self) {
        // Until a frame arrives, or 1 ms (smoltcp's `wait` drops the microseconds of its
        // timeout: 500 µs would not wait at all).
        let _ = smoltcp::phy::wait(self.fd, Some(smoltcp::time::Duration::from_millis(1)));
    }
}

impl TcpClientStack for TapStack {
    type TcpSocket = smoltcp::iface::SocketHandle;
    type Error = NetworkError;

    fn socket(&mut self) -> Result<Self::TcpSocket, NetworkError> {
        self.net.socket()
    }

    fn connect(
        &mut self,
        socket: &mut Self::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), NetworkError> {
        self.net.connect(socket, remote)
    }

    fn send(
        &mut self,
        socket: &mut Self::TcpSocket,
        data: &[u8],
    ) -> nb::Result<usize, NetworkError> {
        self.net.send(socket, data)
    }

    fn receive(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, NetworkError> {
        self.net.receive(socket, buffer)
    }

    fn close(&mut self, socket: Self::TcpSocket) -> Result<(), NetworkError> {
        self.net.close(socket)
    }
}

/// Makes the TAP device [`DEVICE`] in the current namespace, the kernel's side at
/// [`KERNEL_IP`]; the smoltcp run and `reauth firmware-async` (embassy-net) open it.
///
/// # Errors
///
/// `ip` failed.
pub(crate) fn make_device() -> std::io::Result<()> {
    netns::ip(["tuntap", "add", "dev", DEVICE, "mode", "tap"])?;
    netns::ip(["addr", "add", &format!("{KERNEL_IP}/24"), "dev", DEVICE])?;
    netns::ip(["link", "set", DEVICE, "up"])
}

/// Waits (at most 2 s) until the kernel sees the TAP device's carrier, which comes up once this
/// process has attached to it: a frame sent before is dropped, and the first connects would
/// then wait a second for smoltcp to ask for the issuer's MAC address again.
pub(crate) fn wait_for_carrier() -> Result<(), Box<dyn core::error::Error>> {
    let carrier = format!("/sys/class/net/{DEVICE}/carrier");
    let deadline = StdInstant::now() + core::time::Duration::from_secs(2);
    while std::fs::read_to_string(&carrier).map(|c| c.trim() != "1").unwrap_or(true) {
        if StdInstant::now() >= deadline {
            return Err(format!("{DEVICE} has no carrier after 2 s").into());
        }
        std::thread::sleep(core::time::Duration::from_millis(10));
    }
    Ok(())
}

/// Milliseconds since the first reading, for smoltcp-nal and the TCP timestamps.
fn millis() -> u32 {
    static START: OnceLock<StdInstant> = OnceLock::new();
    let elapsed = START.get_or_init(StdInstant::now).elapsed();
    u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX)
}

/// The TCP timestamp value of every socket (see the module doc).
fn tsval() -> u32 {
    millis()
}

/// The clock smoltcp-nal reads, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Millis;

impl embedded_time::Clock for Millis {
    type T = u32;
    const SCALING_FACTOR: Fraction = Fraction::new(1, 1000);

    fn try_now(&self) -> Result<embedded_time::Instant<Self>, embedded_time::clock::Error> {
        Ok(embedded_time::Instant::new(millis()))
    }
}
