//! The cost of reauth-ureq over plain ureq, and how many refresh calls an expiry storm costs.
//!
//! Both measurements run against one loopback mock issuer in the same process:
//!
//! 1. Throughput: `THREADS` threads send `PER_THREAD` GETs each, once through a plain ureq agent
//!    with a fixed valid token and once through a logged-in reauth-ureq client, as one pair of
//!    short rounds (the order alternating from pair to pair), `PAIRS` times. The table gives the
//!    median requests per second of each and the median of the per-pair ratios: on a shared
//!    machine whose load drifts, comparing neighbouring rounds is far steadier than comparing
//!    two long runs.
//! 2. Storms: `EPISODES` times, every token is expired server-side and `STORM_THREADS` threads
//!    send one request each at the same moment; the table gives the refresh calls the issuer saw
//!    per episode.
//!
//! Run with `cargo bench -p reauth-ureq --bench overhead` (a `harness = false` bench: it prints
//! its own table). The figures are noisy on a shared machine; compare ratios, not absolute
//! numbers. `benches/baselines.rs` is the fuller comparison (plain ureq, reauth-ureq and a naive
//! client, in storms, staggered traffic with short-lived tokens and steady traffic).

use core::time::Duration;
use std::io::Read;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_ureq::Client;

const THREADS: usize = 4;
const PER_THREAD: usize = 300;
const PAIRS: usize = 41;
const STORM_THREADS: usize = 32;
const EPISODES: usize = 20;

fn main() {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_secs(3600),
        ..IssuerConfig::default()
    })
    .expect("start the mock issuer");
    let url = issuer.api_url("bench");

    let fixed = issuer.login();
    // Configured like reauth-ureq's API agent (`ClientBuilder::build`): per-phase timeouts cost
    // ureq a `setsockopt` per phase, so a plain agent without them would not be a fair floor.
    let phase = Some(Duration::from_secs(30));
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_send_request(phase)
        .timeout_send_body(phase)
        .timeout_recv_response(phase)
        .timeout_recv_body(phase)
        .proxy(None)
        .build()
        .into();
    let header = format!("Bearer {}", fixed.access_token);

    let client = Client::builder().token_url(issuer.token_url()).build().expect("build client");
    let tokens = issuer.login();
    client
        .login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in))
        .expect("login");

    // Warm up both paths (connection pools, page faults).
    run_load(1, 200, |_| plain_get(&plain, &url, &header));
    run_load(1, 200, |_| reauth_get(&client, &url));

    let mut plain_rates = Vec::new();
    let mut reauth_rates = Vec::new();
    let mut ratios = Vec::new();
    for pair in 0..PAIRS {
        let plain_load = || run_load(THREADS, PER_THREAD, |_| plain_get(&plain, &url, &header));
        let reauth_load = || run_load(THREADS, PER_THREAD, |_| reauth_get(&client, &url));
        let (p, r) = if pair % 2 == 0 {
            let p = plain_load();
            (p, reauth_load())
        } else {
            let r = reauth_load();
            (plain_load(), r)
        };
        plain_rates.push(p);
        reauth_rates.push(r);
        ratios.push(p / r);
    }
    let plain_rate = median(&mut plain_rates);
    let reauth_rate = median(&mut reauth_rates);
    let ratio = median(&mut ratios);
    assert_eq!(client.stats().failed, 0, "no request may fail during the benchmark");

    let mut per_episode = Vec::new();
    for _ in 0..EPISODES {
        issuer.expire_all_now();
        let before = issuer.counters().refresh_calls;
        let barrier = Arc::new(Barrier::new(STORM_THREADS));
        let handles: Vec<_> = (0..STORM_THREADS)
            .map(|_| {
                let (client, url, barrier) = (client.clone(), url.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    reauth_get(&client, &url);
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("storm thread");
        }
        per_episode.push(issuer.counters().refresh_calls - before);
    }
    let counters = issuer.counters();
    let total: u64 = per_episode.iter().sum();
    let max = per_episode.iter().copied().max().unwrap_or(0);

    println!();
    println!("reauth-ureq overhead and storm benchmark (loopback mock issuer, {THREADS} threads)");
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| plain ureq, fixed valid token (median of {PAIRS} rounds) | {plain_rate:.0} req/s |"
    );
    println!("| reauth-ureq (median of {PAIRS} rounds) | {reauth_rate:.0} req/s |");
    println!("| overhead ratio, plain / reauth (median of {PAIRS} pairs) | {ratio:.3} |");
    println!(
        "| refresh calls per expiry episode ({EPISODES} storms of {STORM_THREADS} threads) | \
         {:.2} (max {max}) |",
        total as f64 / EPISODES as f64
    );
    println!("| refresh-token reuse attempts | {} |", counters.reuse_attempts);
    println!();
}

/// Runs `per_thread` calls of `f` on each of `threads` threads; returns requests per second.
fn run_load(threads: usize, per_thread: usize, f: impl Fn(usize) + Sync) -> f64 {
    let started = Instant::now();
    thread::scope(|scope| {
        for t in 0..threads {
            let f = &f;
            scope.spawn(move || {
                for _ in 0..per_thread {
                    f(t);
                }
            });
        }
    });
    (threads * per_thread) as f64 / started.elapsed().as_secs_f64()
}

fn plain_get(agent: &ureq::Agent, url: &str, header: &str) {
    let mut response = agent.get(url).header("Authorization", header).call().expect("plain GET");
    assert_eq!(response.status(), 200);
    drain(response.body_mut().as_reader());
}

fn reauth_get(client: &Client, url: &str) {
    let mut response = client.get(url).expect("reauth GET");
    assert_eq!(response.status(), 200);
    drain(response.body_mut().as_reader());
}

fn drain(mut reader: impl Read) {
    let mut sink = Vec::new();
    reader.read_to_end(&mut sink).expect("read body");
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
