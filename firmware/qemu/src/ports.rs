//! Source ports for smoltcp-nal that a server cannot still hold.
//!
//! smoltcp-nal 0.7 picks each connection's source port at random (WyRand, from a seed the
//! application may set with `seed_random_port`). Without keep-alive a device opens connections
//! fast enough that a new one now and then reuses the port of one the server side still holds
//! in TIME_WAIT; QEMU's user-mode network (slirp, 10 s TIME_WAIT, no TCP timestamps) then
//! refuses the SYN until the connect times out. [`FreshPorts`] seeds smoltcp-nal's generator
//! before each connect with a seed whose first port was not handed out in the last 10 to 20 s,
//! found by computing WyRand's first output for successive seeds (a few tries: the recent ports
//! are a fraction of the 16,383).
//!
//! smoltcp-nal calls its generator on every `connect` call, also while the connection is being
//! made; the socket's seed is set again before each, so a socket keeps its port. If smoltcp-nal
//! finds the port taken by another of its sockets it draws the next random one, as without
//! this wrapper.
//!
//! The host's smoltcp runs (`reauth firmware --stack smoltcp-tap`) use this same file
//! (`cli/src/tap.rs` includes it), so it depends on nothing of the firmware's: its clock comes
//! in as a function.

use core::net::SocketAddr;

use reauth_nal::embedded_nal::{TcpClientStack, nb};
use smoltcp::iface::SocketHandle;
use smoltcp_nal::{NetworkError, NetworkStack};

/// smoltcp-nal's dynamic port range: `49152 + r % (65535 - 49152)`.
const FIRST_PORT: u16 = 49_152;
const PORTS: usize = (u16::MAX - FIRST_PORT) as usize;
/// A port handed out is avoided for one to two of these (slirp's TIME_WAIT is 10 s; a
/// Linux server's is 60 s, which TCP timestamps take care of).
const GENERATION_MS: u32 = 10_000;
/// Seeds tried for a fresh port before taking whatever comes.
const TRIES: u32 = 64;

/// A smoltcp-nal stack whose connections get ports not used recently; see the module doc.
pub(crate) struct FreshPorts<'a, D: smoltcp::phy::Device, C, const SOCKETS: usize>
where
    C: embedded_time::Clock<T = u32>,
{
    stack: NetworkStack<'a, D, C>,
    /// The seed of each socket that is connecting or connected.
    seeds: [Option<(SocketHandle, u64)>; SOCKETS],
    /// The next seed to try.
    next_seed: u64,
    /// Ports handed out in this generation and the one before, one bit per port.
    recent: [[u32; PORTS.div_ceil(32)]; 2],
    /// When the current generation started, in milliseconds.
    generation_at: u32,
    /// Off: smoltcp-nal's own random ports, to compare.
    enabled: bool,
    /// Milliseconds from a monotonic clock.
    millis: fn() -> u32,
}

impl<'a, D: smoltcp::phy::Device, C, const SOCKETS: usize> FreshPorts<'a, D, C, SOCKETS>
where
    C: embedded_time::Clock<T = u32>,
{
    /// Wraps `stack`; `seed` varies the ports from one boot to the next, `millis` is a
    /// monotonic clock in milliseconds. When not `enabled`, every call passes through:
    /// smoltcp-nal's own random ports.
    pub(crate) fn new(
        stack: NetworkStack<'a, D, C>,
        seed: u64,
        enabled: bool,
        millis: fn() -> u32,
    ) -> Self {
        Self {
            enabled,
            millis,
            stack,
            seeds: [None; SOCKETS],
            next_seed: seed,
            recent: [[0; PORTS.div_ceil(32)]; 2],
            generation_at: millis(),
        }
    }

    /// The stack, to poll it.
    pub(crate) fn stack(&mut self) -> &mut NetworkStack<'a, D, C> {
        &mut self.stack
    }

    /// A seed whose port was not handed out recently, marked as handed out.
    fn fresh_seed(&mut self) -> u64 {
        let now = (self.millis)();
        if now.wrapping_sub(self.generation_at) >= GENERATION_MS {
            self.recent[1] = self.recent[0];
            self.recent[0] = [0; PORTS.div_ceil(32)];
            self.generation_at = now;
        }
        let mut seed = self.next_seed;
        for _ in 0..TRIES {
            seed = self.next_seed;
            self.next_seed = self.next_seed.wrapping_add(1);
            let index = usize::from(first_port(seed) - FIRST_PORT);
            let (word, bit) = (index / 32, 1u32 << (index % 32));
            if (self.recent[0][word] | self.recent[1][word]) & bit == 0 {
                self.recent[0][word] |= bit;
                break;
            }
        }
        seed
    }
}

/// The first port smoltcp-nal 0.7 draws after `seed_random_port(&seed.to_ne_bytes())`:
/// nanorand 0.8's WyRand step, then smoltcp-nal's mapping of its first two bytes.
fn first_port(seed: u64) -> u16 {
    let state = seed.wrapping_add(0xa076_1d64_78bd_642f);
    let product = u128::from(state).wrapping_mul(u128::from(state ^ 0xe703_7ed1_a0b4_28db));
    let output = ((product >> 64) ^ product) as u64;
    let bytes = output.to_ne_bytes();
    FIRST_PORT + u16::from_be_bytes([bytes[0], bytes[1]]) % (u16::MAX - FIRST_PORT)
}

impl<D: smoltcp::phy::Device, C, const SOCKETS: usize> TcpClientStack
    for FreshPorts<'_, D, C, SOCKETS>
where
    C: embedded_time::Clock<T = u32>,
{
    type TcpSocket = SocketHandle;
    type Error = NetworkError;

    fn socket(&mut self) -> Result<SocketHandle, NetworkError> {
        self.stack.socket()
    }

    fn connect(
        &mut self,
        socket: &mut SocketHandle,
        remote: SocketAddr,
    ) -> nb::Result<(), NetworkError> {
        if !self.enabled {
            return self.stack.connect(socket, remote);
        }
        let known = self.seeds.iter().flatten().find(|(h, _)| h == socket).map(|&(_, s)| s);
        let seed = match known {
            Some(seed) => seed,
            None => {
                let seed = self.fresh_seed();
                if let Some(free) = self.seeds.iter_mut().find(|s| s.is_none()) {
                    *free = Some((*socket, seed));
                }
                seed
            }
        };
        self.stack.seed_random_port(&seed.to_ne_bytes());
        self.stack.connect(socket, remote)
    }

    fn send(&mut self, socket: &mut SocketHandle, data: &[u8]) -> nb::Result<usize, NetworkError> {
        self.stack.send(socket, data)
    }

    fn receive(
        &mut self,
        socket: &mut SocketHandle,
        buffer: &mut [u8],
    ) -> nb::Result<usize, NetworkError> {
        self.stack.receive(socket, buffer)
    }

    fn close(&mut self, socket: SocketHandle) -> Result<(), NetworkError> {
        for entry in &mut self.seeds {
            if entry.is_some_and(|(h, _)| h == socket) {
                *entry = None;
            }
        }
        self.stack.close(socket)
    }
}
