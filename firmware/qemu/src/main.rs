//! Firmware for QEMU's `mps2-an386` board (Cortex-M4F): reauth-nal over smoltcp-nal and smoltcp,
//! on the board's emulated SMSC LAN9118 NIC, as a device would run it.
//!
//! 1. Read the run's settings through semihosting (the QEMU command line's `arg=`s):
//!    `issuer=IP:PORT refresh=TOKEN [requests=N] [seconds=S] [keepalive=0|1] [timestamps=0|1]
//!    [freshports=0|1] [seed=N]`.
//! 2. Bring up the NIC ([`lan9118`]), smoltcp with the address QEMU's user-mode network hands
//!    out (10.0.2.15/24, gateway 10.0.2.2, which forwards to the host's loopback), and
//!    smoltcp-nal over it.
//! 3. Restore the refresh token as if from flash (no access token yet), then keep every request
//!    slot busy with `GET /api/firmware`, polling the stack and the client, sleeping (`wfi`) until
//!    the next millisecond when nothing moved.
//! 4. Stop submitting after `requests` requests or `seconds` seconds, let the open ones finish,
//!    print one `result` line through semihosting and exit QEMU with status 0 (the host judges
//!    the numbers, together with the issuer's counters). A panic exits with status 1.
//!
//! Tokens are never printed.

#![no_std]
#![no_main]

mod clock;
mod lan9118;
mod ports;

use core::net::SocketAddr;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln, nr};
use reauth_nal::reauth_core::{Backoff, Config, Duration, Instant, Rejection, RequestId};
use reauth_nal::stack::SmoltcpNal;
use reauth_nal::{
    Client, ClientConfig, Endpoint, Error, Event, NoStore, OAuth2, Request, SubmitError, Timeouts,
};
use smoltcp::iface::{Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};
use smoltcp_nal::NetworkStack;

use crate::clock::Millis;
use crate::lan9118::Lan9118;
use crate::ports::FreshPorts;

/// Request slots: requests open at once.
const SLOTS: usize = 4;
/// TCP sockets: one per slot, one for the refresh exchange, one spare for a socket that is
/// still closing when its slot opens the next.
const SOCKETS: usize = SLOTS + 2;
/// Each socket's receive and transmit buffer.
const TCP_RX: usize = 2048;
const TCP_TX: usize = 1024;
/// Latency histogram: one bucket per millisecond, the last one for everything longer.
const BUCKETS: usize = 2048;

/// QEMU's user-mode network (slirp): the guest's address and the gateway, which is also the
/// host's loopback.
const GUEST: (IpAddress, u8) = (IpAddress::v4(10, 0, 2, 15), 24);
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

type Net = SmoltcpNal<FreshPorts<'static, Lan9118, Millis, SOCKETS>>;
type FirmwareClient = Client<'static, Net, NoStore, OAuth2<'static>, SLOTS, 1024, 2048, 512, 256>;

#[entry]
fn main() -> ! {
    let cmdline = cortex_m::singleton!(: [u8; 1024] = [0; 1024]).unwrap(); // Runs once.
    let Some(args) = Args::read(cmdline) else {
        hprintln!("reauth-qemu: usage: issuer=IP:PORT refresh=TOKEN [requests=N] [seconds=S]");
        exit(debug::EXIT_FAILURE);
    };
    let peripherals = cortex_m::Peripherals::take().unwrap(); // Taken once, here.
    clock::start(peripherals.SYST);

    // SAFETY: this is the mps2-an386 board (the image is linked for it) and the only place that
    // takes the controller.
    let Ok(mut device) = (unsafe { Lan9118::take() }) else {
        hprintln!("reauth-qemu: no LAN9118 at 0x4020_0000 (run on QEMU's mps2-an386)");
        exit(debug::EXIT_FAILURE);
    };
    let mut config = smoltcp::iface::Config::new(EthernetAddress(device.mac()).into());
    config.random_seed = args.seed;
    let mut iface = Interface::new(config, &mut device, smoltcp_now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(GUEST.0, GUEST.1));
    });
    let _ = iface.routes_mut().add_default_ipv4_route(GATEWAY);

    let storage =
        cortex_m::singleton!(: [SocketStorage<'static>; SOCKETS] = [SocketStorage::EMPTY; SOCKETS])
            .unwrap();
    let rx = cortex_m::singleton!(: [[u8; TCP_RX]; SOCKETS] = [[0; TCP_RX]; SOCKETS]).unwrap();
    let tx = cortex_m::singleton!(: [[u8; TCP_TX]; SOCKETS] = [[0; TCP_TX]; SOCKETS]).unwrap();
    let mut sockets = SocketSet::new(&mut storage[..]);
    for (rx, tx) in rx.iter_mut().zip(tx.iter_mut()) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        if args.timestamps {
            socket.set_tsval_generator(Some(clock::tsval));
        }
        sockets.add(socket);
    }
    let mut stack = NetworkStack::new(iface, device, sockets, Millis);
    stack.seed_random_port(&args.seed.to_le_bytes());
    let mut net = SmoltcpNal(FreshPorts::new(stack, args.seed, args.fresh_ports, clock::millis));

    let endpoint = Endpoint { addr: args.issuer, host: args.host };
    let coordinator = Config {
        // Generous: an emulated CPU behind user-mode networking is slow, and a refresh that
        // times out after the server rotated the token would cost a reuse.
        refresh_timeout: Duration::from_secs(10),
        wait_timeout: Duration::from_secs(15),
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            seed: args.seed,
        },
        ..Config::DEFAULT
    };
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        response: Duration::from_secs(5),
        idle: Duration::from_secs(5),
        total: Duration::from_secs(15),
        keep_alive: if args.keep_alive { Timeouts::DEFAULT.keep_alive } else { Duration::ZERO },
    };
    let client_config =
        ClientConfig { coordinator, timeouts, ..ClientConfig::new(endpoint, endpoint) };
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    let client: &'static mut FirmwareClient = cortex_m::singleton!(
        : FirmwareClient = Client::new(client_config, exchange, NoStore)
    )
    .unwrap(); // Runs once.
    let histogram = cortex_m::singleton!(: [u32; BUCKETS] = [0; BUCKETS]).unwrap();

    let report = run(client, &mut net, &args, histogram);
    report.print(histogram);
    exit(debug::EXIT_SUCCESS)
}

/// Ends the emulation with `status` (semihosting SYS_EXIT); on a board without a debugger
/// attached, sleeps forever instead.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// The run's settings, from the semihosting command line.
struct Args {
    issuer: SocketAddr,
    /// `IP:PORT`, the `Host` header.
    host: &'static str,
    refresh: &'static str,
    /// Stop submitting after this many requests.
    requests: u32,
    /// ... or after this many milliseconds.
    duration_ms: u32,
    keep_alive: bool,
    /// TCP timestamps on every socket (see `clock::tsval`).
    timestamps: bool,
    /// Source ports not used recently ([`FreshPorts`]) rather than smoltcp-nal's random ones.
    fresh_ports: bool,
    seed: u64,
}

impl Args {
    /// Reads and parses the command line into `buffer`; `None` when it cannot be read or lacks
    /// `issuer=` or `refresh=`.
    fn read(buffer: &'static mut [u8; 1024]) -> Option<Self> {
        let mut block = [buffer.as_mut_ptr() as usize, buffer.len()];
        // SAFETY: SYS_GET_CMDLINE takes a two-word block (buffer address, its length) and
        // writes at most that many bytes into the buffer, then the length it wrote into the
        // block's second word. Both live until the call returns.
        let failed =
            unsafe { cortex_m_semihosting::syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
        if failed != 0 {
            return None;
        }
        // The length written back; the line also ends at its first NUL.
        let len = core::hint::black_box(block[1]).min(buffer.len());
        let line = buffer[..len].split(|&b| b == 0).next().unwrap_or_default();
        let line = core::str::from_utf8(line).ok()?;
        let mut args = Self {
            issuer: "0.0.0.0:0".parse().ok()?,
            host: "",
            refresh: "",
            requests: 200,
            duration_ms: 10_000,
            keep_alive: true,
            timestamps: true,
            fresh_ports: true,
            seed: 1,
        };
        for word in line.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else { continue };
            match key {
                "issuer" => {
                    args.issuer = value.parse().ok()?;
                    args.host = value;
                }
                "refresh" => args.refresh = value,
                "requests" => args.requests = value.parse().ok()?,
                "seconds" => args.duration_ms = value.parse::<u32>().ok()?.saturating_mul(1000),
                "keepalive" => args.keep_alive = value != "0",
                "timestamps" => args.timestamps = value != "0",
                "freshports" => args.fresh_ports = value != "0",
                "seed" => args.seed = value.parse().ok()?,
                _ => {}
            }
        }
        (!args.host.is_empty() && !args.refresh.is_empty()).then_some(args)
    }
}

/// What the run saw.
#[derive(Default)]
struct Report {
    requests: u32,
    succeeded: u32,
    failed: u32,
    needs_login: u32,
    /// Requests still open when the drain gave up.
    lost: u32,
    /// Events for a request that was not open.
    answered_twice: u32,
    refreshed: u32,
    refresh_failed: u32,
    elapsed_ms: u32,
    /// The first few failures' descriptions, for the log.
    examples: heapless_line::Lines,
}

/// Keeps the request slots busy until the run's limits, then drains.
fn run(
    client: &mut FirmwareClient,
    net: &mut Net,
    args: &Args,
    histogram: &mut [u32; BUCKETS],
) -> Report {
    let start = clock::millis();
    let now = || Instant::from_millis(u64::from(clock::millis()));
    let mut report = Report::default();
    if client.restore(now(), args.refresh).is_err() {
        report.failed = 1;
        let _ = report.examples.push(format_args!("the refresh token does not fit"));
        return report;
    }
    // Open requests and their submit times.
    let mut open: [Option<(RequestId, u32)>; SLOTS] = [None; SLOTS];
    // After the last submit: at most the wait and refresh timeouts, then give up on what is open.
    let mut drain_until = None;
    loop {
        let elapsed = clock::millis().wrapping_sub(start);
        let submitting = report.requests < args.requests && elapsed < args.duration_ms;
        let open_count = open.iter().flatten().count();
        if !submitting {
            let until = *drain_until.get_or_insert(elapsed.saturating_add(30_000));
            // A refresh started ahead of expiry may be in flight with nothing open: read its
            // answer first, or the issuer counts a call this report never saw.
            let refreshing = client.coordinator().is_refreshing();
            if (open_count == 0 && !refreshing) || elapsed >= until {
                report.lost = open_count as u32;
                break;
            }
        }
        while submitting && report.requests < args.requests && client.free_slots() > 0 {
            report.requests += 1;
            match client.submit(now(), &Request::get("/api/firmware")) {
                Ok(id) => {
                    if let Some(free) = open.iter_mut().find(|o| o.is_none()) {
                        *free = Some((id, clock::millis()));
                    }
                }
                Err(SubmitError::Rejected(Rejection::NeedsLogin)) => {
                    report.needs_login += 1;
                    break;
                }
                Err(e) => {
                    report.failed += 1;
                    let _ = report.examples.push(format_args!("submit: {e}"));
                    break;
                }
            }
        }
        let mut progressed = net.0.stack().poll().unwrap_or(false);
        while let Some(event) = client.poll(net, now()) {
            progressed = true;
            report.on_event(client, &mut open, histogram, event);
        }
        progressed |= net.0.stack().poll().unwrap_or(false);
        if !progressed {
            // Nothing moved: sleep until the next SysTick (1 ms).
            cortex_m::asm::wfi();
        }
    }
    report.elapsed_ms = clock::millis().wrapping_sub(start);
    report
}

impl Report {
    fn on_event(
        &mut self,
        client: &mut FirmwareClient,
        open: &mut [Option<(RequestId, u32)>; SLOTS],
        histogram: &mut [u32; BUCKETS],
        event: Event<smoltcp_nal::NetworkError, core::convert::Infallible>,
    ) {
        let (id, outcome) = match event {
            Event::Response { id, status } => {
                client.release(id);
                (id, Ok(status))
            }
            Event::Failed { id, error } => (id, Err(error)),
            Event::Refreshed { .. } => {
                self.refreshed += 1;
                return;
            }
            Event::RefreshFailed { .. } => {
                self.refresh_failed += 1;
                return;
            }
            Event::PersistFailed { .. } => return,
        };
        let Some(entry) = open.iter_mut().find(|o| o.is_some_and(|(open_id, _)| open_id == id))
        else {
            self.answered_twice += 1;
            return;
        };
        let submitted = entry.take().map_or(0, |(_, at)| at);
        match outcome {
            Ok(status) if (200..300).contains(&status) => {
                self.succeeded += 1;
                let ms = clock::millis().wrapping_sub(submitted) as usize;
                histogram[ms.min(BUCKETS - 1)] += 1;
            }
            Ok(status) => {
                self.failed += 1;
                let _ = self.examples.push(format_args!("status {status}"));
            }
            Err(Error::Rejected(Rejection::NeedsLogin)) => self.needs_login += 1,
            Err(error) => {
                self.failed += 1;
                let at = clock::millis();
                let _ = self.examples.push(format_args!("{error} (at {at} ms)"));
            }
        }
    }

    /// One `result` line, `key=value` pairs the host parses, and the first failures.
    fn print(&self, histogram: &[u32; BUCKETS]) {
        for line in self.examples.iter() {
            hprintln!("reauth-qemu: failure: {}", line);
        }
        hprintln!(
            "reauth-qemu: result requests={} succeeded={} failed={} needs_login={} lost={} \
             answered_twice={} refreshed={} refresh_failed={} elapsed_ms={} p50_ms={} p99_ms={} \
             max_ms={}",
            self.requests,
            self.succeeded,
            self.failed,
            self.needs_login,
            self.lost,
            self.answered_twice,
            self.refreshed,
            self.refresh_failed,
            self.elapsed_ms,
            percentile(histogram, 50),
            percentile(histogram, 99),
            percentile(histogram, 100),
        );
    }
}

/// The latency in milliseconds below which `p` percent of the recorded ones lie.
fn percentile(histogram: &[u32; BUCKETS], p: u32) -> usize {
    let total: u32 = histogram.iter().sum();
    let rank = (u64::from(total) * u64::from(p)).div_ceil(100).max(1);
    let mut seen = 0u64;
    for (ms, &n) in histogram.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return ms;
        }
    }
    0
}

/// smoltcp's clock for `Interface::new`.
fn smoltcp_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(i64::from(clock::millis()))
}

/// Three short lines of text kept for the report, without a heap.
mod heapless_line {
    use core::fmt::{self, Write};

    const LINES: usize = 3;
    const WIDTH: usize = 120;

    pub(crate) struct Lines {
        text: [[u8; WIDTH]; LINES],
        len: [usize; LINES],
        count: usize,
    }

    impl Default for Lines {
        fn default() -> Self {
            Self { text: [[0; WIDTH]; LINES], len: [0; LINES], count: 0 }
        }
    }

    impl Lines {
        /// Keeps `line` (cut at WIDTH bytes) if fewer than LINES are kept.
        pub(crate) fn push(&mut self, line: fmt::Arguments<'_>) -> fmt::Result {
            let Some(slot) = self.text.get_mut(self.count) else { return Err(fmt::Error) };
            let mut cursor = Cursor { buf: slot, len: 0 };
            let _ = cursor.write_fmt(line);
            self.len[self.count] = cursor.len;
            self.count += 1;
            Ok(())
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
            self.text.iter().zip(self.len).take(self.count).map(|(text, len)| {
                core::str::from_utf8(&text[..len]).unwrap_or("(cut inside a character)")
            })
        }
    }

    struct Cursor<'a> {
        buf: &'a mut [u8],
        len: usize,
    }

    impl Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = self.buf.len() - self.len;
            let n = s.len().min(room);
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    hprintln!("reauth-qemu: panic: {}", info);
    exit(debug::EXIT_FAILURE)
}
