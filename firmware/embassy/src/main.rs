//! Firmware for a Cortex-M4F (QEMU's `mps2-an386` board): reauth-nal-async on embassy-net and
//! embassy-executor, as an embassy device runs it, built to measure flash and RAM
//! (BENCHMARKS.md, "Async firmware footprint"), with (`--features tls`) and without TLS.
//!
//! 1. Start the 1 kHz time base ([`time`]) and the board's LAN9118 NIC ([`nic`]), embassy-net
//!    on it with QEMU user-mode networking's address (10.0.2.15/24, gateway 10.0.2.2).
//! 2. Restore the refresh token kept in flash (no access token yet).
//! 3. [`TASKS`] tasks share the one [`CLIENT`] in a `static`; each sends `GET /api/firmware`
//!    once a second. The first request makes one task run the refresh; the others park until
//!    it ends.
//!
//! Each task's buffer (and with TLS its record buffers) lives in the task's future, which
//! embassy allocates statically: the `.bss` of the image is the RAM the device needs besides
//! its stack.
//!
//! Features: `tls` (HTTPS, embedded-tls, the CA of `src/ca.der` pinned: a self-signed P-256
//! CA made with openssl for the measurement, its key thrown away); `qemu` (the run of
//! `cli/tests/async_stack.rs`: issuer, refresh token and CA from the semihosting command line,
//! requests until the run's end, a result line, see [`qemu`]); `baseline` (the size baseline:
//! the same requests by hand, no client).

#![no_std]
#![no_main]
// The baseline leaves the client out; the QEMU run takes its settings from the command line.
#![cfg_attr(any(feature = "baseline", feature = "qemu"), allow(dead_code, unused_imports))]

#[path = "../../qemu/src/lan9118.rs"]
#[allow(dead_code)]
mod lan9118;
mod nic;
#[cfg(feature = "qemu")]
mod qemu;
mod time;

use core::net::{IpAddr, Ipv4Addr};

use embassy_executor::Spawner;
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::Timer;
#[cfg(not(feature = "qemu"))]
use panic_halt as _;
use reauth_nal_async::reauth_core::oauth::RefreshParams;
use reauth_nal_async::{
    Client, ClientConfig, EmbassyClock, Endpoint, NoStore, OAuth2, Request, Tcp,
};

use crate::lan9118::Lan9118;
use crate::nic::Nic;

/// Tasks sharing the client.
const TASKS: usize = 2;
/// TCP connections open at once: one per task (a refresh runs on its task's connection turn).
const CONNECTIONS: usize = TASKS;
/// The stack's buffers per connection.
const TCP_RX: usize = 2048;
const TCP_TX: usize = 1024;
/// Each task's buffer for the HTTP request and response (and the refresh it may run).
const HTTP: usize = 2048;
/// With TLS, the record buffers come first: a whole record to read, 2 KiB to write.
#[cfg(feature = "tls")]
const TLS_WRITE: usize = 2048;
#[cfg(feature = "tls")]
const BUFFER: usize = reauth_nal_async::tls::MAX_RECORD + TLS_WRITE + HTTP;
#[cfg(not(feature = "tls"))]
const BUFFER: usize = HTTP;

/// Where the mock issuer of a run on QEMU listens: the host's loopback through the gateway.
const ISSUER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
const ENDPOINT: Endpoint<'static> = Endpoint::at(ISSUER, 8080, "10.0.2.2");

/// The API and the token endpoint's CA, pinned (DER); a device ships its issuer's. This one is
/// a stand-in for the measurement (see the crate doc).
#[cfg(feature = "tls")]
static CA_DER: &[u8] = include_bytes!("ca.der");

/// The refresh token as the device keeps it in flash (a placeholder: the image is measured,
/// not provisioned).
static STORED_REFRESH_TOKEN: &str = "rt.0.provisioned-at-the-factory";

type TcpStack = TcpClient<'static, CONNECTIONS, TCP_TX, TCP_RX>;
type Plain = Tcp<'static, TcpStack, DnsSocket<'static>>;
#[cfg(feature = "tls")]
type Net =
    reauth_nal_async::tls::Tls<'static, TcpStack, DnsSocket<'static>, rand_chacha::ChaCha20Rng>;
#[cfg(not(feature = "tls"))]
type Net = Plain;

/// The client the tasks share: 2 open requests, 512-byte access and 256-byte refresh tokens.
type AppClient = Client<
    'static,
    CriticalSectionRawMutex,
    NoStore,
    OAuth2<'static>,
    EmbassyClock,
    TASKS,
    512,
    256,
>;

/// The standard refresh grant for a public client (no secret: reauth-nal-async is built
/// without `client-secret-basic`, so `OAuth2` has no `auth` field).
const OAUTH: OAuth2<'static> = OAuth2 {
    path: "/oauth/token",
    params: RefreshParams { client_id: Some("reauth-firmware"), client_secret: None, scope: None },
};

/// The client every task shares: a `static`, built at compile time.
#[cfg(not(feature = "qemu"))]
static CLIENT: AppClient = Client::new(
    ClientConfig { https: cfg!(feature = "tls"), ..ClientConfig::new(ENDPOINT, ENDPOINT) },
    OAUTH,
    NoStore,
    EmbassyClock,
);

/// On QEMU the issuer's port comes from the command line: the client is made at start.
#[cfg(feature = "qemu")]
static CLIENT: embassy_sync::once_lock::OnceLock<AppClient> =
    embassy_sync::once_lock::OnceLock::new();

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(core) = cortex_m::Peripherals::take() else { return };
    time::start(core.SYST);
    // SAFETY: this is the mps2 board the driver is for, and the NIC is taken once, here.
    let Ok(device) = (unsafe { Lan9118::take() }) else { return };
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24),
        gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
        dns_servers: Default::default(),
    });
    let Some(resources) =
        cortex_m::singleton!(: StackResources<{ CONNECTIONS + 2 }> = StackResources::new())
    else {
        return;
    };
    let (stack, runner) = embassy_net::new(Nic(device), config, resources, 0x5eed);
    let Some(state) =
        cortex_m::singleton!(: TcpClientState<CONNECTIONS, TCP_TX, TCP_RX> = TcpClientState::new())
    else {
        return;
    };
    let Some(tcp) = cortex_m::singleton!(: TcpStack = TcpClient::new(stack, state)) else { return };
    let Some(dns) = cortex_m::singleton!(: DnsSocket<'static> = DnsSocket::new(stack)) else {
        return;
    };
    let plain: Plain = Tcp::new(tcp, dns);
    #[cfg(feature = "qemu")]
    let Some(run) = qemu::settings() else { qemu::exit(false) };
    #[cfg(feature = "tls")]
    let net: Net = {
        use rand_chacha::rand_core::SeedableRng;
        // A device seeds this from its hardware RNG.
        let rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5eed);
        // On QEMU the run's CA comes with the settings.
        #[cfg(feature = "qemu")]
        let ca = run.ca.unwrap_or(CA_DER);
        #[cfg(not(feature = "qemu"))]
        let ca = CA_DER;
        reauth_nal_async::tls::Tls::new(
            plain,
            ca,
            rng,
            reauth_nal_async::tls::MAX_RECORD,
            TLS_WRITE,
        )
    };
    #[cfg(not(feature = "tls"))]
    let net: Net = plain;
    let Some(net) = cortex_m::singleton!(: Net = net) else { return };
    #[cfg(all(not(feature = "baseline"), not(feature = "qemu")))]
    let client: &'static AppClient = {
        if CLIENT.restore(STORED_REFRESH_TOKEN).is_err() {
            return;
        }
        &CLIENT
    };
    #[cfg(feature = "qemu")]
    let client: &'static AppClient = {
        let issuer = run.issuer;
        let endpoint = Endpoint {
            name: run.name,
            port: issuer.port(),
            addr: Some(issuer.ip()),
            host: run.host,
        };
        let mut config =
            ClientConfig { https: cfg!(feature = "tls"), ..ClientConfig::new(endpoint, endpoint) };
        // QEMU's user-mode network holds a closed connection's port for 10 s and refuses a SYN
        // from it meanwhile; embassy-net picks local ports at random: a connect may have to
        // wait that out.
        config.timeouts.connect = reauth_nal_async::reauth_core::Duration::from_secs(30);
        config.timeouts.total = reauth_nal_async::reauth_core::Duration::from_secs(60);
        let _ = CLIENT.init(Client::new(config, OAUTH, NoStore, EmbassyClock));
        let Some(client) = CLIENT.try_get() else { qemu::exit(false) };
        if client.restore(run.refresh).is_err() {
            qemu::exit(false);
        }
        qemu::start(run.seconds, TASKS);
        client
    };
    if let Ok(task) = net_task(runner) {
        spawner.spawn(task);
    }
    for _ in 0..TASKS {
        #[cfg(not(feature = "baseline"))]
        let task = worker(net, client);
        #[cfg(feature = "baseline")]
        let task = worker(net);
        if let Ok(task) = task {
            spawner.spawn(task);
        }
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Nic>) -> ! {
    runner.run().await
}

/// One of the device's tasks: a request a second through the shared client.
#[cfg(all(not(feature = "baseline"), not(feature = "qemu")))]
#[embassy_executor::task(pool_size = TASKS)]
async fn worker(net: &'static Net, client: &'static AppClient) {
    let mut buf = [0u8; BUFFER];
    loop {
        let _status =
            client.send(net, &Request::get("/api/firmware"), &mut buf).await.map(|r| r.status());
        Timer::after_secs(1).await;
    }
}

/// On QEMU: requests back to back until the run's end, each outcome counted; the last task to
/// finish prints the result and ends the emulation.
#[cfg(feature = "qemu")]
#[embassy_executor::task(pool_size = TASKS)]
async fn worker(net: &'static Net, client: &'static AppClient) {
    let mut buf = [0u8; BUFFER];
    while !qemu::over() {
        let sent = embassy_time::Instant::now();
        let result = client.send(net, &Request::get("/api/firmware"), &mut buf).await;
        qemu::count(result.map(|r| r.status()), sent.elapsed().as_millis());
        // A device's pace, not a benchmark's: fewer connections for slirp to hold.
        Timer::after_millis(20).await;
    }
    qemu::done(client.stats());
}

/// The baseline's task (feature `baseline`, for the size comparison): the same request a second
/// over the same stack, written and read by hand, without a token or its refresh.
#[cfg(feature = "baseline")]
#[embassy_executor::task(pool_size = TASKS)]
async fn worker(net: &'static Net) {
    use embedded_io_async::{Read, Write};
    use embedded_nal_async::TcpConnect;
    let mut buf = [0u8; BUFFER];
    let remote = core::net::SocketAddr::new(ISSUER, ENDPOINT.port);
    loop {
        if let Ok(mut connection) = net.tcp.connect(remote).await {
            let request =
                b"GET /api/firmware HTTP/1.1\r\nHost: 10.0.2.2\r\nConnection: close\r\n\r\n";
            if connection.write_all(request).await.is_ok() {
                while let Ok(1..) = connection.read(&mut buf).await {}
            }
        }
        Timer::after_secs(1).await;
    }
}
