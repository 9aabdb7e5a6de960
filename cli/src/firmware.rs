//! `reauth firmware`: reauth-nal the way firmware runs it. One thread, one poll loop, a fixed
//! number of request slots chosen at compile time, against the in-process mock issuer, with the
//! demo's expiry storms, faults and summary table. `--stack` picks the network stack:
//!
//! - `std` (the default): `std-embedded-nal`, the host's sockets, on loopback;
//! - `smoltcp-tap`: smoltcp through smoltcp-nal, as firmware built on smoltcp runs it, on a TAP
//!   device inside a network namespace this command creates ([`crate::tap`]; needs root);
//! - `qemu`: the firmware image of `firmware/qemu` on QEMU's emulated Cortex-M4 board, smoltcp
//!   on its emulated NIC ([`crate::qemu`]).
//!
//! `--device-login` starts without credentials and logs in first through the device
//! authorization grant (reauth-nal's `DeviceLogin`), printing the user code as a device would on
//! its display while the mock issuer approves it.
//!
//! The loop follows `adapters/nal/examples/host_demo.rs`: keep every free slot busy, poll until
//! there is no event, nap briefly when nothing moved (std-embedded-nal never blocks, and a
//! microcontroller would sleep until the stack has news). It also keeps the submit time of every
//! open request, so that a request answered twice or never is caught, and it drains the requests
//! still open at the end instead of dropping them.
//!
//! reauth-nal keeps no counters of its own, so the stack is wrapped in [`Watched`], which looks
//! at the bytes: the access token each API request carried and the status that came back. A 401
//! for a token older than the newest one sent is a stale one, which the client replays at once
//! with the current token instead of refreshing: the coordinator's own test (the request's
//! generation is behind the current one), seen from the wire.

use core::hash::{Hash, Hasher};
use core::net::SocketAddr;
use core::time::Duration as StdDuration;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::process::ExitCode;
use std::thread;
use std::time::Instant as StdInstant;

use clap::Parser;
use reauth_core::oauth::RefreshParams;
use reauth_core::{Config, Duration, Instant, Rejection, RequestId};
use reauth_nal::embedded_nal::{TcpClientStack, nb};
use reauth_nal::{
    Client, ClientConfig, DeviceEvent, DeviceLogin, Endpoint, Error, Event, NoStore, OAuth2,
    Request, SubmitError, Timeouts,
};
use reauth_testkit::issuer::{Counters, MockIssuer};
use std_embedded_nal::Stack;
use zeroize::Zeroize;

use crate::demo::{REFRESH_TIMEOUT, WAIT_TIMEOUT, backoff, progress_bar, start_issuer_on};
use crate::fault::{FaultMode, FaultSchedule, Storms};
use crate::flags::RunFlags;
use crate::netns;
use crate::report::{Outcomes, Table, Verdict, failure_kind};

/// Request slots: requests open at once. A const parameter, as on a device.
const SLOTS: usize = 8;

/// The firmware's client: 8 slots, 1 KiB request and 2 KiB response buffers, room for a
/// 512-byte access and a 256-byte refresh token, no persistence.
type FirmwareClient<'a, S> =
    Client<'a, Watched<S>, NoStore, OAuth2<'a>, SLOTS, 1024, 2048, 512, 256>;

/// The network stack the firmware loop runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StackKind {
    /// std-embedded-nal: the host's own sockets, on loopback.
    Std,
    /// smoltcp through smoltcp-nal on a TAP device, in a network namespace of its own (root).
    SmoltcpTap,
    /// The firmware image of `firmware/qemu` on QEMU's mps2-an386 board: smoltcp on its
    /// emulated LAN9118 NIC, in a network namespace of its own when run as root.
    Qemu,
}

impl StackKind {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Std => "std-embedded-nal (loopback)",
            Self::SmoltcpTap => "smoltcp-nal + smoltcp on a TAP device",
            Self::Qemu => "smoltcp-nal + smoltcp on QEMU mps2-an386 (LAN9118)",
        }
    }
}

/// A network stack as the firmware loop drives it: std-embedded-nal needs nothing, smoltcp
/// must be polled to move packets.
pub(crate) trait Drive: TcpClientStack {
    /// The address the issuer binds, reachable through this stack.
    const ISSUER_IP: core::net::IpAddr = core::net::IpAddr::V4(core::net::Ipv4Addr::LOCALHOST);

    /// Moves the stack's own work forward (smoltcp's `poll`); true when anything changed.
    fn drive(&mut self) -> bool {
        false
    }

    /// Waits briefly for news when nothing moved: a device would sleep until its stack has
    /// some.
    fn nap(&mut self) {
        thread::sleep(StdDuration::from_micros(500));
    }
}

impl Drive for Stack {}

/// Options of `reauth firmware`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Stop once this many requests have an outcome, instead of after `--duration` (with a
    /// 10-minute limit).
    #[arg(long, conflicts_with = "duration")]
    pub(crate) requests: Option<u64>,
    #[command(flatten)]
    pub(crate) run: RunFlags,
    /// Every this many milliseconds the issuer expires every access token at once, so that the
    /// requests in flight meet 401s together: a refresh storm. 0 turns it off.
    #[arg(long, default_value_t = 1300)]
    pub(crate) storm_every: u64,
    /// Seed of the issuer's latency jitter and the client's backoff jitter.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// The network stack under the client.
    #[arg(long, value_enum, default_value_t = StackKind::Std)]
    pub(crate) stack: StackKind,
    /// Keep each slot's API connection open for its next request (`true`, the default), or open
    /// one connection per request (`false`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) keep_alive: bool,
    /// With `--stack smoltcp-tap` or `qemu`: smoltcp's TCP sockets send timestamps (RFC 7323),
    /// so that a SYN on a port the issuer still holds in TIME_WAIT is accepted at once. `false`
    /// shows what they fix: about 3 % of connects then wait ~700 ms for a SYN retransmission.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) tcp_timestamps: bool,
    /// With `--stack smoltcp-tap` or `qemu`: source ports that were not used in the last 10 s
    /// (`true`, the default) instead of smoltcp-nal's random ones, which the server side may
    /// still hold (see `firmware/qemu/src/ports.rs`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) fresh_ports: bool,
    /// With `--stack qemu`: the firmware image to run, instead of building `firmware/qemu`.
    #[arg(long)]
    pub(crate) elf: Option<std::path::PathBuf>,
    /// Log in through the device authorization grant (RFC 8628) before the workload: show the
    /// user code as a device would on its display, have the mock issuer approve it (the user on
    /// a phone), poll until approved. Not with `--stack qemu` (the firmware image logs in on
    /// its own).
    #[arg(long)]
    pub(crate) device_login: bool,
}

/// The first login through the device authorization grant, in the firmware's own poll loop:
/// reauth-nal's [`DeviceLogin`] on a socket of its own, the user code printed as a device
/// would show it, the mock issuer approving it as the user would, the approved token response
/// installed with [`Client::login_from_token_response`].
fn device_login<S: Drive>(
    issuer: &MockIssuer,
    client: &mut FirmwareClient<'_, S>,
    net: &mut Watched<S>,
    server: Endpoint<'_>,
    timeouts: &Timeouts,
    now: impl Fn() -> Instant,
) -> Result<(), Box<dyn core::error::Error>> {
    let params = RefreshParams { client_id: Some("reauth-firmware"), ..RefreshParams::default() };
    let mut device: DeviceLogin<'_, Watched<S>, 1024, 2048> =
        DeviceLogin::new(server, "/oauth/device_authorization", "/oauth/token", params);
    device.start().map_err(|e| format!("device login: {e:?}"))?;
    let started = StdInstant::now();
    let deadline = started + StdDuration::from_secs(60);
    while StdInstant::now() < deadline {
        let mut progressed = net.stack.drive();
        match device.poll(net, now(), timeouts) {
            Some(DeviceEvent::Show) => {
                progressed = true;
                println!("+--------------------------------+");
                println!("| Sign in at                     |");
                println!("|  {:<29} |", device.verification_uri());
                println!("| with the code                  |");
                println!("|  {:<29} |", device.user_code());
                println!("+--------------------------------+");
                // The user, on their phone.
                if !issuer.approve(device.user_code()) {
                    return Err("the mock issuer does not know the user code shown".into());
                }
            }
            Some(DeviceEvent::Approved) => {
                let body = device.token_response().unwrap_or_default();
                let installed = client.login_from_token_response(now(), body);
                device.finish(net);
                installed.map_err(|e| format!("device login: {e}"))?;
                let polls = issuer.counters().device_polls;
                println!(
                    "device login: approved after {polls} poll(s) in {:.1} s; running the workload",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Some(DeviceEvent::Failed(failure)) => {
                return Err(format!("device login failed: {failure:?}").into());
            }
            Some(_) => progressed = true,
            None => {}
        }
        if !progressed {
            net.stack.nap();
        }
    }
    device.finish(net);
    Err("device login: no answer within 60 s".into())
}

/// Runs the firmware loop and prints the summary.
pub(crate) fn run(args: Args) -> ExitCode {
    if args.device_login && args.stack == StackKind::Qemu {
        eprintln!("reauth firmware: --device-login runs on the host stacks, not in the QEMU image");
        return ExitCode::from(2);
    }
    if args.stack != StackKind::Std && netns::current().is_none() {
        // Every address of the run lives in a namespace of its own, made here, unless it cannot
        // be made (not root): then only `qemu` runs, whose guest reaches nothing but loopback.
        match netns::Namespace::create() {
            Ok(namespace) => return namespace.run_self(),
            Err(e) if args.stack == StackKind::Qemu => {
                eprintln!("reauth firmware: {e}; QEMU runs in this network namespace");
            }
            Err(e) => {
                eprintln!("reauth firmware: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let result = match args.stack {
        StackKind::Std => firmware(&args, Stack),
        StackKind::SmoltcpTap => crate::tap::TapStack::open(args.tcp_timestamps, args.fresh_ports)
            .and_then(|tap| firmware(&args, tap)),
        StackKind::Qemu => return crate::qemu::run(&args),
    };
    match result {
        Ok(report) => report.print_and_judge(&args),
        Err(e) => {
            eprintln!("reauth firmware: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything the summary needs.
#[derive(Debug, Default)]
struct Report {
    elapsed: StdDuration,
    token_lifetime: StdDuration,
    /// Requests submitted.
    requests: u64,
    /// What became of them.
    outcomes: Outcomes,
    /// Events for a request that had already had one, or was never submitted.
    answered_twice: u64,
    /// Requests still open when the drain gave up.
    lost: u64,
    /// What the wire showed.
    wire: WireStats,
    issuer: Counters,
    /// `Event::Refreshed` seen.
    refreshed_events: u64,
    logins: u64,
    polls: u64,
}

fn firmware<S: Drive>(args: &Args, stack: S) -> Result<Report, Box<dyn core::error::Error>> {
    let token_lifetime = StdDuration::from_millis(args.run.token_lifetime);
    let latency = StdDuration::from_millis(args.run.latency);
    let issuer = start_issuer_on(S::ISSUER_IP, token_lifetime, latency, args.seed)?;
    let host = issuer.addr().to_string();
    let endpoint = Endpoint { addr: issuer.addr(), host: &host };
    let coordinator = coordinator(args.seed);
    let keep_alive = if args.keep_alive { Timeouts::DEFAULT.keep_alive } else { Duration::ZERO };
    let timeouts = timeouts(latency, keep_alive);
    let client_config =
        ClientConfig { coordinator, timeouts, ..ClientConfig::new(endpoint, endpoint) };
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    let mut client: FirmwareClient<'_, S> = Client::new(client_config, exchange, NoStore);
    let mut net = Watched::new(stack);

    let start = StdInstant::now();
    let now =
        || Instant::from_millis(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
    let login = |client: &mut FirmwareClient<'_, S>| {
        let tokens = issuer.login();
        let lifetime = millis_of(tokens.expires_in);
        client.login(now(), &tokens.access_token, &tokens.refresh_token, Some(lifetime)).is_ok()
    };
    if args.device_login {
        device_login(&issuer, &mut client, &mut net, endpoint, &timeouts, now)?;
    } else if !login(&mut client) {
        return Err("the mock issuer's tokens do not fit the client".into());
    }
    issuer.reset_counters();
    // The workload's time starts now (the client's clock, `now`, keeps running from before).
    let start = StdInstant::now();

    let duration = run_duration(&args.run, args.requests);
    let target = args.requests.unwrap_or(MAX_REQUESTS);
    let storm_every = (args.storm_every > 0).then(|| StdDuration::from_millis(args.storm_every));
    let mut storms = Storms::new(storm_every, start);
    let mut faults = FaultSchedule::fixed(args.run.fault, token_lifetime, REFRESH_TIMEOUT);
    let mut next_frame = start;
    let bar = progress_bar(duration);
    if let Some(requests) = args.requests {
        // Progress in requests rather than in time.
        bar.set_length(requests);
    }
    let mut report = Report { token_lifetime, ..Report::default() };
    let mut open: HashMap<RequestId, StdInstant> = HashMap::with_capacity(SLOTS);
    let mut drain_until = None;
    loop {
        let done = report.outcomes.done();
        let submitting = start.elapsed() < duration && report.requests < target;
        if !submitting && drain_until.is_none() {
            // Stop submitting; what is open finishes within its wait and refresh timeouts.
            drain_until = Some(StdInstant::now() + WAIT_TIMEOUT + REFRESH_TIMEOUT * 4);
        }
        // A refresh started ahead of expiry may still be in flight with nothing open: its
        // answer is read before the run ends, or the issuer would count a call the client never
        // reported.
        let drained = open.is_empty() && !submitting && !client.coordinator().is_refreshing();
        if drained || drain_until.is_some_and(|at| StdInstant::now() >= at) {
            break;
        }
        let wall = StdInstant::now();
        storms.tick(&issuer, wall);
        faults.tick(&issuer);
        // What the device's login flow would do after a refusal.
        if client.needs_login() && login(&mut client) {
            report.logins += 1;
        }
        while submitting && report.requests < target && client.free_slots() > 0 {
            report.requests += 1;
            match client.submit(now(), &Request::get("/api/firmware")) {
                Ok(id) => {
                    open.insert(id, StdInstant::now());
                }
                // Refused at once; the slot stays free, so try again after the next poll.
                Err(SubmitError::Rejected(Rejection::NeedsLogin)) => {
                    report.outcomes.needs_login += 1;
                    break;
                }
                Err(e) => {
                    report.outcomes.fail(format_args!("submit: {e}"), "refused at submit");
                    break;
                }
            }
        }
        let mut progressed = net.stack.drive();
        loop {
            report.polls += 1;
            let Some(event) = client.poll(&mut net, now()) else { break };
            progressed = true;
            report.on_event(&mut client, &mut open, event);
        }
        if wall >= next_frame {
            let elapsed = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            bar.set_position(if args.requests.is_some() { done } else { elapsed });
            bar.set_message(format!(
                "requests {:>7}  ok {:>7}  failed {:>3}  refreshes {:>4}  generation {}",
                done,
                report.outcomes.succeeded,
                report.outcomes.failed(),
                report.refreshed_events,
                client.generation().0,
            ));
            next_frame = wall + StdDuration::from_millis(100);
        }
        progressed |= net.stack.drive();
        if !progressed {
            // The loop has no readiness signal: nap instead of spinning, as a device would
            // sleep until its stack has news.
            net.stack.nap();
        }
    }
    bar.finish_and_clear();
    report.lost = open.len() as u64;
    report.elapsed = start.elapsed();
    report.wire = net.stats;
    report.issuer = issuer.counters();
    Ok(report)
}

impl Report {
    /// Accounts for one event of the client.
    fn on_event<S: Drive>(
        &mut self,
        client: &mut FirmwareClient<'_, S>,
        open: &mut HashMap<RequestId, StdInstant>,
        event: Event<<Watched<S> as TcpClientStack>::Error, core::convert::Infallible>,
    ) {
        let (id, outcome) = match event {
            Event::Response { id, status } => {
                client.release(id);
                (id, Ok(status))
            }
            Event::Failed { id, error } => (id, Err(error)),
            Event::Refreshed { .. } => {
                self.refreshed_events += 1;
                return;
            }
            Event::RefreshFailed { .. } | Event::PersistFailed { .. } => return,
        };
        let Some(submitted) = open.remove(&id) else {
            self.answered_twice += 1;
            return;
        };
        match outcome {
            Ok(status) => self.outcomes.answered(status, submitted),
            Err(Error::Rejected(Rejection::NeedsLogin)) => self.outcomes.needs_login += 1,
            Err(error) => self.outcomes.fail(&error, failure_kind!(Error, &error)),
        }
    }

    /// Prints the summary table and the verdict; the exit code is the verdict.
    fn print_and_judge(&self, args: &Args) -> ExitCode {
        let issuer = &self.issuer;
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        let outcomes = &self.outcomes;
        let done = outcomes.done();
        let mut table = Table::default();
        table.row("stack", args.stack.name(), "");
        table.row("keep-alive", if args.keep_alive { "on" } else { "off" }, "");
        if args.stack == StackKind::SmoltcpTap {
            table.row("TCP timestamps", if args.tcp_timestamps { "on" } else { "off" }, "");
            table.row("fresh source ports", if args.fresh_ports { "on" } else { "off" }, "");
        }
        table.row("slots", SLOTS, "");
        table.row("duration", format!("{secs:.2} s"), "");
        table.row("token lifetime", format!("{} ms", self.token_lifetime.as_millis()), "issuer");
        table.row("fault", args.run.fault.name(), "");
        table.row("requests", self.requests, "client");
        outcomes.rows(&mut table);
        table.row("throughput", format!("{:.0} req/s", done as f64 / secs), "client");
        table.row("connections", issuer.connections_accepted, "issuer");
        table.row("refresh episodes", self.refreshed_events, "client");
        table.row("refresh calls", issuer.refresh_calls, "issuer");
        table.row("refreshes succeeded", issuer.refresh_successes, "issuer");
        table.row("expiry episodes", issuer.expiry_episodes, "issuer");
        table.row("stale-401 replays", self.wire.stale_unauthorized, "wire");
        table.row(
            "other 401s (parked)",
            self.wire.unauthorized - self.wire.stale_unauthorized,
            "wire",
        );
        table.row("reuse attempts", issuer.reuse_attempts, "issuer");
        table.row("max refreshes of one token", issuer.refreshes_per_access_token_max, "issuer");
        table.row("logins after refusal", self.logins, "firmware");
        table.latency_rows(&outcomes.latencies);
        // smoltcp retransmits a SYN after about 700 ms: a request this slow met a lost or
        // refused SYN (see `crate::tap` on TIME_WAIT).
        table.row("requests over 500 ms", outcomes.latencies.at_least(SLOW), "client");
        table.row("polls", self.polls, "firmware");
        table.print();

        let mut verdict = Verdict::default();
        outcomes.check(&mut verdict, args.run.fault == FaultMode::Refuse);
        verdict.check(self.lost > 0, || format!("{} requests never got an outcome", self.lost));
        verdict.check(self.answered_twice > 0, || {
            format!("{} events for requests that already had an outcome", self.answered_twice)
        });
        verdict.check(
            args.run.fault == FaultMode::None && issuer.refresh_calls != self.refreshed_events,
            || {
                format!(
                    "{} refresh calls for {} refresh episodes: a refresh was sent twice",
                    issuer.refresh_calls, self.refreshed_events
                )
            },
        );
        verdict.issuer_invariants(issuer, outcomes.succeeded);
        verdict.print("no failed request, no reuse, no token refreshed twice")
    }
}

/// Requests of a run limited by time only: every load loop is bounded in count too. Also
/// `reauth firmware-async`'s.
pub(crate) const MAX_REQUESTS: u64 = 10_000_000;

/// A request at least this slow is counted apart: on loopback none is.
const SLOW: StdDuration = StdDuration::from_millis(500);

/// A std duration as the core's milliseconds.
pub(crate) fn millis_of(d: StdDuration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The coordinator of `reauth firmware` and `reauth firmware-async`: the demo's refresh and
/// wait timeouts and backoff (jittered from `seed`), and four attempts per episode (the default
/// is two): these runs ride out a lease holder's death or a burst of faults within one episode.
pub(crate) fn coordinator(seed: u64) -> Config {
    Config {
        refresh_timeout: millis_of(REFRESH_TIMEOUT),
        wait_timeout: millis_of(WAIT_TIMEOUT),
        backoff: backoff(seed),
        max_refresh_attempts: 4,
        ..Config::DEFAULT
    }
}

/// The exchange timeouts of `reauth firmware` and `reauth firmware-async`, with `keep_alive`
/// as given. The answer timeout is short, so that a hanging token endpoint frees the refresh
/// exchange soon after the coordinator has given up on it, and long enough for the issuer's
/// `latency`.
pub(crate) fn timeouts(latency: StdDuration, keep_alive: Duration) -> Timeouts {
    let answer_timeout = Duration::from_secs(1).saturating_add(millis_of(latency * 2));
    Timeouts {
        connect: Duration::from_secs(2),
        response: answer_timeout,
        idle: answer_timeout,
        total: Duration::from_secs(10),
        keep_alive,
    }
}

/// How long the workload of `reauth firmware` and `reauth firmware-async` runs: `--duration`
/// (0.1 s to an hour), or 600 s at most when it is bounded by `requests` instead.
pub(crate) fn run_duration(run: &RunFlags, requests: Option<u64>) -> StdDuration {
    if requests.is_some() {
        StdDuration::from_secs(600)
    } else {
        StdDuration::from_secs_f64(run.duration.clamp(0.1, 3600.0))
    }
}

/// What [`Watched`] saw on the wire.
#[derive(Clone, Copy, Debug, Default)]
struct WireStats {
    /// API answers 401.
    unauthorized: u64,
    /// Of those, the ones for a token older than the newest one sent by then.
    stale_unauthorized: u64,
}

/// A stack, watching the request heads for the access token and the response status lines.
/// Tokens are kept only as hashes, in the order they were first sent, which is the order of
/// their generations.
struct Watched<S: TcpClientStack> {
    stack: S,
    /// Hashes of the access tokens sent so far, oldest first.
    tokens: Vec<u64>,
    stats: WireStats,
}

/// A socket of [`Watched`]: the real one, and what its exchange has shown so far.
struct WatchedSocket<T> {
    socket: T,
    /// The request as sent until its head is complete (or [`HEAD_LIMIT`] bytes), then wiped:
    /// it holds a token.
    request: Vec<u8>,
    /// The request head has been looked at.
    head_seen: bool,
    /// Index into [`Watched::tokens`] of the token the request carried; `None` for none (the
    /// token endpoint) or not yet known.
    token: Option<usize>,
    /// The first bytes of the response, up to the status code.
    status_line: Vec<u8>,
}

/// Bytes of a request head kept for the token; the client's heads are a few hundred.
const HEAD_LIMIT: usize = 2048;

/// `HTTP/1.1 401`: the bytes up to and including the status code.
const STATUS_END: usize = 12;

impl<S: TcpClientStack> TcpClientStack for Watched<S> {
    type TcpSocket = WatchedSocket<S::TcpSocket>;
    type Error = S::Error;

    fn socket(&mut self) -> Result<Self::TcpSocket, Self::Error> {
        Ok(WatchedSocket {
            socket: self.stack.socket()?,
            request: Vec::new(),
            head_seen: false,
            token: None,
            status_line: Vec::new(),
        })
    }

    fn connect(
        &mut self,
        socket: &mut Self::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        self.stack.connect(&mut socket.socket, remote)
    }

    fn send(
        &mut self,
        socket: &mut Self::TcpSocket,
        data: &[u8],
    ) -> nb::Result<usize, Self::Error> {
        let sent = self.stack.send(&mut socket.socket, data)?;
        if socket.head_seen && socket.status_line.len() == STATUS_END {
            // A kept connection carries its next request (the client never pipelines: it sends
            // again only after the answer): watch it from the start.
            socket.head_seen = false;
            socket.token = None;
            socket.status_line.clear();
        }
        if !socket.head_seen {
            socket.request.extend_from_slice(data.get(..sent).unwrap_or_default());
            if let Some(end) = socket.request.windows(4).position(|w| w == b"\r\n\r\n") {
                socket.token = self.token_rank(socket.request.get(..end + 2).unwrap_or_default());
                socket.head_seen = true;
            }
            if socket.head_seen || socket.request.len() >= HEAD_LIMIT {
                socket.head_seen = true;
                socket.request.zeroize();
            }
        }
        Ok(sent)
    }

    fn receive(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        let received = self.stack.receive(&mut socket.socket, buffer)?;
        if socket.status_line.len() < STATUS_END {
            let want = (STATUS_END - socket.status_line.len()).min(received);
            socket.status_line.extend_from_slice(buffer.get(..want).unwrap_or_default());
            if socket.status_line.len() == STATUS_END
                && socket.status_line.ends_with(b" 401")
                && let Some(rank) = socket.token
            {
                self.stats.unauthorized += 1;
                if rank + 1 < self.tokens.len() {
                    self.stats.stale_unauthorized += 1;
                }
            }
        }
        Ok(received)
    }

    fn close(&mut self, socket: Self::TcpSocket) -> Result<(), Self::Error> {
        self.stack.close(socket.socket)
    }
}

impl<S: TcpClientStack> Watched<S> {
    const fn new(stack: S) -> Self {
        Self {
            stack,
            tokens: Vec::new(),
            stats: WireStats { unauthorized: 0, stale_unauthorized: 0 },
        }
    }

    /// The rank of the bearer token in a complete request head (its lines end with CRLF), or
    /// `None` if it carries none.
    fn token_rank(&mut self, head: &[u8]) -> Option<usize> {
        const PREFIX: &[u8] = b"\r\nAuthorization: Bearer ";
        let at = head.windows(PREFIX.len()).position(|w| w == PREFIX)? + PREFIX.len();
        let token = head.get(at..)?;
        let token = token.get(..token.iter().position(|&b| b == b'\r')?)?;
        let mut hasher = DefaultHasher::new();
        token.hash(&mut hasher);
        let hash = hasher.finish();
        Some(self.tokens.iter().position(|&h| h == hash).unwrap_or_else(|| {
            self.tokens.push(hash);
            self.tokens.len() - 1
        }))
    }
}
