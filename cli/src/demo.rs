//! `reauth demo`: a refresh storm on loopback. Starts the mock issuer in-process with short-lived
//! tokens, drives many threads of requests through one shared reauth-ureq client for a few
//! seconds (with a server-side expiry of every token now and then, so that all threads meet a
//! 401 together), shows a live progress bar, and ends with a summary read from both the client's
//! and the issuer's counters. The exit code is non-zero if an invariant of the demo was violated:
//! a request failed (other than the "needs login" the `refuse` fault provokes on purpose), a
//! refresh token was reused, or one access token was refreshed twice.
//!
//! The workload itself ([`Workload`]) is shared with `reauth soak`, which runs it for longer with
//! random faults and watches the process's memory.

use core::net::{IpAddr, Ipv4Addr};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use reauth_core::{Backoff, Config};
use reauth_testkit::issuer::{Counters, IssuerConfig, MockIssuer};
use reauth_ureq::{Client, Error, Stats};

use crate::fault::{FaultMode, FaultSchedule};
use crate::flags::RunFlags;
use crate::report::{Latencies, Table, Verdict};

/// Options of `reauth demo`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Threads sending requests through the one shared client.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    threads: u16,
    #[command(flatten)]
    run: RunFlags,
    /// Every this many milliseconds the issuer expires every access token at once (a server-side
    /// revocation), so that all threads meet a 401 together: a refresh storm. 0 turns it off.
    #[arg(long, default_value_t = 1300)]
    storm_every: u64,
    /// Seed of the issuer's latency jitter and the client's backoff jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The client's refresh timeout in the demo and the soak: short, so that a hanging token
/// endpoint is given up on quickly.
pub(crate) const REFRESH_TIMEOUT: Duration = Duration::from_millis(800);

/// How long a request may wait for a refresh before it is rejected, in the demo, the soak and
/// the firmware run.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the mock issuer the runs talk to: tokens living `token_lifetime`, answers delayed by
/// up to `latency` at random, drawn from `seed`.
///
/// # Errors
/// The issuer's listener could not be bound.
pub(crate) fn start_issuer(
    token_lifetime: Duration,
    latency: Duration,
    seed: u64,
) -> std::io::Result<MockIssuer> {
    start_issuer_on(IpAddr::V4(Ipv4Addr::LOCALHOST), token_lifetime, latency, seed)
}

/// [`start_issuer`] on another address of this host (a TAP device's, in a namespace of ours).
pub(crate) fn start_issuer_on(
    ip: IpAddr,
    token_lifetime: Duration,
    latency: Duration,
    seed: u64,
) -> std::io::Result<MockIssuer> {
    MockIssuer::start_on(
        ip,
        IssuerConfig {
            // For `reauth firmware --device-login`: a first poll one second after the code is
            // shown rather than RFC 8628's default five.
            device_interval: Duration::from_secs(1),
            ..issuer_config(token_lifetime, latency, seed)
        },
    )
}

/// The mock issuer's settings in every run: tokens living `token_lifetime`, answers delayed by
/// up to `latency` at random, drawn from `seed`; the rest the defaults.
pub(crate) fn issuer_config(
    token_lifetime: Duration,
    latency: Duration,
    seed: u64,
) -> IssuerConfig {
    IssuerConfig { token_lifetime, latency_jitter: latency, seed, ..IssuerConfig::default() }
}

/// The client's retry backoff in every run: 100 ms doubling up to 2 s, jittered from `seed`.
pub(crate) const fn backoff(seed: u64) -> Backoff {
    Backoff {
        initial: reauth_core::Duration::from_millis(100),
        max: reauth_core::Duration::from_secs(2),
        seed,
    }
}

/// Runs the demo and prints the summary.
pub(crate) fn run(args: Args) -> ExitCode {
    let token_lifetime = Duration::from_millis(args.run.token_lifetime);
    let workload = Workload {
        threads: args.threads,
        duration: Duration::from_secs_f64(args.run.duration.clamp(0.1, 3600.0)),
        token_lifetime,
        latency: Duration::from_millis(args.run.latency),
        storm_every: (args.storm_every > 0).then(|| Duration::from_millis(args.storm_every)),
        seed: args.seed,
    };
    let mut faults = FaultSchedule::fixed(args.run.fault, token_lifetime, REFRESH_TIMEOUT);
    let result = workload.run(|issuer| {
        faults.tick(issuer);
        String::new()
    });
    match result {
        Ok(run) => print_and_judge(&args, &workload, &run),
        Err(e) => {
            eprintln!("reauth demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The demo's traffic: `threads` threads sending GETs through one shared client as fast as they
/// can, against an in-process mock issuer.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) threads: u16,
    pub(crate) duration: Duration,
    /// Lifetime of the issuer's access tokens.
    pub(crate) token_lifetime: Duration,
    /// Upper bound of the issuer's random extra latency per answer.
    pub(crate) latency: Duration,
    /// Every this often the issuer expires every token at once; `None` for never.
    pub(crate) storm_every: Option<Duration>,
    /// Seed of the issuer's latency jitter and the client's backoff jitter.
    pub(crate) seed: u64,
}

/// What one worker thread saw, and after the run what all of them saw together.
#[derive(Debug, Default)]
pub(crate) struct WorkerLog {
    /// Latency of each request that returned a response.
    pub(crate) latencies: Latencies,
    /// Requests that got an outcome (a response or an error).
    pub(crate) outcomes: u64,
    /// Errors by kind, "needs login" included.
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// The first few errors other than "needs login", for the report.
    pub(crate) examples: Vec<String>,
    /// Responses with a status other than 200.
    pub(crate) bad_status: u64,
}

impl WorkerLog {
    /// "Needs login" rejections (expected with `--fault refuse`).
    pub(crate) fn needs_login(&self) -> u64 {
        self.errors.get(NEEDS_LOGIN).copied().unwrap_or(0)
    }

    /// Requests that failed for any reason other than "needs login", bad statuses included.
    pub(crate) fn failed(&self) -> u64 {
        self.errors.values().sum::<u64>() - self.needs_login() + self.bad_status
    }

    fn merge(&mut self, other: Self) {
        self.latencies.merge(&other.latencies);
        self.outcomes += other.outcomes;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.examples.extend(other.examples);
        self.bad_status += other.bad_status;
    }
}

/// The name of the "needs login" error kind in [`WorkerLog::errors`].
const NEEDS_LOGIN: &str = "needs login";

/// What a [`Workload`] run measured.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) elapsed: Duration,
    /// The client's counters at the end.
    pub(crate) stats: Stats,
    /// The issuer's counters at the end (the setup's login not included).
    pub(crate) issuer: Counters,
    /// What every worker that finished saw.
    pub(crate) log: WorkerLog,
    /// Logins after a refusal (what the application's login page would do).
    pub(crate) logins: u64,
    /// Requests the workers started.
    pub(crate) started: u64,
    /// Workers still inside a request when the run gave up waiting for them: their requests
    /// never got an outcome.
    pub(crate) stuck_workers: usize,
}

impl Run {
    /// Requests that never got an outcome: started by a worker, never answered, or counted by
    /// the client as started without being counted as succeeded or failed.
    pub(crate) fn lost(&self) -> u64 {
        let client = self.stats.requests.saturating_sub(self.stats.succeeded + self.stats.failed);
        self.started.saturating_sub(self.log.outcomes).max(client)
    }

    /// Outcomes beyond one per request, by the workers' and the client's count.
    pub(crate) fn answered_twice(&self) -> u64 {
        let client = (self.stats.succeeded + self.stats.failed).saturating_sub(self.stats.requests);
        self.log.outcomes.saturating_sub(self.started).max(client)
    }

    /// Records a violation in `verdict` for requests [`lost`](Self::lost) or
    /// [`answered twice`](Self::answered_twice).
    pub(crate) fn check_one_outcome_each(&self, verdict: &mut Verdict) {
        verdict.check(self.lost() > 0, || {
            format!(
                "{} requests never got an outcome ({} workers stuck)",
                self.lost(),
                self.stuck_workers
            )
        });
        verdict.check(self.answered_twice() > 0, || {
            format!("{} outcomes beyond one per request", self.answered_twice())
        });
    }
}

impl Workload {
    /// Runs the workload. `tick` is called about every 50 ms with the issuer (to inject faults)
    /// and returns text to append to the progress line.
    ///
    /// # Errors
    /// The issuer, the client or a thread could not be started.
    pub(crate) fn run(
        &self,
        mut tick: impl FnMut(&MockIssuer) -> String,
    ) -> Result<Run, Box<dyn core::error::Error>> {
        let issuer = start_issuer(self.token_lifetime, self.latency, self.seed)?;
        let config = Config { backoff: backoff(self.seed), ..Config::DEFAULT };
        let client = Client::builder()
            .token_url(issuer.token_url())
            .client_id("reauth-demo")
            .config(config)
            .refresh_timeout(REFRESH_TIMEOUT)
            .wait_timeout(WAIT_TIMEOUT)
            .build()?;
        let login = |client: &Client| {
            let tokens = issuer.login();
            client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in))
        };
        login(&client)?;
        // Counters from here on describe the run, not the setup.
        issuer.reset_counters();

        let stop = Arc::new(AtomicBool::new(false));
        let started_count = Arc::new(AtomicU64::new(0));
        let logs = Arc::new(Mutex::new(WorkerLog::default()));
        let started = Instant::now();
        let workers: Vec<_> = (0..self.threads)
            .map(|i| {
                let (client, stop, count, logs) = (
                    client.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&started_count),
                    Arc::clone(&logs),
                );
                let url = issuer.api_url(&format!("demo/{i}"));
                thread::Builder::new().name(format!("demo-{i}")).spawn(move || {
                    let log = worker(&client, &url, &stop, &count);
                    logs.lock().unwrap_or_else(PoisonError::into_inner).merge(log);
                })
            })
            .collect::<Result<_, _>>()?;

        let bar = progress_bar(self.duration);
        let mut logins = 0;
        let mut next_storm = self.storm_every.map(|every| started + every);
        while started.elapsed() < self.duration {
            if let (Some(at), Some(every)) = (next_storm, self.storm_every)
                && Instant::now() >= at
            {
                issuer.expire_all_now();
                next_storm = Some(at + every);
            }
            let extra = tick(&issuer);
            // What the application's login page would do after a refusal.
            if client.needs_login() && login(&client).is_ok() {
                logins += 1;
            }
            let stats = client.stats();
            bar.set_position(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
            bar.set_message(format!(
                "requests {:>7}  ok {:>7}  failed {:>3}  refreshes {:>4}{extra}",
                stats.requests, stats.succeeded, stats.failed, stats.refreshes_succeeded,
            ));
            thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        // Every request in flight ends within its wait and refresh timeouts; a worker still busy
        // well after that holds a request that will never get an outcome.
        let grace = Instant::now() + WAIT_TIMEOUT + REFRESH_TIMEOUT * 4;
        while workers.iter().any(|w| !w.is_finished()) && Instant::now() < grace {
            thread::sleep(Duration::from_millis(10));
        }
        let mut stuck_workers = 0;
        for worker in workers {
            if worker.is_finished() {
                let _ = worker.join();
            } else {
                // Left running: it cannot be joined, and the process ends soon.
                stuck_workers += 1;
            }
        }
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        let log = core::mem::take(&mut *logs.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(Run {
            elapsed,
            stats: client.stats(),
            issuer: issuer.counters(),
            log,
            logins,
            started: started_count.load(Ordering::Relaxed),
            stuck_workers,
        })
    }
}

/// One thread's request loop: as many GETs as fit until `stop`.
fn worker(client: &Client, url: &str, stop: &AtomicBool, started: &AtomicU64) -> WorkerLog {
    let mut log = WorkerLog::default();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        started.fetch_add(1, Ordering::Relaxed);
        let result = client.get(url);
        log.outcomes += 1;
        match result {
            Ok(mut response) => {
                let _ = response.body_mut().read_to_vec();
                log.latencies.record(sent.elapsed());
                if response.status() != 200 {
                    log.bad_status += 1;
                }
            }
            Err(e) => {
                *log.errors.entry(error_kind(&e)).or_default() += 1;
                if matches!(e, Error::NeedsLogin) {
                    // Give the "login page" a moment instead of hammering a logged-out client.
                    thread::sleep(Duration::from_millis(20));
                } else if log.examples.len() < 3 {
                    log.examples.push(e.to_string());
                }
            }
        }
    }
    log
}

/// A short name for the kind of a request error, for the failures-by-reason rows.
fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::NeedsLogin => NEEDS_LOGIN,
        Error::QueueFull => "queue full",
        Error::Timeout => "wait timeout",
        Error::RefreshUnavailable(_) => "refresh unavailable",
        Error::Unauthorized => "unauthorized",
        Error::Transport(_) => "transport",
        _ => "other",
    }
}

/// A progress bar over `duration`, in milliseconds.
pub(crate) fn progress_bar(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    let style = ProgressStyle::with_template("{spinner} {elapsed:>3} [{bar:30}] {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Prints the summary table and the verdict; the exit code is the verdict.
fn print_and_judge(args: &Args, workload: &Workload, run: &Run) -> ExitCode {
    let (stats, issuer, log) = (&run.stats, &run.issuer, &run.log);
    let secs = run.elapsed.as_secs_f64().max(f64::EPSILON);
    let mut table = Table::default();
    table.row("threads", workload.threads, "");
    table.row("duration", format!("{secs:.2} s"), "");
    table.row("token lifetime", format!("{} ms", workload.token_lifetime.as_millis()), "issuer");
    table.row("fault", args.run.fault.name(), "");
    table.row("requests", stats.requests, "client");
    table.row("succeeded", stats.succeeded, "client");
    table.row("failed", log.failed(), "client");
    table.row("needs-login rejections", log.needs_login(), "client");
    table.row("throughput", format!("{:.0} req/s", stats.requests as f64 / secs), "client");
    table.row("refresh calls", issuer.refresh_calls, "issuer");
    table.row("refreshes succeeded", issuer.refresh_successes, "issuer");
    table.row("expiry episodes", issuer.expiry_episodes, "issuer");
    table.row("stale-401 replays", stats.stale_replays, "client");
    table.row("parked (waited for a refresh)", stats.parked, "client");
    table.row("reuse attempts", issuer.reuse_attempts, "issuer");
    table.row("max refreshes of one token", issuer.refreshes_per_access_token_max, "issuer");
    table.row("logins after refusal", run.logins, "demo");
    table.latency_rows(&log.latencies);
    table.print();

    let mut verdict = Verdict::default();
    verdict.check(log.failed() > 0, || {
        let examples = log.examples.iter().take(5).map(|e| format!("\n    e.g. {e}"));
        format!("{} requests failed{}", log.failed(), examples.collect::<String>())
    });
    verdict.check(log.needs_login() > 0 && args.run.fault != FaultMode::Refuse, || {
        format!("{} requests were told to log in again", log.needs_login())
    });
    run.check_one_outcome_each(&mut verdict);
    verdict.issuer_invariants(issuer, stats.succeeded);
    verdict.print("no failed request, no reuse, no token refreshed twice")
}
