//! `reauth demo`: a refresh storm on loopback. Starts the mock issuer in-process with short-lived
//! tokens, drives many threads of requests through one shared reauth-ureq client for a few
//! seconds (with a server-side expiry of every token now and then, so that all threads meet a
//! 401 together), shows a live progress bar, and ends with a summary read from both the client's
//! and the issuer's counters. The exit code is non-zero if an invariant of the demo was violated:
//! a request failed (other than the "needs login" the `refuse` fault provokes on purpose), a
//! refresh token was reused, or one access token was refreshed twice.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use reauth_core::{Backoff, Config};
use reauth_testkit::issuer::{Counters, Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{Client, Error, Stats};

/// Options of `reauth demo`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Threads sending requests through the one shared client.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    threads: u16,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Lifetime of each access token the issuer hands out, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..))]
    token_lifetime: u64,
    /// Upper bound of the issuer's random latency per answer, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency: u64,
    /// Fault the token endpoint serves once per token lifetime.
    #[arg(long, value_enum, default_value_t = FaultMode::None)]
    fault: FaultMode,
    /// Every this many milliseconds the issuer expires every access token at once (a server-side
    /// revocation), so that all threads meet a 401 together: a refresh storm. 0 turns it off.
    #[arg(long, default_value_t = 1300)]
    storm_every: u64,
    /// Seed of the issuer's latency jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Faults the demo can inject on the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FaultMode {
    /// No faults.
    None,
    /// Two 503s before each successful refresh: retried with backoff, nobody is logged out.
    #[value(name = "503")]
    Unavailable,
    /// A refresh call that hangs past the refresh timeout: timed out and retried.
    Hang,
    /// Malformed JSON from the token endpoint: retried.
    Malformed,
    /// `invalid_grant`: every waiting request gets "needs login"; the demo logs in again.
    Refuse,
}

/// The client's refresh timeout in the demo: short, so that the `hang` fault resolves quickly.
const REFRESH_TIMEOUT: Duration = Duration::from_millis(800);

/// Runs the demo and prints the summary.
pub(crate) fn run(args: Args) -> ExitCode {
    match demo(&args) {
        Ok(report) => report.print_and_judge(),
        Err(e) => {
            eprintln!("reauth demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What one worker thread saw.
#[derive(Default)]
struct WorkerLog {
    /// Latency of each request that returned a response, in microseconds.
    latencies: Vec<u32>,
    /// Requests that failed for a reason the fault mode does not explain.
    unexpected: u64,
    /// The first few of those errors, for the report.
    examples: Vec<String>,
    /// "Needs login" rejections (expected with `--fault refuse`).
    needs_login: u64,
    /// Responses with a status other than 200.
    bad_status: u64,
}

/// Everything the summary needs.
struct Report {
    threads: u16,
    elapsed: Duration,
    token_lifetime: Duration,
    fault: FaultMode,
    stats: Stats,
    issuer: Counters,
    logs: Vec<WorkerLog>,
    logins: u64,
}

fn demo(args: &Args) -> Result<Report, Box<dyn core::error::Error>> {
    let token_lifetime = Duration::from_millis(args.token_lifetime);
    let duration = Duration::try_from_secs_f64(args.duration.clamp(0.1, 3600.0))?;
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime,
        latency_jitter: Duration::from_millis(args.latency),
        seed: args.seed,
        ..IssuerConfig::default()
    })?;
    let config = Config {
        backoff: Backoff {
            initial: reauth_core::Duration::from_millis(100),
            max: reauth_core::Duration::from_secs(2),
            seed: args.seed,
        },
        ..Config::DEFAULT
    };
    let client = Client::builder()
        .token_url(issuer.token_url())
        .client_id("reauth-demo")
        .config(config)
        .refresh_timeout(REFRESH_TIMEOUT)
        .wait_timeout(Duration::from_secs(10))
        .build()?;
    let login = |client: &Client| {
        let tokens = issuer.login();
        client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in))
    };
    login(&client)?;
    // Counters from here on describe the run, not the setup.
    issuer.reset_counters();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let logs = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let (client, stop, done, logs) =
                (client.clone(), Arc::clone(&stop), Arc::clone(&done), Arc::clone(&logs));
            let url = issuer.api_url(&format!("demo/{i}"));
            thread::Builder::new().name(format!("demo-{i}")).spawn(move || {
                let log = worker(&client, &url, &stop, &done);
                logs.lock().unwrap_or_else(PoisonError::into_inner).push(log);
            })
        })
        .collect::<Result<_, _>>()?;

    let bar = progress_bar(duration);
    let mut logins = 0;
    let mut next_fault = Instant::now();
    let storm_every = (args.storm_every > 0).then(|| Duration::from_millis(args.storm_every));
    let mut next_storm = storm_every.map(|every| started + every);
    while started.elapsed() < duration {
        if let (Some(at), Some(every)) = (next_storm, storm_every)
            && Instant::now() >= at
        {
            issuer.expire_all_now();
            next_storm = Some(at + every);
        }
        if Instant::now() >= next_fault {
            inject(&issuer, args.fault);
            next_fault += token_lifetime;
        }
        // What the application's login page would do after a refusal.
        if client.needs_login() && login(&client).is_ok() {
            logins += 1;
        }
        let stats = client.stats();
        bar.set_position(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        bar.set_message(format!(
            "requests {:>7}  ok {:>7}  failed {:>3}  refreshes {:>3}  generation {}",
            done.load(Ordering::Relaxed),
            stats.succeeded,
            stats.failed,
            stats.refreshes_succeeded,
            client.generation().0,
        ));
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let logs = core::mem::take(&mut *logs.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Report {
        threads: args.threads,
        elapsed,
        token_lifetime,
        fault: args.fault,
        stats: client.stats(),
        issuer: issuer.counters(),
        logs,
        logins,
    })
}

/// One thread's request loop: as many GETs as fit until `stop`.
fn worker(client: &Client, url: &str, stop: &AtomicBool, done: &AtomicU64) -> WorkerLog {
    let mut log = WorkerLog::default();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        match client.get(url) {
            Ok(mut response) => {
                let _ = response.body_mut().read_to_vec();
                let micros = sent.elapsed().as_micros();
                log.latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                if response.status() != 200 {
                    log.bad_status += 1;
                }
            }
            Err(Error::NeedsLogin) => {
                log.needs_login += 1;
                // Give the "login page" a moment instead of hammering a logged-out client.
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                log.unexpected += 1;
                if log.examples.len() < 3 {
                    log.examples.push(e.to_string());
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    log
}

fn inject(issuer: &MockIssuer, mode: FaultMode) {
    let fault = match mode {
        FaultMode::None => return,
        FaultMode::Unavailable => Fault::ServiceUnavailable { times: 2 },
        FaultMode::Hang => Fault::Hang { times: 1, duration: REFRESH_TIMEOUT * 2 },
        FaultMode::Malformed => Fault::MalformedJson { times: 1 },
        FaultMode::Refuse => Fault::InvalidGrant { times: 1 },
    };
    // One pending fault at a time: a refresh consumes it before the next is queued.
    issuer.clear_faults();
    issuer.inject(fault);
}

fn progress_bar(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    let style = ProgressStyle::with_template("{spinner} {elapsed:>3} [{bar:30}] {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

impl Report {
    /// Prints the summary table and the verdict; the exit code is the verdict.
    fn print_and_judge(self) -> ExitCode {
        let mut latencies: Vec<u32> =
            self.logs.iter().flat_map(|l| l.latencies.iter().copied()).collect();
        latencies.sort_unstable();
        let unexpected: u64 = self.logs.iter().map(|l| l.unexpected).sum();
        let bad_status: u64 = self.logs.iter().map(|l| l.bad_status).sum();
        let needs_login: u64 = self.logs.iter().map(|l| l.needs_login).sum();
        let (stats, issuer) = (&self.stats, &self.issuer);
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        let rows: Vec<(&str, String, &str)> = vec![
            ("threads", self.threads.to_string(), ""),
            ("duration", format!("{secs:.2} s"), ""),
            ("token lifetime", format!("{} ms", self.token_lifetime.as_millis()), "issuer"),
            ("fault", format!("{:?}", self.fault).to_lowercase(), ""),
            ("requests", stats.requests.to_string(), "client"),
            ("succeeded", stats.succeeded.to_string(), "client"),
            ("failed", (unexpected + bad_status).to_string(), "client"),
            ("needs-login rejections", needs_login.to_string(), "client"),
            ("throughput", format!("{:.0} req/s", stats.requests as f64 / secs), "client"),
            ("refresh calls", issuer.refresh_calls.to_string(), "issuer"),
            ("refreshes succeeded", issuer.refresh_successes.to_string(), "issuer"),
            ("expiry episodes", issuer.expiry_episodes.to_string(), "issuer"),
            ("stale-401 replays", stats.stale_replays.to_string(), "client"),
            ("parked (waited for a refresh)", stats.parked.to_string(), "client"),
            ("reuse attempts", issuer.reuse_attempts.to_string(), "issuer"),
            (
                "max refreshes of one token",
                issuer.refreshes_per_access_token_max.to_string(),
                "issuer",
            ),
            ("logins after refusal", self.logins.to_string(), "demo"),
            ("latency p50", millis(percentile(&latencies, 50)), "client"),
            ("latency p99", millis(percentile(&latencies, 99)), "client"),
            ("latency max", millis(latencies.last().copied()), "client"),
        ];
        println!();
        println!("  {:<30} {:>14}  from", "metric", "value");
        println!("  {:-<30} {:->14}  {:-<6}", "", "", "");
        for (name, value, source) in rows {
            println!("  {name:<30} {value:>14}  {source}");
        }
        println!();

        let mut violations = Vec::new();
        if unexpected > 0 || bad_status > 0 {
            violations.push(format!("{} requests failed", unexpected + bad_status));
            for error in self.logs.iter().flat_map(|l| &l.examples).take(5) {
                violations.push(format!("  e.g. {error}"));
            }
        }
        if needs_login > 0 && self.fault != FaultMode::Refuse {
            violations.push(format!("{needs_login} requests were told to log in again"));
        }
        if issuer.reuse_attempts > 0 {
            violations.push(format!("{} refresh-token reuses", issuer.reuse_attempts));
        }
        if issuer.refreshes_per_access_token_max > 1 {
            violations.push("an access token was refreshed more than once".to_owned());
        }
        if stats.succeeded == 0 {
            violations.push("no request succeeded".to_owned());
        }
        if violations.is_empty() {
            println!("  ok: no failed request, no reuse, no token refreshed twice");
            ExitCode::SUCCESS
        } else {
            for v in violations {
                println!("  VIOLATED: {v}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The `p`-th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[u32], p: usize) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

fn millis(micros: Option<u32>) -> String {
    micros.map_or_else(|| "-".to_owned(), |m| format!("{:.2} ms", f64::from(m) / 1000.0))
}
