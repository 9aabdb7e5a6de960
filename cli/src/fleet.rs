//! `reauth fleet`: one credential shared by many processes. Starts the mock issuer (rotating
//! refresh tokens, reuse revokes the whole session), logs in once, and runs K worker processes
//! of T threads each (this same binary, `reauth fleet-worker`) against it:
//!
//! 1. **shared**: every worker's client uses the same store, so the store's lease and versioned
//!    record make one refresh per expiry fleet-wide;
//! 2. **naive** (the baseline, same processes and load): every worker starts from the same
//!    tokens in a store of its own, as programs that read a shared token cache once at start.
//!
//! It prints fleet-wide refresh calls per expiry episode (an episode ends with each successful
//! refresh: 1.00 means no call was wasted), reuse, failures, logouts and latency, and exits
//! non-zero if the shared run broke one of those goals.
//!
//! `--chaos` disturbs the shared run instead: the process that holds the lease in the middle of
//! a refresh is killed (`sigkill`: before the server rotated; `sigkill-rotated`: after), or
//! stopped past its lease and continued (`sigstop`).

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime};

use clap::{Parser, ValueEnum};
use reauth_core::Config;
use reauth_testkit::issuer::{Counters, Fault, IssuerConfig, MockIssuer};
use reauth_testkit::redis_server::RedisServer;
use reauth_ureq::{Client, Error, FileStore, MemoryStore, RedisStore, StoredTokens, TokenStore};
use zeroize::Zeroizing;

use crate::demo::backoff;
use crate::report::{Latencies, Verdict};

/// Options of `reauth fleet`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Worker processes sharing the credential.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    processes: u16,
    /// Threads sending requests in each process.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// How long each run lasts, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Lifetime of each access token the issuer hands out, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(200..))]
    token_lifetime: u64,
    /// Where the processes share the credential: a `FileStore` in a temporary directory, or a
    /// Redis store on a `redis-server` this command starts on a free port of 127.0.0.1.
    #[arg(long, value_enum, default_value_t = Shared::File)]
    store: Shared,
    /// Skip the naive baseline run.
    #[arg(long)]
    no_baseline: bool,
    /// Disturb the shared run (and skip the baseline).
    #[arg(long, value_enum, default_value_t = Chaos::None)]
    chaos: Chaos,
    /// The issuer accepts a consumed refresh token again within this many milliseconds of its
    /// rotation (Auth0's reuse interval, Okta's grace period). 0: never.
    #[arg(long, default_value_t = 0)]
    reuse_grace: u64,
}

/// The store the shared run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Shared {
    /// A `FileStore`: processes of one host.
    File,
    /// A `RedisStore`: processes (or machines) that reach one Redis.
    Redis,
}

/// A disturbance of the shared run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Chaos {
    /// None.
    None,
    /// SIGKILL the lease holder while its refresh call hangs (the server has not rotated).
    Sigkill,
    /// SIGKILL the lease holder while the server's answer trickles in (the server has rotated:
    /// the next holder presents a consumed token, which only `--reuse-grace` forgives).
    SigkillRotated,
    /// SIGSTOP the lease holder while its refresh call hangs, until its lease has lapsed and
    /// another process has refreshed, then SIGCONT it.
    Sigstop,
}

/// Options of the hidden `reauth fleet-worker`, which `fleet` starts.
#[derive(Debug, Parser)]
pub(crate) struct WorkerArgs {
    /// The issuer's token endpoint.
    #[arg(long)]
    token_url: String,
    /// The protected API URL to GET.
    #[arg(long)]
    api_url: String,
    /// The shared token file.
    #[arg(long, conflicts_with = "store_redis")]
    store_file: Option<PathBuf>,
    /// The shared Redis (URL); without this and `--store-file` the worker starts from the
    /// tokens in the environment (`REAUTH_FLEET_ACCESS`, `REAUTH_FLEET_REFRESH`,
    /// `REAUTH_FLEET_EXPIRES_MS`) in a store of its own.
    #[arg(long)]
    store_redis: Option<String>,
    #[arg(long)]
    threads: u16,
    #[arg(long)]
    seconds: f64,
    /// Wall-clock instant (ms since the Unix epoch) at which every worker starts.
    #[arg(long)]
    start_at: u64,
}

/// The client settings of every worker: a short refresh timeout, so that a lease lapses soon
/// after a holder dies, and a wait long enough to outlast that.
fn worker_config() -> Config {
    Config {
        refresh_timeout: reauth_core::Duration::from_secs(2),
        wait_timeout: reauth_core::Duration::from_secs(15),
        backoff: backoff(u64::from(std::process::id())),
        // Four attempts per episode (the default is two): these runs ride out a lease holder's
        // death or a burst of faults within one episode.
        max_refresh_attempts: 4,
        ..Config::DEFAULT
    }
}

/// Where the shared run keeps its record, lease and channel in Redis.
const REDIS_PREFIX: &str = "reauth:fleet";

/// At most this many requests per thread, whatever the duration: every load loop is bounded.
const MAX_REQUESTS_PER_THREAD: u64 = 2_000_000;

pub(crate) fn run(args: Args) -> ExitCode {
    match fleet(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reauth fleet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fleet(args: &Args) -> Result<ExitCode, Box<dyn core::error::Error>> {
    println!(
        "reauth fleet: {} processes x {} threads, {} ms tokens, {} s per run, one credential \
         shared through {}",
        args.processes,
        args.threads,
        args.token_lifetime,
        args.seconds,
        match args.store {
            Shared::File => "a FileStore",
            Shared::Redis => "Redis",
        }
    );
    let shared = run_fleet(args, Mode::Shared)?;
    let naive = if args.no_baseline || args.chaos != Chaos::None {
        None
    } else {
        Some(run_fleet(args, Mode::Naive)?)
    };
    print_table(&shared, naive.as_ref());
    let mut verdict = Verdict::default();
    shared.check(args, &mut verdict);
    let ok = if args.chaos == Chaos::SigkillRotated && args.reuse_grace == 0 {
        "as documented: the killed holder took the rotated token with it; the next holder's \
         presentation was refused as a reuse, the fleet stopped at needs-login (a reuse grace \
         on the server, --reuse-grace, forgives it)"
    } else {
        "one refresh per expiry across the fleet, no reuse, nothing failed"
    };
    Ok(verdict.print(ok))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Shared,
    Naive,
}

/// What one run measured, fleet-wide.
#[derive(Debug, Default)]
struct Outcome {
    workers: Vec<WorkerResult>,
    issuer: Counters,
    /// The process a chaos run killed, whose requests died with it.
    killed: Option<u32>,
}

/// What one worker reported.
#[derive(Debug, Default)]
struct WorkerResult {
    pid: u32,
    requests: u64,
    succeeded: u64,
    failed: u64,
    needs_login: u64,
    adopted: u64,
    refreshes: u64,
    logged_out: bool,
    latencies: Latencies,
}

fn run_fleet(args: &Args, mode: Mode) -> Result<Outcome, Box<dyn core::error::Error>> {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_millis(args.token_lifetime),
        revoke_on_reuse: true,
        reuse_grace: Duration::from_millis(args.reuse_grace),
        latency_jitter: Duration::from_millis(5),
        ..IssuerConfig::default()
    })?;
    let scratch = Scratch::new()?;
    let path = scratch.0.join("tokens.json");
    let redis = match (mode, args.store) {
        (Mode::Shared, Shared::Redis) => Some(RedisServer::start().map_err(|e| {
            format!("--store redis needs redis-server (the Debian package redis-server): {e}")
        })?),
        _ => None,
    };
    let login = issuer.login();
    let expires_at = SystemTime::now() + login.expires_in;
    if mode == Mode::Shared {
        let record = StoredTokens {
            version: 0,
            refresh_token: Zeroizing::new(login.refresh_token.clone()),
            access_token: Some(Zeroizing::new(login.access_token.clone())),
            expires_at: Some(expires_at),
        };
        match &redis {
            Some(server) => RedisStore::new(&server.url(), REDIS_PREFIX)?.save_over(record)?,
            None => FileStore::new(&path).save_over(record)?,
        };
    }
    match args.chaos {
        Chaos::Sigkill | Chaos::Sigstop => {
            issuer.inject(Fault::Hang { times: 1, duration: Duration::from_secs(8) });
        }
        Chaos::SigkillRotated => {
            issuer.inject(Fault::Trickle { times: 1, byte_delay: Duration::from_millis(40) });
        }
        Chaos::None => {}
    }
    let start_at = unix_ms(SystemTime::now()) + 300;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..args.processes {
        let mut command = Command::new(&exe);
        command
            .arg("fleet-worker")
            .args(["--token-url", &issuer.token_url()])
            .args(["--api-url", &issuer.api_url("fleet")])
            .args(["--threads", &args.threads.to_string()])
            .args(["--seconds", &args.seconds.to_string()])
            .args(["--start-at", &start_at.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match (mode, &redis) {
            (Mode::Shared, Some(server)) => {
                command.args(["--store-redis", &server.url()]);
            }
            (Mode::Shared, None) => {
                command.arg("--store-file").arg(&path);
            }
            (Mode::Naive, _) => {
                let left = expires_at.duration_since(SystemTime::now()).unwrap_or_default();
                command
                    .env("REAUTH_FLEET_ACCESS", &login.access_token)
                    .env("REAUTH_FLEET_REFRESH", &login.refresh_token)
                    .env("REAUTH_FLEET_EXPIRES_MS", left.as_millis().to_string());
            }
        }
        children.push(command.spawn()?);
    }
    let killed = match args.chaos {
        Chaos::None => None,
        _ if redis.is_some() => {
            eprintln!(
                "reauth fleet: --chaos watches a FileStore's lock file; not with --store redis"
            );
            None
        }
        chaos => disturb(chaos, &FileStore::new(&path), args),
    };
    let mut outcome = Outcome { killed, ..Outcome::default() };
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds) + Duration::from_secs(60);
    for child in children {
        if let Some(result) = collect(child, deadline)? {
            outcome.workers.push(result);
        }
    }
    outcome.issuer = issuer.counters();
    Ok(outcome)
}

/// Waits for a worker's report line, killing it if it outlives `deadline`.
fn collect(mut child: Child, deadline: Instant) -> Result<Option<WorkerResult>, std::io::Error> {
    let stdout = child.stdout.take().expect("piped above");
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        let pid = child.id();
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if Instant::now() >= deadline {
                    signal(pid, "KILL");
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut result = None;
    for line in BufReader::new(stdout).lines() {
        if let Some(parsed) = WorkerResult::parse(&line?) {
            result = Some(parsed);
        }
    }
    child.wait()?;
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    Ok(result)
}

/// Finds the process holding the lease in the middle of the faulted refresh and disturbs it.
/// Returns the pid of a killed process.
fn disturb(chaos: Chaos, store: &FileStore, args: &Args) -> Option<u32> {
    let give_up = Instant::now() + Duration::from_secs_f64(args.seconds) + Duration::from_secs(5);
    let holder = loop {
        if let Some(pid) = lease_holder(&store.lock_path()) {
            break pid;
        }
        if Instant::now() >= give_up {
            eprintln!("reauth fleet: no process took the lease; nothing disturbed");
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    // Let the holder's call reach the token endpoint (and, when it trickles, be rotated there).
    thread::sleep(Duration::from_millis(300));
    match chaos {
        Chaos::Sigkill | Chaos::SigkillRotated => {
            signal(holder, "KILL");
            println!(
                "  chaos: SIGKILL to {holder}, the lease holder, in the middle of its refresh"
            );
            Some(holder)
        }
        Chaos::Sigstop => {
            signal(holder, "STOP");
            println!("  chaos: SIGSTOP to {holder}, the lease holder; SIGCONT after 5 s");
            // The lease lives for the refresh timeout (2 s) plus a 2 s margin.
            thread::sleep(Duration::from_secs(5));
            signal(holder, "CONT");
            None
        }
        Chaos::None => None,
    }
}

/// The pid in the lease line of a FileStore's lock file, if a live lease is there.
fn lease_holder(lock: &Path) -> Option<u32> {
    let text = fs::read_to_string(lock).ok()?;
    let (owner, deadline) = text.trim().split_once(' ')?;
    let deadline: u64 = deadline.parse().ok()?;
    if deadline <= unix_ms(SystemTime::now()) {
        return None;
    }
    owner.split_once('-')?.0.parse().ok()
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
}

impl Outcome {
    /// The workers that lived to report, less the one a chaos run killed.
    fn survivors(&self) -> impl Iterator<Item = &WorkerResult> {
        self.workers.iter().filter(move |w| Some(w.pid) != self.killed)
    }

    fn sum(&self, f: impl Fn(&WorkerResult) -> u64) -> u64 {
        self.survivors().map(f).sum()
    }

    fn calls_per_episode(&self) -> f64 {
        self.issuer.refresh_calls as f64 / self.issuer.refresh_successes.max(1) as f64
    }

    fn latencies(&self) -> Latencies {
        let mut all = Latencies::default();
        for w in self.survivors() {
            all.merge(&w.latencies);
        }
        all
    }

    fn check(&self, args: &Args, verdict: &mut Verdict) {
        let expected = usize::from(args.processes) - usize::from(self.killed.is_some());
        let reported = self.survivors().count();
        verdict.check(reported != expected, || {
            format!("{reported} of {expected} worker processes reported")
        });
        let failed = self.sum(|w| w.failed);
        let logged_out = self.survivors().filter(|w| w.logged_out).count();
        let forgiven = args.chaos == Chaos::SigkillRotated && args.reuse_grace == 0;
        if forgiven {
            // Documented loss: the killed holder took the only copy of the rotated token with
            // it, the next holder's presentation is a reuse, and the server revokes the
            // session. What must hold: it is refused, no process keeps hammering.
            verdict.check(self.issuer.reuse_attempts > u64::from(args.processes), || {
                format!("{} reuses after the token was lost", self.issuer.reuse_attempts)
            });
            return;
        }
        verdict.check(failed > 0, || format!("{failed} requests failed"));
        verdict.check(logged_out > 0, || format!("{logged_out} processes ended logged out"));
        verdict.check(self.issuer.reuse_attempts > 0, || {
            format!("{} refresh-token reuses", self.issuer.reuse_attempts)
        });
        // The one call a chaos run cuts off is the only one allowed to bring nothing.
        let wasted = self.issuer.refresh_calls.saturating_sub(self.issuer.refresh_successes);
        let allowed = u64::from(args.chaos != Chaos::None);
        verdict.check(wasted > allowed, || {
            format!(
                "{} refresh calls for {} episodes",
                self.issuer.refresh_calls, self.issuer.refresh_successes
            )
        });
        verdict.check(self.sum(|w| w.succeeded) == 0, || "no request succeeded".to_owned());
    }
}

/// One row of the summary: its name and how to read it off a run.
type Row = (&'static str, Box<dyn Fn(&Outcome) -> String>);

fn print_table(shared: &Outcome, naive: Option<&Outcome>) {
    let rows: Vec<Row> = vec![
        ("requests", Box::new(|o| o.sum(|w| w.requests).to_string())),
        ("succeeded", Box::new(|o| o.sum(|w| w.succeeded).to_string())),
        ("failed", Box::new(|o| o.sum(|w| w.failed).to_string())),
        ("  of which needs-login", Box::new(|o| o.sum(|w| w.needs_login).to_string())),
        (
            "processes logged out",
            Box::new(|o| o.survivors().filter(|w| w.logged_out).count().to_string()),
        ),
        ("refresh calls (issuer)", Box::new(|o| o.issuer.refresh_calls.to_string())),
        ("expiry episodes (issuer)", Box::new(|o| o.issuer.refresh_successes.to_string())),
        ("refresh calls per episode", Box::new(|o| format!("{:.2}", o.calls_per_episode()))),
        ("refresh-token reuse (issuer)", Box::new(|o| o.issuer.reuse_attempts.to_string())),
        ("reuse forgiven in grace", Box::new(|o| o.issuer.grace_reuses.to_string())),
        ("records adopted", Box::new(|o| o.sum(|w| w.adopted).to_string())),
        ("latency p50", Box::new(|o| millis(o.latencies().percentile(50)))),
        ("latency p99", Box::new(|o| millis(o.latencies().percentile(99)))),
    ];
    println!();
    println!("  {:<30} {:>14} {:>14}", "metric", "shared store", "naive");
    println!("  {:-<30} {:->14} {:->14}", "", "", "");
    for (name, value) in rows {
        let naive = naive.map_or_else(|| "-".to_owned(), &value);
        println!("  {name:<30} {:>14} {naive:>14}", value(shared));
    }
    println!();
}

fn millis(latency: Option<Duration>) -> String {
    latency.map_or_else(|| "-".to_owned(), |d| format!("{:.2} ms", d.as_secs_f64() * 1000.0))
}

// ------------------------------------------------------------------------------------------
// The worker

pub(crate) fn run_worker(args: WorkerArgs) -> ExitCode {
    match worker(&args) {
        Ok(result) => {
            println!("{}", result.line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reauth fleet-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn worker(args: &WorkerArgs) -> Result<WorkerResult, Box<dyn core::error::Error>> {
    let builder = Client::builder().token_url(&args.token_url).config(worker_config());
    let client = match (&args.store_file, &args.store_redis) {
        (Some(path), _) => builder.store(FileStore::new(path)).build()?,
        (None, Some(url)) => builder.store(RedisStore::new(url, REDIS_PREFIX)?).build()?,
        (None, None) => {
            let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
            let access = Zeroizing::new(env("REAUTH_FLEET_ACCESS")?);
            let refresh = Zeroizing::new(env("REAUTH_FLEET_REFRESH")?);
            let left: u64 = env("REAUTH_FLEET_EXPIRES_MS")?.parse()?;
            let client = builder.store(MemoryStore::new()).build()?;
            client.login(&access, &refresh, Some(Duration::from_millis(left)))?;
            client
        }
    };
    let wait = args.start_at.saturating_sub(unix_ms(SystemTime::now()));
    thread::sleep(Duration::from_millis(wait.min(10_000)));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let handles: Vec<_> = (0..args.threads)
        .map(|_| {
            let (client, url) = (client.clone(), args.api_url.clone());
            thread::spawn(move || drive(&client, &url, deadline))
        })
        .collect();
    let mut result = WorkerResult { pid: std::process::id(), ..WorkerResult::default() };
    for handle in handles {
        let part = handle.join().map_err(|_| "a worker thread panicked")?;
        result.requests += part.requests;
        result.succeeded += part.succeeded;
        result.failed += part.failed;
        result.needs_login += part.needs_login;
        result.latencies.merge(&part.latencies);
    }
    let stats = client.stats();
    result.adopted = stats.adopted;
    result.refreshes = stats.refreshes_succeeded;
    result.logged_out = client.needs_login();
    Ok(result)
}

/// One thread's requests until `deadline` (and at most [`MAX_REQUESTS_PER_THREAD`]).
fn drive(client: &Client, url: &str, deadline: Instant) -> WorkerResult {
    let mut part = WorkerResult::default();
    while Instant::now() < deadline && part.requests < MAX_REQUESTS_PER_THREAD {
        let started = Instant::now();
        let result = client.get(url);
        part.requests += 1;
        match result {
            Ok(response) if response.status() == 200 => part.succeeded += 1,
            Ok(_) => part.failed += 1,
            Err(e) => {
                part.failed += 1;
                if matches!(e, Error::NeedsLogin) {
                    part.needs_login += 1;
                    // A logged-out process stops asking: it would only be refused again.
                    break;
                }
            }
        }
        part.latencies.record(started.elapsed());
    }
    part
}

impl WorkerResult {
    /// The report line a worker prints and the parent reads.
    fn line(&self) -> String {
        format!(
            "fleet-worker pid={} requests={} succeeded={} failed={} needs_login={} adopted={} \
             refreshes={} logged_out={} latencies={}",
            self.pid,
            self.requests,
            self.succeeded,
            self.failed,
            self.needs_login,
            self.adopted,
            self.refreshes,
            u8::from(self.logged_out),
            self.latencies.encode()
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("fleet-worker ")?;
        let mut result = Self::default();
        for field in rest.split(' ') {
            let (key, value) = field.split_once('=')?;
            let number = || value.parse::<u64>().ok();
            match key {
                "pid" => result.pid = value.parse().ok()?,
                "requests" => result.requests = number()?,
                "succeeded" => result.succeeded = number()?,
                "failed" => result.failed = number()?,
                "needs_login" => result.needs_login = number()?,
                "adopted" => result.adopted = number()?,
                "refreshes" => result.refreshes = number()?,
                "logged_out" => result.logged_out = value == "1",
                "latencies" => result.latencies = Latencies::decode(value)?,
                _ => return None,
            }
        }
        Some(result)
    }
}

/// A temporary directory for the shared token file, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "reauth-fleet-{}-{}",
            std::process::id(),
            unix_ms(SystemTime::now())
        ));
        fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
