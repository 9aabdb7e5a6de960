//! `reauth firmware-async`: reauth-nal-async the way embassy firmware runs it. embassy's
//! executor (its std platform) runs embassy-net on a TAP device (embassy-net-tuntap) inside a
//! network namespace this command makes, and `--tasks` tasks share one client, each sending
//! requests one after another against the in-process mock issuer, with the demo's expiry storms
//! and faults, over HTTP or (`--https`) TLS 1.3 through embedded-tls with a pinned CA made for
//! the run. The summary table is `reauth firmware`'s.
//!
//! Every byte between the client and the issuer crosses the TAP device as an Ethernet frame
//! that embassy-net's smoltcp builds or parses; the issuer listens on the kernel's side of the
//! device ([`KERNEL_IP`](crate::tap::KERNEL_IP)).

use core::cell::{Cell, RefCell};
use core::net::{Ipv4Addr, SocketAddr};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration as StdDuration;
use std::process::ExitCode;
use std::time::Instant as StdInstant;

use clap::Parser;
use embassy_executor::{Executor, Spawner};
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use reauth_core::{Duration, Rejection};
use reauth_nal_async::tls::{MAX_RECORD, Tls};
use reauth_nal_async::{
    Client, ClientConfig, EmbassyClock, Endpoint, Error, NoStore, OAuth2, Request, Tcp,
};
use reauth_testkit::issuer::{Counters, MockIssuer};
use reauth_testkit::tls::TestPki;

use crate::demo::{REFRESH_TIMEOUT, WAIT_TIMEOUT, issuer_config, start_issuer_on};
use crate::fault::{FaultMode, FaultSchedule, Storms};
use crate::firmware::{MAX_REQUESTS, coordinator, millis_of, run_duration, timeouts};
use crate::flags::RunFlags;
use crate::netns;
use crate::report::{Outcomes, Table, Verdict, failure_kind};

/// The most tasks a run may have: the executor's task pool and the client's places are sized
/// at compile time, as on a device.
const MAX_TASKS: usize = 32;

/// Each task's buffer: the request, then the response (and the refresh when the task runs it),
/// after the TLS record buffers with `--https`.
const BUFFER: usize = 4096;

/// The TLS record buffers of one connection: a whole record to read, 4 KiB to write.
const TLS_WRITE: usize = 4096;
const TLS_SCRATCH: usize = MAX_RECORD + TLS_WRITE;

/// The stack's TCP buffers per connection.
const TCP_BUFFER: usize = 2048;

/// The client every task shares: no persistence, 512-byte access and 256-byte refresh tokens.
type AsyncClient =
    Client<'static, NoopRawMutex, NoStore, OAuth2<'static>, EmbassyClock, MAX_TASKS, 512, 256>;

/// The stack's TCP client.
type TcpStack = TcpClient<'static, MAX_TASKS, TCP_BUFFER, TCP_BUFFER>;

/// The transport the tasks share over HTTP.
type Net = Tcp<'static, TcpStack, DnsSocket<'static>>;

/// The transport the tasks share over HTTPS.
type TlsNet = Tls<'static, TcpStack, DnsSocket<'static>, ChaCha20Rng>;

/// Options of `reauth firmware-async`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) run: RunFlags,
    /// Tasks sharing the client, each sending one request after another.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=MAX_TASKS as i64))]
    pub(crate) tasks: u16,
    /// Every this many milliseconds the issuer expires every access token at once. 0: never.
    #[arg(long, default_value_t = 1300)]
    pub(crate) storm_every: u64,
    /// Seed of the issuer's latency jitter and the client's backoff jitter.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Stop once this many requests have an outcome, instead of after `--duration`.
    #[arg(long, conflicts_with = "duration")]
    pub(crate) requests: Option<u64>,
    /// HTTPS: the issuer serves TLS 1.3 with a certificate of a CA made for the run, which the
    /// client pins (embedded-tls); the client refuses to send a token in clear.
    #[arg(long)]
    pub(crate) https: bool,
}

/// Runs the workload in a network namespace of its own and prints the summary.
pub(crate) fn run(args: Args) -> ExitCode {
    if netns::current().is_none() {
        return match netns::Namespace::create() {
            Ok(namespace) => namespace.run_self(),
            Err(e) => {
                eprintln!("reauth firmware-async: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match workload(&args) {
        Ok(report) => report.print_and_judge(&args),
        Err(e) => {
            eprintln!("reauth firmware-async: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the tasks share: the client, the stack, the issuer and the tallies.
struct Shared {
    client: AsyncClient,
    net: Net,
    /// With `--https`: the TLS transport over `net`'s stack; every exchange goes through it.
    tls: Option<TlsNet>,
    issuer: MockIssuer,
    /// No new request once set.
    stop: Cell<bool>,
    /// Tasks still running.
    running: Cell<usize>,
    /// Requests started (bounded by `target`).
    started: Cell<u64>,
    target: u64,
    tally: RefCell<Tally>,
}

/// Outcomes as the tasks saw them.
#[derive(Debug, Default)]
struct Tally {
    outcomes: Outcomes,
    logins: u64,
}

/// Everything the summary needs.
struct Report {
    elapsed: StdDuration,
    token_lifetime: StdDuration,
    requests: u64,
    tally: Tally,
    issuer: Counters,
    stats: reauth_nal_async::Stats,
}

fn workload(args: &Args) -> Result<Report, Box<dyn core::error::Error>> {
    let token_lifetime = StdDuration::from_millis(args.run.token_lifetime);
    let latency = StdDuration::from_millis(args.run.latency);
    crate::tap::make_device()?;
    let kernel_ip = crate::tap::KERNEL_IP.to_string();
    // The run's CA and the issuer's certificate: only the HTTPS run has a use for them.
    let pki = args.https.then(|| TestPki::generate_for(&[kernel_ip.as_str()])).transpose()?;
    let issuer = if let Some(pki) = &pki {
        // `start_issuer_on`'s settings but the device grant's interval, which this run, without
        // a device login, never meets.
        let config = issuer_config(token_lifetime, latency, args.seed);
        MockIssuer::start_tls_at(SocketAddr::new(crate::tap::KERNEL_IP.into(), 0), config, pki)?
    } else {
        start_issuer_on(crate::tap::KERNEL_IP.into(), token_lifetime, latency, args.seed)?
    };
    let device = TunTapDevice::new(crate::tap::DEVICE)?;
    crate::tap::wait_for_carrier()?;
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(STACK_IP, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let resources = Box::leak(Box::new(StackResources::<{ MAX_TASKS + 4 }>::new()));
    let (stack, runner) =
        embassy_net::new(device, config, resources, u64::from(std::process::id()));
    let state = Box::leak(Box::new(TcpClientState::<MAX_TASKS, TCP_BUFFER, TCP_BUFFER>::new()));
    let tcp = Box::leak(Box::new(TcpClient::new(stack, state)));
    let dns = Box::leak(Box::new(DnsSocket::new(stack)));

    let addr = issuer.addr();
    // The `Host` header carries the port; the TLS name (and the certificate's) is the address.
    let host: &'static str = Box::leak(addr.to_string().into_boxed_str());
    let name: &'static str = Box::leak(addr.ip().to_string().into_boxed_str());
    let endpoint = Endpoint { name, port: addr.port(), addr: Some(addr.ip()), host };
    // As `reauth firmware`'s, without keep-alive: a hanging token endpoint frees its task soon
    // after the coordinator gave up on it, and the issuer's latency fits.
    let client_config = ClientConfig {
        coordinator: coordinator(args.seed),
        timeouts: timeouts(latency, Duration::ZERO),
        https: args.https,
        ..ClientConfig::new(endpoint, endpoint)
    };
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    let client = AsyncClient::new(client_config, exchange, NoStore, EmbassyClock);
    let tokens = issuer.login();
    client
        .login(&tokens.access_token, &tokens.refresh_token, Some(millis_of(tokens.expires_in)))
        .map_err(|e| format!("login: {e}"))?;
    issuer.reset_counters();

    let tls = pki.map(|pki| {
        let ca: &'static [u8] = Box::leak(pki.ca_der().to_vec().into_boxed_slice());
        let rng = ChaCha20Rng::seed_from_u64(args.seed ^ u64::from(std::process::id()));
        Tls::new(Tcp::new(tcp, dns), ca, rng, MAX_RECORD, TLS_WRITE)
    });
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        client,
        net: Tcp::new(tcp, dns),
        tls,
        issuer,
        stop: Cell::new(false),
        running: Cell::new(usize::from(args.tasks)),
        started: Cell::new(0),
        target: args.requests.unwrap_or(MAX_REQUESTS),
        tally: RefCell::new(Tally::default()),
    }));
    let duration = run_duration(&args.run, args.requests);
    let storm_every = (args.storm_every > 0).then(|| StdDuration::from_millis(args.storm_every));
    let fault = args.run.fault;
    let tasks = usize::from(args.tasks);
    let start = StdInstant::now();
    let done: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(
        |spawner: Spawner| {
            spawner.spawn(net_task(runner).map_err(|_| ()).expect("one network task"));
            for _ in 0..tasks {
                // `tasks` is at most MAX_TASKS, the pool's size.
                spawner.spawn(worker(shared).expect("a worker per task"));
            }
            let director =
                director(shared, start, duration, storm_every, fault, token_lifetime, done);
            spawner.spawn(director.expect("one director"));
        },
        || done.load(Ordering::Acquire),
    );
    Ok(Report {
        elapsed: start.elapsed(),
        token_lifetime,
        requests: shared.started.get(),
        tally: shared.tally.take(),
        issuer: shared.issuer.counters(),
        stats: shared.client.stats(),
    })
}

/// embassy-net's side: moves frames between the TAP device and smoltcp.
#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

/// One task of the firmware: a request, its outcome, the next, until told to stop.
#[embassy_executor::task(pool_size = MAX_TASKS)]
async fn worker(shared: &'static Shared) {
    let mut buf = [0u8; TLS_SCRATCH + BUFFER];
    let request = Request::get("/api/firmware");
    while !shared.stop.get() && shared.started.get() < shared.target {
        shared.started.set(shared.started.get() + 1);
        let sent = StdInstant::now();
        let needs_login = if let Some(tls) = &shared.tls {
            let result = shared.client.send(tls, &request, &mut buf).await;
            shared.tally.borrow_mut().record(result.map(|r| r.status()), sent)
        } else {
            let plain = &mut buf[..BUFFER];
            let result = shared.client.send(&shared.net, &request, plain).await;
            shared.tally.borrow_mut().record(result.map(|r| r.status()), sent)
        };
        if needs_login {
            // Turned away at once until the director logs in again: wait for that instead of
            // asking again and again.
            embassy_time::Timer::after_millis(10).await;
        }
        // Let the others run: an answer can come back without the task ever waiting.
        embassy_futures::yield_now().await;
    }
    shared.running.set(shared.running.get() - 1);
}

impl Tally {
    /// Accounts for one request sent at `sent`; true if it was told to log in again.
    fn record<E>(&mut self, result: Result<u16, Error<E>>, sent: StdInstant) -> bool
    where
        Error<E>: core::fmt::Display,
    {
        let outcomes = &mut self.outcomes;
        match result {
            Ok(status) => {
                outcomes.answered(status, sent);
                false
            }
            Err(Error::Rejected(Rejection::NeedsLogin)) => {
                outcomes.needs_login += 1;
                true
            }
            Err(error) => {
                outcomes.fail(&error, failure_kind!(Error, &error));
                false
            }
        }
    }
}

/// The test bench around the device: storms and faults on time, a login after a refusal (what
/// the device's login flow would do), the end of the run.
#[embassy_executor::task]
async fn director(
    shared: &'static Shared,
    start: StdInstant,
    duration: StdDuration,
    storm_every: Option<StdDuration>,
    fault: FaultMode,
    token_lifetime: StdDuration,
    done: &'static AtomicBool,
) {
    let mut storms = Storms::new(storm_every, start);
    let mut faults = FaultSchedule::fixed(fault, token_lifetime, REFRESH_TIMEOUT);
    // Bounded: the run's duration, then the open requests' wait and refresh timeouts.
    let drain = duration + WAIT_TIMEOUT + REFRESH_TIMEOUT * 4;
    while shared.running.get() > 0 && start.elapsed() < drain {
        storms.tick(&shared.issuer, StdInstant::now());
        faults.tick(&shared.issuer);
        if shared.client.needs_login() {
            let tokens = shared.issuer.login();
            let lifetime = Some(millis_of(tokens.expires_in));
            if shared.client.login(&tokens.access_token, &tokens.refresh_token, lifetime).is_ok() {
                shared.tally.borrow_mut().logins += 1;
            }
        }
        if start.elapsed() >= duration {
            shared.stop.set(true);
        }
        embassy_time::Timer::after_millis(10).await;
    }
    done.store(true, Ordering::Release);
}

impl Report {
    /// Prints the summary table and the verdict; the exit code is the verdict.
    fn print_and_judge(&self, args: &Args) -> ExitCode {
        let issuer = &self.issuer;
        let tally = &self.tally;
        let outcomes = &tally.outcomes;
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        let done = outcomes.done();
        let mut table = Table::default();
        table.row("stack", "embassy-net on a TAP device", "");
        table.row("client", "reauth-nal-async", "");
        let transport = if args.https { "HTTPS (embedded-tls, pinned CA)" } else { "HTTP" };
        table.row("transport", transport, "");
        table.row("tasks", args.tasks, "");
        table.row("duration", format!("{secs:.2} s"), "");
        table.row("token lifetime", format!("{} ms", self.token_lifetime.as_millis()), "issuer");
        table.row("fault", args.run.fault.name(), "");
        table.row("requests", self.requests, "client");
        outcomes.rows(&mut table);
        table.row("throughput", format!("{:.0} req/s", done as f64 / secs), "client");
        table.row("connections", issuer.connections_accepted, "issuer");
        table.row("refresh episodes", self.stats.refreshes, "client");
        table.row("refresh calls", issuer.refresh_calls, "issuer");
        table.row("refreshes succeeded", issuer.refresh_successes, "issuer");
        table.row("expiry episodes", issuer.expiry_episodes, "issuer");
        table.row("replays", self.stats.replays, "client");
        table.row("reuse attempts", issuer.reuse_attempts, "issuer");
        table.row("max refreshes of one token", issuer.refreshes_per_access_token_max, "issuer");
        table.row("logins after refusal", tally.logins, "firmware");
        table.latency_rows(&outcomes.latencies);
        table.print();

        let mut verdict = Verdict::default();
        outcomes.check(&mut verdict, args.run.fault == FaultMode::Refuse);
        verdict.check(self.requests != done, || {
            format!("{} requests never got an outcome", self.requests - done)
        });
        verdict.check(
            args.run.fault == FaultMode::None && issuer.refresh_calls != self.stats.refreshes,
            || {
                format!(
                    "{} refresh calls for {} refresh episodes: a refresh was sent twice",
                    issuer.refresh_calls, self.stats.refreshes
                )
            },
        );
        verdict.issuer_invariants(issuer, outcomes.succeeded);
        verdict.print("no failed request, no reuse, no token refreshed twice")
    }
}

/// embassy-net's side of the TAP device.
const STACK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
