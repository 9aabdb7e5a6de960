//! reauth-nal on the host: the firmware main loop, single-threaded, over `std-embedded-nal`
//! against the in-process mock issuer, with short-lived tokens and forced expiry storms.
//!
//! Run it with `cargo run --release -p reauth-nal --example host_demo [REQUESTS]`.
//!
//! [`run_demo`] is self-contained (it needs only `reauth-nal`, `reauth-core`, `reauth-testkit`
//! and `std-embedded-nal`), so that the CLI's `reauth firmware` can call a copy of it and print
//! [`Summary`] in its own table.

use core::time::Duration as StdDuration;
use std::io;
use std::time::Instant as StdInstant;

use reauth_core::{Backoff, Config, Duration, Instant, RequestId};
use reauth_nal::{Client, ClientConfig, Endpoint, Event, NoStore, OAuth2, Request};
use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use std_embedded_nal::Stack;

/// Requests in flight at once (the client's slots).
const SLOTS: usize = 8;

/// The demo client: 8 slots, 1 KiB requests, 2 KiB responses, 512-byte access and 256-byte
/// refresh tokens, no persistence.
type DemoClient<'a> = Client<'a, Stack, NoStore, OAuth2<'a>, SLOTS, 1024, 2048, 512, 256>;

/// What to run.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Requests to complete (answered or failed).
    pub requests: usize,
    /// Lifetime of the issuer's access tokens; the client refreshes ahead of it.
    pub token_lifetime: StdDuration,
    /// Every this often the issuer expires every token at once, so that the requests in flight
    /// meet 401s and one refresh must serve them all. `None` for no storms.
    pub storm_every: Option<StdDuration>,
    /// Give up after this long, whatever is left.
    pub time_limit: StdDuration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            requests: 10_000,
            token_lifetime: StdDuration::from_secs(2),
            storm_every: Some(StdDuration::from_millis(250)),
            time_limit: StdDuration::from_secs(60),
        }
    }
}

/// What happened, from the client's events and the issuer's counters.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed or were rejected, by any cause.
    pub failed: u64,
    /// Of those, the ones the coordinator rejected (needs login, wait timeout, ...).
    pub rejected: u64,
    /// Refresh calls the issuer saw, and how many of them succeeded.
    pub refresh_calls: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Access tokens that were refused at least once (expiry episodes).
    pub expiry_episodes: u64,
    /// API answers "token expired" (each one parked and replayed, or rejected).
    pub unauthorized: u64,
    /// Refresh-token reuses the issuer caught (a correct client has none).
    pub reuse_attempts: u64,
    /// Largest number of refreshes made for one access token (a correct client: at most 1).
    pub refreshes_per_token_max: u64,
    /// Median latency from submit to answer, in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Wall time of the run.
    pub elapsed: StdDuration,
    /// Calls of `Client::poll`.
    pub polls: u64,
}

/// Runs the demo and returns its summary.
///
/// # Errors
/// The mock issuer could not start.
pub fn run_demo(config: &DemoConfig) -> io::Result<Summary> {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: config.token_lifetime,
        ..IssuerConfig::default()
    })?;
    let host = issuer.addr().to_string();
    let endpoint = Endpoint { addr: issuer.addr(), host: &host };
    let coordinator = Config {
        backoff: Backoff { initial: Duration::from_millis(50), ..Backoff::DEFAULT },
        ..Config::DEFAULT
    };
    let client_config = ClientConfig { coordinator, ..ClientConfig::new(endpoint, endpoint) };
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    let mut client: DemoClient<'_> = Client::new(client_config, exchange, NoStore);
    let mut net = Stack;

    let start = StdInstant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let tokens = issuer.login();
    let lifetime = Duration::from_millis(tokens.expires_in.as_millis() as u64);
    // `NoStore` cannot fail, and the mock's tokens fit the buffers.
    let _ = client.login(now(), &tokens.access_token, &tokens.refresh_token, Some(lifetime));

    let mut summary = Summary::default();
    let mut submitted_at: Vec<(RequestId, StdInstant)> = Vec::with_capacity(SLOTS);
    let mut latencies = Vec::with_capacity(config.requests);
    let mut submitted = 0;
    let mut last_storm = StdInstant::now();
    while (summary.ok + summary.failed) < config.requests as u64
        && start.elapsed() < config.time_limit
    {
        if let Some(every) = config.storm_every
            && last_storm.elapsed() >= every
        {
            issuer.expire_all_now();
            last_storm = StdInstant::now();
        }
        while submitted < config.requests && client.free_slots() > 0 {
            match client.submit(now(), &Request::get("/api/demo")) {
                Ok(id) => {
                    submitted_at.push((id, StdInstant::now()));
                    submitted += 1;
                }
                Err(_) => {
                    summary.failed += 1;
                    summary.rejected += 1;
                    submitted += 1;
                }
            }
        }
        let mut progressed = false;
        loop {
            summary.polls += 1;
            let Some(event) = client.poll(&mut net, now()) else { break };
            progressed = true;
            let done = match event {
                Event::Response { id, status } => {
                    client.release(id);
                    if (200..300).contains(&status) {
                        summary.ok += 1;
                    } else {
                        summary.failed += 1;
                    }
                    Some(id)
                }
                Event::Failed { id, error } => {
                    summary.failed += 1;
                    if matches!(error, reauth_nal::Error::Rejected(_)) {
                        summary.rejected += 1;
                    }
                    Some(id)
                }
                _ => None,
            };
            if let Some(id) = done
                && let Some(at) = submitted_at.iter().position(|(i, _)| *i == id)
            {
                latencies.push(submitted_at.swap_remove(at).1.elapsed());
            }
        }
        if !progressed {
            // std-embedded-nal never blocks: nap instead of spinning on an idle socket.
            std::thread::sleep(StdDuration::from_millis(1));
        }
    }

    let counters = issuer.counters();
    summary.refresh_calls = counters.refresh_calls;
    summary.refreshes = counters.refresh_successes;
    summary.expiry_episodes = counters.expiry_episodes;
    summary.unauthorized = counters.api_unauthorized;
    summary.reuse_attempts = counters.reuse_attempts;
    summary.refreshes_per_token_max = counters.refreshes_per_access_token_max;
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
    };
    summary.p50_ms = percentile(0.50);
    summary.p99_ms = percentile(0.99);
    summary.elapsed = start.elapsed();
    Ok(summary)
}

fn main() -> io::Result<()> {
    let requests = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let config = DemoConfig { requests, ..DemoConfig::default() };
    println!(
        "reauth-nal host demo: {} requests, {} slots, {:?} tokens, expiry storm every {:?}",
        config.requests, SLOTS, config.token_lifetime, config.storm_every
    );
    let s = run_demo(&config)?;
    println!("  requests ok          {:>8}", s.ok);
    println!("  failed / rejected    {:>8} / {}", s.failed, s.rejected);
    println!("  refreshes (calls)    {:>8} ({})", s.refreshes, s.refresh_calls);
    println!("  expiry episodes      {:>8}", s.expiry_episodes);
    println!("  401s replayed        {:>8}", s.unauthorized);
    println!("  refresh reuses       {:>8}", s.reuse_attempts);
    println!("  refreshes per token  {:>8} (max)", s.refreshes_per_token_max);
    println!("  latency p50 / p99    {:>8.2} / {:.2} ms", s.p50_ms, s.p99_ms);
    println!("  polls                {:>8}", s.polls);
    println!("  elapsed              {:>8.2} s", s.elapsed.as_secs_f64());
    Ok(())
}
